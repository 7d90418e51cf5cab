//! Parser unit tests on small inputs; whole files are tested from tests/cases.

use crate::ast::*;
use crate::parse;

fn ok(src: &str) -> File {
    let p = parse(src);
    assert!(
        p.diagnostics.is_empty(),
        "unexpected diagnostics for {src:?}: {:#?}",
        p.diagnostics
    );
    p.file
}

fn stmt(src: &str) -> Statement {
    ok(src)
        .items
        .into_iter()
        .find_map(|i| {
            if let Item::Statement(s) = i {
                Some(*s)
            } else {
                None
            }
        })
        .unwrap()
}

#[test]
fn spec_example_parses() {
    let src = include_str!("../../../examples/cohort.strat");
    let f = ok(src);
    assert_eq!(f.items.len(), 5);
}

#[test]
fn precedence_or_and_not_compare() {
    let s = stmt("sample t where not a = 1 or b and c > 2 + 3 * 4");
    let ExprKind::Binary {
        op: BinaryOp::Or,
        left,
        right,
    } = s.filter.unwrap().kind
    else {
        panic!("or at top")
    };
    assert!(matches!(
        left.kind,
        ExprKind::Unary {
            op: UnaryOp::Not,
            ..
        }
    ));
    let ExprKind::Binary {
        op: BinaryOp::And,
        right: cmp,
        ..
    } = right.kind
    else {
        panic!("and under or")
    };
    let ExprKind::Binary {
        op: BinaryOp::Gt,
        right: sum,
        ..
    } = cmp.kind
    else {
        panic!(">")
    };
    let ExprKind::Binary {
        op: BinaryOp::Add,
        right: prod,
        ..
    } = sum.kind
    else {
        panic!("+")
    };
    assert!(matches!(
        prod.kind,
        ExprKind::Binary {
            op: BinaryOp::Mul,
            ..
        }
    ));
}

#[test]
fn suffix_forms() {
    let s = stmt(
        "sample t where a not in (1, 2) and b between 1 and 3 and c is not null and d not like 'x%'",
    );
    let mut kinds = Vec::new();
    s.filter.unwrap().walk(&mut |e| match &e.kind {
        ExprKind::InList { negated: true, .. } => kinds.push("not in"),
        ExprKind::Between { negated: false, .. } => kinds.push("between"),
        ExprKind::IsNull { negated: true, .. } => kinds.push("is not null"),
        ExprKind::Like { negated: true, .. } => kinds.push("not like"),
        _ => {}
    });
    assert_eq!(kinds, ["not in", "between", "is not null", "not like"]);
}

#[test]
fn literals_of_every_kind() {
    let s = stmt(
        "sample t where a = 1_000 and b = 3.5 and c = \"U\\\"S\" and d = 'x' and e = @2018-06-01 \
         and f = @2018-06-01T12:30:00 and g = true and h is null and `weird col` = -2",
    );
    let mut lits = Vec::new();
    s.filter.unwrap().walk(&mut |e| {
        if let ExprKind::Literal(l) = &e.kind {
            lits.push(format!("{l:?}").split(' ').next().unwrap().to_string());
        }
    });
    assert_eq!(
        lits,
        [
            "Integer",
            "Decimal",
            "String",
            "String",
            "Date",
            "Timestamp",
            "Bool",
            "Integer"
        ]
    );
}

#[test]
fn unit_aggregates_and_bucket() {
    let s = stmt(
        "sample e unit m stratify by last(country by ts) as c, bucket(count(*), [10, 100]) take all",
    );
    assert_eq!(s.strata.len(), 2);
    let ExprKind::Call { func, order_by, .. } = &s.strata[0].expr.kind else {
        panic!()
    };
    assert_eq!(func.name, "last");
    assert!(order_by.is_some());
    let ExprKind::Call { args, .. } = &s.strata[1].expr.kind else {
        panic!()
    };
    assert!(matches!(
        &args[0],
        Arg::Expr(Expr {
            kind: ExprKind::Call { star: true, .. },
            ..
        })
    ));
    assert!(matches!(&args[1], Arg::List { items, .. } if items.len() == 2));
}

#[test]
fn splits_and_folds() {
    let s = stmt("split t into about a 50%, b 50% seed 3");
    assert!(
        matches!(s.into.unwrap().kind, IntoKind::Parts { about: true, ref parts } if parts.len() == 2)
    );
    let s = stmt("split t unit m into 5 folds");
    assert!(matches!(s.into.unwrap().kind, IntoKind::Folds(_)));
}

#[test]
fn errors_recover_at_next_statement() {
    let p = parse("a = sample t stratfy by x\nb = sample t take\nc = sample t seed 1");
    assert_eq!(p.diagnostics.len(), 2, "{:#?}", p.diagnostics);
    assert_eq!(p.file.items.len(), 1);
    assert_eq!(
        p.diagnostics[0].help.as_deref(),
        Some("did you mean `stratify`?")
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!(
        "sample t where {}x{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let p = parse(&deep);
    assert_eq!(p.diagnostics[0].code, "E0003");
    let nots = format!("sample t where {} x", "not ".repeat(100_000));
    assert_eq!(parse(&nots).diagnostics[0].code, "E0003");
}

#[test]
fn keyword_as_name_suggests_backticks() {
    let p = parse("sample t stratify by rate");
    assert!(
        p.diagnostics[0]
            .help
            .as_deref()
            .unwrap()
            .contains("`` `rate` ``"),
        "{:#?}",
        p.diagnostics
    );
}

#[test]
fn incomplete_input_is_recognised() {
    assert!(crate::is_incomplete("sample t\n  stratify by"));
    assert!(crate::is_incomplete("sample t allocate {"));
    assert!(!crate::is_incomplete("sample t seed 1"));
    assert!(!crate::is_incomplete("sample t ) seed"));
}

#[test]
fn nesting_up_to_the_limit_parses_even_on_a_small_stack() {
    let depth = crate::MAX_NESTING - 1;
    let src = format!(
        "sample t where {}x{} seed 1",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    // Test threads have small stacks; parse() must not depend on the caller's.
    let h = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || crate::parse(&src).diagnostics.len());
    assert_eq!(h.unwrap().join().unwrap(), 0);
}

#[test]
fn long_or_chains_stay_shallow_and_long_arithmetic_is_bounded() {
    let ors = (0..100_000)
        .map(|i| format!("x = {i}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let p = parse(&format!("sample t where {ors} seed 1"));
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics.first());
    let sums = vec!["x"; 100_000].join(" + ");
    let p = parse(&format!("sample t where {sums} > 1 seed 1"));
    assert_eq!(p.diagnostics[0].code, "E0003");
}

#[test]
fn every_comparison_operator_with_and_without_spaces() {
    for (text, want) in [
        ("=", BinaryOp::Eq),
        ("!=", BinaryOp::NotEq),
        ("<>", BinaryOp::NotEq),
        ("<", BinaryOp::Lt),
        ("<=", BinaryOp::LtEq),
        (">", BinaryOp::Gt),
        (">=", BinaryOp::GtEq),
    ] {
        for src in [
            format!("sample t where a {text} 1"),
            format!("sample t where a{text}1"),
            format!("sample t where a {text}\n 1"),
        ] {
            let s = stmt(&src);
            let ExprKind::Binary { op, .. } = s.filter.unwrap().kind else {
                panic!("{src}")
            };
            assert_eq!(op, want, "{src}");
        }
    }
}

/// The one syntax error of `src`: its message, the text it points at, its help.
fn error(src: &str) -> (String, String, String) {
    let p = parse(src);
    assert_eq!(p.diagnostics.len(), 1, "{src}: {:#?}", p.diagnostics);
    let d = &p.diagnostics[0];
    let span = d.span.expect("a place");
    (
        d.message.clone(),
        src[span.start..span.end].to_string(),
        d.help.clone().unwrap_or_default(),
    )
}

#[test]
fn common_mistakes_are_named() {
    // `==`, in and out of parentheses, in a rule, in a declaration.
    for src in [
        "sample t where c == \"US\" seed 1",
        "sample t where (c == \"US\" or p = 1) seed 1",
        "sample t stratify by c take 5 allocate { c == \"US\" => all } seed 1",
    ] {
        let (message, at, help) = error(src);
        assert_eq!(message, "`==` is not an operator", "{src}");
        assert_eq!(at, "==", "{src}");
        assert!(help.starts_with("write `=` for equality"), "{src}: {help}");
    }
    let (_, at, help) = error("table t == \"t.csv\"\nsample t seed 1");
    assert_eq!(at, "==");
    assert!(help.contains("single `=`"), "{help}");
    // `<==` is not `==`.
    assert_ne!(error("sample t where a <== 1").0, "`==` is not an operator");

    // Chained comparisons, with the operands as written.
    for (src, want) in [
        ("sample t where a < b < c seed 1", "write `a < b and b < c`"),
        (
            "sample t where (x = 1 and 1 <= d + 1 <= 5)",
            "write `1 <= d + 1 and d + 1 <= 5`",
        ),
        (
            "sample t where f(x, 2) > y >= z(1) or q",
            "write `f(x, 2) > y and y >= z(1)`",
        ),
    ] {
        let (message, _, help) = error(src);
        assert_eq!(message, "comparisons do not chain", "{src}");
        assert_eq!(help, want, "{src}");
    }

    // A space before `%`, wherever a percentage goes.
    for src in [
        "sample t take about 10 % seed 1",
        "sample t take 10 % seed 1",
        "sample t stratify by c take 9 allocate { c = 1 => share 40 % } seed 1",
        "split t into a 50 %, b 50% seed 1",
    ] {
        let (message, at, help) = error(src);
        assert!(
            message.starts_with("expected a percentage such as `"),
            "{src}: {message}"
        );
        assert!(at.ends_with(" %"), "{src}: {at}");
        assert!(help.contains("no space before `%`"), "{src}: {help}");
    }

    // Keywords are lowercase.
    assert_eq!(
        error("SAMPLE t seed 1").2,
        "keywords are lowercase: write `sample`"
    );
    assert_eq!(
        error("sample t Where a = 1").2,
        "keywords are lowercase: write `where`"
    );

    // …and the item before a capitalised statement is not lost with it.
    let p = parse("table t = \"t.csv\"\nSAMPLE t seed 1\nsample t seed 2");
    assert_eq!(p.diagnostics.len(), 1, "{:#?}", p.diagnostics);
    assert_eq!(p.diagnostics[0].message, "`SAMPLE` is not a keyword");
    assert_eq!(p.file.items.len(), 2);

    // `in` without a list.
    let (message, at, help) = error("sample t where id in m seed 1");
    assert_eq!(message, "expected `(` after `in`, found `m`");
    assert_eq!(at, "m");
    assert!(
        help.starts_with("`in (…)` takes a parenthesised list of values")
            && help.contains("exclude units in m"),
        "{help}"
    );
    assert_eq!(
        error("sample t where id not in m seed 1").0,
        "expected `(` after `in`, found `m`"
    );

    // Not where `in` is not the operator.
    assert!(!error("sample t unit in m").0.contains("after `in`"));

    // `&&`, `|`.
    let (message, at, _) = error("sample t where a = 1 && b = 2");
    assert_eq!(
        (message.as_str(), at.as_str()),
        ("`&&` is not an operator", "&&")
    );
    assert_eq!(
        error("sample t where a = 1 | b = 2").0,
        "`|` is not an operator"
    );
}

#[test]
fn having_keep_and_exclude_parse_in_order() {
    let s = stmt(
        "sample events unit member_id having count(*) >= 5 and sum(watch_minutes) > 60 \
         keep units in cohort exclude units in holdout take all seed 1",
    );
    assert_eq!(s.unit.unwrap().name, "member_id");
    assert!(matches!(
        s.having.unwrap().kind,
        ExprKind::Binary {
            op: BinaryOp::And,
            ..
        }
    ));
    assert_eq!(s.keep.unwrap().name, "cohort");
    assert_eq!(s.exclude.unwrap().name, "holdout");
    let s = stmt("split events unit member_id keep units in cohort into a 50%, b 50% seed 1");
    assert_eq!(s.keep.unwrap().name, "cohort");
}

#[test]
fn keep_and_having_are_not_reserved() {
    // Columns, sources and statement names may be called `keep` or `having`.
    let s = stmt("sample t where keep = 1 and having > 2 unit keep seed 1");
    assert!(s.filter.is_some());
    assert_eq!(s.unit.unwrap().name, "keep");
    assert!(s.having.is_none() && s.keep.is_none());
    let s = stmt("sample t unit m having max(having) > 1 keep units in keep seed 1");
    assert_eq!(s.keep.unwrap().name, "keep");
    let f = ok("keep = sample t seed 1\nhaving = sample keep seed 2");
    assert_eq!(f.items.len(), 2);
    let s = stmt("sample t stratify by keep, having take 10 seed 1");
    assert_eq!(s.strata.len(), 2);
}

#[test]
fn take_about_with_and_without_an_amount() {
    let s = stmt("sample t take about 10% seed 1");
    assert!(matches!(s.take.unwrap().amount, TakeAmount::About(Some(_))));
    let s = stmt("sample t take about allocate { else => rate 10% } seed 1");
    assert!(matches!(s.take.unwrap().amount, TakeAmount::About(None)));
    let s = stmt("sample t take about");
    assert!(matches!(s.take.unwrap().amount, TakeAmount::About(None)));
}

#[test]
fn keep_out_of_order_gets_the_clause_order() {
    let p = parse("sample t unit m stratify by c keep units in x seed 1");
    assert_eq!(p.diagnostics.len(), 1, "{:?}", p.diagnostics);
    let help = p.diagnostics[0].help.clone().unwrap_or_default();
    assert!(
        help.contains("having, keep units in, exclude units in"),
        "{help}"
    );
}
