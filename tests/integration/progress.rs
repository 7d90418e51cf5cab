//! `strat run`'s progress bar: on a terminal (a pty) it shows the run's
//! phases with rows read of the total (a Parquet source's row count), then
//! clears itself before the last line; piped, or with `--quiet`, none of it.

use std::process::Command;

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{CsvReadOptions, SessionContext};
use rexpect::session::spawn_command;

use crate::cli::tempdir;
use crate::common::{stderr, strat};

/// 400,000 members as one Parquet file: long enough (a debug build) for the
/// bar to be drawn in every phase.
fn members(dir: &std::path::Path) -> std::path::PathBuf {
    let mut csv = String::from("id,country,plan\n");
    for i in 0..400_000u64 {
        let c = ["US", "BR", "DE", "FR"][(i * 7 % 4) as usize];
        let p = ["basic", "premium"][(i * 13 % 2) as usize];
        csv.push_str(&format!("{i},{c},{p}\n"));
    }
    std::fs::write(dir.join("m.csv"), csv).unwrap();
    let parquet = dir.join("m.parquet");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ctx = SessionContext::new();
        let df = ctx
            .read_csv(dir.join("m.csv").to_str().unwrap(), CsvReadOptions::new())
            .await
            .unwrap();
        df.write_parquet(
            parquet.to_str().unwrap(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .unwrap();
    });
    parquet
}

#[test]
fn a_terminal_sees_the_phases_and_a_pipe_sees_none() {
    let dir = tempdir("progress");
    let data = members(&dir);
    let rule = dir.join("r.strat");
    std::fs::write(
        &rule,
        format!(
            "table m = \"{}\"\nsample m unit id stratify by country, plan take 1000 seed 1\n",
            data.display()
        ),
    )
    .unwrap();
    let out = dir.join("s.parquet");
    let args = [
        "run",
        rule.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ];

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strat"));
    cmd.args(args).env("TERM", "xterm").env("NO_COLOR", "1");
    let mut p = spawn_command(cmd, Some(120_000)).expect("strat run in a pty");
    let screen = p.exp_eof().expect("the run ends");
    assert!(screen.contains("counting"), "{screen}");
    assert!(
        screen.contains("/400,000 rows"),
        "the total from Parquet: {screen}"
    );
    assert!(
        ["selecting", "reading selected rows", "writing"]
            .iter()
            .any(|phase| screen.contains(phase)),
        "a later phase: {screen}"
    );
    let last = screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.contains("sampled 1000 of 400000 units"),
        "the last line: {last:?}"
    );

    // A CSV has no row count: its total is estimated from its bytes.
    let csv_rule = dir.join("c.strat");
    std::fs::write(
        &csv_rule,
        format!(
            "table m = \"{}\"\nsample m unit id stratify by country take 10 seed 1\n",
            dir.join("m.csv").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strat"));
    cmd.args([
        "run",
        csv_rule.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .env("TERM", "xterm");
    let mut p = spawn_command(cmd, Some(120_000)).expect("strat run in a pty");
    let screen = p.exp_eof().expect("the run ends");
    // The totals drawn: the numbers after a `/` and before ` rows`.
    let totals: Vec<u64> = screen
        .split(" rows")
        .filter_map(|piece| piece.rsplit('/').next())
        .filter_map(|n| n.trim().replace(',', "").parse().ok())
        .collect();
    let estimate = *totals
        .last()
        .unwrap_or_else(|| panic!("no total for the CSV: {screen}"));
    assert!(
        (360_000..=440_000).contains(&estimate),
        "estimated {estimate} of 400,000 rows: {screen:?}"
    );

    // Piped, and with --quiet on a terminal: no bar.
    let o = strat(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    for phase in ["counting", "selecting", "reading selected rows", "rows ·"] {
        assert!(
            !stderr(&o).contains(phase),
            "{phase} in a piped run: {}",
            stderr(&o)
        );
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strat"));
    cmd.args(args).arg("--quiet").env("TERM", "xterm");
    let mut p = spawn_command(cmd, Some(120_000)).expect("strat run --quiet in a pty");
    let screen = p.exp_eof().expect("the run ends");
    assert!(!screen.contains("counting"), "--quiet: {screen}");
    assert!(screen.contains("sampled 1000 of 400000 units"), "{screen}");
}
