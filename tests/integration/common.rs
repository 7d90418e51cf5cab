//! Running the real `strat` binary from the workspace root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Runs `strat` with `args` in the workspace root.
pub fn strat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strat"))
        .args(args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .output()
        .expect("run strat")
}

/// The Python of the project's engines environment (tests/engines/setup.sh
/// makes it), which has DuckDB and PySpark; never the system Python.
pub fn engines_python() -> PathBuf {
    let python = root().join("target/engines-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash tests/engines/setup.sh` (tests/run-all.sh does) before the tests",
        python.display()
    );
    python
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A case file's header: `# expect: CODES` (or `ok`) and optional `# args: …`.
pub struct Header {
    pub expect: Vec<String>,
    pub args: Vec<String>,
}

pub fn header(text: &str) -> Header {
    let mut h = Header {
        expect: Vec::new(),
        args: Vec::new(),
    };
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("# expect:") {
            h.expect = rest
                .split_whitespace()
                .filter(|c| *c != "ok")
                .map(String::from)
                .collect();
        } else if let Some(rest) = line.strip_prefix("# args:") {
            h.args = rest.split_whitespace().map(String::from).collect();
        }
    }
    h
}

/// Case files under `tests/cases/DIR`, sorted, as paths relative to the root.
pub fn cases(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("tests/cases").join(dir))
        .expect("cases folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".strat"))
        .map(|n| format!("tests/cases/{dir}/{n}"))
        .collect();
    v.sort();
    v
}

/// The shipped rule files `examples/*.strat`, sorted, as paths relative to the root.
pub fn examples() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("examples"))
        .expect("examples folder")
        .filter_map(|e| e.ok())
        .map(|e| format!("examples/{}", e.file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".strat"))
        .collect();
    v.sort();
    v
}
