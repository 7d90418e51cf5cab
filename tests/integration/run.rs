//! `strat run` end to end: outputs, reports, errors, and the determinism
//! promise (the same bytes whatever the file layout, row order, format or threads).

use std::path::{Path, PathBuf};

use datafusion::prelude::{CsvReadOptions, SessionContext};

use crate::cli::tempdir;
use crate::common::{root, stderr, strat};

const COHORT: &str = "table members = \"members.csv\"\n\
cohort = sample members\n\
  where tenure_days >= 30 and not is_kids_profile\n\
  unit member_id\n\
  stratify by country, plan, bucket(tenure_days, [90, 365]) as band\n\
  take 700\n\
  allocate { country = \"US\" => share 30% country in (\"IS\", \"LU\") => all else => proportional }\n\
  seed 20180601\n";

fn run_ok(args: &[&str]) -> String {
    let out = strat(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}:\n{}", stderr(&out));
    stderr(&out)
}

/// Members as CSV lines, shuffled by a fixed permutation (no randomness).
fn shuffled_members() -> (String, Vec<String>) {
    let text = std::fs::read_to_string(root().join("examples/data/members.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    let mut rows: Vec<String> = lines.map(String::from).collect();
    let n = rows.len();
    let mut shuffled = Vec::with_capacity(n);
    let mut i = 0usize;
    for _ in 0..n {
        i = (i + 2_477) % n; // 2477 is prime and does not divide n
        shuffled.push(std::mem::take(&mut rows[i]));
    }
    assert!(shuffled.iter().all(|r| !r.is_empty()), "a full permutation");
    (header, shuffled)
}

async fn to_parquet(csv: &Path, out: &Path) {
    let ctx = SessionContext::new();
    let df = ctx
        .read_csv(csv.to_str().unwrap(), CsvReadOptions::new())
        .await
        .unwrap();
    let opts = datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true);
    df.write_parquet(out.to_str().unwrap(), opts, None)
        .await
        .unwrap();
}

/// The CSV's rows as NDJSON (one object per line, numbers and booleans as JSON
/// values, dates as strings: JSON has no date type).
async fn to_ndjson(csv: &Path, out: &Path) {
    let ctx = SessionContext::new();
    let df = ctx
        .read_csv(csv.to_str().unwrap(), CsvReadOptions::new())
        .await
        .unwrap();
    let opts = datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true);
    df.write_json(out.to_str().unwrap(), opts, None)
        .await
        .unwrap();
}

/// The CSV's rows (with the types read from the CSV, dates included) as an
/// Arrow IPC file, in several record batches.
async fn to_arrow_ipc(csv: &Path, out: &Path) {
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_batch_size(1000),
    );
    let df = ctx
        .read_csv(csv.to_str().unwrap(), CsvReadOptions::new())
        .await
        .unwrap();
    let schema = df.schema().as_arrow().clone();
    let batches = df.collect().await.unwrap();
    assert!(batches.len() > 1, "several record batches");
    let file = std::fs::File::create(out).unwrap();
    let mut w = datafusion::arrow::ipc::writer::FileWriter::try_new(file, &schema).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
}

/// A Parquet file's rows with `column` cast to text, to compare two samples
/// whose only difference is that column's type.
async fn parquet_rows_with_text(
    path: &Path,
    column: &str,
) -> Vec<datafusion::arrow::record_batch::RecordBatch> {
    use datafusion::prelude::{ParquetReadOptions, col};
    let ctx = SessionContext::new();
    let df = ctx
        .read_parquet(path.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    let exprs: Vec<_> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let c = col(format!("\"{}\"", f.name()));
            if f.name() == column {
                datafusion::logical_expr::cast(c, datafusion::arrow::datatypes::DataType::Utf8)
                    .alias(f.name())
            } else {
                c
            }
        })
        .collect();
    let batches = df.select(exprs).unwrap().collect().await.unwrap();
    let schema = batches[0].schema();
    vec![datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap()]
}

#[test]
fn determinism_matrix() {
    let dir = tempdir("determinism");
    // An explicit `output`: a table read from NDJSON has its columns in the order
    // DataFusion's JSON schema inference gives them (by name), not the file's.
    let rule = format!(
        "{COHORT}  output member_id, country, plan, device, tenure_days, signup_date, watch_hours_28d, \
         is_kids_profile, referral_source\n"
    );
    std::fs::write(dir.join("r.strat"), rule).unwrap();
    std::fs::copy(
        root().join("examples/data/members.csv"),
        dir.join("members.csv"),
    )
    .unwrap();
    let (header, rows) = shuffled_members();
    std::fs::write(
        dir.join("shuffled.csv"),
        format!("{header}\n{}\n", rows.join("\n")),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("seven")).unwrap();
    for (k, chunk) in rows.chunks(rows.len().div_ceil(7)).enumerate() {
        std::fs::write(
            dir.join(format!("seven/part-{k}.csv")),
            format!("{header}\n{}\n", chunk.join("\n")),
        )
        .unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(to_parquet(
        &dir.join("shuffled.csv"),
        &dir.join("members.parquet"),
    ));
    rt.block_on(to_ndjson(
        &dir.join("shuffled.csv"),
        &dir.join("members.ndjson"),
    ));
    rt.block_on(to_arrow_ipc(
        &dir.join("shuffled.csv"),
        &dir.join("members.arrow"),
    ));

    let rule = dir.join("r.strat").to_string_lossy().into_owned();
    let variants: Vec<(String, Vec<String>)> = vec![
        ("plain".into(), vec![]),
        ("threads1".into(), vec!["--threads".into(), "1".into()]),
        ("threads2".into(), vec!["--threads".into(), "2".into()]),
        ("threads8".into(), vec!["--threads".into(), "8".into()]),
        (
            "shuffled".into(),
            vec![
                "--table".into(),
                format!("members={}", dir.join("shuffled.csv").display()),
            ],
        ),
        (
            "seven_files".into(),
            vec![
                "--table".into(),
                format!("members={}", dir.join("seven").display()),
            ],
        ),
        (
            "parquet".into(),
            vec![
                "--table".into(),
                format!("members={}", dir.join("members.parquet").display()),
            ],
        ),
        (
            "arrow_ipc".into(),
            vec![
                "--table".into(),
                format!("members={}", dir.join("members.arrow").display()),
            ],
        ),
        (
            "ndjson".into(),
            vec![
                "--table".into(),
                format!("members={}", dir.join("members.ndjson").display()),
            ],
        ),
    ];
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, extra) in &variants {
        for ext in ["csv", "parquet", "ndjson"] {
            let out = dir
                .join(format!("out-{name}.{ext}"))
                .to_string_lossy()
                .into_owned();
            let mut args = vec!["run", rule.as_str(), "-o", out.as_str()];
            args.extend(extra.iter().map(String::as_str));
            run_ok(&args);
            outputs.push((format!("{name}.{ext}"), std::fs::read(&out).unwrap()));
        }
    }
    for ext in ["csv", "parquet", "ndjson"] {
        // NDJSON has no date type: read from NDJSON, `signup_date` is a string, which
        // CSV and NDJSON outputs write with the same bytes but a Parquet output types
        // differently (compared below, row by row).
        let same: Vec<&(String, Vec<u8>)> = outputs
            .iter()
            .filter(|(n, _)| {
                n.ends_with(&format!(".{ext}")) && !(ext == "parquet" && n.starts_with("ndjson."))
            })
            .collect();
        assert_eq!(
            same.len(),
            if ext == "parquet" {
                variants.len() - 1
            } else {
                variants.len()
            }
        );
        for (name, bytes) in &same[1..] {
            assert!(bytes == &same[0].1, "{name} differs from {}", same[0].0);
        }
    }
    let from_ndjson = rt.block_on(parquet_rows_with_text(
        &dir.join("out-ndjson.parquet"),
        "signup_date",
    ));
    let from_csv = rt.block_on(parquet_rows_with_text(
        &dir.join("out-plain.parquet"),
        "signup_date",
    ));
    assert_eq!(
        from_ndjson, from_csv,
        "the Parquet sample of the NDJSON input has other rows or values"
    );
    assert_eq!(from_csv[0].num_rows(), 700);
    // And the sample is what was asked: 700 units, the US exactly 30%.
    let csv = String::from_utf8(outputs[0].1.clone()).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 700);
    let us = rows
        .iter()
        .filter(|r| r.split(',').nth(1) == Some("US"))
        .count();
    assert_eq!(us, 210);
}

#[test]
fn report_numbers_are_the_allocation() {
    let dir = tempdir("report");
    std::fs::write(dir.join("r.strat"), COHORT).unwrap();
    std::fs::copy(
        root().join("examples/data/members.csv"),
        dir.join("members.csv"),
    )
    .unwrap();
    let rule = dir.join("r.strat").to_string_lossy().into_owned();
    let out = dir.join("s.csv").to_string_lossy().into_owned();
    let report = dir.join("r.json").to_string_lossy().into_owned();
    run_ok(&["run", &rule, "-o", &out, "--report", &report]);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["selected"], 700);
    assert_eq!(json["seed"], 20180601);
    assert_eq!(json["statement"], "cohort");
    assert_eq!(json["rule_md5"].as_str().unwrap().len(), 32);
    let strata = json["strata"].as_array().unwrap();
    let sum_n: u64 = strata.iter().map(|s| s["n_h"].as_u64().unwrap()).sum();
    let sum_sel: u64 = strata.iter().map(|s| s["selected"].as_u64().unwrap()).sum();
    let sum_pop: u64 = strata
        .iter()
        .map(|s| s["population"].as_u64().unwrap())
        .sum();
    assert_eq!((sum_n, sum_sel), (700, 700));
    assert_eq!(sum_pop, json["population"].as_u64().unwrap());
    let us: u64 = strata
        .iter()
        .filter(|s| s["values"][0] == "US")
        .map(|s| s["selected"].as_u64().unwrap())
        .sum();
    assert_eq!(us, 210, "share 30% of 700");
    for s in strata
        .iter()
        .filter(|s| s["values"][0] == "IS" || s["values"][0] == "LU")
    {
        assert_eq!(
            s["selected"], s["population"],
            "`all` keeps every unit: {s}"
        );
    }
    // Each stratum's weight is N_h / n_h, and the CSV carries it per row.
    for s in strata.iter().filter(|s| s["n_h"].as_u64().unwrap() > 0) {
        let w = s["population"].as_f64().unwrap() / s["n_h"].as_f64().unwrap();
        assert_eq!(s["weight"].as_f64().unwrap(), w);
    }
    let md = dir.join("r.md").to_string_lossy().into_owned();
    run_ok(&["run", &rule, "-o", &out, "--report", &md]);
    assert!(
        std::fs::read_to_string(&md)
            .unwrap()
            .contains("| stratum | N_h | target | selected | weight |")
    );
}

fn assert_untouched(path: &PathBuf, before: &[u8]) {
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "{} must be untouched",
        path.display()
    );
}

#[test]
fn failed_runs_leave_nothing_behind() {
    let dir = tempdir("failures");
    std::fs::copy(
        root().join("examples/data/members.csv"),
        dir.join("members.csv"),
    )
    .unwrap();
    std::fs::write(dir.join("r.strat"), COHORT).unwrap();
    std::fs::write(
        dir.join("big.strat"),
        "table members = \"members.csv\"\nsample members take 1_000_000 seed 1\n",
    )
    .unwrap();
    let old = dir.join("old.csv");
    std::fs::write(&old, "previous sample\n").unwrap();
    let input = dir.join("members.csv");
    let input_bytes = std::fs::read(&input).unwrap();
    let rule = dir.join("r.strat").to_string_lossy().into_owned();
    let big = dir.join("big.strat").to_string_lossy().into_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "run".into(),
                big.clone(),
                "-o".into(),
                old.display().to_string(),
            ],
            "E0202",
        ),
        (
            vec![
                "run".into(),
                rule.clone(),
                "-o".into(),
                input.display().to_string(),
            ],
            "E0205",
        ),
        (
            vec![
                "run".into(),
                rule.clone(),
                "-o".into(),
                dir.join("s.xlsx").display().to_string(),
            ],
            "E0205",
        ),
        (
            vec![
                "run".into(),
                rule.clone(),
                "-o".into(),
                old.display().to_string(),
                "--report".into(),
                dir.join("r.txt").display().to_string(),
            ],
            "E0205",
        ),
        (
            vec![
                "run".into(),
                rule.clone(),
                "-o".into(),
                dir.join("no/such/dir/s.csv").display().to_string(),
            ],
            "E0205",
        ),
        (
            vec![
                "run".into(),
                rule.clone(),
                "-o".into(),
                old.display().to_string(),
                "--emit".into(),
                "cohrt".into(),
            ],
            "E0131",
        ),
        // The sample and the report cannot be one file.
        (
            vec![
                "run".into(),
                rule.clone(),
                "-o".into(),
                dir.join("same.json").display().to_string(),
                "--report".into(),
                dir.join("same.json").display().to_string(),
            ],
            "E0205",
        ),
    ];
    for (args, code) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = strat(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains(code),
            "{args:?}: expected {code}\n{}",
            stderr(&out)
        );
        assert_untouched(&old, b"previous sample\n");
        assert_untouched(&input, &input_bytes);
    }
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["members.csv", "r.strat", "big.strat", "old.csv"].contains(&n.as_str()))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The infeasible total states both numbers.
    let out = strat(&["run", &big, "-o", &old.display().to_string()]);
    assert!(
        stderr(&out).contains("1000000") && stderr(&out).contains("6000"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_memory_limit_fails_cleanly() {
    let dir = tempdir("memory");
    let out = dir.join("s.csv").to_string_lossy().into_owned();
    let run = strat(&[
        "run",
        "examples/cohort.strat",
        "--emit",
        "cohort",
        "-o",
        &out,
        "--memory-limit",
        "200K",
    ]);
    assert_eq!(run.status.code(), Some(1));
    // The numbers: the limit, what the run needed, and the flag that fixes it.
    assert!(
        stderr(&run).contains("E0208")
            && stderr(&run).contains("more than the memory limit of 200.0 KiB")
            && stderr(&run).contains("raise `--memory-limit` to "),
        "{}",
        stderr(&run)
    );
    assert!(
        !std::path::Path::new(&out).exists(),
        "no output after a failed run"
    );
    run_ok(&[
        "run",
        "examples/cohort.strat",
        "--emit",
        "cohort",
        "-o",
        &out,
        "--memory-limit",
        "1G",
    ]);
    assert_eq!(
        strat(&[
            "run",
            "examples/cohort.strat",
            "-o",
            &out,
            "--memory-limit",
            "lots"
        ])
        .status
        .code(),
        Some(2)
    );
}

/// Under a memory limit too small for its units, the streaming plan spills
/// them to disk and writes the same sample as without a limit.
#[test]
fn a_memory_limit_makes_the_units_spill() {
    let dir = tempdir("memory-spill");
    let mut csv = String::from("member_id,country,plan\n");
    for i in 0..60_000u64 {
        let country = ["US", "BR", "DE", "FR", "IS"][(i * 7 % 5) as usize];
        let plan = ["basic", "premium"][(i * 13 % 2) as usize];
        csv.push_str(&format!("{i},{country},{plan}\n"));
    }
    std::fs::write(dir.join("m.csv"), csv).unwrap();
    std::fs::write(
        dir.join("r.strat"),
        "table m = \"m.csv\"\nsample m unit member_id stratify by country, plan take 300 seed 5\n",
    )
    .unwrap();
    let rule = dir.join("r.strat").to_string_lossy().into_owned();
    let free = dir.join("free.csv").to_string_lossy().into_owned();
    let limited = dir.join("limited.csv").to_string_lossy().into_owned();
    run_ok(&["run", &rule, "-o", &free]);
    // 60,000 units take about 1.9 MB in memory.
    let run = strat(&[
        "run",
        &rule,
        "-o",
        &limited,
        "--memory-limit",
        "1M",
        "--timings",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("sorted runs"),
        "the units were spilled: {}",
        stderr(&run)
    );
    assert_eq!(
        std::fs::read(&free).unwrap(),
        std::fs::read(&limited).unwrap()
    );
}

/// The report records the sample it was written with (path, md5, size), so a
/// report beside another sample is detectable.
#[test]
fn the_report_records_its_sample() {
    let dir = tempdir("report-pair");
    std::fs::write(dir.join("r.strat"), COHORT).unwrap();
    std::fs::copy(
        root().join("examples/data/members.csv"),
        dir.join("members.csv"),
    )
    .unwrap();
    let rule = dir.join("r.strat").to_string_lossy().into_owned();
    for (sample, report) in [
        ("s.csv", "r.json"),
        ("s.parquet", "r.md"),
        ("s.ndjson", "r.json"),
    ] {
        let sample = dir.join(sample);
        let report = dir.join(report);
        run_ok(&[
            "run",
            &rule,
            "-o",
            sample.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ]);
        let bytes = std::fs::read(&sample).unwrap();
        let md5 = strat_engine::report::md5_hex(&bytes);
        let text = std::fs::read_to_string(&report).unwrap();
        if report.extension().unwrap() == "json" {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["output"]["md5"], md5.as_str(), "{text}");
            assert_eq!(json["output"]["bytes"], bytes.len() as u64);
            assert_eq!(json["output"]["path"], sample.to_str().unwrap());
        } else {
            let line = format!(
                "- sample: {} (md5 `{md5}`, {} bytes)\n",
                sample.display(),
                bytes.len()
            );
            assert!(text.contains(&line), "{line}\n{text}");
        }
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("strat-tmp")), "{names:?}");
}

/// The report of a chained file describes every statement: the split's at the
/// top, the cohort it read under `upstream`, with its own seed, exclusions and
/// shortfall warning (which stderr shows too).
#[test]
fn a_chain_reports_every_statement() {
    let dir = tempdir("chain-report");
    let json = dir.join("r.json").to_string_lossy().into_owned();
    let md = dir.join("r.md").to_string_lossy().into_owned();
    let sample = dir.join("s.csv").to_string_lossy().into_owned();
    let o = strat(&[
        "run",
        "examples/cohort.strat",
        "-o",
        &sample,
        "--report",
        &json,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: in `cohort`: stratum `BR/premium/[-inf,90)`: `count 20`"),
        "{}",
        stderr(&o)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["statement"], "statement 2");
    assert_eq!(r["seed"], 7);
    let up = r["upstream"].as_array().unwrap();
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0]["statement"], "cohort");
    assert_eq!(up[0]["seed"], 20180601);
    assert_eq!(
        up[0]["selected"], r["population"],
        "the split splits the cohort"
    );
    assert!(up[0]["excluded_units"].as_u64().unwrap() > 0);
    assert_eq!(up[0]["warnings"].as_array().unwrap().len(), 1);
    // A split adds no weight of its own: its strata carry none.
    assert!(
        r["strata"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["weight"].is_null())
    );
    let o = strat(&[
        "run",
        "examples/cohort.strat",
        "-o",
        &sample,
        "--report",
        &md,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("## Emitted statement: statement 2"), "{text}");
    assert!(
        text.contains("## Earlier statement it reads: cohort"),
        "{text}"
    );
    assert!(text.contains("- seed: 20180601"), "{text}");
}

/// `-o 'DIR/{split}.csv'` writes one file per split part: each holds exactly
/// the rows of that part of the one-file sample, in the same order; the
/// report lists every file; a sample, or a split without `_split` in its
/// output, is refused before any data is read.
#[test]
fn one_file_per_split_part() {
    let dir = tempdir("split-files");
    let whole = dir.join("whole.csv").to_string_lossy().into_owned();
    let pattern = dir.join("{split}.csv").to_string_lossy().into_owned();
    let report = dir.join("r.json").to_string_lossy().into_owned();
    run_ok(&["run", "examples/train_val_test.strat", "-o", &whole]);
    run_ok(&[
        "run",
        "examples/train_val_test.strat",
        "-o",
        &pattern,
        "--report",
        &report,
    ]);
    let whole = std::fs::read_to_string(&whole).unwrap();
    let mut lines = whole.lines();
    let header = lines.next().unwrap();
    let split_at = header.split(',').position(|c| c == "_split").unwrap();
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let files = r["outputs"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{files:?}");
    let mut rows_in_parts = 0;
    for f in files {
        let part = f["split"].as_str().unwrap();
        let text = std::fs::read_to_string(f["path"].as_str().unwrap()).unwrap();
        let mut want = vec![header.to_string()];
        want.extend(
            whole
                .lines()
                .skip(1)
                .filter(|l| l.split(',').nth(split_at) == Some(part))
                .map(str::to_string),
        );
        rows_in_parts += want.len() - 1;
        assert_eq!(text.lines().collect::<Vec<_>>(), want, "{part}");
        assert_eq!(f["bytes"].as_u64().unwrap(), text.len() as u64);
    }
    assert_eq!(rows_in_parts, whole.lines().count() - 1);
    for (rules, words) in [
        (
            "sample members take 10 seed 1",
            "the emitted statement is a sample",
        ),
        (
            "split members into a 50%, b 50% seed 1 output member_id",
            "has no `_split` column",
        ),
    ] {
        let rule = dir.join("r.strat");
        std::fs::write(
            &rule,
            format!(
                "table members = \"{}\"\n{rules}\n",
                root().join("examples/data/members.csv").display()
            ),
        )
        .unwrap();
        let o = strat(&["run", rule.to_str().unwrap(), "-o", &pattern]);
        assert_eq!(o.status.code(), Some(1), "{rules}");
        assert!(stderr(&o).contains(words), "{rules}: {}", stderr(&o));
    }
}

/// `--report FILE.html`: one self-contained page whose embedded numbers are
/// the JSON report's — for an exact sample, an `about` sample and a split —
/// with its charts and a row for every stratum, and nothing from the network.
#[test]
fn html_report_embeds_the_json_report() {
    let dir = tempdir("html-report");
    for f in ["members.csv", "last_test_set.csv"] {
        std::fs::copy(root().join("examples/data").join(f), dir.join(f)).unwrap();
    }
    let about = "table members = \"members.csv\"\nsample members unit member_id \
                 stratify by country, plan take about 10% seed 3\n";
    let split = std::fs::read_to_string(root().join("examples/train_val_test.strat"))
        .unwrap()
        .replace("data/", "");
    for (name, text) in [
        ("cohort", COHORT),
        ("about", about),
        ("split", split.as_str()),
    ] {
        let rule = dir.join(format!("{name}.strat"));
        std::fs::write(&rule, text).unwrap();
        let rule = rule.to_string_lossy().into_owned();
        let out = dir
            .join(format!("{name}.csv"))
            .to_string_lossy()
            .into_owned();
        let json = dir
            .join(format!("{name}.json"))
            .to_string_lossy()
            .into_owned();
        let html = dir
            .join(format!("{name}.html"))
            .to_string_lossy()
            .into_owned();
        run_ok(&["run", &rule, "-o", &out, "--report", &json]);
        run_ok(&["run", &rule, "-o", &out, "--report", &html]);
        let want: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let page = std::fs::read_to_string(&html).unwrap();
        let got = strat_render::report_html::embedded_report(&page).expect("embedded JSON");
        assert_eq!(
            got, want,
            "{name}: the page's numbers are the JSON report's"
        );
        let strata = want["strata"].as_array().unwrap().len();
        let rows = page.matches("<tr>").count() + page.matches("<tr class=\"alert\">").count();
        assert_eq!(rows, strata, "{name}: a table row per stratum");
        assert!(page.matches("class=\"bar ").count() >= 8, "{name}: charts");
        for remote in ["http://", "https://", "//cdn", "@import", "url("] {
            assert!(!page.contains(remote), "{name}: {remote} in the page");
        }
    }
}
