//! `strat sql` conformance: for every case under tests/cases/sql and every
//! shipped example (examples/*.strat), the query
//! exported for each engine, run on that engine, gives exactly the rows of
//! `strat run` (compared as multisets of rows; numbers compared as numbers,
//! `_weight` as an exact f64).
//!
//! Engines: DuckDB (Python package), PostgreSQL (a throw-away cluster) and
//! Spark (PySpark in local mode) via tests/engines/run_sql.py, and
//! DataFusion's own SQL planner in-process. A
//! missing engine FAILS the test: run `bash tests/engines/setup.sh` first.
//!
//! A case is a rule file whose `table` declarations point at CSV files; its
//! header comment may hold `# args: …` (flags for both `strat run` and
//! `strat sql`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{CsvReadOptions, SessionContext};

use crate::common::{cases, examples, header, root, stderr, stdout, strat};

/// A case's tables: name → CSV path (absolute), from its `table` declarations.
fn tables(file: &str) -> BTreeMap<String, PathBuf> {
    let path = root().join(file);
    let text = std::fs::read_to_string(&path).expect("case");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("table ") else {
            continue;
        };
        let (name, value) = rest.split_once('=').expect("table NAME = \"PATH\"");
        let value = value.split('#').next().unwrap().trim().trim_matches('"');
        let csv = path
            .parent()
            .unwrap()
            .join(value)
            .canonicalize()
            .expect("table file");
        out.insert(name.trim().to_string(), csv);
    }
    out
}

/// A minimal RFC 4180 reader (quoted fields, doubled quotes, newlines inside quotes).
pub(crate) fn read_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            // A CRLF line end; a lone `\r` is data (Python's csv module leaves it unquoted).
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// One cell as the comparison sees it: integers canonical, other numbers as
/// the f64 they denote (`0` and `0.0` are one number), timestamps with a `T`.
fn normalise(cell: &str) -> String {
    let is_int = {
        let digits = cell.strip_prefix('-').unwrap_or(cell);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    if is_int && let Ok(i) = cell.parse::<i128>() {
        return format!("{i}");
    }
    let numeric = cell
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'-' || b == b'.')
        && cell
            .bytes()
            .all(|b| b.is_ascii_digit() || b"-+.eE".contains(&b));
    if numeric && let Ok(f) = cell.parse::<f64>() {
        return if f.fract() == 0.0 && f.abs() < 1e15 {
            format!("{}", f as i128)
        } else {
            format!("{f:?}")
        };
    }
    let b = cell.as_bytes();
    if b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && b[13] == b':' {
        return cell.replacen(' ', "T", 1);
    }
    cell.to_string()
}

/// Header and rows (sorted, normalised).
pub(crate) fn table_of(rows: Vec<Vec<String>>) -> (Vec<String>, Vec<Vec<String>>) {
    let mut it = rows.into_iter();
    let head = it.next().unwrap_or_default();
    let mut body: Vec<Vec<String>> = it
        .map(|r| r.iter().map(|c| normalise(c)).collect())
        .collect();
    body.sort();
    (head, body)
}

pub(crate) fn compare(
    case: &str,
    engine: &str,
    want: &(Vec<String>, Vec<Vec<String>>),
    got: &(Vec<String>, Vec<Vec<String>>),
) {
    assert_eq!(want.0, got.0, "{case} on {engine}: the columns differ");
    if want.1 != got.1 {
        let missing: Vec<_> = want
            .1
            .iter()
            .filter(|r| !got.1.contains(r))
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .1
            .iter()
            .filter(|r| !want.1.contains(r))
            .take(5)
            .collect();
        panic!(
            "{case} on {engine}: {} rows from strat run, {} from the engine\nonly in strat run: {missing:?}\nonly on {engine}: {extra:?}",
            want.1.len(),
            got.1.len()
        );
    }
}

struct Case {
    file: String,
    args: Vec<String>,
    tables: BTreeMap<String, PathBuf>,
    native: (Vec<String>, Vec<Vec<String>>),
}

fn export(case: &Case, dialect: &str, out: &Path) {
    let mut args = vec![
        "sql",
        case.file.as_str(),
        "--dialect",
        dialect,
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(case.args.iter().map(String::as_str));
    let o = strat(&args);
    assert!(
        o.status.success(),
        "strat sql {} --dialect {dialect}: {}",
        case.file,
        stderr(&o)
    );
}

fn prepare(dir: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    // Every SQL case, and every shipped example.
    for file in cases("sql").into_iter().chain(examples()) {
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        let args = header(&text).args;
        let native = dir.join(format!("{}.native.csv", stem(&file)));
        let mut run = vec!["run", file.as_str(), "-o", native.to_str().unwrap()];
        run.extend(args.iter().map(String::as_str));
        let o = strat(&run);
        assert!(o.status.success(), "strat run {file}: {}", stderr(&o));
        let native = table_of(read_csv(&std::fs::read_to_string(&native).unwrap()));
        assert!(
            !native.1.is_empty(),
            "{file}: the native sample is empty; make the case select rows"
        );
        out.push(Case {
            tables: tables(&file),
            file,
            args,
            native,
        });
    }
    assert!(out.len() >= 10, "the SQL cases are missing");
    out
}

/// A table's CSV file, or its folder of CSV files (one header each) as one file.
fn copy_table(path: &Path, dest: &Path) {
    if !path.is_dir() {
        std::fs::copy(path, dest).unwrap();
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    let mut out = String::new();
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f).unwrap();
        let body = if i == 0 {
            text.as_str()
        } else {
            text.split_once('\n').map_or("", |(_, rest)| rest)
        };
        out.push_str(body);
    }
    std::fs::write(dest, out).unwrap();
}

fn stem(file: &str) -> String {
    Path::new(file)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strat-sql-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs every case on an engine through tests/engines/run_sql.py, in one
/// engine start (Spark takes seconds to start); cases that read the same
/// tables share one loaded copy of them.
fn python_engine(engine: &str, dialect: &str) {
    let dir = temp_dir(engine);
    let cases = prepare(&dir);
    let mut data_dirs: BTreeMap<Vec<(String, PathBuf)>, PathBuf> = BTreeMap::new();
    let mut args: Vec<String> = vec![
        root()
            .join("tests/engines/run_sql.py")
            .display()
            .to_string(),
        engine.into(),
    ];
    for c in &cases {
        let key: Vec<(String, PathBuf)> = c.tables.clone().into_iter().collect();
        let next = data_dirs.len();
        let data = data_dirs
            .entry(key)
            .or_insert_with(|| {
                let data = dir.join(format!("data{next}"));
                std::fs::create_dir_all(&data).unwrap();
                for (name, path) in &c.tables {
                    copy_table(path, &data.join(format!("{name}.csv")));
                }
                data
            })
            .clone();
        let sql = dir.join(format!("{}.{dialect}.sql", stem(&c.file)));
        export(c, dialect, &sql);
        args.push(sql.display().to_string());
        args.push(data.display().to_string());
        args.push(
            dir.join(format!("{}.{engine}.csv", stem(&c.file)))
                .display()
                .to_string(),
        );
    }
    let o = Command::new(crate::common::engines_python())
        .args(&args)
        .output()
        .expect("the engines' python");
    match o.status.code() {
        Some(0) => {}
        Some(2) => panic!(
            "{engine} is not installed: run `bash tests/engines/setup.sh` before the tests\n{}",
            stderr(&o)
        ),
        _ => panic!("{engine} failed: {}{}", stdout(&o), stderr(&o)),
    }
    for c in &cases {
        let got =
            std::fs::read_to_string(dir.join(format!("{}.{engine}.csv", stem(&c.file)))).unwrap();
        compare(&c.file, engine, &c.native, &table_of(read_csv(&got)));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sql_on_duckdb_gives_the_native_sample() {
    python_engine("duckdb", "duckdb");
}

#[test]
fn sql_on_postgres_gives_the_native_sample() {
    python_engine("postgres", "postgres");
}

#[test]
fn sql_on_spark_gives_the_native_sample() {
    python_engine("spark", "spark");
}

#[test]
fn sql_on_datafusion_gives_the_native_sample() {
    // DataFusion plans the nested CTEs of chained statements recursively: in
    // a debug build that needs more than a test thread's 2 MiB of stack.
    let run = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(datafusion_conformance)
        .unwrap();
    if let Err(panic) = run.join() {
        std::panic::resume_unwind(panic);
    }
}

fn datafusion_conformance() {
    let dir = temp_dir("datafusion");
    let cases = prepare(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(64 << 20)
        .enable_all()
        .build()
        .unwrap();
    for c in &cases {
        let sql_path = dir.join(format!("{}.datafusion.sql", stem(&c.file)));
        export(c, "datafusion", &sql_path);
        let sql = std::fs::read_to_string(&sql_path).unwrap();
        let got = rt.block_on(async {
            let ctx = SessionContext::new();
            for (name, path) in &c.tables {
                // A folder's URL ends with `/`.
                let slash = if path.is_dir() { "/" } else { "" };
                ctx.register_csv(
                    format!("\"{name}\""),
                    &format!("{}{slash}", path.display()),
                    CsvReadOptions::new(),
                )
                .await
                .unwrap();
            }
            let df = ctx
                .sql(&sql)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", c.file));
            let head: Vec<String> = df
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let batches = df
                .collect()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", c.file));
            let opts = FormatOptions::default().with_null("");
            let mut rows = vec![head];
            for b in &batches {
                let f: Vec<ArrayFormatter> = b
                    .columns()
                    .iter()
                    .map(|a| ArrayFormatter::try_new(a.as_ref(), &opts).unwrap())
                    .collect();
                for r in 0..b.num_rows() {
                    rows.push(f.iter().map(|x| x.value(r).to_string()).collect());
                }
            }
            rows
        });
        compare(&c.file, "datafusion", &c.native, &table_of(got));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sql_reports_unsupported_constructs() {
    let dir = temp_dir("unsupported");
    let rule = dir.join("rules.strat");
    let members = root().join("examples/data/members.csv");
    std::fs::write(
        &rule,
        format!(
            "table members = \"{}\"\nsample members unit member_id stratify by country take about 5% allocate neyman(tenure_days) seed 1\n",
            members.display()
        ),
    )
    .unwrap();
    let o = strat(&[
        "sql",
        rule.to_str().unwrap(),
        "--dialect",
        "spark",
        "--color",
        "never",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("E0140") && err.contains("neyman") && err.contains("spark"),
        "{err}"
    );
    assert!(stdout(&o).is_empty());

    std::fs::write(
        &rule,
        format!(
            "table members = \"{}\"\nsample members take 5 seed 1\n",
            members.display()
        ),
    )
    .unwrap();
    let o = strat(&[
        "sql",
        rule.to_str().unwrap(),
        "--dialect",
        "duckdb",
        "--color",
        "never",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("E0141"), "{}", stderr(&o));

    // --name maps a table to a qualified name; the header names the file and its md5.
    std::fs::write(
        &rule,
        format!(
            "table members = \"{}\"\nsample members unit member_id take 5 seed 1\n",
            members.display()
        ),
    )
    .unwrap();
    let o = strat(&[
        "sql",
        rule.to_str().unwrap(),
        "--dialect",
        "spark",
        "--name",
        "members=prod.members",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sql = stdout(&o);
    assert!(sql.contains("FROM `prod`.`members`"), "{sql}");
    assert!(
        sql.starts_with("-- Generated by strat ") && sql.contains("rules.strat (md5 "),
        "{sql}"
    );
    let o = strat(&[
        "sql",
        rule.to_str().unwrap(),
        "--dialect",
        "spark",
        "--name",
        "membres=prod.members",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("E0142"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
