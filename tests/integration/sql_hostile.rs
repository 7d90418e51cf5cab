//! SQL export safety (issue 7): table names, column names, `--name` qualified
//! names and string values holding single and double quotes, backticks,
//! backslashes, semicolons, comment markers (`--`, `/*`), newlines, carriage
//! returns, tabs and
//! non-ASCII text go through `strat sql` for every dialect, and the query runs
//! on the real engine (DuckDB, PostgreSQL, Spark via tests/engines/run_sql.py;
//! DataFusion in-process). It must select exactly the rows of `strat run`: a
//! name or value that escaped its quoting would fail the query or change the
//! rows (the values include `' OR '1'='1` and `'; DROP TABLE x; --`).
//!
//! The hostile values sit where the query handles them: unit keys (hashed for
//! the draw, compared with `exclude units in`), stratum values (hashed for the
//! stratum start, escaped into `_stratum`, compared in rules), strings compared
//! in `where` (`!=`, `like` with a backslash in the pattern), split names
//! (`_split` values) and output aliases.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::TableReference;
use datafusion::prelude::{CsvReadOptions, SessionContext};

use crate::common::{root, stderr, stdout, strat};
use crate::sql::{compare, read_csv, table_of, temp_dir};

/// Table names (in the rule file, backticked).
const T1: &str = "we\"ird 'tab`le; -- /* é \\ ✓ */";
const T2: &str = "ex'cl\"ude;`--\\ 😀";
/// Column names.
const UNIT: &str = "u'n\"i`t; --/*id*/";
const GRP: &str = "g\\r'p\"` é";
const NUM: &str = "n;um -- x";
/// A column no rule names (a backticked name cannot hold a newline); it is
/// in the default output.
const NOTE: &str = "no\nte\t'\"`";
/// `--name` targets: each part quoted on its own.
const SCHEMA: &str = "sc\"h'em;a -- /*";
const Q1: &str = "t\"ab'le`\\ ✓";
const Q2: &str = "ex\"cl'2 */";
/// Stratum values.
const GROUPS: [&str; 8] = [
    "O'Brien",
    "back\\slash",
    "new\nline",
    "semi;--colon",
    "quo\"te/*c*/",
    "uni✓é😀∅",
    "tab\there",
    "bq`x\\",
];
/// Unit keys besides plain ones.
const KEYS: [&str; 20] = [
    "cr\rx",
    "crlf\r\ny",
    "a'b",
    "c\"d",
    "e`f",
    "g\\h",
    "i;j",
    "k--l",
    "m/*n*/o",
    "p\nq",
    "é✓😀",
    "' OR '1'='1",
    "'; DROP TABLE x; --",
    "x\\",
    "\\'",
    "tab\tz",
    "zz\\abc",
    "zz%x",
    "\\n",
    "*/ SELECT 1; /*",
];
/// Units of `T2`: excluded.
const EXCLUDED: [&str; 3] = ["c\"d", "'; DROP TABLE x; --", "u3"];

/// A backticked name of the rule language (a backtick doubled).
fn bq(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal of the rule language.
fn lit(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One CSV field (RFC 4180).
fn field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

fn csv(rows: &[Vec<String>]) -> String {
    rows.iter()
        .map(|r| r.iter().map(|f| field(f)).collect::<Vec<_>>().join(",") + "\n")
        .collect()
}

/// A name as a file or folder name for run_sql.py (which percent-decodes it).
fn file_name(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

fn write_data(dir: &Path) -> (PathBuf, PathBuf) {
    let mut rows = vec![vec![UNIT.to_string(), GRP.into(), NUM.into(), NOTE.into()]];
    let keys: Vec<String> = KEYS
        .iter()
        .map(|k| k.to_string())
        .chain((0..30).map(|i| format!("u{i}")))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let num = if k == "u7" { -1 } else { i as i64 };
        let note = ["'); DROP TABLE x; --", "a\nb", "/* c */", "d\\", "e\"f`g"][i % 5];
        rows.push(vec![
            k.clone(),
            GROUPS[i % GROUPS.len()].into(),
            num.to_string(),
            note.into(),
        ]);
        if i % 6 == 0 {
            // A unit with two rows (in the same stratum).
            rows.push(vec![
                k.clone(),
                GROUPS[i % GROUPS.len()].into(),
                (num + 1000).to_string(),
                "second row".into(),
            ]);
        }
    }
    let t1 = dir.join("t1.csv");
    std::fs::write(&t1, csv(&rows)).unwrap();
    let mut excl = vec![vec![UNIT.to_string(), "why".into()]];
    excl.extend(
        EXCLUDED
            .iter()
            .map(|k| vec![k.to_string(), "excluded; -- 'really'".into()]),
    );
    let t2 = dir.join("t2.csv");
    std::fs::write(&t2, csv(&excl)).unwrap();
    (t1, t2)
}

/// The rule files: a sample with the default output, a sample with a rule
/// block and generated columns, and a split with hostile split names.
fn rule_files(dir: &Path) -> Vec<PathBuf> {
    let head = format!(
        "table {} = \"t1.csv\"\ntable {} = \"t2.csv\"\n",
        bq(T1),
        bq(T2)
    );
    let filter = format!(
        "where {num} >= 0 and {unit} != {inj} and not ({unit} like {pat})\n  unit {unit}\n  exclude units in {t2}",
        num = bq(NUM),
        unit = bq(UNIT),
        inj = lit("' OR '1'='1"),
        pat = lit("zz\\%"),
        t2 = bq(T2),
    );
    let alias = "s\"t'r`a;t -- um /* ∅ */";
    let texts = [
        (
            "default_output",
            format!(
                "sample {}\n  {filter}\n  stratify by {}\n  take 15\n  seed 7\n",
                bq(T1),
                bq(GRP)
            ),
        ),
        (
            "rules",
            format!(
                "sample {t1}\n  {filter}\n  stratify by {grp} as {alias}\n  take 20\n  allocate {{\n    \
                 {grp} = {g0} => all\n    {grp} = {g1} => count 2\n    {grp} in ({g2}, {g3}) => rate 50%\n    \
                 {grp} = {g4} => none\n    else => proportional\n  }}\n  seed 11\n  \
                 output {unit}, {alias}, {num}, _weight, _stratum\n",
                t1 = bq(T1),
                grp = bq(GRP),
                alias = bq(alias),
                unit = bq(UNIT),
                num = bq(NUM),
                g0 = lit(GROUPS[0]),
                g1 = lit(GROUPS[1]),
                g2 = lit(GROUPS[2]),
                g3 = lit(GROUPS[3]),
                g4 = lit(GROUPS[7]),
            ),
        ),
        (
            "split",
            format!(
                "{name} = split {t1}\n  {filter}\n  stratify by {grp}\n  into {a} 60%, {b} 40%\n  seed 13\n  \
                 output {unit}, {grp}, _split, _weight, _stratum\n",
                // `\r` ends a `--` comment for PostgreSQL, DuckDB and Spark: the
                // statement's name is in the query's header comment.
                name = bq("sp'l\"it;\r) SELECT 1; --\u{2028}x"),
                t1 = bq(T1),
                grp = bq(GRP),
                unit = bq(UNIT),
                a = bq("tr'ain\"; --"),
                b = bq("te`st\\ /*"),
            ),
        ),
    ];
    texts
        .iter()
        .map(|(name, body)| {
            let p = dir.join(format!("{name}.strat"));
            std::fs::write(&p, format!("{head}{body}")).unwrap();
            p
        })
        .collect()
}

/// `strat run` of a rule file: its rows (header first).
fn native(rule: &Path, dir: &Path) -> Vec<Vec<String>> {
    let out = dir.join(format!(
        "{}.native.csv",
        rule.file_stem().unwrap().to_string_lossy()
    ));
    let o = strat(&["run", rule.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "strat run {}: {}",
        rule.display(),
        stderr(&o)
    );
    read_csv(&std::fs::read_to_string(&out).unwrap())
}

/// `strat sql` of a rule file for a dialect, with `--name` flags.
fn export(rule: &Path, dialect: &str, names: &[(&str, String)], out: &Path) -> String {
    let mut args = vec![
        "sql".to_string(),
        rule.display().to_string(),
        "--dialect".into(),
        dialect.into(),
    ];
    for (t, q) in names {
        args.push("--name".into());
        args.push(format!("{t}={q}"));
    }
    args.push("-o".into());
    args.push(out.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = strat(&args);
    assert!(o.status.success(), "strat {args:?}: {}", stderr(&o));
    std::fs::read_to_string(out).unwrap()
}

/// How the engine reads the tables: by their declared names, or by `--name`
/// qualified names (`schema` is `global_temp` on Spark, which keeps temporary
/// views only there).
fn qualified(schema: &str) -> Vec<(&'static str, String)> {
    vec![
        (T1, format!("{schema}.{Q1}")),
        (T2, format!("{schema}.{Q2}")),
    ]
}

/// Data folders for run_sql.py: `plain/` (tables by name) and `qualified/`
/// (a subfolder per schema).
fn engine_data(dir: &Path, t1: &Path, t2: &Path, schema: &str) -> (PathBuf, PathBuf) {
    let plain = dir.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::copy(t1, plain.join(format!("{}.csv", file_name(T1)))).unwrap();
    std::fs::copy(t2, plain.join(format!("{}.csv", file_name(T2)))).unwrap();
    let qual = dir.join(format!("qualified-{}", file_name(schema)));
    let sub = qual.join(file_name(schema));
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::copy(t1, sub.join(format!("{}.csv", file_name(Q1)))).unwrap();
    std::fs::copy(t2, sub.join(format!("{}.csv", file_name(Q2)))).unwrap();
    (plain, qual)
}

struct Setup {
    dir: PathBuf,
    t1: PathBuf,
    t2: PathBuf,
    rules: Vec<PathBuf>,
    native: Vec<(Vec<String>, Vec<Vec<String>>)>,
}

fn setup(name: &str) -> Setup {
    let dir = temp_dir(name);
    let (t1, t2) = write_data(&dir);
    let rules = rule_files(&dir);
    let native: Vec<_> = rules.iter().map(|r| table_of(native(r, &dir))).collect();
    // The native samples are not empty and exercise what they should.
    for (r, n) in rules.iter().zip(&native) {
        assert!(n.1.len() >= 10, "{}: {} rows", r.display(), n.1.len());
    }
    let (head, rows) = &native[0];
    assert_eq!(head, &[UNIT, GRP, NUM, NOTE]);
    let keys: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    for k in [
        "' OR '1'='1",
        "zz\\abc",
        "c\"d",
        "'; DROP TABLE x; --",
        "u7",
    ] {
        assert!(
            !keys.contains(&k),
            "{k:?} should have been filtered or excluded"
        );
    }
    assert!(
        keys.iter()
            .any(|k| k.contains(['\'', '"', '`', '\\', '\n', ';'])),
        "{keys:?}"
    );
    for special in ["cr\rx", "crlf\r\ny"] {
        assert!(
            native.iter().any(|n| n.1.iter().any(|r| r[0] == special)),
            "{special:?} is in no sample"
        );
    }
    let all = &native[1].1;
    let obrien: std::collections::BTreeSet<&str> = all
        .iter()
        .filter(|r| r[1] == GROUPS[0])
        .map(|r| r[0].as_str())
        .collect();
    assert_eq!(obrien.len(), 6, "`all` keeps the 6 O'Brien units");
    assert_eq!(
        all.iter().filter(|r| r[1] == GROUPS[7]).count(),
        0,
        "`none`"
    );
    assert!(
        all.iter().any(|r| r[4] == "back\\\\slash"),
        "_stratum escapes a backslash"
    );
    assert!(
        all.iter().any(|r| r[4] == "quo\"te\\/*c*\\/"),
        "_stratum escapes a slash"
    );
    assert!(
        all.iter().any(|r| r[4] == "uni✓é😀\\∅"),
        "_stratum escapes ∅"
    );
    let splits: std::collections::BTreeSet<&str> =
        native[2].1.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        splits.into_iter().collect::<Vec<_>>(),
        ["te`st\\ /*", "tr'ain\"; --"]
    );
    Setup {
        dir,
        t1,
        t2,
        rules,
        native,
    }
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Every rule file, plain and qualified, on a run_sql.py engine.
fn python_engine(engine: &str) {
    // Not `temp_dir(engine)`: sql.rs uses that folder for the same engine, maybe at the same time.
    let s = setup(&format!("hostile-{engine}"));
    let schema = if engine == "spark" {
        "global_temp"
    } else {
        SCHEMA
    };
    let (plain, qual) = engine_data(&s.dir, &s.t1, &s.t2, schema);
    let mut args = vec![
        root()
            .join("tests/engines/run_sql.py")
            .display()
            .to_string(),
        engine.to_string(),
    ];
    let mut jobs = Vec::new();
    for (i, rule) in s.rules.iter().enumerate() {
        for (mode, names, data) in [
            ("plain", vec![], &plain),
            ("qualified", qualified(schema), &qual),
        ] {
            let sql = s.dir.join(format!("{}.{mode}.{engine}.sql", stem(rule)));
            export(rule, engine, &names, &sql);
            let out = s.dir.join(format!("{}.{mode}.{engine}.csv", stem(rule)));
            args.extend([
                sql.display().to_string(),
                data.display().to_string(),
                out.display().to_string(),
            ]);
            jobs.push((i, format!("{} ({mode} names)", stem(rule)), out));
        }
    }
    let o = Command::new(crate::common::engines_python())
        .args(&args)
        .output()
        .expect("the engines' python");
    match o.status.code() {
        Some(0) => {}
        Some(2) => panic!(
            "{engine} is not installed: run `bash tests/engines/setup.sh`\n{}",
            stderr(&o)
        ),
        _ => panic!("{engine} failed: {}{}", stdout(&o), stderr(&o)),
    }
    for (i, what, out) in jobs {
        let got = table_of(read_csv(&std::fs::read_to_string(out).unwrap()));
        compare(&what, engine, &s.native[i], &got);
    }
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn hostile_names_and_values_on_duckdb() {
    python_engine("duckdb");
}

#[test]
fn hostile_names_and_values_on_postgres() {
    python_engine("postgres");
}

#[test]
fn hostile_names_and_values_on_spark() {
    python_engine("spark");
}

#[test]
fn hostile_names_and_values_on_datafusion() {
    let s = setup("hostile-datafusion");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (i, rule) in s.rules.iter().enumerate() {
        for (mode, names) in [("plain", vec![]), ("qualified", qualified(SCHEMA))] {
            let sql_path = s.dir.join(format!("{}.{mode}.datafusion.sql", stem(rule)));
            let sql = export(rule, "datafusion", &names, &sql_path);
            let what = format!("{} ({mode} names)", stem(rule));
            let rows = rt.block_on(async {
                let ctx = SessionContext::new();
                let (r1, r2) = if mode == "plain" {
                    (TableReference::bare(T1), TableReference::bare(T2))
                } else {
                    let catalog = ctx.catalog("datafusion").unwrap();
                    let schema: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
                    catalog.register_schema(SCHEMA, schema).unwrap();
                    (
                        TableReference::partial(SCHEMA, Q1),
                        TableReference::partial(SCHEMA, Q2),
                    )
                };
                ctx.register_csv(r1, s.t1.to_str().unwrap(), CsvReadOptions::new())
                    .await
                    .unwrap();
                ctx.register_csv(r2, s.t2.to_str().unwrap(), CsvReadOptions::new())
                    .await
                    .unwrap();
                let df = ctx
                    .sql(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}\n{sql}"));
                let head: Vec<String> = df
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let batches = df.collect().await.unwrap_or_else(|e| panic!("{what}: {e}"));
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
            compare(&what, "datafusion", &s.native[i], &table_of(rows));
        }
    }
    let _ = std::fs::remove_dir_all(&s.dir);
}

/// Names reach the query's `--` comments too (the header names the statement,
/// a CTE's comment the excluded table). A backticked name may hold `\r`, which
/// ends a `--` comment in PostgreSQL, DuckDB and Spark: no comment line of any
/// dialect may hold a line-ending character, and the query still runs.
#[test]
fn names_cannot_leave_sql_comments() {
    let dir = temp_dir("comments");
    std::fs::write(dir.join("t.csv"), "id,g\na,x\nb,y\nc,x\nd,y\n").unwrap();
    std::fs::write(dir.join("e.csv"), "id\nb\n").unwrap();
    let evil_table = "e\r) SELECT 1; --";
    let evil_statement = "s\rSELECT 2; --\u{2028}\u{85}";
    std::fs::write(
        dir.join("r.strat"),
        format!(
            "table t = \"t.csv\"\ntable {} = \"e.csv\"\n{} = sample t unit id exclude units in {} stratify by g take all seed 1\n",
            bq(evil_table),
            bq(evil_statement),
            bq(evil_table)
        ),
    )
    .unwrap();
    let rule = dir.join("r.strat");
    let want = table_of(native(&rule, &dir));
    assert_eq!(want.1.len(), 3);
    for dialect in ["spark", "duckdb", "postgres", "datafusion"] {
        let sql = export(&rule, dialect, &[], &dir.join(format!("{dialect}.sql")));
        for line in sql.split('\n').filter(|l| l.trim_start().starts_with("--")) {
            assert!(
                !line
                    .chars()
                    .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')),
                "{dialect}: a comment line holds a line-ending character: {line:?}"
            );
        }
        assert!(
            sql.contains("e\r) SELECT 1; --"),
            "{dialect}: the table name itself is kept, quoted"
        );
        if dialect == "datafusion" {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let got = rt.block_on(async {
                let ctx = SessionContext::new();
                ctx.register_csv(
                    TableReference::bare("t"),
                    dir.join("t.csv").to_str().unwrap(),
                    CsvReadOptions::new(),
                )
                .await
                .unwrap();
                ctx.register_csv(
                    TableReference::bare(evil_table),
                    dir.join("e.csv").to_str().unwrap(),
                    CsvReadOptions::new(),
                )
                .await
                .unwrap();
                let batches = ctx
                    .sql(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{e}\n{sql}"))
                    .collect()
                    .await
                    .unwrap();
                batches.iter().map(|b| b.num_rows()).sum::<usize>()
            });
            assert_eq!(got, 3, "the query selects the native rows");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
