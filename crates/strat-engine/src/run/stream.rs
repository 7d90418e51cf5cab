//! strat's one plan: two passes over a statement's rows, holding 16
//! bytes per unit and the selected rows — never the table (issues 6 and
//! 13). Every statement runs here; [`rows`] says where the rows come from
//! (a table, an earlier statement's output spooled to a file, and with unit
//! aggregates the rows in unit order, aggregated a run of units at a time).
//!
//! # Plan
//!
//! 1. **Counting pass.** DataFusion reads only the unit column (without
//!    `unit`, every source column: the row is the unit, keyed by its row key
//!    text, spec §6.1) and the stratum expressions of the eligible rows
//!    (`where` applied, its columns read and dropped), one stream per
//!    partition, each consumed by its own task. Per row: the unit's key text
//!    (§6), its draw `r` (md5, no allocation, the batch's new units 8 at a
//!    time), a second 64-bit hash `c` of the unit (mixed column by column
//!    from the values, equal for equal key texts, keyed anew on every run:
//!    [`KeyHasher`]) and the row's stratum (Arrow's row format of the stratum
//!    values, mapped to a stratum id); a row whose unit value equals the
//!    previous row's skips all but the stratum. A unit is remembered as 16
//!    bytes: `r` and `c`'s top 40 bits with the stratum id in the low 24 —
//!    appended, without a lock or a hash probe, to the task's bucket for the
//!    top 10 bits of `r`. At the end each task sorts its buckets by draw and
//!    drops repeats; merging the tasks' buckets walks the units in draw order
//!    (ranges of buckets on every thread: units of different buckets never
//!    tie). Past the unit budget a task writes its buckets to disk as a
//!    sorted run, and the runs are merged instead. Two different key texts
//!    are taken for one unit only if both md5's first 64 bits and the keyed
//!    40-bit hash agree (chance about `N² / 2^105` per run, and no input can
//!    be built to force it, since the hash key is secret and new on every
//!    run).
//! 2. **Allocation**: strata in stratum order, rules matched once per stratum, [`strat_alloc::allocate`];
//!    neyman's `S_h` from the counting pass's exact sums of its rows' values
//!    when every unit has one row, else from a grouping of the rows by unit
//!    ([`neyman`]).
//! 3. **Selection** from the units in draw order, without keys: per stratum
//!    the first `n_h` (exact), those below the draw threshold (Bernoulli), or
//!    where each part's run of draws starts (splits).
//! 4. **Rows.** A sample without `unit` is taken from the candidate rows
//!    its counting pass kept when they hold every selected unit
//!    ([`candidates`]); otherwise a sample's materialising pass: DataFusion
//!    reads the source columns again; a row is kept iff its unit is selected (looked up by
//!    `c`, confirmed by `r`: a row whose `c` is no selected unit's — nearly
//!    every row of a sample — is dropped without writing its key text); the kept rows are put in §7 order (by unit key
//!    where draws tie, by row key within a unit), and the units found again
//!    must be the units selected: their number and a checksum of their
//!    draws and strata, else the table changed during the run (an error). A
//!    split keeps every row: [`ordered`] reads them again, places each by
//!    its part, stratum and draw, and spreads them over bucket files by
//!    place (a distribution sort), each bucket ordered in memory.
//!
//! What units' draws and hashes cannot decide, key texts do, from one more
//! pass over just the rows concerned ([`again`]): units whose draws tie at a
//! selection or split boundary (ordered by key text), and the first unit in
//! draw order met in two strata (E0201 names it).

use std::collections::{BinaryHeap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;

use datafusion::arrow::array::new_empty_array;
use datafusion::arrow::compute::concat;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{MemoryPool, MemoryReservation};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};

use datafusion::execution::{DiskManager, SpillFile};

use crate::keys::{KeyError, KeyHasher, compare_row_key_column};
use crate::moments::Moments;
use crate::parallel::map_on_threads;
use crate::progress::{self, Phase, Progress};

/// A spilled run of units.
type RunFile = Arc<dyn SpillFile>;

use super::*;

mod again;
mod as_of;
mod candidates;
mod neyman;
mod ordered;
mod rows;
mod unit_groups;
mod walk;

use candidates::{MetRow, MetUnit};
pub(super) use rows::{Columns, Rows};
use walk::{Assign, Walk, unit_check};

/// A unit's entry.
const ENTRY_BYTES: usize = std::mem::size_of::<UnitEntry>();

/// Units are bucketed by the top `BUCKET_BITS` bits of their draw.
const BUCKET_BITS: u32 = 10;
const BUCKETS: usize = 1 << BUCKET_BITS;
/// A unit's entry holds its stratum id in this many low bits.
const STRATUM_BITS: u32 = 24;
const MAX_STRATA: usize = 1 << STRATUM_BITS;

/// The key sets of `keep units in` and `exclude units in` (§4.4): a unit is
/// counted iff its key is in `kept` (when there is one) and not in `excluded`.
#[derive(Clone, Debug, Default)]
pub struct UnitFilters {
    pub kept: Option<Arc<HashSet<Vec<u8>>>>,
    pub excluded: Option<Arc<HashSet<Vec<u8>>>>,
}

/// Where a row's unit key comes from: a `unit` column, or (without `unit`)
/// all the source columns, the first `n` of the batch (spec §6.1).
#[derive(Clone, Copy, Debug)]
enum KeyOf {
    Unit(usize),
    Row(usize),
}

impl KeyOf {
    /// The same key when its columns come first (the arguments of a UDF).
    fn leading(self) -> KeyOf {
        match self {
            KeyOf::Unit(_) => KeyOf::Unit(0),
            KeyOf::Row(n) => KeyOf::Row(n),
        }
    }
}

/// The columns of a statement's unit key: the `unit` column, or every
/// source column.
fn key_columns(st: &Statement) -> Vec<Expr> {
    match &st.unit {
        Some(unit) => vec![column(&unit.name)],
        None => st.input.iter().map(|c| column(&c.name)).collect(),
    }
}

impl UnitFilters {
    /// Whether `keep units in` or `exclude units in` drops the unit of key text `key`.
    pub fn drops(&self, key: &[u8]) -> bool {
        self.kept.as_ref().is_some_and(|k| !k.contains(key))
            || self.excluded.as_ref().is_some_and(|e| e.contains(key))
    }
}

/// A batch's unit keys, prepared for writing key texts row by row.
enum UnitKeys {
    Unit(KeyColumn),
    Row(RowKeys),
    /// A unit column with no value at all (CSV inference gives it type
    /// Null): every row's unit is NULL, so no row is eligible (spec §4.1).
    Null,
}

impl UnitKeys {
    fn new(of: KeyOf, columns: &[ArrayRef]) -> Result<Self, KeyError> {
        Ok(match of {
            KeyOf::Unit(i) if columns[i].data_type() == &DataType::Null => UnitKeys::Null,
            KeyOf::Unit(i) => UnitKeys::Unit(KeyColumn::unit(columns[i].as_ref())?),
            KeyOf::Row(n) => UnitKeys::Row(RowKeys::new(&columns[..n])?),
        })
    }

    /// A row without a unit (a NULL unit value; a row is always its own).
    fn is_null(&self, row: usize) -> bool {
        match self {
            UnitKeys::Unit(k) => k.is_null(row),
            UnitKeys::Row(_) => false,
            UnitKeys::Null => true,
        }
    }

    /// Whether two rows certainly have the same unit, decided without
    /// writing key texts (`false` when unsure).
    fn same_value(&self, a: usize, b: usize) -> bool {
        match self {
            UnitKeys::Unit(k) => k.same_value(a, b),
            UnitKeys::Row(_) | UnitKeys::Null => false,
        }
    }

    /// The keyed hashes of the batch's units, one per row, from their
    /// values (equal key texts, equal hashes: [`KeyColumn::hash_into`]);
    /// [`KeyHasher::top40`] of one is what [`UnitEntry::tag`] holds.
    fn hash_into(&self, keyed: &KeyHasher, rows: usize, hashes: &mut Vec<u64>) {
        keyed.start(rows, hashes);
        match self {
            UnitKeys::Unit(k) => k.hash_into(keyed, hashes),
            UnitKeys::Row(k) => k.hash_into(keyed, hashes),
            UnitKeys::Null => {}
        }
    }

    /// Appends the unit's key text of a row that is not [`Self::is_null`].
    fn write(&self, row: usize, buf: &mut Vec<u8>) {
        match self {
            UnitKeys::Unit(k) => {
                let _ = k.write(row, buf);
            }
            UnitKeys::Row(k) => k.append(row, buf),
            UnitKeys::Null => {}
        }
    }
}

/// Where the unit key is among a statement's source columns.
fn key_of(st: &Statement) -> Result<KeyOf, RunError> {
    match &st.unit {
        Some(unit) => Ok(KeyOf::Unit(input_index(st, &unit.name)?)),
        None => Ok(KeyOf::Row(st.input.len())),
    }
}

/// The error of a table whose rows have no row key text (spec §6.1).
fn row_key_error(e: KeyError) -> RunError {
    RunError::Key(format!(
        "without `unit`, every row is keyed by all its columns, but {e}; add `unit COLUMN`"
    ))
}

/// One unit of the counting pass: its draw, and the top 40 bits of its keyed
/// hash with its stratum id in the low 24 bits. Equal iff `r` and the hash
/// bits agree (the stratum is the value).
#[derive(Clone, Copy, Debug)]
struct UnitEntry {
    r: u64,
    tag: u64,
}

impl UnitEntry {
    fn stratum(self) -> usize {
        (self.tag & (MAX_STRATA as u64 - 1)) as usize
    }
    fn hash40(self) -> u64 {
        self.tag >> STRATUM_BITS
    }
    /// The order of units: by draw, then keyed hash.
    fn order(self) -> (u64, u64) {
        (self.r, self.hash40())
    }
}

impl PartialEq for UnitEntry {
    fn eq(&self, other: &Self) -> bool {
        self.r == other.r && self.hash40() == other.hash40()
    }
}
impl Eq for UnitEntry {}
impl Hash for UnitEntry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.r);
    }
}

/// A hasher for values that already are uniform hashes, though not in every
/// bit: a shard's draws share their top bits and a 48-bit hash has none, while
/// the hash table takes its control tags from the top 7 bits and its buckets
/// from the low ones. One multiply spreads them over all 64 bits.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        (self.0 ^ (self.0 >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 ^= x;
    }
}

/// One task's units, bucketed by the top bits of their draw: appended as met
/// (a unit with rows apart is appended more than once), sorted by draw and
/// its repeats dropped when compacted.
struct Buckets {
    lists: Vec<Vec<UnitEntry>>,
}

impl Buckets {
    fn new() -> Self {
        Buckets {
            lists: vec![Vec::new(); BUCKETS],
        }
    }

    fn push(&mut self, e: UnitEntry) {
        self.lists[(e.r >> (64 - BUCKET_BITS)) as usize].push(e);
    }

    /// Memory held, by capacity.
    fn bytes(&self) -> usize {
        self.lists.iter().map(Vec::capacity).sum::<usize>() * ENTRY_BYTES
    }

    fn is_empty(&self) -> bool {
        self.lists.iter().all(Vec::is_empty)
    }

    /// Sorts every bucket and drops repeated entries (a unit met in two
    /// strata keeps one entry for each: the walk reports it).
    fn compact(&mut self) {
        self.lists.iter_mut().for_each(sort_units);
    }
}

/// Sorts units by draw (then keyed hash, then stratum) and keeps one entry
/// per unit and stratum.
fn sort_units(list: &mut Vec<UnitEntry>) {
    list.sort_unstable_by_key(|e| (e.r, e.tag));
    list.dedup_by(|later, kept| (later.r, later.tag) == (kept.r, kept.tag));
}

/// The units of the counting tasks, each task's buckets sorted and without
/// repeats: `[task][bucket]`.
struct SortedUnits(Vec<Vec<Vec<UnitEntry>>>);

impl SortedUnits {
    /// Calls `f` once per unit of some buckets in draw order (merging the
    /// tasks' buckets), until a unit's entries name two strata. Units of
    /// different buckets have different draws, so ranges of buckets can be
    /// walked at once, each on its own thread.
    fn for_each_in(&self, buckets: std::ops::Range<usize>, f: impl FnMut(UnitEntry)) -> Walked {
        let mut walk = OncePerUnit::new(f);
        let mut heads: Vec<&[UnitEntry]> = Vec::with_capacity(self.0.len());
        for b in buckets {
            heads.clear();
            heads.extend(
                self.0
                    .iter()
                    .map(|t| t[b].as_slice())
                    .filter(|l| !l.is_empty()),
            );
            if !merge_sorted(&mut heads, UnitEntry::order, |e| walk.feed(e)) {
                break;
            }
        }
        walk.finish()
    }
}

/// The buckets split into one range per thread.
fn bucket_ranges(threads: usize) -> Vec<std::ops::Range<usize>> {
    let chunk = BUCKETS.div_ceil(threads.clamp(1, BUCKETS));
    (0..BUCKETS)
        .step_by(chunk)
        .map(|a| a..(a + chunk).min(BUCKETS))
        .collect()
}

/// Feeds the items of lists sorted by `key` to `f` in that order (on equal
/// keys, the earlier list's first), until it returns false.
fn merge_sorted<T: Copy, K: Ord>(
    heads: &mut [&[T]],
    key: impl Fn(T) -> K,
    mut f: impl FnMut(T) -> bool,
) -> bool {
    match heads {
        [] => true,
        [only] => only.iter().all(|&x| f(x)),
        // Two lists (two threads): no search for the smallest head.
        [a, b] => {
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                let x = if key(a[i]) <= key(b[j]) {
                    i += 1;
                    a[i - 1]
                } else {
                    j += 1;
                    b[j - 1]
                };
                if !f(x) {
                    return false;
                }
            }
            a[i..].iter().chain(&b[j..]).all(|&x| f(x))
        }
        _ => loop {
            let mut best: Option<usize> = None;
            for (i, h) in heads.iter().enumerate() {
                if let Some(&x) = h.first()
                    && best.is_none_or(|b| key(x) < key(heads[b][0]))
                {
                    best = Some(i);
                }
            }
            let Some(b) = best else { return true };
            let x = heads[b][0];
            heads[b] = &heads[b][1..];
            if !f(x) {
                return false;
            }
        },
    }
}

/// How a walk over units in draw order ended.
#[derive(Clone, Copy, Debug)]
enum Walked {
    /// Every unit was visited.
    All,
    /// A unit's entries name two strata (spec §4.1): the first such unit.
    Spans(UnitEntry),
}

/// Entries in draw order → `f` once per unit: repeats of a unit are
/// adjacent, and must name one stratum.
struct OncePerUnit<F> {
    f: F,
    current: Option<UnitEntry>,
    /// The first unit met in two strata: the walk stops there.
    spans: Option<UnitEntry>,
}

impl<F: FnMut(UnitEntry)> OncePerUnit<F> {
    fn new(f: F) -> Self {
        OncePerUnit {
            f,
            current: None,
            spans: None,
        }
    }

    /// False to stop: a unit spans strata.
    fn feed(&mut self, e: UnitEntry) -> bool {
        match self.current {
            Some(c) if c == e => {
                if c.stratum() != e.stratum() {
                    self.spans = Some(c);
                }
            }
            Some(c) => {
                self.current = Some(e);
                (self.f)(c);
            }
            None => self.current = Some(e),
        }
        self.spans.is_none()
    }

    /// How the walk ended (the last unit visited unless one spans strata).
    fn finish(mut self) -> Walked {
        if let Some(unit) = self.spans {
            return Walked::Spans(unit);
        }
        if let Some(c) = self.current {
            (self.f)(c);
        }
        Walked::All
    }
}

/// The strata met so far: stratum values (Arrow row format) → id, and one
/// row of stratum values per id.
#[derive(Default)]
struct Strata {
    ids: HashMap<Vec<u8>, u32>,
    values: Vec<Vec<ArrayRef>>,
}

/// What the counting tasks share.
struct Counting {
    /// Rows read, told a batch at a time.
    progress: Option<Arc<Progress>>,
    drawer: Drawer,
    hasher: KeyHasher,
    filters: UnitFilters,
    fields: Vec<SortField>,
    strata: Mutex<Strata>,
    reservation: Mutex<MemoryReservation>,
    context: String,
    /// Bytes the tasks' buckets hold now, and how many they may hold
    /// before they are spilled; the tasks counting.
    held: AtomicUsize,
    /// Units went to disk once: the input outgrew the budget, and candidate
    /// rows share it from then on.
    spilled: AtomicBool,
    budget: usize,
    tasks: AtomicUsize,
    /// Sorted runs of spilled units.
    runs: Mutex<Vec<RunFile>>,
    disk: Arc<DiskManager>,
    /// Where the unit key and the stratum columns are in a batch.
    key: KeyOf,
    strata_columns: std::ops::Range<usize>,
    /// Where neyman's column is, and how its values are summed.
    values: Option<(usize, neyman::RowValues)>,
    /// Where the rows each row stands for are (Int64), when not one.
    weight: Option<usize>,
    /// The `unit` column's name (`None`: the row is the unit).
    unit: Option<String>,
    /// Keeps candidate rows (a sample keyed by its rows).
    guide: Option<candidates::Guide>,
}

/// What one counting task saw: its units not spilled, and the rest.
struct CountStats {
    units: Buckets,
    /// Rows counted (with a unit, not dropped by a unit filter).
    rows: u64,
    /// Rows counted per stratum id (what a split's buckets are sized by).
    strata_rows: Vec<u64>,
    null_rows: u64,
    excluded: HashSet<Vec<u8>>,
    candidates: Option<candidates::TaskCandidates>,
    /// neyman's sums of the counted rows' values, by stratum id.
    sums: Vec<Moments>,
}

/// The eligible rows of `source` as the counting pass reads them: the unit
/// key's columns — without a unit the row is the unit, keyed by every
/// source column — then the stratum values, then `value` (neyman's column)
/// when the pass sums it, or how many rows a row stands for.
struct CountingFrame {
    df: DataFrame,
    /// Where the stratum values are.
    strata: std::ops::Range<usize>,
    /// Where `value` is (after the strata).
    value: Option<usize>,
    /// Where the rows a row stands for are (after the strata), when rows
    /// of a unit come as one ([`Rows::unit_rows`]).
    weight: Option<usize>,
}

/// What a row of a [`CountingFrame`] may be.
enum Grain {
    /// An eligible row.
    Row,
    /// An eligible row or, with unit aggregates that allow it, a unit's
    /// rows at once (told to the progress as they are grouped): what the
    /// counting pass counts, but not what finds a unit's strata again (a
    /// unit that spans strata comes in made-up ones).
    Unit(Option<Arc<Progress>>),
}

async fn counting_frame(
    ctx: &SessionContext,
    st: &Statement,
    source: &Rows,
    value: Option<&str>,
    grain: Grain,
) -> Result<CountingFrame, RunError> {
    let per_unit = match (grain, value) {
        (Grain::Unit(progress), None) => source.unit_rows(ctx, st, progress).await?,
        _ => None,
    };
    let weighted = per_unit.is_some();
    let df = match per_unit {
        Some(df) => df,
        None => {
            let extra: Vec<&str> = value.into_iter().collect();
            source
                .eligible(ctx, st, None, Columns::Counting(&extra))
                .await?
        }
    };
    let mut select = key_columns(st);
    let strata_at = select.len();
    select.extend(source.strata(st)?);
    let strata = strata_at..select.len();
    if let Some(v) = value {
        select.push(column(v).alias(NEYMAN_VALUE));
    }
    if weighted {
        select.push(column(unit_groups::UNIT_ROWS));
    }
    let df = df
        .select(select)
        .map_err(df_err("evaluating `stratify by`"))?;
    Ok(CountingFrame {
        df,
        value: value.map(|_| strata.end),
        weight: weighted.then_some(strata.end),
        strata,
    })
}

/// neyman's column in the counting pass (a name no source column has).
const NEYMAN_VALUE: &str = "\u{1}strat_neyman_value";

/// Runs `st` by the streaming plan.
pub(super) async fn run(
    ctx: &SessionContext,
    st: &Statement,
    source: Rows,
    split: Option<&ir::Split>,
    filters: UnitFilters,
    options: &RunOptions,
) -> Result<RunStream, RunError> {
    let mut clock = Clock::new();
    let pool = ctx.runtime_env().memory_pool.clone();
    let context = format!("reading {}", source.what);
    let progress = options.progress.clone();
    let source_rows = match &progress {
        Some(_) => source.rows_hint(ctx).await,
        None => None,
    };
    let enter = |phase: Phase, total: Option<u64>| {
        if let Some(p) = &progress {
            p.enter(phase, total);
        }
    };

    // 1. Counting pass.
    enter(Phase::Counting, source_rows);
    let neyman_column = match &st.method {
        ir::Method::Neyman(c) => Some(c.name.as_str()),
        _ => None,
    };
    let frame = counting_frame(
        ctx,
        st,
        &source,
        neyman_column,
        Grain::Unit(progress.clone()),
    )
    .await?;
    let df = frame.df;
    // A sample keyed by its rows reads these columns again, unless it keeps
    // candidates: they have this schema.
    let counted_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let key = key_of(st)?.leading();
    let types: Vec<DataType> = df.schema().fields()[frame.strata.clone()]
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let row_values = frame
        .value
        .map(|at| neyman::RowValues::new(df.schema().field(at).data_type()));
    let fields: Vec<SortField> = types.iter().map(|t| SortField::new(t.clone())).collect();
    if !fields.is_empty() {
        RowConverter::new(fields.clone()).map_err(no_row_format)?;
    }
    let (place_filters, stratum_fields) = (filters.clone(), fields.clone());
    let counting = Arc::new(Counting {
        drawer: Drawer::new(st.seed),
        hasher: KeyHasher::default(),
        filters,
        fields,
        strata: Mutex::new(Strata::default()),
        reservation: Mutex::new(
            MemoryConsumer::new("strat: units")
                .with_can_spill(true)
                .register(&pool),
        ),
        context: context.clone(),
        held: AtomicUsize::new(0),
        spilled: AtomicBool::new(false),
        budget: options.unit_memory.max(1),
        tasks: AtomicUsize::new(0),
        runs: Mutex::new(Vec::new()),
        disk: ctx.runtime_env().disk_manager.clone(),
        key,
        strata_columns: frame.strata,
        values: frame.value.zip(row_values.clone()),
        weight: frame.weight,
        unit: st.unit.as_ref().map(|c| c.name.clone()),
        progress: progress.clone(),
        guide: candidates::Guide::wanted(st, split)
            .then(|| candidates::Guide::new(ctx, st, &types, options.unit_memory / 2)),
    });
    let passes = each_partition(df, &context, |s| count_partition(s, counting.clone()));
    let (mut null_rows, mut rows_counted) = (0u64, 0u64);
    let mut excluded_seen: HashSet<Vec<u8>> = HashSet::new();
    let stats = passes.await?;
    let mut task_units = Vec::with_capacity(stats.len());
    let mut rows_by_id: Vec<u64> = Vec::new();
    let mut sums_by_id: Vec<Moments> = Vec::new();
    // The candidate rows of every task, or none.
    let mut kept_candidates: Option<Vec<Vec<RecordBatch>>> =
        counting.guide.as_ref().map(|_| Vec::new());
    for s in stats {
        if let (Some(c), Some(guide)) = (s.candidates, &counting.guide) {
            let task = c.finish(guide)?;
            kept_candidates = kept_candidates.zip(task).map(|(mut all, t)| {
                all.push(t);
                all
            });
        }
        null_rows += s.null_rows;
        rows_counted += s.rows;
        if rows_by_id.len() < s.strata_rows.len() {
            rows_by_id.resize(s.strata_rows.len(), 0);
        }
        rows_by_id
            .iter_mut()
            .zip(&s.strata_rows)
            .for_each(|(a, b)| *a += b);
        excluded_seen.extend(s.excluded);
        if sums_by_id.len() < s.sums.len() {
            sums_by_id.resize(s.sums.len(), Moments::default());
        }
        sums_by_id
            .iter_mut()
            .zip(s.sums)
            .for_each(|(a, b)| a.merge(b));
        task_units.push(s.units);
    }
    let counting = Arc::into_inner(counting).ok_or_else(|| {
        RunError::Statement("a counting task outlived the pass (internal error)".into())
    })?;
    let hasher = counting.hasher.clone();
    let drawer = counting.drawer.clone();
    // Spilled once: spill the rest too, so that every unit is in a sorted run.
    let spilled = !counting
        .runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_empty();
    let units = if spilled {
        for mut b in task_units {
            spill(&counting, &mut b)?;
        }
        Units::Spilled(std::mem::take(
            &mut *counting.runs.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    } else {
        Units::InMemory(SortedUnits(
            task_units.into_iter().map(|b| b.lists).collect(),
        ))
    };
    let spilled_runs = match &units {
        Units::Spilled(runs) => runs.len(),
        Units::InMemory(_) => 0,
    };
    let mut strata = counting
        .strata
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let strata_ids = std::mem::take(&mut strata.ids);
    let unit_reservation = counting
        .reservation
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let guide = counting.guide;

    clock.lap("counting pass (unit and stratum columns, draws)");
    enter(Phase::Selecting, None);
    // Counted by this pass alone: the later ones read the rows again.
    let having_dropped_units = source.having_dropped();

    // 2. Strata in stratum order, and the allocation.
    let h_count = strata.values.len();
    let value_columns = stratum_value_columns(&types, st.strata.len(), &strata.values)?;
    let svals: Vec<Vec<SVal>> = value_columns
        .iter()
        .zip(&st.strata)
        .map(|(a, s)| stratum_values(a, s.bucket_labels.as_deref()))
        .collect::<Result<_, _>>()?;
    let tuple = |h: usize| svals.iter().map(|c| c[h].clone()).collect::<Vec<_>>();
    let mut order: Vec<usize> = (0..h_count).collect();
    order.sort_by_cached_key(|&h| tuple(h));
    // Strata whose values differ in bytes but not as stratum values (dates
    // stored as milliseconds within one day) are one stratum.
    let mut firsts: Vec<usize> = Vec::with_capacity(h_count);
    let mut rank = vec![0usize; h_count];
    for &h in &order {
        if firsts.last().is_none_or(|&f| tuple(f) != tuple(h)) {
            firsts.push(h);
        }
        rank[h] = firsts.len() - 1;
    }
    let h_count = firsts.len();
    let order_idx = UInt32Array::from_iter_values(firsts.iter().map(|&h| h as u32));
    let ordered: Vec<ArrayRef> = value_columns
        .iter()
        .map(|a| take(a.as_ref(), &order_idx, None).map_err(arrow_err("stratum values")))
        .collect::<Result<_, _>>()?;
    let text_columns: Vec<TextColumn> = ordered
        .iter()
        .map(TextColumn::new)
        .collect::<Result<_, _>>()?;
    let stratum_texts: Vec<Vec<Option<String>>> = (0..h_count)
        .map(|k| text_columns.iter().map(|c| c.text(k)).collect())
        .collect();
    let stratum_strings: Vec<String> = stratum_texts.iter().map(|t| stratum_text(t)).collect();
    // Units per stratum, and per range of draws (one per thread).
    let threads = ctx.state().config().target_partitions().max(1);
    let mut sizes = vec![0u64; h_count];
    let mut range_sizes: Vec<Vec<u64>> = Vec::new();
    let count = |range| -> Result<(Vec<u64>, Walked), RunError> {
        let mut sizes = vec![0u64; h_count];
        let walked = units.for_each_in(range, &context, |e| sizes[rank[e.stratum()]] += 1)?;
        Ok((sizes, walked))
    };
    let counted = map_on_threads(bucket_ranges(threads), threads, count)
        .ok_or_else(|| task_failed(&context, "counting the units"))?;
    for c in counted {
        let (c, walked) = c?;
        // The ranges are in draw order: this is the first spanning unit.
        if let Walked::Spans(unit) = walked {
            return Err(again::spanning(ctx, st, &source, (&hasher, &drawer), unit).await);
        }
        sizes.iter_mut().zip(&c).for_each(|(s, n)| *s += n);
        range_sizes.push(c);
    }
    let starts: Vec<u32> = stratum_strings
        .iter()
        .map(|s| drawer.stratum_start(s))
        .collect();

    // 3. Selection: per stratum how units are assigned by their place in
    // draw order, then each unit's split (or part 0 of a sample).
    let mut alloc_warnings = Vec::new();
    let mut targets: Vec<Target> = sizes.iter().map(|&n| Target::Exact(n)).collect();
    let assign: Vec<Assign> = if let Some(split) = split {
        let shares: Vec<BigRational> = split.parts.iter().map(|(_, p)| p.clone()).collect();
        if split.about {
            let t = strat_alloc::about_thresholds(&shares);
            vec![Assign::Thresholds(t, shares.len()); h_count]
        } else {
            (0..h_count)
                .map(|k| {
                    let mut at = 0;
                    Assign::Cuts(
                        strat_alloc::split_sizes(sizes[k], &shares, starts[k])
                            .into_iter()
                            .map(|size| {
                                at += size;
                                at
                            })
                            .collect(),
                    )
                })
                .collect()
        }
    } else {
        let reps: Vec<usize> = (0..h_count).collect();
        let matched = match_rules(ctx, st, &ordered, &reps).await?;
        let sds = match (&st.method, &row_values) {
            (ir::Method::Neyman(c), Some(values)) if matched.iter().any(Option::is_none) => {
                // As many rows as units: every unit has one row, and its
                // value is the row's, summed by the counting pass.
                if rows_counted == sizes.iter().sum::<u64>() {
                    values.sds(std::mem::take(&mut sums_by_id), &rank, h_count)
                } else {
                    clock.lap("strata and their sizes");
                    let strata = neyman::Strata {
                        key: key_of(st)?,
                        filters: &place_filters,
                        fields: &stratum_fields,
                        ids: &strata_ids,
                        rank: &rank,
                        count: h_count,
                    };
                    let sds = neyman::sds(ctx, st, &source, &c.name, strata).await?;
                    clock.lap("neyman's S_h pass (a unit has several rows: read again by unit)");
                    sds
                }
            }
            _ => vec![None; h_count],
        };
        let inputs: Vec<StratumInput> = (0..h_count)
            .map(|k| StratumInput {
                units: sizes[k],
                start: starts[k],
                sd: sds[k],
                rule: matched[k],
            })
            .collect();
        let allocation = strat_alloc::allocate(&inputs, &request(st))
            .map_err(|e| super::allocation_failed(e, st, &stratum_texts))?;
        alloc_warnings = allocation.warnings;
        targets = allocation.targets;
        targets
            .iter()
            .map(|t| match t {
                Target::Exact(n) => Assign::Take(*n),
                Target::Probability(p) => Assign::Below(strat_alloc::threshold(p)),
            })
            .collect()
    };
    // A split keeps every unit: its rows are placed by stratum and draw, so
    // the units are counted, not listed.
    let parts = split.map_or(1, |s| s.parts.len());
    let mut walk = Walk::new(&assign, parts, split.is_none());
    // Each range of draws on its own thread, its places in each stratum
    // counted on from the ranges before it.
    let mut places = vec![0u64; h_count];
    let mut starts_at = Vec::with_capacity(range_sizes.len());
    for c in &range_sizes {
        starts_at.push(places.clone());
        places.iter_mut().zip(c).for_each(|(p, n)| *p += n);
    }
    let select = |(range, places)| -> Result<Option<Walk<'_>>, RunError> {
        let mut walk = Walk::new(&assign, parts, split.is_none());
        walk.places = places;
        let walked = units.for_each_in(range, &context, |e| walk.visit(e, rank[e.stratum()]))?;
        // The counting walk found no unit in two strata: this one cannot.
        Ok(matches!(walked, Walked::All).then(|| walk.finish()))
    };
    let ranges: Vec<_> = bucket_ranges(threads).into_iter().zip(starts_at).collect();
    let walks = map_on_threads(ranges, threads, select)
        .ok_or_else(|| task_failed(&context, "selecting the units"))?;
    for w in walks {
        walk.absorb(w?.ok_or_else(|| task_failed(&context, "a walk over the units stopped"))?);
    }
    // Units whose draws tie at a boundary go in key text order (§6.2).
    let tie_parts = if walk.ties.is_empty() {
        HashMap::new()
    } else {
        let wanted: Vec<(u64, u64)> = (walk.ties.iter())
            .flat_map(|t| t.units.iter().map(move |&h| (t.r, h)))
            .collect();
        let found = again::find(ctx, st, &source, (&hasher, &drawer), wanted).await?;
        walk.settle(&found.into_iter().map(|(id, f)| (id, f.key)).collect())?
    };
    let Walk {
        counts,
        starts,
        selected,
        check,
        ..
    } = walk;
    let selected = selected.unwrap_or_default();
    let mut weights = vec![1.0f64; h_count];
    let mut reports = Vec::with_capacity(h_count);
    for k in 0..h_count {
        let n = sizes[k];
        let (weight, split_counts) = match split {
            Some(split) => (
                1.0,
                split
                    .parts
                    .iter()
                    .map(|(name, _)| name.clone())
                    .zip(counts[k].iter().copied())
                    .collect(),
            ),
            None => {
                let w = match &targets[k] {
                    Target::Exact(t) => {
                        let t = (*t).min(n);
                        if t == 0 { 0.0 } else { n as f64 / t as f64 }
                    }
                    Target::Probability(p) if p.numer() == &BigInt::from(0) => 0.0,
                    Target::Probability(p) => ratio_to_f64(p.denom(), p.numer()),
                };
                (w, Vec::new())
            }
        };
        weights[k] = weight;
        reports.push(StratumReport {
            values: stratum_texts[k]
                .iter()
                .map(|v| v.clone().unwrap_or_else(|| "∅".into()))
                .collect(),
            text: stratum_strings[k].clone(),
            population: n,
            target: targets[k].clone(),
            selected: counts[k].iter().sum(),
            weight,
            split_counts,
        });
    }
    let split_totals: Vec<(String, u64)> = match split {
        Some(split) => split
            .parts
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), counts.iter().map(|c| c[i]).sum()))
            .collect(),
        None => Vec::new(),
    };
    drop(units);
    clock.lap("allocation and selection");
    let total_selected: u64 = counts.iter().flatten().sum();
    let report = Report {
        total_population: sizes.iter().sum(),
        total_selected,
        strata: reports,
        null_units: null_rows,
        excluded_units: excluded_seen.len() as u64,
        having_dropped_units,
        seed: st.seed,
        warnings: run_warnings(
            st,
            null_rows,
            &alloc_warnings,
            &stratum_strings,
            &stratum_texts,
        ),
        split_totals,
        // Set by the caller, which knows the program.
        source_weighted: false,
        as_of: None,
    };

    // 4. A split's rows: every row, read again, spread over bucket files by
    // place and put in order a bucket at a time as they are written.
    if let Some(split) = split {
        drop(unit_reservation);
        let mut strata_rows = vec![0u64; h_count];
        for (id, n) in rows_by_id.iter().enumerate() {
            strata_rows[rank[id]] += n;
        }
        let placer = ordered::Placer {
            drawer,
            key: key_of(st)?,
            filters: place_filters,
            fields: stratum_fields,
            ids: strata_ids,
            rank,
            starts,
            tie_parts,
            strata_rows,
            progress: progress.clone(),
        };
        enter(Phase::Ordering, source_rows);
        let finish = ordered::Finish {
            st: st.clone(),
            split: split.clone(),
            stratum_strings,
            units: total_selected,
            check,
            what: source.what.clone(),
            weighted: source.weighted,
            threads,
        };
        let (rows, schema) = ordered::split_rows(ctx, st, &source, placer, finish).await?;
        let rows = source.hold(rows);
        clock.lap("planning the ordering pass (it runs as the rows are written)");
        return Ok(RunStream {
            rows,
            schema,
            report,
            profile: Profile {
                phases: clock.phases,
                spilled_runs,
            },
            upstream: Vec::new(),
        });
    }

    // 4. A sample's rows: read again, only the selected units' rows kept.
    drop(unit_reservation);
    let everything = total_selected == sizes.iter().sum::<u64>();
    // The rows of every selected unit among the candidates: taken from them.
    // Why the rows are read again, when a guide kept candidates.
    let (candidates, reread) = match (kept_candidates, &guide) {
        (Some(c), Some(g)) if candidates::covers(&g.limits(), &rank, h_count, &selected) => {
            (Some(c), "")
        }
        (Some(_), _) => (
            None,
            "materialising pass (selected rows; a stratum's cut was above its candidates' limit)",
        ),
        (None, Some(_)) => (
            None,
            "materialising pass (selected rows; the candidate rows outgrew their budget)",
        ),
        (None, None) => (None, "materialising pass (selected rows)"),
    };
    let reading = progress.clone().filter(|_| candidates.is_none());
    let lookup = Lookup::new(
        st,
        selected,
        everything,
        (drawer, hasher),
        &pool,
        (context, reading),
    )?;
    let (batches, mut kept) = match candidates {
        Some(candidates) => {
            let kept = from_candidates(candidates, counted_schema, lookup).await?;
            clock.lap("selected rows (from the counting pass's candidates)");
            kept
        }
        None => {
            enter(Phase::Reading, source_rows);
            let kept = materialise(ctx, st, &source, lookup).await?;
            clock.lap(reread);
            kept
        }
    };
    drop(guide);

    // Kept rows are numbered across the batches: batch `b` starts at bases[b].
    let mut bases = Vec::with_capacity(batches.len());
    let mut at = 0usize;
    for b in &batches {
        bases.push(at);
        at += b.num_rows();
    }
    // The batch of a row: from the batch where its 1,024-row chunk starts,
    // on past the batches that end before it (a table instead of a binary
    // search per row).
    let mut chunk_batch: Vec<u32> = Vec::with_capacity(at / 1024 + 1);
    for c in 0..at.div_ceil(1024) {
        chunk_batch.push((bases.partition_point(|&s| s <= c * 1024) - 1) as u32);
    }
    let locate = |row: u32| {
        let row = row as usize;
        let mut b = chunk_batch[row >> 10] as usize;
        while b + 1 < bases.len() && bases[b + 1] <= row {
            b += 1;
        }
        (b, row - bases[b])
    };

    // §7 order: split, stratum, draw, unit key, then the row key.
    // By one integer key first, on every thread; then rows with one draw
    // (a unit's rows met apart, or units whose draws tie) by unit key, the
    // text written from the kept row itself.
    let place =
        |k: &KeptRow| (u128::from(k.part) << 96) | (u128::from(k.stratum) << 64) | u128::from(k.r);
    let threads = ctx.state().config().target_partitions().max(1);
    sort_on_threads(&mut kept, threads, place);
    let unit_keys: Vec<UnitKeys> = batches
        .iter()
        .map(|b| {
            UnitKeys::new(key_of(st)?, b.columns()).map_err(|e| RunError::Statement(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let unit_key = |k: &KeptRow| {
        let (b, r) = locate(k.row);
        let mut text = Vec::new();
        unit_keys[b].write(r, &mut text);
        text
    };
    let mut i = 0;
    while i < kept.len() {
        let mut j = i + 1;
        while j < kept.len() && place(&kept[j]) == place(&kept[i]) {
            j += 1;
        }
        if j - i > 1 && kept[i..j].iter().any(|k| k.unit != kept[i].unit) {
            same_key_same_unit(&mut kept[i..j], &unit_key);
        }
        i = j;
    }
    let same_unit = KeptRow::same_unit;
    // The units found again must be the units selected, in their strata.
    let mut units_found = 0u64;
    let mut found_check = 0u64;
    for (i, k) in kept.iter().enumerate() {
        if i == 0 || !same_unit(&kept[i - 1], k) {
            units_found += 1;
            found_check = found_check.wrapping_add(unit_check(k.r, k.stratum));
        }
    }
    if units_found != total_selected || found_check != check {
        return Err(RunError::Statement(format!(
            "{} changed while strat read it: the {total_selected} selected units were not found again as they were counted; run again on data that does not change during the run",
            source.what
        )));
    }
    let n_in = st.input.len();
    let row_keys: Result<Vec<RowKeys>, _> = batches
        .iter()
        .map(|b| RowKeys::new(&b.columns()[..n_in]))
        .collect();
    if let Ok(row_keys) = row_keys {
        // Row keys are formatted for the rows of multi-row units only, on
        // every thread: each takes whole units.
        let threads = ctx.state().config().target_partitions().max(1);
        let mut rest: &mut [KeptRow] = &mut kept;
        let mut chunks = Vec::with_capacity(threads);
        for t in (1..threads).rev() {
            let mut at = rest.len() / (t + 1);
            while at > 0 && at < rest.len() && same_unit(&rest[at], &rest[at - 1]) {
                at += 1;
            }
            let (head, tail) = rest.split_at_mut(at);
            chunks.push(head);
            rest = tail;
        }
        chunks.push(rest);
        let write_column = |row: u32, column: usize, buf: &mut Vec<u8>| {
            let (b, r) = locate(row);
            row_keys[b].append_column(column, r, buf);
        };
        let width = row_keys.first().map_or(0, RowKeys::width);
        let order = |chunk: &mut [KeptRow]| order_within_units(chunk, &write_column, width);
        if map_on_threads(chunks, threads, order).is_none() {
            return Err(RunError::Statement(
                "putting a unit's rows in row key order failed (internal error)".into(),
            ));
        }
    }
    // Two-phase sampling (§7.2): times the source's `_weight`.
    let source_weight: Vec<Float64Array> = batches
        .iter()
        .map(|b| source_weights(st, source.weighted, &b.columns()[..n_in]))
        .collect::<Result<Option<_>, _>>()?
        .unwrap_or_default();
    let source_weight = (!source_weight.is_empty()).then_some(source_weight);
    let rows = OutputRows {
        picks: RowPicks::Gather {
            batches: &batches,
            strata_at: n_in,
            pairs: kept.iter().map(|k| locate(k.row)).collect(),
        },
        weights: match &source_weight {
            Some(sw) => kept
                .iter()
                .map(|k| {
                    let (b, r) = locate(k.row);
                    weights[k.stratum as usize] * sw[b].value(r)
                })
                .collect(),
            None => kept.iter().map(|k| weights[k.stratum as usize]).collect(),
        },
        strata: kept.iter().map(|k| k.stratum as usize).collect(),
        splits: kept.iter().map(|k| k.part as usize).collect(),
    };
    // The kept rows' places and keys are not needed any more: free them
    // before the output columns are built.
    drop(kept);
    let (out, out_schema) = output_batch(
        st,
        split,
        rows,
        &stratum_strings,
        ctx.state().config().target_partitions(),
    )?;
    drop(batches);
    clock.lap("output order and columns");

    Ok(RunStream::ready(RunOutput {
        batches: vec![out],
        schema: out_schema,
        report,
        profile: Profile {
            phases: clock.phases,
            spilled_runs,
        },
        // The caller adds the statements this one read.
        upstream: Vec::new(),
    }))
}

/// The materialising pass of a sample: the rows of the selected units,
/// read again, concatenated, with their places.
async fn materialise(
    ctx: &SessionContext,
    st: &Statement,
    source: &Rows,
    lookup: Arc<Lookup>,
) -> Result<KeptRows, RunError> {
    // The filter `strat_selected(unit)` goes into the Parquet reader
    // (pushdown_filters): it decodes the unit column, and the other columns
    // only for the rows of selected units (late materialisation).
    let late = pushdown_context(ctx);
    let selected_udf = ScalarUDF::from(SelectedUdf {
        lookup: lookup.clone(),
        signature: Signature::variadic_any(Volatility::Immutable),
    });
    // When every unit is selected the filter would keep every row.
    let units = (!lookup.everything).then(|| selected_udf.call(key_columns(st)));
    let df = source.eligible(&late, st, units, Columns::All).await?;
    let mut select: Vec<Expr> = st.input.iter().map(|c| column(&c.name)).collect();
    select.extend(source.strata(st)?);
    let df = df
        .select(select)
        .map_err(df_err("evaluating `stratify by`"))?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let streams = df
        .execute_stream_partitioned()
        .await
        .map_err(df_err(&lookup.context))?;
    let partitions = each_stream(streams, &lookup.context, |s| {
        keep_partition(s, lookup.clone())
    })
    .await?;
    let kept = join_kept(partitions, schema, "selected rows")?;
    // The selected units' table is not needed any more: free it before the
    // kept rows are put in order.
    drop(selected_udf);
    drop(lookup);
    Ok(kept)
}

/// The rows of the selected units from the counting tasks' candidates
/// (the columns the materialising pass would read: the source's, then the
/// strata's), one task per counting task's candidates.
async fn from_candidates(
    candidates: Vec<Vec<RecordBatch>>,
    schema: SchemaRef,
    lookup: Arc<Lookup>,
) -> Result<KeptRows, RunError> {
    let streams: Vec<SendableRecordBatchStream> = candidates
        .into_iter()
        .map(|batches| {
            let batches = futures::stream::iter(batches.into_iter().map(Ok));
            Box::pin(RecordBatchStreamAdapter::new(schema.clone(), batches)) as _
        })
        .collect();
    let partitions = each_stream(streams, &lookup.context, |s| {
        keep_partition(s, lookup.clone())
    })
    .await?;
    join_kept(partitions, schema, "selected rows")
}

/// Rows per batch where a pass costs per batch (a sort's merge, a run of
/// units): at most this many. A merge holds two batches of each run it
/// reads: at 65,536 rows (~40 MB a run) a split of 125M rows peaked 0.4 GB
/// higher, and was no faster.
const BIG_BATCH_ROWS: usize = 32_768;

/// `state` with batches of up to [`BIG_BATCH_ROWS`] rows: but about a 64th of
/// the memory limit at most (~128 bytes a row), or a sort could not hold a
/// few of them.
fn with_big_batches(state: SessionState) -> SessionState {
    let rows = match state.runtime_env().memory_pool.memory_limit() {
        MemoryLimit::Finite(bytes) => (bytes / (64 * 128)).clamp(256, BIG_BATCH_ROWS),
        _ => BIG_BATCH_ROWS,
    };
    // Not creating a default catalog: that would replace the shared one.
    let config = state
        .config()
        .clone()
        .with_create_default_catalog_and_schema(false)
        .with_batch_size(rows);
    SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .build()
}

/// Runs `task` over every partition of `df` at once, one tokio task each,
/// and waits for them all: their results, or the first partition's error (a
/// memory error before any other: the others may follow from it).
/// `context` names what the pass reads.
async fn each_partition<T, F, Fut>(
    df: DataFrame,
    context: &str,
    task: F,
) -> Result<Vec<T>, RunError>
where
    F: Fn(SendableRecordBatchStream) -> Fut,
    Fut: std::future::Future<Output = Result<T, RunError>> + Send + 'static,
    T: Send + 'static,
{
    let streams = df
        .execute_stream_partitioned()
        .await
        .map_err(df_err(context))?;
    each_stream(streams, context, task).await
}

/// [`each_partition`] over streams already made.
async fn each_stream<T, F, Fut>(
    streams: Vec<SendableRecordBatchStream>,
    context: &str,
    task: F,
) -> Result<Vec<T>, RunError>
where
    F: Fn(SendableRecordBatchStream) -> Fut,
    Fut: std::future::Future<Output = Result<T, RunError>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = streams.into_iter().map(|s| tokio::spawn(task(s))).collect();
    let mut out = Vec::with_capacity(tasks.len());
    let mut error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                let memory = matches!(e, RunError::Memory { .. });
                if error.is_none() || memory && !matches!(error, Some(RunError::Memory { .. })) {
                    error = Some(e);
                }
            }
            Err(e) => {
                error.get_or_insert_with(|| task_failed(context, e));
            }
        }
    }
    error.map_or(Ok(out), Err)
}

/// The error of stratum values Arrow's row format cannot hold.
fn no_row_format(e: datafusion::arrow::error::ArrowError) -> RunError {
    RunError::Unsupported(format!("stratum values without an Arrow row format: {e}"))
}

/// The error of a task of the run that panicked or was cancelled.
fn task_failed(context: &str, e: impl std::fmt::Display) -> RunError {
    RunError::Statement(format!(
        "{context}: a task of the run stopped ({e}; an internal error)"
    ))
}

/// A context over the same tables and runtime whose Parquet scans evaluate
/// filters while decoding.
fn pushdown_context(ctx: &SessionContext) -> SessionContext {
    // Not creating a default catalog: that would replace the shared one,
    // and with it the caller's tables.
    let mut config = ctx
        .copied_config()
        .with_create_default_catalog_and_schema(false);
    config.options_mut().execution.parquet.pushdown_filters = true;
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_config(config)
        .build();
    SessionContext::new_with_state(state)
}

/// `strat_selected(unit)` or `strat_selected(every source column)` (without
/// `unit`) `-> Boolean`: is this row's unit selected?
struct SelectedUdf {
    lookup: Arc<Lookup>,
    signature: Signature,
}

impl std::fmt::Debug for SelectedUdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "strat_selected({} units)", self.lookup.selected.len())
    }
}

impl PartialEq for SelectedUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.lookup, &other.lookup)
    }
}
impl Eq for SelectedUdf {}
impl Hash for SelectedUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.lookup), state);
    }
}

impl ScalarUDFImpl for SelectedUdf {
    fn name(&self) -> &str {
        "strat_selected"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        progress::read(&self.lookup.progress, args.number_rows);
        let kc = UnitKeys::new(self.lookup.key.leading(), &columns)
            .or_else(|e| datafusion::common::exec_err!("strat_selected: {e}"))?;
        let mut buf = Vec::with_capacity(64);
        let mut hashes = Vec::new();
        kc.hash_into(&self.lookup.hasher, args.number_rows, &mut hashes);
        // Rows of one unit often come together: the previous answer holds.
        let mut last: Option<(usize, bool)> = None;
        let out: BooleanArray = (0..args.number_rows)
            .map(|row| {
                if kc.is_null(row) {
                    return Some(false);
                }
                let found = match last {
                    Some((p, found)) if kc.same_value(p, row) => found,
                    _ => self.lookup.find(&kc, row, hashes[row], &mut buf).is_some(),
                };
                last = Some((row, found));
                Some(found)
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Wall time per phase.
struct Clock {
    at: std::time::Instant,
    phases: Vec<(&'static str, std::time::Duration)>,
}

impl Clock {
    fn new() -> Self {
        Clock {
            at: std::time::Instant::now(),
            phases: Vec::new(),
        }
    }
    fn lap(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        self.phases.push((phase, now - self.at));
        self.at = now;
    }
}

/// Counts the units of one partition into the shared set.
async fn count_partition(
    mut stream: SendableRecordBatchStream,
    shared: Arc<Counting>,
) -> Result<CountStats, RunError> {
    shared.tasks.fetch_add(1, AtomicOrdering::Relaxed);
    let mut stats = CountStats {
        units: Buckets::new(),
        rows: 0,
        strata_rows: Vec::new(),
        null_rows: 0,
        excluded: HashSet::new(),
        candidates: shared.guide.as_ref().map(|_| Default::default()),
        sums: Vec::new(),
    };
    // One pass: where the current unit's key is in the task's key arena.
    let (mut new_keys, mut new_ends, mut new_tags) = (Vec::new(), Vec::new(), Vec::new());
    let mut draws: Vec<u64> = Vec::new();
    let mut hashes: Vec<u64> = Vec::new();
    let mut held = 0usize;
    let converter = if shared.fields.is_empty() {
        None
    } else {
        Some(RowConverter::new(shared.fields.clone()).map_err(no_row_format)?)
    };
    // Stratum values → id, for the strata this task has met.
    let mut known: HashMap<Vec<u8>, u32, foldhash::fast::RandomState> = HashMap::default();
    let mut prev: Option<UnitEntry> = None;
    // The previous unit's key text when it came in an earlier batch (in
    // this batch it is the last of `new_keys`).
    let mut prev_key: Vec<u8> = Vec::with_capacity(64);
    // The keyed hash of the previous unit's text: equal texts have equal
    // hashes, so a row whose hash differs has another unit, known without
    // comparing.
    let mut prev_hash = 0u64;
    // The batch's counted rows, their units and strata, while candidates are kept.
    let mut met: Vec<MetRow> = Vec::new();
    while let Some(batch) = stream.next().await {
        let keeping =
            stats.candidates.is_some() && shared.guide.as_ref().is_some_and(|g| !g.is_off());
        let batch = batch.map_err(df_err(shared.context.clone()))?;
        let weights = shared
            .weight
            .map(|at| batch.column(at).as_primitive::<Int64Type>());
        // The eligible rows a row stands for (told as they were grouped).
        let rows_of = |row: usize| weights.map_or(1, |w| w.value(row) as u64);
        if weights.is_none() {
            progress::read(&shared.progress, batch.num_rows());
        }
        let keys = UnitKeys::new(shared.key, batch.columns()).map_err(|e| match &shared.unit {
            None => row_key_error(e),
            Some(unit) => RunError::Key(format!("unit `{unit}`: {e}")),
        })?;
        keys.hash_into(&shared.hasher, batch.num_rows(), &mut hashes);
        let strata_cols = &batch.columns()[shared.strata_columns.clone()];
        let values = match &shared.values {
            Some((at, v)) => Some(v.of(&batch.columns()[*at])?),
            None => None,
        };
        // Units first met in this batch: their key texts and tags; their
        // draws are computed together at the end of the batch (8 at a time).
        new_keys.clear();
        new_ends.clear();
        new_tags.clear();
        met.clear();
        let mut prev_new: Option<u32> = None;
        let rows = match &converter {
            Some(c) => Some(
                c.convert_columns(strata_cols)
                    .map_err(arrow_err("stratum values in row format"))?,
            ),
            None => None,
        };
        // The row of this batch whose unit is `prev`, and the last row whose
        // stratum was looked up: rows of one unit often come together
        // (events by member), and then their unit is known without hashing.
        let mut prev_row: Option<usize> = None;
        let mut last_stratum: Option<(usize, u32)> = None;
        for (row, &hash) in hashes.iter().enumerate() {
            if keys.is_null(row) {
                stats.null_rows += rows_of(row);
                continue;
            }
            let same = prev_row.is_some_and(|p| keys.same_value(p, row));
            // The row's key text is written where a new unit's goes; taken
            // back if the row's unit is not new.
            let start = new_keys.len();
            if !same {
                keys.write(row, &mut new_keys);
                let text = &new_keys[start..];
                let unkept = shared
                    .filters
                    .kept
                    .as_ref()
                    .is_some_and(|k| !k.contains(text));
                // Not in `keep units in`: not counted (and not remembered).
                let excluded = !unkept
                    && shared
                        .filters
                        .excluded
                        .as_ref()
                        .is_some_and(|ex| ex.contains(text));
                if excluded && !stats.excluded.contains(text) {
                    stats.excluded.insert(text.to_vec());
                }
                if unkept || excluded {
                    new_keys.truncate(start);
                    continue;
                }
            }
            stats.rows += rows_of(row);
            let h = match &rows {
                None => 0,
                Some(rows) => match last_stratum {
                    Some((at, h)) if rows.row(at) == rows.row(row) => h,
                    _ => {
                        let bytes = rows.row(row);
                        let h = match known.get(bytes.as_ref()) {
                            Some(&h) => h,
                            None => {
                                let h = register(&shared, bytes.as_ref(), strata_cols, row)?;
                                known.insert(bytes.as_ref().to_vec(), h);
                                h
                            }
                        };
                        last_stratum = Some((row, h));
                        h
                    }
                },
            };
            if rows.is_none() && known.is_empty() {
                register(&shared, &[], strata_cols, row)?;
                known.insert(Vec::new(), 0);
            }
            let id = h as usize;
            if stats.strata_rows.len() <= id {
                stats.strata_rows.resize(id + 1, 0);
            }
            stats.strata_rows[id] += rows_of(row);
            if let Some(v) = &values {
                if stats.sums.len() <= id {
                    stats.sums.resize(id + 1, Moments::default());
                }
                v.add(row, &mut stats.sums[id]);
            }
            let prev_text = match prev_new {
                Some(_) => last_key_start(&new_ends)..start,
                None => 0..0,
            };
            let is_prev = |text: &[u8]| match prev_new {
                Some(_) => new_keys[prev_text.clone()] == *text,
                None => prev_key == text,
            };
            if let Some(p) = prev
                && (same || (hash == prev_hash && is_prev(&new_keys[start..])))
            {
                if p.stratum() == h as usize {
                    new_keys.truncate(start);
                    prev_row = Some(row);
                    if keeping {
                        let unit = prev_new.map_or(MetUnit::Drawn(p.r), MetUnit::New);
                        met.push(MetRow {
                            row: row as u32,
                            unit,
                            stratum: h,
                        });
                    }
                    continue;
                }
                // The unit in a second stratum: entered again, so that the
                // walk over the units finds it (spec §4.1).
                if same {
                    match prev_new {
                        Some(_) => new_keys.extend_from_within(prev_text),
                        None => new_keys.extend_from_slice(&prev_key),
                    }
                }
            }
            let tag = (shared.hasher.top40(hash) << STRATUM_BITS) | u64::from(h);
            new_ends.push(new_keys.len());
            new_tags.push(tag);
            let e = UnitEntry { r: 0, tag };
            prev = Some(e);
            prev_new = Some(new_tags.len() as u32 - 1);
            prev_row = Some(row);
            if keeping {
                let unit = MetUnit::New(new_tags.len() as u32 - 1);
                met.push(MetRow {
                    row: row as u32,
                    unit,
                    stratum: h,
                });
            }
            prev_hash = hash;
        }
        // The last unit's text, for the next batch's first rows.
        if prev_new.is_some() {
            prev_key.clear();
            prev_key.extend_from_slice(&new_keys[last_key_start(&new_ends)..]);
        }
        draws.clear();
        shared.drawer.draw_many(&new_keys, &new_ends, &mut draws);
        if let (Some(c), Some(guide)) = (&mut stats.candidates, &shared.guide) {
            c.offer(guide, &shared.strata, (&batch, &met, &draws))
                .await?;
        }
        for (&r, &tag) in draws.iter().zip(&new_tags) {
            stats.units.push(UnitEntry { r, tag });
        }
        if let (Some(p), Some(i)) = (&mut prev, prev_new) {
            p.r = draws[i as usize];
        }
        // Over the budget, or over the context's memory limit: units go to
        // disk as a sorted run.
        let now = stats.units.bytes();
        let refused = now > held
            && shared
                .reservation
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_grow(now - held)
                .is_err();
        if !refused {
            shared
                .held
                .fetch_add(now.saturating_sub(held), AtomicOrdering::Relaxed);
            held = held.max(now);
        }
        // Once units spill, the candidate rows share their budget: units
        // spill earlier rather than the two add up (a table whose units
        // fit is not made to spill for them).
        let candidates = match &shared.guide {
            Some(g) if shared.spilled.load(AtomicOrdering::Relaxed) => g.held(),
            _ => 0,
        };
        if refused || shared.held.load(AtomicOrdering::Relaxed) + candidates > shared.budget {
            // The big holders spill; a small one leaves it to them.
            let tasks = shared.tasks.load(AtomicOrdering::Relaxed).max(1);
            if refused || held >= shared.budget / (2 * tasks) {
                spill(&shared, &mut stats.units)?;
                let reservation = shared.reservation.lock().unwrap_or_else(|p| p.into_inner());
                reservation.shrink(held.min(reservation.size()));
                shared.held.fetch_sub(held, AtomicOrdering::Relaxed);
                held = 0;
            }
        }
    }
    // Each task sorts its own units, so the tasks sort at once.
    stats.units.compact();
    Ok(stats)
}

/// Where the last key text of a key arena starts (`ends` as
/// [`crate::draw::Drawer::draw_many`] takes them).
fn last_key_start(ends: &[usize]) -> usize {
    ends.len().checked_sub(2).map_or(0, |i| ends[i])
}

/// The units after the counting pass: in memory, or in sorted runs on disk.
enum Units {
    InMemory(SortedUnits),
    Spilled(Vec<RunFile>),
}

impl Units {
    /// Calls `f` once per unit whose draw is in the range of `buckets`, in
    /// draw order, until it returns false (see [`SortedUnits::for_each_in`]):
    /// ranges of draws are walked at once, each on its own thread.
    fn for_each_in(
        &self,
        buckets: std::ops::Range<usize>,
        context: &str,
        f: impl FnMut(UnitEntry),
    ) -> Result<Walked, RunError> {
        match self {
            Units::InMemory(sorted) => Ok(sorted.for_each_in(buckets, f)),
            Units::Spilled(runs) => {
                let draw = |b: usize| (b as u64) << (64 - BUCKET_BITS);
                let to = (buckets.end < BUCKETS).then(|| draw(buckets.end));
                for_each_unit_in(runs, context, draw(buckets.start), to, f)
            }
        }
    }
}

fn spill_error(context: &str, what: &str, e: impl std::fmt::Display) -> RunError {
    RunError::Memory {
        context: context.to_string(),
        error: DataFusionError::Execution(format!("{what}: {e}")),
        usage: None,
    }
}

/// Moves a task's units to a new run on disk, sorted by draw (and keyed
/// hash), and empties its buckets.
fn spill(shared: &Counting, units: &mut Buckets) -> Result<(), RunError> {
    if units.is_empty() {
        return Ok(());
    }
    units.compact();
    shared.spilled.store(true, AtomicOrdering::Relaxed);
    let context = &shared.context;
    let file = shared
        .disk
        .create_tmp_file("strat: units sorted by draw")
        .map_err(|e| {
            spill_error(
                context,
                "the units do not fit in memory, and spilling them to disk failed",
                e,
            )
        })?;
    let write_err =
        |e: std::io::Error| spill_error(context, "writing units to a temporary file", e);
    if file.path().is_none() {
        return Err(spill_error(
            context,
            "the units do not fit in memory",
            "spilling them needs a local temporary folder",
        ));
    }
    let writer = file
        .open_writer()
        .map_err(|e| spill_error(context, "writing units to a temporary file", e))?;
    let mut w = BufWriter::with_capacity(1 << 20, writer);
    for e in units.lists.iter().flatten() {
        w.write_all(&e.r.to_le_bytes()).map_err(write_err)?;
        w.write_all(&e.tag.to_le_bytes()).map_err(write_err)?;
    }
    let mut writer = w.into_inner().map_err(|e| write_err(e.into_error()))?;
    writer
        .finish()
        .map_err(|e| spill_error(context, "writing units to a temporary file", e))?;
    shared
        .runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(file);
    *units = Buckets::new();
    Ok(())
}

/// One sorted run being read back.
struct RunReader(BufReader<File>);

impl RunReader {
    /// A reader of `file` from its first entry with a draw at or above
    /// `from` (entries are 16 bytes, sorted by draw: a binary search).
    fn at(mut file: File, from: u64) -> std::io::Result<RunReader> {
        use std::io::{Seek, SeekFrom};
        let (mut lo, mut hi) = (0u64, file.metadata()?.len() / 16);
        let mut r = [0u8; 8];
        while from > 0 && lo < hi {
            let mid = lo + (hi - lo) / 2;
            file.seek(SeekFrom::Start(mid * 16))?;
            file.read_exact(&mut r)?;
            if u64::from_le_bytes(r) < from {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        file.seek(SeekFrom::Start(lo * 16))?;
        Ok(RunReader(BufReader::with_capacity(1 << 16, file)))
    }

    fn next(&mut self) -> std::io::Result<Option<UnitEntry>> {
        let mut b = [0u8; 16];
        match self.0.read_exact(&mut b) {
            Ok(()) => Ok(Some(UnitEntry {
                r: u64::from_le_bytes(b[..8].try_into().unwrap_or_default()),
                tag: u64::from_le_bytes(b[8..].try_into().unwrap_or_default()),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Calls `f` once per unit of the runs with a draw from `from` up to `to`,
/// in draw order (a unit met in several runs once), until a unit's entries
/// name two strata.
fn for_each_unit_in(
    runs: &[RunFile],
    context: &str,
    from: u64,
    to: Option<u64>,
    f: impl FnMut(UnitEntry),
) -> Result<Walked, RunError> {
    use std::cmp::Reverse;
    let read_err =
        |e: std::io::Error| spill_error(context, "reading units back from a temporary file", e);
    let mut readers = Vec::with_capacity(runs.len());
    for run in runs {
        let path = run
            .path()
            .ok_or_else(|| read_err(std::io::ErrorKind::NotFound.into()))?;
        readers.push(RunReader::at(File::open(path).map_err(read_err)?, from).map_err(read_err)?);
    }
    let mut heap = BinaryHeap::with_capacity(readers.len());
    for (i, reader) in readers.iter_mut().enumerate() {
        if let Some(e) = reader.next().map_err(read_err)? {
            heap.push(Reverse((e.r, e.hash40(), e.tag, i)));
        }
    }
    let mut walk = OncePerUnit::new(f);
    while let Some(Reverse((r, _, tag, i))) = heap.pop() {
        if to.is_some_and(|to| r >= to) {
            break;
        }
        if let Some(next) = readers[i].next().map_err(read_err)? {
            heap.push(Reverse((next.r, next.hash40(), next.tag, i)));
        }
        if !walk.feed(UnitEntry { r, tag }) {
            break;
        }
    }
    Ok(walk.finish())
}

/// The stratum values by id, one array per stratum expression (the first
/// `n` of `types`), from each stratum's one-row arrays.
fn stratum_value_columns(
    types: &[DataType],
    n: usize,
    values: &[Vec<ArrayRef>],
) -> Result<Vec<ArrayRef>, RunError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(n);
    for (i, t) in types.iter().enumerate().take(n) {
        let parts: Vec<&dyn Array> = values.iter().map(|v| v[i].as_ref()).collect();
        columns.push(if parts.is_empty() {
            new_empty_array(t)
        } else {
            concat(&parts).map_err(arrow_err("stratum values"))?
        });
    }
    Ok(columns)
}

/// The global id of a stratum first met at `row` (registering its values).
fn register(
    shared: &Counting,
    bytes: &[u8],
    cols: &[ArrayRef],
    row: usize,
) -> Result<u32, RunError> {
    let mut strata = shared.strata.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(&h) = strata.ids.get(bytes) {
        return Ok(h);
    }
    if strata.values.len() >= MAX_STRATA {
        return Err(RunError::Unsupported(format!(
            "more than {MAX_STRATA} strata"
        )));
    }
    let h = strata.values.len() as u32;
    let idx = UInt32Array::from(vec![row as u32]);
    let values = cols
        .iter()
        .map(|c| take(c.as_ref(), &idx, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(arrow_err("copying stratum values"))?;
    strata.values.push(values);
    strata.ids.insert(bytes.to_vec(), h);
    Ok(h)
}

/// A selected unit: how it is found again, and where it goes.
struct Selected {
    r: u64,
    hash40: u64,
    stratum: u32,
    part: u32,
}

impl Selected {
    fn new(e: UnitEntry, stratum: usize, part: usize) -> Self {
        Selected {
            r: e.r,
            hash40: e.hash40(),
            stratum: stratum as u32,
            part: part as u32,
        }
    }
}

/// What the selecting tasks share.
struct Lookup {
    /// Sorted by `hash40`.
    selected: Vec<Selected>,
    /// `hash40` → (first index, count) in `selected`.
    runs: HashMap<u64, (u32, u32), BuildHasherDefault<PassThrough>>,
    drawer: Drawer,
    hasher: KeyHasher,
    key: KeyOf,
    reservation: Mutex<MemoryReservation>,
    pool: Arc<dyn MemoryPool>,
    context: String,
    /// Rows read, told as the filter sees them (the reader decodes the
    /// other columns only for the rows it keeps).
    progress: Option<Arc<Progress>>,
    /// Every unit is selected: no filter, so the kept rows are the rows read.
    everything: bool,
}

impl Lookup {
    /// The lookup of `selected` units, by the hashes and draws of the
    /// counting pass; `progress` is told the rows read when it reads the
    /// table again.
    fn new(
        st: &Statement,
        mut selected: Vec<Selected>,
        everything: bool,
        (drawer, hasher): (Drawer, KeyHasher),
        pool: &Arc<dyn MemoryPool>,
        (context, progress): (String, Option<Arc<Progress>>),
    ) -> Result<Arc<Lookup>, RunError> {
        selected.sort_unstable_by_key(|s| s.hash40);
        let mut runs: HashMap<u64, (u32, u32), BuildHasherDefault<PassThrough>> =
            HashMap::default();
        for (i, s) in selected.iter().enumerate() {
            let run = runs.entry(s.hash40).or_insert((i as u32, 0));
            run.1 += 1;
        }
        Ok(Arc::new(Lookup {
            selected,
            runs,
            drawer,
            hasher,
            key: key_of(st)?,
            reservation: Mutex::new(MemoryConsumer::new("strat: selected rows").register(pool)),
            pool: pool.clone(),
            context,
            progress,
            everything,
        }))
    }

    /// The selected unit of a row whose unit hash (from
    /// [`UnitKeys::hash_into`]) is `hash`, and its draw. Rows whose hash is
    /// no selected unit's (nearly all, in a sample) are decided without
    /// their key text; the others' key text is written to `buf` and
    /// confirmed by its draw.
    fn find(
        &self,
        keys: &UnitKeys,
        row: usize,
        hash: u64,
        buf: &mut Vec<u8>,
    ) -> Option<(&Selected, u64)> {
        let &(start, count) = self.runs.get(&self.hasher.top40(hash))?;
        buf.clear();
        keys.write(row, buf);
        let r = self.drawer.draw(buf);
        let run = &self.selected[start as usize..(start + count) as usize];
        run.iter().find(|s| s.r == r).map(|s| (s, r))
    }
}

/// The part of a split's unit with draw `r`, from where each part's run of
/// draws starts in its stratum.
fn part_by_draw(starts: &[(u64, u32)], r: u64) -> Option<u32> {
    let i = starts.partition_point(|&(s, _)| s <= r);
    i.checked_sub(1).map(|i| starts[i].1)
}

/// A kept row: its place in the output order and in the kept rows.
#[derive(Clone, Copy)]
struct KeptRow {
    r: u64,
    /// Rows with one `unit` are rows of one unit (after the ordering by
    /// place, rows with one place and one unit key share one).
    unit: u64,
    part: u32,
    stratum: u32,
    row: u32,
}

impl KeptRow {
    fn same_unit(&self, other: &KeptRow) -> bool {
        self.r == other.r && self.unit == other.unit
    }
}

/// Sorts `rows` by `key`: each thread sorts a slice, then the slices are
/// merged.
fn sort_on_threads<T: Copy + Send, K: Ord>(
    rows: &mut Vec<T>,
    threads: usize,
    key: impl Fn(&T) -> K + Sync,
) {
    if threads < 2 || rows.len() < 1 << 16 {
        rows.sort_unstable_by_key(|r| key(r));
        return;
    }
    let chunk = rows.len().div_ceil(threads);
    let parts: Vec<&mut [T]> = rows.chunks_mut(chunk).collect();
    if map_on_threads(parts, threads, |part| part.sort_unstable_by_key(|r| key(r))).is_none() {
        // A sorting thread failed: sort here instead.
        rows.sort_unstable_by_key(|r| key(r));
        return;
    }
    let mut heads: Vec<&[T]> = rows.chunks(chunk).collect();
    let mut merged = Vec::with_capacity(rows.len());
    merge_sorted(
        &mut heads,
        |x| key(&x),
        |x| {
            merged.push(x);
            true
        },
    );
    *rows = merged;
}

/// Rows of one place whose units were met apart (`unit` differs): ordered
/// by unit key, and rows with one key given one `unit`.
fn same_key_same_unit(rows: &mut [KeptRow], unit_key: &impl Fn(&KeptRow) -> Vec<u8>) {
    let mut keyed: Vec<(Vec<u8>, KeptRow)> = rows.iter().map(|k| (unit_key(k), *k)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (key, k)) in keyed.iter().enumerate() {
        let unit = match i {
            0 => k.unit,
            _ if keyed[i - 1].0 == *key => rows[i - 1].unit,
            _ => k.unit,
        };
        rows[i] = KeptRow { unit, ..*k };
    }
}

/// Puts the rows of each unit (adjacent in `kept`) in row key order. Row
/// keys are compared column by column, and a column's text is written only
/// when a comparison gets to it (once per row, into one buffer per unit):
/// rows that differ in their first column never format the others.
fn order_within_units(
    kept: &mut [KeptRow],
    write_column: &(dyn Fn(u32, usize, &mut Vec<u8>) + Sync),
    width: usize,
) {
    let mut text: Vec<u8> = Vec::new();
    // Where row x's text of column c is in `text`: spans[c * m + x].
    let mut spans: Vec<Option<(usize, usize)>> = Vec::new();
    let mut order: Vec<usize> = Vec::new();
    let mut rows: Vec<KeptRow> = Vec::new();
    let mut i = 0;
    while i < kept.len() {
        let mut j = i + 1;
        while j < kept.len() && kept[j].same_unit(&kept[i]) {
            j += 1;
        }
        let m = j - i;
        if m > 1 {
            let unit = &kept[i..j];
            text.clear();
            spans.clear();
            spans.resize(width * m, None);
            let cache = std::cell::RefCell::new((&mut text, &mut spans));
            order.clear();
            order.extend(0..m);
            order.sort_by(|&a, &b| {
                let mut cache = cache.borrow_mut();
                let (text, spans) = &mut *cache;
                for c in 0..width {
                    for x in [a, b] {
                        if spans[c * m + x].is_none() {
                            let start = text.len();
                            write_column(unit[x].row, c, text);
                            spans[c * m + x] = Some((start, text.len()));
                        }
                    }
                    let at = |x: usize| spans[c * m + x].map_or(&text[..0], |(s, e)| &text[s..e]);
                    if let Some(o) = compare_row_key_column(at(a), at(b), c + 1 == width) {
                        return o;
                    }
                }
                unit[a].row.cmp(&unit[b].row)
            });
            rows.clear();
            rows.extend(order.iter().map(|&x| unit[x]));
            kept[i..j].copy_from_slice(&rows);
        }
        i = j;
    }
}

/// The kept rows of every task, their batches one after the other: a row's
/// `row` becomes its place among all the batches' rows, its `unit` one
/// unique across the tasks. At least one batch (an empty one
/// of `schema` when no row was kept). Fails past 2^32 rows (`what`).
fn join_kept(tasks: Vec<Kept>, schema: SchemaRef, what: &str) -> Result<KeptRows, RunError> {
    let mut batches = Vec::new();
    let mut kept: Vec<KeptRow> = Vec::new();
    let mut base = 0usize;
    let mut unit_base = 0u64;
    for (parts, units) in tasks {
        for (batch, mut rows) in parts {
            let Ok(b) = u32::try_from(base + batch.num_rows()).map(|_| base as u32) else {
                return Err(RunError::Unsupported(format!("more than 2^32 {what}")));
            };
            for r in &mut rows {
                r.row += b;
                r.unit += unit_base;
            }
            base += batch.num_rows();
            kept.extend(rows);
            batches.push(batch);
        }
        unit_base += units;
    }
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok((batches, kept))
}

/// Counts a batch of kept rows (and `rows` places in it) against the
/// memory pool: past `--memory-limit` the run fails (E0208).
fn reserve_kept(
    reservation: &Mutex<MemoryReservation>,
    pool: &dyn MemoryPool,
    context: &str,
    batch: &RecordBatch,
    rows: usize,
) -> Result<(), RunError> {
    let bytes = batch_bytes(batch) + rows * (std::mem::size_of::<KeptRow>() + 16);
    reservation
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .try_grow(bytes)
        .map_err(|e| over_memory_limit(context, pool, bytes, e))
}

/// Every kept row: the batches, the rows' places (numbered across the
/// batches) and the units' key texts.
type KeptRows = (Vec<RecordBatch>, Vec<KeptRow>);

/// A partition's kept rows: batches with their rows' places, and the key texts.
type Kept = (Vec<(RecordBatch, Vec<KeptRow>)>, u64);

/// Keeps the rows of selected units of one partition.
async fn keep_partition(
    mut stream: SendableRecordBatchStream,
    shared: Arc<Lookup>,
) -> Result<Kept, RunError> {
    let mut out = Vec::new();
    // Units kept so far: a new one each time the kept unit's key changes.
    let mut units = 0u64;
    let mut buf = Vec::with_capacity(64);
    let mut hashes = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(df_err(shared.context.clone()))?;
        if shared.everything {
            progress::read(&shared.progress, batch.num_rows());
        }
        let keys =
            UnitKeys::new(shared.key, batch.columns()).map_err(|e| RunError::Key(e.to_string()))?;
        keys.hash_into(&shared.hasher, batch.num_rows(), &mut hashes);
        let mut rows = Vec::new();
        let mut take_rows = Vec::new();
        // The previous row's unit (draw, part, stratum), when it is the same
        // (rows of a unit often come together).
        let mut prev: Vec<u8> = Vec::with_capacity(64);
        let mut prev_found: Option<Option<(u64, u32, u32)>> = None;
        let mut unit: Option<u64> = None;
        let mut prev_row: Option<usize> = None;
        for (row, &hash) in hashes.iter().enumerate() {
            if keys.is_null(row) {
                continue;
            }
            if !prev_row.is_some_and(|p| keys.same_value(p, row)) {
                let found = shared.find(&keys, row, hash, &mut buf);
                prev_found = Some(found.map(|(s, r)| (r, s.part, s.stratum)));
                // A kept unit's key text, unless it is the last one kept.
                if prev_found.is_some_and(|f| f.is_some()) && buf != prev {
                    std::mem::swap(&mut prev, &mut buf);
                    unit = None;
                }
            }
            prev_row = Some(row);
            if let Some(Some((r, part, stratum))) = prev_found {
                let id = *unit.get_or_insert_with(|| {
                    units += 1;
                    units - 1
                });
                rows.push(KeptRow {
                    r,
                    unit: id,
                    part,
                    stratum,
                    row: take_rows.len() as u32,
                });
                take_rows.push(row as u32);
            }
        }
        if take_rows.is_empty() {
            continue;
        }
        // Every row kept (a split): the batch as it is, without a copy.
        let kept = if take_rows.len() == batch.num_rows() {
            batch
        } else {
            let idx = UInt32Array::from(take_rows);
            let columns = batch
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &idx, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(arrow_err("copying the selected rows"))?;
            RecordBatch::try_new(batch.schema(), columns)
                .map_err(arrow_err("copying the selected rows"))?
        };
        reserve_kept(
            &shared.reservation,
            shared.pool.as_ref(),
            &shared.context,
            &kept,
            rows.len(),
        )?;
        out.push((kept, rows));
    }
    Ok((out, units))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows sorted on threads come out as one sort would put them, also
    /// with many equal keys (the merge takes from the first slice first).
    #[test]
    fn sorting_on_threads_equals_one_sort() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let rows: Vec<(u64, u32)> = (0..200_000u32)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 5_000, i)
            })
            .collect();
        for threads in [1, 2, 3, 7] {
            let mut ours = rows.clone();
            sort_on_threads(&mut ours, threads, |r| r.0);
            let mut expected = rows.clone();
            expected.sort_by_key(|r| r.0);
            let keys = |v: &[(u64, u32)]| v.iter().map(|r| r.0).collect::<Vec<_>>();
            assert_eq!(keys(&ours), keys(&expected), "{threads} threads");
            let mut a = ours.clone();
            a.sort();
            let mut b = rows.clone();
            b.sort();
            assert_eq!(a, b, "{threads} threads: the same rows");
        }
    }

    /// Buckets from several tasks are walked in draw order, each unit once,
    /// and a unit met in two strata stops the walk.
    #[test]
    fn sorted_units_merge_tasks_once_per_unit() {
        let e = |r: u64, h: u64, s: u64| UnitEntry {
            r,
            tag: (h << STRATUM_BITS) | s,
        };
        let mut tasks = Vec::new();
        // Task t holds units 500t .. 500t + 1000 (twice each): they overlap.
        for t in 0..3u64 {
            let mut b = Buckets::new();
            for i in 500 * t..500 * t + 1000 {
                let r = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                b.push(e(r, i, i % 4));
                b.push(e(r, i, i % 4));
            }
            b.compact();
            tasks.push(b.lists);
        }
        let units = SortedUnits(tasks);
        let mut seen = Vec::new();
        let walked = units.for_each_in(0..BUCKETS, |u| seen.push(u.order()));
        assert!(matches!(walked, Walked::All));
        let mut expected = seen.clone();
        expected.sort();
        expected.dedup();
        assert_eq!(seen, expected);
        assert_eq!(seen.len(), 2000);

        // Unit 1 in strata 0 and 1 (met twice in 1), among units of one
        // stratum: the walk stops at it, having visited the units before it.
        let mut spanning = Buckets::new();
        for (r, h, s) in [(43, 2, 0), (42, 1, 1), (41, 3, 2), (42, 1, 0), (42, 1, 1)] {
            spanning.push(e(r, h, s));
        }
        spanning.compact();
        let mut before = Vec::new();
        let walked =
            SortedUnits(vec![spanning.lists]).for_each_in(0..BUCKETS, |u| before.push(u.r));
        match walked {
            Walked::Spans(u) => assert_eq!((u.r, u.hash40(), u.stratum()), (42, 1, 0)),
            other => panic!("{other:?}"),
        }
        assert_eq!(before, [41]);
    }
}
