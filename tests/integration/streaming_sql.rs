//! `strat sql --thresholds` (issue 16, streaming SQL): the frozen query —
//! per-row expressions only, the thresholds `strat freeze` wrote inlined —
//! run on Spark Structured Streaming over the records as NDJSON files, one
//! micro-batch a file (tests/engines/stream_sql.py), and in batch on DuckDB,
//! PostgreSQL (tests/engines/run_sql.py) and DataFusion over the table's CSV,
//! gives the rows `strat run` gives: an exact sample, a Bernoulli sample
//! that needs counts (neyman) and an exact split, compared as sets of rows
//! (numbers as numbers, `_weight` as an exact f64). A missing engine fails
//! the test: run `bash tests/engines/setup.sh` first.

use std::path::{Path, PathBuf};
use std::process::Command;

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{CsvReadOptions, SessionContext};

use crate::common::{engines_python, root, stderr, stdout, strat};
use crate::sql::{compare, read_csv, table_of, temp_dir};

const RULES: &str = r#"
table members = "MEMBERS"

exact = sample members
  where not is_kids_profile
  unit member_id
  stratify by country, plan
  take 300
  seed 11
  output member_id, country, plan, signup_date, watch_hours_28d, is_kids_profile, _weight, _stratum

ney = sample members
  unit member_id
  stratify by country
  take about 4%
  allocate neyman(watch_hours_28d)
  seed 13
  output member_id, country, referral_source, _weight, _stratum

parts = split members
  unit member_id
  stratify by country, bucket(tenure_days, [90, 365]) as band
  into train 70%, validation 20%, test 10%
  seed 16
"#;

/// The statements decided from frozen thresholds.
const STATEMENTS: [&str; 3] = ["exact", "ney", "parts"];

/// The members table as strat reads the CSV (types inferred), in Spark's DDL.
const SCHEMA: &str = "member_id BIGINT, country STRING, plan STRING, device STRING, \
    tenure_days BIGINT, signup_date DATE, watch_hours_28d DOUBLE, is_kids_profile BOOLEAN, \
    referral_source STRING";

type Rows = (Vec<String>, Vec<Vec<String>>);

struct Setup {
    dir: PathBuf,
    rules: PathBuf,
    /// The table's CSV alone in a folder (run_sql.py loads a folder).
    csv_dir: PathBuf,
    /// Per statement: its name, `strat run`'s rows and its decisions file.
    statements: Vec<(&'static str, Rows, PathBuf)>,
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(o: &std::process::Output, what: &str) {
    assert!(o.status.success(), "{what}: {}{}", stdout(o), stderr(o));
}

/// The rules over examples/data/members.csv, each statement run and frozen.
fn setup(name: &str) -> Setup {
    let dir = temp_dir(&format!("streaming-sql-{name}"));
    let members = root().join("examples/data/members.csv");
    let csv_dir = dir.join("tables");
    std::fs::create_dir_all(&csv_dir).unwrap();
    std::fs::copy(&members, csv_dir.join("members.csv")).unwrap();
    let rules = dir.join("rules.strat");
    std::fs::write(&rules, RULES.replace("MEMBERS", path(&members))).unwrap();
    let mut statements = Vec::new();
    for emit in STATEMENTS {
        let out = dir.join(format!("{emit}.csv"));
        let o = strat(&["run", "-q", path(&rules), "--emit", emit, "-o", path(&out)]);
        ok(&o, &format!("strat run {emit}"));
        let expected = table_of(read_csv(&std::fs::read_to_string(&out).unwrap()));
        assert!(
            !expected.1.is_empty(),
            "{emit}: an empty sample proves nothing"
        );
        let decisions = dir.join(format!("{emit}.json"));
        let o = strat(&[
            "freeze",
            path(&rules),
            "--emit",
            emit,
            "-o",
            path(&decisions),
        ]);
        ok(&o, &format!("strat freeze {emit}"));
        statements.push((emit, expected, decisions));
    }
    Setup {
        dir,
        rules,
        csv_dir,
        statements,
    }
}

/// `strat sql --thresholds` of statement `emit` for `dialect`, in a file.
fn export(s: &Setup, emit: &str, decisions: &Path, dialect: &str) -> PathBuf {
    let sql = s.dir.join(format!("{emit}.{dialect}.sql"));
    let o = strat(&[
        "sql",
        path(&s.rules),
        "--emit",
        emit,
        "--dialect",
        dialect,
        "--thresholds",
        path(decisions),
        "-o",
        path(&sql),
    ]);
    ok(
        &o,
        &format!("strat sql --thresholds {emit} --dialect {dialect}"),
    );
    let text = std::fs::read_to_string(&sql).unwrap();
    // Nothing a stream cannot run: no window, aggregate, join or order.
    let code: String = (text.lines())
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .to_ascii_uppercase();
    for word in [" OVER", "GROUP BY", "JOIN", "ORDER BY", "COUNT("] {
        assert!(
            !code.contains(word),
            "{emit} ({dialect}): `{word}` in\n{text}"
        );
    }
    sql
}

/// The engines' python running `script` with `args`; its stdout.
fn python(script: &str, args: &[String]) -> String {
    let o = Command::new(engines_python())
        .arg(root().join("tests/engines").join(script))
        .args(args)
        .output()
        .expect("the engines' python");
    match o.status.code() {
        Some(0) => stdout(&o),
        Some(2) => panic!(
            "{script}: an engine is not installed: run `bash tests/engines/setup.sh` before the tests\n{}",
            stderr(&o)
        ),
        _ => panic!("{script} failed: {}{}", stdout(&o), stderr(&o)),
    }
}

fn engine_rows(file: &Path) -> Rows {
    table_of(read_csv(&std::fs::read_to_string(file).unwrap()))
}

#[test]
fn frozen_query_on_spark_structured_streaming_gives_the_batch_rows() {
    let s = setup("spark");
    // Every member as NDJSON (as `strat run` writes them), over three files.
    let all = s.dir.join("all.strat");
    std::fs::write(
        &all,
        format!(
            "table members = \"{}\"\nsample members unit member_id take all seed 1\n",
            root().join("examples/data/members.csv").display()
        ),
    )
    .unwrap();
    let ndjson = s.dir.join("all.ndjson");
    ok(
        &strat(&["run", "-q", path(&all), "-o", path(&ndjson)]),
        "strat run (NDJSON)",
    );
    let text = std::fs::read_to_string(&ndjson).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6000);
    let records = s.dir.join("records");
    std::fs::create_dir_all(&records).unwrap();
    for (i, chunk) in lines.chunks(lines.len().div_ceil(3)).enumerate() {
        std::fs::write(
            records.join(format!("part-{i}.json")),
            chunk.join("\n") + "\n",
        )
        .unwrap();
    }
    let work = s.dir.join("spark");
    std::fs::create_dir_all(&work).unwrap();
    let mut args = vec![
        "members".to_string(),
        SCHEMA.to_string(),
        records.display().to_string(),
        work.display().to_string(),
    ];
    for (emit, _, decisions) in &s.statements {
        let sql = export(&s, emit, decisions, "spark");
        args.push(sql.display().to_string());
        args.push(
            s.dir
                .join(format!("{emit}.spark.csv"))
                .display()
                .to_string(),
        );
    }
    let started = std::time::Instant::now();
    let said = python("stream_sql.py", &args);
    eprintln!(
        "Spark Structured Streaming: {:.1?}\n{said}",
        started.elapsed()
    );
    for (emit, expected, _) in &s.statements {
        let line = said
            .lines()
            .find(|l| l.contains(&format!("{emit}.spark.sql:")))
            .unwrap_or_else(|| panic!("{emit}: no progress line in {said}"));
        assert!(line.contains(": 3 micro-batches"), "{emit}: {line}");
        let got = engine_rows(&s.dir.join(format!("{emit}.spark.csv")));
        compare(emit, "Spark Structured Streaming", expected, &got);
    }
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn frozen_query_on_duckdb_postgres_and_datafusion_gives_the_batch_rows() {
    let s = setup("batch");
    for engine in ["duckdb", "postgres"] {
        let mut args = vec![engine.to_string()];
        for (emit, _, decisions) in &s.statements {
            args.push(export(&s, emit, decisions, engine).display().to_string());
            args.push(s.csv_dir.display().to_string());
            args.push(
                s.dir
                    .join(format!("{emit}.{engine}.csv"))
                    .display()
                    .to_string(),
            );
        }
        python("run_sql.py", &args);
        for (emit, expected, _) in &s.statements {
            let got = engine_rows(&s.dir.join(format!("{emit}.{engine}.csv")));
            compare(emit, engine, expected, &got);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (emit, expected, decisions) in &s.statements {
        let sql = std::fs::read_to_string(export(&s, emit, decisions, "datafusion")).unwrap();
        let got = rt.block_on(async {
            let ctx = SessionContext::new();
            let csv = s.csv_dir.join("members.csv");
            ctx.register_csv("members", path(&csv), CsvReadOptions::new())
                .await
                .unwrap();
            let df = ctx
                .sql(&sql)
                .await
                .unwrap_or_else(|e| panic!("{emit}: {e}\n{sql}"));
            let head: Vec<String> = (df.schema().fields().iter())
                .map(|f| f.name().clone())
                .collect();
            let batches = df.collect().await.unwrap_or_else(|e| panic!("{emit}: {e}"));
            let opts = FormatOptions::default().with_null("");
            let mut rows = vec![head];
            for b in &batches {
                let f: Vec<ArrayFormatter> = (b.columns().iter())
                    .map(|a| ArrayFormatter::try_new(a.as_ref(), &opts).unwrap())
                    .collect();
                for r in 0..b.num_rows() {
                    rows.push(f.iter().map(|x| x.value(r).to_string()).collect());
                }
            }
            rows
        });
        compare(emit, "datafusion", expected, &table_of(got));
    }
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn frozen_query_refuses_statements_a_record_cannot_decide_and_other_thresholds() {
    let dir = temp_dir("streaming-sql-refused");
    let members = root().join("examples/data/members.csv");
    let holdout = root().join("examples/data/last_test_set.csv");
    let rules = dir.join("rules.strat");
    let text = format!(
        "table members = \"{}\"\ntable holdout = \"{}\"\n\
         exact = sample members unit member_id stratify by plan take 30 seed 1\n\
         other = sample members unit member_id stratify by plan take 30 seed 2\n\
         kept = sample members unit member_id exclude units in holdout take 30 seed 3\n\
         agg = sample members unit member_id stratify by max(tenure_days) > 365 as old take 30 seed 4\n\
         again = sample exact unit member_id take 3 seed 5\n",
        members.display(),
        holdout.display()
    );
    std::fs::write(&rules, &text).unwrap();
    let decisions = dir.join("exact.json");
    let o = strat(&[
        "freeze",
        path(&rules),
        "--emit",
        "exact",
        "-o",
        path(&decisions),
    ]);
    ok(&o, "strat freeze exact");
    let sql = |emit: &str| {
        strat(&[
            "sql",
            path(&rules),
            "--emit",
            emit,
            "--dialect",
            "spark",
            "--thresholds",
            path(&decisions),
        ])
    };
    // Statements that need more than one record, whatever the thresholds.
    for (emit, words) in [
        ("kept", "`exclude units in` read another table"),
        ("agg", "unit aggregates"),
        ("again", "another statement's output"),
    ] {
        let o = sql(emit);
        assert!(!o.status.success() && stdout(&o).is_empty(), "{emit}");
        let err = stderr(&o);
        assert!(
            err.contains("E0144") && err.contains(words),
            "{emit}: {err}"
        );
        assert!(
            err.contains("cannot be decided record by record"),
            "{emit}: {err}"
        );
    }
    // Thresholds of another statement, of other rules, or not thresholds at all.
    let o = sql("other");
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("E0145"), "{err}");
    assert!(
        err.contains("the thresholds do not fit the rules: they decide `exact`, not `other`"),
        "{err}"
    );
    assert!(err.contains("freeze them again"), "{err}");
    std::fs::write(&rules, text.replace("take 30 seed 1", "take 31 seed 1")).unwrap();
    let err = stderr(&sql("exact"));
    assert!(
        err.contains("E0145") && err.contains("another version of the rules"),
        "{err}"
    );
    std::fs::write(&rules, &text).unwrap();
    assert!(sql("exact").status.success());
    std::fs::write(&decisions, "{\"strat_decisions\": 1}").unwrap();
    let o = sql("exact");
    assert!(
        !o.status.success() && stderr(&o).contains("E0145"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("no `strata`"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
