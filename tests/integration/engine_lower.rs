//! Lowered expressions evaluated by DataFusion against the semantics of
//! docs/spec.md §2 (expected values worked out by hand).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use strat_engine::catalog::checker_columns;
use strat_engine::lower::lower_expr;

fn table() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("i", DataType::Int64, true),
        Field::new("f", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("dec", DataType::Decimal128(10, 2), true),
        Field::new("d", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ]));
    // 2018-06-01T12:34:56 = 1527856496 s
    let t = 1_527_856_496_000_000i64;
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![
                Some(5),
                Some(-5),
                Some(i64::MAX),
                None,
            ])) as ArrayRef,
            Arc::new(Float64Array::from(vec![
                Some(2.5),
                Some(-2.5),
                Some(0.49999999999999994),
                None,
            ])),
            Arc::new(StringArray::from(vec![
                Some("a\\b"),
                Some("a%b"),
                Some(" xé "),
                None,
            ])),
            Arc::new(
                Decimal128Array::from(vec![Some(250), Some(-250), Some(149), None])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from(vec![
                Some(17683),
                Some(-1),
                Some(0),
                None,
            ])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(t),
                Some(t - 1),
                Some(t + 1),
                None,
            ])),
        ],
    )
    .unwrap()
}

/// Checks `sample t <clause>` and returns the checked program's statement.
fn statement(ctx: &SessionContext, clause: &str) -> strat_check::ir::Statement {
    let batch = table();
    let mem = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).unwrap();
    let _ = ctx.register_table("t", Arc::new(mem));
    let mut tables = BTreeMap::new();
    tables.insert("t".to_string(), Some(checker_columns(&batch.schema())));
    let env = strat_check::Env {
        tables,
        params: vec![],
    };
    let src = format!("sample t {clause} seed 1");
    let parsed = strat_syntax::parse(&src);
    assert!(
        parsed.diagnostics.iter().all(|d| !d.is_error()),
        "{src}: {:?}",
        parsed.diagnostics
    );
    let checked = strat_check::check(&src, &parsed.file, &env);
    assert!(
        checked.diagnostics.iter().all(|d| !d.is_error()),
        "{src}: {:?}",
        checked.diagnostics
    );
    checked.program.unwrap().statements.remove(0)
}

async fn eval_expr(
    ctx: &SessionContext,
    e: &strat_check::ir::Expr,
) -> datafusion::error::Result<Vec<Option<String>>> {
    let lowered = lower_expr(e, None).unwrap();
    let batches = ctx
        .table("t")
        .await?
        .select(vec![lowered.alias("v")])?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in batches {
        let col = cast(b.column(0), &DataType::Utf8)?;
        let col = col.as_any().downcast_ref::<StringArray>().unwrap();
        out.extend((0..col.len()).map(|i| col.is_valid(i).then(|| col.value(i).to_string())));
    }
    Ok(out)
}

/// The values of a (non-float) expression, as text, for the 4 rows.
async fn values(expr: &str) -> Vec<Option<String>> {
    let ctx = SessionContext::new();
    let st = statement(&ctx, &format!("stratify by {expr} as v"));
    eval_expr(&ctx, &st.strata[0].expr).await.unwrap()
}

/// The truth values of a condition for the 4 rows.
async fn truth(cond: &str) -> Vec<Option<bool>> {
    let ctx = SessionContext::new();
    let st = statement(&ctx, &format!("where {cond}"));
    let v = eval_expr(&ctx, st.filter.as_ref().unwrap()).await.unwrap();
    v.into_iter().map(|x| x.map(|s| s == "true")).collect()
}

fn s(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|x| x.map(String::from)).collect()
}

#[tokio::test]
async fn round_floor_ceil_of_floats_and_decimals() {
    // half away from zero; 0.49999999999999994 rounds to 0 (not 1).
    assert_eq!(
        values("round(f)").await,
        s(&[Some("3"), Some("-3"), Some("0"), None])
    );
    assert_eq!(
        values("floor(f)").await,
        s(&[Some("2"), Some("-3"), Some("0"), None])
    );
    assert_eq!(
        values("ceil(f)").await,
        s(&[Some("3"), Some("-2"), Some("1"), None])
    );
    // decimals exactly: 2.50, -2.50, 1.49
    assert_eq!(
        values("round(dec)").await,
        s(&[Some("3"), Some("-3"), Some("1"), None])
    );
    assert_eq!(
        values("floor(dec)").await,
        s(&[Some("2"), Some("-3"), Some("1"), None])
    );
    assert_eq!(
        values("ceil(dec)").await,
        s(&[Some("3"), Some("-2"), Some("2"), None])
    );
    assert_eq!(
        values("round(i)").await,
        s(&[Some("5"), Some("-5"), Some("9223372036854775807"), None])
    );
}

#[tokio::test]
async fn like_has_no_escape_character() {
    // 'a\b' (backslash literal) matches only the first row.
    assert_eq!(
        truth(r"s like 'a\\b'").await,
        [Some(true), Some(false), Some(false), None]
    );
    // `a\%`: a, a backslash, then anything — "a\b" yes, "a%b" no.
    assert_eq!(
        truth(r"s like 'a\\%'").await,
        [Some(true), Some(false), Some(false), None]
    );
    assert_eq!(
        truth("s like 'a_b'").await,
        [Some(true), Some(true), Some(false), None]
    );
    assert_eq!(
        truth("s not like '%b'").await,
        [Some(false), Some(false), Some(true), None]
    );
}

#[tokio::test]
async fn integer_overflow_is_an_error() {
    let ctx = SessionContext::new();
    let st = statement(&ctx, "stratify by i + 1 as v");
    let err = eval_expr(&ctx, &st.strata[0].expr).await.unwrap_err();
    assert!(err.to_string().contains("integer overflow"), "{err}");
    let st = statement(&ctx, "stratify by i * 2 as v");
    assert!(eval_expr(&ctx, &st.strata[0].expr).await.is_err());
    let st = statement(&ctx, "stratify by -i - 2 as v");
    assert!(eval_expr(&ctx, &st.strata[0].expr).await.is_err());
    // without overflow the arithmetic is exact
    assert_eq!(
        values("i - 10").await,
        s(&[Some("-5"), Some("-15"), Some("9223372036854775797"), None])
    );
}

#[tokio::test]
async fn division_is_float() {
    // 5 / 2 = 2.5 (not 2), -5 / 2 = -2.5
    assert_eq!(
        truth("i / 2 > 2.4 and i / 2 < 2.6").await,
        [Some(true), Some(false), Some(false), None]
    );
    assert_eq!(
        truth("i / 2 < -2.4").await,
        [Some(false), Some(true), Some(false), None]
    );
    // float against decimal is compared in floats (no decimal overflow for big values)
    assert_eq!(
        truth("f > 2.4 or f between -2.6 and 0.5").await,
        [Some(true), Some(true), Some(true), None]
    );
    assert_eq!(
        truth("f * 100000000000000000.0 > 1.5").await,
        [Some(true), Some(false), Some(true), None]
    );
    assert_eq!(
        truth("f in (2.5, 0.3)").await,
        [Some(true), Some(false), Some(false), None]
    );
}

#[tokio::test]
async fn strings_functions() {
    assert_eq!(
        values("length(s)").await,
        s(&[Some("3"), Some("3"), Some("4"), None])
    );
    assert_eq!(
        values("trim(s)").await,
        s(&[Some("a\\b"), Some("a%b"), Some("xé"), None])
    );
    assert_eq!(
        values("upper(s)").await,
        s(&[Some("A\\B"), Some("A%B"), Some(" XÉ "), None])
    );
    assert_eq!(
        values("substr(s, 2, 2)").await,
        s(&[Some("\\b"), Some("%b"), Some("xé"), None])
    );
    assert_eq!(
        values("coalesce(s, 'none')").await,
        s(&[Some("a\\b"), Some("a%b"), Some(" xé "), Some("none")])
    );
    // strings compare by bytes: "a%b" < "a\b" (0x25 < 0x5c)
    assert_eq!(
        truth("s < 'a\\\\b'").await,
        [Some(false), Some(true), Some(true), None]
    );
}

#[tokio::test]
async fn dates_and_timestamps() {
    assert_eq!(
        values("year(d)").await,
        s(&[Some("2018"), Some("1969"), Some("1970"), None])
    );
    assert_eq!(
        values("month(d)").await,
        s(&[Some("6"), Some("12"), Some("1"), None])
    );
    assert_eq!(
        values("day(d)").await,
        s(&[Some("1"), Some("31"), Some("1"), None])
    );
    assert_eq!(
        truth("d >= @2018-06-01").await,
        [Some(true), Some(false), Some(false), None]
    );
    assert_eq!(
        truth("d between @1969-12-31 and @1970-01-01").await,
        [Some(false), Some(true), Some(true), None]
    );
    // a zone-less timestamp column compares as wall-clock time
    assert_eq!(
        truth("ts >= @2018-06-01T12:34:56").await,
        [Some(true), Some(false), Some(true), None]
    );
    assert_eq!(
        truth("ts < @2018-06-01T12:34:56.000001").await,
        [Some(true), Some(true), Some(false), None]
    );
    assert_eq!(
        values("day(ts)").await,
        s(&[Some("1"), Some("1"), Some("1"), None])
    );
}

#[tokio::test]
async fn logic_case_in_and_bucket() {
    // three-valued: NULL in (...) is NULL; `not` of NULL is NULL
    assert_eq!(
        truth("i in (5, 7)").await,
        [Some(true), Some(false), Some(false), None]
    );
    assert_eq!(
        truth("not (i in (5, 7))").await,
        [Some(false), Some(true), Some(true), None]
    );
    assert_eq!(
        truth("i is null or i > 0").await,
        [Some(true), Some(false), Some(true), Some(true)]
    );
    assert_eq!(
        values("case when i > 0 then 'pos' when i < 0 then 'neg' end").await,
        s(&[Some("pos"), Some("neg"), Some("pos"), None])
    );
    assert_eq!(
        values("bucket(f, [0, 2.5])").await,
        s(&[Some("[2.5,inf)"), Some("[-inf,0)"), Some("[0,2.5)"), None])
    );
    assert_eq!(
        values("bucket(d, [@1970-01-01])").await,
        s(&[
            Some("[1970-01-01,inf)"),
            Some("[-inf,1970-01-01)"),
            Some("[1970-01-01,inf)"),
            None
        ])
    );
    assert_eq!(
        values("abs(i - 10)").await,
        s(&[Some("5"), Some("15"), Some("9223372036854775797"), None])
    );
}
