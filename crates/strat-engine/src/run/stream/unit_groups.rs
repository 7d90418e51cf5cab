//! The counting pass's rows for a statement with unit aggregates, by
//! DataFusion's spilling hash aggregate instead of a sort of every row by
//! unit — where every aggregate means the same there as in spec §2.7:
//! `count(*)`, and `min`/`max` of a type both order alike (integers,
//! strings, booleans, dates, timestamps, decimals; not floats).
//!
//! The eligible rows are grouped by unit and the values of the stratum
//! expressions without an aggregate (a unit's *groups*), each group with its
//! row count and its part of every aggregate; the groups are grouped again
//! by unit, combining the parts into the unit's aggregates. A unit with one
//! group is one row: its stratum values, its rows, `having` on its
//! aggregates — exactly what the sorted rows give. A unit with two groups
//! has rows whose stratum values differ, so it spans strata whatever its
//! aggregates (spec §4.1): it comes as two rows in two different strata (its
//! second with every stratum value that has no aggregate NULL, which no
//! group of such a unit can have throughout), so the walk over the units
//! meets it in two strata and [`super::again`] names it from the rows
//! themselves. The counting pass weights each row by [`UNIT_ROWS`].

use std::sync::atomic::AtomicU64;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::compute::nullif;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::lit;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use super::*;

/// How many eligible rows a row of the grouped frame stands for (Int64).
pub(super) const UNIT_ROWS: &str = "\u{1}strat_unit_rows";
/// How many groups the unit has.
const GROUPS: &str = "\u{1}strat_unit_groups";
/// Ends the name of a group's part of an aggregate.
const GROUP_PART: &str = " of a group";
/// Whether the unit passes `having` (rows of no unit do).
const PASSES: &str = "\u{1}strat_unit_passes";

/// One row per unit (two for a unit that spans strata): the unit column,
/// one column per stratum (`STRATUM_PREFIX i`) and [`UNIT_ROWS`]; `None`
/// when a unit aggregate of `st` has no exact hash-aggregate form.
/// `eligible`: the eligible rows, told to `progress` as they are read.
/// Units `having` drops are left out and counted in `having_dropped`.
pub(super) async fn unit_rows(
    ctx: &SessionContext,
    st: &Statement,
    plan: &StrataPlan,
    eligible: DataFrame,
    having_dropped: Arc<AtomicU64>,
    progress: Option<Arc<Progress>>,
) -> Result<Option<DataFrame>, RunError> {
    let Some(unit) = &st.unit else {
        return Ok(None);
    };
    if !aggregates_group_exactly(plan) {
        return Ok(None);
    }
    let mut select = vec![column(&unit.name)];
    select.extend(plan.projections(st)?);
    let rows = eligible
        .select(select)
        .map_err(df_err("evaluating `stratify by`"))?;
    if !types_group_exactly(rows.schema().as_arrow()) {
        return Ok(None);
    }
    // The counting pass reads units: the rows are told as they are grouped.
    let schema: SchemaRef = Arc::new(rows.schema().as_arrow().clone());
    let told = move |batch: &RecordBatch| {
        progress::read(&progress, batch.num_rows());
        Ok(batch.clone())
    };
    let rows = mapped(ctx, rows, schema, Arc::new(told)).await?;
    let plain_at: Vec<usize> = (0..st.strata.len())
        .filter(|&i| plan.rewritten[i].is_none())
        .collect();
    let plain: Vec<String> = plain_at
        .iter()
        .map(|i| format!("{STRATUM_PREFIX}{i}"))
        .collect();
    let groups = rows
        .aggregate(
            std::iter::once(column(&unit.name))
                .chain(plain.iter().map(|c| column(c)))
                .collect(),
            aggregates(plan, Part::OfGroup),
        )
        .map_err(df_err("unit aggregates"))?;
    let mut combined = vec![count_all().alias(GROUPS)];
    combined.extend(plain.iter().map(|c| min(column(c)).alias(c)));
    combined.extend(aggregates(plan, Part::OfUnit));
    let units = groups
        .aggregate(vec![column(&unit.name)], combined)
        .map_err(df_err("unit aggregates"))?
        .select(per_unit(plan, &unit.name)?)
        .map_err(df_err("evaluating `stratify by` over unit aggregates"))?;
    Ok(Some(
        as_counted(ctx, units, &plain_at, st.strata.len(), having_dropped).await?,
    ))
}

/// Per unit: the unit, its stratum values, its rows, groups, and whether it
/// passes `having`.
fn per_unit(plan: &StrataPlan, unit: &str) -> Result<Vec<Expr>, RunError> {
    let mut select = vec![column(unit)];
    for (i, rewritten) in plan.rewritten.iter().enumerate() {
        let name = format!("{STRATUM_PREFIX}{i}");
        select.push(match rewritten {
            Some(e) => counted(lower_expr(e, None)?, plan)?.alias(name),
            None => column(&name),
        });
    }
    let passes = match &plan.having {
        Some((condition, _)) => {
            column(unit)
                .is_null()
                .or(counted(lower_expr(condition, None)?, plan)?.is_true())
        }
        None => lit(true),
    };
    select.extend([column(UNIT_ROWS), column(GROUPS), passes.alias(PASSES)]);
    Ok(select)
}

/// Which aggregates of [`unit_rows`]: of a group's rows, or of a unit's groups.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    OfGroup,
    OfUnit,
}

/// `e` over the unit's rows where it reads a `count(*)` (named as
/// [`StrataPlan`] names it): counted once, by [`aggregates`].
fn counted(e: Expr, plan: &StrataPlan) -> Result<Expr, RunError> {
    use datafusion::common::Column;
    let counts: Vec<Column> = named_aggregates(plan)
        .filter(|(a, ..)| a.func == ir::Aggregate::Count)
        .map(|(_, name, _)| Column::new_unqualified(name))
        .collect();
    let rows = Column::new_unqualified(UNIT_ROWS);
    let to_rows = counts.iter().map(|c| (c, &rows)).collect();
    datafusion::logical_expr::expr_rewriter::replace_col(e, &to_rows)
        .map_err(df_err("unit aggregates"))
}

/// Every unit aggregate of `stratify by` and `having`, with the names
/// [`StrataPlan`] gives it and its argument.
fn named_aggregates(
    plan: &StrataPlan,
) -> impl Iterator<Item = (&ir::UnitAggregate, String, String)> + '_ {
    let named = plan.aggregates.iter().enumerate().map(|(j, a)| {
        (
            a,
            format!("{AGG_PREFIX}{j}"),
            format!("{AGG_ARG_PREFIX}{j}"),
        )
    });
    let having = plan
        .having
        .iter()
        .flat_map(|h| &h.1)
        .enumerate()
        .map(|(j, a)| {
            (
                a,
                format!("{HAVING_PREFIX}{j}"),
                format!("{HAVING_ARG_PREFIX}{j}"),
            )
        });
    named.chain(having)
}

/// The rows count and every unit aggregate but `count(*)` ([`counts`]): a
/// part of the unit's per group, or the parts combined per unit.
fn aggregates(plan: &StrataPlan, part: Part) -> Vec<Expr> {
    // A group's parts are named apart from the unit's: named alike, some
    // plans failed in DataFusion 55 ("duplicate unqualified field name").
    let of_group = |name: &str| format!("{name}{GROUP_PART}");
    let mut out = vec![match part {
        Part::OfGroup => count_all().alias(of_group(UNIT_ROWS)),
        Part::OfUnit => sum(column(&of_group(UNIT_ROWS))).alias(UNIT_ROWS),
    }];
    for (a, name, arg) in named_aggregates(plan) {
        let (input, name) = match part {
            Part::OfGroup => (column(&arg), of_group(&name)),
            Part::OfUnit => (column(&of_group(&name)), name),
        };
        out.push(match a.func {
            ir::Aggregate::Count => continue,
            ir::Aggregate::Min => min(input).alias(name),
            ir::Aggregate::Max => max(input).alias(name),
            _ => unreachable!("checked by aggregates_group_exactly"),
        });
    }
    out
}

/// Every aggregate is `count(*)`, `min` or `max`, and every stratum either
/// has no aggregate or reads no column outside its aggregates.
fn aggregates_group_exactly(plan: &StrataPlan) -> bool {
    use ir::Aggregate as A;
    let all = plan
        .aggregates
        .iter()
        .chain(plan.having.iter().flat_map(|h| &h.1));
    let functions = all
        .clone()
        .all(|a| matches!(a.func, A::Count | A::Min | A::Max));
    let unit_level = plan.rewritten.iter().flatten().all(|e| {
        let mut read = Vec::new();
        e.columns(&mut read);
        read.iter().all(|c| c.starts_with(AGG_PREFIX))
    });
    functions && unit_level
}

/// The unit, the strata without aggregates and the arguments of `min` and
/// `max` have types whose equality and order DataFusion's grouping and
/// `min`/`max` share with strat's own (Arrow's row format and comparators).
fn types_group_exactly(schema: &Schema) -> bool {
    let exact = |t: &DataType| {
        t.is_integer()
            || matches!(
                t,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Boolean
                    | DataType::Date32
                    | DataType::Date64
                    | DataType::Timestamp(..)
                    | DataType::Decimal32(..)
                    | DataType::Decimal64(..)
                    | DataType::Decimal128(..)
                    | DataType::Decimal256(..)
                    | DataType::Null
            )
    };
    schema.fields().iter().all(|f| exact(f.data_type()))
}

/// `units` (one row per unit) as the counting pass reads it: `having`
/// applied and counted, a spanning unit's second row added.
async fn as_counted(
    ctx: &SessionContext,
    units: DataFrame,
    plain: &[usize],
    n_strata: usize,
    having_dropped: Arc<AtomicU64>,
) -> Result<DataFrame, RunError> {
    // The unit, the strata, the rows: GROUPS and PASSES are read here.
    let schema = Arc::new(
        units
            .schema()
            .as_arrow()
            .project(&(0..n_strata + 2).collect::<Vec<_>>())
            .map_err(arrow_err("unit aggregates"))?,
    );
    // After the unit column.
    let plain: Vec<usize> = plain.iter().map(|i| i + 1).collect();
    let out = schema.clone();
    let map = move |batch: &RecordBatch| counted_batch(batch, &out, &plain, &having_dropped);
    mapped(ctx, units, schema, Arc::new(map)).await
}

/// `batch` → the batch a [`Mapped`] partition gives for it.
type BatchMap = Arc<dyn Fn(&RecordBatch) -> Result<RecordBatch, RunError> + Send + Sync>;

/// `df`'s rows, each batch through `map` (giving batches of `schema`), one
/// stream per partition of `df`'s plan.
async fn mapped(
    ctx: &SessionContext,
    df: DataFrame,
    schema: SchemaRef,
    map: BatchMap,
) -> Result<DataFrame, RunError> {
    let plan = df
        .create_physical_plan()
        .await
        .map_err(df_err("unit aggregates"))?;
    let partitions: Vec<Arc<dyn PartitionStream>> =
        (0..plan.properties().output_partitioning().partition_count())
            .map(|partition| {
                Arc::new(Mapped {
                    plan: plan.clone(),
                    partition,
                    schema: schema.clone(),
                    map: map.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
    let table = StreamingTable::try_new(schema, partitions).map_err(df_err("unit aggregates"))?;
    ctx.read_table(Arc::new(table))
        .map_err(df_err("unit aggregates"))
}

/// One partition of a plan's rows, each batch through `map`.
struct Mapped {
    plan: Arc<dyn ExecutionPlan>,
    partition: usize,
    schema: SchemaRef,
    map: BatchMap,
}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "strat unit aggregates, partition {}", self.partition)
    }
}

impl PartitionStream for Mapped {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, task: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let rows = match self.plan.execute(self.partition, task) {
            Ok(stream) => stream,
            Err(e) => {
                let failed = futures::stream::once(async move { Err(e) });
                return Box::pin(RecordBatchStreamAdapter::new(schema, failed));
            }
        };
        let map = self.map.clone();
        let mapped =
            rows.map(move |batch| map(&batch?).map_err(|e| DataFusionError::External(Box::new(e))));
        Box::pin(RecordBatchStreamAdapter::new(schema, mapped))
    }
}

/// A batch of units (the unit, the strata, the rows, GROUPS, PASSES) as the
/// counting pass reads it: the units `having` keeps, each spanning one
/// followed by its second row (no rows, NULL strata without aggregates).
fn counted_batch(
    batch: &RecordBatch,
    schema: &SchemaRef,
    plain: &[usize],
    having_dropped: &AtomicU64,
) -> Result<RecordBatch, RunError> {
    let n = schema.fields().len();
    let passes = batch.column(n + 1).as_boolean();
    let dropped = passes.false_count();
    if dropped > 0 {
        having_dropped.fetch_add(dropped as u64, AtomicOrdering::Relaxed);
    }
    let groups = batch.column(n).as_primitive::<Int64Type>();
    let mut picks: Vec<u32> = Vec::with_capacity(batch.num_rows());
    let mut second: Vec<bool> = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        if !passes.value(row) {
            continue;
        }
        picks.push(row as u32);
        second.push(false);
        if groups.value(row) > 1 {
            picks.push(row as u32);
            second.push(true);
        }
    }
    let picks = UInt32Array::from(picks);
    let second = BooleanArray::from(second);
    let columns = batch.columns()[..n]
        .iter()
        .enumerate()
        .map(|(c, a)| {
            let taken = take(a.as_ref(), &picks, None)?;
            if plain.contains(&c) {
                nullif(&taken, &second)
            } else if c == n - 1 {
                // The second row stands for no rows.
                let rows = taken.as_primitive::<Int64Type>();
                let zero = Int64Array::from_iter_values(
                    rows.values()
                        .iter()
                        .zip(second.values())
                        .map(|(&r, s)| if s { 0 } else { r }),
                );
                Ok(Arc::new(zero) as ArrayRef)
            } else {
                Ok(taken)
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(arrow_err("unit aggregates"))?;
    RecordBatch::try_new(schema.clone(), columns).map_err(arrow_err("unit aggregates"))
}
