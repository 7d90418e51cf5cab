//! The counting pass's rows for a statement with unit aggregates, by
//! DataFusion's spilling hash aggregate instead of a sort of every row by
//! unit — where every aggregate means the same there as in spec §2.7:
//! `count(*)`, `min`/`max` of a type both order alike (integers, strings,
//! booleans, dates, timestamps, decimals; not floats), `sum` of integers
//! (added as 38-digit decimals, so exactly; an overflow of 64 bits is
//! strat's own error), and `first`/`last(x by t)` (DataFusion's
//! `first_value` in the order that picks the spec's row).
//!
//! The eligible rows are grouped by unit and the values of the stratum
//! expressions without an aggregate (a unit's *groups*), each group with its
//! row count and its part of every aggregate; the groups are grouped again
//! by unit, combining the parts into the unit's aggregates (without such
//! strata a unit is one group: one grouping by unit). A unit with one
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
use datafusion::functions_aggregate::expr_fn::{first_value, max, min, sum};
use datafusion::logical_expr::{SortExpr, cast, lit};
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
    if !types_group_exactly(rows.schema().as_arrow(), plan) {
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
    let units = of_units(rows, &unit.name, &plain, plan).map_err(df_err("unit aggregates"))?;
    let units = with_sums_checked(ctx, units, plan)
        .await?
        .select(per_unit(plan, &unit.name)?)
        .map_err(df_err("evaluating `stratify by` over unit aggregates"))?;
    Ok(Some(
        as_counted(ctx, units, &plain_at, st.strata.len(), having_dropped).await?,
    ))
}

/// Per unit: the unit, its groups ([`GROUPS`]), the strata without
/// aggregates (`plain`), its rows and its aggregates. Without such strata a
/// unit is one group, and one grouping by unit does.
fn of_units(
    rows: DataFrame,
    unit: &str,
    plain: &[String],
    plan: &StrataPlan,
) -> datafusion::error::Result<DataFrame> {
    if plain.is_empty() {
        let units = rows.aggregate(vec![column(unit)], aggregates(plan, Part::Whole))?;
        let mut select: Vec<Expr> = units
            .schema()
            .fields()
            .iter()
            .map(|f| column(f.name()))
            .collect();
        select.push(lit(1i64).alias(GROUPS));
        return units.select(select);
    }
    let groups = rows.aggregate(
        std::iter::once(column(unit))
            .chain(plain.iter().map(|c| column(c)))
            .collect(),
        aggregates(plan, Part::Group),
    )?;
    let mut combined = vec![count_all().alias(GROUPS)];
    combined.extend(plain.iter().map(|c| min(column(c)).alias(c)));
    combined.extend(aggregates(plan, Part::Unit));
    groups.aggregate(vec![column(unit)], combined)
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

/// Which aggregates of [`unit_rows`]: of a group's rows, of a unit's
/// groups, or of a unit's rows (a unit of one group).
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Group,
    Unit,
    Whole,
}

/// `e` over the unit's rows where it reads a `count(*)` (named as
/// [`StrataPlan`] names it): counted once, by [`aggregates`].
fn counted(e: Expr, plan: &StrataPlan) -> Result<Expr, RunError> {
    use datafusion::common::Column;
    let counts: Vec<Column> = named_aggregates(plan)
        .filter(|n| n.aggregate.func == ir::Aggregate::Count)
        .map(|n| Column::new_unqualified(n.name))
        .collect();
    let rows = Column::new_unqualified(UNIT_ROWS);
    let to_rows = counts.iter().map(|c| (c, &rows)).collect();
    datafusion::logical_expr::expr_rewriter::replace_col(e, &to_rows)
        .map_err(df_err("unit aggregates"))
}

/// Every unit aggregate of `stratify by` and `having`, with the names
/// [`StrataPlan`] gives it and its argument.
fn named_aggregates(plan: &StrataPlan) -> impl Iterator<Item = Named<'_>> + '_ {
    let named = plan.aggregates.iter().enumerate().map(|(j, a)| Named {
        aggregate: a,
        name: format!("{AGG_PREFIX}{j}"),
        arg: format!("{AGG_ARG_PREFIX}{j}"),
        by: format!("{AGG_BY_PREFIX}{j}"),
    });
    let having = plan
        .having
        .iter()
        .flat_map(|h| &h.1)
        .enumerate()
        .map(|(j, a)| Named {
            aggregate: a,
            name: format!("{HAVING_PREFIX}{j}"),
            arg: format!("{HAVING_ARG_PREFIX}{j}"),
            by: format!("{HAVING_BY_PREFIX}{j}"),
        });
    named.chain(having)
}

/// A unit aggregate and the columns `StrataPlan` names for it: its value,
/// its argument and its `by` (per row).
struct Named<'a> {
    aggregate: &'a ir::UnitAggregate,
    name: String,
    arg: String,
    by: String,
}

/// The rows count and every unit aggregate but `count(*)` (the rows count,
/// [`counted`]): a group's part, the parts combined per unit, or the
/// unit's whole (`part`).
fn aggregates(plan: &StrataPlan, part: Part) -> Vec<Expr> {
    // A group's parts are named apart from the unit's: named alike, some
    // plans failed in DataFusion 55 ("duplicate unqualified field name").
    let of_group = |name: &str| format!("{name}{GROUP_PART}");
    let mut out = vec![match part {
        Part::Group => count_all().alias(of_group(UNIT_ROWS)),
        Part::Unit => sum(column(&of_group(UNIT_ROWS))).alias(UNIT_ROWS),
        Part::Whole => count_all().alias(UNIT_ROWS),
    }];
    for Named {
        aggregate: a,
        name,
        arg,
        by,
    } in named_aggregates(plan)
    {
        if a.func == ir::Aggregate::Count {
            continue;
        }
        // A group's part of first/last is its chosen row's `x` and `t`.
        let by_name = format!("{name} by");
        let (input, by, name) = match part {
            Part::Group => (column(&arg), column(&by), of_group(&name)),
            Part::Unit => (column(&of_group(&name)), column(&of_group(&by_name)), name),
            Part::Whole => (column(&arg), column(&by), name),
        };
        match (a.func, part) {
            (ir::Aggregate::Min, _) => out.push(min(input).alias(name)),
            (ir::Aggregate::Max, _) => out.push(max(input).alias(name)),
            (ir::Aggregate::Sum, Part::Group | Part::Whole) => {
                out.push(sum(cast(input, exact_sum())).alias(name))
            }
            (ir::Aggregate::Sum, Part::Unit) => out.push(sum(input).alias(name)),
            (ir::Aggregate::First | ir::Aggregate::Last, _) => {
                let order = chosen_row(a.func, &by, &input);
                if part == Part::Group {
                    let t = first_value(by.clone(), order.clone());
                    out.push(t.alias(of_group(&by_name)));
                }
                out.push(first_value(input, order).alias(name));
            }
            _ => unreachable!("checked by aggregates_group_exactly"),
        }
    }
    out
}

/// The order whose first row `first(x by t)` / `last(x by t)` takes
/// (spec §2.7): by `t` (ascending for `first`), non-NULL `t` first, then
/// the larger `x`, non-NULL `x` first.
fn chosen_row(func: ir::Aggregate, t: &Expr, x: &Expr) -> Vec<SortExpr> {
    let ascending = func == ir::Aggregate::First;
    vec![
        t.clone().sort(ascending, false),
        x.clone().sort(false, false),
    ]
}

/// What a `sum` of integers adds in: no sum of 64-bit integers a table can
/// hold overflows it.
fn exact_sum() -> DataType {
    DataType::Decimal128(38, 0)
}

/// `units` with each `sum` (of integers, added as [`exact_sum`]) as a
/// 64-bit integer, as `StrataPlan` has it; past 64 bits, strat's error.
async fn with_sums_checked(
    ctx: &SessionContext,
    units: DataFrame,
    plan: &StrataPlan,
) -> Result<DataFrame, RunError> {
    let input = units.schema().as_arrow().clone();
    let sums: Vec<usize> = named_aggregates(plan)
        .filter(|n| n.aggregate.func == ir::Aggregate::Sum)
        .map(|n| input.index_of(&n.name))
        .collect::<Result<_, _>>()
        .map_err(arrow_err("unit aggregates"))?;
    if sums.is_empty() {
        return Ok(units);
    }
    let fields: Vec<Field> = input
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match sums.contains(&i) {
            true => Field::new(f.name(), DataType::Int64, true),
            false => f.as_ref().clone(),
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let out = schema.clone();
    let map = move |batch: &RecordBatch| {
        let columns = batch
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| match sums.contains(&i) {
                true => sum_as_i64(c),
                false => Ok(c.clone()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(out.clone(), columns).map_err(arrow_err("unit aggregates"))
    };
    mapped(ctx, units, schema, Arc::new(map)).await
}

/// A unit's exact `sum` of integers as one, or strat's overflow error.
fn sum_as_i64(sums: &ArrayRef) -> Result<ArrayRef, RunError> {
    let sums = sums.as_primitive_opt::<Decimal128Type>().ok_or_else(|| {
        RunError::Statement("a unit's sum is not a decimal (internal error)".into())
    })?;
    let values = sums
        .iter()
        .map(|s| {
            s.map(|v| i64::try_from(v).map_err(|_| sum_overflow("sum")))
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Int64Array::from(values)))
}

/// Every aggregate is `count(*)`, `min`, `max`, `sum`, `first` or `last`,
/// and every stratum either has no aggregate or reads no column outside its
/// aggregates.
fn aggregates_group_exactly(plan: &StrataPlan) -> bool {
    use ir::Aggregate as A;
    let all = plan
        .aggregates
        .iter()
        .chain(plan.having.iter().flat_map(|h| &h.1));
    let functions = all.clone().all(|a| {
        matches!(
            a.func,
            A::Count | A::Min | A::Max | A::Sum | A::First | A::Last
        )
    });
    let unit_level = plan.rewritten.iter().flatten().all(|e| {
        let mut read = Vec::new();
        e.columns(&mut read);
        read.iter().all(|c| c.starts_with(AGG_PREFIX))
    });
    functions && unit_level
}

/// The unit, the strata without aggregates and the aggregates' arguments
/// (and `by`) have types whose equality and order DataFusion's grouping,
/// `min`/`max` and `first_value` share with strat's own (Arrow's row format
/// and comparators); `sum` adds integers.
fn types_group_exactly(schema: &Schema, plan: &StrataPlan) -> bool {
    let sums_of_integers = named_aggregates(plan)
        .filter(|n| n.aggregate.func == ir::Aggregate::Sum)
        .all(|n| {
            schema
                .field_with_name(&n.arg)
                .is_ok_and(|f| f.data_type().is_integer())
        });
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
    sums_of_integers && schema.fields().iter().all(|f| exact(f.data_type()))
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
