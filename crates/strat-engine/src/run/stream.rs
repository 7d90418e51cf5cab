//! The streaming runner: two passes over a table, holding 16 bytes per unit
//! and the selected rows — never the table (issue 6).
//!
//! # Plan
//!
//! 1. **Counting pass.** DataFusion reads only the unit column and the stratum
//!    expressions of the eligible rows (`where` applied, its columns read and
//!    dropped), one stream per partition, each consumed by its own task. Per
//!    row: the unit's key text (§6), its draw `r` (md5, no allocation), a
//!    second 64-bit hash `c` of the key (SipHash with a per-run random key)
//!    and the row's stratum (Arrow's row format of the stratum values, mapped
//!    to a stratum id). A unit is remembered as 16 bytes: `r` and `c`'s top 48
//!    bits with the stratum id in the low 16 — in one of 64 locked shards of a
//!    set, keyed by `r`. Two different key texts are taken for one unit only
//!    if both md5's first 64 bits and the keyed 48-bit hash agree (chance
//!    about `N² / 2^113` per run, and no input can be built to force it,
//!    since the hash key is secret and new on every run).
//! 2. **Allocation**, exactly as the in-memory runner: strata in stratum
//!    order, rules matched once per stratum, [`strat_alloc::allocate`].
//! 3. **Selection** from the unit set, without keys: per stratum a bounded
//!    heap of the `n_h + 1` smallest draws (exact), the draw threshold
//!    (Bernoulli), or all units sorted by draw (splits).
//! 4. **Materialising pass.** DataFusion reads the source columns again; a row
//!    is kept iff its unit is selected (looked up by `c`, confirmed by `r`).
//!    Only kept rows are copied; they are then put in §7 order (by unit key
//!    where draws tie, by row key within a unit).
//!
//! Whatever this plan cannot decide without key texts falls back to the
//! in-memory runner, which then gives the answer (or the exact error): two
//! units with equal draws on either side of a selection or split boundary
//! (order by key text), a unit spanning strata (its message names the
//! smallest such unit), more than 65,535 strata, and any error. Neyman,
//! unit aggregates, unit-less statements and statements reading another
//! statement use the in-memory runner directly.

use std::collections::{BinaryHeap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::Mutex;

use datafusion::arrow::array::new_empty_array;
use datafusion::arrow::compute::concat;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::MemoryReservation;

use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::*;

const SHARDS: usize = 64;
const MAX_STRATA: usize = 1 << 16;

/// Why the streaming plan handed the statement to the in-memory runner.
#[derive(Debug)]
pub(super) struct Fallback(pub &'static str);

/// One unit of the counting pass: its draw, and the top 48 bits of its keyed
/// hash with its stratum id in the low 16 bits. Equal iff `r` and the hash
/// bits agree (the stratum is the value).
#[derive(Clone, Copy, Debug)]
struct UnitEntry {
    r: u64,
    tag: u64,
}

impl UnitEntry {
    fn stratum(self) -> usize {
        (self.tag & 0xffff) as usize
    }
    fn hash48(self) -> u64 {
        self.tag >> 16
    }
}

impl PartialEq for UnitEntry {
    fn eq(&self, other: &Self) -> bool {
        self.r == other.r && self.hash48() == other.hash48()
    }
}
impl Eq for UnitEntry {}
impl Hash for UnitEntry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.r);
    }
}

/// A hasher for values that already are uniform 64-bit hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
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

type UnitSet = HashSet<UnitEntry, BuildHasherDefault<PassThrough>>;

/// The strata met so far: stratum values (Arrow row format) → id, and one
/// row of stratum values per id.
#[derive(Default)]
struct Strata {
    ids: HashMap<Vec<u8>, u16>,
    values: Vec<Vec<ArrayRef>>,
}

/// What the counting tasks share.
struct Counting {
    drawer: Drawer,
    hasher: RandomState,
    excluded: Option<Arc<HashSet<Vec<u8>>>>,
    fields: Vec<SortField>,
    units: Vec<Mutex<UnitSet>>,
    strata: Mutex<Strata>,
    reservation: Mutex<MemoryReservation>,
    context: String,
}

/// What one counting task saw besides units.
#[derive(Default)]
struct CountStats {
    null_rows: u64,
    excluded: HashSet<Vec<u8>>,
}

enum Stop {
    Fallback(&'static str),
    Error(RunError),
}

impl From<RunError> for Stop {
    fn from(e: RunError) -> Self {
        Stop::Error(e)
    }
}

fn shard(r: u64) -> usize {
    (r >> 58) as usize
}

/// The 48-bit keyed hash of a key text, as stored in [`UnitEntry::tag`].
fn hash48(hasher: &RandomState, key: &[u8]) -> u64 {
    hasher.hash_one(key) >> 16
}

/// Runs `st` by the streaming plan, or says why not.
pub(super) async fn run(
    ctx: &SessionContext,
    st: &Statement,
    split: Option<&ir::Split>,
    excluded: Option<&HashSet<Vec<u8>>>,
) -> Result<Result<RunOutput, Fallback>, RunError> {
    let ir::Source::Table(table) = &st.source else {
        return Ok(Err(Fallback("the source is another statement, whose output is in memory already")));
    };
    let Some(unit) = &st.unit else {
        return Ok(Err(Fallback("without `unit`, each row is a unit keyed by all its columns")));
    };
    if st.has_aggregates() {
        return Ok(Err(Fallback("unit aggregates are computed over each unit's rows in memory")));
    }
    if matches!(st.method, ir::Method::Neyman(_)) {
        return Ok(Err(Fallback("neyman's S_h is computed over each stratum's units in memory")));
    }
    let mut clock = Clock::new();
    let plan = StrataPlan::new(st);
    let pool = ctx.runtime_env().memory_pool.clone();
    let context = format!("reading table `{table}`");

    // 1. Counting pass.
    let df = match eligible(ctx, table, st).await {
        Ok(df) => df,
        Err(_) => return Ok(Err(Fallback("reading the table failed"))),
    };
    let mut select = vec![column(&unit.name)];
    select.extend(plan.projections(st)?);
    let Ok(df) = df.select(select) else {
        return Ok(Err(Fallback("evaluating `stratify by` failed")));
    };
    let types: Vec<DataType> = df.schema().fields()[1..]
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let fields: Vec<SortField> = types.iter().map(|t| SortField::new(t.clone())).collect();
    if !fields.is_empty() && RowConverter::new(fields.clone()).is_err() {
        return Ok(Err(Fallback("a stratum value type without a row format")));
    }
    let counting = Arc::new(Counting {
        drawer: Drawer::new(st.seed),
        hasher: RandomState::new(),
        excluded: excluded.map(|e| Arc::new(e.clone())),
        fields,
        units: (0..SHARDS).map(|_| Mutex::new(UnitSet::default())).collect(),
        strata: Mutex::new(Strata::default()),
        reservation: Mutex::new(MemoryConsumer::new("strat: units").register(&pool)),
        context: context.clone(),
    });
    let Ok(streams) = df.execute_stream_partitioned().await else {
        return Ok(Err(Fallback("planning the counting pass failed")));
    };
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(count_partition(s, counting.clone())))
        .collect();
    let mut null_rows = 0u64;
    let mut excluded_seen: HashSet<Vec<u8>> = HashSet::new();
    let mut stop = None;
    for t in tasks {
        match t.await {
            Ok(Ok(stats)) => {
                null_rows += stats.null_rows;
                excluded_seen.extend(stats.excluded);
            }
            Ok(Err(Stop::Error(e @ RunError::Memory { .. }))) => stop = Some(Err(e)),
            Ok(Err(Stop::Fallback(why))) => {
                stop.get_or_insert(Ok(Err(Fallback(why))));
            }
            Ok(Err(Stop::Error(_))) => {
                stop.get_or_insert(Ok(Err(Fallback("an error in the streaming pass"))));
            }
            Err(_) => {
                stop.get_or_insert(Ok(Err(Fallback("a streaming task failed"))));
            }
        }
    }
    if let Some(s) = stop {
        return s;
    }
    let counting = Arc::into_inner(counting).ok_or_else(|| {
        RunError::Statement("a counting task outlived the pass (internal error)".into())
    })?;
    let hasher = counting.hasher.clone();
    let drawer = counting.drawer.clone();
    let units: Vec<UnitSet> = counting
        .units
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    let strata = counting
        .strata
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let unit_reservation = counting
        .reservation
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());

    clock.lap("counting pass (unit and stratum columns, draws)");

    // 2. Strata in stratum order, and the allocation.
    let h_count = strata.values.len();
    let n_strata = st.strata.len();
    let mut value_columns: Vec<ArrayRef> = Vec::with_capacity(n_strata);
    for (i, t) in types.iter().enumerate().take(n_strata) {
        let parts: Vec<&dyn Array> = strata.values.iter().map(|v| v[i].as_ref()).collect();
        value_columns.push(if parts.is_empty() {
            new_empty_array(t)
        } else {
            concat(&parts).map_err(arrow_err("stratum values"))?
        });
    }
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
    let text_columns: Vec<TextColumn> =
        ordered.iter().map(TextColumn::new).collect::<Result<_, _>>()?;
    let stratum_texts: Vec<Vec<Option<String>>> = (0..h_count)
        .map(|k| text_columns.iter().map(|c| c.text(k)).collect())
        .collect();
    let stratum_strings: Vec<String> = stratum_texts.iter().map(|t| stratum_text(t)).collect();
    let mut sizes = vec![0u64; h_count];
    for set in &units {
        for e in set {
            sizes[rank[e.stratum()]] += 1;
        }
    }
    let starts: Vec<u32> = stratum_strings
        .iter()
        .map(|s| drawer.stratum_start(s))
        .collect();

    // 3. Selection: per unit its stratum (rank) and split.
    let mut selected: Vec<Selected> = Vec::new();
    let mut reports = Vec::with_capacity(h_count);
    let mut weights = vec![1.0f64; h_count];
    let mut alloc_warnings = Vec::new();
    let mut split_totals = Vec::new();
    let values_text = |k: usize| -> Vec<String> {
        stratum_texts[k]
            .iter()
            .map(|v| v.clone().unwrap_or_else(|| "∅".into()))
            .collect()
    };
    if let Some(split) = split {
        let shares: Vec<BigRational> = split.parts.iter().map(|(_, p)| p.clone()).collect();
        let parts = shares.len();
        let mut members: Vec<Vec<UnitEntry>> = vec![Vec::new(); h_count];
        for set in &units {
            for &e in set {
                members[rank[e.stratum()]].push(e);
            }
        }
        let thresholds = split.about.then(|| strat_alloc::about_thresholds(&shares));
        let mut totals = vec![0u64; parts];
        for (k, mut list) in members.into_iter().enumerate() {
            let n = list.len() as u64;
            let mut counts = vec![0u64; parts];
            match &thresholds {
                None => {
                    list.sort_unstable_by_key(|e| e.r);
                    let cut = strat_alloc::split_sizes(n, &shares, starts[k]);
                    let mut at = 0usize;
                    for (i, &size) in cut.iter().enumerate() {
                        let end = at + size as usize;
                        if at > 0 && at < list.len() && size > 0 && list[at - 1].r == list[at].r {
                            return Ok(Err(Fallback("two units tie on their draw at a split boundary")));
                        }
                        for e in &list[at..end] {
                            selected.push(Selected::new(*e, k, i));
                        }
                        counts[i] = size;
                        at = end;
                    }
                }
                Some(t) => {
                    for e in list {
                        let i = t.iter().position(|t| t.is_none_or(|t| e.r < t)).unwrap_or(parts - 1);
                        selected.push(Selected::new(e, k, i));
                        counts[i] += 1;
                    }
                }
            }
            for (t, c) in totals.iter_mut().zip(&counts) {
                *t += c;
            }
            reports.push(StratumReport {
                values: values_text(k),
                text: stratum_strings[k].clone(),
                population: n,
                target: Target::Exact(n),
                selected: n,
                weight: 1.0,
                split_counts: split.parts.iter().map(|(name, _)| name.clone()).zip(counts).collect(),
            });
        }
        split_totals = split.parts.iter().map(|(name, _)| name.clone()).zip(totals).collect();
    } else {
        let reps: Vec<usize> = (0..h_count).collect();
        let matched = match_rules(ctx, st, &ordered, &reps).await?;
        let inputs: Vec<StratumInput> = (0..h_count)
            .map(|k| StratumInput {
                units: sizes[k],
                start: starts[k],
                sd: None,
                rule: matched[k],
            })
            .collect();
        let allocation = strat_alloc::allocate(&inputs, &request(st))?;
        // Per stratum: keep all, the k smallest draws, or draws below t.
        enum Pick {
            All,
            Smallest(usize),
            Below(Option<u64>),
        }
        let picks: Vec<Pick> = allocation
            .targets
            .iter()
            .enumerate()
            .map(|(k, t)| match t {
                Target::Exact(n) if *n >= sizes[k] => Pick::All,
                Target::Exact(n) => Pick::Smallest(*n as usize),
                Target::Probability(p) => Pick::Below(strat_alloc::threshold(p)),
            })
            .collect();
        let mut heaps: Vec<BinaryHeap<u64>> = picks
            .iter()
            .map(|p| match p {
                Pick::Smallest(n) if *n > 0 => BinaryHeap::with_capacity(n + 1),
                _ => BinaryHeap::new(),
            })
            .collect();
        for set in &units {
            for &e in set {
                let k = rank[e.stratum()];
                match picks[k] {
                    Pick::All => selected.push(Selected::new(e, k, 0)),
                    Pick::Below(t) => {
                        if t.is_none_or(|t| e.r < t) {
                            selected.push(Selected::new(e, k, 0));
                        }
                    }
                    Pick::Smallest(0) => {}
                    Pick::Smallest(n) => {
                        let heap = &mut heaps[k];
                        if heap.len() <= n {
                            heap.push(e.r);
                        } else if heap.peek().is_some_and(|&top| e.r < top) {
                            heap.pop();
                            heap.push(e.r);
                        }
                    }
                }
            }
        }
        // The n smallest draws of a stratum: those below the (n+1)-th smallest,
        // unless it ties with the n-th (then key texts decide).
        let mut cut: Vec<Option<u64>> = vec![None; h_count];
        for (k, p) in picks.iter().enumerate() {
            if let Pick::Smallest(n) = *p
                && n > 0
            {
                let sorted = std::mem::take(&mut heaps[k]).into_sorted_vec();
                if sorted[n - 1] == sorted[n] {
                    return Ok(Err(Fallback("two units tie on their draw at a selection boundary")));
                }
                cut[k] = Some(sorted[n]);
            }
        }
        for set in &units {
            for &e in set {
                let k = rank[e.stratum()];
                if let Some(c) = cut[k]
                    && e.r < c
                {
                    selected.push(Selected::new(e, k, 0));
                }
            }
        }
        let mut chosen = vec![0u64; h_count];
        for s in &selected {
            chosen[s.stratum as usize] += 1;
        }
        for (k, target) in allocation.targets.iter().enumerate() {
            let n = sizes[k];
            let w = match target {
                Target::Exact(t) => {
                    let t = (*t).min(n);
                    if t == 0 { 0.0 } else { n as f64 / t as f64 }
                }
                Target::Probability(p) if p.numer() == &BigInt::from(0) => 0.0,
                Target::Probability(p) => ratio_to_f64(p.denom(), p.numer()),
            };
            weights[k] = w;
            reports.push(StratumReport {
                values: values_text(k),
                text: stratum_strings[k].clone(),
                population: n,
                target: target.clone(),
                selected: chosen[k],
                weight: w,
                split_counts: Vec::new(),
            });
        }
        alloc_warnings = allocation.warnings;
    }
    drop(units);
    drop(unit_reservation);

    clock.lap("allocation and selection");

    // 4. Materialising pass.
    let total_selected = selected.len() as u64;
    selected.sort_unstable_by_key(|s| s.hash48);
    let mut runs: HashMap<u64, (u32, u32), BuildHasherDefault<PassThrough>> = HashMap::default();
    for (i, s) in selected.iter().enumerate() {
        let run = runs.entry(s.hash48).or_insert((i as u32, 0));
        run.1 += 1;
    }
    let lookup = Arc::new(Lookup {
        selected,
        runs,
        drawer,
        hasher,
        unit_index: input_index(st, &unit.name)?,
        reservation: Mutex::new(MemoryConsumer::new("strat: selected rows").register(&pool)),
        context,
    });
    // The filter `strat_selected(unit)` goes into the Parquet reader
    // (pushdown_filters): it decodes the unit column, and the other columns
    // only for the rows of selected units (late materialisation).
    let late = pushdown_context(ctx);
    let selected_udf = ScalarUDF::from(SelectedUdf {
        lookup: lookup.clone(),
        signature: Signature::any(1, Volatility::Immutable),
    });
    let df = match eligible(&late, table, st).await {
        Ok(df) => df,
        Err(_) => return Ok(Err(Fallback("reading the table failed"))),
    };
    let Ok(df) = df.filter(selected_udf.call(vec![column(&unit.name)])) else {
        return Ok(Err(Fallback("planning the materialising pass failed")));
    };
    let mut select: Vec<Expr> = st.input.iter().map(|c| column(&c.name)).collect();
    select.extend(plan.projections(st)?);
    let Ok(df) = df.select(select) else {
        return Ok(Err(Fallback("evaluating `stratify by` failed")));
    };
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let Ok(streams) = df.execute_stream_partitioned().await else {
        return Ok(Err(Fallback("planning the materialising pass failed")));
    };
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(keep_partition(s, lookup.clone())))
        .collect();
    let mut kept_batches = Vec::new();
    let mut kept: Vec<KeptRow> = Vec::new();
    let mut arena: Vec<u8> = Vec::new();
    let mut stop = None;
    for t in tasks {
        match t.await {
            Ok(Ok((parts, keys))) => {
                let key_base = arena.len() as u64;
                arena.extend_from_slice(&keys);
                for (batch, mut rows) in parts {
                    // Each kept row is one row of its batch: rows are numbered
                    // across the batches as they will be concatenated.
                    let base = kept.len() as u32;
                    for r in &mut rows {
                        r.row += base;
                        r.key_at += key_base;
                    }
                    kept.extend(rows);
                    kept_batches.push(batch);
                }
            }
            Ok(Err(Stop::Error(e @ RunError::Memory { .. }))) => stop = Some(Err(e)),
            Ok(Err(Stop::Fallback(why))) => {
                stop.get_or_insert(Ok(Err(Fallback(why))));
            }
            Ok(Err(Stop::Error(_))) => {
                stop.get_or_insert(Ok(Err(Fallback("an error in the streaming pass"))));
            }
            Err(_) => {
                stop.get_or_insert(Ok(Err(Fallback("a streaming task failed"))));
            }
        }
    }
    if let Some(s) = stop {
        return s;
    }
    drop(selected_udf);
    let batch = concat_batches(&schema, &kept_batches).map_err(arrow_err("the selected rows"))?;
    drop(kept_batches);
    clock.lap("materialising pass (selected rows)");

    // §7 order: split, stratum, draw, unit key, then the row key.
    kept.sort_unstable_by(|a, b| {
        (a.part, a.stratum, a.r, a.key(&arena)).cmp(&(b.part, b.stratum, b.r, b.key(&arena)))
    });
    let same_unit = |a: &KeptRow, b: &KeptRow| a.r == b.r && a.key(&arena) == b.key(&arena);
    let units_found = kept.iter().zip(kept.iter().skip(1)).filter(|(a, b)| !same_unit(a, b)).count()
        + usize::from(!kept.is_empty());
    if units_found as u64 != total_selected {
        return Err(RunError::Statement(format!(
            "table `{table}` changed while strat read it: {units_found} of the {total_selected} selected units were found again; run again on data that does not change during the run"
        )));
    }
    let n_in = st.input.len();
    let input: Vec<ArrayRef> = batch.columns()[..n_in].to_vec();
    if let Ok(rk) = RowKeys::new(&input) {
        let mut i = 0;
        while i < kept.len() {
            let mut j = i + 1;
            while j < kept.len() && same_unit(&kept[j], &kept[i]) {
                j += 1;
            }
            if j - i > 1 {
                kept[i..j].sort_by_cached_key(|k| {
                    let mut b = Vec::new();
                    rk.write(k.row as usize, &mut b);
                    (b, k.row)
                });
            }
            i = j;
        }
    }
    let indices = UInt32Array::from_iter_values(kept.iter().map(|k| k.row));
    let mut fields = Vec::with_capacity(st.output.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(st.output.len());
    for o in &st.output {
        let array: ArrayRef = match o {
            ir::Output::Column(c) => take(input[input_index(st, &c.name)?].as_ref(), &indices, None)
                .map_err(arrow_err("output"))?,
            ir::Output::Stratum { index, .. } => {
                let a = batch
                    .column_by_name(&format!("{STRATUM_PREFIX}{index}"))
                    .ok_or_else(|| RunError::Statement("a stratum column is missing (internal error)".into()))?;
                take(a.as_ref(), &indices, None).map_err(arrow_err("output"))?
            }
            ir::Output::Weight => Arc::new(Float64Array::from_iter_values(
                kept.iter().map(|k| weights[k.stratum as usize]),
            )),
            ir::Output::StratumText => Arc::new(StringArray::from_iter_values(
                kept.iter().map(|k| stratum_strings[k.stratum as usize].as_str()),
            )),
            ir::Output::SplitName => {
                let parts = split.map_or(&[][..], |s| s.parts.as_slice());
                Arc::new(StringArray::from_iter_values(
                    kept.iter().map(|k| parts[k.part as usize].0.as_str()),
                ))
            }
        };
        fields.push(Field::new(o.name(), array.data_type().clone(), true));
        columns.push(array);
    }
    let out_schema = Arc::new(Schema::new(fields));
    let out = RecordBatch::try_new_with_options(
        out_schema.clone(),
        columns,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(indices.len())),
    )
    .map_err(arrow_err("building the output"))?;
    drop(batch);
    drop(lookup);
    clock.lap("output order and columns");

    let mut warnings = Vec::new();
    if null_rows > 0 {
        warnings.push(format!(
            "{null_rows} eligible row(s) have a NULL `{}` and belong to no unit; they are left out",
            unit.name
        ));
    }
    for w in &alloc_warnings {
        warnings.push(warning_text(w, &stratum_strings, st));
    }
    warnings.extend(unknown_rule_values(st, &stratum_texts));
    Ok(Ok(RunOutput {
        batches: vec![out],
        schema: out_schema,
        report: Report {
            total_population: sizes.iter().sum(),
            total_selected,
            strata: reports,
            null_units: null_rows,
            excluded_units: excluded_seen.len() as u64,
            seed: st.seed,
            warnings,
            split_totals,
        },
        plan: Plan::Streaming,
        profile: Profile { phases: clock.phases, fallback: None },
    }))
}

/// A context over the same tables and runtime whose Parquet scans evaluate
/// filters while decoding.
fn pushdown_context(ctx: &SessionContext) -> SessionContext {
    // Not creating a default catalog: that would replace the shared one,
    // and with it the caller's tables.
    let mut config = ctx.copied_config().with_create_default_catalog_and_schema(false);
    config.options_mut().execution.parquet.pushdown_filters = true;
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_config(config)
        .build();
    SessionContext::new_with_state(state)
}

/// `strat_selected(unit) -> Boolean`: is this the unit of a selected unit?
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
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let [key] = args.args.as_slice() else {
            return datafusion::common::exec_err!("strat_selected takes 1 argument");
        };
        let keys = key.to_array(args.number_rows)?;
        let kc = KeyColumn::unit(keys.as_ref())
            .or_else(|e| datafusion::common::exec_err!("strat_selected: {e}"))?;
        let mut buf = Vec::with_capacity(64);
        let out: BooleanArray = (0..keys.len())
            .map(|row| {
                if kc.is_null(row) {
                    return Some(false);
                }
                buf.clear();
                let _ = kc.write(row, &mut buf);
                Some(self.lookup.find(&buf).is_some())
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
        Clock { at: std::time::Instant::now(), phases: Vec::new() }
    }
    fn lap(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        self.phases.push((phase, now - self.at));
        self.at = now;
    }
}

/// The eligible rows of a table (its `where` applied).
async fn eligible(ctx: &SessionContext, table: &str, st: &Statement) -> Result<DataFrame, RunError> {
    let mut df = ctx
        .table(TableReference::bare(table))
        .await
        .map_err(df_err(format!("reading table `{table}`")))?;
    if let Some(f) = &st.filter {
        df = df
            .filter(lower_expr(f, None)?)
            .map_err(df_err("evaluating `where`"))?;
    }
    Ok(df)
}

/// Counts the units of one partition into the shared set.
async fn count_partition(
    mut stream: SendableRecordBatchStream,
    shared: Arc<Counting>,
) -> Result<CountStats, Stop> {
    let mut stats = CountStats::default();
    let converter = if shared.fields.is_empty() {
        None
    } else {
        Some(RowConverter::new(shared.fields.clone()).map_err(|_| Stop::Fallback("a stratum value type without a row format"))?)
    };
    // Stratum values → id, for the strata this task has met.
    let mut known: HashMap<Vec<u8>, u16> = HashMap::new();
    let mut buf = Vec::with_capacity(64);
    let mut pending: Vec<Vec<UnitEntry>> = vec![Vec::new(); SHARDS];
    let mut prev: Option<UnitEntry> = None;
    let mut prev_key: Vec<u8> = Vec::with_capacity(64);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|_| Stop::Fallback("reading the table failed"))?;
        let keys = KeyColumn::unit(batch.column(0).as_ref()).map_err(|_| Stop::Fallback("the unit column has no key text"))?;
        let strata_cols = &batch.columns()[1..];
        let rows = match &converter {
            Some(c) => Some(c.convert_columns(strata_cols).map_err(|_| Stop::Fallback("stratum values without a row format"))?),
            None => None,
        };
        for row in 0..batch.num_rows() {
            if keys.is_null(row) {
                stats.null_rows += 1;
                continue;
            }
            buf.clear();
            let _ = keys.write(row, &mut buf);
            if let Some(ex) = &shared.excluded
                && ex.contains(buf.as_slice())
            {
                if !stats.excluded.contains(buf.as_slice()) {
                    stats.excluded.insert(buf.clone());
                }
                continue;
            }
            let h = match &rows {
                None => 0,
                Some(rows) => {
                    let bytes = rows.row(row);
                    match known.get(bytes.as_ref()) {
                        Some(&h) => h,
                        None => {
                            let h = register(&shared, bytes.as_ref(), strata_cols, row)?;
                            known.insert(bytes.as_ref().to_vec(), h);
                            h
                        }
                    }
                }
            };
            if rows.is_none() && known.is_empty() {
                register(&shared, &[], strata_cols, row)?;
                known.insert(Vec::new(), 0);
            }
            // Rows of one unit often come together (events by member): the
            // previous row's unit is known without hashing.
            if let Some(p) = prev
                && buf == prev_key
            {
                if p.stratum() != usize::from(h) {
                    return Err(Stop::Fallback("a unit spans strata"));
                }
                continue;
            }
            let r = shared.drawer.draw(&buf);
            let tag = (hash48(&shared.hasher, &buf) << 16) | u64::from(h);
            let e = UnitEntry { r, tag };
            pending[shard(r)].push(e);
            prev = Some(e);
            std::mem::swap(&mut prev_key, &mut buf);
        }
        let mut added = 0usize;
        for (s, entries) in pending.iter_mut().enumerate() {
            if entries.is_empty() {
                continue;
            }
            let mut set = shared.units[s].lock().unwrap_or_else(|p| p.into_inner());
            for e in entries.drain(..) {
                // One probe for a new unit; a second only for a unit seen before.
                if set.insert(e) {
                    added += 1;
                } else if set.get(&e).is_some_and(|old| old.stratum() != e.stratum()) {
                    return Err(Stop::Fallback("a unit spans strata"));
                }
            }
        }
        // A set holds 16 bytes and a control byte per slot, at most 7/8 full
        // and half full after growing: about 32 bytes a unit at worst.
        shared
            .reservation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_grow(added * 32)
            .map_err(|e| {
                Stop::Error(RunError::Memory {
                    context: shared.context.clone(),
                    error: e,
                })
            })?;
    }
    Ok(stats)
}

/// The global id of a stratum first met at `row` (registering its values).
fn register(shared: &Counting, bytes: &[u8], cols: &[ArrayRef], row: usize) -> Result<u16, Stop> {
    let mut strata = shared.strata.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(&h) = strata.ids.get(bytes) {
        return Ok(h);
    }
    if strata.values.len() >= MAX_STRATA {
        return Err(Stop::Fallback("more than 65,536 strata"));
    }
    let h = strata.values.len() as u16;
    let idx = UInt32Array::from(vec![row as u32]);
    let values = cols
        .iter()
        .map(|c| take(c.as_ref(), &idx, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Stop::Fallback("copying stratum values failed"))?;
    strata.values.push(values);
    strata.ids.insert(bytes.to_vec(), h);
    Ok(h)
}

/// A selected unit: how it is found again, and where it goes.
struct Selected {
    r: u64,
    hash48: u64,
    stratum: u32,
    part: u32,
}

impl Selected {
    fn new(e: UnitEntry, stratum: usize, part: usize) -> Self {
        Selected {
            r: e.r,
            hash48: e.hash48(),
            stratum: stratum as u32,
            part: part as u32,
        }
    }
}

/// What the selecting tasks share.
struct Lookup {
    /// Sorted by `hash48`.
    selected: Vec<Selected>,
    /// `hash48` → (first index, count) in `selected`.
    runs: HashMap<u64, (u32, u32), BuildHasherDefault<PassThrough>>,
    drawer: Drawer,
    hasher: RandomState,
    unit_index: usize,
    reservation: Mutex<MemoryReservation>,
    context: String,
}

impl Lookup {
    /// The selected unit of a key text, and its draw.
    fn find(&self, key: &[u8]) -> Option<(&Selected, u64)> {
        let &(start, count) = self.runs.get(&hash48(&self.hasher, key))?;
        let r = self.drawer.draw(key);
        let run = &self.selected[start as usize..(start + count) as usize];
        run.iter().find(|s| s.r == r).map(|s| (s, r))
    }
}

/// A kept row: its place in the output order and in the kept rows.
struct KeptRow {
    r: u64,
    /// The unit's key text: `arena[key_at..key_at + key_len]`.
    key_at: u64,
    key_len: u32,
    part: u32,
    stratum: u32,
    row: u32,
}

impl KeptRow {
    fn key<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.key_at as usize..self.key_at as usize + self.key_len as usize]
    }
}

/// A partition's kept rows: batches with their rows' places, and the key texts.
type Kept = (Vec<(RecordBatch, Vec<KeptRow>)>, Vec<u8>);

/// Keeps the rows of selected units of one partition.
async fn keep_partition(
    mut stream: SendableRecordBatchStream,
    shared: Arc<Lookup>,
) -> Result<Kept, Stop> {
    let mut out = Vec::new();
    let mut arena = Vec::new();
    let mut buf = Vec::with_capacity(64);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|_| Stop::Fallback("reading the table failed"))?;
        let keys =
            KeyColumn::unit(batch.column(shared.unit_index).as_ref()).map_err(|_| Stop::Fallback("the unit column has no key text"))?;
        let mut rows = Vec::new();
        let mut take_rows = Vec::new();
        for row in 0..batch.num_rows() {
            if keys.is_null(row) {
                continue;
            }
            buf.clear();
            let _ = keys.write(row, &mut buf);
            if let Some((s, r)) = shared.find(&buf) {
                rows.push(KeptRow {
                    r,
                    key_at: arena.len() as u64,
                    key_len: buf.len() as u32,
                    part: s.part,
                    stratum: s.stratum,
                    row: take_rows.len() as u32,
                });
                arena.extend_from_slice(&buf);
                take_rows.push(row as u32);
            }
        }
        if take_rows.is_empty() {
            continue;
        }
        let idx = UInt32Array::from(take_rows);
        let columns = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &idx, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Stop::Fallback("copying the selected rows failed"))?;
        let kept = RecordBatch::try_new(batch.schema(), columns).map_err(|_| Stop::Fallback("copying the selected rows failed"))?;
        let bytes = kept.get_array_memory_size() + rows.len() * (std::mem::size_of::<KeptRow>() + 16);
        shared
            .reservation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_grow(bytes)
            .map_err(|e| {
                Stop::Error(RunError::Memory {
                    context: shared.context.clone(),
                    error: e,
                })
            })?;
        out.push((kept, rows));
    }
    Ok((out, arena))
}
