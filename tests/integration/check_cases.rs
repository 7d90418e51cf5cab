//! `strat check` on every case under tests/cases/check: the diagnostic codes
//! must be exactly those in the header, and both renderings are snapshotted.

use crate::common::{cases, header, root, stderr, stdout, strat};

#[test]
fn check_cases() {
    let mut failures = Vec::new();
    for case in cases("check") {
        let text = std::fs::read_to_string(root().join(&case)).unwrap();
        let h = header(&text);
        let mut args: Vec<&str> = vec!["check", &case, "--format", "json"];
        args.extend(h.args.iter().map(String::as_str));
        let out = strat(&args);
        let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
            panic!("{case}: bad JSON ({e}): {}\n{}", stdout(&out), stderr(&out))
        });
        let codes: Vec<String> = json["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap().to_string())
            .collect();
        let has_error = codes.iter().any(|c| c.starts_with('E'));
        if codes != h.expect {
            failures.push(format!("{case}: expected {:?}, got {:?}", h.expect, codes));
        }
        if out.status.code() != Some(i32::from(has_error)) {
            failures.push(format!(
                "{case}: exit code {:?} with codes {codes:?}",
                out.status.code()
            ));
        }
        // Every diagnostic of a file is placed inside it.
        for d in json["diagnostics"].as_array().unwrap() {
            if d["line"].is_null() && !d["message"].as_str().unwrap().starts_with("--") {
                failures.push(format!("{case}: diagnostic without a place: {d}"));
            }
        }
        let name = case
            .trim_start_matches("tests/cases/check/")
            .trim_end_matches(".strat")
            .to_string();
        insta::assert_snapshot!(format!("{name}.json"), stdout(&out));
        let mut human_args: Vec<&str> = vec!["check", &case, "--color", "never"];
        human_args.extend(h.args.iter().map(String::as_str));
        let human = strat(&human_args);
        insta::assert_snapshot!(format!("{name}.human"), stderr(&human));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
