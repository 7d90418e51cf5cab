//! Where the streaming passes read a statement's eligible rows and their
//! stratum values: a table, or an earlier statement's output spooled to a
//! temporary Arrow file as it comes (so a chain holds neither); with unit
//! aggregates, in bounded memory.
//!
//! Without unit aggregates a row's stratum values are expressions of the
//! row. With them (spec §2.7, §4.4), a stratum value is computed over all
//! the unit's eligible rows, and `having` keeps or drops whole units. Then
//! DataFusion's spilling sort puts the eligible rows in unit order; as they
//! come, each run of complete units gets its aggregates, `having` and
//! stratum values from [`StrataPlan`],
//! and the rows of the units `having` keeps go on with one stratum column
//! per stratum. So every pass (counting, neyman, materialising, placing)
//! reads rows with plain stratum columns, and a statement with unit
//! aggregates runs as one without: memory is one sort's budget and the
//! largest unit, never the table. Where the aggregates allow it, the
//! counting pass reads one row per unit from a hash aggregate instead
//! ([`Rows::unit_rows`], [`super::unit_groups`]).

use std::sync::atomic::AtomicU64;

use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::file_format::options::ArrowReadOptions;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use super::as_of;
use super::unit_groups;
use super::*;

/// Phases of a run and their times, for `--timings`.
pub(in crate::run) type Phases = Vec<(&'static str, std::time::Duration)>;

/// Which source columns a pass reads (with unit aggregates, the rows in unit
/// order carry only these through the sort).
#[derive(Clone, Copy)]
pub(in crate::run) enum Columns<'a> {
    /// Every source column: the passes that output rows.
    All,
    /// Those the unit, the strata and `having` read, and these.
    Counting(&'a [&'a str]),
}

/// The eligible rows of a statement.
pub(in crate::run) struct Rows {
    /// The source, as messages name it: "table `members`", "the output of `cohort`".
    pub what: String,
    /// Whether the source has a `_weight` column that weights its rows.
    pub weighted: bool,
    from: From,
    plan: StrataPlan,
    /// Units `having` dropped, counted by every read of every unit.
    having_dropped: Arc<AtomicU64>,
}

enum From {
    Table(String),
    /// An earlier statement's rows in a temporary Arrow file, deleted when
    /// the last reader is done with it.
    Spooled {
        rows: DataFrame,
        _file: Arc<dyn SpillFile>,
    },
}

impl Rows {
    pub fn table(table: &str, st: &Statement) -> Self {
        Rows {
            what: format!("table `{table}`"),
            weighted: false,
            from: From::Table(table.to_string()),
            plan: StrataPlan::new(st),
            having_dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The rows of `upstream` (`what`: "the output of `cohort`"; `weighted`:
    /// its `_weight` weights its rows), written to a
    /// temporary Arrow file as they come; `None` without a local temporary
    /// directory.
    pub async fn spooled(
        ctx: &SessionContext,
        st: &Statement,
        upstream: RunStream,
        what: String,
        weighted: bool,
    ) -> Result<Option<Self>, RunError> {
        let Some((rows, file)) = spool(ctx, &upstream.schema, upstream.rows, &what).await? else {
            return Ok(None);
        };
        Ok(Some(Rows {
            what,
            weighted,
            from: From::Spooled { rows, _file: file },
            plan: StrataPlan::new(st),
            having_dropped: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// The state rows of this source `as of` T (spec §4.5), spooled like
    /// an earlier statement's output, with what picking them counted; an
    /// error when a unit's best rows tie. `None` without a local temporary
    /// directory.
    pub async fn state_as_of(
        self,
        ctx: &SessionContext,
        st: &Statement,
    ) -> Result<Option<(Self, AsOfReport, Phases)>, RunError> {
        let started = std::time::Instant::now();
        let all = self.all(ctx).await?;
        let schema: SchemaRef = Arc::new(all.schema().as_arrow().clone());
        let (sorted, picked) = as_of::state_rows(st, all, &schema, &self.what).await?;
        let counted = started.elapsed();
        let context = format!("reading {} `as of`", self.what);
        let stream = sorted.execute_stream().await.map_err(df_err(&context))?;
        let picked = Arc::new(std::sync::Mutex::new(picked));
        let poisoned = || RunError::Statement("a poisoned lock".into());
        let taker = picked.clone();
        let state_rows: RowStream = Box::pin(stream.map(move |batch| {
            let batch = batch.map_err(df_err(&context))?;
            taker.lock().map_err(|_| poisoned())?.take(&batch)
        }));
        let Some((rows, file)) = spool(ctx, &schema, state_rows, &self.what).await? else {
            return Ok(None);
        };
        let found = picked.lock().map_err(|_| poisoned())?.finish(st)?;
        let phases = vec![
            ("as of: rows and units of the source", counted),
            (
                "as of: state rows (rows in the window sorted by unit, spooled)",
                started.elapsed() - counted,
            ),
        ];
        Ok(Some((
            Rows {
                from: From::Spooled { rows, _file: file },
                ..self
            },
            found,
            phases,
        )))
    }

    /// How many rows the source has, for a progress bar: exact when its
    /// files say so without being read (Parquet's metadata; an earlier
    /// statement's spooled Arrow file), else estimated from the bytes of
    /// local files (a CSV: its size over the bytes a row takes in its first
    /// 64 KiB); `None` when neither is known.
    pub async fn rows_hint(&self, ctx: &SessionContext) -> Option<u64> {
        let df = match &self.from {
            From::Table(name) => ctx.table(name.as_str()).await.ok()?,
            From::Spooled { rows, .. } => rows.clone(),
        };
        let plan = df.create_physical_plan().await.ok()?;
        let stats = datafusion::physical_plan::StatisticsContext::new()
            .compute(
                plan.as_ref(),
                &datafusion::physical_plan::StatisticsArgs::new(),
            )
            .ok()?;
        // A CSV's statistics say 0 rows, exactly: no count at all.
        if let datafusion::common::stats::Precision::Exact(n @ 1..) = stats.num_rows {
            return Some(n as u64);
        }
        match &self.from {
            From::Table(name) => rows_by_bytes(ctx, name).await,
            From::Spooled { .. } => None,
        }
    }

    /// Keeps a spooled source alive as long as `rows` (a split's rows are
    /// read after the run returns).
    pub fn hold(&self, rows: RowStream) -> RowStream {
        match &self.from {
            From::Table(_) => rows,
            From::Spooled { _file, .. } => {
                let file = _file.clone();
                Box::pin(rows.inspect(move |_| {
                    let _ = &file;
                }))
            }
        }
    }

    /// The source's rows, read by `ctx`.
    async fn all(&self, ctx: &SessionContext) -> Result<DataFrame, RunError> {
        match &self.from {
            From::Table(t) => ctx
                .table(TableReference::bare(t.as_str()))
                .await
                .map_err(df_err(format!("reading {}", self.what))),
            From::Spooled { rows, .. } => {
                Ok(DataFrame::new(ctx.state(), rows.logical_plan().clone()))
            }
        }
    }

    /// The eligible rows (`where` applied; with unit aggregates only the
    /// units `having` keeps), every source column first. `units`, a
    /// predicate over the key columns, keeps some units before any
    /// aggregate: it keeps or drops whole units, so it changes no unit's
    /// aggregates.
    pub async fn eligible(
        &self,
        ctx: &SessionContext,
        st: &Statement,
        units: Option<Expr>,
        columns: Columns<'_>,
    ) -> Result<DataFrame, RunError> {
        let df = self.filtered(ctx, st, units).await?;
        if !st.has_aggregates() {
            return Ok(df);
        }
        self.per_unit(ctx, st, df, columns).await
    }

    /// With unit aggregates, the counting pass's rows by DataFusion's hash
    /// aggregate: one per unit (two for a unit that spans strata), weighted
    /// by [`unit_groups::UNIT_ROWS`], as [`unit_groups`] says (the rows told
    /// to `progress` as they are grouped); `None` without unit aggregates,
    /// or with one that needs the rows in unit order.
    pub async fn unit_rows(
        &self,
        ctx: &SessionContext,
        st: &Statement,
        progress: Option<Arc<Progress>>,
    ) -> Result<Option<DataFrame>, RunError> {
        if !st.has_aggregates() {
            return Ok(None);
        }
        let eligible = self.filtered(ctx, st, None).await?;
        let dropped = self.having_dropped.clone();
        unit_groups::unit_rows(ctx, st, &self.plan, eligible, dropped, progress).await
    }

    /// The rows `where` keeps, and of those the units `units` keeps.
    async fn filtered(
        &self,
        ctx: &SessionContext,
        st: &Statement,
        units: Option<Expr>,
    ) -> Result<DataFrame, RunError> {
        let mut df = self.all(ctx).await?;
        if let Some(f) = &st.filter {
            df = df
                .filter(lower_expr(f, None)?)
                .map_err(df_err("evaluating `where`"))?;
        }
        if let Some(units) = units {
            df = df
                .filter(units)
                .map_err(df_err("choosing the selected units"))?;
        }
        Ok(df)
    }

    /// The stratum values of a row of [`Rows::eligible`], one column each,
    /// named `STRATUM_PREFIX i`.
    pub fn strata(&self, st: &Statement) -> Result<Vec<Expr>, RunError> {
        if !st.has_aggregates() {
            return self.plan.projections(st);
        }
        Ok((0..st.strata.len())
            .map(|i| column(&format!("{STRATUM_PREFIX}{i}")))
            .collect())
    }

    /// How many units `having` dropped, by the reads so far.
    pub fn having_dropped(&self) -> u64 {
        self.having_dropped.load(AtomicOrdering::Relaxed)
    }

    /// `df`'s rows in unit order with their stratum columns, as a table.
    async fn per_unit(
        &self,
        ctx: &SessionContext,
        st: &Statement,
        df: DataFrame,
        columns: Columns<'_>,
    ) -> Result<DataFrame, RunError> {
        let unit = st.unit.as_ref().ok_or_else(|| {
            RunError::Statement("unit aggregates without `unit` (internal error)".into())
        })?;
        let source = source_columns(st, columns);
        let mut select: Vec<Expr> = source.iter().map(|c| column(c)).collect();
        select.extend(self.plan.projections(st)?);
        let sorted = df
            .select(select)
            .and_then(|df| df.sort(vec![column(&unit.name).sort(true, true)]))
            .map_err(df_err("putting the rows in unit order"))?;
        // Big batches: each run of units costs two small DataFusion queries
        // (at 30M event rows: 8,192 rows a batch 11.0 s, 65,536 rows 7.6 s).
        let (state, logical) = sorted.into_parts();
        let state = with_big_batches(state);
        let sorted = DataFrame::new(state, logical);
        let input: SchemaRef = Arc::new(sorted.schema().as_arrow().clone());
        // The stratum columns' types: the aggregates of no unit.
        let none = RecordBatch::new_empty(input.clone());
        let n_source = source.len();
        let strata = self
            .plan
            .strata_arrays(ctx, st, &none, n_source, &[])
            .await?;
        let mut fields: Vec<Field> = input.fields()[..n_source]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (i, a) in strata.iter().enumerate() {
            fields.push(Field::new(
                format!("{STRATUM_PREFIX}{i}"),
                a.data_type().clone(),
                true,
            ));
        }
        let schema = Arc::new(Schema::new(fields));
        let runs = UnitRuns {
            ctx: ctx.clone(),
            st: st.clone(),
            plan: self.plan.clone(),
            unit_at: source.iter().position(|c| *c == unit.name).ok_or_else(|| {
                RunError::Statement("the unit column is not read (internal error)".into())
            })?,
            n_source,
            schema: schema.clone(),
            having_dropped: self.having_dropped.clone(),
        };
        let partition = UnitOrdered {
            sorted,
            runs: Arc::new(runs),
        };
        let table = StreamingTable::try_new(schema, vec![Arc::new(partition)])
            .map_err(df_err("unit aggregates"))?;
        ctx.read_table(Arc::new(table))
            .map_err(df_err("unit aggregates"))
    }
}

/// `rows` written to a temporary Arrow file as they come, and the file read
/// back as a `DataFrame` (deleted when the last holder of the file is done);
/// `None` without a local temporary directory. `what` names the rows in errors.
async fn spool(
    ctx: &SessionContext,
    schema: &SchemaRef,
    mut rows: RowStream,
    what: &str,
) -> Result<Option<(DataFrame, Arc<dyn SpillFile>)>, RunError> {
    let Ok(file) = ctx
        .runtime_env()
        .disk_manager
        .create_tmp_file("strat: an earlier statement's output")
    else {
        return Ok(None);
    };
    let Some(path) = file.path().and_then(|p| p.to_str()).map(str::to_string) else {
        return Ok(None);
    };
    let failed = |e: &dyn std::fmt::Display| spill_error(&format!("reading {what}"), "its rows", e);
    let sink = file.open_writer().map_err(|e| failed(&e))?;
    let mut writer = FileWriter::try_new(sink, schema).map_err(|e| failed(&e))?;
    while let Some(batch) = rows.next().await {
        writer.write(&batch?).map_err(|e| failed(&e))?;
    }
    writer.finish().map_err(|e| failed(&e))?;
    let mut sink = writer.into_inner().map_err(|e| failed(&e))?;
    sink.finish().map_err(|e| failed(&e))?;
    // The file's name has no `.arrow` ending.
    let options = ArrowReadOptions {
        file_extension: "",
        ..ArrowReadOptions::default()
    };
    let rows = ctx
        .read_arrow(path, options)
        .await
        .map_err(df_err(format!("reading {what}")))?;
    Ok(Some((rows, file)))
}

/// The eligible rows in unit order, read as a table of one partition.
struct UnitOrdered {
    sorted: DataFrame,
    runs: Arc<UnitRuns>,
}

/// How a run of complete units gets its stratum values.
struct UnitRuns {
    ctx: SessionContext,
    st: Statement,
    plan: StrataPlan,
    unit_at: usize,
    /// The source columns the rows carry, first in each batch.
    n_source: usize,
    schema: SchemaRef,
    having_dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for UnitOrdered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("strat unit aggregates")
    }
}

impl PartitionStream for UnitOrdered {
    fn schema(&self) -> &SchemaRef {
        &self.runs.schema
    }

    fn execute(&self, _: Arc<TaskContext>) -> SendableRecordBatchStream {
        let grouping = Grouping {
            sorted: Some(self.sorted.clone()),
            runs: self.runs.clone(),
            carry: None,
            done: false,
        };
        let rows = futures::stream::unfold((grouping, None), |(mut g, input)| async move {
            let mut input = match input {
                Some(input) => input,
                None => match g.sorted.take()?.execute_stream().await {
                    Ok(input) => input,
                    Err(e) => return Some((Err(e), (g, None))),
                },
            };
            let item = g.next(&mut input).await?;
            Some((item, (g, Some(input))))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.runs.schema.clone(),
            rows,
        ))
    }
}

/// Cuts the unit-ordered rows into runs of complete units.
struct Grouping {
    /// The sort, until it starts.
    sorted: Option<DataFrame>,
    runs: Arc<UnitRuns>,
    /// The rows of the last unit met, which the next batch may continue.
    carry: Option<RecordBatch>,
    done: bool,
}

impl Grouping {
    /// The next batch of complete units' rows with their stratum values;
    /// `None` when nothing is left.
    async fn next(
        &mut self,
        input: &mut SendableRecordBatchStream,
    ) -> Option<datafusion::error::Result<RecordBatch>> {
        while !self.done {
            match input.next().await {
                Some(Ok(batch)) if batch.num_rows() == 0 => {}
                Some(Ok(batch)) => {
                    let batch = match self.carry.take() {
                        Some(held) => match concat_batches(&batch.schema(), [&held, &batch]) {
                            Ok(b) => b,
                            Err(e) => return self.fail(e.into()),
                        },
                        None => batch,
                    };
                    let mut units = match units_of(&batch, self.runs.unit_at) {
                        Ok(units) => units,
                        Err(e) => return self.fail(external(e)),
                    };
                    let cut = last_unit_start(&mut units, batch.num_rows());
                    self.carry = Some(batch.slice(cut, batch.num_rows() - cut));
                    if cut > 0 {
                        let out = self.runs.complete(batch.slice(0, cut), units).await;
                        return Some(out.map_err(external));
                    }
                }
                Some(Err(e)) => return self.fail(e),
                None => {
                    self.done = true;
                    let held = self.carry.take()?;
                    let out = match units_of(&held, self.runs.unit_at) {
                        Ok(units) => self.runs.complete(held, units).await,
                        Err(e) => Err(e),
                    };
                    return Some(out.map_err(external));
                }
            }
        }
        None
    }

    fn fail(&mut self, e: DataFusionError) -> Option<datafusion::error::Result<RecordBatch>> {
        self.done = true;
        Some(Err(e))
    }
}

impl UnitRuns {
    /// Complete units' rows (`units`, formed from `batch`), with their
    /// stratum values; the rows of units `having` drops are left out.
    async fn complete(
        &self,
        batch: RecordBatch,
        units: Vec<Unit>,
    ) -> Result<RecordBatch, RunError> {
        let having = self.plan.having_mask(&self.ctx, &batch, &units).await?;
        let strata = self
            .plan
            .strata_arrays(&self.ctx, &self.st, &batch, self.n_source, &units)
            .await?;
        let mut columns = batch.columns()[..self.n_source].to_vec();
        columns.extend(strata);
        let out = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(arrow_err("unit aggregates"))?;
        let Some(passes) = having else {
            return Ok(out);
        };
        let dropped = passes.iter().filter(|p| !**p).count();
        if dropped == 0 {
            return Ok(out);
        }
        self.having_dropped
            .fetch_add(dropped as u64, AtomicOrdering::Relaxed);
        // Rows of no unit (a NULL key) stay: the counting pass counts them.
        let mut keep = vec![true; batch.num_rows()];
        for (unit, pass) in units.iter().zip(passes) {
            if !pass {
                unit.rows.iter().for_each(|&r| keep[r] = false);
            }
        }
        filter_record_batch(&out, &BooleanArray::from(keep)).map_err(arrow_err("`having`"))
    }
}

/// The source columns of the rows in unit order, in source order.
fn source_columns(st: &Statement, columns: Columns) -> Vec<String> {
    let extra = match columns {
        Columns::All => return st.input.iter().map(|c| c.name.clone()).collect(),
        Columns::Counting(extra) => extra,
    };
    let mut read: Vec<String> = extra.iter().map(|c| c.to_string()).collect();
    read.extend(st.unit.iter().map(|u| u.name.clone()));
    for s in &st.strata {
        s.expr.columns(&mut read);
    }
    if let Some(h) = &st.having {
        h.expr.columns(&mut read);
    }
    st.input
        .iter()
        .filter(|c| read.contains(&c.name))
        .map(|c| c.name.clone())
        .collect()
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Where the rows of a batch's last unit start (NULL key rows, sorted
/// first, count as one run): that unit may go on in the next batch, so it
/// leaves `units`. `units` were formed from the batch's `rows` rows.
fn last_unit_start(units: &mut Vec<Unit>, rows: usize) -> usize {
    match units.last() {
        Some(u) if u.rows.last() == Some(&(rows - 1)) => {
            let start = u.rows[0];
            units.pop();
            start
        }
        // The batch ends in NULL key rows, after its last unit.
        Some(u) => u.rows.last().map_or(0, |r| r + 1),
        None => 0,
    }
}

/// The units of rows in unit order: a run of rows with one key text each.
fn units_of(batch: &RecordBatch, unit_at: usize) -> Result<Vec<Unit>, RunError> {
    let keys = KeyColumn::unit(batch.column(unit_at).as_ref())
        .map_err(|e| RunError::Key(e.to_string()))?;
    let mut units: Vec<Unit> = Vec::new();
    let mut buf = Vec::with_capacity(64);
    for row in 0..batch.num_rows() {
        if keys.is_null(row) {
            continue;
        }
        buf.clear();
        let _ = keys.write(row, &mut buf);
        match units.last_mut() {
            Some(u) if u.key == buf => u.rows.push(row),
            _ => units.push(Unit {
                key: buf.clone(),
                rows: vec![row],
            }),
        }
    }
    Ok(units)
}

/// A local table's rows estimated from its files' bytes: their size over the
/// bytes per line of the first and the last 64 KiB of the first file.
async fn rows_by_bytes(ctx: &SessionContext, name: &str) -> Option<u64> {
    use datafusion::datasource::listing::ListingTable;
    use std::io::{Read, Seek, SeekFrom};
    let provider = ctx.table_provider(name).await.ok()?;
    let listing = provider.downcast_ref::<ListingTable>()?;
    let mut files = Vec::new();
    for url in listing.table_paths() {
        let path = url.get_url().to_file_path().ok()?;
        match std::fs::read_dir(&path) {
            Ok(entries) => files.extend(entries.flatten().map(|e| e.path())),
            Err(_) => files.push(path),
        }
    }
    files.retain(|f| f.is_file());
    files.sort();
    let bytes: u64 = files
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum();
    let mut file = std::fs::File::open(files.first()?).ok()?;
    let size = file.metadata().ok()?.len();
    const SAMPLE: u64 = 64 << 10;
    let mut sample = vec![0u8; SAMPLE as usize];
    let (mut read, mut lines) = (0u64, 0u64);
    // The head, and the tail where it does not overlap the head.
    let tail = (size > SAMPLE).then(|| size.saturating_sub(SAMPLE).max(SAMPLE));
    for at in std::iter::once(0).chain(tail) {
        file.seek(SeekFrom::Start(at)).ok()?;
        let n = file.read(&mut sample).ok()?;
        read += n as u64;
        lines += sample[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Some(bytes * lines.max(1) / read.max(1))
}
