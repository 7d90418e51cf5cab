//! Tables bind from every supported format, reading only the schema.

use datafusion::prelude::{CsvReadOptions, SessionContext};

use crate::cli::tempdir;
use crate::common::{root, stderr, strat};

const RULES: &str = "sample members where tenure_days >= 30 and not is_kids_profile\n\
  unit member_id stratify by country, plan, bucket(tenure_days, [90, 365]) as band\n\
  take 100 seed 1\n";

/// Writes members.csv as Parquet, NDJSON and Arrow IPC (and a folder of Parquet files).
async fn write_formats(dir: &std::path::Path) {
    let ctx = SessionContext::new();
    let csv = root().join("examples/data/members.csv");
    let df = ctx
        .read_csv(csv.to_str().unwrap(), CsvReadOptions::new())
        .await
        .unwrap();
    let opts = || datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true);
    let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
    df.clone()
        .write_parquet(&p("members.parquet"), opts(), None)
        .await
        .unwrap();
    df.clone()
        .write_json(&p("members.ndjson"), opts(), None)
        .await
        .unwrap();
    std::fs::create_dir_all(dir.join("folder")).unwrap();
    df.clone()
        .write_parquet(&p("folder/part-0.parquet"), opts(), None)
        .await
        .unwrap();
    df.clone()
        .write_parquet(&p("folder/part-1.parquet"), opts(), None)
        .await
        .unwrap();
    let batches = df.collect().await.unwrap();
    let file = std::fs::File::create(dir.join("members.arrow")).unwrap();
    let mut w =
        datafusion::arrow::ipc::writer::FileWriter::try_new(file, &batches[0].schema()).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn every_format_binds() {
    let dir = tempdir("formats");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(write_formats(&dir));
    let rule = dir.join("r.strat");
    std::fs::write(&rule, RULES).unwrap();
    let rule = rule.to_string_lossy().into_owned();
    for file in [
        "members.parquet",
        "members.ndjson",
        "members.arrow",
        "folder",
    ] {
        let binding = format!("members={}", dir.join(file).display());
        let out = strat(&["check", &rule, "--table", &binding, "--color", "never"]);
        assert_eq!(out.status.code(), Some(0), "{file}:\n{}", stderr(&out));
    }
    // The checker sees real types: a date column compared with a string is an error.
    // (NDJSON has no date type: there `signup_date` is a string, as JSON stores it.)
    std::fs::write(
        dir.join("bad.strat"),
        "sample members where signup_date = \"2018\" seed 1\n",
    )
    .unwrap();
    for file in ["members.parquet", "members.arrow", "folder"] {
        let binding = format!("members={}", dir.join(file).display());
        let out = strat(&[
            "check",
            &dir.join("bad.strat").to_string_lossy(),
            "--table",
            &binding,
            "--color",
            "never",
        ]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        assert!(stderr(&out).contains("E0106"), "{file}: {}", stderr(&out));
    }
}

#[test]
fn unreadable_tables_are_named() {
    let dir = tempdir("unreadable");
    std::fs::write(dir.join("empty.csv"), "").unwrap();
    std::fs::write(dir.join("broken.parquet"), b"PAR1 this is not parquet").unwrap();
    std::fs::write(dir.join("data.txt"), "a,b\n1,2\n").unwrap();
    std::fs::create_dir_all(dir.join("mixed")).unwrap();
    std::fs::write(dir.join("mixed/a.csv"), "a\n1\n").unwrap();
    std::fs::write(dir.join("mixed/b.json"), "{\"a\":1}\n").unwrap();
    std::fs::write(dir.join("r.strat"), "sample t seed 1\n").unwrap();
    let rule = dir.join("r.strat").to_string_lossy().into_owned();
    let mut messages = String::new();
    for (file, want) in [
        ("empty.csv", "is empty (0 bytes)"),
        ("broken.parquet", "cannot read the schema of"),
        ("data.txt", "cannot tell the format"),
        ("mixed", "mixes formats"),
        ("missing.csv", "no such file or folder"),
    ] {
        let binding = format!("t={}", dir.join(file).display());
        let out = strat(&["check", &rule, "--table", &binding, "--color", "never"]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let err = stderr(&out);
        assert!(
            err.contains("E0130") && err.contains(want) && err.contains(file),
            "{file}: {err}"
        );
        messages.push_str(&format!("== {file}\n{}\n", redact(&err, &dir)));
    }
    insta::assert_snapshot!("unreadable_tables_are_named", messages);
}

/// The temporary folder as `[DIR]` (object_store names it without the leading `/`).
fn redact(text: &str, dir: &std::path::Path) -> String {
    let dir = dir.display().to_string();
    text.replace(&dir, "[DIR]")
        .replace(dir.trim_start_matches('/'), "[DIR]")
}

#[test]
fn hostile_data_gets_clear_errors() {
    let dir = tempdir("hostile-data");
    let w = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    w("ragged.csv", "id,country\n1,US\n2,BR\n3\n4,US,extra\n");
    w(
        "broken.ndjson",
        "{\"id\":1,\"country\":\"US\"}\n{\"id\":2,\"country\":\n",
    );
    std::fs::create_dir_all(dir.join("mixed")).unwrap();
    w("mixed/a.csv", "id,country\n1,US\n");
    w("mixed/b.csv", "id,country,plan\n2,BR,basic\n");
    w("nullunit.csv", "id,country\n,US\n,BR\n");
    let late: Vec<String> = (0..3000).map(|i| format!("{i},US")).collect();
    w(
        "late.csv",
        &format!("id,country\n{}\noops,BR\n", late.join("\n")),
    );
    w(
        "r.strat",
        "sample t unit id stratify by country take 1 seed 1\n",
    );
    let rule = dir.join("r.strat").to_string_lossy().into_owned();
    let out_path = dir.join("out.csv");
    let mut messages = String::new();
    for (file, want) in [
        ("ragged.csv", "ragged.csv"),
        ("broken.ndjson", "broken.ndjson"),
        ("mixed", "have different columns: "),
        ("nullunit.csv", "0 eligible"),
        // A column that changes type after the rows inference reads: the run names the file.
        ("late.csv", "late.csv"),
    ] {
        let binding = format!("t={}", dir.join(file).display());
        let out = strat(&[
            "run",
            &rule,
            "--table",
            &binding,
            "-o",
            &out_path.to_string_lossy(),
            "--color",
            "never",
        ]);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(want),
            "{file}: expected {want:?} in\n{}",
            stderr(&out)
        );
        assert!(!out_path.exists(), "{file}: no output after a failed run");
        let leftovers: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("strat-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{file}: {leftovers:?}");
        messages.push_str(&format!("== {file}\n{}\n", redact(&stderr(&out), &dir)));
    }
    insta::assert_snapshot!("hostile_data_gets_clear_errors", messages);
}
