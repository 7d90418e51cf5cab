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
