//! `as of T by COLUMN …` (spec §4.5): each unit's state row, picked before
//! anything else reads the source.
//!
//! One DataFusion window over every row with a unit, partitioned by unit
//! and ordered by (in the window, `COLUMN`, `ties by`) best first: the first
//! row of a unit is its state when it is in the window, and the unit has no
//! state when it is not. A second window function counts that row's peers
//! (rows equal on every ordering key): more than one is a tie no rule
//! breaks, an error. DataFusion's sort spills under the run's memory pool,
//! and the window holds one unit's rows at a time, so memory is bounded by
//! the budget and the largest unit, never the table. The state rows are
//! spooled to a temporary Arrow file (as an earlier statement's output is),
//! so every later pass reads them without picking again.

use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{and, not};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{ExprFunctionExt, WindowFrame, WindowFunctionDefinition};
use datafusion::prelude::lit;

use super::*;

const IN_WINDOW: &str = "__strat_as_of_in_window";
const RANK: &str = "__strat_as_of_rank";
const PEERS: &str = "__strat_as_of_peers";
/// Units named in the message of a tie: the first few in key order, of
/// the first many met (so the message does not depend on the row order).
const TIE_EXAMPLES: usize = 3;
const TIES_KEPT: usize = 1024;

/// The first row of each unit of `all` (a statement's source rows) in the
/// order that makes the state row first, with the helper columns, and
/// where [`Picked::take`] counts them as they stream by.
pub(super) async fn state_rows(
    st: &Statement,
    all: DataFrame,
    what: &str,
) -> Result<(DataFrame, Arc<std::sync::Mutex<Picked>>), RunError> {
    let (Some(as_of), Some(unit)) = (&st.as_of, &st.unit) else {
        return Err(RunError::Statement(
            "`as of` without `unit` (internal error)".into(),
        ));
    };
    let context = format!("reading {what} `as of` {}", as_of.at);
    let rows_read = all.clone().count().await.map_err(df_err(&context))? as u64;
    let in_window = lower_expr(&as_of.window, None)?.is_true();
    let mut order = vec![
        column(IN_WINDOW).sort(false, false),
        column(&as_of.by.name).sort(false, false),
    ];
    if let Some(t) = &as_of.ties {
        // Ascending ties: the greatest wins, so it comes first; NULL never wins.
        order.push(column(&t.column.name).sort(t.desc, false));
    }
    let by_unit = vec![column(&unit.name)];
    let rank = row_number()
        .partition_by(by_unit.clone())
        .order_by(order.clone())
        .build()
        .map_err(df_err(&context))?;
    // RANGE … CURRENT ROW: the first row's frame holds all of its peers.
    let peers = Expr::from(WindowFunction::new(
        WindowFunctionDefinition::AggregateUDF(count_udaf()),
        vec![lit(1i64)],
    ))
    .partition_by(by_unit)
    .order_by(order)
    .window_frame(WindowFrame::new(Some(false)))
    .build()
    .map_err(df_err(&context))?;
    let firsts = all
        .filter(column(&unit.name).is_not_null())
        .and_then(|df| df.with_column(IN_WINDOW, in_window))
        .and_then(|df| df.window(vec![rank.alias(RANK), peers.alias(PEERS)]))
        .and_then(|df| df.filter(column(RANK).eq(lit(1u64))))
        .map_err(df_err(&context))?;
    let picked = Arc::new(std::sync::Mutex::new(Picked {
        counts: AsOfReport {
            clause: as_of.text(),
            rows_read,
            ..AsOfReport::default()
        },
        ..Picked::default()
    }));
    Ok((firsts, picked))
}

/// The counts and ties met while the first rows stream by.
#[derive(Debug, Default)]
pub(super) struct Picked {
    pub counts: AsOfReport,
    /// Units whose best rows tie, and some of them: (unit value, rows tied).
    pub tied_units: u64,
    pub tied: Vec<(String, u64)>,
}

impl Picked {
    /// Counts one batch of first rows (source columns first, `n_source` of
    /// them, then the helper columns) and returns its state rows, source
    /// columns only.
    pub fn take(
        &mut self,
        batch: &RecordBatch,
        n_source: usize,
        unit_at: usize,
    ) -> Result<RecordBatch, RunError> {
        let failed = |e: ArrowError| RunError::Statement(format!("picking the `as of` rows: {e}"));
        let column_of = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| RunError::Statement(format!("no column {name} (internal error)")))
        };
        let in_window = column_of(IN_WINDOW)?.as_boolean().clone();
        let peers = column_of(PEERS)?;
        let peers = cast(peers, &DataType::UInt64).map_err(failed)?;
        let peers = peers.as_primitive::<UInt64Type>();
        let single =
            eq(peers, &datafusion::arrow::array::UInt64Array::new_scalar(1)).map_err(failed)?;
        let tied = and(&in_window, &not(&single).map_err(failed)?).map_err(failed)?;
        let with_state = in_window.true_count() as u64;
        self.counts.units_with_state += with_state;
        self.counts.units_without_state += (batch.num_rows() as u64) - with_state;
        if tied.true_count() > 0 {
            self.note_ties(&tied, peers, batch.column(unit_at))?;
        }
        let keep: BooleanArray = and(&in_window, &single).map_err(failed)?;
        let source = batch
            .project(&(0..n_source).collect::<Vec<_>>())
            .map_err(failed)?;
        filter_record_batch(&source, &keep).map_err(failed)
    }

    fn note_ties(
        &mut self,
        tied: &BooleanArray,
        peers: &datafusion::arrow::array::UInt64Array,
        units: &ArrayRef,
    ) -> Result<(), RunError> {
        let format = ArrayFormatter::try_new(units.as_ref(), &FormatOptions::default())
            .map_err(|e| RunError::Statement(format!("naming a tied unit: {e}")))?;
        for i in (0..tied.len()).filter(|&i| tied.value(i)) {
            self.tied_units += 1;
            if self.tied.len() < TIES_KEPT {
                self.tied
                    .push((format.value(i).to_string(), peers.value(i)));
            }
        }
        Ok(())
    }

    /// The error of units whose best rows tie, if any.
    pub fn ties(&self, st: &Statement) -> Result<(), RunError> {
        if self.tied_units == 0 {
            return Ok(());
        }
        let (Some(as_of), Some(unit)) = (&st.as_of, &st.unit) else {
            return Ok(());
        };
        let mut examples = self.tied.clone();
        examples.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
        examples.truncate(TIE_EXAMPLES);
        Err(RunError::AsOfTie(Box::new(TiedUnits {
            at: as_of.at.to_string(),
            unit_column: unit.name.clone(),
            by: as_of.by.name.clone(),
            ties: as_of.ties.as_ref().map(|t| t.column.name.clone()),
            units: self.tied_units,
            examples,
        })))
    }
}
