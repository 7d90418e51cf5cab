//! `as of T by COLUMN …` (spec §4.5): each unit's state row, picked before
//! anything else reads the source.
//!
//! DataFusion sorts the rows in the window (with a unit) by unit, then by
//! (`COLUMN`, `ties by`) best first; [`Picked`] walks the sorted rows and
//! keeps each unit's first row, its state, and counts the rows equal to it
//! on both (NULLs equal): more than one is a tie no rule breaks, an error.
//! (A window function — `row_number` and a count of peers — did the same
//! 2.5× slower: DataFusion's window pays per partition, here per unit.)
//! The sort spills under the run's memory pool, and the walk holds one row
//! key, so memory is bounded by the budget, never the table. The units with
//! no state are those of the whole table (DataFusion's grouping of the unit
//! column alone, which spills, and also counts the rows) less those with one. The state rows are
//! spooled to a temporary Arrow file (as an earlier statement's output is),
//! so every later pass reads them without picking again.

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::prelude::lit;

use super::*;

/// Units named in the message of a tie: the first few in key order, of
/// the first many met (so the message does not depend on the row order).
const TIE_EXAMPLES: usize = 3;
const TIES_KEPT: usize = 1024;

/// The rows in the window, sorted so that each unit's state row comes
/// first among its rows, and the [`Picked`] that walks them. `all` is the
/// statement's source, of columns `schema`.
pub(super) async fn state_rows(
    st: &Statement,
    all: DataFrame,
    schema: &SchemaRef,
    what: &str,
) -> Result<(DataFrame, Picked), RunError> {
    let (Some(as_of), Some(unit)) = (&st.as_of, &st.unit) else {
        return Err(RunError::Statement(
            "`as of` without `unit` (internal error)".into(),
        ));
    };
    let context = format!("reading {what} `as of` {}", as_of.at);
    let (rows_read, units_in_table) = rows_and_units(&all, &unit.name, &context).await?;
    let mut order = vec![
        column(&unit.name).sort(true, false),
        column(&as_of.by.name).sort(false, false),
    ];
    let mut keys = vec![as_of.by.name.as_str()];
    if let Some(t) = &as_of.ties {
        // Ascending ties: the greatest wins, so it comes first; NULL never wins.
        order.push(column(&t.column.name).sort(t.desc, false));
        keys.push(&t.column.name);
    }
    // A plain predicate (NULL is not true): Parquet row groups outside the
    // window are skipped.
    let window = lower_expr(&as_of.window, None)?;
    let sorted = all
        .filter(column(&unit.name).is_not_null().and(window))
        .and_then(|df| df.sort(order))
        .map_err(df_err(&context))?;
    let counts = AsOfReport {
        clause: as_of.text(),
        rows_read,
        ..AsOfReport::default()
    };
    let picked = Picked::new(schema, &unit.name, &keys, counts, units_in_table)?;
    Ok((sorted, picked))
}

/// The source's rows, and its units (NULL is none), in one pass that reads
/// only the unit column: DataFusion's grouping by unit, which spills.
async fn rows_and_units(
    all: &DataFrame,
    unit: &str,
    context: &str,
) -> Result<(u64, u64), RunError> {
    let totals = all
        .clone()
        .aggregate(vec![column(unit)], vec![count(lit(1)).alias("rows")])
        .and_then(|df| {
            df.aggregate(
                vec![],
                vec![
                    sum(column("rows")).alias("rows"),
                    count(column(unit)).alias("units"),
                ],
            )
        })
        .map_err(df_err(context))?
        .collect()
        .await
        .map_err(df_err(context))?;
    let value = |name: &str| {
        totals
            .first()
            .and_then(|b| b.column_by_name(name))
            .and_then(|a| cast(a, &DataType::UInt64).ok())
            .map_or(0, |a| {
                let a = a.as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
                if a.is_empty() || a.is_null(0) {
                    0
                } else {
                    a.value(0)
                }
            })
    };
    Ok((value("rows"), value("units")))
}

/// The walk over the sorted rows: each unit's first row, the rows tied
/// with it, and what was counted on the way.
pub(super) struct Picked {
    counts: AsOfReport,
    /// Units with a row anywhere in the source.
    units_in_table: u64,
    unit_at: usize,
    key_at: Vec<usize>,
    units: RowConverter,
    keys: RowConverter,
    /// The unit being walked, the (`by`, `ties by`) of its state row, how
    /// many rows share them, and its text once it ties.
    current: Option<(OwnedRow, OwnedRow, u64, Option<String>)>,
    /// Units whose best rows tie, and some of them: (unit value, rows tied).
    tied_units: u64,
    tied: Vec<(String, u64)>,
}

impl Picked {
    fn new(
        schema: &SchemaRef,
        unit: &str,
        keys: &[&str],
        counts: AsOfReport,
        units_in_table: u64,
    ) -> Result<Self, RunError> {
        let at = |name: &str| {
            schema
                .index_of(name)
                .map_err(|e| RunError::Statement(format!("`as of` column {name}: {e}")))
        };
        let field = |i: usize| SortField::new(schema.field(i).data_type().clone());
        let unit_at = at(unit)?;
        let key_at = keys.iter().map(|k| at(k)).collect::<Result<Vec<_>, _>>()?;
        let failed = |e: ArrowError| RunError::Statement(format!("`as of` keys: {e}"));
        Ok(Picked {
            counts,
            units_in_table,
            unit_at,
            units: RowConverter::new(vec![field(unit_at)]).map_err(failed)?,
            keys: RowConverter::new(key_at.iter().map(|&i| field(i)).collect()).map_err(failed)?,
            key_at,
            current: None,
            tied_units: 0,
            tied: Vec::new(),
        })
    }

    /// One batch of sorted rows → its state rows (the first row of each
    /// unit); a unit's rows may span batches.
    pub fn take(&mut self, batch: &RecordBatch) -> Result<RecordBatch, RunError> {
        let failed = |e: ArrowError| RunError::Statement(format!("picking the `as of` rows: {e}"));
        let units = self
            .units
            .convert_columns(&[batch.column(self.unit_at).clone()])
            .map_err(failed)?;
        let key_columns: Vec<ArrayRef> = self
            .key_at
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let keys = self.keys.convert_columns(&key_columns).map_err(failed)?;
        let format = ArrayFormatter::try_new(
            batch.column(self.unit_at).as_ref(),
            &FormatOptions::default(),
        )
        .map_err(failed)?;
        let mut keep = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            match &mut self.current {
                Some((unit, best, peers, text)) if unit.row() == units.row(i) => {
                    if best.row() == keys.row(i) {
                        *peers += 1;
                        text.get_or_insert_with(|| format.value(i).to_string());
                    }
                    keep.push(false);
                }
                _ => {
                    self.finish_unit();
                    self.current = Some((units.row(i).owned(), keys.row(i).owned(), 1, None));
                    self.counts.units_with_state += 1;
                    keep.push(true);
                }
            }
        }
        filter_record_batch(batch, &BooleanArray::from(keep)).map_err(failed)
    }

    /// Notes the unit walked last if its best rows tie.
    fn finish_unit(&mut self) {
        if let Some((_, _, peers @ 2.., Some(text))) = self.current.take() {
            self.tied_units += 1;
            if self.tied.len() < TIES_KEPT {
                self.tied.push((text, peers));
            }
        }
    }

    /// What was counted, once every row went by; the error of units whose
    /// best rows tie, if any.
    pub fn finish(&mut self, st: &Statement) -> Result<AsOfReport, RunError> {
        self.finish_unit();
        if let (1.., Some(as_of), Some(unit)) = (self.tied_units, &st.as_of, &st.unit) {
            let mut examples = self.tied.clone();
            examples.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
            examples.truncate(TIE_EXAMPLES);
            return Err(RunError::AsOfTie(Box::new(TiedUnits {
                at: as_of.at.to_string(),
                unit_column: unit.name.clone(),
                by: as_of.by.name.clone(),
                ties: as_of.ties.as_ref().map(|t| t.column.name.clone()),
                units: self.tied_units,
                examples,
            })));
        }
        Ok(AsOfReport {
            units_without_state: self
                .units_in_table
                .saturating_sub(self.counts.units_with_state),
            ..self.counts.clone()
        })
    }
}
