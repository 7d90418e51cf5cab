//! The bodies of the fuzz targets, free of libFuzzer so that the integration
//! test `tests/integration/fuzz_corpus.rs` replays the corpus with exactly the
//! same code (it includes this file with `#[path]`).
//!
//! Every body panics (which libFuzzer reports as a crash) when an invariant
//! breaks: the parser or checker panics, a diagnostic points outside the text
//! or inside a character, or a `--param` value is accepted that is not a
//! canonical literal of its type.

#![allow(dead_code)] // each target uses part of this file

use strat_check::{Column, Env, Type, Value};
use strat_syntax::Diagnostic;

/// The tables every target checks against: the example data's schemas (as
/// `strat check` binds them from examples/data), a table with one column of
/// every checker type, and a table whose schema could not be read.
pub fn env() -> Env {
    let mut env = Env::default();
    let t = |cols: &[(&str, Type)]| {
        Some(
            cols.iter()
                .map(|(n, t)| Column::new(*n, t.clone()))
                .collect::<Vec<_>>(),
        )
    };
    env.tables.insert(
        "members".into(),
        t(&[
            ("member_id", Type::Int),
            ("country", Type::String),
            ("plan", Type::String),
            ("device", Type::String),
            ("tenure_days", Type::Int),
            ("signup_date", Type::Date),
            ("watch_hours_28d", Type::Float),
            ("is_kids_profile", Type::Bool),
            ("referral_source", Type::String),
        ]),
    );
    env.tables.insert(
        "events".into(),
        t(&[
            ("event_id", Type::Int),
            ("member_id", Type::Int),
            ("event_ts", Type::Timestamp),
            ("country", Type::String),
            ("title_id", Type::Int),
            ("watch_minutes", Type::Int),
            ("device", Type::String),
        ]),
    );
    env.tables
        .insert("holdout".into(), t(&[("member_id", Type::Int)]));
    env.tables.insert(
        "ratings".into(),
        t(&[
            ("member_id", Type::Int),
            ("title_id", Type::Int),
            ("rating", Type::Int),
            ("genre", Type::String),
            ("rated_at", Type::Date),
        ]),
    );
    env.tables.insert(
        "wide".into(),
        t(&[
            ("i", Type::Int),
            ("f", Type::Float),
            ("d", Type::Decimal),
            ("s", Type::String),
            ("b", Type::Bool),
            ("dt", Type::Date),
            ("ts", Type::Timestamp),
            ("l", Type::Other("List(Int64)".into())),
            ("select", Type::String),
        ]),
    );
    env.tables.insert("broken".into(), None);
    env
}

/// Every span of `d` (primary and secondary) lies inside `text`, on character boundaries.
pub fn assert_spans_inside(text: &str, d: &Diagnostic) {
    let spans = d
        .span
        .iter()
        .copied()
        .chain(d.labels.iter().map(|l| l.span));
    for s in spans {
        assert!(s.start <= s.end, "reversed span {s} in {d:?}");
        assert!(
            s.end <= text.len(),
            "span {s} past the end ({} bytes) in {d:?}",
            text.len()
        );
        assert!(
            text.is_char_boundary(s.start) && text.is_char_boundary(s.end),
            "span {s} inside a character in {d:?}"
        );
    }
    let code = d.code.as_bytes();
    assert!(
        code.len() == 5
            && matches!(code[0], b'E' | b'W' | b'N')
            && code[1..].iter().all(u8::is_ascii_digit),
        "bad code {:?}",
        d.code
    );
}

/// Parses and checks `text` against [`env`]; panics if an invariant breaks.
/// Returns every diagnostic (for callers that render them too).
pub fn parse_check_text(text: &str, env: &Env) -> Vec<Diagnostic> {
    let parsed = strat_syntax::parse(text);
    let checked = strat_check::check(text, &parsed.file, env);
    let has_error = checked.diagnostics.iter().any(Diagnostic::is_error);
    assert!(
        !(has_error && checked.program.is_some()),
        "a program despite errors"
    );
    let mut all = parsed.diagnostics;
    all.extend(checked.diagnostics);
    for d in &all {
        assert_spans_inside(text, d);
    }
    all
}

/// Target `parse_check` (and `mutate`): arbitrary bytes, decoded as `strat check` does.
pub fn parse_check(data: &[u8], env: &Env) -> Vec<Diagnostic> {
    let text = String::from_utf8_lossy(data);
    parse_check_text(&text, env)
}

/// The param types `param_value` chooses from with its first byte.
pub const PARAM_TYPES: &[(Type, &str, &str)] = &[
    (Type::Int, "int", "1"),
    (Type::Float, "float", "0.5"),
    (Type::String, "string", "\"x\""),
    (Type::Bool, "bool", "true"),
    (Type::Date, "date", "@2018-06-01"),
    (Type::Timestamp, "timestamp", "@2018-06-01T00:00:00"),
];

/// Target `param_value`: the first byte picks a type, the rest is the raw
/// `--param` value. `parse_param_value` must not panic; what it accepts must be
/// a value of that type whose text is a canonical literal; and the checker
/// must agree with it (no diagnostic exactly when the value is accepted).
pub fn param_value(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let raw = String::from_utf8_lossy(rest);
    // Every type, the ones no param can have included (they must be refused).
    let all = [Type::Decimal, Type::Null, Type::Other("Binary".into())];
    let idx = usize::from(selector) % (PARAM_TYPES.len() + all.len());
    if idx >= PARAM_TYPES.len() {
        assert_eq!(
            strat_check::parse_param_value(&all[idx - PARAM_TYPES.len()], &raw),
            None
        );
        return;
    }
    let (ty, word, default) = &PARAM_TYPES[idx];
    let value = strat_check::parse_param_value(ty, &raw);
    if let Some(v) = &value {
        assert_eq!(&v.ty(), ty, "{raw:?} accepted as a {word} but is {v:?}");
        match v {
            Value::Float(f) => assert!(f.is_finite(), "{raw:?}: {f}"),
            Value::Date(s) | Value::Timestamp(s) => {
                // The accepted text is written back as a literal `@TEXT` (explain,
                // SQL export, the engine's own parser): it must be one, alone.
                let lit = format!("@{s}");
                let toks = strat_syntax::lex::tokens(&lit);
                assert!(
                    s.bytes()
                        .all(|b| b.is_ascii_digit() || b"-:T.".contains(&b)),
                    "{raw:?} accepted as the {word} {s:?}"
                );
                assert!(toks.len() <= 2, "{raw:?} accepted as the {word} {s:?}");
                // Written as the param's default in a file, it checks: the same literal.
                let text = format!("param p: {word} = {lit}\nsample members where p = p seed 1\n");
                let diags = parse_check_text(&text, &env());
                assert!(
                    diags.is_empty(),
                    "{raw:?} accepted as the {word} {s:?}, but in a file: {diags:?}"
                );
            }
            _ => {}
        }
    }
    // The checker's `--param` path agrees.
    let text = format!("param p: {word} = {default}\nsample members where p = p seed 1\n");
    let mut env = env();
    env.params.push(("p".into(), raw.clone().into_owned()));
    let diags = parse_check_text(&text, &env);
    let e0124 = diags.iter().any(|d| d.code == "E0124");
    assert_eq!(
        e0124,
        value.is_none(),
        "{raw:?} as {word}: parse_param_value says {value:?}, the checker {diags:?}"
    );
}
