//! The checked program's content (diagnostics are covered by tests/cases).

use num_bigint::BigInt;
use num_rational::BigRational;

use crate::ir::{self, ExprKind, Output};
use crate::{Column, Env, Type, Value, check};

fn env() -> Env {
    let mut env = Env::default();
    env.tables.insert(
        "members".into(),
        Some(vec![
            Column::new("member_id", Type::Int),
            Column::new("country", Type::String),
            Column::new("plan", Type::String),
            Column::new("tenure_days", Type::Int),
            Column::new("_weight", Type::Float),
        ]),
    );
    env
}

fn program(src: &str, env: &Env) -> ir::Program {
    let parsed = strat_syntax::parse(src);
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let checked = check(src, &parsed.file, env);
    checked
        .program
        .unwrap_or_else(|| panic!("{:#?}", checked.diagnostics))
}

fn frac(n: i64, d: i64) -> BigRational {
    BigRational::new(BigInt::from(n), BigInt::from(d))
}

#[test]
fn params_are_substituted_and_overridable() {
    let src = "param n: int = 10\nparam p: float = 12.5\nparam c: string = \"US\"\n\
               a = sample members where country = c take n seed 1\nb = sample members take p% seed 2";
    let p = program(src, &env());
    assert_eq!(p.statements[0].amount, ir::Amount::Count(10));
    assert_eq!(p.statements[1].amount, ir::Amount::Fraction(frac(1, 8)));
    let ExprKind::Binary { right, .. } = &p.statements[0].filter.as_ref().unwrap().kind else {
        panic!()
    };
    assert_eq!(right.kind, ExprKind::Literal(Value::String("US".into())));
    let mut e = env();
    e.params = vec![("n".into(), "1_000".into()), ("c".into(), "BR".into())];
    let p = program(src, &e);
    assert_eq!(p.statements[0].amount, ir::Amount::Count(1000));
}

#[test]
fn percentages_are_exact() {
    let p = program("sample members take 12.5% seed 1", &env());
    assert_eq!(p.statements[0].amount, ir::Amount::Fraction(frac(1, 8)));
    let p = program("split members unit member_id into 3 folds seed 1", &env());
    let split = p.statements[0].kind.split().unwrap();
    assert_eq!(
        split
            .parts
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["fold_1", "fold_2", "fold_3"]
    );
    assert!(split.parts.iter().all(|(_, s)| *s == frac(1, 3)));
}

#[test]
fn rule_predicates_see_strata_not_columns() {
    let src = "sample members stratify by country, bucket(tenure_days, [90, 365]) as band take 100 \
               allocate { country = \"US\" and band = \"[90,365)\" => share 30% `country` in (\"IS\") => all else => equal } seed 1";
    let p = program(src, &env());
    let st = &p.statements[0];
    assert_eq!(st.method, ir::Method::Equal);
    assert_eq!(st.rules.len(), 3);
    assert_eq!(st.rules[0].amount, Some(ir::RuleAmount::Share(frac(3, 10))));
    assert_eq!(st.rules[2].amount, None);
    let mut strata_refs = Vec::new();
    fn walk(e: &ir::Expr, out: &mut Vec<usize>) {
        if let ExprKind::Stratum(i) = e.kind {
            out.push(i);
        }
        e.children().into_iter().for_each(|c| walk(c, out));
    }
    walk(st.rules[0].predicate.as_ref().unwrap(), &mut strata_refs);
    walk(st.rules[1].predicate.as_ref().unwrap(), &mut strata_refs);
    assert_eq!(strata_refs, [0, 1, 0]);
    assert_eq!(
        st.strata[1].bucket_labels.as_deref().unwrap(),
        ["[-inf,90)", "[90,365)", "[365,inf)"]
    );
}

#[test]
fn outputs_and_chaining() {
    let src = "cohort = sample members stratify by country take 100 seed 1 output member_id, country, _weight, _stratum\n\
               split cohort unit member_id into a 50%, b 50% seed 2";
    let p = program(src, &env());
    let names: Vec<String> = p.statements[1]
        .output_columns()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        ["member_id", "country", "_weight", "_stratum", "_split"]
    );
    assert_eq!(p.statements[1].source, ir::Source::Statement(0));
    // A source column named `_weight` becomes the generated weight by default (spec §7).
    let p = program("sample members take 1 seed 1", &env());
    assert!(p.statements[0].output.contains(&Output::Weight));
}

#[test]
fn no_program_when_there_is_an_error() {
    let src = "sample members stratify by contry seed 1";
    let parsed = strat_syntax::parse(src);
    let checked = check(src, &parsed.file, &env());
    assert!(checked.program.is_none());
    assert_eq!(checked.diagnostics[0].code, "E0102");
}

#[test]
fn bucket_labels_show_literals_as_written_and_params_by_value() {
    let src = "param lo_edge: int = 90\nparam q: float = 0.5\n\
               sample members stratify by bucket(tenure_days, [-5, lo_edge, 1_000]) as band take 100 allocate power(q) seed 1";
    let p = program(src, &env());
    let labels = p.statements[0].strata[0].bucket_labels.clone().unwrap();
    assert_eq!(labels, ["[-inf,-5)", "[-5,90)", "[90,1000)", "[1000,inf)"]);
    assert_eq!(p.statements[0].method, ir::Method::Power(frac(1, 2)));
}

#[test]
fn float_params_are_percentages_by_their_decimal_text() {
    let src = "param p: float = 33.3\nsplit members unit member_id into a p%, b p%, c 33.4% seed 1";
    let p = program(src, &env());
    assert_eq!(
        p.statements[0].kind.split().unwrap().parts[0].1,
        frac(333, 1000)
    );
}

#[test]
fn having_keep_and_rates_reach_the_program() {
    let mut e = env();
    e.tables.insert(
        "cohort".into(),
        Some(vec![Column::new("member_id", Type::Int)]),
    );
    let src = "sample members unit member_id having count(*)  >= 2 and mode(plan) = \"basic\" \
               keep units in cohort stratify by country take about \
               allocate { country = \"US\" => rate 50% else => rate 10% } seed 1";
    let p = program(src, &e);
    let st = &p.statements[0];
    let having = st.having.as_ref().unwrap();
    assert_eq!(having.text, "count(*) >= 2 and mode(plan) = \"basic\"");
    assert_eq!(having.expr.ty, Type::Bool);
    assert!(st.has_aggregates());
    let (source, column) = st.keep.as_ref().unwrap();
    assert_eq!(*source, ir::Source::Table("cohort".into()));
    assert_eq!(column.name, "member_id");
    assert_eq!(st.amount, ir::Amount::AboutRates);
    assert!(st.amount.is_about());
    let mut aggs = Vec::new();
    let mut x = having.expr.clone();
    ir::replace_aggregates(&mut x, "a", &mut aggs);
    assert_eq!(
        aggs.iter().map(|a| a.func).collect::<Vec<_>>(),
        [ir::Aggregate::Count, ir::Aggregate::Mode]
    );
}
