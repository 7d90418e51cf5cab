//! A run-time error (spec §9) as a diagnostic with a stable code, placed on
//! the clause it is about, so that it renders like a check error: the
//! message says what went wrong, the label points at the clause, the help
//! says how to fix it.

use std::path::PathBuf;

use datafusion::error::DataFusionError;
use strat_alloc::AllocError;
use strat_check::ir::{Program, Statement};
use strat_engine::errtext;
use strat_engine::run::RunError;
use strat_syntax::{Diagnostic, Span};

/// The diagnostic of `e`, raised running statement `index` of `program`
/// (the statement it is about may be an earlier one, in a chain).
pub fn run_diagnostic(
    e: &RunError,
    inputs: &[(String, PathBuf)],
    program: &Program,
    index: usize,
) -> Diagnostic {
    let (about, e) = e.located();
    let st = program.statements.get(about.unwrap_or(index));
    let mut d = diagnostic(e, st, inputs);
    // An error in a statement that the one run reads: say so on the label.
    if let (Some(_), Some(ran)) = (about, program.statements.get(index))
        && d.span.is_some()
    {
        let by = ran
            .name
            .as_ref()
            .map_or(format!("statement {}", index + 1), |n| format!("`{n}`"));
        d.label = format!("{} — running {by}, which reads it", label_of(&d));
    }
    d
}

fn label_of(d: &Diagnostic) -> String {
    if d.label.is_empty() {
        d.message.clone()
    } else {
        d.label.clone()
    }
}

/// A place: the first clause of `spans` that the statement has, else its head.
fn place(st: &Statement, spans: &[Option<Span>]) -> Span {
    spans
        .iter()
        .flatten()
        .copied()
        .next()
        .unwrap_or(st.clauses.head)
}

fn diagnostic(e: &RunError, st: Option<&Statement>, inputs: &[(String, PathBuf)]) -> Diagnostic {
    let message = || errtext::clean(&e.to_string());
    let Some(st) = st else {
        // No statement to point at (an internal inconsistency).
        return Diagnostic::error(code(e), message()).with_help(match e {
            RunError::Statement(_) => "this is an internal error: please report it",
            _ => "check the statement names",
        });
    };
    let c = &st.clauses;
    match e {
        RunError::Alloc { error, unmatched } => alloc(error, unmatched, st),
        RunError::UnitSpansStrata {
            unit_column,
            unit,
            first,
            second,
        } => {
            let mut d = Diagnostic::error(
                "E0201",
                format!("unit `{unit_column}` = {unit} spans two strata, `{first}` and `{second}`"),
            )
            .at(place(st, &[c.stratify]))
            .with_label(format!(
                "the rows of unit {unit} have different values here (`{first}`, `{second}`)"
            ))
            .with_help(
                "stratify by values that are constant within a unit (e.g. a unit aggregate \
                 such as `last(x by t)`), or fix the data",
            );
            if let Some(u) = c.unit {
                d = d.with_secondary(u, "the unit");
            }
            d
        }
        RunError::AsOfTie(tie) => Diagnostic::error("E0209", message())
            .at(place(st, &[c.as_of]))
            .with_label(format!("each unit needs one latest row by `{}`", tie.by))
            .with_help(match &tie.ties {
                None => "add `ties by COLUMN` (e.g. the time each row was loaded) to say which \
                         of a unit's rows at one time wins, or remove the duplicate rows"
                    .to_string(),
                Some(t) => format!(
                    "these rows are equal on `{t}` too: order them by a column that tells them \
                     apart, or remove the duplicate rows"
                ),
            }),
        RunError::NeymanNotConstant { column, unit } => Diagnostic::error(
            "E0206",
            format!("neyman: `{column}` differs between the rows of unit {unit}"),
        )
        .at(place(st, &[c.allocate]))
        .with_label(format!("`{column}` must be constant within a unit"))
        .with_help("name a per-unit column in `neyman(…)`, or use another method"),
        RunError::Memory { usage: Some(u), .. } => Diagnostic::error("E0208", message())
            .at(c.head)
            .with_label("reading the eligible rows of this statement")
            .with_help(format!(
                "raise `--memory-limit` to {} or more (what the run needed up to here), or \
                 narrow `where` (or the table) so fewer rows are eligible",
                flag_size(u.needed())
            )),
        RunError::Memory { usage: None, .. } => Diagnostic::error("E0208", message())
            .at(c.head)
            .with_label("running this statement")
            .with_help(
                "make room in the temporary folder (`TMPDIR`), or raise `--memory-limit` so \
                 that the units fit in memory",
            ),
        RunError::DataFusion { error, .. }
            if matches!(error.find_root(), DataFusionError::ResourcesExhausted(_)) =>
        {
            Diagnostic::error("E0208", message())
                .at(c.head)
                .with_label("running this statement")
                .with_help(
                    "raise `--memory-limit`, or narrow `where` (or the table) so fewer rows \
                     are eligible",
                )
        }
        RunError::DataFusion { context, .. } => {
            // Where the engine was when reading failed.
            let at = if context.contains("`where`") {
                place(st, &[c.filter])
            } else if context.contains("`stratify by`") {
                place(st, &[c.stratify])
            } else if context.contains("the rules") {
                place(st, &[c.allocate])
            } else {
                c.head
            };
            input_error(message(), at, inputs)
        }
        RunError::Key(_) | RunError::Lower(_) => input_error(message(), c.head, inputs),
        RunError::Unsupported(_) => Diagnostic::error("E0204", message())
            .at(c.head)
            .with_label("this statement")
            .with_help("rewrite the statement without it (see the status table in the README)"),
        RunError::Statement(_) | RunError::InStatement { .. } => {
            Diagnostic::error("E0207", message())
                .at(c.head)
                .with_help("this is an internal error: please report it")
        }
    }
}

fn code(e: &RunError) -> &'static str {
    match e {
        RunError::UnitSpansStrata { .. } => "E0201",
        RunError::Alloc { .. } => "E0202",
        RunError::NeymanNotConstant { .. } => "E0206",
        RunError::AsOfTie(_) => "E0209",
        RunError::Unsupported(_) => "E0204",
        RunError::Statement(_) | RunError::InStatement { .. } => "E0207",
        RunError::Memory { .. } => "E0208",
        RunError::DataFusion { error, .. }
            if matches!(error.find_root(), DataFusionError::ResourcesExhausted(_)) =>
        {
            "E0208"
        }
        RunError::DataFusion { .. } | RunError::Key(_) | RunError::Lower(_) => "E0203",
    }
}

/// E0203: an input could not be read; the help names the files behind the
/// tables the message mentions (or all of them).
fn input_error(message: String, at: Span, inputs: &[(String, PathBuf)]) -> Diagnostic {
    let fix = "check the input files: they must be readable and match their schema";
    let named: Vec<String> = inputs
        .iter()
        .filter(|(t, _)| message.contains(&format!("`{t}`")))
        .map(|(t, p)| format!("table `{t}` is `{}`", p.display()))
        .collect();
    let all: Vec<String> = inputs
        .iter()
        .map(|(t, p)| format!("table `{t}` is `{}`", p.display()))
        .collect();
    let files = if named.is_empty() { all } else { named };
    let help = if files.is_empty() {
        fix.to_string()
    } else {
        format!("{fix}; {}", files.join(", "))
    };
    Diagnostic::error("E0203", message)
        .at(at)
        .with_label("reading the input failed here")
        .with_help(help)
}

/// E0202: the allocation cannot be made, placed on the clause whose numbers
/// do not add up (the rule, `take`, `min`, `max` or the rule block).
fn alloc(a: &AllocError, unmatched: &[String], st: &Statement) -> Diagnostic {
    let c = &st.clauses;
    let (what, fix) = a.what_and_fix();
    let rule = |i: usize| st.rules.get(i).map(|r| r.span);
    let take = c.take.map(|t| (t, "the total".to_string()));
    let (at, label, also): (Span, String, Option<(Span, String)>) = match a {
        AllocError::TotalTooLarge { population, .. } => (
            place(st, &[c.take]),
            format!("only {population} units are eligible"),
            c.filter
                .map(|f| (f, "this decides which units are eligible".to_string())),
        ),
        AllocError::SharesOver100 { .. } => (
            place(st, &[c.allocate]),
            "the `share` rules add up to more than 100%".into(),
            None,
        ),
        AllocError::ShareNeedsTotal { rule: r } => (
            place(st, &[rule(*r), c.allocate]),
            "`share` needs a fixed total".into(),
            c.take.map(|t| (t, "no fixed total".to_string())),
        ),
        AllocError::NotWithAbout { rule: r, amount } => (
            place(st, &[rule(*r), c.allocate]),
            format!("`{amount}` needs a fixed total"),
            c.take.map(|t| (t, "an expected total only".to_string())),
        ),
        AllocError::ShareQuotaTooLarge {
            rule: r,
            quota,
            available,
        } => (
            place(st, &[rule(*r), c.allocate]),
            if *available == 0 {
                format!("a quota of {quota} units, but no stratum with units matches this rule")
            } else {
                format!("a quota of {quota} units, but its strata hold {available}")
            },
            take,
        ),
        AllocError::RemainderNegative { .. } => (
            place(st, &[c.allocate, c.take]),
            "the rules take more than the total".into(),
            take,
        ),
        AllocError::ExpectedBelowRules { .. } => (
            place(st, &[c.take, c.allocate]),
            "an expected total below what the rules' rates keep".into(),
            c.allocate.map(|a| (a, "the rules' rates".to_string())),
        ),
        AllocError::NoRate { strata } => (
            place(st, &[c.allocate, c.take]),
            format!(
                "{} without a `rate`, `all` or `none` rule",
                if strata.len() == 1 {
                    "1 stratum".to_string()
                } else {
                    format!("{} strata", strata.len())
                }
            ),
            take,
        ),
        AllocError::NoMethodStrata { .. } => (
            place(st, &[c.allocate, c.take]),
            "every stratum is decided by a rule".into(),
            take,
        ),
        AllocError::Infeasible {
            remainder,
            lower_sum,
            upper_sum,
        } => {
            let too_many =
                strat_alloc::BigRational::from_integer((*lower_sum).into()) > **remainder;
            if too_many {
                (
                    place(st, &[c.min, c.take]),
                    format!("needs {lower_sum} units in the method strata"),
                    take,
                )
            } else {
                (
                    place(st, &[c.max, c.take]),
                    format!("the method strata can hold at most {upper_sum} units"),
                    take,
                )
            }
        }
        AllocError::ZeroWeightShortfall { .. } => (
            place(st, &[c.allocate]),
            "strata with standard deviation 0 keep only their `min`".into(),
            take,
        ),
        AllocError::OutOfRange { .. } | AllocError::MinAboveMax { .. } => {
            (c.head, "this statement".into(), None)
        }
    };
    let fix = match a {
        AllocError::ShareQuotaTooLarge { available: 0, .. } if !unmatched.is_empty() => {
            format!("{}; fix the value", unmatched.join("; "))
        }
        AllocError::ShareQuotaTooLarge { available: 0, .. } => {
            "no stratum matches the rule's condition: compare its values with the strata's \
             (case matters; `:strata COLUMN` in `strat repl` lists the values)"
                .to_string()
        }
        _ => fix,
    };
    let mut d = Diagnostic::error("E0202", what)
        .at(at)
        .with_label(label)
        .with_help(fix);
    if let Some((span, text)) = also
        && span != at
    {
        d = d.with_secondary(span, text);
    }
    d
}

/// A size in `--memory-limit`'s syntax, rounded up: `474931` → `464K`.
pub fn flag_size(bytes: usize) -> String {
    let units = [(1usize << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (unit, name) in units {
        if bytes >= unit {
            // One decimal at most, rounded up.
            let tenths = (bytes as u128 * 10).div_ceil(unit as u128);
            return if tenths.is_multiple_of(10) || bytes < (1 << 20) {
                format!("{}{name}", tenths.div_ceil(10))
            } else {
                format!("{}.{}{name}", tenths / 10, tenths % 10)
            };
        }
    }
    bytes.to_string()
}
