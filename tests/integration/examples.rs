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
