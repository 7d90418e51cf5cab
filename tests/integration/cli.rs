//! The command line as a user meets it: exit codes, formats, bindings.

use crate::common::{root, stderr, stdout, strat};

#[test]
fn usage_errors_exit_2() {
    assert_eq!(strat(&[]).status.code(), Some(2));
    assert_eq!(strat(&["check"]).status.code(), Some(2));
    assert_eq!(
        strat(&["check", "x.strat", "--format", "yaml"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        strat(&["check", "x.strat", "--table", "novalue"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(strat(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn help_of_every_command() {
    let out = strat(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("help", stdout(&out));
    let out = strat(&["check", "--help"]);
    insta::assert_snapshot!("check_help", stdout(&out));
    insta::assert_snapshot!("run_help", stdout(&strat(&["run", "--help"])));
    insta::assert_snapshot!("explain_help", stdout(&strat(&["explain", "--help"])));
}

#[test]
fn missing_rule_file_is_an_error_naming_it() {
    let out = strat(&["check", "no/such.strat", "--color", "never"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read `no/such.strat`: no such file"),
        "{}",
        stderr(&out)
    );
    let out = strat(&["check", "examples", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("E0007"), "{}", stdout(&out));
}

#[test]
fn table_flag_binds_a_table_the_file_does_not_declare() {
    let dir = tempdir("tableflag");
    let rule = dir.join("r.strat");
    std::fs::write(&rule, "sample visits stratify by country take 10 seed 1\n").unwrap();
    let rule = rule.to_string_lossy().into_owned();
    let out = strat(&["check", &rule, "--color", "never"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--table visits=PATH"),
        "{}",
        stderr(&out)
    );
    let out = strat(&[
        "check",
        &rule,
        "--table",
        "visits=examples/data/members.csv",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A --table that points nowhere names the flag and the path.
    let out = strat(&[
        "check",
        &rule,
        "--table",
        "visits=nowhere.csv",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("--table visits=nowhere.csv"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn param_flag_overrides_and_is_type_checked() {
    let rule = "tests/cases/check/bad_param_flag.strat";
    let out = strat(&["check", rule, "--param", "as_of=2018-07-01"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = strat(&[
        "check",
        rule,
        "--param",
        "as_of=tomorrow",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("E0124"));
}

#[test]
fn several_files_are_checked_in_one_run() {
    let out = strat(&[
        "check",
        "examples/cohort.strat",
        "tests/cases/check/unknown_column.strat",
        "tests/cases/check/unknown_table.strat",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let files: Vec<&str> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .map(|d| d["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "tests/cases/check/unknown_column.strat",
            "tests/cases/check/unknown_table.strat"
        ]
    );
}

#[test]
fn json_positions_are_one_based_lines_and_character_columns() {
    let dir = tempdir("positions");
    let rule = dir.join("r.strat");
    let members = root().join("examples/data/members.csv");
    // A two-byte character before the mistake: the column counts characters.
    std::fs::write(
        &rule,
        format!(
            "table members = \"{}\"\n# é\nsample members\n  where é_x = 1 seed 1\n",
            members.display()
        ),
    )
    .unwrap();
    let out = strat(&["check", &rule.to_string_lossy(), "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let d = &json["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(4), Some(9)),
        "{d}"
    );
}

#[test]
fn color_is_used_only_when_asked() {
    let case = "tests/cases/check/unknown_column.strat";
    assert!(stderr(&strat(&["check", case, "--color", "always"])).contains("\x1b["));
    assert!(!stderr(&strat(&["check", case, "--color", "never"])).contains("\x1b["));
    // Not a terminal: `auto` means no colour.
    assert!(!stderr(&strat(&["check", case])).contains("\x1b["));
}

pub fn tempdir(name: &str) -> TestDir {
    TestDir::new(std::env::temp_dir().join(format!("strat-test-{}-{name}", std::process::id())))
}

/// A fresh folder for one test, removed when the test ends well (a failed
/// test leaves it to look at).
pub struct TestDir(std::path::PathBuf);

impl TestDir {
    pub fn new(path: std::path::PathBuf) -> TestDir {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("test folder");
        TestDir(path)
    }
}

impl std::ops::Deref for TestDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TestDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
