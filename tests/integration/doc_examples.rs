//! The shell examples of README.md, examples/README.md and docs/ run as
//! tests, so a doc cannot go stale silently:
//!
//! - every ```sh block runs in bash (in a scratch folder with copies of the
//!   repository's `examples/` and `tests/cases/`), with `strat` (and
//!   `cargo run -p strat-cli --`) being the built binary; other programs
//!   (the benchmark harness, the data generator, the test suite) do not run. Each `strat` command
//!   must exit 0 — unless its line's comment names a diagnostic code (`# E0208`),
//!   or it stands in docs/diagnostics.md under a `## E…`/`## W…` heading: then
//!   it must report that code. Never a usage error (exit 2) or a crash.
//! - every `$ strat …` line of a ```text block is run and must print the lines
//!   shown below it (`…` stands for any lines; trailing spaces are ignored).
//!
//! A block that cannot run here (a release build, a warehouse path) is marked
//! with `<!-- doc-test: skip, REASON -->` on the line before its fence.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::root;

/// One shell example: where it is, what it runs, what it must show.
struct Example {
    place: String,
    script: String,
    /// The `strat` command lines, in order, each with the diagnostic code it must report.
    commands: Vec<(String, Option<String>)>,
    /// For a `$ strat …` line: the output shown under it.
    shown: Option<Vec<String>>,
}

fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut files = vec![root.join("README.md"), root.join("examples/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// A diagnostic code named in a command line's comment (`# E0208`).
fn code_in(comment: &str) -> Option<String> {
    comment
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(|w| {
            let b = w.as_bytes();
            (b.len() == 5 && matches!(b[0], b'E' | b'W') && b[1..].iter().all(u8::is_ascii_digit))
                .then(|| w.to_string())
        })
}

/// The `strat` command of a script line (without `$ `, the binary's name,
/// or a trailing comment), if the line runs strat.
fn strat_command(line: &str) -> Option<(String, String)> {
    let line = line.trim().trim_start_matches("$ ");
    let rest = line
        .strip_prefix("strat ")
        .or_else(|| line.strip_prefix("cargo run -p strat-cli -- "))
        .or_else(|| line.strip_prefix("cargo run -q -p strat-cli -- "))?;
    let (args, comment) = match rest.find("  #").or_else(|| rest.find(" # ")) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    Some((args.trim().to_string(), comment.to_string()))
}

fn examples_in(file: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(file).unwrap();
    let name = file.strip_prefix(root()).unwrap().display().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut heading_code = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(h) = line.strip_prefix("## ") {
            heading_code = code_in(h.split(' ').next().unwrap_or_default());
        }
        let Some(info) = line.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].starts_with("```"))
            .unwrap_or(lines.len());
        let body = &lines[i + 1..end];
        let skipped = i > 0 && lines[i - 1].starts_with("<!-- doc-test: skip");
        let place = format!("{name}:{}", i + 1);
        if !skipped && info == "sh" {
            let commands = body
                .iter()
                .filter_map(|l| strat_command(l))
                .filter(|(args, _)| !args.starts_with("--"))
                .map(|(args, comment)| {
                    let code = code_in(&comment).or_else(|| {
                        (name == "docs/diagnostics.md")
                            .then(|| heading_code.clone())
                            .flatten()
                    });
                    (args, code)
                })
                .collect();
            out.push(Example {
                place,
                script: body.join("\n"),
                commands,
                shown: None,
            });
        } else if !skipped && (info == "text" || info == "console") {
            let mut k = 0;
            while k < body.len() {
                if let Some((args, _)) = body[k].strip_prefix("$ ").and(strat_command(body[k])) {
                    let next = (k + 1..body.len())
                        .find(|&j| body[j].starts_with("$ "))
                        .unwrap_or(body.len());
                    out.push(Example {
                        place: format!("{name}:{}", i + 2 + k),
                        script: format!("strat {args}"),
                        commands: vec![(args, None)],
                        shown: Some(body[k + 1..next].iter().map(|l| l.to_string()).collect()),
                    });
                    k = next;
                } else {
                    k += 1;
                }
            }
        }
        i = end + 1;
    }
    out
}

/// A scratch folder with copies of the repository's examples, test cases and
/// benchmark tasks (copies: an example may write anything, and must never
/// change the files other tests read at the same time).
fn scratch() -> crate::cli::TestDir {
    let dir = crate::cli::tempdir("doc-examples");
    for sub in ["examples", "tests/cases", "crates/strat-bench/tasks"] {
        copy_dir(&root().join(sub), &dir.join(sub));
    }
    std::fs::create_dir_all(dir.join("out")).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// Runs an example's script; returns, per `strat` call, its exit code and
/// output, and the script's whole output.
fn run(example: &Example, dir: &Path) -> (Vec<(i32, String)>, String) {
    let log = dir.join("calls");
    let _ = std::fs::remove_dir_all(&log);
    std::fs::create_dir_all(&log).unwrap();
    let prelude = r#"
strat() {
  n=$(ls "$CALLS" | grep -c "[.]rc$")
  "$STRAT_BIN" "$@" > "$CALLS/$n.out" 2>&1
  rc=$?
  echo "$rc" > "$CALLS/$n.rc"
  cat "$CALLS/$n.out"
  return 0
}
# Only strat runs: not the test suite (README's second command), the
# benchmark harness or the data generator (python3 runs only with -c).
bash() { echo "(doc test: bash $* not run)"; }
python3() {
  if [ "$1" = -c ]; then command python3 "$@"; else echo "(doc test: python3 $* not run)"; fi
}
cargo() {
  if [ "$1" = run ]; then
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
    shift
    strat "$@"
  fi
}
"#;
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}\n{}", example.script))
        .current_dir(dir)
        .env("STRAT_BIN", env!("CARGO_BIN_EXE_strat"))
        .env("CALLS", &log)
        .env_remove("NO_COLOR")
        .output()
        .expect("bash");
    let mut calls = Vec::new();
    for n in 0.. {
        let Ok(rc) = std::fs::read_to_string(log.join(format!("{n}.rc"))) else {
            break;
        };
        let out = std::fs::read_to_string(log.join(format!("{n}.out"))).unwrap_or_default();
        calls.push((rc.trim().parse().unwrap_or(-1), out));
    }
    let all = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    (calls, all)
}

/// Does `got` show the lines `shown`, where a `…` or `...` line stands for any lines?
fn shows(got: &str, shown: &[String]) -> bool {
    fn rest(got: &[&str], shown: &[&str]) -> bool {
        match shown.split_first() {
            None => got.is_empty(),
            Some((&("…" | "..."), more)) => (0..=got.len()).any(|k| rest(&got[k..], more)),
            Some((line, more)) => {
                got.first().is_some_and(|g| g.trim_end() == line.trim_end())
                    && rest(&got[1..], more)
            }
        }
    }
    let got: Vec<&str> = got.lines().collect();
    let shown: Vec<&str> = shown.iter().map(String::as_str).collect();
    rest(&got, &shown)
}

#[test]
fn shell_examples_in_the_docs_run() {
    let dir = scratch();
    let mut failures = Vec::new();
    let mut count = 0;
    for file in documents() {
        for example in examples_in(&file) {
            count += 1;
            let (calls, all) = run(&example, &dir);
            if calls.len() != example.commands.len() {
                failures.push(format!(
                    "{}: {} strat commands in the block, {} ran:\n{all}",
                    example.place,
                    example.commands.len(),
                    calls.len()
                ));
                continue;
            }
            for ((args, code), (rc, out)) in example.commands.iter().zip(&calls) {
                let ok = match code {
                    None => *rc == 0,
                    Some(code) => (*rc == 0 || *rc == 1) && out.contains(code.as_str()),
                };
                if !ok {
                    failures.push(format!(
                        "{}: `strat {args}` exited {rc}{}:\n{out}",
                        example.place,
                        code.as_ref()
                            .map_or(String::new(), |c| format!(" (it should report {c})"))
                    ));
                }
            }
            if let (Some(shown), Some((_, out))) = (&example.shown, calls.first())
                && !shows(out, shown)
            {
                failures.push(format!(
                    "{}: the doc shows\n{}\nbut `{}` prints\n{out}",
                    example.place,
                    shown.join("\n"),
                    example.script
                ));
            }
        }
    }
    assert!(count >= 20, "only {count} shell examples found");
    assert!(
        failures.is_empty(),
        "{} stale examples:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
