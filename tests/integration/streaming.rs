//! strat's one plan (a counting pass keeping 16 bytes a unit, then the
//! rows of the selected units, or a split's rows spread by place) against
//! itself and against the spec: the same output rows in the same order, the
//! same report and the same errors whatever the partitions (1 or 3) and
//! whether its units stay in memory or spill as sorted runs after every
//! batch — on every example, every SQL conformance case and generated data
//! with multi-row units, NULL units, exclusion, Bernoulli rules, bounds and
//! splits, with and without `unit`; and equal to the simple oracle of
//! oracle.rs on the common forms. (The SQL engines check the rest:
//! tests/engines.)

use std::path::Path;

use datafusion::arrow::compute::concat_batches;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::Partitioning;
use datafusion::prelude::{CsvReadOptions, SessionConfig, SessionContext};
use strat_engine::run::{RunOptions, run_statement_with};
use strat_engine::{Options, RunOutput, compile};

use crate::common::{cases, examples, header, root, stderr, strat};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs every statement of `file` at 1 and at 3 partitions, each with the
/// default unit budget and with one of 4 units (the counting pass spills
/// after every batch): the four runs agree. Returns each statement's
/// output or error.
async fn compare(file: &Path, text: &str, options: &Options) -> Vec<Result<RunOutput, String>> {
    let mut first: Vec<Result<RunOutput, String>> = Vec::new();
    for partitions in [1, 3] {
        let config = SessionConfig::new().with_target_partitions(partitions);
        let ctx = SessionContext::new_with_config(config);
        let compiled = compile(&ctx, Some(file), text, options).await;
        let program = compiled
            .program
            .unwrap_or_else(|| panic!("{}: {:?}", file.display(), compiled.diagnostics));
        for index in 0..program.statements.len() {
            let what = format!(
                "{} statement {index} at {partitions} partition(s)",
                file.display()
            );
            let default = run_statement_with(&ctx, &program, index, &RunOptions::default()).await;
            let spilling = RunOptions {
                unit_memory: 128,
                ..RunOptions::default()
            };
            let spilled = run_statement_with(&ctx, &program, index, &spilling).await;
            let (default, spilled) = (
                default.map_err(|e| e.to_string()),
                spilled.map_err(|e| e.to_string()),
            );
            agree(&spilled, &default, &format!("{what}, spilling"));
            if let Ok(s) = &spilled
                && s.report.total_population > 4
            {
                assert!(s.profile.spilled_runs > 0, "{what}: did not spill");
            }
            match first.get(index) {
                Some(one) => agree(&default, one, &what),
                None => first.push(default),
            }
        }
    }
    first
}

/// The output of `text`'s first statement at `partitions` partitions with
/// a unit budget of `unit_memory` bytes (it must run).
async fn first_statement(
    file: &Path,
    text: &str,
    partitions: usize,
    unit_memory: usize,
) -> RunOutput {
    let config = SessionConfig::new().with_target_partitions(partitions);
    let ctx = SessionContext::new_with_config(config);
    let compiled = compile(&ctx, Some(file), text, &Options::default()).await;
    let program = compiled.program.expect("checks");
    let options = RunOptions {
        unit_memory,
        ..RunOptions::default()
    };
    let out = run_statement_with(&ctx, &program, 0, &options).await;
    out.unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// How many statements ran.
fn ran(outputs: &[Result<RunOutput, String>]) -> usize {
    outputs.iter().filter(|o| o.is_ok()).count()
}

fn agree(a: &Result<RunOutput, String>, b: &Result<RunOutput, String>, what: &str) {
    match (a, b) {
        (Ok(a), Ok(b)) => same(a, b, what),
        (Err(a), Err(b)) => assert_eq!(a, b, "{what}"),
        (a, b) => panic!("{what}: {:?} vs {:?}", a.as_ref().err(), b.as_ref().err()),
    }
}

fn same(s: &RunOutput, m: &RunOutput, what: &str) {
    assert_eq!(s.schema, m.schema, "{what}: schema");
    let a = concat_batches(&s.schema, &s.batches).expect("concat");
    let b = concat_batches(&m.schema, &m.batches).expect("concat");
    assert_eq!(s.report, m.report, "{what}: report");
    assert_eq!(a.num_rows(), b.num_rows(), "{what}: rows");
    assert_eq!(a, b, "{what}: rows differ");
}

fn options_from(args: &[String]) -> Options {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--param" {
            let (k, v) = it
                .next()
                .expect("value")
                .split_once('=')
                .expect("NAME=VALUE");
            o.params.push((k.to_string(), v.to_string()));
        }
    }
    o
}

#[test]
fn one_plan_agrees_with_itself_on_examples_and_sql_cases() {
    let mut files = examples();
    files.extend(cases("sql"));
    let rt = runtime();
    let mut ran = 0;
    for f in &files {
        let path = root().join(f);
        let text = std::fs::read_to_string(&path).expect("rule file");
        let options = options_from(&header(&text).args);
        ran += self::ran(&rt.block_on(compare(&path, &text, &options)));
    }
    assert!(ran >= 30, "only {ran} statements ran");
}

/// Members with repeated rows (one unit, several rows), NULL ids, and a
/// holdout table; deterministic.
fn write_data(dir: &Path) {
    let mut m = String::from("id,country,plan,tenure,score,note\n");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Skewed: US 10, BR 6, DE 4, FR 3, and three small ones (one needing escapes in `_stratum`).
    let countries = [
        "US", "US", "US", "US", "US", "US", "US", "US", "US", "US", "BR", "BR", "BR", "BR", "BR",
        "BR", "DE", "DE", "DE", "DE", "FR", "FR", "FR", "IS", "LU", "C\\1/x",
    ];
    for i in 0..6000u64 {
        let c = countries[(next() % countries.len() as u64) as usize];
        let p = ["basic", "standard", "premium"][(next() % 3) as usize];
        let tenure = next() % 1000;
        let score = (next() % 10_000) as f64 / 7.0;
        let note = if next() % 5 == 0 {
            String::new()
        } else {
            format!("n{}", next() % 50)
        };
        let id = if i % 97 == 0 {
            String::new()
        } else {
            (i / 2).to_string()
        };
        // Rows of one id share country and plan: (i / 2) keeps them together.
        let (c, p) = if i % 2 == 1 { ("", "") } else { (c, p) };
        m.push_str(&format!("{id},{c},{p},{tenure},{score},{note}\n"));
    }
    // Odd rows copy country, plan and tenure of the even row before them.
    let mut lines: Vec<String> = m.lines().map(String::from).collect();
    for i in (2..lines.len()).step_by(2) {
        let prev: Vec<String> = lines[i - 1].split(',').map(String::from).collect();
        let mut cur: Vec<String> = lines[i].split(',').map(String::from).collect();
        cur[1] = prev[1].clone();
        cur[2] = prev[2].clone();
        cur[3] = prev[3].clone();
        lines[i] = cur.join(",");
    }
    // Rows identical in every column: one unit of a statement without `unit`.
    let lines: Vec<String> = lines
        .iter()
        .enumerate()
        .flat_map(|(i, l)| std::iter::repeat_n(l.clone(), if i > 0 && i % 40 == 0 { 2 } else { 1 }))
        .collect();
    std::fs::write(dir.join("members.csv"), lines.join("\n") + "\n").expect("write");
    let mut h = String::from("id\n");
    for i in (0..3000).step_by(11) {
        h.push_str(&format!("{i}\n"));
    }
    std::fs::write(dir.join("holdout.csv"), h).expect("write");
}

const RULES: &[&str] = &[
    "sample m unit id stratify by country, plan take 700 seed 1",
    "sample m where tenure >= 30 unit id exclude units in h stratify by country take 25% allocate equal seed 2",
    "sample m unit id stratify by country, bucket(tenure, [100, 500]) as band take 900 min 20 per stratum max 150 per stratum seed 3",
    "sample m unit id stratify by country take about 10% allocate { country = \"US\" => rate 5%, country in (\"IS\", \"LU\") => all, else => proportional } seed 4",
    "sample m unit id stratify by country, plan take 600 allocate { country = \"BR\" and plan = \"premium\" => count 40, country = \"US\" => share 30%, else => power(0.5) } seed 5",
    "sample m unit id take 123 seed 6 output id, country, _weight, _stratum",
    "sample m unit id stratify by country, plan take about 20% min 5 per stratum seed 7",
    "split m unit id stratify by country, plan into train 80%, validation 10%, test 10% seed 8",
    "split m unit id exclude units in h stratify by plan into about a 50%, b 30%, c 20% seed 9",
    "split m unit id into 5 folds seed 10",
    "sample m unit id stratify by country take all max 7 per stratum seed 11",
    "sample m where tenure < 0 unit id stratify by country, plan take all seed 12",
    "split m where tenure < 0 unit id stratify by country into a 50%, b 50% seed 13",
    "sample m unit id keep units in h stratify by country take about allocate { country = \"US\" => rate 60%, country = \"BR\" => none, else => rate 25% } seed 14",
    "split m where tenure >= 30 unit id keep units in h stratify by plan into a 50%, b 50% seed 15",
    "sample m unit id stratify by country, plan take about allocate { plan = \"premium\" => all, else => rate 7.5% } seed 16",
    // Without `unit`: each row is a unit keyed by all its columns (spec §6.1).
    "sample m stratify by country, plan take 700 seed 17",
    "sample m where tenure >= 30 stratify by country take about 10% allocate { country = \"US\" => rate 5%, else => proportional } seed 18",
    "split m stratify by plan into a 50%, b 30%, c 20% seed 19",
    "split m stratify by country into about a 50%, b 50% seed 20",
    "sample m take 50 seed 21 output id, note, _weight",
    // neyman: S_h from exact sums, per unit (constant within it) or per row.
    "sample m unit id stratify by country take 400 allocate neyman(tenure) seed 22",
    "sample m stratify by country, plan take 500 allocate neyman(score) min 2 per stratum seed 23",
    "sample m unit id stratify by plan take 300 allocate { plan = \"premium\" => count 50, else => neyman(tenure) } seed 24",
    // Unit aggregates and `having`: computed per unit over its rows in
    // unit order, from a spilling sort (§2.7, §4.4).
    "sample m unit id stratify by country, bucket(count(*), [2]) as rows take 500 seed 25",
    "sample m unit id stratify by mode(note) as top_note, bucket(sum(tenure), [500, 1000]) as t take 400 seed 26",
    "sample m unit id having count(*) >= 2 and max(score) > 300 stratify by country take 30% seed 27",
    "split m unit id stratify by last(note by score) as last_note into a 60%, b 40% seed 28",
    "sample m unit id having min(tenure) < 800 exclude units in h stratify by first(country by score) as c take 300 allocate neyman(tenure) seed 29",
    "sample m where tenure >= 100 unit id having avg(score) > 200 keep units in h stratify by round(avg(score) / 300) as s take about 40% seed 30",
    "split m unit id having count(*) = 2 stratify by plan into 3 folds seed 31",
];

/// strat's one plan against the spec's simple oracle (tests/integration/oracle.rs):
/// the same rows, in the same order, with the same `_weight`, `_stratum` and
/// `_split` — with and without `unit`, at 1 and 3 partitions, and with a unit
/// budget so small that the counting pass spills after every batch.
#[test]
fn strat_equals_the_oracle_on_generated_data() {
    use crate::oracle::{Case, Form, read_csv, rows_of, run};
    let dir = std::env::temp_dir().join(format!("strat-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    write_data(&dir);
    // Three strata of 10 units: every remainder ties, so the leftover units
    // go by the strata's starts u_h (§5.3).
    let even: String = (0..30)
        .map(|i| format!("{i},{}\n", ["a", "b", "c"][i % 3]))
        .collect();
    std::fs::write(dir.join("even.csv"), format!("id,grp\n{even}")).expect("write");
    let case = |unit, strata, form, seed| Case {
        unit,
        strata,
        form,
        seed,
    };
    let cp: &[&str] = &["country", "plan"];
    let cases = [
        ("members.csv", case(Some("id"), cp, Form::Take(700), 1)),
        ("members.csv", case(Some("id"), &[], Form::Take(123), 6)),
        ("members.csv", case(None, cp, Form::Take(700), 17)),
        (
            "members.csv",
            case(Some("id"), &["country"], Form::TakeAllMax(7), 11),
        ),
        ("members.csv", case(Some("id"), cp, Form::About(20), 32)),
        ("members.csv", case(None, &["plan"], Form::About(10), 33)),
        (
            "members.csv",
            case(
                Some("id"),
                cp,
                Form::Split(&[("train", 80), ("validation", 10), ("test", 10)], false),
                8,
            ),
        ),
        (
            "members.csv",
            case(
                None,
                &["plan"],
                Form::Split(&[("a", 50), ("b", 30), ("c", 20)], false),
                19,
            ),
        ),
        (
            "members.csv",
            case(
                Some("id"),
                &["country"],
                Form::Split(&[("a", 50), ("b", 50)], true),
                20,
            ),
        ),
        (
            "members.csv",
            case(
                None,
                &["country"],
                Form::Split(&[("a", 60), ("b", 40)], true),
                34,
            ),
        ),
        ("members.csv", case(Some("id"), &[], Form::Folds(5), 10)),
        ("even.csv", case(Some("id"), &["grp"], Form::Take(10), 3)),
        ("even.csv", case(Some("id"), &["grp"], Form::Take(11), 4)),
        ("even.csv", case(Some("id"), &["grp"], Form::Folds(4), 5)),
    ];
    let rt = runtime();
    let file = dir.join("rules.strat");
    for (table, c) in &cases {
        let csv = std::fs::read_to_string(dir.join(table)).expect("table");
        let (header, rows) = read_csv(&csv);
        let rule = c.rule(&header);
        let want = run(c, &header, &rows);
        assert!(want.len() >= 10, "{rule}: only {} rows", want.len());
        let text = format!("table m = \"{table}\"\n{rule}\n");
        for (partitions, unit_memory) in [(1, 256 << 20), (3, 256 << 20), (2, 128)] {
            let out = rt.block_on(first_statement(&file, &text, partitions, unit_memory));
            let got = concat_batches(&out.schema, &out.batches).expect("concat");
            let got = rows_of(&got, header.len());
            assert_eq!(
                got.len(),
                want.len(),
                "{rule}: rows at {partitions} partitions"
            );
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g, w,
                    "{rule}: row {i} at {partitions} partitions, budget {unit_memory}"
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A split's rows are spread over bucket files by place and each bucket
/// ordered in memory: under strat's memory pool, with a spill budget far
/// smaller than the table, the rows go to disk and back, and are still those
/// of an unbounded pool, in the same order.
#[test]
fn split_rows_spill_under_a_small_memory_pool() {
    let dir = std::env::temp_dir().join(format!("strat-split-spill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    write_data(&dir);
    let rt = runtime();
    let file = dir.join("rules.strat");
    let splits = RULES.iter().filter(|r| r.starts_with("split"));
    for rule in splits {
        let text = format!("table m = \"members.csv\"\ntable h = \"holdout.csv\"\n{rule}\n");
        rt.block_on(same_under_a_small_pool(&file, &text, rule));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A bucket too big for its share (a unit of many rows among units of one)
/// is spread again over finer buckets, down to the one place of the heavy
/// unit, which is held as it is: the rows are still an unbounded pool's.
#[test]
fn split_buckets_too_big_are_spread_again() {
    let dir = std::env::temp_dir().join(format!("strat-split-heavy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut csv = String::from("id,country,v\n");
    for i in 0..8000 {
        csv.push_str(&format!("0,US,{i}\n"));
    }
    for id in 1..12_000 {
        let c = ["US", "BR", "DE"][id % 3];
        csv.push_str(&format!("{id},{c},{}\n", id * 7 % 1000));
    }
    std::fs::write(dir.join("heavy.csv"), csv).expect("write");
    let rt = runtime();
    let rule = "split e unit id stratify by country into train 50%, test 50% seed 5";
    let text = format!("table e = \"heavy.csv\"\n{rule}\n");
    rt.block_on(same_under_a_small_pool(
        &dir.join("rules.strat"),
        &text,
        rule,
    ));
    std::fs::remove_dir_all(&dir).ok();
}

/// `as of` puts every row in unit order with DataFusion's sort: under a
/// pool far smaller than the table it spills, and the state rows, the
/// report and the sample are an unbounded pool's.
#[test]
fn as_of_state_rows_spill_under_a_small_memory_pool() {
    let dir = std::env::temp_dir().join(format!("strat-as-of-spill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut csv = String::from("id,day,loaded,country,v\n");
    for id in 0..16_000u32 {
        for d in 1..=5u32 {
            // Gaps, two loads of one day, and a country that changes.
            if (id + d) % 7 == 0 {
                continue;
            }
            let country = ["US", "BR", "DE"][((id / 3 + d / 4) % 3) as usize];
            csv.push_str(&format!(
                "{id},2018-06-0{d},2018-06-0{d}T01:00:00,{country},{}\n",
                id % 97
            ));
            if id % 11 == 0 {
                csv.push_str(&format!(
                    "{id},2018-06-0{d},2018-06-0{d}T09:00:00,{country},{}\n",
                    id % 89
                ));
            }
        }
    }
    // The sort by unit holds every row: more than the whole pool (2 MiB),
    // so it spills, or the run would fail for want of memory.
    assert!(csv.len() > 2 << 20, "too few rows to spill");
    std::fs::write(dir.join("days.csv"), csv).expect("write");
    let rt = runtime();
    for rule in [
        "sample e as of @2018-06-04 by day within 3 days ties by loaded unit id stratify by country take 30% seed 3",
        "split e as of @2018-06-04 by day ties by loaded desc unit id stratify by country, v >= 50 as high into a 50%, b 50% seed 4",
    ] {
        let text = format!("table e = \"days.csv\"\n{rule}\n");
        rt.block_on(same_under_a_small_pool(
            &dir.join("rules.strat"),
            &text,
            rule,
        ));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A split whose rows do not fit in the temporary folder fails with an
/// error that says where it spilled and what to do, and gives no rows.
#[test]
fn a_split_past_the_temporary_folder_fails_cleanly() {
    use datafusion::execution::disk_manager::DiskManagerBuilder;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use futures::StreamExt;
    use strat_engine::run::run_statement_streamed;
    let dir = std::env::temp_dir().join(format!("strat-split-disk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    write_data(&dir);
    let text =
        "table m = \"members.csv\"\nsplit m unit id stratify by country into a 50%, b 50% seed 3\n";
    runtime().block_on(async {
        let budget = strat_engine::memory::Budget {
            spill: 256 << 10,
            total: 2 << 20,
        };
        let disk = DiskManagerBuilder::default().with_max_temp_directory_size(16 << 10);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(budget.pool())
            .with_disk_manager_builder(disk)
            .build_arc()
            .expect("runtime");
        let config = SessionConfig::new()
            .with_target_partitions(2)
            .with_batch_size(256);
        let small = SessionContext::new_with_config_rt(config, runtime);
        let compiled = compile(
            &small,
            Some(&dir.join("rules.strat")),
            text,
            &Options::default(),
        )
        .await;
        let program = compiled.program.expect("checks");
        let mut out = run_statement_streamed(&small, &program, 0, &RunOptions::default())
            .await
            .expect("planned");
        let mut rows = 0;
        let mut error = None;
        while let Some(b) = out.rows.next().await {
            match b {
                Ok(b) => rows += b.num_rows(),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        let error = error.expect("the split fails");
        assert_eq!(rows, 0, "no rows before the error");
        assert!(error.contains("table `m`"), "{error}");
        assert!(error.contains("exceeded the allowable limit"), "{error}");
        assert!(error.contains("TMPDIR"), "{error}");
    });
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs `text`'s first statement under a tiny memory pool and under an
/// unbounded one: the same report and rows.
async fn same_under_a_small_pool(file: &Path, text: &str, rule: &str) {
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use futures::StreamExt;
    use strat_engine::run::run_statement_streamed;
    let mut config = SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(256);
    // As strat's own contexts do (memory::context), for the sort of rows by
    // unit that unit aggregates need: a sort that never spilled
    // concatenates its rows below this size, a second copy of them past its
    // share of this tiny budget.
    config.options_mut().execution.sort_spill_reservation_bytes = 64 << 10;
    config.options_mut().execution.sort_in_place_threshold_bytes =
        strat_engine::memory::sort_in_place_threshold(256 << 10);
    // strat's pool: the split's buckets (and the sort by unit) get a share
    // of the spill budget.
    let budget = strat_engine::memory::Budget {
        spill: 256 << 10,
        total: 2 << 20,
    };
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(budget.pool())
        .build_arc()
        .expect("runtime");
    let small = SessionContext::new_with_config_rt(config, runtime);
    let compiled = compile(&small, Some(file), text, &Options::default()).await;
    let program = compiled.program.expect("checks");
    let mut out = run_statement_streamed(&small, &program, 0, &RunOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{rule}: {e}"));
    let mut batches = Vec::new();
    while let Some(b) = out.rows.next().await {
        batches.push(b.unwrap_or_else(|e| panic!("{rule}: {e}")));
    }
    let got = concat_batches(&out.schema, &batches).expect("concat");
    // The rows are far more than the buckets may hold: they went to disk
    // (or the run would have failed for want of memory).
    if rule.starts_with("split") && out.report.total_population > 1000 {
        assert!(
            got.get_array_memory_size() > budget.spill,
            "{rule}: too few rows to spill"
        );
    }

    let ctx = SessionContext::new();
    let compiled = compile(&ctx, Some(file), text, &Options::default()).await;
    let program = compiled.program.expect("checks");
    let m = run_statement_with(&ctx, &program, 0, &RunOptions::default())
        .await
        .expect("an unbounded pool");
    let want = concat_batches(&m.schema, &m.batches).expect("concat");
    assert_eq!(out.report, m.report, "{rule}: report");
    assert_eq!(got, want, "{rule}: rows");
}

#[test]
fn one_plan_agrees_with_itself_on_generated_data() {
    let dir = std::env::temp_dir().join(format!("strat-streaming-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    write_data(&dir);
    let rt = runtime();
    // The same members as Parquet, in 3 files (the materialising pass filters
    // inside the Parquet reader).
    rt.block_on(async {
        let ctx = SessionContext::new();
        let df = ctx
            .read_csv(
                dir.join("members.csv").to_str().unwrap(),
                CsvReadOptions::new(),
            )
            .await
            .expect("read");
        let df = df
            .repartition(Partitioning::RoundRobinBatch(3))
            .expect("repartition");
        df.write_parquet(
            dir.join("members_parquet").to_str().unwrap(),
            DataFrameWriteOptions::new(),
            None,
        )
        .await
        .expect("write");
    });
    let file = dir.join("rules.strat");
    // The same rows from the CSV file and from the Parquet files.
    for (i, rule) in RULES.iter().enumerate() {
        let outputs = ["members.csv", "members_parquet"].map(|members| {
            let text = format!("table m = \"{members}\"\ntable h = \"holdout.csv\"\n{rule}\n");
            let out = rt.block_on(compare(&file, &text, &Options::default()));
            assert_eq!(
                ran(&out),
                1,
                "rule {i} on {members} failed: {:?}",
                out[0].as_ref().err()
            );
            out
        });
        agree(
            &outputs[0][0],
            &outputs[1][0],
            &format!("rule {i}: CSV and Parquet"),
        );
    }
    // Chains: a statement reads another's output (spooled to a file), its
    // `_weight` carried into the sample's and kept by a split.
    let chains = [
        "c = sample m unit id stratify by country take 40% seed 32\nsplit c unit id stratify by plan into a 50%, b 50% seed 33",
        "t = split m unit id stratify by plan into a 70%, b 30% seed 34\nsample t where _split = \"a\" unit id having count(*) = 2 stratify by country take 300 seed 35",
    ];
    for chain in chains {
        for members in ["members.csv", "members_parquet"] {
            let text = format!("table m = \"{members}\"\n{chain}\n");
            let n = ran(&rt.block_on(compare(&file, &text, &Options::default())));
            assert_eq!(n, 2, "{chain} on {members}: not every statement ran");
        }
    }
    // Units in two strata: the same error, naming the first such unit in
    // draw order (found again, key text and strata, in one more pass), with
    // its units in memory or spilled.
    let text = "table m = \"members.csv\"\nsample m unit id stratify by note take 10 seed 1\n";
    assert_eq!(
        ran(&rt.block_on(compare(&file, text, &Options::default()))),
        0
    );
    // neyman over a column that differs within a unit: the same E0206,
    // naming the same (smallest) unit.
    let text = "table m = \"members.csv\"\nsample m unit id stratify by country take 100 allocate neyman(score) seed 1\n";
    assert_eq!(
        ran(&rt.block_on(compare(&file, text, &Options::default()))),
        0
    );
    // No eligible unit and a total: the same allocation error.
    let text = "table m = \"members.csv\"\nsample m where tenure < 0 unit id stratify by plan take 2 seed 1\n";
    assert_eq!(
        ran(&rt.block_on(compare(&file, text, &Options::default()))),
        0
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Unit aggregates the counting pass reads by hash aggregate (`count(*)`,
/// `min`/`max` of strings, `sum` of integers, `first`/`last(x by t)`) and
/// the same statements with one more `having` aggregate that keeps every
/// unit but only the rows sorted by unit compute (`avg`), some also with
/// the values spelled otherwise (`sum(1)`, `first`/`last(x by x)`, `sum` of
/// decimals): the same rows, report and errors, at 1 and 3 partitions,
/// spilled or not — on members with several rows, NULL ids and NULL notes.
#[test]
fn unit_aggregates_by_hash_equal_them_over_sorted_rows() {
    let dir = std::env::temp_dir().join(format!("strat-by-hash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    write_data(&dir);
    let rt = runtime();
    let file = dir.join("rules.strat");
    // {all}: true of every unit; {n}: the unit's rows; {max_note},
    // {min_plan}: a max and a min; {tenure}: a sum.
    let rules = [
        "sample m unit id having {all} stratify by last(note by tenure) as late, first(plan by note) as p take 250 seed 39",
        "split m unit id having first(tenure by note) < 900 and {all} stratify by last(country by plan) as c into a 70%, b 30% seed 38",
        "sample m unit id having {tenure} > 600 and {all} stratify by bucket({tenure}, [500, 1000]) as t, bucket({n}, [2]) as rows take 200 seed 40",
        "sample m unit id having {n} >= 2 and {all} stratify by country, bucket({n}, [2]) as rows, {max_note} as top take 300 seed 41",
        "split m unit id having {all} stratify by {min_plan} as p, bucket({n}, [2]) as rows into a 50%, b 50% seed 42",
        "sample m where tenure >= 100 unit id having {max_note} >= \"n3\" and {all} stratify by bucket({n}, [2]) as rows take about 30% seed 43",
        "split m unit id having {n} = 2 and {all} stratify by plan into 3 folds seed 44",
        // Units whose rows have two notes: the same E0201, naming the same
        // unit and strata.
        "sample m unit id having {all} stratify by note, bucket({n}, [2]) as rows take 10 seed 45",
    ];
    let spell = |rule: &str, hashed: bool| {
        let [all, n, max_note, min_plan, tenure] = if hashed {
            [
                "count(*) >= 1",
                "count(*)",
                "max(note)",
                "min(plan)",
                "sum(tenure)",
            ]
        } else {
            [
                "avg(tenure) >= 0",
                "sum(1)",
                "last(note by note)",
                "first(plan by plan)",
                "sum(tenure * 1.0)",
            ]
        };
        rule.replace("{all}", all)
            .replace("{n}", n)
            .replace("{max_note}", max_note)
            .replace("{min_plan}", min_plan)
            .replace("{tenure}", tenure)
    };
    for rule in rules {
        let [hashed, sorted] = [true, false].map(|hashed| {
            let text = format!("table m = \"members.csv\"\n{}\n", spell(rule, hashed));
            rt.block_on(compare(&file, &text, &Options::default()))
        });
        agree(&hashed[0], &sorted[0], rule);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// More strata than 16 bits count (a unit's entry holds a 24-bit stratum
/// id): a sample and a split of 70,000 one-member strata run, the same at 1
/// and 3 partitions, spilled or not.
#[test]
fn seventy_thousand_strata_stream() {
    let dir = std::env::temp_dir().join(format!("strat-strata-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut csv = String::from("id,band\n");
    for i in 0..70_000u32 {
        csv.push_str(&format!("{i},{}\n", i % 3));
    }
    std::fs::write(dir.join("m.csv"), csv).expect("write");
    let file = dir.join("rules.strat");
    let rt = runtime();
    for rule in [
        "sample m unit id stratify by id, band take 10% seed 5",
        "split m unit id stratify by id into a 50%, b 50% seed 6",
    ] {
        let text = format!("table m = \"m.csv\"\n{rule}\n");
        let n = ran(&rt.block_on(compare(&file, &text, &Options::default())));
        assert_eq!(n, 1, "{rule}: failed");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A sample without `unit` is taken from the rows its counting pass kept
/// as candidates (below a guess of each stratum's cut, guessed again as the
/// count doubles) when they hold every selected row, and from the table
/// read again when they do not: 300,000 rows, the US (half of them) last in
/// the file. A proportional sample's guess holds; a Bernoulli sample whose
/// `else` strata's rate rises from 1 % to 1.8 % when the US arrives (its
/// rate rule takes less than the average) is guessed too low at 131,072
/// rows, and reads the table again. Either way
/// the rows are those of the run that keeps no candidates (a unit budget
/// of 128 bytes), at 1 and 2 partitions.
#[test]
fn candidate_rows_or_a_second_read_give_one_sample() {
    let dir = std::env::temp_dir().join(format!("strat-candidates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut csv = String::from("id,country,plan\n");
    for i in 0..300_000u32 {
        let country = if i >= 150_000 {
            "US"
        } else {
            ["BR", "DE", "FR"][(i % 3) as usize]
        };
        csv.push_str(&format!(
            "{i},{country},{}\n",
            ["basic", "premium"][(i % 7 % 2) as usize]
        ));
    }
    std::fs::write(dir.join("m.csv"), csv).expect("write");
    let file = dir.join("rules.strat");
    let rt = runtime();
    // How each run takes its rows: the phase that says so (--timings).
    let from_candidates = "selected rows (from the counting pass's candidates)";
    let guessed_low =
        "materialising pass (selected rows; a stratum's cut was above its candidates' limit)";
    let over_budget = "materialising pass (selected rows; the candidate rows outgrew their budget)";
    let cases = [
        (
            "sample m stratify by country, plan take 3_000 seed 5",
            from_candidates,
        ),
        (
            "sample m stratify by country take about 1% allocate { country = \"US\" => rate 0.2%, else => proportional } seed 6",
            guessed_low,
        ),
    ];
    for (rule, way) in cases {
        let text = format!("table m = \"m.csv\"\n{rule}\n");
        for partitions in [1, 2] {
            let [kept, read] = [256 << 20, 128].map(|unit_memory| {
                rt.block_on(first_statement(&file, &text, partitions, unit_memory))
            });
            let took = |out: &RunOutput, way: &str| {
                out.profile.phases.iter().any(|(phase, _)| *phase == way)
            };
            // At 2 partitions the second reads the US from its start.
            if partitions == 1 {
                assert!(took(&kept, way), "{rule}: {:?}", kept.profile);
            }
            assert!(took(&read, over_budget), "{rule}: {:?}", read.profile);
            assert_eq!(kept.report, read.report, "{rule}: report");
            let rows = |o: &RunOutput| concat_batches(&o.schema, &o.batches).expect("concat");
            let (got, want) = (rows(&kept), rows(&read));
            assert!(want.num_rows() > 2_000, "{rule}: {} rows", want.num_rows());
            assert_eq!(got, want, "{rule}: rows at {partitions} partitions");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// neyman's `S_h` comes from the counting pass when every unit has one
/// row, and from a second read grouped by unit otherwise: a table and the
/// same table with every row twice (the same units, strata and values) give
/// the same allocation and the same units, each way asserted by its phase —
/// integers and floats, NULL values, with and without `unit`.
#[test]
fn neyman_from_the_counting_pass_or_a_second_read_is_one_sample() {
    let dir = std::env::temp_dir().join(format!("strat-neyman-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut once = String::new();
    for i in 0..5_000u64 {
        let country = ["US", "US", "BR", "DE", "IS"][(i * 7 % 5) as usize];
        let plan = ["basic", "premium"][(i * 13 % 11 % 2) as usize];
        // Spread differs by stratum, so the allocation depends on S_h.
        let spread = if country == "US" { 997 } else { 101 };
        let tenure = if i % 37 == 0 {
            String::new()
        } else {
            (i * 7919 % spread).to_string()
        };
        let score = (i * 104_729 % 1_000) as f64 / 8.0 * if plan == "basic" { 1.0 } else { 5.0 };
        once.push_str(&format!("{i},{country},{plan},{tenure},{score}\n"));
    }
    let header = "id,country,plan,tenure,score\n";
    std::fs::write(dir.join("once.csv"), format!("{header}{once}")).expect("write");
    std::fs::write(dir.join("twice.csv"), format!("{header}{once}{once}")).expect("write");
    let file = dir.join("rules.strat");
    let second_read = "neyman's S_h pass (a unit has several rows: read again by unit)";
    let rt = runtime();
    for rule in [
        "unit id stratify by country, plan take 600 allocate neyman(tenure) seed 40",
        "unit id stratify by plan take 300 allocate neyman(score) seed 41",
        "stratify by country take 400 allocate neyman(score) min 3 per stratum seed 42",
    ] {
        let [once, twice] = ["once", "twice"].map(|table| {
            let text = format!("table m = \"{table}.csv\"\nsample m {rule}\n");
            rt.block_on(first_statement(&file, &text, 2, 256 << 20))
        });
        let read_again = |o: &RunOutput| o.profile.phases.iter().any(|(p, _)| *p == second_read);
        assert!(!read_again(&once), "{rule}: {:?}", once.profile);
        assert!(read_again(&twice), "{rule}: {:?}", twice.profile);
        // Without `unit` a row twice is one unit of two rows (spec §6.1).
        assert_eq!(once.report, twice.report, "{rule}: report");
        let ids = |o: &RunOutput| {
            let rows = concat_batches(&o.schema, &o.batches).expect("concat");
            let ids = datafusion::arrow::compute::cast(
                rows.column_by_name("id").expect("id"),
                &datafusion::arrow::datatypes::DataType::Int64,
            )
            .expect("ids");
            let ids = ids
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .expect("int64")
                .values()
                .to_vec();
            ids.into_iter().collect::<std::collections::BTreeSet<i64>>()
        };
        let (a, b) = (ids(&once), ids(&twice));
        assert!(a.len() >= 250, "{rule}: {} units", a.len());
        assert_eq!(a, b, "{rule}: units");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Two units whose draws are equal (a real 64-bit collision under seed 1,
/// tests/cases/sql/draw_ties_*.strat) at a sample's and a split's boundary:
/// draw order is by key text (spec §6.2), so "03cb…" is taken and goes to
/// `a`, "a9dc…" is left out and goes to `b` — at 1 and 2 threads.
#[test]
fn units_whose_draws_tie_are_ordered_by_key_text() {
    let dir = std::env::temp_dir().join(format!("strat-ties-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (first, second) = ("03cbc8cd6b675cfa", "a9dc5c81d1820aa4");
    for threads in ["1", "2"] {
        let run = |case: &str| {
            let out = dir.join(format!("{case}-{threads}.csv"));
            let rules = format!("tests/cases/sql/{case}.strat");
            let args = [
                "run",
                rules.as_str(),
                "-o",
                out.to_str().unwrap(),
                "--threads",
                threads,
            ];
            let o = strat(&args);
            assert!(o.status.success(), "{case}: {}", stderr(&o));
            std::fs::read_to_string(&out).expect("output")
        };
        let sample = run("draw_ties_sample");
        assert!(sample.contains(&format!("\n{first},x,1\n")), "{sample}");
        assert!(!sample.contains(second), "{sample}");
        let split = run("draw_ties_split");
        for line in [
            format!("{first},x,1,a"),
            format!("{second},x,2,b"),
            format!("{second},x,3,b"),
        ] {
            assert!(split.lines().any(|l| l == line), "{line} in\n{split}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
