//! Running one `sample` or `split` statement natively (docs/spec.md §4, §5,
//! §6, §7).
//!
//! # Design
//!
//! DataFusion evaluates what is per row: the `where` filter and the stratum
//! expressions (lowered by [`crate::lower`]), projected next to all source
//! columns. The result is collected into one batch, and everything that
//! decides the sample is done here in plain Rust over those arrays: unit keys
//! and draws ([`crate::keys`], [`crate::draw`]), grouping rows into units and
//! units into strata, the span check, rule matching (each predicate evaluated
//! once per stratum by DataFusion over a small table of stratum tuples),
//! `S_h` for neyman, the allocation ([`strat_alloc::allocate`]), the selection,
//! and the output (Arrow `take` in output order). Correctness first: every
//! row's stratum values are held as owned values.
//!
//! # Unit aggregates (§2)
//!
//! A stratum expression that contains unit aggregates is evaluated in two
//! steps. First DataFusion projects each aggregate's argument (and `by`
//! expression) per eligible row; the aggregates are then computed here in
//! Rust over each unit's eligible rows (after `where`; before `having`,
//! `keep` and `exclude`, which keep or drop whole units, and over every unit,
//! so that an aggregate's error never depends on them) and broadcast back to every row of the unit;
//! finally DataFusion evaluates the rest of the expression per row, with each
//! aggregate replaced by its broadcast column. So the non-aggregate parts of
//! the expression still go through the span check: they must be constant
//! within a unit.
//!
//! - `count(*)`: the unit's number of eligible rows (Int64).
//! - `min(x)`, `max(x)`: over the non-NULL `x` (Arrow's ordering: strings by
//!   bytes, floats by `total_cmp`); NULL when all are NULL.
//! - `sum(x)`: non-NULL values; integers exactly (an overflow of Int64 is an
//!   error), decimals exactly as Decimal128(38, s), floats added in ascending
//!   `total_cmp` order so the result never depends on row order.
//! - `avg(x)`: Float64; integers and decimals from exact sums, correctly
//!   rounded; floats as the ordered sum divided by the count.
//! - `first(x by t)` / `last(x by t)`: the value of `x` at the row with the
//!   smallest / largest `t`. "NULLs last" is read as: a row whose `t` is NULL
//!   is chosen only when every row of the unit has a NULL `t` (it sorts after
//!   all non-NULL `t` for both `first` and `last`); among rows with equal `t`
//!   the larger `x` wins, and a non-NULL `x` beats a NULL one. In SQL terms:
//!   `first_value(x) over (partition by unit order by t asc nulls last, x desc
//!   nulls last)`, and for `last` the same with `t desc nulls last`.
//! - `mode(x)`: the most frequent non-NULL value (Arrow's ordering decides
//!   which values are equal); on a tie the smallest, strings by bytes; NULL
//!   when all are NULL.
//!
//! `having` (§4.4) is computed the same way: its aggregates per unit, then
//! DataFusion evaluates the condition once per unit (one row each).
//!
//! # Splits (§4.2)
//!
//! Strata are formed exactly as for a sample; each stratum's units, in draw
//! order, are cut into consecutive runs of [`strat_alloc::split_sizes`] units
//! (exact), or each unit goes to the first split whose threshold
//! ([`strat_alloc::about_thresholds`]) is above its draw (`about`). Every
//! eligible unit is output, with `_split`; `_weight` is the source's
//! `_weight` (1.0 without one).
//!
//! # Output order (§7)
//!
//! Split (listing order; a sample has one), stratum order (§5.3), then draw
//! order (ascending `(r, key bytes)`), then the row key of §6 (bytes; rows
//! with equal row keys are identical).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray, UInt32Array,
    UInt64Array, make_comparator,
};
use datafusion::arrow::compute::{SortOptions, cast, concat_batches, take};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Float64Type, Int64Type, Schema, SchemaRef, UInt64Type,
};
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool};
use datafusion::logical_expr::Expr;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
use strat_alloc::{
    AllocError, AllocWarning, BigInt, BigRational, Method, Request, RuleAmount, StratumInput,
    Target, Total,
};
use strat_check::ir::{self, Program, Statement};

use crate::draw::Drawer;
use crate::keys::{KeyColumn, RowKeys, is_unit_key_type, stratum_text};
use crate::lower::{LowerError, column, lower_expr};

mod stream;

pub use stream::UnitFilters;

/// What a run produced: the output rows and the report.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub batches: Vec<RecordBatch>,
    pub schema: SchemaRef,
    pub report: Report,
    /// Where the time went.
    pub profile: Profile,
    /// The reports of the earlier statements this one read (as its source or
    /// through `exclude units in`, directly or further up), in program order.
    pub upstream: Vec<StatementReport>,
}

/// A run's output rows, produced once, in output order.
pub type RowStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<RecordBatch, RunError>> + Send>>;

/// What a run produced, its rows still to come: read once from `rows`, they
/// need not fit in memory (a split's rows come from a spilling sort). The
/// form of [`RunOutput`] for writing a sample of any size.
pub struct RunStream {
    pub rows: RowStream,
    pub schema: SchemaRef,
    pub report: Report,
    pub profile: Profile,
    pub upstream: Vec<StatementReport>,
}

impl RunStream {
    /// The stream of rows already in memory.
    pub fn ready(out: RunOutput) -> RunStream {
        let RunOutput {
            batches,
            schema,
            report,
            profile,
            upstream,
        } = out;
        RunStream {
            rows: Box::pin(futures::stream::iter(batches.into_iter().map(Ok))),
            schema,
            report,
            profile,
            upstream,
        }
    }

    /// Reads every row into memory.
    pub async fn collect(self) -> Result<RunOutput, RunError> {
        let RunStream {
            rows,
            schema,
            report,
            profile,
            upstream,
        } = self;
        let batches = rows
            .filter(|b| std::future::ready(!b.as_ref().is_ok_and(|b| b.num_rows() == 0)))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let batches = if batches.len() > 1 {
            vec![concat_batches(&schema, &batches).map_err(arrow_err("the output"))?]
        } else if batches.is_empty() {
            vec![RecordBatch::new_empty(schema.clone())]
        } else {
            batches
        };
        Ok(RunOutput {
            batches,
            schema,
            report,
            profile,
            upstream,
        })
    }
}

/// The report of one statement of a chain.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementReport {
    /// The statement's place in the program (0-based).
    pub index: usize,
    pub name: Option<String>,
    pub report: Report,
}

impl StatementReport {
    /// The statement's name, or `statement 2` for an unnamed one.
    pub fn label(&self) -> String {
        statement_label(self.name.as_deref(), self.index)
    }
}

/// A statement's name, or `statement N` (1-based) for an unnamed one.
pub fn statement_label(name: Option<&str>, index: usize) -> String {
    name.map_or_else(|| format!("statement {}", index + 1), str::to_string)
}

/// Adds `found` (a statement's report and those it read) to `upstream`, each
/// statement once, in program order.
fn add_upstream(upstream: &mut Vec<StatementReport>, found: Vec<StatementReport>) {
    for r in found {
        if !upstream.iter().any(|u| u.index == r.index) {
            upstream.push(r);
        }
    }
    upstream.sort_by_key(|u| u.index);
}

/// Wall time per phase of a run, for `strat run --timings`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub phases: Vec<(&'static str, std::time::Duration)>,
    /// Sorted runs of units the streaming plan spilled to disk (0: none).
    pub spilled_runs: usize,
}

/// The per-run report (what a user reads next to the sample).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The non-empty strata in stratum order (§5.3).
    pub strata: Vec<StratumReport>,
    /// `N`: eligible units.
    pub total_population: u64,
    /// Selected units (not rows); `N` for a split.
    pub total_selected: u64,
    /// Eligible rows whose unit column is NULL (left out of the population).
    pub null_units: u64,
    /// Units removed by `exclude units in` (before strata are counted).
    pub excluded_units: u64,
    /// Units dropped by `having` (before `keep` and `exclude`, §4.4).
    pub having_dropped_units: u64,
    pub seed: u64,
    /// Data-dependent warnings (§9).
    pub warnings: Vec<String>,
    /// For a split: the units each split received in total, by split name in
    /// listing order. Empty for a sample.
    pub split_totals: Vec<(String, u64)>,
    /// The source is a statement with a `_weight` (two-phase sampling): an
    /// output row's `_weight` is the stratum's `weight` here times the row's
    /// `_weight` in the source (§7.2); a split keeps the source's.
    pub source_weighted: bool,
    /// What `as of` found, for a statement with one.
    pub as_of: Option<AsOfReport>,
}

/// Units whose best rows `as of` T tie on `by` (and `ties by`): which one
/// is the state, no rule says (spec §4.5, E0209).
#[derive(Debug)]
pub struct TiedUnits {
    /// `T`, as a literal.
    pub at: String,
    pub unit_column: String,
    pub by: String,
    pub ties: Option<String>,
    /// How many units tie.
    pub units: u64,
    /// Some of them (the smallest key texts), with how many of their rows tie.
    pub examples: Vec<(String, u64)>,
}

/// What `as of` found (spec §4.5), for the report and `explain`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AsOfReport {
    /// The clause with `T` as a literal:
    /// `as of @2018-06-01 by snapshot_date within 30 days`.
    pub clause: String,
    /// Every row of the source, with a unit or not.
    pub rows_read: u64,
    /// Units with a row in the window: the statement's units.
    pub units_with_state: u64,
    /// Units whose rows all lie outside the window (after `T`, or before
    /// its start): not in the population.
    pub units_without_state: u64,
}

/// Whether a statement's source is a statement that outputs `_weight`.
fn source_weighted(program: &Program, st: &Statement) -> bool {
    matches!(&st.source, ir::Source::Statement(j)
        if program.statements[*j].output.contains(&ir::Output::Weight))
}

/// The `_weight` of each row of `input` (a statement's source columns) when
/// its source outputs one (`weighted`): a sample multiplies its own weight by
/// it, a split keeps it (spec §7.2).
fn source_weights(
    st: &Statement,
    weighted: bool,
    input: &[ArrayRef],
) -> Result<Option<Float64Array>, RunError> {
    if !weighted {
        return Ok(None);
    }
    let a = &input[input_index(st, "_weight")?];
    let a = cast(a, &DataType::Float64).map_err(arrow_err("the source's `_weight`"))?;
    Ok(Some(a.as_primitive::<Float64Type>().clone()))
}

/// One stratum of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct StratumReport {
    /// The key texts of the stratum values (bucket labels for buckets), `∅` for NULL.
    pub values: Vec<String>,
    /// The `_stratum` text.
    pub text: String,
    /// `N_h`.
    pub population: u64,
    /// `n_h` (exact) or `p_h` (Bernoulli); `Exact(N_h)` for a split.
    pub target: Target,
    /// Units selected (`N_h` for a split: every unit lands in one split).
    pub selected: u64,
    /// The design weight `N_h / n_h` or `1 / p_h`; 0 when the stratum gets
    /// nothing (`n_h = 0` or `p_h = 0`), as no unit carries it. For a split,
    /// 1 (a split keeps its source's weight and adds no factor).
    pub weight: f64,
    /// For a split: the units of this stratum that each split received, by
    /// split name in listing order (they sum to `population`). Empty for a
    /// sample.
    pub split_counts: Vec<(String, u64)>,
}

/// A run-time error (§9); the message states the numbers and the fix.
#[derive(Debug)]
pub enum RunError {
    /// A construct the native runner does not run yet.
    Unsupported(String),
    /// No such statement, or not runnable.
    Statement(String),
    Lower(LowerError),
    /// Reading or evaluating through DataFusion failed.
    DataFusion {
        context: String,
        error: DataFusionError,
    },
    /// A column has no key text.
    Key(String),
    /// A unit whose rows fall into two strata.
    UnitSpansStrata {
        unit_column: String,
        unit: String,
        first: String,
        second: String,
    },
    /// Units whose best rows `as of` T tie (boxed: the error stays small).
    AsOfTie(Box<TiedUnits>),
    /// The neyman column differs between the rows of one unit.
    NeymanNotConstant {
        column: String,
        unit: String,
    },
    /// The allocation cannot be made. `unmatched` names the values of rules
    /// that no stratum has (§9), which is often why: `country = "us"`.
    Alloc {
        error: AllocError,
        unmatched: Vec<String>,
    },
    /// Running statement `index` (named `name` in messages), which the
    /// statement being run reads, failed.
    InStatement {
        index: usize,
        name: String,
        error: Box<RunError>,
    },
    /// The eligible rows need more memory than the context's memory limit
    /// (`usage` says how much), or spilling to disk failed (`usage` is `None`).
    Memory {
        context: String,
        error: DataFusionError,
        usage: Option<MemoryUse>,
    },
}

/// Where a run stood when it hit the memory limit, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    /// The memory limit (the memory pool's size), when it is known.
    pub limit: Option<usize>,
    /// What the run held (in the memory pool) when it asked for more.
    pub held: usize,
    /// What it asked for on top.
    pub asked: usize,
}

impl MemoryUse {
    /// What the run needed at least: what it held and what it asked for.
    pub fn needed(&self) -> usize {
        self.held.saturating_add(self.asked)
    }
}

/// `1536` → `1.5 KiB`: a size as people read it (binary units, as
/// `--memory-limit` takes them).
pub fn size_text(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Asking `pool` for `asked` bytes more failed: the memory error, with numbers.
pub(crate) fn over_memory_limit(
    context: &str,
    pool: &dyn MemoryPool,
    asked: usize,
    error: DataFusionError,
) -> RunError {
    RunError::Memory {
        context: context.to_string(),
        error,
        usage: Some(MemoryUse {
            limit: match pool.memory_limit() {
                MemoryLimit::Finite(n) => Some(n),
                _ => None,
            },
            held: pool.reserved(),
            asked,
        }),
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Unsupported(what) => {
                write!(f, "{what} is not supported by the native runner yet")
            }
            RunError::Statement(m) | RunError::Key(m) => f.write_str(m),
            RunError::Lower(e) => write!(f, "{e}"),
            RunError::DataFusion { context, error } => write!(f, "{context}: {error}"),
            RunError::UnitSpansStrata {
                unit_column,
                unit,
                first,
                second,
            } => write!(
                f,
                "unit `{unit_column}` = {unit} spans two strata, `{first}` and `{second}`: its rows \
                 have different stratum values; stratify by values that are constant within a unit \
                 (e.g. a unit aggregate such as `last(x by t)`), or fix the data"
            ),
            RunError::AsOfTie(tie) => {
                let TiedUnits {
                    at,
                    unit_column,
                    by,
                    ties,
                    units,
                    examples,
                } = tie.as_ref();
                let named: Vec<String> = examples
                    .iter()
                    .map(|(u, n)| format!("`{unit_column}` = {u} ({n} rows)"))
                    .collect();
                let on = match ties {
                    Some(t) => format!("`{by}` and `{t}`"),
                    None => format!("`{by}`"),
                };
                write!(
                    f,
                    "{units} unit{} tie on {on} at their latest row as of {at}: {}{}",
                    if *units == 1 { "" } else { "s" },
                    named.join(", "),
                    if *units > examples.len() as u64 {
                        ", …"
                    } else {
                        ""
                    }
                )
            }
            RunError::NeymanNotConstant { column, unit } => write!(
                f,
                "neyman: `{column}` differs between the rows of unit {unit}; the neyman column \
                 must be constant within a unit (use a per-unit column, or another method)"
            ),
            RunError::Alloc { error, .. } => write!(f, "{error}"),
            RunError::InStatement { name, error, .. } => write!(f, "{name}: {error}"),
            RunError::Memory {
                context,
                usage: Some(u),
                ..
            } => {
                let limit = u.limit.map_or("the memory limit".to_string(), |l| {
                    format!("the memory limit of {}", size_text(l))
                });
                let parts = if u.held == 0 {
                    String::new()
                } else {
                    format!(
                        " ({} held and {} more)",
                        size_text(u.held),
                        size_text(u.asked)
                    )
                };
                write!(
                    f,
                    "{context}: the eligible rows need at least {}{parts}, more than {limit}",
                    size_text(u.needed())
                )
            }
            RunError::Memory {
                context,
                error: DataFusionError::Execution(what),
                usage: None,
            } => write!(f, "{context}: {what}"),
            RunError::Memory { context, error, .. } => write!(f, "{context}: {error}"),
        }
    }
}

impl std::error::Error for RunError {}

impl RunError {
    /// The error, and the index of the statement it is about when that is
    /// not the statement run but one it reads.
    pub fn located(&self) -> (Option<usize>, &RunError) {
        match self {
            RunError::InStatement { index, error, .. } => (Some(*index), error),
            e => (None, e),
        }
    }

    /// This error as one of running statement `index` (once: the innermost
    /// statement of a chain is the one to name).
    fn in_statement(self, index: usize, name: &str) -> RunError {
        match self {
            e @ RunError::InStatement { .. } => e,
            e => RunError::InStatement {
                index,
                name: name.to_string(),
                error: Box::new(e),
            },
        }
    }
}

impl From<LowerError> for RunError {
    fn from(e: LowerError) -> Self {
        RunError::Lower(e)
    }
}

impl From<AllocError> for RunError {
    fn from(e: AllocError) -> Self {
        RunError::Alloc {
            error: e,
            unmatched: Vec::new(),
        }
    }
}

fn df_err(context: impl Into<String>) -> impl FnOnce(DataFusionError) -> RunError {
    let context = context.into();
    move |error| RunError::DataFusion { context, error }
}

fn arrow_err(context: &str) -> impl FnOnce(datafusion::arrow::error::ArrowError) -> RunError + '_ {
    move |e| RunError::DataFusion {
        context: context.to_string(),
        error: DataFusionError::ArrowError(Box::new(e), None),
    }
}

/// A stratum value as it sorts (§5.3). Within one stratum column all non-NULL
/// values have the same variant, and NULL sorts first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum SVal {
    Null,
    Bool(bool),
    Int(i128),
    /// Strings by UTF-8 bytes (`String`'s order).
    Text(String),
    /// Dates (days) and timestamps (raw values of one unit), chronological.
    Time(i64),
    /// A bucket by the position of its interval.
    Label(usize),
}

fn stratum_values(a: &ArrayRef, labels: Option<&[String]>) -> Result<Vec<SVal>, RunError> {
    use DataType as D;
    let err = || arrow_err("reading stratum values");
    let n = a.len();
    let valid = |i: usize| a.is_valid(i);
    // NULL where the array has none, else the value `f` makes of row i.
    let each = |f: &dyn Fn(usize) -> SVal| -> Vec<SVal> {
        (0..n)
            .map(|i| if valid(i) { f(i) } else { SVal::Null })
            .collect()
    };
    Ok(match a.data_type() {
        D::Null => vec![SVal::Null; n],
        D::Dictionary(_, v) => {
            let flat = cast(a, v).map_err(err())?;
            stratum_values(&flat, labels)?
        }
        D::Int8 | D::Int16 | D::Int32 | D::Int64 => {
            let c = cast(a, &D::Int64).map_err(err())?;
            let c = c.as_primitive::<Int64Type>();
            each(&|i| SVal::Int(i128::from(c.value(i))))
        }
        D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => {
            let c = cast(a, &D::UInt64).map_err(err())?;
            let c = c.as_primitive::<UInt64Type>();
            each(&|i| SVal::Int(i128::from(c.value(i))))
        }
        D::Utf8 | D::LargeUtf8 | D::Utf8View => {
            let c = cast(a, &D::Utf8).map_err(err())?;
            let c = c.as_string::<i32>();
            (0..n)
                .map(|i| {
                    if !valid(i) {
                        return Ok(SVal::Null);
                    }
                    let s = c.value(i);
                    match labels {
                        None => Ok(SVal::Text(s.to_string())),
                        Some(l) => {
                            l.iter()
                                .position(|x| x == s)
                                .map(SVal::Label)
                                .ok_or_else(|| {
                                    RunError::Statement(format!(
                                        "bucket label `{s}` is not one of {l:?} (internal error)"
                                    ))
                                })
                        }
                    }
                })
                .collect::<Result<_, _>>()?
        }
        D::Boolean => {
            let c = a.as_boolean();
            each(&|i| SVal::Bool(c.value(i)))
        }
        D::Date32 | D::Date64 | D::Timestamp(..) => {
            let days = |v: i64| match a.data_type() {
                D::Date64 => v.div_euclid(86_400_000),
                _ => v,
            };
            let c = cast(a, &D::Int64).map_err(err())?;
            let c = c.as_primitive::<Int64Type>();
            each(&|i| SVal::Time(days(c.value(i))))
        }
        other => {
            return Err(RunError::Unsupported(format!(
                "a stratum value of type {other}"
            )));
        }
    })
}

/// Writes the key text of stratum values (unit key text; timestamps as in row keys).
struct TextColumn(KeyColumn);

impl TextColumn {
    fn new(a: &ArrayRef) -> Result<Self, RunError> {
        let k = if is_unit_key_type(a.data_type()) {
            KeyColumn::unit(a.as_ref())
        } else {
            KeyColumn::row(a.as_ref())
        };
        k.map(TextColumn)
            .map_err(|e| RunError::Key(format!("a stratum value: {e}")))
    }

    fn text(&self, row: usize) -> Option<String> {
        if self.0.is_null(row) {
            return None;
        }
        let mut buf = Vec::new();
        let _ = self.0.write(row, &mut buf);
        Some(String::from_utf8_lossy(&buf).into_owned())
    }
}

struct Unit {
    key: Vec<u8>,
    rows: Vec<usize>,
}

/// Runs statement `index` of `program`: its tables must be registered on `ctx`
/// under their names (as [`crate::compile`] does).
pub async fn run_statement(
    ctx: &SessionContext,
    program: &Program,
    index: usize,
) -> Result<RunOutput, RunError> {
    run_statement_with(ctx, program, index, &RunOptions::default()).await
}

/// How to run a statement; the output never depends on it.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Memory for the streaming plan's unit sets (about 32 bytes a unit);
    /// beyond it (or beyond the context's memory limit) they are spilled to
    /// disk as sorted runs. 256 MiB by default: about 8 million units.
    pub unit_memory: usize,
    /// Where the run tells its phase and the rows it has read (a progress bar).
    pub progress: Option<Arc<crate::progress::Progress>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            unit_memory: 256 << 20,
            progress: None,
        }
    }
}

/// [`run_statement`] with chosen [`RunOptions`].
pub async fn run_statement_with(
    ctx: &SessionContext,
    program: &Program,
    index: usize,
    options: &RunOptions,
) -> Result<RunOutput, RunError> {
    run_statement_streamed(ctx, program, index, options)
        .await?
        .collect()
        .await
}

/// [`run_statement_with`], its rows read as they come (a split's rows need
/// not fit in memory).
pub async fn run_statement_streamed(
    ctx: &SessionContext,
    program: &Program,
    index: usize,
    options: &RunOptions,
) -> Result<RunStream, RunError> {
    let st = program.statements.get(index).ok_or_else(|| {
        RunError::Statement(format!(
            "there is no statement {index}; the program has {}",
            program.statements.len()
        ))
    })?;
    let split = match &st.kind {
        ir::Kind::Sample => {
            if st.output.iter().any(|o| matches!(o, ir::Output::SplitName)) {
                return Err(RunError::Unsupported("`_split` in a sample".into()));
            }
            None
        }
        ir::Kind::Split(split) => Some(split),
    };
    let mut upstream = Vec::new();
    let filters = UnitFilters::read(ctx, program, st, &mut upstream).await?;
    let source = match &st.source {
        ir::Source::Table(t) => stream::Rows::table(t, st),
        ir::Source::Statement(j) => {
            let (rows, name) = upstream_rows(ctx, program, *j, options, &mut upstream).await?;
            let what = format!("the output of {name}");
            let weighted = source_weighted(program, st);
            let spooled = stream::Rows::spooled(ctx, st, rows, what, weighted)
                .await
                .map_err(|e| e.in_statement(*j, &name))?;
            spooled.ok_or_else(|| {
                RunError::Unsupported(format!(
                    "reading {name}: a statement reads another's output from a temporary \
                     file, and this session has no local temporary folder (its disk \
                     manager is disabled)"
                ))
            })?
        }
    };
    let (source, as_of, as_of_phases) = match &st.as_of {
        None => (source, None, Vec::new()),
        Some(_) => {
            let (rows, found, phases) = source.state_as_of(ctx, st).await?.ok_or_else(|| {
                RunError::Unsupported(
                    "`as of`: the state rows go to a temporary file, and this session has no \
                     local temporary folder (its disk manager is disabled)"
                        .into(),
                )
            })?;
            (rows, Some(found), phases)
        }
    };
    let mut out = stream::run(ctx, st, source, split, filters, options).await?;
    out.report.source_weighted = source_weighted(program, st);
    out.report.as_of = as_of;
    out.profile.phases.splice(0..0, as_of_phases);
    out.upstream = upstream;
    Ok(out)
}

/// The output rows of a run, in output order: their places among the
/// eligible rows, and their weight, stratum (in stratum order) and split.
struct OutputRows<'a> {
    picks: RowPicks<'a>,
    weights: Vec<f64>,
    strata: Vec<usize>,
    splits: Vec<usize>,
}

/// Where the output rows come from, in output order.
enum RowPicks<'a> {
    /// Every row of the source columns `input` and the stratum columns, in order.
    Whole {
        input: &'a [ArrayRef],
        strata: &'a [ArrayRef],
        rows: usize,
    },
    /// (batch, row) pairs of `batches`, whose columns are the source columns,
    /// then the stratum columns from `strata_at` on.
    Gather {
        batches: &'a [RecordBatch],
        strata_at: usize,
        pairs: Vec<(usize, usize)>,
    },
}

impl RowPicks<'_> {
    fn len(&self) -> usize {
        match self {
            RowPicks::Whole { rows, .. } => *rows,
            RowPicks::Gather { pairs, .. } => pairs.len(),
        }
    }

    /// Source column `i` (or stratum column `i`) at the picked rows.
    fn column(&self, i: usize, stratum: bool) -> Result<ArrayRef, RunError> {
        match self {
            RowPicks::Whole { input, strata, .. } => {
                Ok(if stratum { &strata[i] } else { &input[i] }.clone())
            }
            RowPicks::Gather {
                batches,
                strata_at,
                pairs,
            } => {
                let at = if stratum { strata_at + i } else { i };
                let arrays: Vec<&dyn Array> =
                    batches.iter().map(|b| b.column(at).as_ref()).collect();
                datafusion::arrow::compute::interleave(&arrays, pairs).map_err(arrow_err("output"))
            }
        }
    }
}

/// The statement's output columns (spec §7) for `rows`: source columns and
/// stratum values at the picked rows, and the generated columns, built on
/// `threads` threads (a column each at a time).
fn output_batch(
    st: &Statement,
    split: Option<&ir::Split>,
    rows: OutputRows,
    stratum_strings: &[String],
    threads: usize,
) -> Result<(RecordBatch, SchemaRef), RunError> {
    let make = |o: &ir::Output| -> Result<ArrayRef, RunError> {
        Ok(match o {
            ir::Output::Column(c) => rows.picks.column(input_index(st, &c.name)?, false)?,
            ir::Output::Stratum { index, .. } => rows.picks.column(*index, true)?,
            ir::Output::Weight => {
                Arc::new(Float64Array::from_iter_values(rows.weights.iter().copied()))
            }
            ir::Output::StratumText => Arc::new(StringArray::from_iter_values(
                rows.strata.iter().map(|&h| stratum_strings[h].as_str()),
            )),
            ir::Output::SplitName => {
                let parts = split.map_or(&[][..], |s| s.parts.as_slice());
                Arc::new(StringArray::from_iter_values(
                    rows.splits.iter().map(|&i| parts[i].0.as_str()),
                ))
            }
        })
    };
    // Views become plain strings and binaries: a sample's types do not
    // depend on the input's format.
    let make = |o: &ir::Output| -> Result<ArrayRef, RunError> {
        let a = make(o)?;
        match plain_type(a.data_type()) {
            Some(t) => cast(&a, &t).map_err(arrow_err("output")),
            None => Ok(a),
        }
    };
    let built = crate::parallel::map_on_threads(st.output.iter().collect(), threads, make)
        .ok_or_else(|| {
            RunError::Statement("building an output column failed (internal error)".into())
        })?;
    let mut fields = Vec::with_capacity(st.output.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(st.output.len());
    for (o, array) in st.output.iter().zip(built) {
        let array = array?;
        fields.push(Field::new(o.name(), array.data_type().clone(), true));
        columns.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let out = RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.picks.len())),
    )
    .map_err(arrow_err("building the output"))?;
    Ok((out, schema))
}

/// The plain type of a view type (`Utf8View` → `Utf8`, `BinaryView` →
/// `Binary`); `None` for any other type.
fn plain_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    }
}

/// The data-dependent warnings of a run (spec §9).
fn run_warnings(
    st: &Statement,
    null_rows: u64,
    alloc_warnings: &[AllocWarning],
    stratum_strings: &[String],
    stratum_texts: &[Vec<Option<String>>],
) -> Vec<String> {
    let mut warnings = Vec::new();
    if let (true, Some(c)) = (null_rows > 0, &st.unit) {
        warnings.push(format!(
            "{null_rows} eligible row(s) have a NULL `{}` and belong to no unit; they are left out",
            c.name
        ));
    }
    for w in alloc_warnings {
        warnings.push(warning_text(w, stratum_strings, st));
    }
    warnings.extend(unknown_rule_values(st, stratum_texts));
    warnings
}

fn input_index(st: &Statement, name: &str) -> Result<usize, RunError> {
    st.input.iter().position(|c| c.name == name).ok_or_else(|| {
        RunError::Statement(format!(
            "the source has no column `{name}` (internal error)"
        ))
    })
}

const STRATUM_PREFIX: &str = "\u{1}strat_stratum_";
const AGG_PREFIX: &str = "\u{1}strat_agg_";
const AGG_ARG_PREFIX: &str = "\u{1}strat_agg_arg_";
const AGG_BY_PREFIX: &str = "\u{1}strat_agg_by_";
const HAVING_PREFIX: &str = "\u{1}strat_having_";
const HAVING_ARG_PREFIX: &str = "\u{1}strat_having_arg_";
const HAVING_BY_PREFIX: &str = "\u{1}strat_having_by_";
const ROW_INDEX: &str = "\u{1}strat_row";

/// How the stratum expressions are evaluated: directly per row, or (with
/// unit aggregates) per row after the aggregates are computed per unit.
#[derive(Clone)]
struct StrataPlan {
    /// Per stratum: the expression with each aggregate replaced by a column
    /// `AGG_PREFIX j`, or `None` when it has no aggregate.
    rewritten: Vec<Option<ir::Expr>>,
    aggregates: Vec<ir::UnitAggregate>,
    /// `having` with each aggregate replaced by a column `HAVING_PREFIX j`,
    /// and those aggregates.
    having: Option<(ir::Expr, Vec<ir::UnitAggregate>)>,
}

impl StrataPlan {
    fn new(st: &Statement) -> Self {
        let having = st.having.as_ref().map(|h| {
            let mut e = h.expr.clone();
            let mut aggregates = Vec::new();
            ir::replace_aggregates(&mut e, HAVING_PREFIX, &mut aggregates);
            (e, aggregates)
        });
        let (rewritten, aggregates) = ir::strata_over_aggregates(&st.strata, AGG_PREFIX);
        StrataPlan {
            rewritten,
            aggregates,
            having,
        }
    }

    /// The per-row expressions DataFusion projects after the source columns.
    fn projections(&self, st: &Statement) -> Result<Vec<Expr>, RunError> {
        let mut select = Vec::new();
        for (i, s) in st.strata.iter().enumerate() {
            if self.rewritten[i].is_none() {
                select.push(lower_expr(&s.expr, None)?.alias(format!("{STRATUM_PREFIX}{i}")));
            }
        }
        for (j, a) in self.aggregates.iter().enumerate() {
            if let Some(x) = &a.arg {
                select.push(lower_expr(x, None)?.alias(format!("{AGG_ARG_PREFIX}{j}")));
            }
            if let Some(t) = &a.by {
                select.push(lower_expr(t, None)?.alias(format!("{AGG_BY_PREFIX}{j}")));
            }
        }
        for (j, a) in self.having.iter().flat_map(|h| &h.1).enumerate() {
            if let Some(x) = &a.arg {
                select.push(lower_expr(x, None)?.alias(format!("{HAVING_ARG_PREFIX}{j}")));
            }
            if let Some(t) = &a.by {
                select.push(lower_expr(t, None)?.alias(format!("{HAVING_BY_PREFIX}{j}")));
            }
        }
        Ok(select)
    }

    /// Per unit (in `units` order): does it pass `having`? Its aggregates are
    /// computed over the unit's eligible rows, then DataFusion evaluates the
    /// condition once per unit; NULL does not pass. `None` without `having`.
    async fn having_mask(
        &self,
        ctx: &SessionContext,
        batch: &RecordBatch,
        units: &[Unit],
    ) -> Result<Option<Vec<bool>>, RunError> {
        let Some((condition, aggregates)) = &self.having else {
            return Ok(None);
        };
        let named = |name: String| -> Result<ArrayRef, RunError> {
            batch
                .column_by_name(&name)
                .cloned()
                .ok_or_else(|| RunError::Statement(format!("no column `{name}` (internal error)")))
        };
        let mut fields = vec![Field::new(ROW_INDEX, DataType::UInt64, false)];
        let mut cols: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(
            0..units.len() as u64,
        ))];
        for (j, a) in aggregates.iter().enumerate() {
            let arg = a
                .arg
                .as_ref()
                .map(|_| named(format!("{HAVING_ARG_PREFIX}{j}")))
                .transpose()?;
            let by =
                a.by.as_ref()
                    .map(|_| named(format!("{HAVING_BY_PREFIX}{j}")))
                    .transpose()?;
            let per_unit = unit_aggregate(a.func, arg.as_ref(), by.as_ref(), units)?;
            fields.push(Field::new(
                format!("{HAVING_PREFIX}{j}"),
                per_unit.data_type().clone(),
                true,
            ));
            cols.push(per_unit);
        }
        let per_unit = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .map_err(arrow_err("`having`"))?;
        let select = vec![column(ROW_INDEX), lower_expr(condition, None)?];
        let out = ctx
            .read_batch(per_unit)
            .and_then(|df| df.select(select))
            .map_err(df_err("evaluating `having`"))?
            .collect()
            .await
            .map_err(df_err("evaluating `having`"))?;
        let mut mask = vec![false; units.len()];
        for b in &out {
            let ids = b.column(0).as_primitive::<UInt64Type>();
            let pass = cast(b.column(1), &DataType::Boolean).map_err(arrow_err("`having`"))?;
            let pass = pass.as_boolean();
            for row in 0..b.num_rows() {
                mask[ids.value(row) as usize] = pass.is_valid(row) && pass.value(row);
            }
        }
        Ok(Some(mask))
    }

    /// The stratum values of every eligible row, one array per stratum
    /// expression. Aggregates are computed per unit over its eligible rows and
    /// broadcast to them (NULL on rows of no unit), then the rest of each
    /// expression is evaluated per row by DataFusion over the batch's first
    /// `n_source` columns (source columns) and the aggregates.
    async fn strata_arrays(
        &self,
        ctx: &SessionContext,
        st: &Statement,
        batch: &RecordBatch,
        n_source: usize,
        units: &[Unit],
    ) -> Result<Vec<ArrayRef>, RunError> {
        let named = |name: String| -> Result<ArrayRef, RunError> {
            batch
                .column_by_name(&name)
                .cloned()
                .ok_or_else(|| RunError::Statement(format!("no column `{name}` (internal error)")))
        };
        let mut evaluated: HashMap<usize, ArrayRef> = HashMap::new();
        if !self.aggregates.is_empty() {
            let rows = batch.num_rows();
            let mut row_unit: Vec<Option<u32>> = vec![None; rows];
            for (u, unit) in units.iter().enumerate() {
                let u = u32::try_from(u)
                    .map_err(|_| RunError::Unsupported("more than 2^32 units".into()))?;
                for &r in &unit.rows {
                    row_unit[r] = Some(u);
                }
            }
            let row_unit = UInt32Array::from(row_unit);
            let schema = batch.schema();
            let mut fields: Vec<Field> = schema.fields()[..n_source]
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            let mut cols: Vec<ArrayRef> = batch.columns()[..n_source].to_vec();
            for (j, a) in self.aggregates.iter().enumerate() {
                let arg = a
                    .arg
                    .as_ref()
                    .map(|_| named(format!("{AGG_ARG_PREFIX}{j}")))
                    .transpose()?;
                let by =
                    a.by.as_ref()
                        .map(|_| named(format!("{AGG_BY_PREFIX}{j}")))
                        .transpose()?;
                let per_unit = unit_aggregate(a.func, arg.as_ref(), by.as_ref(), units)?;
                let per_row = take(per_unit.as_ref(), &row_unit, None)
                    .map_err(arrow_err("broadcasting a unit aggregate"))?;
                fields.push(Field::new(
                    format!("{AGG_PREFIX}{j}"),
                    per_row.data_type().clone(),
                    true,
                ));
                cols.push(per_row);
            }
            fields.push(Field::new(ROW_INDEX, DataType::UInt64, false));
            cols.push(Arc::new(UInt64Array::from_iter_values(0..rows as u64)));
            let with_aggregates = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
                .map_err(arrow_err("unit aggregates"))?;
            let mut select = vec![column(ROW_INDEX)];
            let mut which = Vec::new();
            for (i, e) in self.rewritten.iter().enumerate() {
                if let Some(e) = e {
                    select.push(lower_expr(e, None)?.alias(format!("{STRATUM_PREFIX}{i}")));
                    which.push(i);
                }
            }
            let df = ctx
                .read_batch(with_aggregates)
                .and_then(|df| df.select(select))
                .map_err(df_err("evaluating `stratify by` over unit aggregates"))?;
            let out_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let out = df
                .collect()
                .await
                .map_err(df_err("evaluating `stratify by` over unit aggregates"))?;
            let out = concat_batches(&out_schema, &out).map_err(arrow_err("unit aggregates"))?;
            // Back to row order, whatever order DataFusion returned.
            let ids = out.column(0).as_primitive::<UInt64Type>();
            let mut position = vec![0u32; rows];
            for (k, id) in ids.values().iter().enumerate() {
                position[*id as usize] = k as u32;
            }
            let position = UInt32Array::from(position);
            for (c, &i) in which.iter().enumerate() {
                let a = take(out.column(c + 1).as_ref(), &position, None)
                    .map_err(arrow_err("unit aggregates"))?;
                evaluated.insert(i, a);
            }
        }
        (0..st.strata.len())
            .map(|i| match evaluated.remove(&i) {
                Some(a) => Ok(a),
                None => named(format!("{STRATUM_PREFIX}{i}")),
            })
            .collect()
    }
}

/// One value per unit (in `units` order) of a unit aggregate over the unit's
/// eligible rows; `arg` and `by` are per eligible row. See the module docs for
/// the exact semantics.
fn unit_aggregate(
    func: ir::Aggregate,
    arg: Option<&ArrayRef>,
    by: Option<&ArrayRef>,
    units: &[Unit],
) -> Result<ArrayRef, RunError> {
    use ir::Aggregate as A;
    let missing =
        || RunError::Statement("a unit aggregate without its argument (internal error)".into());
    let cmp_err = arrow_err("comparing values of a unit aggregate");
    if func == A::Count {
        return Ok(Arc::new(
            datafusion::arrow::array::Int64Array::from_iter_values(
                units.iter().map(|u| u.rows.len() as i64),
            ),
        ));
    }
    let x = arg.ok_or_else(missing)?;
    let chosen: Vec<Option<u32>> = match func {
        A::Min | A::Max => {
            let cmp =
                make_comparator(x.as_ref(), x.as_ref(), SortOptions::default()).map_err(cmp_err)?;
            let want = if func == A::Min {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            units
                .iter()
                .map(|u| {
                    let mut best: Option<usize> = None;
                    for &r in &u.rows {
                        if x.is_valid(r) && best.is_none_or(|b| cmp(r, b) == want) {
                            best = Some(r);
                        }
                    }
                    best.map(|r| r as u32)
                })
                .collect()
        }
        A::First | A::Last => {
            let t = by.ok_or_else(missing)?;
            let tc = make_comparator(t.as_ref(), t.as_ref(), SortOptions::default())
                .map_err(arrow_err("comparing the `by` values of first/last"))?;
            let xc =
                make_comparator(x.as_ref(), x.as_ref(), SortOptions::default()).map_err(cmp_err)?;
            let last = func == A::Last;
            // `Less` when row a is preferred to row b.
            let prefer = |a: usize, b: usize| -> Ordering {
                let by_t = match (t.is_valid(a), t.is_valid(b)) {
                    (true, true) if last => tc(b, a),
                    (true, true) => tc(a, b),
                    (va, vb) => vb.cmp(&va), // non-NULL t first
                };
                by_t.then_with(|| match (x.is_valid(a), x.is_valid(b)) {
                    (true, true) => xc(b, a), // the larger x
                    (va, vb) => vb.cmp(&va),  // non-NULL x first
                })
            };
            units
                .iter()
                .map(|u| {
                    let mut best = u.rows[0];
                    for &r in &u.rows[1..] {
                        if prefer(r, best) == Ordering::Less {
                            best = r;
                        }
                    }
                    Some(best as u32)
                })
                .collect()
        }
        A::Mode => {
            // The unit's non-NULL values in value order; the longest run of
            // equal values wins, the first (smallest) on a tie.
            let cmp =
                make_comparator(x.as_ref(), x.as_ref(), SortOptions::default()).map_err(cmp_err)?;
            units
                .iter()
                .map(|u| {
                    let mut rows: Vec<usize> =
                        u.rows.iter().copied().filter(|&r| x.is_valid(r)).collect();
                    rows.sort_by(|&a, &b| cmp(a, b));
                    let mut best: Option<(usize, usize)> = None;
                    let mut i = 0;
                    while i < rows.len() {
                        let mut j = i + 1;
                        while j < rows.len() && cmp(rows[i], rows[j]) == Ordering::Equal {
                            j += 1;
                        }
                        if best.is_none_or(|(_, n)| j - i > n) {
                            best = Some((rows[i], j - i));
                        }
                        i = j;
                    }
                    best.map(|(r, _)| r as u32)
                })
                .collect()
        }
        A::Sum | A::Avg => return sum_or_avg(func == A::Avg, x, units),
        A::Count => unreachable!("handled above"),
    };
    take(x.as_ref(), &UInt32Array::from(chosen), None).map_err(arrow_err("a unit aggregate"))
}

/// The error of a unit's `sum` (or `avg`, `name`) of integers past 64 bits.
fn sum_overflow(name: &str) -> RunError {
    RunError::Statement(format!(
        "integer overflow in `{name}(…)` of a unit; cast to a float with `* 1.0` \
         or keep the numbers smaller"
    ))
}

/// `sum(x)` / `avg(x)` per unit over the non-NULL values (NULL when there are
/// none): integers and decimals exactly, floats added in ascending order.
fn sum_or_avg(avg: bool, x: &ArrayRef, units: &[Unit]) -> Result<ArrayRef, RunError> {
    let name = if avg { "avg" } else { "sum" };
    let err = || arrow_err("sum/avg of a unit");
    let exact_scale = match x.data_type() {
        t if t.is_integer() || *t == DataType::Null => Some(0i8),
        DataType::Decimal32(_, s)
        | DataType::Decimal64(_, s)
        | DataType::Decimal128(_, s)
        | DataType::Decimal256(_, s) => Some(*s),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => None,
        other => {
            return Err(RunError::Unsupported(format!(
                "`{name}` over a column of type {other}"
            )));
        }
    };
    match exact_scale {
        Some(scale) => {
            let c = cast(x, &DataType::Decimal128(38, scale)).map_err(err())?;
            let c = c.as_primitive::<Decimal128Type>();
            let overflow = || sum_overflow(name);
            let mut sums: Vec<Option<(i128, u64)>> = Vec::with_capacity(units.len());
            for u in units {
                let mut acc: Option<(i128, u64)> = None;
                for &r in &u.rows {
                    if c.is_valid(r) {
                        let (s, n) = acc.unwrap_or((0, 0));
                        acc = Some((s.checked_add(c.value(r)).ok_or_else(overflow)?, n + 1));
                    }
                }
                sums.push(acc);
            }
            if avg {
                let scale_den = BigInt::from(10).pow(u32::from(scale.unsigned_abs()));
                let values = sums.iter().map(|s| {
                    s.map(|(sum, n)| {
                        if sum == 0 {
                            return 0.0;
                        }
                        let den = BigInt::from(n) * &scale_den;
                        let den = if scale < 0 { BigInt::from(n) } else { den };
                        let num = BigInt::from(sum.unsigned_abs());
                        let num = if scale < 0 { num * &scale_den } else { num };
                        let v = ratio_to_f64(&num, &den);
                        if sum < 0 { -v } else { v }
                    })
                });
                Ok(Arc::new(Float64Array::from_iter(values)))
            } else if scale == 0 && x.data_type().is_integer() {
                let values = sums
                    .iter()
                    .map(|s| {
                        s.map(|(v, _)| i64::try_from(v).map_err(|_| overflow()))
                            .transpose()
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Arc::new(datafusion::arrow::array::Int64Array::from(values)))
            } else {
                let a = datafusion::arrow::array::Decimal128Array::from(
                    sums.iter().map(|s| s.map(|(v, _)| v)).collect::<Vec<_>>(),
                )
                .with_precision_and_scale(38, scale)
                .map_err(err())?;
                Ok(Arc::new(a))
            }
        }
        None => {
            let c = cast(x, &DataType::Float64).map_err(err())?;
            let c = c.as_primitive::<Float64Type>();
            let values = units.iter().map(|u| {
                let mut v: Vec<f64> = u
                    .rows
                    .iter()
                    .filter(|&&r| c.is_valid(r))
                    .map(|&r| c.value(r))
                    .collect();
                if v.is_empty() {
                    return None;
                }
                v.sort_by(f64::total_cmp);
                let s: f64 = v.iter().sum();
                Some(if avg { s / v.len() as f64 } else { s })
            });
            Ok(Arc::new(Float64Array::from_iter(values)))
        }
    }
}

/// The rows of statement `j` as they come, for the statement that reads
/// them; its report (and those of the statements it read) go to `upstream`.
async fn upstream_rows(
    ctx: &SessionContext,
    program: &Program,
    j: usize,
    options: &RunOptions,
    upstream: &mut Vec<StatementReport>,
) -> Result<(RunStream, String), RunError> {
    let name = program.statements.get(j).and_then(|s| s.name.clone());
    let name = name.map_or_else(|| format!("statement {}", j + 1), |n| format!("`{n}`"));
    let out = Box::pin(run_statement_streamed(ctx, program, j, options))
        .await
        .map_err(|e| e.in_statement(j, &name))?;
    let mut found = out.upstream.clone();
    found.push(StatementReport {
        index: j,
        name: program.statements[j].name.clone(),
        report: out.report.clone(),
    });
    add_upstream(upstream, found);
    Ok((out, name))
}

/// The rows of a source: a registered table, or an earlier statement's
/// output (run here), with a name for messages.
async fn source_frame(
    ctx: &SessionContext,
    program: &Program,
    source: &ir::Source,
    upstream: &mut Vec<StatementReport>,
) -> Result<(DataFrame, String), RunError> {
    match source {
        ir::Source::Table(t) => {
            let df = ctx
                .table(TableReference::bare(t.as_str()))
                .await
                .map_err(df_err(format!("reading table `{t}`")))?;
            Ok((df, format!("table `{t}`")))
        }
        ir::Source::Statement(j) => {
            let name = program.statements.get(*j).and_then(|s| s.name.clone());
            let name = name.map_or_else(|| format!("statement {}", j + 1), |n| format!("`{n}`"));
            let out = Box::pin(run_statement(ctx, program, *j))
                .await
                .map_err(|e| e.in_statement(*j, &name))?;
            let mut found = out.upstream;
            found.push(StatementReport {
                index: *j,
                name: program.statements[*j].name.clone(),
                report: out.report,
            });
            add_upstream(upstream, found);
            let df = ctx
                .read_batches(out.batches)
                .map_err(df_err(format!("reading the output of {name}")))?;
            Ok((df, name))
        }
    }
}

/// The memory of a batch's rows: a slice counts its part of the buffers it
/// shares (`get_array_memory_size` would count every shared buffer whole —
/// 9 GiB for the 1M-row output of an earlier statement read in slices).
pub(crate) fn batch_bytes(b: &RecordBatch) -> usize {
    b.columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

impl UnitFilters {
    /// The key sets statement `st` of `program` names in `keep units in`
    /// and `exclude units in`; the reports of statements read on the way go
    /// to `upstream`.
    pub async fn read(
        ctx: &SessionContext,
        program: &Program,
        st: &Statement,
        upstream: &mut Vec<StatementReport>,
    ) -> Result<UnitFilters, RunError> {
        let mut keys = async |f: &Option<(ir::Source, strat_check::types::Column)>, verb| match f {
            None => Ok(None),
            Some((source, c)) => unit_keys(ctx, program, source, &c.name, verb, upstream)
                .await
                .map(|k| Some(Arc::new(k))),
        };
        Ok(UnitFilters {
            kept: keys(&st.keep, "keep").await?,
            excluded: keys(&st.exclude, "exclude").await?,
        })
    }
}

/// The key texts of column `name` of a source (NULLs skipped), for
/// `keep units in` or `exclude units in` (`verb`).
async fn unit_keys(
    ctx: &SessionContext,
    program: &Program,
    source: &ir::Source,
    name: &str,
    verb: &str,
    upstream: &mut Vec<StatementReport>,
) -> Result<std::collections::HashSet<Vec<u8>>, RunError> {
    let (df, source_name) = source_frame(ctx, program, source, upstream).await?;
    let context = format!("reading `{name}` of {source_name} for `{verb} units in`");
    let batches = df
        .select(vec![column(name)])
        .map_err(df_err(context.clone()))?
        .collect()
        .await
        .map_err(df_err(context.clone()))?;
    let mut keys = std::collections::HashSet::new();
    for b in &batches {
        let kc = KeyColumn::unit(b.column(0).as_ref()).map_err(|e| {
            RunError::Key(format!(
                "`{verb} units in {source_name}`: column `{name}`: {e}"
            ))
        })?;
        for row in 0..b.num_rows() {
            if kc.is_null(row) {
                continue;
            }
            let mut buf = Vec::new();
            let _ = kc.write(row, &mut buf);
            keys.insert(buf);
        }
    }
    Ok(keys)
}

/// For each stratum, the index of the first rule (with an amount) that matches
/// it, or `None` when it falls to the method.
async fn match_rules(
    ctx: &SessionContext,
    st: &Statement,
    strata_arrays: &[ArrayRef],
    reps: &[usize],
) -> Result<Vec<Option<usize>>, RunError> {
    let h = reps.len();
    if st.rules.is_empty() || h == 0 {
        return Ok(vec![None; h]);
    }
    let idx = UInt32Array::from(reps.iter().map(|&r| r as u32).collect::<Vec<_>>());
    let mut fields = vec![Field::new("idx", DataType::UInt64, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(0..h as u64))];
    let mut refs = Vec::new();
    for (i, a) in strata_arrays.iter().enumerate() {
        let name = format!("s{i}");
        fields.push(Field::new(&name, a.data_type().clone(), true));
        cols.push(take(a.as_ref(), &idx, None).map_err(arrow_err("rule values"))?);
        refs.push(column(&name));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .map_err(arrow_err("rule values"))?;
    let mut select = vec![column("idx")];
    for (j, r) in st.rules.iter().enumerate() {
        if let Some(p) = &r.predicate {
            select.push(lower_expr(p, Some(&refs))?.alias(format!("r{j}")));
        }
    }
    let out = ctx
        .read_batch(batch)
        .and_then(|df| df.select(select))
        .map_err(df_err("evaluating the rules"))?
        .collect()
        .await
        .map_err(df_err("evaluating the rules"))?;
    // truth[h][j]: rule j is true for stratum h (an `else` is always true).
    let mut truth = vec![vec![false; st.rules.len()]; h];
    for (j, r) in st.rules.iter().enumerate() {
        if r.predicate.is_none() {
            for t in &mut truth {
                t[j] = true;
            }
        }
    }
    for b in &out {
        let ids = b.column(0).as_primitive::<UInt64Type>();
        let mut c = 1;
        for (j, r) in st.rules.iter().enumerate() {
            if r.predicate.is_none() {
                continue;
            }
            let v: &BooleanArray = b.column(c).as_boolean();
            for row in 0..b.num_rows() {
                truth[ids.value(row) as usize][j] = v.is_valid(row) && v.value(row);
            }
            c += 1;
        }
    }
    Ok(truth
        .iter()
        .map(|t| {
            t.iter()
                .position(|&x| x)
                .filter(|&j| st.rules[j].amount.is_some())
        })
        .collect())
}

/// The allocation request of a sample statement (`strat_alloc`'s view of
/// its `take`, rules, method and bounds).
pub fn request(st: &Statement) -> Request {
    let rule = |a: &ir::RuleAmount| match a {
        ir::RuleAmount::All => RuleAmount::All,
        ir::RuleAmount::None => RuleAmount::None,
        ir::RuleAmount::Count(k) => RuleAmount::Count(*k),
        ir::RuleAmount::Rate(p) => RuleAmount::Rate(p.clone()),
        ir::RuleAmount::Share(p) => RuleAmount::Share(p.clone()),
    };
    Request {
        total: match &st.amount {
            ir::Amount::Count(k) => Total::Count(*k),
            ir::Amount::Fraction(p) => Total::Fraction(p.clone()),
            ir::Amount::All => Total::All,
            ir::Amount::About(p) => Total::About(p.clone()),
            ir::Amount::AboutRates => Total::Rates,
        },
        // A rule that hands its strata to the method keeps its place (so rule
        // numbers in messages match the file) but no stratum points at it.
        rules: st
            .rules
            .iter()
            .map(|r| r.amount.as_ref().map_or(RuleAmount::None, rule))
            .collect(),
        method: match &st.method {
            ir::Method::Proportional => Method::Proportional,
            ir::Method::Equal => Method::Equal,
            ir::Method::Neyman(_) => Method::Neyman,
            ir::Method::Power(q) => Method::Power(q.clone()),
        },
        min: st.min,
        max: st.max,
    }
}

/// `num / den` for positive integers, correctly rounded to the nearest f64
/// (ties to even).
pub fn ratio_to_f64(num: &BigInt, den: &BigInt) -> f64 {
    let e = num.bits() as i64 - den.bits() as i64;
    // num / den is in (2^(e-1), 2^(e+1)); scale it to 55..56 bits.
    let s = 55 - e;
    let (n, d) = if s >= 0 {
        (num << s as u64, den.clone())
    } else {
        (num.clone(), den << (-s) as u64)
    };
    let q = &n / &d;
    let sticky = &n % &d != BigInt::from(0);
    let q = u64::try_from(&q).expect("55 or 56 bits");
    let extra = 64 - q.leading_zeros() as i64 - 53;
    let mut mantissa = q >> extra;
    let rest = q & ((1u64 << extra) - 1);
    let half = 1u64 << (extra - 1);
    if rest > half || (rest == half && (sticky || mantissa & 1 == 1)) {
        mantissa += 1;
    }
    let exp = extra - s;
    // exact scaling by powers of two (a weight is far inside the normal range)
    let mut x = mantissa as f64;
    let mut k = exp;
    while k != 0 {
        let step = k.clamp(-1000, 1000);
        x *= f64::from_bits(((step + 1023) as u64) << 52);
        k -= step;
    }
    x
}

fn rat_text(r: &BigRational) -> String {
    if r.denom() == &BigInt::from(1) {
        r.numer().to_string()
    } else if r.numer() > &BigInt::from(0) {
        format!("{}", ratio_to_f64(r.numer(), r.denom()))
    } else {
        r.to_string()
    }
}

/// An allocation error with the rule values that no stratum has (a rule that
/// matches nothing is the usual reason a `share` has nothing to take from).
pub(crate) fn allocation_failed(
    error: AllocError,
    st: &Statement,
    stratum_texts: &[Vec<Option<String>>],
) -> RunError {
    RunError::Alloc {
        error,
        unmatched: unknown_rule_values(st, stratum_texts),
    }
}

/// §9: a value in a rule (`s = V`, `s in (V, …)`) that no stratum has, with
/// the closest existing value.
fn unknown_rule_values(st: &Statement, strata: &[Vec<Option<String>>]) -> Vec<String> {
    fn literal_text(v: &strat_check::Value) -> Option<String> {
        use strat_check::Value as V;
        match v {
            V::Int(i) => Some(i.to_string()),
            V::String(s) | V::Date(s) => Some(s.clone()),
            V::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    fn collect(e: &ir::Expr, out: &mut Vec<(usize, String)>) {
        use ir::ExprKind as K;
        let pair = |a: &ir::Expr, b: &ir::Expr| match (&a.kind, &b.kind) {
            (K::Stratum(i), K::Literal(v)) => literal_text(v).map(|t| (*i, t)),
            _ => None,
        };
        match &e.kind {
            K::Binary {
                op: ir::BinaryOp::Eq,
                left,
                right,
            } => out.extend(pair(left, right).or_else(|| pair(right, left))),
            K::InList { expr, list, .. } => {
                for item in list {
                    out.extend(pair(expr, item));
                }
            }
            _ => {}
        }
        for c in e.children() {
            collect(c, out);
        }
    }
    let mut warnings = Vec::new();
    for (n, rule) in st.rules.iter().enumerate() {
        let Some(p) = &rule.predicate else { continue };
        let mut found = Vec::new();
        collect(p, &mut found);
        for (i, text) in found {
            let existing: Vec<&str> = strata
                .iter()
                .filter_map(|t| t.get(i).and_then(|v| v.as_deref()))
                .collect();
            if existing.contains(&text.as_str()) {
                continue;
            }
            // Case first: a rule's "us" means the data's "US", not "AR".
            let folded = text.to_lowercase();
            let closest = existing
                .iter()
                .min_by_key(|e| {
                    (
                        strsim::levenshtein(&e.to_lowercase(), &folded),
                        strsim::levenshtein(e, &text),
                        **e,
                    )
                })
                .map_or_else(String::new, |c| {
                    format!("; the closest existing value is \"{c}\"")
                });
            let name = st.strata.get(i).map_or("", |s| s.name.as_str());
            let w = format!(
                "rule {}: no stratum has `{name}` = \"{text}\", so this part of the rule matches nothing{closest}",
                n + 1
            );
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    warnings
}

fn warning_text(w: &AllocWarning, texts: &[String], st: &Statement) -> String {
    let name = |h: usize| format!("`{}`", texts[h]);
    match w {
        AllocWarning::ZeroAllocation { strata } => format!(
            "{} allocated 0 units {} from the sample and no weight stands for {} \
             (`min 1 per stratum` keeps {}): {}",
            if strata.len() == 1 {
                "1 stratum".to_string()
            } else {
                format!("{} strata", strata.len())
            },
            if strata.len() == 1 {
                "vanishes"
            } else {
                "vanish"
            },
            if strata.len() == 1 { "it" } else { "them" },
            if strata.len() == 1 { "it" } else { "them" },
            strata
                .iter()
                .map(|&h| name(h))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AllocWarning::CountShortfall {
            stratum,
            wanted,
            available,
        } => format!(
            "stratum {}: `count {wanted}` but it holds only {available} units, so all of them are taken",
            name(*stratum)
        ),
        AllocWarning::NeymanAllZero => format!(
            "neyman: `{}` has standard deviation 0 in every stratum, so proportional allocation was used",
            match &st.method {
                ir::Method::Neyman(c) => c.name.as_str(),
                _ => "the column",
            }
        ),
        AllocWarning::UnallocatedRemainder { remainder } => format!(
            "the rules leave an expected {} units that no method stratum can take, so the expected \
             sample size is below the `take about` percentage; add `else => proportional` to use them",
            rat_text(remainder)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_of_a_batch_counts_its_share_of_the_buffers() {
        let names: Vec<String> = (0..100_000).map(|i| format!("member {i}")).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(names))]).expect("batch");
        let whole = batch_bytes(&batch);
        let slices: usize = (0..100)
            .map(|i| batch_bytes(&batch.slice(i * 1000, 1000)))
            .sum();
        // The 100 slices hold the batch once (get_array_memory_size: 100 times).
        assert!(slices <= whole + whole / 10, "{slices} vs {whole}");
        assert!(batch.slice(0, 1000).get_array_memory_size() > whole / 2);
    }

    #[test]
    fn ratio_to_f64_is_correctly_rounded() {
        let r = |a: i64, b: i64| ratio_to_f64(&BigInt::from(a), &BigInt::from(b));
        assert_eq!(r(3, 1), 3.0);
        assert_eq!(r(10, 3), 10.0 / 3.0);
        assert_eq!(r(1000, 7), 1000.0 / 7.0);
        assert_eq!(r(1, 3), 1.0 / 3.0);
        assert_eq!(r(1, 1), 1.0);
        assert_eq!(r(7, 2), 3.5);
        for a in 1..200i64 {
            for b in 1..60i64 {
                assert_eq!(r(a, b), a as f64 / b as f64, "{a}/{b}");
            }
        }
        let big = BigInt::from(1u64 << 62) * BigInt::from(1u64 << 62) + BigInt::from(1);
        assert_eq!(ratio_to_f64(&big, &BigInt::from(3)), 2f64.powi(124) / 3.0);
        // ties to even: 2^53 + 1 is halfway between 2^53 and 2^53 + 2.
        assert_eq!(
            ratio_to_f64(&BigInt::from((1u64 << 53) + 1), &BigInt::from(1)),
            2f64.powi(53)
        );
        assert_eq!(
            ratio_to_f64(&BigInt::from((1u64 << 53) + 3), &BigInt::from(1)),
            2f64.powi(53) + 4.0
        );
    }
}
