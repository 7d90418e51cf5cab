//! Freezing a batch run's decision: the run's own output, with each selected
//! unit's key text and stratum, reduced to the last unit in draw order per
//! stratum (and part) — the threshold that decides every other unit.

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use strat_alloc::Target;
use strat_check::ir::{self, Program, Statement};
use strat_engine::draw::Drawer;
use strat_engine::keys::{KeyColumn, RowKeys};
use strat_engine::run::{Report, RunError, RunOptions, run_statement_streamed};

use crate::decisions::{Cut, Decisions, DrawKey, StratumCut, below, exact_target};
use crate::form::online_form;

/// Whether the statement's cuts are units (an exact sample or split), found
/// in its rows, rather than draw thresholds its report gives.
fn is_exact(st: &Statement) -> bool {
    match st.kind.split() {
        Some(split) => !split.about,
        None => !st.amount.is_about(),
    }
}

/// The columns a run must output for its thresholds: the unit (or every
/// source column, whose row key is the unit's key), `_stratum`, and `_split`.
pub fn threshold_outputs(st: &Statement) -> Vec<ir::Output> {
    let mut out: Vec<ir::Output> = match &st.unit {
        Some(u) => vec![ir::Output::Column(u.clone())],
        None => st.input.iter().cloned().map(ir::Output::Column).collect(),
    };
    out.push(ir::Output::StratumText);
    if st.kind.split().is_some() {
        out.push(ir::Output::SplitName);
    }
    out
}

/// The last unit in draw order of each stratum and part, from output rows
/// as they pass.
pub struct Thresholds {
    unit: bool,
    /// Where the key columns, `_stratum` and `_split` are in the batches.
    keys: Vec<usize>,
    stratum: usize,
    split: Option<usize>,
    parts: Vec<String>,
    drawer: Drawer,
    last: HashMap<(String, usize), DrawKey>,
    /// Exact forms only: a Bernoulli sample's or an `about` split's cuts
    /// come from the report alone.
    needs_rows: bool,
}

impl Thresholds {
    /// A reducer for batches with the statement's `outputs` (which include
    /// [`threshold_outputs`]).
    pub fn new(st: &Statement, outputs: &[ir::Output]) -> Thresholds {
        let at = |o: &ir::Output| outputs.iter().position(|x| x == o);
        let keys = threshold_outputs(st)
            .iter()
            .filter(|o| matches!(o, ir::Output::Column(_)))
            .filter_map(at)
            .collect();
        Thresholds {
            unit: st.unit.is_some(),
            keys,
            stratum: at(&ir::Output::StratumText).unwrap_or(0),
            split: at(&ir::Output::SplitName),
            parts: st
                .kind
                .split()
                .map(|s| s.parts.iter().map(|(n, _)| n.clone()).collect())
                .unwrap_or_default(),
            drawer: Drawer::new(st.seed),
            last: HashMap::new(),
            needs_rows: is_exact(st),
        }
    }

    /// Takes in one output batch.
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<(), String> {
        if !self.needs_rows {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self.keys.iter().map(|&i| batch.column(i).clone()).collect();
        let text = |i: usize| -> Result<ArrayRef, String> {
            cast(batch.column(i), &DataType::Utf8).map_err(|e| e.to_string())
        };
        let strata = text(self.stratum)?;
        let strata = strata.as_string::<i32>();
        let split = self.split.map(text).transpose()?;
        let split = split.as_ref().map(|s| s.as_string::<i32>());
        let group = |row: usize| (strata.value(row), split.map(|s| s.value(row)));
        let keys = if self.unit {
            Err(KeyColumn::unit(columns[0].as_ref()).map_err(|e| e.to_string())?)
        } else {
            Ok(RowKeys::new(&columns).map_err(|e| e.to_string())?)
        };
        let mut key = Vec::new();
        let n = batch.num_rows();
        for row in 0..n {
            // Rows come in spec §7.3 order (part, stratum, draw order), so
            // only the last row of a run of one stratum and part can be its
            // last unit: one draw per run, not per row.
            if row + 1 < n && group(row + 1) == group(row) {
                continue;
            }
            key.clear();
            match &keys {
                Err(unit) => {
                    let _ = unit.write(row, &mut key);
                }
                Ok(rows) => rows.append(row, &mut key),
            }
            let (stratum, name) = group(row);
            let part = name.map_or(0, |name| {
                self.parts.iter().position(|p| p == name).unwrap_or(0)
            });
            let at = DrawKey {
                r: self.drawer.draw(&key),
                key: String::from_utf8(key.clone())
                    .map_err(|_| "a unit's key text is not UTF-8".to_string())?,
            };
            let slot = self
                .last
                .entry((stratum.to_string(), part))
                .or_insert_with(|| at.clone());
            if at > *slot {
                *slot = at;
            }
        }
        Ok(())
    }

    /// Each stratum's cut, from the run's report and the units observed.
    pub fn finish(self, st: &Statement, report: &Report) -> BTreeMap<String, StratumCut> {
        let about_parts = st.kind.split().filter(|s| s.about).map(|s| {
            let shares: Vec<_> = s.parts.iter().map(|(_, p)| p.clone()).collect();
            strat_alloc::about_thresholds(&shares)
        });
        let mut strata = BTreeMap::new();
        for s in &report.strata {
            let last = |part: usize| self.last.get(&(s.text.clone(), part)).cloned();
            let cut = match (&about_parts, &s.target, st.kind.split()) {
                (Some(t), _, _) => Cut::AboutParts(t.clone()),
                (None, _, Some(split)) => {
                    // Cumulative: a part's boundary is the last unit of it or
                    // of the parts before it.
                    let mut bound: Option<DrawKey> = None;
                    let bounds = (0..split.parts.len() - 1)
                        .map(|i| {
                            if let Some(l) = last(i) {
                                bound = Some(bound.take().map_or(l.clone(), |b| b.max(l)));
                            }
                            bound.clone()
                        })
                        .collect();
                    Cut::Parts(bounds)
                }
                (None, Target::Probability(p), None) => below(p.clone()),
                (None, Target::Exact(_), None) => Cut::UpTo(last(0)),
            };
            strata.insert(
                s.text.clone(),
                StratumCut {
                    population: s.population,
                    target: exact_target(&s.target).min(s.population),
                    cut,
                },
            );
        }
        strata
    }
}

/// Why a statement's thresholds could not be frozen.
#[derive(Debug)]
pub enum FreezeError {
    /// The statement cannot be decided online at all (E0144).
    Rules(Box<strat_syntax::Diagnostic>),
    Run(RunError),
    Rows(String),
}

/// What `strat freeze` knows of the rule file besides its checked program.
pub struct RuleFile<'a> {
    pub name: &'a str,
    pub text: &'a str,
    /// The `--param NAME=VALUE` overrides.
    pub params: &'a [(String, String)],
}

/// Runs statement `index` and freezes its decision: per stratum, the last
/// selected unit (exact samples), each part's last unit (exact splits) or
/// the Bernoulli threshold. The run's report comes back beside it.
pub async fn freeze(
    ctx: &SessionContext,
    program: &Program,
    index: usize,
    options: &RunOptions,
    rules: &RuleFile<'_>,
) -> Result<(Decisions, Report), FreezeError> {
    let st = &program.statements[index];
    online_form(st, true).map_err(FreezeError::Rules)?;
    let mut program = program.clone();
    let outputs = threshold_outputs(st);
    program.statements[index].output = outputs.clone();
    let mut out = run_statement_streamed(ctx, &program, index, options)
        .await
        .map_err(FreezeError::Run)?;
    let mut thresholds = Thresholds::new(st, &outputs);
    while let Some(batch) = out.rows.next().await {
        let batch = batch.map_err(FreezeError::Run)?;
        thresholds.observe(&batch).map_err(FreezeError::Rows)?;
    }
    let decisions = decisions(&program, index, thresholds, &out.report, rules);
    Ok((decisions, out.report))
}

/// A run set up to record its thresholds as its rows pass: the program with
/// the columns the thresholds need appended to the statement's output, how
/// many columns the user asked for (the rest are dropped before writing),
/// and the reducer.
pub struct Tapped {
    pub program: Program,
    pub shown: usize,
    pub thresholds: Thresholds,
}

/// [`Tapped`] for statement `index`, or `None` when it cannot be decided
/// record by record (E0144: it has no thresholds to record).
pub fn tap_thresholds(program: &Program, index: usize) -> Option<Tapped> {
    let st = &program.statements[index];
    online_form(st, true).ok()?;
    let mut outputs = st.output.clone();
    let shown = outputs.len();
    for o in threshold_outputs(st) {
        if is_exact(st) && !outputs.contains(&o) {
            outputs.push(o);
        }
    }
    let thresholds = Thresholds::new(st, &outputs);
    let mut program = program.clone();
    program.statements[index].output = outputs;
    Some(Tapped {
        program,
        shown,
        thresholds,
    })
}

/// The decisions of statement `index` once its rows have passed `thresholds`.
pub fn decisions(
    program: &Program,
    index: usize,
    thresholds: Thresholds,
    report: &Report,
    rules: &RuleFile<'_>,
) -> Decisions {
    let st = &program.statements[index];
    Decisions {
        rule_file: rules.name.to_string(),
        rule_md5: strat_engine::report::md5_hex(rules.text.as_bytes()),
        statement: strat_engine::run::statement_label(st.name.as_deref(), index),
        seed: st.seed,
        params: crate::decisions::sorted(rules.params),
        strata: thresholds.finish(st, report),
    }
}
