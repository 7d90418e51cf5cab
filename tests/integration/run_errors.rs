//! `strat run` on every case under tests/cases/run: each fails at run time
//! with the code in its header, rendered like a check error — on the clause
//! the error is about, with the fix as help. The human rendering is a
//! snapshot.

use crate::common::{cases, header, root, stderr, strat};

#[test]
fn run_errors_point_at_their_clause() {
    let out = std::env::temp_dir().join(format!("strat-run-errors-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let sample = out.join("sample.csv").to_string_lossy().into_owned();
    let mut failures = Vec::new();
    for case in cases("run") {
        let text = std::fs::read_to_string(root().join(&case)).unwrap();
        let h = header(&text);
        let mut args: Vec<&str> = vec!["run", &case, "-o", &sample, "--color", "never"];
        args.extend(h.args.iter().map(String::as_str));
        let run = strat(&args);
        let err = stderr(&run);
        if run.status.code() != Some(1) {
            failures.push(format!("{case}: exit code {:?}\n{err}", run.status.code()));
        }
        for code in &h.expect {
            // ariadne's header: `[E0202] Error: …` and a pointer into the file.
            if !err.contains(&format!("[{code}] Error: ")) || !err.contains(&format!("╭─[ {case}:"))
            {
                failures.push(format!(
                    "{case}: expected {code} on a place in the file\n{err}"
                ));
            }
        }
        let name = case
            .trim_start_matches("tests/cases/run/")
            .trim_end_matches(".strat")
            .to_string();
        insta::assert_snapshot!(format!("run_error_{name}"), err);
    }
    assert!(
        !std::path::Path::new(&sample).exists(),
        "no sample after failed runs"
    );
    let _ = std::fs::remove_dir_all(&out);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
