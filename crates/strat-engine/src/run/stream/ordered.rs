//! The rows of a split in spec §7.3 order, for a table of any size.
//!
//! A split outputs every eligible row, so its rows cannot be held. After the
//! counting pass has placed every unit (its part follows from its stratum
//! and draw: where each part's run of draws starts in the stratum), a second
//! pass reads the rows again and gives each its place — `(part, stratum,
//! draw)` packed in one 128-bit integer by the `strat_place` UDF — and
//! [`spread`] writes them to bucket files by ranges of places; then each
//! bucket in turn is read back, ordered in memory and written out. Rows with
//! one place (a unit's rows, or units whose draws tie) are put in unit key
//! and row key order, and the units met must be the units counted (else the
//! table changed).

use datafusion::arrow::array::{Decimal128Array, Decimal128Builder};
use std::collections::VecDeque;

use datafusion::arrow::compute::interleave_record_batch;
use datafusion::arrow::error::ArrowError;
use datafusion::execution::memory_pool::MemoryConsumer;

use super::*;

mod spread;

use spread::{Bucket, Segments, Spread};

/// The name of the place column.
const PLACE: &str = "\u{1}strat_place";

/// Where a place's part starts: above the draw and the stratum id.
const PART_AT: u32 = 64 + STRATUM_BITS;

/// A place: `part << 88 | stratum << 64 | r` (stratum in stratum order, an
/// id of [`STRATUM_BITS`]; below 10^38, as a `Decimal128(38, 0)` must be).
fn place(part: u32, stratum: u32, r: u64) -> i128 {
    (i128::from(part) << PART_AT) | (i128::from(stratum) << 64) | i128::from(r)
}

fn unpack(place: i128) -> (u32, u32, u64) {
    (
        (place >> PART_AT) as u32,
        ((place >> 64) & (MAX_STRATA as i128 - 1)) as u32,
        place as u64,
    )
}

/// What the `strat_place` UDF needs to place a row.
pub(super) struct Placer {
    pub drawer: Drawer,
    pub key: KeyOf,
    pub filters: UnitFilters,
    pub fields: Vec<SortField>,
    /// Stratum values (Arrow row format) → stratum id of the counting pass.
    pub ids: HashMap<Vec<u8>, u32>,
    /// Stratum id → place in stratum order.
    pub rank: Vec<usize>,
    /// Per stratum (in stratum order), where each part's run of draws starts.
    pub starts: Vec<Vec<(u64, u32)>>,
    /// The parts of units whose draws tie at a boundary, by key text (their
    /// draw alone does not tell).
    pub tie_parts: HashMap<Vec<u8>, u32>,
    /// Per stratum (in stratum order), its rows.
    pub strata_rows: Vec<u64>,
    /// Rows placed, told a batch at a time.
    pub progress: Option<Arc<Progress>>,
}

impl Placer {
    /// The places of a batch's rows: NULL for a row without a unit or whose
    /// unit a `keep`/`exclude` filter drops. `keys` are the key columns,
    /// `strata` the stratum values.
    fn places(
        &self,
        keys: &[ArrayRef],
        strata: &[ArrayRef],
        rows: usize,
    ) -> Result<Decimal128Array, String> {
        let keys = UnitKeys::new(self.key.leading(), keys).map_err(|e| e.to_string())?;
        let converted = if self.fields.is_empty() {
            None
        } else {
            let c = RowConverter::new(self.fields.clone()).map_err(|e| e.to_string())?;
            Some(c.convert_columns(strata).map_err(|e| e.to_string())?)
        };
        // Each new unit's key text once (rows of one unit often come
        // together), drawn 8 at a time; `unit[row]` is the row's unit among
        // them, or None for a row without one.
        let (mut texts, mut ends) = (Vec::with_capacity(rows * 16), Vec::with_capacity(rows));
        let mut unit: Vec<Option<u32>> = Vec::with_capacity(rows);
        let mut buf = Vec::with_capacity(64);
        let mut prev: Option<(usize, Option<u32>)> = None;
        for row in 0..rows {
            if keys.is_null(row) {
                unit.push(None);
                continue;
            }
            let u = match prev {
                Some((p, u)) if keys.same_value(p, row) => u,
                _ => {
                    buf.clear();
                    keys.write(row, &mut buf);
                    (!self.filters.drops(&buf)).then(|| {
                        texts.extend_from_slice(&buf);
                        ends.push(texts.len());
                        ends.len() as u32 - 1
                    })
                }
            };
            prev = Some((row, u));
            unit.push(u);
        }
        let mut draws = Vec::with_capacity(ends.len());
        self.drawer.draw_many(&texts, &ends, &mut draws);
        let mut out = Decimal128Builder::with_capacity(rows);
        for (row, u) in unit.into_iter().enumerate() {
            let Some(u) = u else {
                out.append_null();
                continue;
            };
            let r = draws[u as usize];
            let id = match &converted {
                None => 0,
                Some(c) => *self
                    .ids
                    .get(c.row(row).as_ref())
                    .ok_or("a row has stratum values the counting pass did not meet: the table changed while strat read it")?,
            };
            let k = self.rank[id as usize];
            let tied = || {
                let from = if u == 0 { 0 } else { ends[u as usize - 1] };
                self.tie_parts.get(&texts[from..ends[u as usize]]).copied()
            };
            let part = (!self.tie_parts.is_empty())
                .then(tied)
                .flatten()
                .or_else(|| part_by_draw(&self.starts[k], r))
                .ok_or("a row of a split has no part (internal error)")?;
            out.append_value(place(part, k as u32, r));
        }
        out.finish()
            .with_precision_and_scale(38, 0)
            .map_err(|e| e.to_string())
    }
}

/// `strat_place(key columns…, stratum values…) -> Decimal128(38, 0)`.
struct PlaceUdf {
    placer: Arc<Placer>,
    key_columns: usize,
    signature: Signature,
}

impl std::fmt::Debug for PlaceUdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "strat_place")
    }
}
impl PartialEq for PlaceUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.placer, &other.placer)
    }
}
impl Eq for PlaceUdf {}
impl Hash for PlaceUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.placer), state);
    }
}

impl ScalarUDFImpl for PlaceUdf {
    fn name(&self) -> &str {
        "strat_place"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Decimal128(38, 0))
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        progress::read(&self.placer.progress, args.number_rows);
        let (keys, strata) = columns.split_at(self.key_columns);
        match self.placer.places(keys, strata, args.number_rows) {
            Ok(a) => Ok(ColumnarValue::Array(Arc::new(a))),
            Err(e) => datafusion::common::exec_err!("{e}"),
        }
    }
}

/// What the ordered rows must add up to, and how output columns are made.
pub(super) struct Finish {
    pub st: Statement,
    pub split: ir::Split,
    pub stratum_strings: Vec<String>,
    pub units: u64,
    pub check: u64,
    /// The source, as messages name it.
    pub what: String,
    /// Whether the source's `_weight` weights its rows.
    pub weighted: bool,
    pub threads: usize,
}

/// The split's rows in §7.3 order, as a stream of output batches; and the
/// output schema.
pub(super) async fn split_rows(
    ctx: &SessionContext,
    st: &Statement,
    source: &Rows,
    placer: Placer,
    finish: Finish,
) -> Result<(RowStream, SchemaRef), RunError> {
    let segments = Segments::new(&placer.starts, &placer.strata_rows);
    let rows: u64 = placer.strata_rows.iter().sum();
    let df = placed_rows(ctx, st, source, placer).await?;
    let sorted_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let empty = RecordBatch::new_empty(sorted_schema.clone());
    let (_, schema) = finish.output(&empty, &[])?;
    let streams = df
        .execute_stream_partitioned()
        .await
        .map_err(df_err(format!("reading {}", source.what)))?;
    let ordering = Ordering {
        env: ctx.runtime_env(),
        schema: sorted_schema,
        segments,
        rows,
        tally: Tally::default(),
        finish: Arc::new(finish),
    };
    // Ordered on a task of its own, a few batches ahead of the writer: the
    // ordering of a bucket and the encoding of the last one run at once.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = ordering.run(streams, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    let rows = futures::stream::unfold(rx, |mut rx| async move {
        let next = rx.recv().await;
        next.map(|item| (item, rx))
    });
    Ok((Box::pin(rows), schema))
}

/// The eligible rows with their stratum values and place (the last
/// column); rows without a place (no unit, or dropped by a unit filter) left
/// out.
async fn placed_rows(
    ctx: &SessionContext,
    st: &Statement,
    source: &Rows,
    placer: Placer,
) -> Result<DataFrame, RunError> {
    let n_in = st.input.len();
    let mut select: Vec<Expr> = st.input.iter().map(|c| column(&c.name)).collect();
    select.extend(source.strata(st)?);
    let df = source
        .eligible(&place_after_where(ctx), st, None, Columns::All)
        .await?
        .select(select)
        .map_err(df_err("evaluating `stratify by`"))?;
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut args = key_columns(st);
    let key_columns = args.len();
    args.extend(names[n_in..].iter().map(|n| column(n)));
    // Volatile, so that no optimizer moves it below the `where` filter: it
    // must see eligible rows only (every one of them has a place).
    let udf = ScalarUDF::from(PlaceUdf {
        placer: Arc::new(placer),
        key_columns,
        signature: Signature::variadic_any(Volatility::Volatile),
    });
    // Views become plain strings before the buckets: a piece of a batch of
    // views would keep the whole batch it points into alive (the output is
    // plain anyway). Stratum columns only where the output shows them: the
    // rest is written to disk and read back for nothing.
    let shown = shown_strata(st);
    let mut all: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < n_in || shown[i - n_in])
        .map(|(_, f)| match plain_type(f.data_type()) {
            Some(t) => datafusion::logical_expr::cast(column(f.name()), t).alias(f.name()),
            None => column(f.name()),
        })
        .collect();
    all.push(udf.call(args).alias(PLACE));
    df.select(all)
        .and_then(|df| df.filter(column(PLACE).is_not_null()))
        .map_err(df_err("placing the split's rows"))
}

/// Per stratum column, whether the output shows it.
fn shown_strata(st: &Statement) -> Vec<bool> {
    let mut shown = vec![false; st.strata.len()];
    for o in &st.output {
        if let ir::Output::Stratum { index, .. } = o {
            shown[*index] = true;
        }
    }
    shown
}

/// A context over the same tables and runtime, with big batches, whose
/// physical optimizer does not push filters down: it would move `strat_place(…) IS NOT NULL` below
/// the `where` filter (even though the UDF is volatile), and a place is only
/// defined for an eligible row.
fn place_after_where(ctx: &SessionContext) -> SessionContext {
    let state = ctx.state();
    let rules = state
        .physical_optimizers()
        .iter()
        .filter(|r| !r.name().starts_with("FilterPushdown"))
        .cloned()
        .collect();
    let state = SessionStateBuilder::new_from_existing(with_big_batches(state))
        .with_physical_optimizer_rules(rules)
        .build();
    SessionContext::new_with_state(state)
}

/// What a bucket may hold in memory, at most.
const BUCKET_BYTES: usize = 64 << 20;

/// The buckets' reservation in shares of a bucket: two buckets are ordered
/// at once, each held twice (its rows read back, and their ordered copy).
const BUCKET_SHARES: usize = 4;

/// The least a bucket may hold: below it the run fails for want of memory.
const MIN_BUCKET_BYTES: usize = 16 << 10;

type Sender = tokio::sync::mpsc::Sender<Result<RecordBatch, RunError>>;

/// The ordering pass: spreads the placed rows over bucket files, then orders
/// and sends each bucket in turn.
struct Ordering {
    env: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    /// The placed rows' schema.
    schema: SchemaRef,
    segments: Segments,
    /// The rows the counting pass counted.
    rows: u64,
    tally: Tally,
    finish: Arc<Finish>,
}

impl Ordering {
    async fn run(
        mut self,
        mut streams: Vec<SendableRecordBatchStream>,
        tx: &Sender,
    ) -> Result<(), RunError> {
        let what = self.finish.what.clone();
        let read_err = |e| input_error(&what, e);
        let spill_err = |e| sort_error(&what, e);
        // The first batch tells how many bytes a row takes.
        let mut first = None;
        for (i, s) in streams.iter_mut().enumerate() {
            if let Some(b) = s.next().await.transpose().map_err(read_err)? {
                first = Some((i, b));
                break;
            }
        }
        let Some((at, first)) = first else {
            return self.verify();
        };
        let pool = self.env.memory_pool.clone();
        let mut reservation = MemoryConsumer::new("strat: a split's buckets")
            .with_can_spill(true)
            .register(&pool);
        let held = reserve(&mut reservation, &pool, &self.finish.what)?;
        let per_bucket = rows_per_bucket(held, first.get_array_memory_size(), first.num_rows());
        let bounds = self
            .segments
            .bounds(i128::MIN, i128::MAX, self.rows as f64, per_bucket);
        let tasks = streams.len();
        let spread = Arc::new(self.spread(bounds, held, tasks));
        let mut first = Some((at, first));
        let handles: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, mut stream)| {
                let mut spreader = spread.task();
                let head = first.take_if(|(a, _)| *a == i).map(|(_, b)| b);
                let what = what.clone();
                tokio::spawn(async move {
                    let spill_err = |e| sort_error(&what, e);
                    if let Some(b) = head {
                        spreader.push(&b).map_err(spill_err)?;
                    }
                    while let Some(b) = stream.next().await {
                        let b = b.map_err(|e| input_error(&what, e))?;
                        spreader.push(&b).map_err(spill_err)?;
                    }
                    spreader.flush_all().map_err(spill_err)
                })
            })
            .collect();
        for h in handles {
            h.await
                .map_err(|e| RunError::Statement(format!("a task placing rows failed: {e}")))??;
        }
        let spread = Arc::into_inner(spread).ok_or_else(|| {
            RunError::Statement("a task placing rows outlived the pass (internal error)".into())
        })?;
        let buckets = spread.finish().map_err(spill_err)?;
        let buckets = self.fit(buckets, held).await?;
        // Two buckets ordered at once (each on a blocking thread), sent in
        // order.
        let finish = self.finish.clone();
        let mut ordered = futures::stream::iter(buckets)
            .map(|bucket| {
                let (finish, pool) = (finish.clone(), pool.clone());
                tokio::task::spawn_blocking(move || order_bucket(bucket, held, &finish, &pool))
            })
            .buffered(2);
        while let Some(done) = ordered.next().await {
            let chunks = done
                .map_err(|e| RunError::Statement(format!("a task ordering rows failed: {e}")))??;
            for chunk in chunks {
                let out = emit(&self.finish, chunk, &mut self.tally)?;
                if tx.send(Ok(out)).await.is_err() {
                    return Ok(());
                }
            }
        }
        self.verify()
    }

    /// The units met must be the units counted.
    fn verify(&self) -> Result<(), RunError> {
        let f = &self.finish;
        if self.tally.units != f.units || self.tally.check != f.check {
            return Err(RunError::Statement(format!(
                "{} changed while strat read it: the {} units counted were not found again as they were counted; run again on data that does not change during the run",
                f.what, f.units
            )));
        }
        Ok(())
    }

    fn spread(&self, bounds: spread::Bounds, held: usize, tasks: usize) -> Spread {
        let disk = self.env.disk_manager.clone();
        Spread::new(
            disk,
            self.schema.clone(),
            bounds,
            held / BUCKET_SHARES,
            tasks,
        )
    }

    /// `buckets`, each too big to order within its share of `held` spread
    /// again over finer ones (unless it is one place: a unit's rows, held
    /// as they are).
    async fn fit(&self, buckets: Vec<Bucket>, held: usize) -> Result<Vec<Bucket>, RunError> {
        let mut pending: VecDeque<Bucket> = buckets.into();
        let mut fitting = Vec::with_capacity(pending.len());
        while let Some(bucket) = pending.pop_front() {
            if bucket.bytes <= held / BUCKET_SHARES || bucket.from.saturating_add(1) >= bucket.to {
                fitting.push(bucket);
                continue;
            }
            let finer = self.spread_again(&bucket, held).await?;
            if finer.iter().filter(|b| b.rows > 0).count() > 1 {
                finer.into_iter().rev().for_each(|b| pending.push_front(b));
            } else {
                fitting.extend(finer);
            }
        }
        Ok(fitting)
    }

    /// The rows of `bucket`, spread over finer buckets.
    async fn spread_again(&self, bucket: &Bucket, held: usize) -> Result<Vec<Bucket>, RunError> {
        let read_err = |e| sort_error(&self.finish.what, e);
        let per_bucket = rows_per_bucket(held, bucket.bytes, bucket.rows as usize);
        let bounds = self
            .segments
            .bounds(bucket.from, bucket.to, bucket.rows as f64, per_bucket);
        let spread = Arc::new(self.spread(bounds, held, 1));
        let mut spreader = spread.task();
        if let Some(file) = &bucket.file {
            // Batch by batch: the bucket is too big to hold.
            for b in spread::read(file).map_err(read_err)? {
                spreader.push(&b.map_err(read_err)?).map_err(read_err)?;
            }
        }
        spreader.flush_all().map_err(read_err)?;
        let spread = Arc::into_inner(spread).ok_or_else(|| {
            RunError::Statement("a bucket outlived its spread (internal error)".into())
        })?;
        spread.finish().map_err(read_err)
    }
}

/// The units met, to be checked against the units counted.
#[derive(Default)]
struct Tally {
    units: u64,
    check: u64,
}

/// Reads `bucket` back and orders its rows, in chunks.
fn order_bucket(
    bucket: Bucket,
    held: usize,
    finish: &Finish,
    pool: &Arc<dyn MemoryPool>,
) -> Result<Vec<RecordBatch>, RunError> {
    let Some(file) = bucket.file else {
        return Ok(Vec::new());
    };
    let what = &finish.what;
    // What it holds beyond its share of the budget (a unit's rows too many
    // to spread): from the rest of the memory, or a clean failure.
    let over = MemoryConsumer::new("strat: a split's bucket over its share").register(pool);
    let extra = bucket
        .bytes
        .saturating_sub(held / BUCKET_SHARES)
        .saturating_mul(2);
    over.try_grow(extra)
        .map_err(|e| crate::run::over_memory_limit(what, pool.as_ref(), extra, e))?;
    let batches = spread::read(&file)
        .and_then(|batches| batches.collect::<Result<Vec<_>, _>>())
        .map_err(|e| sort_error(what, e))?;
    drop(file);
    ordered_chunks(&batches).map_err(arrow_err("ordering rows"))
}

/// How many rows of `bytes` per `rows` fill a bucket's share of `held`.
fn rows_per_bucket(held: usize, bytes: usize, rows: usize) -> f64 {
    let row_bytes = (bytes / rows.max(1)).max(8);
    (held / BUCKET_SHARES / row_bytes) as f64
}

/// Reserves what the buckets may hold: [`BUCKET_SHARES`] of
/// [`BUCKET_BYTES`], or as much less as the budget gives.
fn reserve(
    reservation: &mut MemoryReservation,
    pool: &Arc<dyn MemoryPool>,
    what: &str,
) -> Result<usize, RunError> {
    // A quarter of the memory limit at most: the scan, the output and the
    // writer need the rest.
    let limit = match pool.memory_limit() {
        MemoryLimit::Finite(n) => n / 4,
        _ => usize::MAX,
    };
    let mut want = (BUCKET_SHARES * BUCKET_BYTES).min(limit);
    loop {
        match reservation.try_grow(want) {
            Ok(()) => return Ok(want),
            Err(e) if want / 2 < BUCKET_SHARES * MIN_BUCKET_BYTES => {
                return Err(crate::run::over_memory_limit(what, pool.as_ref(), want, e));
            }
            Err(_) => want /= 2,
        }
    }
}

/// Rows of one bucket per chunk to order and output at once.
const CHUNK_ROWS: usize = 65_536;

/// `batches` (their place the last column, each in place order) in place
/// order, in chunks of about [`CHUNK_ROWS`] rows that never part rows of one
/// place. Each batch is read front to back, so the gather stays in cache
/// (a gather over a whole bucket in random order waits on memory).
fn ordered_chunks(batches: &[RecordBatch]) -> Result<Vec<RecordBatch>, ArrowError> {
    let mut order = place_keys(batches);
    // The stable sort finds the sorted runs and merges them.
    order.sort();
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < order.len() {
        let mut end = (at + CHUNK_ROWS).min(order.len());
        while end < order.len() && order[end].0 == order[end - 1].0 {
            end += 1;
        }
        let idx: Vec<(usize, usize)> = order[at..end]
            .iter()
            .map(|&(_, b, r)| (b as usize, r as usize))
            .collect();
        chunks.push(interleave_record_batch(&refs, &idx)?);
        at = end;
    }
    Ok(chunks)
}

/// Orders the rows of each run of one place of sorted rows `b` by unit key
/// and row key, tallies the units in `done`, and gives the output batch.
fn emit(f: &Finish, b: RecordBatch, done: &mut Tally) -> Result<RecordBatch, RunError> {
    let n_in = f.st.input.len();
    let places = places_of(&b);
    let row_keys = RowKeys::new(&b.columns()[..n_in]).ok();
    let unit_keys = UnitKeys::new(key_of(&f.st)?, b.columns()).ok();
    let mut order: Vec<u32> = (0..b.num_rows() as u32).collect();
    let mut reordered = false;
    let mut i = 0;
    while i < b.num_rows() {
        let p = places.value(i);
        let mut j = i + 1;
        while j < b.num_rows() && places.value(j) == p {
            j += 1;
        }
        let (_, stratum, r) = unpack(p);
        if j - i == 1 {
            // A run of one row is one unit (runs are whole: chunks
            // never part rows of one place).
            done.units += 1;
            done.check = done.check.wrapping_add(unit_check(r, stratum));
            i = j;
            continue;
        }
        // A unit's rows (or units whose draws tie): by unit key, then
        // row key; the distinct unit keys are its units.
        let mut keyed: Vec<(Vec<u8>, Vec<u8>, u32)> = (i..j)
            .map(|row| {
                let (mut unit, mut whole) = (Vec::new(), Vec::new());
                if let Some(k) = &unit_keys {
                    k.write(row, &mut unit);
                }
                if let Some(k) = &row_keys {
                    k.write(row, &mut whole);
                }
                (unit, whole, row as u32)
            })
            .collect();
        keyed.sort();
        reordered = true;
        let mut last: Option<&[u8]> = None;
        for (at, (unit, _, row)) in keyed.iter().enumerate() {
            if last != Some(unit.as_slice()) {
                done.units += 1;
                done.check = done.check.wrapping_add(unit_check(r, stratum));
                last = Some(unit);
            }
            order[i + at] = *row;
        }
        i = j;
    }
    let b = if reordered {
        let idx = UInt32Array::from(order);
        datafusion::arrow::compute::take_record_batch(&b, &idx)
            .map_err(arrow_err("ordering rows"))?
    } else {
        b
    };
    let places = places_of(&b);
    let placed: Vec<(u32, u32, u64)> = places.values().iter().map(|&p| unpack(p)).collect();
    let (out, _) = f.output(&b, &placed)?;
    Ok(out)
}

/// Each row of `batches` as `(place, batch, row)`, in batch order.
fn place_keys(batches: &[RecordBatch]) -> Vec<(i128, u32, u32)> {
    let mut keys = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for (i, b) in batches.iter().enumerate() {
        let places = places_of(b).values();
        keys.extend(
            places
                .iter()
                .enumerate()
                .map(|(row, &p)| (p, i as u32, row as u32)),
        );
    }
    keys
}

fn places_of(b: &RecordBatch) -> &Decimal128Array {
    b.column(b.num_columns() - 1)
        .as_primitive::<Decimal128Type>()
}

/// A failed read of the rows (or a row that cannot be placed).
fn input_error(what: &str, error: DataFusionError) -> RunError {
    RunError::DataFusion {
        context: format!("reading {what}"),
        error,
    }
}

/// A failed write or read of the bucket files: the temporary folder full,
/// or over its size limit.
fn sort_error(what: &str, error: DataFusionError) -> RunError {
    RunError::DataFusion {
        context: format!(
            "reading and ordering the rows of {what} (a split writes them to the temporary \
             folder first: free space there, or set TMPDIR to a folder with more)"
        ),
        error,
    }
}

impl Finish {
    /// The output columns of sorted rows `b` (source columns, stratum values,
    /// then the place) at their `(part, stratum, r)`.
    fn output(
        &self,
        b: &RecordBatch,
        placed: &[(u32, u32, u64)],
    ) -> Result<(RecordBatch, SchemaRef), RunError> {
        let n_in = self.st.input.len();
        let columns = b.columns();
        // A split keeps its source's weight: 1 from a table.
        let weights = match source_weights(&self.st, self.weighted, &columns[..n_in])? {
            Some(w) => w.values().to_vec(),
            None => vec![1.0; placed.len()],
        };
        // The stratum columns the output shows; the others were not kept.
        let mut kept = columns[n_in..columns.len() - 1].iter();
        let strata: Vec<ArrayRef> = shown_strata(&self.st)
            .into_iter()
            .map(|shown| match shown.then(|| kept.next()).flatten() {
                Some(a) => a.clone(),
                None => datafusion::arrow::array::new_null_array(&DataType::Null, b.num_rows()),
            })
            .collect();
        let rows = OutputRows {
            picks: RowPicks::Whole {
                input: &columns[..n_in],
                strata: &strata,
                rows: b.num_rows(),
            },
            weights,
            strata: placed.iter().map(|p| p.1 as usize).collect(),
            splits: placed.iter().map(|p| p.0 as usize).collect(),
        };
        output_batch(
            &self.st,
            Some(&self.split),
            rows,
            &self.stratum_strings,
            self.threads,
        )
    }
}
