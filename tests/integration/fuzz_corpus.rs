//! CI replay of the fuzz corpus (crates/strat-fuzz/corpus/<target>/) without
//! libFuzzer: every input goes through the very body its fuzz target runs
//! (`bodies.rs`, included below), then — for rule files — through the CLI's
//! decoding and both renderings. No panic, every span inside the text.

use std::panic::{AssertUnwindSafe, catch_unwind};

use strat_cli::render::{FileDiagnostics, human, json};

use crate::common::root;

#[path = "../../crates/strat-fuzz/src/bodies.rs"]
mod bodies;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("crates/strat-fuzz/corpus").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A rule file as `strat check` sees it: decoded, parsed, checked, rendered.
fn rule_file(bytes: &[u8], env: &strat_check::Env) {
    bodies::parse_check(bytes, env);
    let file = strat_cli::source::from_bytes("corpus.strat", bytes.to_vec());
    let mut diags = bodies::parse_check_text(&file.text, env);
    if let Some(p) = file.problem {
        bodies::assert_spans_inside(&file.text, &p);
        diags.insert(0, p);
    }
    let fd = FileDiagnostics {
        name: "corpus.strat",
        text: &file.text,
        diagnostics: &diags,
    };
    let _ = human(&fd, false);
    let out = json(std::slice::from_ref(&fd));
    let _: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
}

#[test]
fn fuzz_corpus_replays() {
    let env = bodies::env();
    let mut failures = Vec::new();
    for target in ["parse_check", "mutate", "param_value"] {
        let files = corpus(target);
        assert!(!files.is_empty(), "the corpus of `{target}` is empty");
        for (name, bytes) in files {
            let run = catch_unwind(AssertUnwindSafe(|| match target {
                "param_value" => bodies::param_value(&bytes),
                _ => rule_file(&bytes, &env),
            }));
            if run.is_err() {
                failures.push(format!("crates/strat-fuzz/corpus/{target}/{name}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "corpus inputs that fail (reproduce with `cargo fuzz run TARGET FILE`):\n{}",
        failures.join("\n")
    );
}
