//! The exporter against DataFusion: the tier's errors, every dialect's
//! output parsed back by that dialect's parser, and DataFusion's SQL planner
//! giving exactly the native runner's rows (the other engines are run by
//! `tests/integration/sql.rs`).

use std::sync::Arc;

use datafusion::arrow::array::{
    BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::{
    DuckDbDialect, GenericDialect, PostgreSqlDialect, SparkSqlDialect,
};
use datafusion::sql::sqlparser::parser::Parser;

use std::collections::BTreeMap;

use strat_check::ir::Program;
use strat_sql::{Dialect, SqlOptions, statement_sql};

const ODD: &str = "watch \"hours\"; select \\ 'q' ü";

fn table() -> RecordBatch {
    let n = 240i64;
    let ids: Vec<i64> = (0..n).map(|i| 1000 + i * 7).collect();
    let countries: Vec<Option<&str>> = (0..n)
        .map(|i| match i % 9 {
            0 => None,
            1 | 2 => Some("US"),
            3 => Some("a/b"),
            4 => Some("Zürich"),
            5 => Some("∅"),
            6 => Some("back\\slash"),
            _ => Some("BR"),
        })
        .collect();
    let tenure: Vec<Option<i64>> = (0..n)
        .map(|i| {
            if i % 13 == 0 {
                None
            } else {
                Some((i * 37) % 900)
            }
        })
        .collect();
    let kids: Vec<Option<bool>> = (0..n)
        .map(|i| if i % 17 == 0 { None } else { Some(i % 5 == 0) })
        .collect();
    let dates: Vec<i32> = (0..n).map(|i| 16_000 + (i as i32 * 11) % 1000).collect();
    let hours: Vec<f64> = (0..n).map(|i| (i as f64) * 0.37).collect();
    let odd: Vec<String> = (0..n).map(|i| format!("v{}", i % 3)).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("tenure_days", DataType::Int64, true),
        Field::new("is_kids", DataType::Boolean, true),
        Field::new("signup", DataType::Date32, true),
        Field::new("hours", DataType::Float64, true),
        Field::new(ODD, DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(countries)),
            Arc::new(Int64Array::from(tenure)),
            Arc::new(BooleanArray::from(kids)),
            Arc::new(Date32Array::from(dates)),
            Arc::new(Float64Array::from(hours)),
            Arc::new(StringArray::from(odd)),
        ],
    )
    .unwrap()
}

/// A second table: units to exclude.
fn holdout() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "member_id",
        DataType::Int64,
        true,
    )]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(vec![
            Some(1000),
            Some(1007),
            None,
            Some(1700),
        ]))],
    )
    .unwrap()
}

fn context() -> SessionContext {
    let ctx = SessionContext::new();
    ctx.register_batch("members", table()).unwrap();
    ctx.register_batch("holdout", holdout()).unwrap();
    ctx
}

const SUPPORTED: &[&str] = &[
    "sample members unit member_id stratify by country take 40 seed 7",
    "sample members unit member_id stratify by country, bucket(tenure_days, [90, 365]) as band take 12.5% seed 3",
    "sample members where not is_kids unit member_id stratify by country, is_kids take 30 allocate equal seed 11",
    "sample members unit member_id stratify by is_kids, year(signup) as y take 100% allocate equal seed 1",
    "sample members unit member_id exclude units in holdout stratify by country take 50 seed 2 \
     output member_id, country, _weight, _stratum",
    "sample members unit member_id stratify by case when tenure_days < 100 then \"new\" else \"old\" end as age \
     take about 30% seed 5",
    "sample members where country like \"%/%\" or country between \"B\" and \"Z\" unit member_id \
     stratify by signup take all seed 5",
    "sample members unit member_id take 17 seed 0",
    "split members unit member_id stratify by country, bucket(hours, [10, 40.5]) as h into train 80%, validation 10%, test 10% seed 7",
    "split members unit member_id stratify by country into about a 50%, b 25%, c 25% seed 9",
    "split members where `watch \"hours\"; select \\ 'q' ü` != \"v1\" unit member_id stratify by \
     `watch \"hours\"; select \\ 'q' ü` as odd into 3 folds seed 4",
    "sample members unit country stratify by substr(country, 1, 1) as initial take 3 seed 8",
    "sample members unit signup stratify by month(signup) as m take 25% seed 8",
    "sample members unit member_id stratify by country, is_kids take 90 allocate { \
     country = \"US\" and is_kids => share 12.5% country in (\"a/b\", \"∅\") => share 10% \
     country = \"BR\" => count 7 is_kids is null => rate 50% country like \"Z%\" => none \
     country = \"back\\\\slash\" => all else => proportional } seed 21",
    "sample members unit member_id stratify by country, is_kids take 60 allocate { \
     country = \"US\" => count 9 else => equal } min 2 per stratum max 9 per stratum seed 22",
    "sample members unit member_id stratify by country, bucket(tenure_days, [90, 365]) as band take 120 \
     min 3 per stratum max 8 per stratum seed 23",
    "sample members unit member_id stratify by country, is_kids allocate { country = \"US\" => rate 10% \
     country = \"BR\" => none } max 5 per stratum seed 24",
    // take about with rules, bounds and equal.
    "sample members unit member_id stratify by country, is_kids take about 30% allocate { \
     country = \"US\" => rate 12.5% country = \"BR\" and is_kids => all is_kids is null => none \
     else => proportional } seed 26",
    "sample members unit member_id stratify by country take about 30% min 3 per stratum max 11 per stratum seed 27",
    "sample members unit member_id stratify by country, is_kids take about 20% allocate { \
     country = \"US\" => rate 1% else => equal } max 6 per stratum seed 28",
    // neyman (integer and float columns) and power, with rules and bounds.
    "sample members unit member_id stratify by country take 60 allocate neyman(tenure_days) seed 29",
    "sample members unit member_id stratify by country, is_kids take 90 allocate { country = \"US\" => count 9 \
     else => neyman(hours) } min 2 per stratum max 12 per stratum seed 30",
    "sample members unit member_id stratify by country take 25% allocate power(0.5) seed 31",
    "sample members unit member_id stratify by country, is_kids take 70 allocate power(0.3) max 9 per stratum seed 32",
    // round of a float (half away from zero), lower/upper.
    "sample members where upper(\"x\") = \"X\" unit member_id stratify by round(hours / 2) as h, \
     lower(substr(`watch \"hours\"; select \\ 'q' ü`, 1, 2)) as o take 50% seed 33",
    // Unit aggregates (units of several rows: one per signup date).
    "sample members unit signup stratify by bucket(count(*), [2]) as n, max(is_kids) as k, \
     first(country by tenure_days) as f, bucket(avg(tenure_days), [300.5]) as a, \
     last(is_kids by country) as l take 40% seed 25",
    // having, mode, keep units in, and take about alone (issue 19).
    "sample members unit country having count(*) >= 2 and not mode(is_kids) \
     stratify by mode(signup) as d, bucket(mode(tenure_days), [300]) as t take 50% seed 34",
    "sample members unit member_id having count(*) = 1 and coalesce(max(tenure_days), 0) >= 0 \
     keep units in holdout stratify by country take about allocate { country = \"US\" => all \
     country = \"BR\" => none else => rate 25% } seed 35",
    "a = sample members unit member_id stratify by country take 150 seed 1
     split members unit member_id keep units in a exclude units in holdout stratify by country \
     into x 50%, y 50% seed 36",
    // Chains: two-phase weights, a split keeping its source's `_weight`,
    // `exclude units in` a statement, and one statement read twice.
    "a = sample members unit member_id stratify by country take 150 seed 1 output member_id, country, is_kids, _weight, _stratum \
     b = split a unit member_id stratify by _stratum as s into x 60%, y 40% seed 2 \
     sample b where _split = \"x\" unit member_id stratify by is_kids take 40 seed 3",
    "a = sample members unit member_id stratify by country take 150 seed 1 output member_id, country, is_kids, _weight, _stratum \
     b = sample a unit member_id stratify by country take 30% seed 2 \
     sample a unit member_id exclude units in b stratify by is_kids take about 50% seed 3",
];

async fn program(ctx: &SessionContext, rules: &str) -> Program {
    let compiled = strat_engine::compile(ctx, None, rules, &strat_engine::Options::default()).await;
    assert!(
        !compiled.has_errors(),
        "{rules}: {:?}",
        compiled.diagnostics
    );
    compiled.program.unwrap()
}

fn options(d: Dialect) -> SqlOptions {
    SqlOptions {
        dialect: d,
        names: BTreeMap::new(),
        file_name: "test.strat".into(),
        file_text: "x".into(),
        // The order test compares row order too: splits ordered as strat run writes them.
        order_splits: true,
    }
}

#[tokio::test]
async fn every_dialect_parses_back() {
    let ctx = context();
    for rules in SUPPORTED {
        let p = program(&ctx, rules).await;
        let last = p.statements.len() - 1;
        for d in Dialect::ALL {
            let sql = match statement_sql(&p, last, &options(d)) {
                Ok(sql) => sql,
                // lower/upper and DataFusion's integer arithmetic are errors in some dialects.
                Err(e) => panic!("{rules} ({d}): {e}"),
            };
            let parsed = match d {
                Dialect::Spark => Parser::parse_sql(&SparkSqlDialect {}, &sql),
                // sqlparser's DuckDB dialect lacks `AS NOT MATERIALIZED`,
                // which DuckDB itself runs (tests/integration/sql.rs).
                Dialect::DuckDb => Parser::parse_sql(
                    &DuckDbDialect {},
                    &sql.replace(" AS NOT MATERIALIZED (", " AS ("),
                ),
                Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, &sql),
                Dialect::DataFusion => Parser::parse_sql(&GenericDialect {}, &sql),
            };
            let parsed = parsed.unwrap_or_else(|e| panic!("{rules} ({d}): {e}\n{sql}"));
            assert_eq!(parsed.len(), 1, "{sql}");
        }
    }
}

#[tokio::test]
async fn unsupported_constructs_are_errors() {
    let ctx = context();
    let cases = [
        (
            "sample members stratify by country take 5 seed 1",
            "E0141",
            "unit",
        ),
        (
            "sample members unit member_id stratify by country take about 5% allocate neyman(tenure_days) seed 1",
            "E0140",
            "neyman",
        ),
        (
            "sample members unit member_id stratify by bucket(sum(hours), [10]) as c take 5 seed 1",
            "E0140",
            "`sum` of a float",
        ),
    ];
    for (rules, code, words) in cases {
        let p = program(&ctx, rules).await;
        let last = p.statements.len() - 1;
        for d in Dialect::ALL {
            let e = statement_sql(&p, last, &options(d)).unwrap_err();
            assert_eq!(e.code, code, "{rules}");
            assert!(e.message.contains(words), "{rules}: {}", e.message);
            assert!(e.message.contains(d.flag()), "{}", e.message);
        }
    }
    // lower/upper of a non-ASCII literal: engines other than DataFusion map
    // such letters differently (a non-ASCII column value fails the query).
    let p = program(
        &ctx,
        "sample members where lower(country) != lower(\"Zürich\") unit member_id take 5 seed 1",
    )
    .await;
    for d in [Dialect::DuckDb, Dialect::Postgres, Dialect::Spark] {
        assert!(
            statement_sql(&p, 0, &options(d))
                .unwrap_err()
                .message
                .contains("`lower` of a non-ASCII literal")
        );
    }
    assert!(statement_sql(&p, 0, &options(Dialect::DataFusion)).is_ok());
}

/// Rows as sorted lines of text (weights by their f64 bits through Display).
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                fmts.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out
}

/// DataFusion plans the nested CTEs of a chain recursively: a debug build
/// needs more than a test thread's 2 MiB of stack.
#[test]
fn datafusion_sql_gives_the_native_sample() {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_stack_size(64 << 20)
                .enable_all()
                .build()
                .unwrap()
                .block_on(datafusion_sql_matches_native())
        })
        .unwrap()
        .join()
        .unwrap();
}

async fn datafusion_sql_matches_native() {
    let mut rules: Vec<&str> = SUPPORTED.to_vec();
    rules.push("sample members unit member_id stratify by lower(country) as c take 40 seed 7");
    for rules in rules {
        let ctx = context();
        let p = program(&ctx, rules).await;
        let last = p.statements.len() - 1;
        let native = strat_engine::run::run_statement(&ctx, &p, last)
            .await
            .unwrap();
        let sql = statement_sql(&p, last, &options(Dialect::DataFusion)).unwrap();
        let df = ctx
            .sql(&sql)
            .await
            .unwrap_or_else(|e| panic!("{rules}: {e}\n{sql}"));
        let got = df
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{rules}: {e}\n{sql}"));
        let (want, got) = (rows(&native.batches), rows(&got));
        assert!(!want.is_empty(), "{rules}");
        // Row order too: units come in the §7 order (rows of one unit may differ in order).
        let mut w = want.clone();
        let mut g = got.clone();
        w.sort();
        g.sort();
        assert_eq!(w, g, "{rules}\n{sql}");
        if rules.contains("unit member_id") {
            assert_eq!(want, got, "order: {rules}");
        }
    }
}

#[tokio::test]
async fn span_and_total_errors_fail_the_query() {
    let ctx = context();
    // country is not constant within a unit keyed by the first letter of ... : use tenure_days per country.
    let p = program(
        &ctx,
        "sample members unit country stratify by tenure_days take 2 seed 1",
    )
    .await;
    let sql = statement_sql(&p, 0, &options(Dialect::DataFusion)).unwrap();
    let r = match ctx.sql(&sql).await {
        Ok(df) => df.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(r.unwrap_err().to_string().contains("spans two strata"));
    let p = program(&ctx, "sample members unit member_id take 100000 seed 1").await;
    let sql = statement_sql(&p, 0, &options(Dialect::DataFusion)).unwrap();
    let r = match ctx.sql(&sql).await {
        Ok(df) => df.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(r.unwrap_err().to_string().contains("asks for more units"));
    // The allocation errors of the native runner fail the query too.
    for (rules, words) in [
        (
            "sample members unit member_id stratify by country take 200 allocate { country = \"US\" => share 80% } seed 1",
            "gets a quota of",
        ),
        (
            "sample members unit member_id stratify by country take 20 allocate { country = \"US\" => all } seed 1",
            "the rules take",
        ),
        (
            "sample members unit member_id stratify by country take 20 allocate { country = \"US\" => count 3 else => none } seed 1",
            "no stratum is left to the method",
        ),
        (
            "sample members unit member_id stratify by country take 20 min 5 per stratum seed 1",
            "must go to them",
        ),
        (
            "sample members unit member_id stratify by country take 200 max 5 per stratum seed 1",
            "must go to them",
        ),
        (
            "sample members unit member_id stratify by country take about 5% allocate { country = \"US\" => all } seed 1",
            "the expected sizes of the rule strata add up to",
        ),
        (
            "sample members unit member_id stratify by country take about 50% max 2 per stratum seed 1",
            "must go to them",
        ),
        (
            "sample members unit country stratify by length(country) as l take 3 allocate neyman(tenure_days) seed 1",
            "needs one value per unit",
        ),
    ] {
        let p = program(&ctx, rules).await;
        let native = strat_engine::run::run_statement(&ctx, &p, 0).await;
        assert!(native.is_err(), "{rules}: the native runner fails too");
        let sql = statement_sql(&p, 0, &options(Dialect::DataFusion)).unwrap();
        let r = match ctx.sql(&sql).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let e = r.expect_err(rules).to_string();
        assert!(e.contains(words), "{rules}: {e}");
    }
}

#[tokio::test]
async fn sub_second_timestamps_and_case_folded_names_are_refused() {
    use datafusion::arrow::array::TimestampNanosecondArray;
    let ctx = context();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new(
            "ts",
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, None),
            true,
        ),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(TimestampNanosecondArray::from(vec![
                Some(1_520_000_000_000_000_000),
                Some(1_520_000_000_500_000_000),
                None,
            ])),
        ],
    )
    .unwrap();
    ctx.register_batch("events", batch).unwrap();
    // A sub-second timestamp stratum value fails the query (strat run writes it).
    let p = program(&ctx, "sample events unit id stratify by ts take 2 seed 1").await;
    assert!(strat_engine::run::run_statement(&ctx, &p, 0).await.is_ok());
    let sql = statement_sql(&p, 0, &options(Dialect::DataFusion)).unwrap();
    let r = match ctx.sql(&sql).await {
        Ok(df) => df.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(r.unwrap_err().to_string().contains("sub-second"));
    // Whole seconds export and give the native sample.
    let p = program(
        &ctx,
        "sample events where id != 2 unit id stratify by ts take 1 seed 1",
    )
    .await;
    let sql = statement_sql(&p, 0, &options(Dialect::DataFusion)).unwrap();
    let native = strat_engine::run::run_statement(&ctx, &p, 0).await.unwrap();
    let got = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    assert_eq!(rows(&native.batches), rows(&got));
    // Statement CTE names that differ only in case would collide.
    let p = program(
        &ctx,
        "A = sample members unit member_id take 50 seed 1\n\
         a = sample members unit member_id take 40 seed 2\n\
         sample A unit member_id exclude units in a take 5 seed 3",
    )
    .await;
    let e = statement_sql(&p, 2, &options(Dialect::DuckDb)).unwrap_err();
    assert!(e.message.contains("differs only in case"), "{}", e.message);
}

/// A unit whose best rows `as of` T tie fails the exported query as it
/// fails `strat run`, naming a tied unit; with `ties by` it runs.
#[tokio::test]
async fn as_of_ties_fail_the_query() {
    let ctx = SessionContext::new();
    let csv = crate::common::root().join("tests/cases/sql/data/snapshots.csv");
    ctx.register_csv(
        "snapshots",
        csv.to_str().unwrap(),
        datafusion::prelude::CsvReadOptions::new(),
    )
    .await
    .unwrap();
    let tied = "sample snapshots as of @2018-06-01 by snapshot_date within 30 days \
                unit member_id stratify by country take 10 seed 1";
    let p = program(&ctx, tied).await;
    assert!(strat_engine::run::run_statement(&ctx, &p, 0).await.is_err());
    let sql = statement_sql(&p, 0, &options(Dialect::DataFusion)).unwrap();
    let r = match ctx.sql(&sql).await {
        Ok(df) => df.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    let e = r.expect_err("a tie fails the query").to_string();
    assert!(
        e.contains("has rows tied at its latest `snapshot_date`"),
        "{e}"
    );
    assert!(
        e.contains("`member_id` = 6") || e.contains("`member_id` = 8"),
        "{e}"
    );
    let p = program(
        &ctx,
        &tied.replace("30 days", "30 days ties by ingested_at"),
    )
    .await;
    let sql = statement_sql(&p, 0, &options(Dialect::DataFusion)).unwrap();
    let rows = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 10);
}

/// The exported query's CTEs ending in `select` (a stratum, then integer
/// columns) instead of its final `SELECT`: the integers of each row.
async fn counts_per_stratum(ctx: &SessionContext, sql: &str, select: &str) -> Vec<Vec<i64>> {
    let end = sql.rfind("\n)\nSELECT").expect("the final SELECT") + 3;
    let query = format!("{}{select}", &sql[..end]);
    let batches = ctx.sql(&query).await.unwrap().collect().await.unwrap();
    rows(&batches)
        .iter()
        .map(|line| {
            line.split('|')
                .skip(1)
                .map(|x| x.parse().unwrap())
                .collect()
        })
        .collect()
}

/// An exact sample ranks only the units up to its stratum's draw cut (the
/// draw bucket of the n_h-th unit), not all N_h, and keeps the same units:
/// 60,000 members, a stratum of 50,000 and one of 10,000, take 600.
#[tokio::test]
async fn an_exact_sample_ranks_few_more_units_than_it_keeps() {
    let n = 60_000i64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, false),
        Field::new("country", DataType::Utf8, false),
    ]));
    let countries: Vec<&str> = (0..n)
        .map(|i| if i % 6 == 0 { "BR" } else { "US" })
        .collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())),
            Arc::new(StringArray::from(countries)),
        ],
    )
    .unwrap();
    let ctx = SessionContext::new();
    ctx.register_batch("members", batch).unwrap();
    let rules = "sample members unit member_id stratify by country take 600 seed 5";
    let p = program(&ctx, rules).await;
    let sql = statement_sql(&p, 0, &options(Dialect::DataFusion)).unwrap();

    let native = strat_engine::run::run_statement(&ctx, &p, 0).await.unwrap();
    let exported = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    assert_eq!(rows(&native.batches), rows(&exported), "{sql}");

    // The same query, ending in what its window ranked per stratum.
    let got = counts_per_stratum(
        &ctx,
        &sql,
        "SELECT stratum, CAST(COUNT(*) AS BIGINT) AS ranked, CAST(MIN(n_take) AS BIGINT) AS n_take, \
         CAST(MIN(n_units) AS BIGINT) AS n_units FROM selected_units GROUP BY stratum ORDER BY stratum",
    )
    .await;
    assert_eq!(got.len(), 2, "{got:?}");
    for f in &got {
        let (ranked, n_take, n_units) = (f[0], f[1], f[2]);
        // Expected: n_h plus about half a bucket of N_h / 4,096 units.
        assert!(
            ranked >= n_take && ranked <= n_take + 4 * n_units / 4096 + 8,
            "ranked {ranked} of {n_units} units to keep {n_take}: {got:?}"
        );
    }
}

/// An exact split ranks only the units of the draw buckets its boundaries
/// fall in (about N_h/4,096 a boundary), not all N_h, and places every unit
/// as `strat run` does: 60,000 members (every seventh with two rows), a
/// stratum of 50,000, one of 10,000 and two of one and three members (whose
/// first boundary is 0). Placed row by row (DataFusion inlines CTEs) and,
/// with a unit aggregate in `having`, unit by unit.
#[tokio::test]
async fn an_exact_split_ranks_only_the_units_at_its_boundaries() {
    let n = 60_000i64;
    let mut ids: Vec<i64> = (0..n).collect();
    ids.extend((0..n).step_by(7));
    let country = |id: i64| match id {
        0 => "NZ",
        1..=3 => "IS",
        _ if id % 6 == 0 => "BR",
        _ => "US",
    };
    let countries: Vec<&str> = ids.iter().map(|&i| country(i)).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, false),
        Field::new("country", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(countries)),
        ],
    )
    .unwrap();
    let ctx = SessionContext::new();
    ctx.register_batch("members", batch).unwrap();
    for rules in [
        "split members unit member_id stratify by country into a 80%, b 10%, c 10% seed 5 \
         output member_id, country, _split, _stratum",
        "split members unit member_id having count(*) >= 1 stratify by country \
         into 3 folds seed 6 output member_id, _split",
    ] {
        let p = program(&ctx, rules).await;
        let sql = statement_sql(&p, 0, &options(Dialect::DataFusion)).unwrap();
        let native = strat_engine::run::run_statement(&ctx, &p, 0).await.unwrap();
        let exported = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let (want, got) = (rows(&native.batches), rows(&exported));
        let first = want.iter().zip(&got).position(|(w, g)| w != g);
        assert!(
            want == got,
            "{rules}: {} rows natively, {} exported; first difference at {first:?}: {:?}\n{sql}",
            want.len(),
            got.len(),
            first.map(|i| (&want[i], &got[i])),
        );

        // The same query, ending in what its window ranked per stratum.
        let got = counts_per_stratum(
            &ctx,
            &sql,
            "SELECT u.stratum, CAST(COUNT(DISTINCT b.unit_key) AS BIGINT) AS ranked, \
             CAST(MIN(u.n_units) AS BIGINT) AS n_units \
             FROM strata u LEFT JOIN boundary_units b ON u.stratum = b.stratum \
             GROUP BY u.stratum ORDER BY u.stratum",
        )
        .await;
        assert_eq!(got.len(), 4, "{got:?}");
        for f in &got {
            let (ranked, n_units) = (f[0], f[1]);
            // Two boundaries, each in one bucket of about N_h / 4,096 units.
            assert!(
                ranked <= 2 * (4 * n_units / 4096 + 8),
                "ranked {ranked} of {n_units} units: {got:?}"
            );
        }
    }
}
