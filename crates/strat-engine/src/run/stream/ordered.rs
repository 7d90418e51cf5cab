//! The rows of a split in spec §7.3 order, for a table of any size.
//!
//! A split outputs every eligible row, so its rows cannot be held. After the
//! counting pass has placed every unit (its part follows from its stratum
//! and draw: where each part's run of draws starts in the stratum), a second
//! pass reads the rows again and gives each its place — `(part, stratum,
//! draw)` packed in one 128-bit integer by the `strat_place` UDF — and
//! DataFusion's sort orders them by it, spilling sorted runs to disk when
//! the memory pool refuses more. Rows with one place (a unit's rows, or
//! units whose draws tie) are then put in unit key and row key order, and
//! the units met must be the units counted (else the table changed).

use std::collections::VecDeque;

use datafusion::arrow::array::{Decimal128Array, Decimal128Builder};
use datafusion::logical_expr::SortExpr;

use super::*;

/// The name of the place column.
const PLACE: &str = "\u{1}strat_place";

/// A place: `part << 80 | stratum << 64 | r` (stratum in stratum order).
fn place(part: u32, stratum: u32, r: u64) -> i128 {
    (i128::from(part) << 80) | (i128::from(stratum) << 64) | i128::from(r)
}

fn unpack(place: i128) -> (u32, u32, u64) {
    (
        (place >> 80) as u32,
        ((place >> 64) & 0xffff) as u32,
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
    pub ids: HashMap<Vec<u8>, u16>,
    /// Stratum id → place in stratum order.
    pub rank: Vec<usize>,
    /// Per stratum (in stratum order), where each part's run of draws starts.
    pub starts: Vec<Vec<(u64, u32)>>,
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
            let k = self.rank[usize::from(id)];
            let part = part_by_draw(&self.starts[k], r)
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
    // Views become plain strings before the sort: a merged batch of views
    // would keep every batch it points into alive (the output is plain anyway).
    let mut all: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| match plain_type(f.data_type()) {
            Some(t) => datafusion::logical_expr::cast(column(f.name()), t).alias(f.name()),
            None => column(f.name()),
        })
        .collect();
    all.push(udf.call(args).alias(PLACE));
    let df = df
        .select(all)
        .and_then(|df| df.filter(column(PLACE).is_not_null()))
        .and_then(|df| df.sort(vec![SortExpr::new(column(PLACE), true, false)]))
        .map_err(df_err("ordering the split's rows"))?;
    let sorted_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let empty = RecordBatch::new_empty(sorted_schema.clone());
    let (_, schema) = finish.output(&empty, &[])?;
    let stream = df
        .execute_stream()
        .await
        .map_err(df_err(format!("reading {}", source.what)))?;
    let state = Ordering {
        input: stream,
        held: None,
        done: false,
        units: 0,
        check: 0,
        ready: VecDeque::new(),
        finish: Arc::new(finish),
    };
    // Ordered on a task of its own, a few batches ahead of the writer: the
    // merge and the encoding of the output run at once.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut state = state;
    tokio::spawn(async move {
        while let Some(item) = state.next().await {
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    let rows = futures::stream::unfold(rx, |mut rx| async move {
        let next = rx.recv().await;
        next.map(|item| (item, rx))
    });
    Ok((Box::pin(rows), schema))
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
    // Big batches: the merge of the sorted runs costs per batch (measured
    // at 10M rows: 8,192 rows a batch 11 s, 65,536 rows 7 s).
    let state = SessionStateBuilder::new_from_existing(with_big_batches(state))
        .with_physical_optimizer_rules(rules)
        .build();
    SessionContext::new_with_state(state)
}

/// The state of the ordering stream.
struct Ordering {
    input: SendableRecordBatchStream,
    /// Sorted rows whose run of one place may go on in the next batch.
    held: Option<RecordBatch>,
    done: bool,
    units: u64,
    check: u64,
    ready: VecDeque<RecordBatch>,
    finish: Arc<Finish>,
}

impl Ordering {
    async fn next(&mut self) -> Option<Result<RecordBatch, RunError>> {
        loop {
            if let Some(b) = self.ready.pop_front() {
                return Some(Ok(b));
            }
            if self.done {
                return None;
            }
            match self.input.next().await {
                Some(Ok(b)) => {
                    if let Err(e) = self.take_in(b) {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(sort_error(&self.finish.what, e)));
                }
                None => {
                    self.done = true;
                    let result = match self.held.take() {
                        Some(rest) => self.emit(rest),
                        None => Ok(()),
                    };
                    if let Err(e) = result.and_then(|()| self.verify()) {
                        return Some(Err(e));
                    }
                }
            }
        }
    }

    /// Adds a sorted batch: emits its rows but the last run of one place.
    fn take_in(&mut self, b: RecordBatch) -> Result<(), RunError> {
        if b.num_rows() == 0 {
            return Ok(());
        }
        let b = match self.held.take() {
            Some(h) => concat_batches(&b.schema(), [&h, &b]).map_err(arrow_err("ordering rows"))?,
            None => b,
        };
        let places = places_of(&b);
        let last = places.value(b.num_rows() - 1);
        let mut at = b.num_rows() - 1;
        while at > 0 && places.value(at - 1) == last {
            at -= 1;
        }
        if at > 0 {
            self.emit(b.slice(0, at))?;
        }
        self.held = Some(b.slice(at, b.num_rows() - at));
        Ok(())
    }

    /// Orders the rows of each run of one place by unit key and row key,
    /// tallies the units, and queues the output batch.
    fn emit(&mut self, b: RecordBatch) -> Result<(), RunError> {
        let f = self.finish.clone();
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
                // A run of one row is one unit (runs are whole: see `take_in`).
                self.units += 1;
                self.check = self.check.wrapping_add(unit_check(r, stratum));
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
                    self.units += 1;
                    self.check = self.check.wrapping_add(unit_check(r, stratum));
                    last = Some(unit);
                }
                order[i + at] = *row;
            }
            i = j;
        }
        let b = if reordered {
            let idx = UInt32Array::from(order);
            let columns = b
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &idx, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(arrow_err("ordering rows"))?;
            RecordBatch::try_new(b.schema(), columns).map_err(arrow_err("ordering rows"))?
        } else {
            b
        };
        let places = places_of(&b);
        let placed: Vec<(u32, u32, u64)> = places.values().iter().map(|&p| unpack(p)).collect();
        let (out, _) = f.output(&b, &placed)?;
        self.ready.push_back(out);
        Ok(())
    }

    /// The units met must be the units counted.
    fn verify(&self) -> Result<(), RunError> {
        let f = &self.finish;
        if self.units != f.units || self.check != f.check {
            return Err(RunError::Statement(format!(
                "{} changed while strat read it: the {} units counted were not found again as they were counted; run again on data that does not change during the run",
                f.what, f.units
            )));
        }
        Ok(())
    }
}

fn places_of(b: &RecordBatch) -> &Decimal128Array {
    b.column(b.num_columns() - 1)
        .as_primitive::<Decimal128Type>()
}

/// A failed read or sort: over the memory limit even when spilling (E0208),
/// the disk full, or a row that cannot be placed.
fn sort_error(what: &str, error: DataFusionError) -> RunError {
    RunError::DataFusion {
        context: format!("reading and ordering the rows of {what}"),
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
        let rows = OutputRows {
            picks: RowPicks::Whole {
                input: &columns[..n_in],
                strata: &columns[n_in..columns.len() - 1],
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
