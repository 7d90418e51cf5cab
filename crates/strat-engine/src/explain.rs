//! `strat explain`: what a statement will do, readably — the checked
//! statement, the DataFusion plan that reads its eligible rows, and the
//! allocation table of a counting run (no output is written).

use std::fmt::Write as _;

use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;
use strat_alloc::{BigInt, BigRational};
use strat_check::ir::{self, Amount, Program};
use strat_check::percent_text;

use crate::lower::lower_expr;
use crate::run::{RunError, run_statement};

/// `text` is the rule file the program was checked from (rules are shown as
/// written there).
pub async fn explain(
    ctx: &SessionContext,
    program: &Program,
    index: usize,
    text: &str,
) -> Result<String, RunError> {
    let st = &program.statements[index];
    let mut out = String::new();
    let name = st
        .name
        .as_deref()
        .map_or_else(|| format!("statement {}", index + 1), |n| format!("`{n}`"));
    let _ = writeln!(out, "== {name}: {} ==", st.kind.as_str());
    let source = match &st.source {
        ir::Source::Table(t) => format!("table `{t}`"),
        ir::Source::Statement(j) => match &program.statements[*j].name {
            Some(n) => format!("the output of `{n}`"),
            None => format!("the output of statement {}", j + 1),
        },
    };
    let _ = writeln!(out, "source:    {source}");
    if let Some(a) = &st.as_of {
        let _ = writeln!(
            out,
            "as of:     {}: each unit's latest row by `{}` in the window, before `where` (§4.5)",
            a.text(),
            a.by.name
        );
    }
    let _ = writeln!(
        out,
        "unit:      {}",
        st.unit
            .as_ref()
            .map_or("each row (keyed by its content)".to_string(), |c| format!(
                "`{}`",
                c.name
            ))
    );
    if let Some(h) = &st.having {
        let _ = writeln!(
            out,
            "having:    units for which `{}` is true (aggregates over the unit's eligible rows)",
            h.text
        );
    }
    let source_of = |src: &ir::Source| match src {
        ir::Source::Table(t) => format!("table `{t}`"),
        ir::Source::Statement(j) => match &program.statements[*j].name {
            Some(n) => format!("`{n}`"),
            None => format!("statement {}", j + 1),
        },
    };
    if let Some((src, col)) = &st.keep {
        let _ = writeln!(
            out,
            "keep:      only units whose key appears in {}.`{}`",
            source_of(src),
            col.name
        );
    }
    if let Some((src, col)) = &st.exclude {
        let _ = writeln!(
            out,
            "exclude:   units whose key appears in {}.`{}`",
            source_of(src),
            col.name
        );
    }
    let strata: Vec<&str> = st.strata.iter().map(|s| s.name.as_str()).collect();
    let _ = writeln!(
        out,
        "strata:    {}",
        if strata.is_empty() {
            "none (one stratum)".into()
        } else {
            strata.join(", ")
        }
    );
    let amount = match &st.amount {
        Amount::Count(n) => format!("exactly {n} units"),
        Amount::Fraction(p) => format!("exactly round_half_up({}% × N) units", percent_text(p)),
        Amount::All => "all (method strata keep min(max, N_h))".to_string(),
        Amount::About(p) => format!("about {}% of the units (Bernoulli)", percent_text(p)),
        Amount::AboutRates => {
            "each unit with its stratum's rule rate (Bernoulli, no total)".to_string()
        }
    };
    if st.kind.is_sample() {
        let _ = writeln!(out, "take:      {amount}");
        for r in &st.rules {
            let _ = writeln!(out, "           {}", rule_text(text, r));
        }
        let method = match &st.method {
            ir::Method::Proportional => "proportional".to_string(),
            ir::Method::Equal => "equal".to_string(),
            ir::Method::Neyman(c) => format!("neyman({})", c.name),
            ir::Method::Power(q) => format!("power({})", decimal_text(q)),
        };
        let bound = |b: Option<u64>| b.map_or("none".to_string(), |n| n.to_string());
        let _ = writeln!(
            out,
            "method:    {method}; per stratum: min {}, max {}",
            bound(st.min),
            bound(st.max)
        );
    }
    if let Some(split) = st.kind.split() {
        let parts: Vec<String> = split
            .parts
            .iter()
            .map(|(n, p)| format!("{n} {}%", percent_text(p)))
            .collect();
        let _ = writeln!(
            out,
            "split:     {}{}",
            if split.about { "about " } else { "" },
            parts.join(", ")
        );
    }
    let _ = writeln!(out, "seed:      {}", st.seed);
    let outputs: Vec<&str> = st.output.iter().map(|o| o.name()).collect();
    let _ = writeln!(out, "output:    {}", outputs.join(", "));

    // The plan that reads the eligible rows (tables only: a statement source is run first).
    if let ir::Source::Table(t) = &st.source {
        let df = ctx.table(TableReference::bare(t.as_str())).await;
        if let Ok(mut df) = df {
            if let Some(f) = &st.filter
                && let Ok(e) = lower_expr(f, None)
            {
                df = df.filter(e).map_err(|e| RunError::DataFusion {
                    context: "planning".into(),
                    error: e,
                })?;
            }
            if let Ok(plan) = df.into_optimized_plan() {
                let _ = writeln!(
                    out,
                    "\neligible rows (DataFusion optimised logical plan):\n{}",
                    plan.display_indent()
                );
            }
        }
    }

    let run = run_statement(ctx, program, index).await?;
    let r = &run.report;
    let _ = writeln!(out, "\nrun plan:  {}", streaming_plan(program, st));
    if let Some(a) = &r.as_of {
        let _ = writeln!(
            out,
            "\nas of:     {} rows read; {} units with a state, {} with no row in the window (left out)",
            a.rows_read, a.units_with_state, a.units_without_state
        );
    }
    let mut left_out = String::new();
    if r.null_units > 0 {
        let _ = write!(
            left_out,
            ", {} rows with a NULL unit left out",
            r.null_units
        );
    }
    if r.having_dropped_units > 0 {
        let _ = write!(
            left_out,
            ", {} units dropped by `having`",
            r.having_dropped_units
        );
    }
    if r.excluded_units > 0 {
        let _ = write!(left_out, ", {} units excluded", r.excluded_units);
    }
    let _ = writeln!(
        out,
        "\nallocation: N = {} units in {} strata, {} selected{left_out}",
        r.total_population,
        r.strata.len(),
        r.total_selected,
    );
    if r.split_totals.is_empty() {
        // A two-phase sample's rows weigh this times their source `_weight`.
        let weight = if r.source_weighted {
            "weight ×src"
        } else {
            "weight"
        };
        let _ = writeln!(
            out,
            "{:<40} {:>10} {:>14} {:>10} {weight:>12}",
            "stratum", "N_h", "target", "selected"
        );
    } else {
        let parts: String = r
            .split_totals
            .iter()
            .map(|(n, _)| format!(" {n:>10}"))
            .collect();
        let _ = writeln!(out, "{:<40} {:>10}{parts}", "stratum", "N_h");
    }
    for s in &r.strata {
        let text = if s.text.is_empty() {
            "(all)"
        } else {
            s.text.as_str()
        };
        if !r.split_totals.is_empty() {
            // A split adds no weight: each row keeps its source's `_weight`.
            let parts: String = s
                .split_counts
                .iter()
                .map(|(_, c)| format!(" {c:>10}"))
                .collect();
            let _ = writeln!(out, "{text:<40} {:>10}{parts}", s.population);
            continue;
        }
        let target = crate::report::target_cell(&s.target);
        let weight = crate::report::weight_cell(s, Some(6));
        let _ = writeln!(
            out,
            "{text:<40} {:>10} {target:>14} {:>10} {weight:>12}",
            s.population, s.selected
        );
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    Ok(out)
}

/// An exact decimal such as `power(0.5)`'s exponent, as written.
fn decimal_text(q: &BigRational) -> String {
    percent_text(&(q / BigRational::from_integer(BigInt::from(100))))
}

/// A rule as written in the file, comments dropped and each gap between
/// tokens one space: `country = "US" => share 30%`.
fn rule_text(text: &str, rule: &ir::Rule) -> String {
    use strat_syntax::lex::{TokenKind, tokens};
    let written = text.get(rule.span.start..rule.span.end).unwrap_or_default();
    let mut out = String::new();
    let mut last_end = None;
    for t in tokens(written) {
        if t.kind == TokenKind::Comment {
            continue;
        }
        if last_end.is_some_and(|end| end < t.span.start) {
            out.push(' ');
        }
        out.push_str(&written[t.span.start..t.span.end]);
        last_end = Some(t.span.end);
    }
    out
}

/// What the streaming plan does for `st`, in a sentence.
fn streaming_plan(program: &Program, st: &ir::Statement) -> String {
    let mut text = String::from("streaming — ");
    if let ir::Source::Statement(j) = &st.source {
        let name = match &program.statements[*j].name {
            Some(n) => format!("`{n}`"),
            None => format!("statement {}", j + 1),
        };
        text += &format!("the output of {name} spooled to a temporary file, then ");
    }
    if st.has_aggregates() {
        text += "the eligible rows put in unit order by a spilling sort for the unit aggregates, ";
    }
    text += "a counting pass over the unit and stratum columns, then ";
    text += match st.kind {
        ir::Kind::Sample => "a pass that keeps only the selected units' rows",
        ir::Kind::Split(_) => {
            "a pass that places every row by split, stratum and draw, put in order by a spilling sort"
        }
    };
    text
}
