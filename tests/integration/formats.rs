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

/// A table with every type the readers produce (Arrow IPC keeps them all),
/// NULLs included.
fn every_type_batch() -> datafusion::arrow::record_batch::RecordBatch {
    use datafusion::arrow::array::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;
    let ts = |unit: TimeUnit, zone: Option<&str>, v: Vec<Option<i64>>| -> ArrayRef {
        let a: ArrayRef = match unit {
            TimeUnit::Second => Arc::new(TimestampSecondArray::from(v)),
            TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(v)),
            TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from(v)),
            TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from(v)),
        };
        let ty = DataType::Timestamp(unit, zone.map(Into::into));
        datafusion::arrow::compute::cast(&a, &ty).unwrap()
    };
    let s = 1_527_811_200i64; // 2018-06-01T00:00:00Z
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3]))),
        (
            "i8",
            Arc::new(Int8Array::from(vec![Some(-8), None, Some(7)])),
        ),
        (
            "i32",
            Arc::new(Int32Array::from(vec![Some(-32), Some(0), None])),
        ),
        (
            "u16",
            Arc::new(UInt16Array::from(vec![Some(16), None, Some(0)])),
        ),
        (
            "u64",
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(0), None])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![Some(0.1), Some(1e300), None])),
        ),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![Some(12345), None, Some(-1)])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ),
        (
            "s",
            Arc::new(StringArray::from(vec![Some("a,b"), Some("ü\"q"), None])),
        ),
        (
            "b",
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        ),
        (
            "d32",
            Arc::new(Date32Array::from(vec![Some(17683), None, Some(-1)])),
        ),
        (
            "ts_s",
            ts(TimeUnit::Second, None, vec![Some(s), None, Some(s + 59)]),
        ),
        (
            "ts_ms",
            ts(
                TimeUnit::Millisecond,
                None,
                vec![Some(s * 1000 + 250), None, Some(0)],
            ),
        ),
        (
            "ts_us_utc",
            ts(
                TimeUnit::Microsecond,
                Some("UTC"),
                vec![Some(s * 1_000_000 + 1), Some(0), None],
            ),
        ),
        (
            "ts_ns",
            ts(
                TimeUnit::Nanosecond,
                None,
                vec![None, Some(s * 1_000_000_000 + 7), Some(1)],
            ),
        ),
        (
            "ts_s_zone",
            ts(
                TimeUnit::Second,
                Some("+02:00"),
                vec![Some(s), Some(s + 1), None],
            ),
        ),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    datafusion::arrow::record_batch::RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

/// Every column's values as text, timestamps as instants (UTC, nanoseconds),
/// so a column read back may differ in unit or width but not in value.
fn canonical_rows(batch: &datafusion::arrow::record_batch::RecordBatch) -> Vec<Vec<String>> {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let columns: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Timestamp(_, zone) => {
                let utc =
                    DataType::Timestamp(TimeUnit::Nanosecond, zone.as_ref().map(|_| "UTC".into()));
                datafusion::arrow::compute::cast(c, &utc).unwrap()
            }
            _ => c.clone(),
        })
        .collect();
    let opts = FormatOptions::default().with_null("NULL");
    (0..batch.num_rows())
        .map(|r| {
            columns
                .iter()
                .map(|c| {
                    ArrayFormatter::try_new(c.as_ref(), &opts)
                        .unwrap()
                        .value(r)
                        .to_string()
                })
                .collect()
        })
        .collect()
}

/// A sample keeps every column's type and values in Parquet output (a
/// timestamp in seconds, which Parquet cannot store, becomes milliseconds with
/// its zone), and CSV output keeps timestamps readable as timestamps.
#[test]
fn types_survive_every_output_format() {
    use datafusion::prelude::ParquetReadOptions;
    let dir = tempdir("types");
    let input = every_type_batch();
    let file = std::fs::File::create(dir.join("t.arrow")).unwrap();
    let mut w = datafusion::arrow::ipc::writer::FileWriter::try_new(file, &input.schema()).unwrap();
    w.write(&input).unwrap();
    w.finish().unwrap();
    std::fs::write(
        dir.join("r.strat"),
        "table t = \"t.arrow\"\nsample t unit id seed 1\n",
    )
    .unwrap();
    let rule = dir.join("r.strat").to_string_lossy().into_owned();
    let want_types = strat_engine::catalog::checker_columns(&input.schema());
    let want_rows = canonical_rows(&input);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for ext in ["parquet", "csv", "ndjson"] {
        let out = dir.join(format!("s.{ext}")).to_string_lossy().into_owned();
        let o = strat(&["run", &rule, "-o", &out]);
        assert!(o.status.success(), "{ext}: {}", stderr(&o));
        if ext == "csv" || ext == "ndjson" {
            continue;
        }
        let got = runtime.block_on(async {
            let ctx = SessionContext::new();
            let df = ctx
                .read_parquet(&out, ParquetReadOptions::default())
                .await
                .unwrap();
            let batches = df.collect().await.unwrap();
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
        });
        // The types are the Parquet file's own, not the Arrow schema embedded
        // beside them (which DataFusion uses but DuckDB and Spark do not).
        let own_types = {
            use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
            let reader = SerializedFileReader::new(std::fs::File::open(&out).unwrap()).unwrap();
            let parquet = reader.metadata().file_metadata().schema_descr_ptr();
            datafusion::parquet::arrow::parquet_to_arrow_schema(&parquet, None).unwrap()
        };
        assert_eq!(
            strat_engine::catalog::checker_columns(&own_types),
            want_types,
            "{ext}: the Parquet types of the columns"
        );
        let got_types = strat_engine::catalog::checker_columns(&got.schema());
        assert_eq!(
            got_types, want_types,
            "{ext}: the strat types of the columns"
        );
        for (f, want) in got.schema().fields().iter().zip(input.schema().fields()) {
            if let (
                datafusion::arrow::datatypes::DataType::Timestamp(_, got_zone),
                datafusion::arrow::datatypes::DataType::Timestamp(_, want_zone),
            ) = (f.data_type(), want.data_type())
            {
                assert_eq!(
                    got_zone.is_some(),
                    want_zone.is_some(),
                    "{ext}: `{}` keeps its zone",
                    f.name()
                );
            }
        }
        let mut got_rows = canonical_rows(&got);
        got_rows.sort();
        let mut want_sorted = want_rows.clone();
        want_sorted.sort();
        assert_eq!(got_rows, want_sorted, "{ext}: the values");
    }
    // CSV read back: the timestamp in seconds is still a timestamp.
    let back = runtime.block_on(async {
        let ctx = SessionContext::new();
        let out = dir.join("s.csv").to_string_lossy().into_owned();
        let df = ctx.read_csv(&out, CsvReadOptions::new()).await.unwrap();
        df.schema().as_arrow().clone()
    });
    assert!(
        matches!(
            back.field_with_name("ts_s").unwrap().data_type(),
            datafusion::arrow::datatypes::DataType::Timestamp(..)
        ),
        "{back:?}"
    );
}
