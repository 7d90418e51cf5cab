//! The native runner against an independent reference: draws are recomputed
//! here as md5 hex strings (md-5 crate) and compared as strings, allocations
//! are worked out by hand in the comments.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use md5::{Digest, Md5};
use strat_alloc::Target;
use strat_check::ir::Program;
use strat_engine::catalog::checker_columns;
use strat_engine::run::{RunError, RunOutput, run_statement};

// ------------------------------------------------------------------ helpers

fn md5_hex(text: &str) -> String {
    let d = Md5::digest(text.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spec's draw: first 16 hex digits of md5("seed:key").
fn draw_hex(seed: u64, key: &str) -> String {
    md5_hex(&format!("{seed}:{key}"))[..16].to_string()
}

/// Keys of one stratum in draw order: ascending (r, k) as strings.
fn draw_sorted(seed: u64, keys: &[String]) -> Vec<String> {
    let mut v: Vec<(String, String)> = keys
        .iter()
        .map(|k| (draw_hex(seed, k), k.clone()))
        .collect();
    v.sort();
    v.into_iter().map(|(_, k)| k).collect()
}

fn program(ctx: &SessionContext, tables: &[(&str, &RecordBatch)], src: &str) -> Program {
    let mut env = strat_check::Env {
        tables: BTreeMap::new(),
        params: vec![],
    };
    for (name, batch) in tables {
        let mem = MemTable::try_new(batch.schema(), vec![vec![(*batch).clone()]]).unwrap();
        ctx.register_table(*name, Arc::new(mem)).unwrap();
        env.tables
            .insert(name.to_string(), Some(checker_columns(&batch.schema())));
    }
    let parsed = strat_syntax::parse(src);
    assert!(
        parsed.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        parsed.diagnostics
    );
    let checked = strat_check::check(src, &parsed.file, &env);
    assert!(
        checked.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        checked.diagnostics
    );
    checked.program.expect("a program")
}

async fn run(tables: &[(&str, &RecordBatch)], src: &str) -> Result<RunOutput, RunError> {
    let ctx = SessionContext::new();
    let p = program(&ctx, tables, src);
    run_statement(&ctx, &p, p.statements.len() - 1).await
}

/// The output as text rows ("∅" for NULL), one string per row, columns joined by `|`.
fn rows(out: &RunOutput) -> Vec<String> {
    let mut result = Vec::new();
    for b in &out.batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        return "∅".to_string();
                    }
                    match c.data_type() {
                        DataType::Int64 => c.as_primitive::<Int64Type>().value(r).to_string(),
                        DataType::Float64 => {
                            format!("{:?}", c.as_primitive::<Float64Type>().value(r))
                        }
                        DataType::Utf8 => c.as_string::<i32>().value(r).to_string(),
                        DataType::Utf8View => c.as_string_view().value(r).to_string(),
                        other => panic!("unexpected type {other}"),
                    }
                })
                .collect();
            result.push(cells.join("|"));
        }
    }
    result
}

fn members(ids_countries: &[(i64, Option<&str>)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("country", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(
                ids_countries.iter().map(|x| x.0).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(StringArray::from(
                ids_countries.iter().map(|x| x.1).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// ids 1..: `US` × us, `DE` × de, `FR` × fr, NULL × null, `IT` × it, in a
/// scrambled row order.
fn population(
    us: i64,
    de: i64,
    fr: i64,
    null: i64,
    it: i64,
) -> (RecordBatch, BTreeMap<Option<String>, Vec<String>>) {
    let mut v: Vec<(i64, Option<&str>)> = Vec::new();
    let mut id = 1;
    for (country, count) in [
        (Some("US"), us),
        (Some("DE"), de),
        (Some("FR"), fr),
        (None, null),
        (Some("IT"), it),
    ] {
        for _ in 0..count {
            v.push((id, country));
            id += 1;
        }
    }
    // Row order must not matter: reverse and interleave.
    v.reverse();
    let (even, odd): (Vec<_>, Vec<_>) = v.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let v: Vec<(i64, Option<&str>)> = odd.into_iter().chain(even).map(|(_, x)| *x).collect();
    let mut groups: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    for (id, c) in &v {
        groups
            .entry(c.map(String::from))
            .or_default()
            .push(id.to_string());
    }
    (members(&v), groups)
}

/// Expected exact sample rows `id|country|weight|stratum` for given sizes.
/// With `row_key` (no `unit`), a unit's key is `id U+001F country` (NULL `\N`).
fn expected_exact(
    seed: u64,
    row_key: bool,
    groups: &BTreeMap<Option<String>, Vec<String>>,
    sizes: &[(Option<&str>, usize)],
) -> Vec<String> {
    // BTreeMap<Option<String>> orders None first, then strings by bytes: stratum order.
    let mut out = Vec::new();
    for (country, ids) in groups {
        let n = sizes
            .iter()
            .find(|(c, _)| c.map(String::from) == *country)
            .map_or(0, |x| x.1);
        let weight = ids.len() as f64 / n as f64;
        let key = |id: &String| match (row_key, country) {
            (false, _) => id.clone(),
            (true, Some(c)) => format!("{id}\u{1f}{c}"),
            (true, None) => format!("{id}\u{1f}\\N"),
        };
        let keys: Vec<String> = ids.iter().map(key).collect();
        for k in draw_sorted(seed, &keys).into_iter().take(n) {
            let id = k.split('\u{1f}').next().unwrap();
            let c = country.clone().unwrap_or_else(|| "∅".into());
            out.push(format!("{id}|{c}|{weight:?}|{c}"));
        }
    }
    out
}

// ------------------------------------------------------------------ exact sampling

#[tokio::test]
async fn exact_proportional_with_null_stratum() {
    // N = 30: US 12, DE 9, FR 6, NULL 3. take 11: x = 4.4, 3.3, 2.2, 1.1;
    // floors 4+3+2+1 = 10, the leftover unit goes to the largest fraction (US .4).
    let (t, groups) = population(12, 9, 6, 3, 0);
    let out = run(
        &[("t", &t)],
        "sample t stratify by country take 11 seed 42 output id, country, _weight, _stratum",
    )
    .await
    .unwrap();
    let want = expected_exact(
        42,
        true,
        &groups,
        &[(Some("US"), 5), (Some("DE"), 3), (Some("FR"), 2), (None, 1)],
    );
    assert_eq!(rows(&out), want);
    let r = &out.report;
    assert_eq!(r.total_population, 30);
    assert_eq!(r.total_selected, 11);
    assert_eq!(r.seed, 42);
    let texts: Vec<&str> = r.strata.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["∅", "DE", "FR", "US"]);
    assert_eq!(r.strata[0].values, ["∅"]);
    assert_eq!(r.strata[3].target, Target::Exact(5));
    assert_eq!(r.strata[3].weight, 12.0 / 5.0);
    assert_eq!(r.strata[1].population, 9);
    assert_eq!(r.strata[1].selected, 3);
    // the output schema: the listed columns in order
    let names: Vec<&str> = out
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["id", "country", "_weight", "_stratum"]);
}

#[tokio::test]
async fn exact_percent_and_where() {
    // where drops FR; N = 12 + 9 + 3 = 24; take 50% = 12: 6, 4.5, 1.5 →
    // floors 6 + 4 + 1 = 11; DE and NULL tie at .5 → the smaller stratum start
    // u_h = first 8 hex digits of md5("7:" + stratum text) wins.
    let (t, groups) = population(12, 9, 6, 3, 0);
    let out = run(
        &[("t", &t)],
        "sample t where country is null or country != 'FR' stratify by country take 50% seed 7 \
         output id, country, _weight, _stratum",
    )
    .await
    .unwrap();
    let start_de = md5_hex("7:DE")[..8].to_string();
    let start_null = md5_hex("7:∅")[..8].to_string();
    let (de, null) = if start_de < start_null {
        (5, 1)
    } else {
        (4, 2)
    };
    let mut g = groups.clone();
    g.remove(&Some("FR".to_string()));
    let want = expected_exact(
        7,
        true,
        &g,
        &[(Some("US"), 6), (Some("DE"), de), (None, null)],
    );
    assert_eq!(rows(&out), want);
    assert_eq!(out.report.total_selected, 12);
}

#[tokio::test]
async fn unstratified_take_all_and_default_output() {
    let (t, groups) = population(3, 2, 0, 1, 0);
    let out = run(&[("t", &t)], "sample t seed 5").await.unwrap();
    // one stratum, every unit, in draw order; default output = source columns.
    let all: Vec<String> = groups.values().flatten().cloned().collect();
    let by_id: BTreeMap<String, String> = groups
        .iter()
        .flat_map(|(c, ids)| {
            ids.iter()
                .map(move |i| (i.clone(), c.clone().unwrap_or_else(|| "∅".into())))
        })
        .collect();
    let want: Vec<String> = draw_sorted(5, &all)
        .into_iter()
        .map(|i| format!("{i}|{}", by_id[&i]))
        .collect();
    // without unit the key is the row key "id\u{1f}country" (NULL as \N)
    let keys: Vec<String> = all
        .iter()
        .map(|i| format!("{i}\u{1f}{}", by_id[i].replace('∅', "\\N")))
        .collect();
    let want_by_row_key: Vec<String> = draw_sorted(5, &keys)
        .into_iter()
        .map(|k| k.replace('\u{1f}', "|").replace("\\N", "∅"))
        .collect();
    assert_eq!(rows(&out), want_by_row_key);
    assert_eq!(want.len(), 6);
    assert_eq!(out.report.strata.len(), 1);
    assert_eq!(out.report.strata[0].text, "");
    assert_eq!(out.report.strata[0].weight, 1.0);
}

// ------------------------------------------------------------------ Bernoulli

#[tokio::test]
async fn bernoulli_about() {
    let (t, groups) = population(40, 30, 20, 10, 0);
    let out = run(
        &[("t", &t)],
        "sample t unit id stratify by country take about 30% seed 11 output id, _weight, _stratum",
    )
    .await
    .unwrap();
    // t_h = floor(0.3 × 2^64) as 16 hex digits; keep iff r < t_h.
    let t_hex = format!("{:016x}", (3u128 << 64) / 10);
    let mut want = Vec::new();
    for (country, ids) in &groups {
        for id in draw_sorted(11, ids) {
            if draw_hex(11, &id) < t_hex {
                let c = country.clone().unwrap_or_else(|| "∅".into());
                want.push(format!("{id}|{:?}|{c}", 10.0f64 / 3.0));
            }
        }
    }
    assert!(!want.is_empty() && want.len() < 100);
    assert_eq!(rows(&out), want);
    assert!(out.report.strata.iter().all(|s| s.weight == 10.0 / 3.0));
}

// ------------------------------------------------------------------ rules

#[tokio::test]
async fn rules_all_none_count_and_method() {
    // US 12, DE 9, FR 6, NULL 3, IT 10 (N = 40), take 20.
    // US => all (12), FR => none (0), DE => count 2; NULL matches no rule
    // (NULL = 'US' is not true) and goes with IT to proportional:
    // R = 20 − 14 = 6 over 3 and 10: 1.38…, 4.61… → 1 + 4, leftover to IT → 1, 5.
    let (t, groups) = population(12, 9, 6, 3, 10);
    // NOTE: `country ='US'` without a space after `=`: the grammar's
    // `"=" ~ !">"` swallows the following whitespace, and the parser then reads
    // `= ` as `>=` (a strat-syntax bug, reported; not this crate's).
    let src = "sample t unit id stratify by country take 20
      allocate {
        country ='US' => all
        country ='FR' => none
        country in ('DE') => count 2
        else => proportional
      }
      seed 3 output id, country, _weight, _stratum";
    let out = run(&[("t", &t)], src).await.unwrap();
    let want = expected_exact(
        3,
        false,
        &groups,
        &[
            (Some("US"), 12),
            (Some("DE"), 2),
            (Some("FR"), 0),
            (None, 1),
            (Some("IT"), 5),
        ],
    );
    assert_eq!(rows(&out), want);
    let fr = out.report.strata.iter().find(|s| s.text == "FR").unwrap();
    assert_eq!(
        (fr.target.clone(), fr.selected, fr.weight),
        (Target::Exact(0), 0, 0.0)
    );
    assert!(
        out.report.warnings.iter().any(|w| w.contains("`FR`")),
        "{:?}",
        out.report.warnings
    );
    assert!(
        !out.report
            .warnings
            .iter()
            .any(|w| w.contains("no stratum has")),
        "{:?}",
        out.report.warnings
    );
    // a rule value that no stratum has is reported with the closest value
    let out = run(
        &[("t", &t)],
        "sample t unit id stratify by country take all allocate { country in ('IS', 'DEU') => none } seed 3",
    )
    .await
    .unwrap();
    let w: Vec<&String> = out
        .report
        .warnings
        .iter()
        .filter(|w| w.contains("no stratum has"))
        .collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[1].contains("\"DEU\"") && w[1].contains("closest existing value is \"DE\""),
        "{w:?}"
    );
    // case first: "us" is closest to "US" (not to a value one edit away, like "AR")
    let out = run(
        &[("t", &t)],
        "sample t unit id stratify by country take all allocate { country = 'us' => none } seed 3",
    )
    .await
    .unwrap();
    let w: Vec<&String> = out
        .report
        .warnings
        .iter()
        .filter(|w| w.contains("no stratum has"))
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("closest existing value is \"US\""), "{w:?}");
}

#[tokio::test]
async fn rule_errors_state_the_numbers() {
    let (t, _) = population(12, 9, 6, 3, 10);
    let err = run(
        &[("t", &t)],
        "sample t stratify by country take 10 allocate { country ='US' => all } seed 1",
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("12") && msg.contains("10"), "{msg}");
    let err = run(&[("t", &t)], "sample t take 41 seed 1")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("41") && err.to_string().contains("40"),
        "{err}"
    );
}

// ------------------------------------------------------------------ units

fn events() -> RecordBatch {
    // member, country, ev; member 4 has a NULL-free single row, member NULL one row.
    let data: &[(Option<i64>, &str, i64)] = &[
        (Some(1), "US", 9),
        (Some(2), "DE", 1),
        (Some(1), "US", 10),
        (Some(3), "US", 5),
        (Some(2), "DE", 2),
        (None, "US", 7),
        (Some(1), "US", 9),
        (Some(4), "DE", 3),
        (Some(5), "US", 4),
        (Some(6), "DE", 8),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("member", DataType::Int64, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("ev", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(
                data.iter().map(|x| x.0).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(StringArray::from(
                data.iter().map(|x| x.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                data.iter().map(|x| x.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn units_with_several_rows_output_all_rows_in_order() {
    // Units: US {1, 3, 5}, DE {2, 4, 6}; the NULL member row is left out.
    // take all: every unit; rows by stratum (DE < US), draw order, then row key
    // (bytes: "1\x1fUS\x1f10" < "1\x1fUS\x1f9", and the duplicate row twice).
    let ev = events();
    let out = run(
        &[("events", &ev)],
        "sample events unit member stratify by country seed 9 output member, ev, _weight, _stratum",
    )
    .await
    .unwrap();
    let rows_of = |m: &str| -> Vec<&str> {
        match m {
            "1" => vec!["10", "9", "9"],
            "2" => vec!["1", "2"],
            "3" => vec!["5"],
            "4" => vec!["3"],
            "5" => vec!["4"],
            _ => vec!["8"],
        }
    };
    let mut want = Vec::new();
    for (c, ms) in [("DE", ["2", "4", "6"]), ("US", ["1", "3", "5"])] {
        let ms: Vec<String> = ms.iter().map(|s| s.to_string()).collect();
        for m in draw_sorted(9, &ms) {
            for e in rows_of(&m) {
                want.push(format!("{m}|{e}|1.0|{c}"));
            }
        }
    }
    assert_eq!(rows(&out), want);
    assert_eq!(out.report.null_units, 1);
    assert_eq!(out.report.total_population, 6);
    assert!(
        out.report
            .warnings
            .iter()
            .any(|w| w.contains("NULL `member`"))
    );

    // take 2 (1 per stratum): the first unit in draw order of each stratum, all its rows.
    let out = run(
        &[("events", &ev)],
        "sample events unit member stratify by country take 2 seed 9 output member, ev, _weight",
    )
    .await
    .unwrap();
    let mut want = Vec::new();
    for ms in [["2", "4", "6"], ["1", "3", "5"]] {
        let ms: Vec<String> = ms.iter().map(|s| s.to_string()).collect();
        let m = draw_sorted(9, &ms).remove(0);
        for e in rows_of(&m) {
            want.push(format!("{m}|{e}|3.0"));
        }
    }
    assert_eq!(rows(&out), want);
}

#[tokio::test]
async fn a_unit_spanning_two_strata_is_an_error() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("member", DataType::Int64, true),
        Field::new("country", DataType::Utf8, true),
    ]));
    let t = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 1, 3])) as ArrayRef,
            Arc::new(StringArray::from(vec![
                Some("US"),
                Some("DE"),
                None,
                Some("US"),
            ])),
        ],
    )
    .unwrap();
    let err = run(
        &[("t", &t)],
        "sample t unit member stratify by country take 1 seed 1",
    )
    .await
    .unwrap_err();
    match &err {
        RunError::UnitSpansStrata {
            unit,
            first,
            second,
            ..
        } => {
            assert_eq!(
                (unit.as_str(), first.as_str(), second.as_str()),
                ("1", "∅", "US")
            );
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("`member` = 1") && msg.contains("`∅`") && msg.contains("`US`"),
        "{msg}"
    );
}

#[tokio::test]
async fn identical_rows_form_one_unit_without_unit() {
    let t = members(&[(1, Some("a")), (1, Some("a")), (2, Some("a")), (3, None)]);
    let out = run(&[("t", &t)], "sample t take 2 seed 4 output id, _weight")
        .await
        .unwrap();
    // units: "1\x1fa" (2 rows), "2\x1fa", "3\x1f\N"
    let keys: Vec<String> = ["1\u{1f}a", "2\u{1f}a", "3\u{1f}\\N"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut want = Vec::new();
    for k in draw_sorted(4, &keys).into_iter().take(2) {
        let id = k.split('\u{1f}').next().unwrap().to_string();
        let reps = if id == "1" { 2 } else { 1 };
        for _ in 0..reps {
            want.push(format!("{id}|1.5"));
        }
    }
    assert_eq!(rows(&out), want);
    assert_eq!(out.report.total_population, 3);
}

// ------------------------------------------------------------------ stratum order

#[tokio::test]
async fn buckets_sort_by_interval_and_output_stratum_values() {
    // labels "[-inf,5)", "[5,10)", "[10,inf)": by bytes "[10,inf)" < "[5,10)",
    // but stratum order is by interval. NULL age is its own stratum, first.
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("age", DataType::Float64, true),
        Field::new("d", DataType::Date32, true),
    ]));
    let ages = [
        Some(1.0),
        Some(12.0),
        Some(7.5),
        None,
        Some(5.0),
        Some(10.0),
        Some(-3.0),
        Some(9.99),
    ];
    let t = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from((1..=8).collect::<Vec<i64>>())) as ArrayRef,
            Arc::new(Float64Array::from(ages.to_vec())),
            Arc::new(Date32Array::from(vec![17683; 8])),
        ],
    )
    .unwrap();
    let out = run(
        &[("t", &t)],
        "sample t unit id stratify by bucket(age, [5, 10]) as band seed 2 output id, band, _stratum",
    )
    .await
    .unwrap();
    let texts: Vec<&str> = out.report.strata.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["∅", "[-inf,5)", "[5,10)", "[10,inf)"]);
    let mut want = Vec::new();
    for (label, ids) in [
        ("∅", vec!["4"]),
        ("[-inf,5)", vec!["1", "7"]),
        ("[5,10)", vec!["3", "5", "8"]),
        ("[10,inf)", vec!["2", "6"]),
    ] {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        for id in draw_sorted(2, &ids) {
            let stratum = label.to_string();
            want.push(format!("{id}|{label}|{stratum}"));
        }
    }
    assert_eq!(rows(&out), want);
}

#[tokio::test]
async fn numeric_and_boolean_stratum_order() {
    // ints numerically (-5 < 2 < 10, not "-5" < "10" < "2"), booleans false < true.
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("k", DataType::Int64, true),
    ]));
    let t = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])) as ArrayRef,
            Arc::new(Int64Array::from(vec![
                Some(10),
                Some(2),
                Some(-5),
                None,
                Some(2),
            ])),
        ],
    )
    .unwrap();
    let out = run(
        &[("t", &t)],
        "sample t unit id stratify by k, k > 3 as big seed 1",
    )
    .await
    .unwrap();
    let texts: Vec<&str> = out.report.strata.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["∅/∅", "-5/false", "2/false", "10/true"]);
}

// ------------------------------------------------------------------ more methods

#[tokio::test]
async fn neyman_uses_population_sd_per_stratum() {
    // A: v = 1,3,1,3 (S = 1, N = 4); B: v = 0,10,0,10,0,10 (S = 5, N = 6), plus
    // one B unit with NULL v (counted in N_h = 7, not in S_h).
    // weights N_h·S_h = 4 and 35; take 5: x = 20/39 = .51, 175/39 = 4.49 →
    // floors 0 + 4, the leftover goes to A (.51 > .49) → A 1, B 4.
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("g", DataType::Utf8, false),
        Field::new("v", DataType::Int64, true),
    ]));
    let data: Vec<(i64, &str, Option<i64>)> = vec![
        (1, "A", Some(1)),
        (2, "A", Some(3)),
        (3, "A", Some(1)),
        (4, "A", Some(3)),
        (5, "B", Some(0)),
        (6, "B", Some(10)),
        (7, "B", Some(0)),
        (8, "B", Some(10)),
        (9, "B", Some(0)),
        (10, "B", Some(10)),
        (11, "B", None),
    ];
    let t = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(
                data.iter().map(|x| x.0).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(StringArray::from(
                data.iter().map(|x| x.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                data.iter().map(|x| x.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let out = run(
        &[("t", &t)],
        "sample t unit id stratify by g take 5 allocate neyman(v) seed 8 output id, _weight",
    )
    .await
    .unwrap();
    let targets: Vec<Target> = out.report.strata.iter().map(|s| s.target.clone()).collect();
    assert_eq!(targets, [Target::Exact(1), Target::Exact(4)]);
    let a: Vec<String> = (1..=4).map(|i| i.to_string()).collect();
    let b: Vec<String> = (5..=11).map(|i| i.to_string()).collect();
    let mut want: Vec<String> = draw_sorted(8, &a)
        .into_iter()
        .take(1)
        .map(|i| format!("{i}|4.0"))
        .collect();
    want.extend(
        draw_sorted(8, &b)
            .into_iter()
            .take(4)
            .map(|i| format!("{i}|1.75")),
    );
    assert_eq!(rows(&out), want);
}

#[tokio::test]
async fn bernoulli_with_rate_rule() {
    // N = 100: US 40 (rate 50% → p = 1/2), DE 30, FR 20, NULL 10 share
    // R = 30 − 20 = 10 proportionally: p = 10/60 = 1/6 each.
    let (t, groups) = population(40, 30, 20, 10, 0);
    let out = run(
        &[("t", &t)],
        "sample t unit id stratify by country take about 30%
         allocate { country ='US' => rate 50% else => proportional } seed 12 output id, _weight",
    )
    .await
    .unwrap();
    let half = format!("{:016x}", 1u128 << 63);
    let sixth = format!("{:016x}", (1u128 << 64) / 6);
    let mut want = Vec::new();
    for (country, ids) in &groups {
        let (t, w) = if country.as_deref() == Some("US") {
            (&half, 2.0)
        } else {
            (&sixth, 6.0)
        };
        for id in draw_sorted(12, ids) {
            if draw_hex(12, &id) < *t {
                want.push(format!("{id}|{w:?}"));
            }
        }
    }
    assert_eq!(rows(&out), want);
    let us = out.report.strata.iter().find(|s| s.text == "US").unwrap();
    assert_eq!(us.weight, 2.0);
}

#[tokio::test]
async fn partitioning_and_row_order_do_not_matter() {
    let ev = events();
    let src = "sample events unit member stratify by country take 3 seed 21";
    let one = run(&[("events", &ev)], src).await.unwrap();
    // the same rows split over three partitions, in another order
    let ctx = SessionContext::new();
    let parts: Vec<Vec<RecordBatch>> = vec![
        vec![ev.slice(6, 4)],
        vec![ev.slice(0, 3)],
        vec![ev.slice(3, 3)],
    ];
    let mem = MemTable::try_new(ev.schema(), parts).unwrap();
    ctx.register_table("events", Arc::new(mem)).unwrap();
    let mut env = strat_check::Env {
        tables: BTreeMap::new(),
        params: vec![],
    };
    env.tables
        .insert("events".into(), Some(checker_columns(&ev.schema())));
    let parsed = strat_syntax::parse(src);
    let p = strat_check::check(src, &parsed.file, &env).program.unwrap();
    let other = run_statement(&ctx, &p, 0).await.unwrap();
    assert_eq!(rows(&one), rows(&other));
    assert_eq!(one.report, other.report);
}

// ------------------------------------------------------------------ end to end on CSV

#[tokio::test]
async fn csv_members_with_exclusion_against_a_plain_reference() {
    // compile() binds the shipped CSVs; the reference below reads them as text.
    let text = "table members = \"data/members.csv\"
        table holdout = \"data/last_test_set.csv\"
        sample members
          where tenure_days >= 30 and not is_kids_profile
          unit member_id
          exclude units in holdout
          stratify by country, plan
          take 500
          seed 99
          output member_id, country, plan, _weight, _stratum";
    let ctx = SessionContext::new();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/test.strat");
    let compiled =
        strat_engine::compile(&ctx, Some(&file), text, &strat_engine::Options::default()).await;
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let program = compiled.program.unwrap();
    let out = run_statement(&ctx, &program, 0).await.unwrap();

    // Reference: plain text parsing, exact integer largest remainder.
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data");
    let holdout: std::collections::HashSet<String> =
        std::fs::read_to_string(data.join("last_test_set.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(String::from)
            .collect();
    let members = std::fs::read_to_string(data.join("members.csv")).unwrap();
    let mut strata: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut excluded = 0;
    for line in members.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (id, country, plan, tenure, kids) = (f[0], f[1], f[2], f[4], f[7]);
        if tenure.parse::<i64>().unwrap() < 30 || kids == "true" {
            continue;
        }
        if holdout.contains(id) {
            excluded += 1;
            continue;
        }
        strata
            .entry((country.to_string(), plan.to_string()))
            .or_default()
            .push(id.to_string());
    }
    let n: u64 = strata.values().map(|v| v.len() as u64).sum();
    let keys: Vec<&(String, String)> = strata.keys().collect();
    let mut sizes: Vec<u64> = strata.values().map(|v| 500 * v.len() as u64 / n).collect();
    let rema: Vec<u64> = strata.values().map(|v| 500 * v.len() as u64 % n).collect();
    let start = |h: usize| md5_hex(&format!("99:{}/{}", keys[h].0, keys[h].1))[..8].to_string();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| {
        rema[b]
            .cmp(&rema[a])
            .then_with(|| start(a).cmp(&start(b)))
            .then(a.cmp(&b))
    });
    let leftover = 500 - sizes.iter().sum::<u64>();
    for &h in order.iter().take(leftover as usize) {
        sizes[h] += 1;
    }
    let mut want = Vec::new();
    for (h, ((country, plan), ids)) in strata.iter().enumerate() {
        let w = ids.len() as f64 / sizes[h] as f64;
        for id in draw_sorted(99, ids).into_iter().take(sizes[h] as usize) {
            want.push(format!("{id}|{country}|{plan}|{w:?}|{country}/{plan}"));
        }
    }
    assert_eq!(want.len(), 500);
    assert_eq!(rows(&out), want);
    assert_eq!(out.report.excluded_units, excluded);
    assert!(excluded > 0);
    assert_eq!(out.report.total_population, n);
}

/// Proportional sizes by exact largest remainder, ties to the smaller stratum
/// start (first 8 hex digits of md5("seed:text")), then stratum order.
fn proportional(seed: u64, strata: &[(String, usize)], total: u64) -> Vec<u64> {
    let n: u64 = strata.iter().map(|s| s.1 as u64).sum();
    let mut sizes: Vec<u64> = strata.iter().map(|s| total * s.1 as u64 / n).collect();
    let rema: Vec<u64> = strata.iter().map(|s| total * s.1 as u64 % n).collect();
    let start = |h: usize| md5_hex(&format!("{seed}:{}", strata[h].0))[..8].to_string();
    let mut order: Vec<usize> = (0..strata.len()).collect();
    order.sort_by(|&a, &b| {
        rema[b]
            .cmp(&rema[a])
            .then_with(|| start(a).cmp(&start(b)))
            .then(a.cmp(&b))
    });
    let leftover = total - sizes.iter().sum::<u64>();
    for &h in order.iter().take(leftover as usize) {
        sizes[h] += 1;
    }
    sizes
}

#[tokio::test]
async fn a_statement_as_source_multiplies_weights_and_can_be_excluded() {
    let (t, groups) = population(12, 9, 6, 3, 0);
    let src = "a = sample t unit id stratify by country take 20 seed 1 output id, country, _weight
        b = sample a unit id stratify by country take 5 seed 2 output id, country, _weight
        rest = sample t unit id exclude units in a seed 3 output id";
    let ctx = SessionContext::new();
    let p = program(&ctx, &[("t", &t)], src);

    // phase 1: 12, 9, 6, 3 of 30 → 8, 6, 4, 2 (exact), weight 1.5 each
    let texts: Vec<(String, usize)> = groups
        .iter()
        .map(|(c, ids)| (c.clone().unwrap_or_else(|| "∅".into()), ids.len()))
        .collect();
    let sizes1 = proportional(1, &texts, 20);
    assert_eq!(sizes1, [2, 6, 4, 8]);
    let phase1: Vec<(String, Vec<String>)> = groups
        .values()
        .zip(&texts)
        .zip(&sizes1)
        .map(|((ids, (text, _)), &k)| {
            (
                text.clone(),
                draw_sorted(1, ids).into_iter().take(k as usize).collect(),
            )
        })
        .collect();
    // phase 2: 8, 6, 4, 2 of 20 → take 5 (ties by start)
    let texts2: Vec<(String, usize)> = phase1
        .iter()
        .map(|(t, ids)| (t.clone(), ids.len()))
        .collect();
    let sizes2 = proportional(2, &texts2, 5);
    let mut want = Vec::new();
    for ((text, ids), &k) in phase1.iter().zip(&sizes2) {
        let w = ids.len() as f64 / k as f64 * 1.5;
        for id in draw_sorted(2, ids).into_iter().take(k as usize) {
            want.push(format!("{id}|{text}|{w:?}"));
        }
    }
    let b = run_statement(&ctx, &p, 1).await.unwrap();
    assert_eq!(rows(&b), want);

    // exclude: every unit of t not in a, in draw order (one unstratified stratum)
    let chosen: std::collections::HashSet<String> =
        phase1.iter().flat_map(|(_, ids)| ids.clone()).collect();
    let others: Vec<String> = groups
        .values()
        .flatten()
        .filter(|i| !chosen.contains(*i))
        .cloned()
        .collect();
    let rest = run_statement(&ctx, &p, 2).await.unwrap();
    assert_eq!(rows(&rest), draw_sorted(3, &others));
    assert_eq!(rest.report.excluded_units, 20);
}

// ------------------------------------------------------------------ splits

/// The stratum start U: the first 8 hex digits of md5("seed:text").
fn start_u(seed: u64, text: &str) -> u64 {
    u64::from_str_radix(&md5_hex(&format!("{seed}:{text}"))[..8], 16).unwrap()
}

/// Exact split boundaries B_i = floor(N × C_i + U / 2^32) for cumulative shares
/// C_i = num/den (B_last = N), in integers: floor((N·num·2^32 + U·den) / (den·2^32)).
fn split_bounds(seed: u64, text: &str, n: u64, cumulative: &[(u64, u64)]) -> Vec<u64> {
    let u = u128::from(start_u(seed, text));
    let mut b: Vec<u64> = cumulative
        .iter()
        .map(|&(num, den)| {
            let (num, den) = (u128::from(num), u128::from(den));
            ((u128::from(n) * num * (1 << 32) + u * den) / (den * (1 << 32))) as u64
        })
        .collect();
    *b.last_mut().unwrap() = n;
    b
}

/// Expected split rows `id|country|split|weight|stratum`: by split, stratum
/// order, draw order; the units of each stratum cut at `bounds`.
fn expected_split(
    seed: u64,
    groups: &BTreeMap<Option<String>, Vec<String>>,
    names: &[&str],
    cumulative: &[(u64, u64)],
) -> (Vec<String>, BTreeMap<String, Vec<u64>>) {
    let mut per_split: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    let mut sizes = BTreeMap::new();
    for (country, ids) in groups {
        let text = country.clone().unwrap_or_else(|| "∅".into());
        let bounds = split_bounds(seed, &text, ids.len() as u64, cumulative);
        let sorted = draw_sorted(seed, ids);
        let mut prev = 0;
        let mut s = Vec::new();
        for (i, &b) in bounds.iter().enumerate() {
            for id in &sorted[prev as usize..b as usize] {
                per_split[i].push(format!("{id}|{text}|{}|1.0|{text}", names[i]));
            }
            s.push(b - prev);
            prev = b;
        }
        sizes.insert(text, s);
    }
    (per_split.concat(), sizes)
}

#[tokio::test]
async fn exact_split_80_10_10() {
    // Strata (stratum order): ∅ 3, DE 9, FR 6, US 12 (plus IT 7).
    // Sizes are floor or ceil of P_i × N_h; e.g. US: T = 9.6, 10.8, 12, so
    // train ∈ {9, 10}, validation ∈ {0, 1, 2} with B_2 ∈ {10, 11}.
    let (t, groups) = population(12, 9, 6, 3, 7);
    let out = run(
        &[("t", &t)],
        "split t unit id stratify by country into train 80%, validation 10%, test 10% seed 7
         output id, country, _split, _weight, _stratum",
    )
    .await
    .unwrap();
    let names = ["train", "validation", "test"];
    let (want, sizes) = expected_split(7, &groups, &names, &[(8, 10), (9, 10), (10, 10)]);
    assert_eq!(rows(&out), want);
    // Each size is floor or ceil of P_i × N_h, and they sum to N_h.
    for (text, s) in &sizes {
        let n = groups
            .iter()
            .find(|&(c, _)| c.clone().unwrap_or_else(|| "∅".into()) == *text)
            .unwrap()
            .1
            .len() as u64;
        assert_eq!(s.iter().sum::<u64>(), n);
        for (&size, pct) in s.iter().zip([80u64, 10, 10]) {
            let exact = n * pct;
            assert!(
                size == exact / 100 || size == exact.div_ceil(100),
                "{text}: {size} for {pct}% of {n}"
            );
        }
    }
    // The first units in draw order go to train.
    let us: Vec<String> = draw_sorted(7, &groups[&Some("US".to_string())]);
    let train_us: Vec<String> = rows(&out)
        .iter()
        .filter(|r| r.ends_with("|train|1.0|US"))
        .map(|r| r.split('|').next().unwrap().to_string())
        .collect();
    assert_eq!(train_us, us[..train_us.len()]);
    assert!(train_us.len() == 9 || train_us.len() == 10);
    // The report: per stratum N_h and the per-split counts.
    let r = &out.report;
    assert_eq!(r.total_population, 37);
    assert_eq!(r.total_selected, 37);
    let texts: Vec<&str> = r.strata.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["∅", "DE", "FR", "IT", "US"]);
    for s in &r.strata {
        assert_eq!(s.selected, s.population);
        assert_eq!(s.target, Target::Exact(s.population));
        let counts: Vec<u64> = s.split_counts.iter().map(|x| x.1).collect();
        assert_eq!(counts, sizes[&s.text]);
        let split_names: Vec<&str> = s.split_counts.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(split_names, names);
    }
    let totals: Vec<(String, u64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), sizes.values().map(|s| s[i]).sum()))
        .collect();
    assert_eq!(r.split_totals, totals);
}

#[tokio::test]
async fn about_split_uses_thresholds() {
    // t_1 = floor(0.5 × 2^64) = 8000000000000000, t_2 = floor(0.8 × 2^64) =
    // cccccccccccccccc (0.8 × 2^64 = 14757395258967641292.8); the last split
    // takes the rest. A unit's split depends only on its own draw.
    let (t, groups) = population(20, 15, 0, 0, 5);
    let out = run(
        &[("t", &t)],
        "split t unit id stratify by country into about a 50%, b 30%, c 20% seed 11
         output id, _split",
    )
    .await
    .unwrap();
    let which = |id: &str| {
        let r = draw_hex(11, id);
        if r.as_str() < "8000000000000000" {
            "a"
        } else if r.as_str() < "cccccccccccccccc" {
            "b"
        } else {
            "c"
        }
    };
    let mut want = Vec::new();
    for s in ["a", "b", "c"] {
        for ids in groups.values() {
            for id in draw_sorted(11, ids) {
                if which(&id) == s {
                    want.push(format!("{id}|{s}"));
                }
            }
        }
    }
    assert_eq!(want.len(), 40);
    assert_eq!(rows(&out), want);
    // Stable: the same units, with more units in the table, keep their split.
    let (t2, _) = population(40, 15, 0, 0, 5);
    let out2 = run(
        &[("t", &t2)],
        "split t unit id stratify by country into about a 50%, b 30%, c 20% seed 11
         output id, _split",
    )
    .await
    .unwrap();
    for row in rows(&out2) {
        let (id, s) = row.split_once('|').unwrap();
        assert_eq!(which(id), s, "{id}");
    }
    let counts: u64 = out
        .report
        .strata
        .iter()
        .flat_map(|s| s.split_counts.iter().map(|x| x.1))
        .sum();
    assert_eq!(counts, 40);
}

#[tokio::test]
async fn three_folds() {
    // into 3 folds = fold_1 1/3, fold_2 1/3, fold_3 1/3 (exact thirds):
    // B_i = floor(N_h × i/3 + u_h); e.g. N = 9 gives 3, 3, 3 whatever u_h,
    // N = 7 gives two folds of 2 and one of 3.
    let (t, groups) = population(7, 9, 6, 0, 1);
    let out = run(
        &[("t", &t)],
        "split t unit id stratify by country into 3 folds seed 3
         output id, country, _split, _weight, _stratum",
    )
    .await
    .unwrap();
    let (want, sizes) = expected_split(
        3,
        &groups,
        &["fold_1", "fold_2", "fold_3"],
        &[(1, 3), (2, 3), (3, 3)],
    );
    assert_eq!(rows(&out), want);
    assert_eq!(sizes["DE"], [3, 3, 3]);
    assert_eq!(sizes["FR"], [2, 2, 2]);
    let mut us = sizes["US"].clone();
    us.sort();
    assert_eq!(us, [2, 2, 3]);
    assert_eq!(sizes["IT"].iter().sum::<u64>(), 1);
}

#[tokio::test]
async fn split_of_a_named_sample_keeps_its_weight() {
    // a: proportional 20 of 30 → ∅ 2, DE 6, FR 4, US 8, weight 1.5 each.
    // split a 50/50 by country: B_1 = floor(N_h / 2 + u_h); `_weight` stays 1.5.
    let (t, groups) = population(12, 9, 6, 3, 0);
    let src = "a = sample t unit id stratify by country take 20 seed 1 output id, country, _weight
        split a unit id stratify by country into train 50%, test 50% seed 5";
    let texts: Vec<(String, usize)> = groups
        .iter()
        .map(|(c, ids)| (c.clone().unwrap_or_else(|| "∅".into()), ids.len()))
        .collect();
    let sizes1 = proportional(1, &texts, 20);
    assert_eq!(sizes1, [2, 6, 4, 8]);
    let mut phase1: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    for ((c, ids), &k) in groups.iter().zip(&sizes1) {
        phase1.insert(
            c.clone(),
            draw_sorted(1, ids).into_iter().take(k as usize).collect(),
        );
    }
    let (want, sizes) = expected_split(5, &phase1, &["train", "test"], &[(1, 2), (2, 2)]);
    // default output: the source's columns (id, country, _weight), then _split
    let want: Vec<String> = want
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split('|').collect();
            format!("{}|{}|1.5|{}", f[0], f[1], f[2])
        })
        .collect();
    let out = run(&[("t", &t)], src).await.unwrap();
    assert_eq!(out.schema.fields().len(), 4);
    assert_eq!(out.schema.field(3).name(), "_split");
    assert_eq!(rows(&out), want);
    assert_eq!(sizes["US"], [4, 4]);
    assert_eq!(out.report.total_population, 20);
    assert!(out.report.strata.iter().all(|s| s.weight == 1.0));

    // Without a source `_weight`, a split's `_weight` is 1.
    let out = run(
        &[("t", &t)],
        "split t unit id into x 50%, y 50% seed 2 output id, _weight",
    )
    .await
    .unwrap();
    assert_eq!(out.batches[0].num_rows(), 30);
    assert!(rows(&out).iter().all(|r| r.ends_with("|1.0")));
}

#[tokio::test]
async fn split_with_multi_row_units_keeps_units_together() {
    // events: units DE {2, 4, 6}, US {1, 3, 5}; member 1 has three rows.
    let ev = events();
    let out = run(
        &[("events", &ev)],
        "split events unit member stratify by country into a 50%, b 50% seed 9
         output member, _split",
    )
    .await
    .unwrap();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for r in rows(&out) {
        let (m, s) = r.split_once('|').unwrap();
        if let Some(prev) = seen.insert(m.to_string(), s.to_string()) {
            assert_eq!(prev, s, "unit {m} in two splits");
        }
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(out.batches[0].num_rows(), 9);
}

// ------------------------------------------------------------------ unit aggregates

/// Events with a member who moved (1: US → DE → US by row order, DE latest by
/// ts), a tie on ts (3: IT and US at ts 4) and NULL ts (3, 4).
fn moves() -> RecordBatch {
    let data: &[(i64, &str, Option<i64>, Option<i64>)] = &[
        (1, "US", Some(1), Some(10)),
        (3, "IT", Some(4), Some(2)),
        (1, "DE", Some(5), Some(20)),
        (2, "FR", Some(2), Some(7)),
        (3, "US", Some(4), Some(1)),
        (4, "SE", None, None),
        (1, "US", Some(3), Some(30)),
        (3, "ZZ", None, Some(3)),
        (4, "NO", None, Some(5)),
        (5, "DE", Some(1), Some(1)),
        (5, "DE", Some(2), Some(1)),
        (6, "NL", Some(7), Some(2)),
        (5, "DE", Some(3), Some(1)),
        (6, "NL", Some(8), Some(3)),
        (5, "DE", Some(9), None),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("member", DataType::Int64, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, true),
        Field::new("x", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(
                data.iter().map(|r| r.0).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(StringArray::from(
                data.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                data.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                data.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// member → the (deduplicated) rest of its output rows, and the members in
/// the order they first appear.
fn by_member(out: &RunOutput) -> (BTreeMap<String, String>, Vec<String>) {
    let mut map = BTreeMap::new();
    let mut order = Vec::new();
    for r in rows(out) {
        let (m, rest) = r.split_once('|').unwrap();
        if let Some(prev) = map.insert(m.to_string(), rest.to_string()) {
            assert_eq!(prev, rest, "member {m}: values differ between its rows");
        } else {
            order.push(m.to_string());
        }
    }
    (map, order)
}

#[tokio::test]
async fn last_and_count_aggregates_stratify_units() {
    // last(country by ts): 1 moved to DE (ts 5); 2 FR; 3: ts 4 ties IT/US, the
    // larger x wins → US (the NULL-ts ZZ row is never chosen); 4: all ts NULL,
    // the larger x → SE; 5 DE; 6 NL.
    // count(*): 3, 1, 3, 2, 4, 2 → [2,4), [-inf,2), [2,4), [2,4), [4,inf), [2,4).
    // Stratum order: DE/[2,4) 1, DE/[4,inf) 5, FR/[-inf,2) 2, NL/[2,4) 6,
    // SE/[2,4) 4, US/[2,4) 3 (each a single unit).
    let t = moves();
    let out = run(
        &[("ev", &t)],
        "sample ev unit member
           stratify by last(country by ts) as latest, bucket(count(*), [2, 4]) as activity
           seed 3 output member, latest, activity, _stratum, _weight",
    )
    .await
    .unwrap();
    let (map, order) = by_member(&out);
    assert_eq!(order, ["1", "5", "2", "6", "4", "3"]);
    let want: BTreeMap<String, String> = [
        ("1", "DE|[2,4)|DE/[2,4)|1.0"),
        ("2", "FR|[-inf,2)|FR/[-inf,2)|1.0"),
        ("3", "US|[2,4)|US/[2,4)|1.0"),
        ("4", "SE|[2,4)|SE/[2,4)|1.0"),
        ("5", "DE|[4,inf)|DE/[4,inf)|1.0"),
        ("6", "NL|[2,4)|NL/[2,4)|1.0"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(map, want);
    assert_eq!(out.batches[0].num_rows(), 15);

    // first(country by ts): 1 → US (ts 1); 3 → US (tie at ts 4, larger x; the
    // NULL ts sorts last, so not ZZ); 4 → SE (all NULL).
    let out = run(
        &[("ev", &t)],
        "sample ev unit member stratify by first(country by ts) as f seed 3 output member, f",
    )
    .await
    .unwrap();
    let (map, _) = by_member(&out);
    assert_eq!(map["1"], "US");
    assert_eq!(map["3"], "US");
    assert_eq!(map["4"], "SE");
    assert_eq!(map["5"], "DE");

    // Over eligible rows only: `where x is not null` drops 4's SE row and 5's
    // ts-9 row: 4 → NO with count 1; 5 → count 3.
    let out = run(
        &[("ev", &t)],
        "sample ev where x is not null unit member
           stratify by last(country by ts) as latest, bucket(count(*), [2, 4]) as activity
           seed 3 output member, latest, activity",
    )
    .await
    .unwrap();
    let (map, _) = by_member(&out);
    assert_eq!(map["4"], "NO|[-inf,2)");
    assert_eq!(map["5"], "DE|[2,4)");
}

#[tokio::test]
async fn last_ties_go_to_the_larger_value_whatever_the_row_order() {
    // Member 7: three rows at the same latest ts 9 with x = 5, 8, NULL in
    // every row order → 8 (the larger x; NULL last).
    let perms: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let vals = [Some(5i64), Some(8), None];
    for p in perms {
        let mut x: Vec<Option<i64>> = p.iter().map(|&i| vals[i]).collect();
        x.push(Some(100)); // an earlier ts: never the last
        let schema = Arc::new(Schema::new(vec![
            Field::new("m", DataType::Int64, true),
            Field::new("ts", DataType::Int64, true),
            Field::new("x", DataType::Int64, true),
        ]));
        let t = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![7, 7, 7, 7])) as ArrayRef,
                Arc::new(Int64Array::from(vec![9, 9, 9, 1])),
                Arc::new(Int64Array::from(x)),
            ],
        )
        .unwrap();
        let out = run(
            &[("t", &t)],
            "sample t unit m stratify by last(x by ts) as v, first(x by ts) as f seed 1
             output m, v, f",
        )
        .await
        .unwrap();
        let (map, _) = by_member(&out);
        assert_eq!(map["7"], "8|100", "{p:?}");
    }
}

#[tokio::test]
async fn numeric_unit_aggregates() {
    // x per member (NULLs ignored): 1: 10 20 30; 2: 7; 3: 2 1 3; 4: 5;
    // 5: 1 1 1; 6: 2 3 (avg 2.5 → round half away from zero → 3).
    let t = moves();
    let out = run(
        &[("ev", &t)],
        "sample ev unit member
           stratify by min(x) as lo, max(x) as hi, sum(x) as total, round(avg(x)) as mean,
                       count(*) as n
           seed 4 output member, lo, hi, total, mean, n",
    )
    .await
    .unwrap();
    let (map, order) = by_member(&out);
    let want: BTreeMap<String, String> = [
        ("1", "10|30|60|20|3"),
        ("2", "7|7|7|7|1"),
        ("3", "1|3|6|2|3"),
        ("4", "5|5|5|5|2"),
        ("5", "1|1|3|1|4"),
        ("6", "2|3|5|3|2"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(map, want);
    // stratum order: by lo, then hi, …: 5 (1), 3 (1, 3), 6 (2), 4 (5), 2 (7), 1 (10)
    assert_eq!(order, ["5", "3", "6", "4", "2", "1"]);
}

#[tokio::test]
async fn aggregates_next_to_a_spanning_column_are_still_checked() {
    // `country` is not an aggregate: members 1 (US, DE) and 3 (IT, US, ZZ)
    // span strata; 3 comes first in draw order (md5 "1:3" = 5f64…, "1:1" =
    // d0bd…), and its first and last strata are named.
    let t = moves();
    let err = run(
        &[("ev", &t)],
        "sample ev unit member stratify by country, count(*) seed 1",
    )
    .await
    .unwrap_err();
    match &err {
        RunError::UnitSpansStrata {
            unit,
            first,
            second,
            ..
        } => assert_eq!(
            (unit.as_str(), first.as_str(), second.as_str()),
            ("3", "IT/3", "ZZ/3")
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn split_by_a_unit_aggregate() {
    // Splits stratified by a unit aggregate: every member in exactly one split,
    // strata as in `last_and_count_aggregates_stratify_units`.
    let t = moves();
    let out = run(
        &[("ev", &t)],
        "split ev unit member stratify by last(country by ts) as latest into a 50%, b 50% seed 2
         output member, latest, _split",
    )
    .await
    .unwrap();
    let (map, _) = by_member(&out);
    assert_eq!(map.len(), 6);
    assert!(map["1"].starts_with("DE|"));
    // DE holds 1 and 5: one each (B_1 = floor(1 + u) = 1), first in draw order to `a`.
    let de = draw_sorted(2, &["1".to_string(), "5".to_string()]);
    assert_eq!(map[&de[0]], "DE|a");
    assert_eq!(map[&de[1]], "DE|b");
}

// ------------------------------------------------------------------ unicode and escaping

#[tokio::test]
async fn unicode_keys_strata_byte_order_and_stratum_escaping() {
    // String unit keys with non-ASCII text; stratum values that need escaping in
    // `_stratum` (`/`, `\`, `∅`) and that sort by UTF-8 bytes: "Z" < "a/b" < "x\y" < "Ä" < "∅" < "日本".
    let schema = Arc::new(Schema::new(vec![
        Field::new("who", DataType::Utf8, false),
        Field::new("place", DataType::Utf8, true),
    ]));
    let places = ["Z", "a/b", "x\\y", "Ä", "∅", "日本"];
    let mut who = Vec::new();
    let mut place = Vec::new();
    for (p, name) in places.iter().enumerate() {
        for i in 0..4 {
            who.push(format!("Zürich-{p}-{i}-ß"));
            place.push(Some(*name));
        }
    }
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(who.clone())) as ArrayRef,
            Arc::new(StringArray::from(place.clone())),
        ],
    )
    .unwrap();
    let out = run(
        &[("t", &batch)],
        "sample t unit who stratify by place take 12 seed 9 output who, place, _stratum",
    )
    .await
    .unwrap();
    let texts: Vec<&str> = out.report.strata.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["Z", "a\\/b", "x\\\\y", "Ä", "\\∅", "日本"]);
    // Two per stratum, the first two of each stratum in draw order of the unicode keys.
    let mut want = Vec::new();
    for (p, name) in places.iter().enumerate() {
        let keys: Vec<String> = (0..4).map(|i| format!("Zürich-{p}-{i}-ß")).collect();
        let text = texts[p];
        for k in draw_sorted(9, &keys).into_iter().take(2) {
            want.push(format!("{k}|{name}|{text}"));
        }
    }
    assert_eq!(rows(&out), want);
}

// ------------------------------------------------------------------ issue 19: mode, having, keep, rates

#[tokio::test]
async fn mode_is_the_most_frequent_value_ties_to_the_smallest() {
    // moves(): country per member 1: US DE US; 2: FR; 3: IT US ZZ; 4: SE NO;
    // 5: DE ×4; 6: NL NL. x: 1: 10 20 30; 2: 7; 3: 2 1 3; 4: NULL 5;
    // 5: 1 1 1 NULL; 6: 2 3.
    // mode(country): 1 US (2 of 3), 3 IT (a three-way tie: the smallest by
    // bytes), 4 NO (tie NO/SE). mode(x): 1 → 10, 3 → 1, 4 → 5 (NULL is not a
    // value), 5 → 1, 6 → 2 (tie 2/3).
    let t = moves();
    let out = run(
        &[("ev", &t)],
        "sample ev unit member stratify by mode(country) as c, mode(x) as v seed 2
         output member, c, v",
    )
    .await
    .unwrap();
    let (map, _) = by_member(&out);
    let want: BTreeMap<String, String> = [
        ("1", "US|10"),
        ("2", "FR|7"),
        ("3", "IT|1"),
        ("4", "NO|5"),
        ("5", "DE|1"),
        ("6", "NL|2"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(map, want);

    // Strings tie by UTF-8 bytes ("Home" < "home", "z" < "é"); the more
    // frequent NULLs do not count; all NULL gives NULL; row order never matters.
    let data: &[(i64, Option<&str>)] = &[
        (1, Some("b")),
        (1, Some("a")),
        (1, None),
        (1, Some("b")),
        (1, None),
        (1, Some("a")),
        (1, None),
        (2, Some("home")),
        (2, Some("Home")),
        (3, Some("zz")),
        (3, Some("é")),
        (3, Some("é")),
        (4, Some("é")),
        (4, Some("z")),
        (5, None),
        (5, None),
    ];
    for reversed in [false, true] {
        let mut rows_in: Vec<(i64, Option<&str>)> = data.to_vec();
        if reversed {
            rows_in.reverse();
        }
        let t = members(&rows_in);
        let out = run(
            &[("t", &t)],
            "sample t unit id stratify by mode(country) as m seed 1 output id, m, _stratum",
        )
        .await
        .unwrap();
        let (map, order) = by_member(&out);
        assert_eq!(map["1"], "a|a", "reversed: {reversed}");
        assert_eq!(map["2"], "Home|Home");
        assert_eq!(map["3"], "é|é");
        assert_eq!(map["4"], "z|z");
        assert_eq!(map["5"], "∅|∅");
        // Stratum order: NULL first, then bytes: Home, a, z, é.
        assert_eq!(order, ["5", "2", "1", "4", "3"]);
    }
}

#[tokio::test]
async fn having_keeps_units_by_their_aggregates() {
    // count(*): 1:3 2:1 3:3 4:2 5:4 6:2; max(x): 1:30 2:7 3:3 4:5 5:1 6:3.
    // count >= 2 and max(x) > 2: 1, 3, 4, 6 (2 has one row, 5's max is 1).
    let t = moves();
    let out = run(
        &[("ev", &t)],
        "param k: int = 2
         sample ev unit member having count(*) >= k and max(x) > 2 seed 3 output member, _stratum",
    )
    .await
    .unwrap();
    let (map, _) = by_member(&out);
    assert_eq!(map.keys().collect::<Vec<_>>(), ["1", "3", "4", "6"]);
    // A kept unit keeps all its eligible rows: 3 + 3 + 2 + 2.
    assert_eq!(out.batches[0].num_rows(), 10);
    assert_eq!(out.report.total_population, 4);
    assert_eq!(out.report.having_dropped_units, 2);

    // Over eligible rows only, and NULL is not true: with `where x is null or
    // member = 2` the units are 2 (x 7), 4 (x NULL) and 5 (x NULL); max(x) is
    // NULL for 4 and 5, so only 2 passes.
    let out = run(
        &[("ev", &t)],
        "sample ev where x is null or member = 2 unit member having max(x) >= 0 seed 3
         output member, country",
    )
    .await
    .unwrap();
    assert_eq!(rows(&out), ["2|FR"]);
    assert_eq!(out.report.having_dropped_units, 2);

    // A unit `having` drops is never placed in a stratum, so it cannot span
    // two: member 1 (US, DE) is dropped, 2 (one row) kept.
    let out = run(
        &[("ev", &t)],
        "sample ev unit member having count(*) = 1 stratify by country seed 3 output member, country",
    )
    .await
    .unwrap();
    assert_eq!(rows(&out), ["2|FR"]);

    // Aggregates of `having` and `stratify by` side by side; mode in having.
    let out = run(
        &[("ev", &t)],
        "sample ev unit member having mode(country) = 'US' or count(*) > 3
         stratify by bucket(count(*), [4]) as n seed 3 output member, n",
    )
    .await
    .unwrap();
    let (map, _) = by_member(&out);
    assert_eq!(map["1"], "[-inf,4)");
    assert_eq!(map["5"], "[4,inf)");
    assert_eq!(map.len(), 2);
}

#[tokio::test]
async fn keep_and_exclude_after_having() {
    // having count(*) >= 2 drops 2; keep {1, 2, 3, 9} leaves 1 and 3;
    // exclude {3} leaves 1. The report counts what `having` and `exclude` drop.
    let t = moves();
    let cohort = members(&[(1, None), (2, None), (3, None), (9, None)]);
    let ex = members(&[(3, None)]);
    let cohort = rename_id(&cohort, "member");
    let ex = rename_id(&ex, "member");
    let out = run(
        &[("ev", &t), ("cohort", &cohort), ("ex", &ex)],
        "sample ev unit member having count(*) >= 2 keep units in cohort exclude units in ex
         seed 3 output member, _stratum",
    )
    .await
    .unwrap();
    let (map, _) = by_member(&out);
    assert_eq!(map.keys().collect::<Vec<_>>(), ["1"]);
    assert_eq!(out.batches[0].num_rows(), 3);
    assert_eq!(out.report.total_population, 1);
    assert_eq!(out.report.having_dropped_units, 1);
    assert_eq!(out.report.excluded_units, 1);
    // `take all` of the kept units' rows, with a statement as the keep list.
    let out = run(
        &[("ev", &t), ("cohort", &cohort)],
        "c = sample cohort where member < 5 unit member seed 1
         sample ev unit member keep units in c seed 2 output member, _stratum",
    )
    .await
    .unwrap();
    let (map, _) = by_member(&out);
    assert_eq!(map.keys().collect::<Vec<_>>(), ["1", "2", "3"]);
    assert_eq!(out.batches[0].num_rows(), 7);
}

/// `batch` with its first column renamed.
fn rename_id(batch: &RecordBatch, name: &str) -> RecordBatch {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[0] = fields[0].clone().with_name(name);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec()).unwrap()
}

#[tokio::test]
async fn take_about_alone_keeps_each_unit_with_its_stratum_rate() {
    // US 40 → rate 50%, DE 30 → all, FR 20 → none, NULL 10 → else rate 10%:
    // no expected total, each stratum its own p_h (Spark's sampleBy).
    let (t, groups) = population(40, 30, 20, 10, 0);
    let out = run(
        &[("t", &t)],
        "sample t unit id stratify by country take about
         allocate { country = 'US' => rate 50% country = 'DE' => all country = 'FR' => none
                    else => rate 10% }
         seed 13 output id, _weight",
    )
    .await
    .unwrap();
    let mut want = Vec::new();
    for (country, ids) in &groups {
        let (t, w): (Option<u128>, f64) = match country.as_deref() {
            Some("US") => (Some(1u128 << 63), 2.0),
            Some("DE") => (None, 1.0),
            Some("FR") => continue,
            _ => (Some((1u128 << 64) / 10), 10.0),
        };
        for id in draw_sorted(13, ids) {
            if t.is_none_or(|t| draw_hex(13, &id) < format!("{t:016x}")) {
                want.push(format!("{id}|{w:?}"));
            }
        }
    }
    assert_eq!(rows(&out), want);
    let p = |text: &str| {
        out.report
            .strata
            .iter()
            .find(|s| s.text == text)
            .unwrap()
            .target
            .clone()
    };
    let q = |n: i64, d: i64| Target::Probability(strat_alloc::BigRational::new(n.into(), d.into()));
    assert_eq!(p("US"), q(1, 2));
    assert_eq!(p("DE"), q(1, 1));
    assert_eq!(p("FR"), q(0, 1));
    assert_eq!(p("∅"), q(1, 10));

    // With an amount, rates that keep more than it expects fail with the fix.
    let err = run(
        &[("t", &t)],
        "sample t unit id stratify by country take about 10%
         allocate { else => rate 50% } seed 13",
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the rules keep an expected 50 units but `take about` expects 10 in total")
            && text.contains("drop the amount"),
        "{text}"
    );
}
