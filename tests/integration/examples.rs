//! Every shipped example checks without errors.

use crate::common::{examples, stderr, strat};

#[test]
fn every_example_checks() {
    let names = examples();
    assert!(names.len() >= 3, "at least three examples ship: {names:?}");
    for n in &names {
        let out = strat(&["check", n, "--color", "never"]);
        assert_eq!(out.status.code(), Some(0), "{n}:\n{}", stderr(&out));
        assert!(
            !stderr(&out).contains("Warning"),
            "{n} should check without warnings:\n{}",
            stderr(&out)
        );
    }
}

#[test]
fn every_example_runs_and_reruns_to_the_same_bytes() {
    let dir = crate::cli::tempdir("examples-run");
    for rule in examples() {
        let n = rule.trim_start_matches("examples/");
        let a = dir
            .join(format!("{n}-1.parquet"))
            .to_string_lossy()
            .into_owned();
        let b = dir
            .join(format!("{n}-3.parquet"))
            .to_string_lossy()
            .into_owned();
        let report = dir.join(format!("{n}.json")).to_string_lossy().into_owned();
        let out = strat(&[
            "run",
            &rule,
            "-o",
            &a,
            "--threads",
            "1",
            "--report",
            &report,
        ]);
        assert_eq!(out.status.code(), Some(0), "{n}:\n{}", stderr(&out));
        let out = strat(&["run", &rule, "-o", &b, "--threads", "3"]);
        assert_eq!(out.status.code(), Some(0), "{n}:\n{}", stderr(&out));
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{n}: output depends on threads"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert!(
            json["population"].as_u64().unwrap() > 0,
            "{n}: empty population"
        );
        let out = strat(&["explain", &rule]);
        assert_eq!(out.status.code(), Some(0), "{n}:\n{}", stderr(&out));
        assert!(
            crate::common::stdout(&out).contains("allocation: N ="),
            "{n}"
        );
    }
}

/// `strat explain` reads as people write the rules: each rule as written,
/// percentages, bounds, `-` for a stratum that keeps no unit (a snapshot of
/// the cohort, and of the split that reads it).
#[test]
fn explain_reads_like_the_rules() {
    for (name, args) in [
        (
            "explain_cohort",
            vec!["explain", "examples/cohort.strat", "--emit", "cohort"],
        ),
        (
            "explain_cohort_split",
            vec!["explain", "examples/cohort.strat"],
        ),
    ] {
        let out = strat(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = crate::common::stdout(&out);
        for debug_text in ["Some(", "None", "/10 ", "rule 1"] {
            assert!(
                !text.contains(debug_text),
                "{name}: `{debug_text}` in\n{text}"
            );
        }
        insta::assert_snapshot!(name, text);
    }
}
