//! Every shipped example checks without errors.

use crate::common::{root, stderr, strat};

#[test]
fn every_example_checks() {
    let mut names: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| format!("examples/{}", e.file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".strat"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "at least three examples ship: {names:?}");
    for n in &names {
        let out = strat(&["check", n, "--color", "never"]);
        assert_eq!(out.status.code(), Some(0), "{n}:\n{}", stderr(&out));
        assert!(!stderr(&out).contains("Warning"), "{n} should check without warnings:\n{}", stderr(&out));
    }
}

#[test]
fn every_example_runs_and_reruns_to_the_same_bytes() {
    let dir = crate::cli::tempdir("examples-run");
    let mut names: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".strat"))
        .collect();
    names.sort();
    for n in &names {
        let rule = format!("examples/{n}");
        let a = dir.join(format!("{n}-1.parquet")).to_string_lossy().into_owned();
        let b = dir.join(format!("{n}-3.parquet")).to_string_lossy().into_owned();
        let report = dir.join(format!("{n}.json")).to_string_lossy().into_owned();
        let out = strat(&["run", &rule, "-o", &a, "--threads", "1", "--report", &report]);
        assert_eq!(out.status.code(), Some(0), "{n}:\n{}", stderr(&out));
        let out = strat(&["run", &rule, "-o", &b, "--threads", "3"]);
        assert_eq!(out.status.code(), Some(0), "{n}:\n{}", stderr(&out));
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "{n}: output depends on threads");
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert!(json["population"].as_u64().unwrap() > 0, "{n}: empty population");
        let out = strat(&["explain", &rule]);
        assert_eq!(out.status.code(), Some(0), "{n}:\n{}", stderr(&out));
        assert!(crate::common::stdout(&out).contains("allocation: N ="), "{n}");
    }
}
