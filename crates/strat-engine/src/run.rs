//! Running one `sample` statement natively (LANGUAGE.md §4.1, §5, §6, §7).
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
//! # Output order (§7)
//!
//! Stratum order (§5.3), then draw order (ascending `(r, key bytes)`), then the
//! row key of §6 (bytes; rows with equal row keys are identical).
//!
//! # Not supported yet
//!
//! `split` and unit aggregates in `stratify by`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray, UInt32Array,
    UInt64Array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Float64Type, Int64Type, Schema, SchemaRef, UInt64Type,
};
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{DataFrame, SessionContext};
use strat_alloc::{
    AllocError, AllocWarning, BigInt, BigRational, Method, Request, RuleAmount, StratumInput,
    Target, Total,
};
use strat_check::ir::{self, Program, Statement};

use crate::draw::Drawer;
use crate::keys::{KeyColumn, RowKeys, is_unit_key_type, stratum_text};
use crate::lower::{LowerError, column, lower_expr};

/// What a run produced: the output rows and the report.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub batches: Vec<RecordBatch>,
    pub schema: SchemaRef,
    pub report: Report,
}

/// The per-run report (what a user reads next to the sample).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The non-empty strata in stratum order (§5.3).
    pub strata: Vec<StratumReport>,
    /// `N`: eligible units.
    pub total_population: u64,
    /// Selected units (not rows).
    pub total_selected: u64,
    /// Eligible rows whose unit column is NULL (left out of the population).
    pub null_units: u64,
    /// Units removed by `exclude units in` (before strata are counted).
    pub excluded_units: u64,
    pub seed: u64,
    /// Data-dependent warnings (§9).
    pub warnings: Vec<String>,
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
    /// `n_h` (exact) or `p_h` (Bernoulli).
    pub target: Target,
    /// Units selected.
    pub selected: u64,
    /// The design weight `N_h / n_h` or `1 / p_h`; 0 when the stratum gets
    /// nothing (`n_h = 0` or `p_h = 0`), as no unit carries it.
    pub weight: f64,
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
    /// The neyman column differs between the rows of one unit.
    NeymanNotConstant {
        column: String,
        unit: String,
    },
    /// The allocation cannot be made.
    Alloc(AllocError),
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
            RunError::NeymanNotConstant { column, unit } => write!(
                f,
                "neyman: `{column}` differs between the rows of unit {unit}; the neyman column \
                 must be constant within a unit (use a per-unit column, or another method)"
            ),
            RunError::Alloc(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<LowerError> for RunError {
    fn from(e: LowerError) -> Self {
        RunError::Lower(e)
    }
}

impl From<AllocError> for RunError {
    fn from(e: AllocError) -> Self {
        RunError::Alloc(e)
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
    Ok(match a.data_type() {
        D::Null => vec![SVal::Null; n],
        D::Dictionary(_, v) => {
            let flat = cast(a, v).map_err(err())?;
            stratum_values(&flat, labels)?
        }
        D::Int8 | D::Int16 | D::Int32 | D::Int64 => {
            let c = cast(a, &D::Int64).map_err(err())?;
            let c = c.as_primitive::<Int64Type>();
            (0..n)
                .map(|i| {
                    if valid(i) {
                        SVal::Int(i128::from(c.value(i)))
                    } else {
                        SVal::Null
                    }
                })
                .collect()
        }
        D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => {
            let c = cast(a, &D::UInt64).map_err(err())?;
            let c = c.as_primitive::<UInt64Type>();
            (0..n)
                .map(|i| {
                    if valid(i) {
                        SVal::Int(i128::from(c.value(i)))
                    } else {
                        SVal::Null
                    }
                })
                .collect()
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
            (0..n)
                .map(|i| {
                    if valid(i) {
                        SVal::Bool(c.value(i))
                    } else {
                        SVal::Null
                    }
                })
                .collect()
        }
        D::Date32 | D::Date64 | D::Timestamp(..) => {
            let days = |v: i64| match a.data_type() {
                D::Date64 => v.div_euclid(86_400_000),
                _ => v,
            };
            let c = cast(a, &D::Int64).map_err(err())?;
            let c = c.as_primitive::<Int64Type>();
            (0..n)
                .map(|i| {
                    if valid(i) {
                        SVal::Time(days(c.value(i)))
                    } else {
                        SVal::Null
                    }
                })
                .collect()
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
    draw: u64,
    rows: Vec<usize>,
}

/// Runs statement `index` of `program`: its tables must be registered on `ctx`
/// under their names (as [`crate::compile`] does).
pub async fn run_statement(
    ctx: &SessionContext,
    program: &Program,
    index: usize,
) -> Result<RunOutput, RunError> {
    let st = program.statements.get(index).ok_or_else(|| {
        RunError::Statement(format!(
            "there is no statement {index}; the program has {}",
            program.statements.len()
        ))
    })?;
    if st.kind != ir::Kind::Sample {
        return Err(RunError::Unsupported("`split`".into()));
    }
    if st.has_aggregates() {
        return Err(RunError::Unsupported(
            "a unit aggregate in `stratify by`".into(),
        ));
    }
    let excluded_keys = match &st.exclude {
        None => None,
        Some((source, c)) => Some(exclusion_keys(ctx, program, source, &c.name).await?),
    };
    if st.output.iter().any(|o| matches!(o, ir::Output::SplitName)) {
        return Err(RunError::Unsupported("`_split` in a sample".into()));
    }

    // 1. Eligible rows, source columns and stratum values, through DataFusion.
    let batch = read_input(ctx, program, st).await?;
    let n_in = st.input.len();
    let input: Vec<ArrayRef> = batch.columns()[..n_in].to_vec();
    let strata_arrays: Vec<ArrayRef> = batch.columns()[n_in..].to_vec();
    let rows = batch.num_rows();
    let svals: Vec<Vec<SVal>> = strata_arrays
        .iter()
        .zip(&st.strata)
        .map(|(a, s)| stratum_values(a, s.bucket_labels.as_deref()))
        .collect::<Result<_, _>>()?;
    let text_columns: Vec<TextColumn> = strata_arrays
        .iter()
        .map(TextColumn::new)
        .collect::<Result<_, _>>()?;
    let tuple = |row: usize| -> Vec<SVal> { svals.iter().map(|c| c[row].clone()).collect() };
    let texts =
        |row: usize| -> Vec<Option<String>> { text_columns.iter().map(|c| c.text(row)).collect() };

    // 2. Units and their draws.
    let drawer = Drawer::new(st.seed);
    let mut units: Vec<Unit> = Vec::new();
    let mut null_units = 0u64;
    {
        let mut by_key: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut buf = Vec::with_capacity(64);
        let mut add = |row: usize, buf: &Vec<u8>, units: &mut Vec<Unit>| match by_key.get(buf) {
            Some(&u) => units[u].rows.push(row),
            None => {
                by_key.insert(buf.clone(), units.len());
                units.push(Unit {
                    key: buf.clone(),
                    draw: drawer.draw(buf),
                    rows: vec![row],
                });
            }
        };
        match &st.unit {
            Some(c) => {
                let i = input_index(st, &c.name)?;
                let kc = KeyColumn::unit(input[i].as_ref())
                    .map_err(|e| RunError::Key(format!("unit `{}`: {e}", c.name)))?;
                for row in 0..rows {
                    if kc.is_null(row) {
                        null_units += 1;
                        continue;
                    }
                    buf.clear();
                    let _ = kc.write(row, &mut buf);
                    add(row, &buf, &mut units);
                }
            }
            None => {
                let rk = RowKeys::new(&input).map_err(|e| {
                    RunError::Key(format!(
                        "without `unit`, every row is keyed by all its columns, but {e}; add `unit COLUMN`"
                    ))
                })?;
                for row in 0..rows {
                    rk.write(row, &mut buf);
                    add(row, &buf, &mut units);
                }
            }
        }
    }

    // Exclusion (§4.1): before strata are counted.
    let mut excluded_units = 0u64;
    if let Some(keys) = &excluded_keys {
        let before = units.len();
        units.retain(|u| !keys.contains(&u.key));
        excluded_units = (before - units.len()) as u64;
    }

    // 3. The span check: the smallest spanning unit key is reported, with the
    //    first and last of its strata in stratum order (independent of row order).
    if !svals.is_empty() {
        let mut worst: Option<(&Unit, usize, usize)> = None;
        for u in &units {
            let (mut lo, mut hi) = (u.rows[0], u.rows[0]);
            for &r in &u.rows[1..] {
                if tuple(r) < tuple(lo) {
                    lo = r;
                }
                if tuple(r) > tuple(hi) {
                    hi = r;
                }
            }
            if tuple(lo) != tuple(hi) && worst.is_none_or(|(w, _, _)| u.key < w.key) {
                worst = Some((u, lo, hi));
            }
        }
        if let Some((u, lo, hi)) = worst {
            return Err(RunError::UnitSpansStrata {
                unit_column: st
                    .unit
                    .as_ref()
                    .map_or_else(String::new, |c| c.name.clone()),
                unit: String::from_utf8_lossy(&u.key).into_owned(),
                first: stratum_text(&texts(lo)),
                second: stratum_text(&texts(hi)),
            });
        }
    }

    // 4. Strata in stratum order, units in draw order.
    let mut groups: BTreeMap<Vec<SVal>, Vec<usize>> = BTreeMap::new();
    for (i, u) in units.iter().enumerate() {
        groups.entry(tuple(u.rows[0])).or_default().push(i);
    }
    let mut strata: Vec<Vec<usize>> = groups.into_values().collect();
    for members in &mut strata {
        members.sort_by(|&a, &b| draw_order(&units[a], &units[b]));
    }
    let reps: Vec<usize> = strata.iter().map(|m| units[m[0]].rows[0]).collect();
    let stratum_texts: Vec<Vec<Option<String>>> = reps.iter().map(|&r| texts(r)).collect();
    let stratum_strings: Vec<String> = stratum_texts.iter().map(|t| stratum_text(t)).collect();

    // 5. Rules, S_h, allocation.
    let matched = match_rules(ctx, st, &strata_arrays, &reps).await?;
    let sds = match &st.method {
        ir::Method::Neyman(c) if matched.iter().any(Option::is_none) => {
            let a = &input[input_index(st, &c.name)?];
            Some(neyman_sds(a, &c.name, &units, &strata)?)
        }
        _ => None,
    };
    let inputs: Vec<StratumInput> = strata
        .iter()
        .enumerate()
        .map(|(h, m)| StratumInput {
            units: m.len() as u64,
            start: drawer.stratum_start(&stratum_strings[h]),
            sd: sds.as_ref().and_then(|s| s[h]),
            rule: matched[h],
        })
        .collect();
    let request = request(st);
    let allocation = strat_alloc::allocate(&inputs, &request)?;

    // 6. Selection.
    let mut selected: Vec<(usize, f64)> = Vec::new(); // (unit, weight) in output order
    let mut reports = Vec::with_capacity(strata.len());
    for (h, members) in strata.iter().enumerate() {
        let n = members.len() as u64;
        let target = &allocation.targets[h];
        let (chosen, weight): (Vec<usize>, f64) = match target {
            Target::Exact(k) => {
                let k = (*k).min(n);
                let w = if k == 0 { 0.0 } else { n as f64 / k as f64 };
                (members[..k as usize].to_vec(), w)
            }
            Target::Probability(p) => {
                let t = strat_alloc::threshold(p);
                let chosen = members
                    .iter()
                    .copied()
                    .filter(|&u| t.is_none_or(|t| units[u].draw < t))
                    .collect();
                let w = if p.numer() == &BigInt::from(0) {
                    0.0
                } else {
                    ratio_to_f64(p.denom(), p.numer())
                };
                (chosen, w)
            }
        };
        reports.push(StratumReport {
            values: stratum_texts[h]
                .iter()
                .map(|v| v.clone().unwrap_or_else(|| "∅".into()))
                .collect(),
            text: stratum_strings[h].clone(),
            population: n,
            target: target.clone(),
            selected: chosen.len() as u64,
            weight,
        });
        selected.extend(chosen.into_iter().map(|u| (u, weight)));
    }

    // 7. Output rows: stratum order, draw order, row key.
    // Two-phase sampling (§7): times the source statement's `_weight`.
    let source_weight: Option<Float64Array> = match &st.source {
        ir::Source::Statement(j) if program.statements[*j].output.contains(&ir::Output::Weight) => {
            let a = &input[input_index(st, "_weight")?];
            let a = cast(a, &DataType::Float64).map_err(arrow_err("the source's `_weight`"))?;
            Some(a.as_primitive::<Float64Type>().clone())
        }
        _ => None,
    };
    let row_keys = RowKeys::new(&input).ok();
    let mut order: Vec<u32> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    let mut row_strata: Vec<usize> = Vec::new();
    let stratum_of_unit: HashMap<usize, usize> = strata
        .iter()
        .enumerate()
        .flat_map(|(h, m)| m.iter().map(move |&u| (u, h)))
        .collect();
    for &(u, w) in &selected {
        let mut unit_rows = units[u].rows.clone();
        if let (Some(rk), true) = (&row_keys, unit_rows.len() > 1) {
            let mut keyed: Vec<(Vec<u8>, usize)> = unit_rows
                .iter()
                .map(|&r| {
                    let mut b = Vec::new();
                    rk.write(r, &mut b);
                    (b, r)
                })
                .collect();
            keyed.sort();
            unit_rows = keyed.into_iter().map(|(_, r)| r).collect();
        } else {
            unit_rows.sort_unstable();
        }
        for r in unit_rows {
            order.push(
                u32::try_from(r)
                    .map_err(|_| RunError::Unsupported("more than 2^32 eligible rows".into()))?,
            );
            weights.push(source_weight.as_ref().map_or(w, |s| w * s.value(r)));
            row_strata.push(stratum_of_unit[&u]);
        }
    }
    let indices = UInt32Array::from(order);
    let mut fields = Vec::with_capacity(st.output.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(st.output.len());
    for o in &st.output {
        let array: ArrayRef = match o {
            ir::Output::Column(c) => {
                take(input[input_index(st, &c.name)?].as_ref(), &indices, None)
                    .map_err(arrow_err("output"))?
            }
            ir::Output::Stratum { index, .. } => {
                take(strata_arrays[*index].as_ref(), &indices, None).map_err(arrow_err("output"))?
            }
            ir::Output::Weight => Arc::new(Float64Array::from(weights.clone())),
            ir::Output::StratumText => Arc::new(StringArray::from_iter_values(
                row_strata.iter().map(|&h| stratum_strings[h].as_str()),
            )),
            ir::Output::SplitName => unreachable!("rejected above"),
        };
        fields.push(Field::new(o.name(), array.data_type().clone(), true));
        columns.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let out = RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(indices.len())),
    )
    .map_err(arrow_err("building the output"))?;

    // 8. Report.
    let mut warnings = Vec::new();
    if let (true, Some(c)) = (null_units > 0, &st.unit) {
        warnings.push(format!(
            "{null_units} eligible row(s) have a NULL `{}` and belong to no unit; they are left out",
            c.name
        ));
    }
    for w in &allocation.warnings {
        warnings.push(warning_text(w, &stratum_strings, st));
    }
    warnings.extend(unknown_rule_values(st, &stratum_texts));
    let report = Report {
        total_population: units.len() as u64,
        total_selected: selected.len() as u64,
        strata: reports,
        null_units,
        excluded_units,
        seed: st.seed,
        warnings,
    };
    Ok(RunOutput {
        batches: vec![out],
        schema,
        report,
    })
}

fn draw_order(a: &Unit, b: &Unit) -> Ordering {
    a.draw.cmp(&b.draw).then_with(|| a.key.cmp(&b.key))
}

fn input_index(st: &Statement, name: &str) -> Result<usize, RunError> {
    st.input.iter().position(|c| c.name == name).ok_or_else(|| {
        RunError::Statement(format!(
            "the source has no column `{name}` (internal error)"
        ))
    })
}

const STRATUM_PREFIX: &str = "\u{1}strat_stratum_";

/// The rows of a source: a registered table, or an earlier statement's
/// output (run here), with a name for messages.
async fn source_frame(
    ctx: &SessionContext,
    program: &Program,
    source: &ir::Source,
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
            let out = Box::pin(run_statement(ctx, program, *j)).await?;
            let df = ctx
                .read_batches(out.batches)
                .map_err(df_err(format!("reading the output of {name}")))?;
            Ok((df, name))
        }
    }
}

async fn read_input(
    ctx: &SessionContext,
    program: &Program,
    st: &Statement,
) -> Result<RecordBatch, RunError> {
    let (mut df, name) = source_frame(ctx, program, &st.source).await?;
    let context = format!("reading {name}");
    if let Some(f) = &st.filter {
        df = df
            .filter(lower_expr(f, None)?)
            .map_err(df_err("evaluating `where`"))?;
    }
    let mut select: Vec<Expr> = st.input.iter().map(|c| column(&c.name)).collect();
    for (i, s) in st.strata.iter().enumerate() {
        select.push(lower_expr(&s.expr, None)?.alias(format!("{STRATUM_PREFIX}{i}")));
    }
    let df = df
        .select(select)
        .map_err(df_err("evaluating `stratify by`"))?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(df_err(context.clone()))?;
    concat_batches(&schema, &batches).map_err(arrow_err(&context))
}

/// The key texts of column `name` of a source (NULLs skipped).
async fn exclusion_keys(
    ctx: &SessionContext,
    program: &Program,
    source: &ir::Source,
    name: &str,
) -> Result<std::collections::HashSet<Vec<u8>>, RunError> {
    let (df, source_name) = source_frame(ctx, program, source).await?;
    let context = format!("reading `{name}` of {source_name} for `exclude units in`");
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
                "`exclude units in {source_name}`: column `{name}`: {e}"
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

fn request(st: &Statement) -> Request {
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

/// `S_h` per stratum: the population standard deviation of the column over the
/// stratum's units with a non-NULL value; `None` for fewer than two values.
/// Integers and decimals use exact sums.
fn neyman_sds(
    a: &ArrayRef,
    name: &str,
    units: &[Unit],
    strata: &[Vec<usize>],
) -> Result<Vec<Option<f64>>, RunError> {
    #[derive(PartialEq)]
    enum V {
        Null,
        Exact(i128),
        Float(f64),
    }
    let (values, scale): (Vec<V>, i8) = match a.data_type() {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let c = cast(a, &DataType::Float64).map_err(arrow_err("neyman"))?;
            let c = c.as_primitive::<Float64Type>();
            let v = (0..c.len())
                .map(|i| {
                    if c.is_valid(i) {
                        V::Float(c.value(i))
                    } else {
                        V::Null
                    }
                })
                .collect();
            (v, 0)
        }
        t if t.is_integer() || matches!(t, DataType::Null) => {
            let c = cast(a, &DataType::Decimal128(38, 0)).map_err(arrow_err("neyman"))?;
            let c = c.as_primitive::<Decimal128Type>();
            let v = (0..c.len())
                .map(|i| {
                    if c.is_valid(i) {
                        V::Exact(c.value(i))
                    } else {
                        V::Null
                    }
                })
                .collect();
            (v, 0)
        }
        DataType::Decimal32(_, s)
        | DataType::Decimal64(_, s)
        | DataType::Decimal128(_, s)
        | DataType::Decimal256(_, s) => {
            let c = cast(a, &DataType::Decimal128(38, *s)).map_err(arrow_err("neyman"))?;
            let c = c.as_primitive::<Decimal128Type>();
            let v = (0..c.len())
                .map(|i| {
                    if c.is_valid(i) {
                        V::Exact(c.value(i))
                    } else {
                        V::Null
                    }
                })
                .collect();
            (v, *s)
        }
        other => {
            return Err(RunError::Unsupported(format!(
                "neyman over a column of type {other}"
            )));
        }
    };
    let mut out = Vec::with_capacity(strata.len());
    for members in strata {
        let mut per_unit = Vec::new();
        for &u in members {
            let first = &values[units[u].rows[0]];
            if units[u].rows.iter().any(|&r| values[r] != *first) {
                return Err(RunError::NeymanNotConstant {
                    column: name.to_string(),
                    unit: String::from_utf8_lossy(&units[u].key).into_owned(),
                });
            }
            if *first != V::Null {
                per_unit.push(first);
            }
        }
        if per_unit.len() < 2 {
            out.push(None);
            continue;
        }
        let n = per_unit.len();
        let sd = if per_unit.iter().any(|v| matches!(v, V::Float(_))) {
            let xs: Vec<f64> = per_unit
                .iter()
                .map(|v| match v {
                    V::Float(f) => *f,
                    _ => 0.0,
                })
                .collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            (xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64).sqrt()
        } else {
            let (mut s, mut ss) = (BigInt::from(0), BigInt::from(0));
            for v in &per_unit {
                if let V::Exact(x) = v {
                    let x = BigInt::from(*x);
                    ss += &x * &x;
                    s += x;
                }
            }
            let n = BigInt::from(n);
            // var = (n Σx² − (Σx)²) / (n² 10^(2 scale))
            let num = &n * ss - &s * &s;
            let den = &n * &n * BigInt::from(10).pow(2 * u32::from(scale.unsigned_abs()));
            if num == BigInt::from(0) {
                0.0
            } else {
                ratio_to_f64(&num, &den).sqrt()
            }
        };
        out.push(Some(sd));
    }
    Ok(out)
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
            let closest = existing
                .iter()
                .min_by_key(|e| (edit_distance(e, &text), **e))
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

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn warning_text(w: &AllocWarning, texts: &[String], st: &Statement) -> String {
    let name = |h: usize| format!("`{}`", texts[h]);
    match w {
        AllocWarning::ZeroAllocation { strata } => format!(
            "{} stratum/strata allocated 0 units vanish from the sample and no weight stands for them \
             (`min 1 per stratum` keeps them): {}",
            strata.len(),
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
