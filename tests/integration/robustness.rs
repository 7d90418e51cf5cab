//! Hostile rule files: a clear diagnostic, never a panic.

use proptest::prelude::*;

use crate::cli::tempdir;
use crate::common::{root, stderr, stdout, strat};

fn check_bytes(name: &str, bytes: &[u8]) -> (Option<i32>, String) {
    let dir = tempdir(name);
    let path = dir.join("r.strat");
    std::fs::write(&path, bytes).unwrap();
    let out = strat(&["check", &path.to_string_lossy(), "--format", "json"]);
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
fn hostile_files_get_diagnostics() {
    let members = root()
        .join("examples/data/members.csv")
        .display()
        .to_string();
    let decl = format!("table members = \"{members}\"\n");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", b"".to_vec(), "E0006"),
        ("garbage", vec![0, 159, 146, 150, 255, 0, 1], "E0005"),
        (
            "invalid_utf8",
            [
                decl.as_bytes(),
                b"sample members where country = \"\xff\" seed 1",
            ]
            .concat(),
            "E0005",
        ),
        (
            "deep_parens",
            format!(
                "{decl}sample members where {}1{} seed 1",
                "(".repeat(100_000),
                ")".repeat(100_000)
            )
            .into_bytes(),
            "E0003",
        ),
        (
            "deep_not",
            format!(
                "{decl}sample members where {} true seed 1",
                "not ".repeat(100_000)
            )
            .into_bytes(),
            "E0003",
        ),
        (
            "deep_minus",
            format!(
                "{decl}sample members where {}1 > 0 seed 1",
                "- ".repeat(100_000)
            )
            .into_bytes(),
            "E0003",
        ),
        (
            "nested_120",
            format!(
                "{decl}sample members where {}tenure_days > 1{} seed 1",
                "(".repeat(120),
                ")".repeat(120)
            )
            .into_bytes(),
            "\"diagnostics\": []",
        ),
        (
            "long_or_chain",
            format!(
                "{decl}sample members where {} seed 1",
                (0..50_000)
                    .map(|i| format!("tenure_days = {i}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
            .into_bytes(),
            "\"diagnostics\": []",
        ),
        (
            "huge_take",
            format!("{decl}sample members take 99999999999999999999 seed 1").into_bytes(),
            "E0002",
        ),
        (
            "exponent",
            format!("{decl}sample members where tenure_days > 1e400 seed 1").into_bytes(),
            "E0001",
        ),
        (
            "long_line",
            format!(
                "{decl}sample members where country in ({}\"x\") seed 1",
                "\"US\", ".repeat(1_500_000)
            )
            .into_bytes(),
            "\"diagnostics\": []",
        ),
    ];
    let mut messages = String::new();
    for (name, bytes, want) in cases {
        let (code, out) = check_bytes(name, &bytes);
        assert!(
            code == Some(1) || (code == Some(0) && want.contains("[]")),
            "{name}: exit {code:?}\n{out}"
        );
        assert!(
            out.contains(want),
            "{name}: expected {want}:\n{}",
            &out[..out.len().min(2000)]
        );
        // The whole of every diagnostic (the file's path aside), as a snapshot.
        let json: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
        messages.push_str(&format!("== {name} (exit {code:?})\n"));
        for d in json["diagnostics"].as_array().unwrap() {
            messages.push_str(&format!(
                "{} {} {}:{}-{}:{} {}\n  help: {}\n",
                d["severity"].as_str().unwrap_or(""),
                d["code"].as_str().unwrap_or(""),
                d["line"],
                d["column"],
                d["end_line"],
                d["end_column"],
                d["message"].as_str().unwrap_or(""),
                d["help"].as_str().unwrap_or("")
            ));
        }
    }
    insta::assert_snapshot!("hostile_files_get_diagnostics", messages);
}

#[test]
fn bom_and_crlf_are_fine() {
    let members = root()
        .join("examples/data/members.csv")
        .display()
        .to_string();
    let text = format!(
        "\u{feff}table members = \"{members}\"\r\nsample members\r\n  stratify by country\r\n  take 10\r\n  seed 1\r\n"
    );
    let (code, out) = check_bytes("bom", text.as_bytes());
    assert_eq!(code, Some(0), "{out}");
    // A mistake after CRLF lines is still placed on the right line.
    let text = format!(
        "table members = \"{members}\"\r\nsample members\r\n  stratify by contry\r\n  seed 1\r\n"
    );
    let (_, out) = check_bytes("crlf", text.as_bytes());
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["diagnostics"][0]["line"], 3, "{out}");
    assert_eq!(json["diagnostics"][0]["column"], 15, "{out}");
}

#[test]
fn thousands_of_rules_and_statements() {
    let members = root()
        .join("examples/data/members.csv")
        .display()
        .to_string();
    let mut text = format!(
        "table members = \"{members}\"\nsample members stratify by tenure_days take 100 allocate {{\n"
    );
    for i in 0..5_000 {
        text.push_str(&format!("  tenure_days = {i} => count 1\n"));
    }
    text.push_str("  else => proportional\n} seed 1\n");
    for i in 0..2_000 {
        text.push_str(&format!("s{i} = sample members take 1 seed {i}\n"));
    }
    let (code, out) = check_bytes("many", text.as_bytes());
    assert_eq!(code, Some(0), "{}", &out[..out.len().min(2000)]);
}

fn env() -> strat_check::Env {
    use strat_check::{Column, Type};
    let mut env = strat_check::Env::default();
    env.tables.insert(
        "members".into(),
        Some(vec![
            Column::new("member_id", Type::Int),
            Column::new("country", Type::String),
            Column::new("plan", Type::String),
            Column::new("tenure_days", Type::Int),
            Column::new("watch", Type::Float),
            Column::new("signup_date", Type::Date),
        ]),
    );
    env
}

const SEED_TEXT: &str = "param as_of: date = @2018-06-01\ncohort = sample members where tenure_days >= 30 and signup_date <= as_of \
unit member_id stratify by country, plan, bucket(tenure_days, [90, 365]) as band take 1_000 \
allocate { country = \"US\" => share 30% country in (\"IS\") => all else => proportional } min 5 per stratum seed 7 \
output member_id, band, _weight\nsplit cohort unit member_id stratify by country into train 80%, test 20% seed 8\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Parsing and checking arbitrary text never panics.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let parsed = strat_syntax::parse(&text);
        let _ = strat_check::check(&text, &parsed.file, &env());
    }

    /// Nor do small edits of a valid file (grammar-aware mutations).
    #[test]
    fn mutated_rule_files_never_panic(cut in 0usize..SEED_TEXT.len(), len in 0usize..12, insert in "[ a-z0-9_(),=\"%@{}<>.\\-\\[\\]`#\n]{0,8}") {
        let mut text = SEED_TEXT.to_string();
        let start = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap();
        let end = (start + len..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        text.replace_range(start..end, &insert);
        let parsed = strat_syntax::parse(&text);
        let checked = strat_check::check(&text, &parsed.file, &env());
        // Every diagnostic points inside the text.
        for d in parsed.diagnostics.iter().chain(&checked.diagnostics) {
            if let Some(s) = d.span {
                prop_assert!(s.start <= s.end && s.end <= text.len() + 1, "{d:?} in {text:?}");
            }
        }
    }
}
