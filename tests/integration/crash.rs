//! Killing real runs at many moments: the output is always either the previous
//! file untouched or the complete new one, never a partial file.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cli::tempdir;

#[test]
fn killed_runs_leave_old_or_complete_output() {
    let dir = tempdir("crash");
    // A table big enough that a run takes a while.
    let mut csv = String::from("id,country,plan\n");
    let countries = ["US", "BR", "DE", "FR", "IN", "JP", "MX", "GB"];
    for i in 0..400_000u64 {
        csv.push_str(&format!(
            "{},{},{}\n",
            i * 7 + 3,
            countries[(i % 8) as usize],
            ["basic", "premium"][(i % 3 == 0) as usize]
        ));
    }
    std::fs::write(dir.join("t.csv"), csv).unwrap();
    std::fs::write(
        dir.join("r.strat"),
        "table t = \"t.csv\"\nsample t unit id stratify by country, plan take 150_000 seed 3\n",
    )
    .unwrap();
    let rule = dir.join("r.strat");
    let out = dir.join("out.csv");
    let bin = env!("CARGO_BIN_EXE_strat");
    // The complete new output, for comparison.
    let started = std::time::Instant::now();
    let report = dir.join("r.json");
    let ok = Command::new(bin)
        .args([
            "run",
            rule.to_str().unwrap(),
            "-o",
            dir.join("full.csv").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let took = started.elapsed().as_millis() as u64;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let full = std::fs::read(dir.join("full.csv")).unwrap();
    let old = b"the previous sample\n".to_vec();
    let mut outcomes = (0, 0, 0);
    // How the SIGINTed runs ended: exit 130 with the interrupt message, finished
    // before the signal (exit 0), or killed by the signal before the handler was
    // installed (a shell reports that as 130 too).
    let mut sigint_endings = (0, 0, 0);
    // Kill at moments spread over a whole run, the end included.
    let delays: Vec<u64> = (0..16).map(|i| took * i / 12).collect();
    for (k, delay_ms) in delays.iter().enumerate() {
        std::fs::write(&out, &old).unwrap();
        std::fs::write(&report, &old).unwrap();
        let child = Command::new(bin)
            .args([
                "run",
                rule.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*delay_ms));
        let signal = if k % 2 == 0 { "-INT" } else { "-KILL" };
        let pid = child.id();
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
        let ended = child.wait_with_output().unwrap();
        let now = std::fs::read(&out).unwrap();
        assert!(
            now == old || now == full,
            "after {signal} at {delay_ms} ms the output is partial ({} bytes)",
            now.len()
        );
        if now == old {
            outcomes.0 += 1
        } else {
            outcomes.1 += 1
        }
        // The report is the old one or the complete new one; a new report always
        // stands beside the sample it describes (the sample is renamed first).
        let report_now = std::fs::read(&report).unwrap();
        if report_now != old {
            let json: serde_json::Value = serde_json::from_slice(&report_now).unwrap_or_else(|e| {
                panic!("after {signal} at {delay_ms} ms the report is partial: {e}")
            });
            assert_eq!(
                now, full,
                "after {signal} at {delay_ms} ms: a new report beside the old sample"
            );
            assert_eq!(
                json["output"]["md5"],
                strat_engine::report::md5_hex(&full).as_str()
            );
        } else if now == full {
            // Killed between the two renames: the old report, detectable as stale.
            outcomes.2 += 1;
        }
        if signal == "-INT" {
            let err = String::from_utf8_lossy(&ended.stderr);
            match (ended.status.code(), ended.status.signal()) {
                (Some(130), _) if now == old => {
                    assert!(
                        err.ends_with("interrupted: nothing was written\n"),
                        "exit 130 at {delay_ms} ms: {err}"
                    );
                    assert_eq!(
                        report_now, old,
                        "exit 130 at {delay_ms} ms, but the report was replaced"
                    );
                    sigint_endings.0 += 1;
                }
                (Some(130), _) => {
                    // Between or after the renames: the message says what was written.
                    assert!(
                        err.contains("interrupted after `"),
                        "exit 130 at {delay_ms} ms: {err}"
                    );
                    sigint_endings.0 += 1;
                }
                (Some(0), _) => {
                    assert_eq!(now, full, "exit 0 at {delay_ms} ms without the new output");
                    sigint_endings.1 += 1;
                }
                (None, Some(2)) => {
                    assert_eq!(
                        now, old,
                        "killed by SIGINT at {delay_ms} ms, but the output was replaced"
                    );
                    sigint_endings.2 += 1;
                }
                other => panic!("SIGINT at {delay_ms} ms: unexpected end {other:?}: {err}"),
            }
            let leftovers: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                // (A temporary file of an earlier, SIGKILLed run stays until the next write.)
                .filter(|n| n.ends_with(&format!("strat-tmp-{pid}")))
                .collect();
            assert!(leftovers.is_empty(), "SIGINT left {leftovers:?}");
        }
    }
    // A later run cleans what a SIGKILL left and completes.
    let ok = Command::new(bin)
        .args(["run", rule.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), full);
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("strat-tmp")
        })
        .count();
    assert_eq!(leftovers, 0);
    eprintln!(
        "killed runs: {} left the old file, {} the complete new one ({} of them beside the old report)",
        outcomes.0, outcomes.1, outcomes.2
    );
    eprintln!(
        "SIGINT: {} exited 130, {} had finished, {} died before the handler was installed",
        sigint_endings.0, sigint_endings.1, sigint_endings.2
    );
    // Most SIGINTs land mid-run: the documented interrupt path must have been taken.
    assert!(
        sigint_endings.0 >= 3,
        "too few runs were interrupted mid-run: {sigint_endings:?}"
    );
}
