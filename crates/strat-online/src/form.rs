//! Which statements can be decided record by record, and with what: a
//! statement whose decision needs no counts decides from its rules alone;
//! any other needs the thresholds a batch run froze (`strat freeze`).

use num_rational::BigRational;
use strat_check::ir::{Amount, Kind, Source, Statement};
use strat_syntax::{Diagnostic, Span};

/// How a statement decides a record online.
#[derive(Clone, Debug, PartialEq)]
pub enum Form {
    /// `take about` with only `rate`/`all`/`none` rules: each stratum's `p_h`
    /// from the rule that matches it.
    RuleRates,
    /// `take about P%` with no rules and no bounds: `p_h = P` everywhere.
    OneRate(BigRational),
    /// `split … into about`: the same thresholds in every stratum.
    AboutSplit(Vec<Option<u64>>),
    /// Anything else: the frozen thresholds of a batch run.
    Frozen,
}

/// The clause whose decision needs the table's counts, and what it
/// needs them for, for E0143.
fn counted_clause(st: &Statement) -> (Option<Span>, String) {
    let c = &st.clauses;
    let percent = |p: &BigRational| {
        let x = p * BigRational::from_integer(100.into());
        if x.is_integer() {
            x.to_integer().to_string()
        } else {
            format!(
                "{:.4}",
                strat_engine::run::ratio_to_f64(x.numer(), x.denom())
            )
        }
    };
    match (&st.kind, &st.amount) {
        (Kind::Split(_), _) => (
            c.into,
            "an exact split needs the table's counts (each stratum's part sizes)".into(),
        ),
        (Kind::Sample, Amount::About(_)) if !st.rules.is_empty() => (
            c.allocate.or(c.take),
            "a rule block under `take about P%` needs the table's counts (the rates it shares out)"
                .into(),
        ),
        (Kind::Sample, Amount::About(_)) => (
            c.min.or(c.max).or(c.take),
            "`min`/`max` under `take about P%` need the table's counts".into(),
        ),
        (Kind::Sample, amount) => {
            let take = match amount {
                Amount::Count(k) => format!("`take {k}`"),
                Amount::Fraction(p) => format!("`take {}%`", percent(p)),
                _ => "`take all` with a rule block".into(),
            };
            (
                c.take.or(c.allocate),
                format!("{take} needs the table's counts (each stratum's n_h)"),
            )
        }
    }
}

/// The form of `st`; without `frozen` thresholds a statement that needs
/// them is E0143, and one that cannot be decided record by record at all is
/// E0144 (both at the clause, with the fix).
pub fn online_form(st: &Statement, frozen: bool) -> Result<Form, Box<Diagnostic>> {
    not_online(st)?;
    let form = match (&st.kind, &st.amount) {
        (Kind::Split(s), _) if s.about => {
            let shares: Vec<BigRational> = s.parts.iter().map(|(_, p)| p.clone()).collect();
            Form::AboutSplit(strat_alloc::about_thresholds(&shares))
        }
        (Kind::Sample, Amount::AboutRates) => Form::RuleRates,
        (Kind::Sample, Amount::About(p))
            if st.rules.is_empty() && st.min.is_none() && st.max.is_none() =>
        {
            Form::OneRate(p.clone())
        }
        _ => Form::Frozen,
    };
    if form == Form::Frozen && !frozen {
        let (span, what) = counted_clause(st);
        let mut d = Diagnostic::error(
            "E0143",
            format!("{what}: a record cannot be decided on its own"),
        )
        .with_label("needs the table's counts")
        .with_help(
            "freeze the batch run's thresholds with `strat freeze FILE -o decisions.json` \
             and pass `--thresholds decisions.json`; or use `take about` with `rate` rules, \
             or `split … into about`, which need no counts",
        );
        if let Some(span) = span.or(Some(st.clauses.head)) {
            d = d.at(span);
        }
        return Err(Box::new(d));
    }
    Ok(form)
}

/// E0144: a statement that reads more than one record to decide one.
fn not_online(st: &Statement) -> Result<(), Box<Diagnostic>> {
    let c = &st.clauses;
    let (span, what, fix) = if let Source::Statement(_) = st.source {
        (
            Some(c.head),
            "a statement that reads another statement's output",
            "stream the first statement, and give its output to the next one's own `strat stream`",
        )
    } else if st.as_of.is_some() {
        (
            c.as_of,
            "`as of` picks a unit's state among all its rows",
            "decide the state rows: stream the table of each unit's current state",
        )
    } else if st.has_aggregates() {
        (
            c.stratify.or(Some(c.head)),
            "unit aggregates and `having` need all of a unit's rows",
            "stratify by columns each record carries",
        )
    } else if [&st.keep, &st.exclude]
        .iter()
        .any(|f| matches!(f, Some((Source::Statement(_), _))))
    {
        (
            c.exclude.or(Some(c.head)),
            "`keep units in` or `exclude units in` another statement's output",
            "write that statement's output to a file and name it in a `table` declaration",
        )
    } else {
        return Ok(());
    };
    let mut d = Diagnostic::error(
        "E0144",
        format!("{what}: `strat stream` decides each record on its own"),
    )
    .with_label("cannot be decided record by record")
    .with_help(fix);
    if let Some(span) = span {
        d = d.at(span);
    }
    Err(Box::new(d))
}

/// Whether `st` decides units from rules alone (no thresholds needed).
pub fn needs_no_counts(st: &Statement) -> bool {
    online_form(st, false).is_ok()
}
