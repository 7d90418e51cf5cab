//! Deciding records as they come: the `where` filter, the stratum, the
//! unit's key text and its draw (spec §6), then the stratum's cut — the same
//! decision a batch run makes, one record batch at a time.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, RecordBatch, RecordBatchOptions, StringArray,
    UInt32Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use num_rational::BigRational;
use num_traits::Zero;
use strat_check::ir::{self, Program, Statement};
use strat_engine::draw::Drawer;
use strat_engine::keys::{KeyColumn, RowKeys, is_unit_key_type, push_stratum_value};
use strat_engine::lower::{column, lower_expr};
use strat_engine::run::UnitFilters;

use crate::decisions::{Cut, Decisions, DrawKey, Origin, StratumCut, below};
use crate::form::{Form, online_form};

/// Why records cannot be decided.
#[derive(Debug)]
pub enum OnlineError {
    /// The statement cannot be decided online as given (E0143, E0144).
    Rules(Box<strat_syntax::Diagnostic>),
    /// The thresholds were frozen from other rules (E0145; freeze again).
    Thresholds(String),
    /// Evaluating the rules on a batch failed.
    Data(String),
}

impl std::fmt::Display for OnlineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OnlineError::Rules(d) => write!(f, "{}: {}", d.code, d.message),
            OnlineError::Thresholds(m) | OnlineError::Data(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for OnlineError {}

fn data_err(what: &str) -> impl FnOnce(datafusion::error::DataFusionError) -> OnlineError + '_ {
    move |e| OnlineError::Data(format!("{what}: {e}"))
}

fn arrow_err(what: &str) -> impl FnOnce(datafusion::arrow::error::ArrowError) -> OnlineError + '_ {
    move |e| OnlineError::Data(format!("{what}: {e}"))
}

/// What the records decided so far came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub records: u64,
    /// Records `where` keeps (all of them without `where`).
    pub eligible: u64,
    /// Eligible records whose unit is NULL: no unit, not in the population.
    pub null_units: u64,
    pub selected: u64,
    /// Eligible records in a stratum the thresholds do not know (the batch
    /// run had no unit there, so it kept none): not selected.
    pub unknown_stratum: u64,
    /// Records skipped because their unit was met earlier in another stratum.
    pub changed_stratum: u64,
    /// Eligible records whose unit `keep units in` does not list, or
    /// `exclude units in` does (not in the population).
    pub filtered_units: u64,
}

/// A record left out for a reason the caller should hear of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    /// The record's row in the batch.
    pub row: usize,
    pub reason: String,
}

/// The selected records of one batch, with the statement's output columns.
#[derive(Debug)]
pub struct Decided {
    pub batch: RecordBatch,
    pub skipped: Vec<Skip>,
}

/// How many units the check "a unit stays in one stratum" remembers: two
/// generations of up to this many, so the last 1–2 million distinct units.
const REMEMBERED_UNITS: usize = 1 << 20;

/// Recent units' strata (by draw, a 64-bit hash of the key text), in two
/// generations so that memory stays bounded however long the stream.
#[derive(Default)]
struct UnitStrata {
    new: HashMap<u64, u32>,
    old: HashMap<u64, u32>,
}

impl UnitStrata {
    /// The stratum the unit was met in before, when it differs from `h`.
    fn changed(&mut self, r: u64, h: u32) -> Option<u32> {
        let before = self.new.get(&r).or_else(|| self.old.get(&r)).copied();
        match before {
            Some(b) if b != h => return Some(b),
            Some(_) if self.new.contains_key(&r) => return None,
            _ => {}
        }
        if self.new.len() >= REMEMBERED_UNITS {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(r, h);
        None
    }
}

/// A stratum's cut and its weight (computed once: a Bernoulli weight is
/// exact rational arithmetic).
type Known = (Arc<StratumCut>, f64);

/// Decides records for one statement, from its rules and (for statements
/// that need counts) the thresholds a batch run froze.
pub struct Decider {
    st: Statement,
    input: SchemaRef,
    filter: Option<Arc<dyn PhysicalExpr>>,
    strata: Vec<Arc<dyn PhysicalExpr>>,
    /// Rule predicates over the stratum values (`s0`, `s1`, …); `None` for `else`.
    rules: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// The rules' amounts as the batch allocation reads them (`p_h`, §5.4).
    rule_amounts: Vec<strat_alloc::RuleAmount>,
    strata_schema: SchemaRef,
    unit: Option<usize>,
    drawer: Drawer,
    form: Form,
    /// Each stratum met, by `_stratum` text: its id and its cut (`None`:
    /// a stratum the thresholds do not know).
    cuts: HashMap<String, (u32, Option<Known>)>,
    texts: Vec<String>,
    units: UnitStrata,
    filters: UnitFilters,
    counts: Counts,
}

impl Decider {
    /// A decider for statement `index` of `program` over records of the
    /// schema `input` (the table's). `frozen` are the thresholds of a batch
    /// run, required for statements whose decision needs counts (E0143);
    /// they must come from this statement of these rules (`rule_md5`, E0145).
    pub fn new(
        ctx: &SessionContext,
        program: &Program,
        index: usize,
        input: SchemaRef,
        frozen: Option<(Decisions, Origin<'_>)>,
    ) -> Result<Decider, OnlineError> {
        let st = program.statements[index].clone();
        let form = online_form(&st, frozen.is_some()).map_err(OnlineError::Rules)?;
        let label = strat_engine::run::statement_label(st.name.as_deref(), index);
        let mut cuts = HashMap::new();
        let mut texts = Vec::new();
        if let Some((d, origin)) = frozen {
            d.fits(&origin, &label, st.seed).map_err(|p| {
                OnlineError::Thresholds(format!("the thresholds do not fit the rules: {p}"))
            })?;
            for (text, cut) in d.strata {
                let weight = cut.weight();
                cuts.insert(
                    text.clone(),
                    (texts.len() as u32, Some((Arc::new(cut), weight))),
                );
                texts.push(text);
            }
        }
        let df_schema =
            DFSchema::try_from(input.as_ref().clone()).map_err(data_err("the records' schema"))?;
        let physical = |e: &ir::Expr,
                        strata: Option<&[datafusion::prelude::Expr]>,
                        s: &DFSchema| {
            let lowered = lower_expr(e, strata).map_err(|e| OnlineError::Data(e.to_string()))?;
            ctx.create_physical_expr(lowered, s)
                .map_err(data_err("planning an expression"))
        };
        let filter = st
            .filter
            .as_ref()
            .map(|f| physical(f, None, &df_schema))
            .transpose()?;
        let strata = (st.strata.iter())
            .map(|s| physical(&s.expr, None, &df_schema))
            .collect::<Result<Vec<_>, _>>()?;
        let fields = (strata.iter().enumerate())
            .map(|(i, e)| {
                let t = e.data_type(&input).map_err(data_err("a stratum's type"))?;
                Ok(Field::new(format!("s{i}"), t, true))
            })
            .collect::<Result<Vec<_>, OnlineError>>()?;
        let strata_schema = Arc::new(Schema::new(fields));
        let refs: Vec<_> = (0..strata.len())
            .map(|i| column(&format!("s{i}")))
            .collect();
        let strata_df = DFSchema::try_from(strata_schema.as_ref().clone())
            .map_err(data_err("the strata's schema"))?;
        let rules = (st.rules.iter())
            .map(|r| {
                (r.predicate.as_ref())
                    .map(|p| physical(p, Some(&refs), &strata_df))
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let unit = match &st.unit {
            None => None,
            Some(c) => Some(
                input
                    .index_of(&c.name)
                    .map_err(arrow_err("the unit column"))?,
            ),
        };
        Ok(Decider {
            drawer: Drawer::new(st.seed),
            rule_amounts: strat_engine::run::request(&st).rules,
            st,
            input,
            filter,
            strata,
            rules,
            strata_schema,
            unit,
            form,
            cuts,
            texts,
            units: UnitStrata::default(),
            filters: UnitFilters::default(),
            counts: Counts::default(),
        })
    }

    /// The decider with the key sets of `keep units in`/`exclude units in`
    /// (required when the statement has them: `UnitFilters::read`, as the
    /// batch run reads them).
    pub fn with_unit_filters(mut self, filters: UnitFilters) -> Decider {
        self.filters = filters;
        self
    }

    /// The input columns a record's decision reads: its unit (every column
    /// when the row is the unit, spec §6.1), the columns of `where` and of
    /// the stratum expressions. A record that lacks one cannot be decided:
    /// its value is unknown, not NULL.
    pub fn decision_columns(&self) -> Vec<String> {
        let st = &self.st;
        let mut read: Vec<String> = match &st.unit {
            Some(u) => vec![u.name.clone()],
            None => st.input.iter().map(|c| c.name.clone()).collect(),
        };
        if let Some(f) = &st.filter {
            f.columns(&mut read);
        }
        for s in &st.strata {
            s.expr.columns(&mut read);
        }
        st.input
            .iter()
            .filter(|c| read.contains(&c.name))
            .map(|c| c.name.clone())
            .collect()
    }

    /// What the records decided so far came to.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Decides every record of `batch` (of the input schema): the selected
    /// ones, in their order, with the statement's output columns.
    pub fn decide(&mut self, batch: &RecordBatch) -> Result<Decided, OnlineError> {
        let n = batch.num_rows();
        self.counts.records += n as u64;
        let eligible = match &self.filter {
            None => None,
            Some(f) => {
                let a = evaluate(f, batch)?;
                Some(a.as_boolean().clone())
            }
        };
        let strata: Vec<ArrayRef> = (self.strata.iter())
            .map(|e| evaluate(e, batch))
            .collect::<Result<_, _>>()?;
        let stratum_columns: Vec<KeyColumn> = (strata.iter())
            .map(|a| value_text_column(a.as_ref()))
            .collect::<Result<_, _>>()?;
        let keys = Keys::new(self.unit, batch)?;
        let (mut picked, mut weights, mut stratum_of, mut parts) = (vec![], vec![], vec![], vec![]);
        let mut skipped = Vec::new();
        let (mut key, mut text, mut value) = (Vec::new(), String::new(), Vec::new());
        for row in 0..n {
            if let Some(e) = &eligible
                && !(e.is_valid(row) && e.value(row))
            {
                continue;
            }
            self.counts.eligible += 1;
            if keys.is_null(row) {
                self.counts.null_units += 1;
                continue;
            }
            key.clear();
            keys.write(row, &mut key);
            if self.filters.drops(&key) {
                self.counts.filtered_units += 1;
                continue;
            }
            let r = self.drawer.draw(&key);
            row_stratum_text(&stratum_columns, row, &mut text, &mut value);
            let (h, cut) = self.cut(&text, &strata, row)?;
            if self.unit.is_some()
                && let Some(before) = self.units.changed(r, h)
            {
                self.counts.changed_stratum += 1;
                skipped.push(Skip {
                    row,
                    reason: format!(
                        "unit `{}` was met in stratum `{}` before and is in `{text}` here; \
                         a unit stays in one stratum (spec §4.1)",
                        String::from_utf8_lossy(&key),
                        self.texts[before as usize]
                    ),
                });
                continue;
            }
            let Some((cut, weight)) = cut else {
                self.counts.unknown_stratum += 1;
                continue;
            };
            if let Some(part) = decide(&cut.cut, r, &key) {
                picked.push(row as u32);
                weights.push(weight);
                stratum_of.push(h);
                parts.push(part);
            }
        }
        self.counts.selected += picked.len() as u64;
        let picks = Picks {
            rows: UInt32Array::from(picked),
            weights,
            strata: stratum_of,
            parts,
        };
        Ok(Decided {
            batch: self.output(batch, &strata, &picks)?,
            skipped,
        })
    }

    /// The id and cut of the stratum `text` (met at `row` of `strata`):
    /// frozen, or from the rules the first time it is met.
    fn cut(
        &mut self,
        text: &str,
        strata: &[ArrayRef],
        row: usize,
    ) -> Result<(u32, Option<Known>), OnlineError> {
        if let Some((h, c)) = self.cuts.get(text) {
            return Ok((*h, c.clone()));
        }
        let cut = match &self.form {
            Form::Frozen => None,
            Form::AboutSplit(t) => Some(Cut::AboutParts(t.clone())),
            Form::OneRate(p) => Some(below(p.clone())),
            Form::RuleRates => Some(below(self.rule_rate(strata, row)?)),
        };
        let cut = cut.map(|cut| {
            let cut = StratumCut {
                population: 0,
                target: 0,
                cut,
            };
            let weight = cut.weight();
            (Arc::new(cut), weight)
        });
        let h = self.texts.len() as u32;
        self.texts.push(text.to_string());
        self.cuts.insert(text.to_string(), (h, cut.clone()));
        Ok((h, cut))
    }

    /// `p_h` of the first rule that matches the stratum values at `row`
    /// (NULL is false, as in a batch run).
    fn rule_rate(&self, strata: &[ArrayRef], row: usize) -> Result<BigRational, OnlineError> {
        let one = UInt32Array::from(vec![row as u32]);
        let columns = (strata.iter())
            .map(|a| take(a.as_ref(), &one, None).map_err(arrow_err("a stratum value")))
            .collect::<Result<Vec<_>, _>>()?;
        let values = RecordBatch::try_new(self.strata_schema.clone(), columns)
            .map_err(arrow_err("the stratum values"))?;
        for (amount, predicate) in self.rule_amounts.iter().zip(&self.rules) {
            let holds = match predicate {
                None => true,
                Some(p) => {
                    let v = evaluate(p, &values)?;
                    let v = v.as_boolean();
                    v.is_valid(0) && v.value(0)
                }
            };
            if holds {
                return Ok(amount.probability().unwrap_or_else(BigRational::zero));
            }
        }
        // The checker requires an `else` (E0135): unreachable in practice.
        Ok(BigRational::zero())
    }

    fn output(
        &self,
        batch: &RecordBatch,
        strata: &[ArrayRef],
        picks: &Picks,
    ) -> Result<RecordBatch, OnlineError> {
        let gather = |a: &ArrayRef| -> Result<ArrayRef, OnlineError> {
            let a = take(a.as_ref(), &picks.rows, None).map_err(arrow_err("the output"))?;
            Ok(match a.data_type() {
                DataType::Utf8View => cast(&a, &DataType::Utf8).map_err(arrow_err("the output"))?,
                DataType::BinaryView => {
                    cast(&a, &DataType::Binary).map_err(arrow_err("the output"))?
                }
                _ => a,
            })
        };
        let parts = self.st.kind.split().map_or(&[][..], |s| s.parts.as_slice());
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for o in &self.st.output {
            let a: ArrayRef = match o {
                ir::Output::Column(c) => {
                    let i = self
                        .input
                        .index_of(&c.name)
                        .map_err(arrow_err("the output"))?;
                    gather(batch.column(i))?
                }
                ir::Output::Stratum { index, .. } => gather(&strata[*index])?,
                ir::Output::Weight => Arc::new(Float64Array::from(picks.weights.clone())),
                ir::Output::StratumText => Arc::new(StringArray::from_iter_values(
                    picks
                        .strata
                        .iter()
                        .map(|&h| self.texts[h as usize].as_str()),
                )),
                ir::Output::SplitName => Arc::new(StringArray::from_iter_values(
                    picks.parts.iter().map(|&i| parts[i].0.as_str()),
                )),
            };
            fields.push(Field::new(o.name(), a.data_type().clone(), true));
            columns.push(a);
        }
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(picks.rows.len())),
        )
        .map_err(arrow_err("the output"))
    }
}

/// The selected rows of a batch and what the output says of each.
struct Picks {
    rows: UInt32Array,
    weights: Vec<f64>,
    strata: Vec<u32>,
    parts: Vec<usize>,
}

/// The part a unit with draw `r` and key text `key` goes to (0 for a
/// sample), or `None` when it is not selected (spec §4.2, §6.4, §6.5).
pub fn decide(cut: &Cut, r: u64, key: &[u8]) -> Option<usize> {
    // At or before `b` in draw order: by draw, then key text bytes (§6.2).
    let up_to = |b: &DrawKey| r < b.r || (r == b.r && key <= b.key.as_bytes());
    match cut {
        Cut::UpTo(last) => last.as_ref().filter(|l| up_to(l)).map(|_| 0),
        Cut::Below { t, .. } => t.is_none_or(|t| r < t).then_some(0),
        Cut::Parts(bounds) => Some(
            (bounds.iter())
                .position(|b| b.as_ref().is_some_and(up_to))
                .unwrap_or(bounds.len()),
        ),
        Cut::AboutParts(t) => Some(
            t.iter()
                .position(|t| t.is_none_or(|t| r < t))
                .unwrap_or(t.len()),
        ),
    }
}

fn evaluate(e: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef, OnlineError> {
    e.evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(data_err("evaluating the rules"))
}

/// The key text writer of a stratum value (spec §7.2: key texts, bucket
/// labels as they are).
fn value_text_column(a: &dyn Array) -> Result<KeyColumn, OnlineError> {
    let k = if is_unit_key_type(a.data_type()) {
        KeyColumn::unit(a)
    } else {
        KeyColumn::row(a)
    };
    k.map_err(|e| OnlineError::Data(format!("a stratum value: {e}")))
}

/// Writes the `_stratum` text of `row` into `out` (cleared first).
fn row_stratum_text(columns: &[KeyColumn], row: usize, out: &mut String, value: &mut Vec<u8>) {
    out.clear();
    for (i, c) in columns.iter().enumerate() {
        if c.is_null(row) {
            push_stratum_value(out, i, None);
        } else {
            value.clear();
            let _ = c.write(row, value);
            push_stratum_value(out, i, Some(&String::from_utf8_lossy(value)));
        }
    }
}

/// The unit key texts of a batch (spec §6.1).
enum Keys {
    Unit(KeyColumn),
    /// A unit column of type Null: no record has a unit.
    NoUnit,
    Row(RowKeys),
}

impl Keys {
    fn new(unit: Option<usize>, batch: &RecordBatch) -> Result<Keys, OnlineError> {
        let err = |e: strat_engine::keys::KeyError| OnlineError::Data(format!("a key: {e}"));
        Ok(match unit {
            Some(i) if batch.column(i).data_type() == &DataType::Null => Keys::NoUnit,
            Some(i) => Keys::Unit(KeyColumn::unit(batch.column(i).as_ref()).map_err(err)?),
            None => Keys::Row(RowKeys::new(batch.columns()).map_err(err)?),
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Keys::Unit(k) => k.is_null(row),
            Keys::NoUnit => true,
            Keys::Row(_) => false,
        }
    }

    fn write(&self, row: usize, buf: &mut Vec<u8>) {
        match self {
            Keys::Unit(k) => {
                let _ = k.write(row, buf);
            }
            Keys::NoUnit => {}
            Keys::Row(k) => k.append(row, buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_traits::One;

    fn at(r: u64, key: &str) -> DrawKey {
        DrawKey { r, key: key.into() }
    }

    #[test]
    fn cuts_decide_by_draw_then_key() {
        let d = |cut: &Cut, r: u64, key: &str| decide(cut, r, key.as_bytes());
        let up_to = Cut::UpTo(Some(at(10, "b")));
        assert_eq!(d(&up_to, 9, "z"), Some(0));
        assert_eq!(d(&up_to, 10, "b"), Some(0));
        assert_eq!(d(&up_to, 10, "c"), None);
        assert_eq!(d(&Cut::UpTo(None), 0, ""), None);
        let parts = Cut::Parts(vec![None, Some(at(5, "k")), Some(at(8, "k"))]);
        assert_eq!(d(&parts, 5, "k"), Some(1));
        assert_eq!(d(&parts, 6, "a"), Some(2));
        assert_eq!(d(&parts, 9, "a"), Some(3));
        let about = Cut::AboutParts(vec![Some(4), None]);
        assert_eq!(d(&about, 3, ""), Some(0));
        assert_eq!(d(&about, 4, ""), Some(1));
        let below = Cut::Below {
            p: BigRational::one(),
            t: None,
        };
        assert_eq!(d(&below, u64::MAX, ""), Some(0));
    }

    #[test]
    fn a_unit_met_in_two_strata_is_told() {
        let mut u = UnitStrata::default();
        assert_eq!(u.changed(1, 0), None);
        assert_eq!(u.changed(1, 0), None);
        assert_eq!(u.changed(1, 2), Some(0));
    }
}
