//! The REPL backend without a terminal: every meta command, rule input,
//! completion, hints and highlighting.

use std::path::Path;

use super::backend::Session;
use super::complete::{self, Completion, Vocabulary};
use super::meta::{COMMANDS, Meta, StrataArgs, parse_strata};

fn data(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/data")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

fn examples(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn temp_dir(name: &str) -> TestDir {
    TestDir::new(std::env::temp_dir().join(format!("strat-repl-{name}-{}", std::process::id())))
}

/// A fresh folder for one test, removed when the test ends well (a failed
/// test leaves it to look at).
struct TestDir(std::path::PathBuf);

impl TestDir {
    fn new(path: std::path::PathBuf) -> TestDir {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("test folder");
        TestDir(path)
    }
}

impl std::ops::Deref for TestDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TestDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A session with `members` (and `events`) bound; `lines` are executed in order.
fn session(lines: &[&str]) -> (Session, Vec<String>) {
    block(async {
        let mut s = Session::new(false);
        s.width = Some(200);
        let mut out = Vec::new();
        out.push(
            s.execute(&format!(":table members {}", data("members.csv")))
                .await
                .text,
        );
        out.push(
            s.execute(&format!(":table events {}", data("events.csv")))
                .await
                .text,
        );
        for l in lines {
            out.push(s.execute(l).await.text);
        }
        (s, out)
    })
}

fn exec(s: &mut Session, line: &str) -> String {
    block(s.execute(line)).text
}

const COHORT: &str = "cohort = sample members\n  where tenure_days >= 30\n  unit member_id\n  stratify by country, plan\n  take 500\n  seed 7";

// ------------------------------------------------------------ parsing

#[test]
fn meta_commands_parse() {
    assert_eq!(Meta::parse(":help"), Ok(Meta::Help(None)));
    assert_eq!(
        Meta::parse(":help strata"),
        Ok(Meta::Help(Some("strata".into())))
    );
    assert_eq!(
        Meta::parse(":table m data/m.csv"),
        Ok(Meta::Table {
            name: "m".into(),
            path: "data/m.csv".into()
        })
    );
    assert_eq!(
        Meta::parse(":table m=\"my data/m.csv\""),
        Ok(Meta::Table {
            name: "m".into(),
            path: "my data/m.csv".into()
        })
    );
    assert_eq!(Meta::parse(":tables"), Ok(Meta::Tables));
    assert_eq!(
        Meta::parse(":schema members"),
        Ok(Meta::Schema(Some("members".into())))
    );
    assert_eq!(Meta::parse(":check"), Ok(Meta::Check));
    assert_eq!(
        Meta::parse(":explain cohort"),
        Ok(Meta::Explain(Some("cohort".into())))
    );
    assert_eq!(
        Meta::parse(":sql DuckDB"),
        Ok(Meta::Sql {
            dialect: "duckdb".into(),
            name: None
        })
    );
    assert_eq!(
        Meta::parse(":run -o out.csv cohort"),
        Ok(Meta::Run {
            name: Some("cohort".into()),
            output: Some("out.csv".into())
        })
    );
    assert_eq!(
        Meta::parse(":report"),
        Ok(Meta::Report {
            name: None,
            output: None
        })
    );
    assert_eq!(Meta::parse(":params"), Ok(Meta::Params));
    assert_eq!(
        Meta::parse(":set as_of = 2018-03-01"),
        Ok(Meta::Set {
            name: "as_of".into(),
            value: "2018-03-01".into()
        })
    );
    assert_eq!(
        Meta::parse(":load rules.strat"),
        Ok(Meta::Load("rules.strat".into()))
    );
    assert_eq!(
        Meta::parse(":save 'my rules.strat'"),
        Ok(Meta::Save("my rules.strat".into()))
    );
    assert_eq!(Meta::parse(":show"), Ok(Meta::Show));
    assert_eq!(
        Meta::parse(":drop cohort"),
        Ok(Meta::Drop(vec!["cohort".into()]))
    );
    assert_eq!(
        Meta::parse(":drop 2 cohort"),
        Ok(Meta::Drop(vec!["2".into(), "cohort".into()]))
    );
    assert!(Meta::parse(":drop").unwrap_err().contains("usage"));
    assert_eq!(Meta::parse(":quit"), Ok(Meta::Quit));
    assert_eq!(Meta::parse(":q"), Ok(Meta::Quit));
    assert_eq!(
        Meta::parse(":strata country from members"),
        Ok(Meta::Strata(StrataArgs {
            exprs: "country".into(),
            from: Some("members".into()),
            typed: "country from members".into(),
            at: [0, 13, 0, 0, 0],
            ..Default::default()
        }))
    );
    // Usage errors and unknown commands.
    assert!(
        Meta::parse(":set as_of")
            .unwrap_err()
            .contains("usage: :set NAME=VALUE")
    );
    assert!(Meta::parse(":tables x").unwrap_err().contains("usage"));
    assert!(Meta::parse(":run -o").unwrap_err().contains("usage"));
    assert!(
        Meta::parse(":strat country")
            .unwrap_err()
            .contains("did you mean `:strata`?")
    );
    assert!(
        Meta::parse(":strata")
            .unwrap_err()
            .contains("at least one stratum expression")
    );
    // Every command has help.
    for c in COMMANDS {
        assert!(!c.help.is_empty() && !c.summary.is_empty(), "{}", c.name);
    }
}

#[test]
fn strata_arguments_split_at_top_level_words() {
    let a = parse_strata("country, bucket(tenure_days, [90, 365]) as band where plan in (\"a\", \"from\") and x > 1 unit member_id from members")
        .unwrap();
    assert_eq!(a.exprs, "country, bucket(tenure_days, [90, 365]) as band");
    assert_eq!(
        a.filter.as_deref(),
        Some("plan in (\"a\", \"from\") and x > 1")
    );
    assert_eq!(a.unit.as_deref(), Some("member_id"));
    assert_eq!(a.from.as_deref(), Some("members"));
    // Where each part was typed.
    for (part, at) in [
        (Some(a.exprs.as_str()), a.at[0]),
        (a.from.as_deref(), a.at[1]),
        (a.unit.as_deref(), a.at[2]),
        (a.filter.as_deref(), a.at[3]),
    ] {
        let part = part.unwrap();
        assert_eq!(&a.typed[at..at + part.len()], part);
    }
    assert!(
        parse_strata("country from")
            .unwrap_err()
            .contains("`from` needs a value")
    );
}

// ------------------------------------------------------------ commands

#[test]
fn help_lists_every_command_and_explains_one() {
    let mut s = Session::new(false);
    let all = exec(&mut s, ":help");
    for c in COMMANDS {
        assert!(all.contains(&format!(":{}", c.name)), "{}", c.name);
    }
    assert!(exec(&mut s, ":help strata").contains("largest first"));
    assert!(exec(&mut s, ":help nope").contains("unknown command"));
}

#[test]
fn table_binds_and_reports_columns_or_refuses() {
    let (mut s, out) = session(&[]);
    assert!(
        out[0].contains("table members = ") && out[0].contains("member_id int"),
        "{}",
        out[0]
    );
    let bad = exec(&mut s, ":table nope /no/such/file.csv");
    assert!(
        bad.contains("E0130") && bad.contains("not applied"),
        "{bad}"
    );
    assert!(!exec(&mut s, ":tables").contains("nope"));
}

#[test]
fn tables_lists_bindings() {
    let (mut s, _) = session(&[]);
    let t = exec(&mut s, ":tables");
    assert!(
        t.contains("members") && t.contains("members.csv") && t.contains("┆ 9"),
        "{t}"
    );
    assert!(exec(&mut Session::new(false), ":tables").contains("no tables bound"));
}

#[test]
fn schema_of_tables_and_statements() {
    let (mut s, _) = session(&[COHORT]);
    let t = exec(&mut s, ":schema members");
    assert!(
        t.contains("tenure_days") && t.contains("Int64") && t.contains("int"),
        "{t}"
    );
    let st = exec(&mut s, ":schema cohort");
    assert!(
        st.contains("output columns") && st.contains("country"),
        "{st}"
    );
    let all = exec(&mut s, ":schema");
    assert!(
        all.contains("members: member_id int") && all.contains("cohort (statement)"),
        "{all}"
    );
    assert!(exec(&mut s, ":schema membres").contains("did you mean `members`?"));
}

#[test]
fn strata_counts_sorts_and_flags_small_strata() {
    let (mut s, _) = session(&[]);
    let out = exec(&mut s, ":strata country from members");
    assert!(
        out.contains("strata of members (6000 rows), largest first"),
        "{out}"
    );
    let us = out.find("US").expect("US");
    let is = out.find(" IS ").expect("IS");
    assert!(us < is, "sorted by count, largest first:\n{out}");
    assert!(out.contains("small"), "{out}");
    assert!(
        out.contains("small strata (fewer than 30 rows or under 1%)"),
        "{out}"
    );

    // Several expressions, a filter, units, and a bucket.
    let out = exec(
        &mut s,
        ":strata plan, bucket(tenure_days, [90, 365]) as band from members unit member_id where not is_kids_profile",
    );
    assert!(
        out.contains("units") && out.contains("band") && out.contains("[90,365)"),
        "{out}"
    );

    // Unit aggregates go through the runner; `from` defaults to the last table bound.
    let out = exec(
        &mut s,
        ":strata last(country by event_ts) as latest unit member_id",
    );
    assert!(
        out.contains("strata of events") && out.contains("latest") && out.contains("units"),
        "{out}"
    );

    // Mistakes point at what was typed.
    let bad = exec(&mut s, ":strata contry from members");
    assert!(
        bad.contains("E0102") && bad.contains("did you mean `country`?") && bad.contains("strata:"),
        "{bad}"
    );

    // `from N` reads statement N; errors show the command as typed, not
    // the statement built from it.
    exec(&mut s, "sample members unit member_id take 100 seed 1");
    let out = exec(&mut s, ":strata plan from 1");
    assert!(out.contains("3 strata of statement 1 (100 rows)"), "{out}");
    assert!(exec(&mut s, ":strata plan from 9").contains("no statement 9"));
    let bad = exec(&mut s, ":strata plan,  nope from 1 where x > 1");
    assert!(
        bad.contains(" 1 │ :strata plan,  nope from 1 where x > 1") && !bad.contains("__"),
        "{bad}"
    );
    assert!(
        bad.find("`nope`").unwrap() < bad.find("`x`").unwrap(),
        "in the order typed: {bad}"
    );
    let bad = exec(&mut s, ":strata plan from nothing");
    assert!(
        bad.contains("E0101") && bad.contains(":strata plan from nothing") && !bad.contains("__"),
        "{bad}"
    );

    // Long lists keep the largest and the smallest.
    s.max_rows = 6;
    let out = exec(&mut s, ":strata country, plan, device from members");
    assert!(out.contains("more strata"), "{out}");
}

#[test]
fn rules_are_checked_kept_and_redefined() {
    let (mut s, out) = session(&[COHORT]);
    assert!(out[2].contains("defined `cohort`"), "{}", out[2]);
    // A mistake is shown against what was typed and changes nothing.
    let bad = exec(
        &mut s,
        "cohort = sample members stratify by contry take 10 seed 1",
    );
    assert!(
        bad.contains("input:1:")
            && bad.contains("did you mean `country`?")
            && bad.contains("not applied"),
        "{bad}"
    );
    assert!(exec(&mut s, ":show").contains("take 500"));
    // Syntax errors too.
    let bad = exec(&mut s, "sample members take");
    assert!(bad.contains("input:"), "{bad}");
    // Redefinition keeps the position, so a later statement still reads it.
    exec(
        &mut s,
        "split cohort unit member_id into train 80%, test 20% seed 3",
    );
    let again = exec(
        &mut s,
        "cohort = sample members unit member_id stratify by country take 300 seed 7",
    );
    assert!(again.contains("redefined `cohort`"), "{again}");
    let shown = exec(&mut s, ":show");
    assert!(
        shown.find("take 300").unwrap() < shown.find("split cohort").unwrap(),
        "{shown}"
    );
    // Warnings about what was typed are shown.
    let w = exec(&mut s, "other = sample members take 10");
    assert!(w.contains("W0001"), "{w}");
}

#[test]
fn check_rechecks_the_whole_session() {
    let (mut s, _) = session(&[COHORT]);
    let out = exec(&mut s, ":check");
    assert!(
        out.contains("session: ok") && out.contains("1 statement"),
        "{out}"
    );
    assert!(exec(&mut Session::new(false), ":check").contains("empty"));
}

#[test]
fn explain_shows_the_plan_and_allocation() {
    let (mut s, _) = session(&[COHORT]);
    let out = exec(&mut s, ":explain");
    assert!(
        out.contains("== `cohort`: sample ==") && out.contains("allocation"),
        "{out}"
    );
    assert!(exec(&mut s, ":explain cohrt").contains("did you mean `cohort`?"));
    assert!(exec(&mut Session::new(false), ":explain").contains("the session is empty"));
}

#[test]
fn sql_exports_the_statement() {
    let (mut s, _) = session(&[COHORT]);
    let out = exec(&mut s, ":sql duckdb");
    assert!(
        out.contains("dialect DuckDB") && out.contains("md5("),
        "{out}"
    );
    let out = exec(&mut s, ":sql postgres");
    assert!(out.contains("convert_to("), "{out}");
    assert!(exec(&mut s, ":sql duckbd").contains("did you mean `duckdb`?"));
    assert!(exec(&mut s, ":sql spark nope").contains("no statement named `nope`"));
}

#[test]
fn run_previews_summarises_and_writes() {
    let (mut s, _) = session(&[COHORT]);
    let out = exec(&mut s, ":run");
    assert!(
        out.contains("member_id") && out.contains("(the first 10 of 500 rows"),
        "{out}"
    );
    assert!(
        out.contains("stratum") && out.contains("N_h") && out.contains("cohort: sampled 500 of"),
        "{out}"
    );
    let dir = temp_dir("run");
    let path = dir.join("cohort.csv");
    let out = exec(&mut s, &format!(":run cohort -o {}", path.display()));
    assert!(out.contains("wrote 500 rows"), "{out}");
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 501);
    let bad = exec(&mut s, &format!(":run -o {}", dir.join("x.txt").display()));
    assert!(bad.contains("E0205"), "{bad}");
    // A run-time error is a diagnostic.
    exec(&mut s, "big = sample members take 100_000 seed 1");
    assert!(exec(&mut s, ":run big").contains("E0202"));
}

#[test]
fn report_shows_and_writes_the_run_report() {
    let (mut s, _) = session(&[COHORT]);
    let out = exec(&mut s, ":report cohort");
    assert!(
        out.contains("| stratum") || out.contains("stratum"),
        "{out}"
    );
    let dir = temp_dir("report");
    let path = dir.join("r.json");
    assert!(exec(&mut s, &format!(":report -o {}", path.display())).contains("wrote the report"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        json.get("strata").is_some() || json.to_string().contains("strata"),
        "{json}"
    );
    // The HTML page embeds the same JSON report.
    let html = dir.join("r.html");
    assert!(exec(&mut s, &format!(":report -o {}", html.display())).contains("wrote the report"));
    let page = std::fs::read_to_string(&html).unwrap();
    let embedded = strat_render::report_html::embedded_report(&page).expect("embedded JSON");
    assert_eq!(embedded, json);
    assert!(
        exec(
            &mut s,
            &format!(":report -o {}", dir.join("r.txt").display())
        )
        .contains("name it .json, .md or .html")
    );
}

#[test]
fn params_and_set() {
    let (mut s, _) = session(&[
        "param min_tenure: int = 30",
        "sample members where tenure_days >= min_tenure take 10 seed 1",
    ]);
    let p = exec(&mut s, ":params");
    assert!(
        p.contains("min_tenure") && p.contains("int") && p.contains("30"),
        "{p}"
    );
    let ok = exec(&mut s, ":set min_tenure=400");
    assert!(ok.contains("min_tenure = 400"), "{ok}");
    assert!(exec(&mut s, ":params").contains("400"));
    let bad = exec(&mut s, ":set min_tenure=abc");
    assert!(
        bad.contains("E0124") && bad.contains("not applied"),
        "{bad}"
    );
    let bad = exec(&mut s, ":set nope=1");
    assert!(bad.contains("E0103"), "{bad}");
    assert!(exec(&mut Session::new(false), ":params").contains("no params"));
}

#[test]
fn load_a_rule_file() {
    let mut s = Session::new(false);
    let out = exec(&mut s, &format!(":load {}", examples("cohort.strat")));
    assert!(
        out.contains("loaded") && out.contains("defined `cohort`"),
        "{out}"
    );
    assert!(out.contains("W0003"), "the file's notes are shown: {out}");
    let t = exec(&mut s, ":tables");
    assert!(
        t.contains("holdout") && t.contains("last_test_set.csv"),
        "{t}"
    );
    assert!(exec(&mut s, ":load /no/such.strat").contains("E0007"));
}

#[test]
fn save_writes_a_file_that_checks_and_runs() {
    let (mut s, _) = session(&[
        "param as_of: date = @2018-06-01",
        COHORT,
        "split cohort unit member_id stratify by country into train 80%, test 20% seed 3",
    ]);
    exec(&mut s, ":set as_of=2018-03-01");
    let dir = temp_dir("save");
    let path = dir.join("rules.strat");
    let out = exec(&mut s, &format!(":save {}", path.display()));
    assert!(
        out.contains("saved 2 table(s), 1 param(s), 2 statement(s)"),
        "{out}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("param as_of: date = @2018-03-01"), "{text}");
    assert!(
        text.contains("table members = \"") && text.contains("members.csv\""),
        "{text}"
    );
    // The round trip: the saved file checks and runs as the engine sees it.
    let (rows, split_totals) = block(async {
        let ctx = datafusion::prelude::SessionContext::new();
        let compiled =
            strat_engine::compile(&ctx, Some(&path), &text, &strat_engine::Options::default())
                .await;
        assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
        let program = compiled.program.unwrap();
        let out = strat_engine::run::run_statement(&ctx, &program, 1)
            .await
            .unwrap();
        (
            out.batches.iter().map(|b| b.num_rows()).sum::<usize>(),
            out.report.split_totals,
        )
    });
    assert_eq!(rows, 500);
    assert_eq!(split_totals.iter().map(|t| t.1).sum::<u64>(), 500);
    // Loading it back gives the same session text.
    let mut again = Session::new(false);
    let loaded = exec(&mut again, &format!(":load {}", path.display()));
    assert!(loaded.contains("loaded"), "{loaded}");
    let (a, b) = (exec(&mut again, ":show"), exec(&mut s, ":show"));
    assert_eq!(
        a[a.find("cohort =").unwrap()..],
        b[b.find("cohort =").unwrap()..]
    );
    // Nothing to save without a statement.
    assert!(
        exec(
            &mut Session::new(false),
            &format!(":save {}", dir.join("x.strat").display())
        )
        .contains("nothing to save")
    );
}

#[test]
fn keep_having_mode_and_rates_in_a_session() {
    let events = "usual = sample events unit member_id having count(*) >= 3 and sum(watch_minutes) > 60 \
                  keep units in cohort stratify by mode(device) as usual_device take about \
                  allocate { usual_device = \"tv\" => rate 50% else => rate 20% } seed 9";
    let (mut s, out) = session(&[COHORT, events]);
    assert!(out[3].contains("defined `usual`"), "{}", out[3]);
    let ran = exec(&mut s, ":run usual");
    assert!(ran.contains("p=50%") || ran.contains("p=1/2"), "{ran}");
    let dir = temp_dir("save-keep");
    let path = dir.join("rules.strat");
    exec(&mut s, &format!(":save {}", path.display()));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(
            "usual = sample events\n  unit member_id\n  having count(*) >= 3 and sum(watch_minutes) > 60\n  \
             keep units in cohort\n  stratify by mode(device) as usual_device\n  take about\n  allocate {"
        ),
        "{text}"
    );
    // The saved file loads back to the same session.
    let mut again = Session::new(false);
    assert!(exec(&mut again, &format!(":load {}", path.display())).contains("loaded"));
}

#[test]
fn show_and_drop() {
    let (mut s, _) = session(&[
        COHORT,
        "split cohort unit member_id into a 50%, b 50% seed 2",
    ]);
    let shown = exec(&mut s, ":show");
    assert!(
        shown.contains("\ntable members = ") && shown.contains("cohort = sample members"),
        "{shown}"
    );
    // The split reads `cohort`: dropping it is refused, naming the split.
    let refused = exec(&mut s, ":drop cohort");
    assert!(
        refused.starts_with("cannot drop statement `cohort`: statement 2 (`split cohort")
            && refused
                .contains("drop that first (`:drop 2`), or drop them together (`:drop cohort 2`)"),
        "{refused}"
    );
    // So is a table that statements read.
    let refused = exec(&mut s, ":drop members");
    assert!(
        refused.starts_with("cannot drop table `members`: `cohort` reads it"),
        "{refused}"
    );
    // Together, both go.
    let both = exec(&mut s, ":drop cohort 2");
    assert!(
        both.contains("dropped statement `cohort`, statement 2"),
        "{both}"
    );
    assert!(!exec(&mut s, ":show").contains("cohort"));
    let (mut s, _) = session(&[
        COHORT,
        "split cohort unit member_id into a 50%, b 50% seed 2",
    ]);
    assert!(exec(&mut s, ":drop 2").contains("dropped statement 2"));
    assert!(exec(&mut s, ":drop cohort").contains("dropped statement `cohort`"));
    assert!(exec(&mut s, ":drop nothing").contains("nothing named"));
    assert!(exec(&mut Session::new(false), ":show").contains("empty"));
}

#[test]
fn show_prints_what_save_writes() {
    let (mut s, _) = session(&["param as_of: date = @2018-06-01", COHORT]);
    exec(&mut s, ":set as_of=2018-03-01");
    let shown = exec(&mut s, ":show");
    assert!(
        shown.contains("param as_of: date = @2018-03-01"),
        "the value in effect: {shown}"
    );
    // `:save` in the current folder writes exactly what `:show` printed.
    let dir = std::env::current_dir().unwrap();
    let name = format!("strat-repl-show-{}.strat", std::process::id());
    let out = exec(&mut s, &format!(":save {name}"));
    let saved = std::fs::read_to_string(dir.join(&name));
    let _ = std::fs::remove_file(dir.join(&name));
    assert!(out.contains("saved"), "{out}");
    assert_eq!(saved.unwrap(), shown);
}

#[test]
fn a_command_line_is_never_part_of_a_statement() {
    use super::input::{Gather, Step, dropped_note};
    let mut g = Gather::default();
    assert_eq!(g.prompt(), "strat> ");
    // A statement over lines, with the continuation prompt.
    assert_eq!(g.push("cohort = sample members where", false), Step::More);
    assert_eq!(g.prompt(), "  ...> ");
    assert_eq!(g.push("", false), Step::More);
    assert_eq!(
        g.push("  tenure_days > 30 seed 1", false),
        Step::Run {
            input: "cohort = sample members where\n\n  tenure_days > 30 seed 1".into(),
            dropped: None
        }
    );
    assert_eq!(g.prompt(), "strat> ");
    // A bare word waits for more; a command is run, and the word is dropped.
    assert_eq!(g.push("foo", false), Step::More);
    assert_eq!(
        g.push(":save rules.strat", false),
        Step::Run {
            input: ":save rules.strat".into(),
            dropped: Some("foo".into())
        }
    );
    // An unfinished statement does not swallow `:run cohort`.
    assert_eq!(g.push("sample members where", false), Step::More);
    assert_eq!(g.push("  tenure_days > 30 and", false), Step::More);
    let Step::Run { input, dropped } = g.push("  :run cohort", false) else {
        panic!("a command runs")
    };
    assert_eq!(input, "  :run cohort");
    let dropped = dropped.unwrap();
    assert_eq!(
        dropped_note(&dropped),
        "dropped the unfinished statement `sample members where …` (2 lines): a line starting \
         with `:` is a command; ↑ recalls the statement\n"
    );
    // Only comments are nothing to drop.
    assert_eq!(
        g.push("# a comment about the next statement", false),
        Step::Run {
            input: "# a comment about the next statement".into(),
            dropped: None
        }
    );
    // Alt-Enter continues a complete statement.
    assert_eq!(g.push("sample members take 10", true), Step::More);
    assert_eq!(
        g.push("  seed 1", false),
        Step::Run {
            input: "sample members take 10\n  seed 1".into(),
            dropped: None
        }
    );
    // Ctrl-C drops the input.
    assert_eq!(g.push("sample members where", false), Step::More);
    g.clear();
    assert_eq!(g.prompt(), "strat> ");
}

#[test]
fn quit_ends_and_unknown_commands_do_not() {
    let mut s = Session::new(false);
    assert!(block(s.execute(":quit")).quit);
    let r = block(s.execute(":frobnicate"));
    assert!(!r.quit && r.text.contains("unknown command"));
    assert!(block(s.execute("   ")).text.is_empty());
    assert!(block(s.execute("# just a comment")).text.is_empty());
}

#[test]
fn start_binds_tables_and_loads_a_file() {
    let mut s = Session::new(false);
    let out = block(s.start(None, &[("members".into(), data("members.csv"))], &[]));
    assert!(out.contains("table members"), "{out}");
    let mut s = Session::new(false);
    let out = block(s.start(
        Some(&examples("cohort.strat")),
        &[],
        &[("as_of".into(), "2018-03-01".into())],
    ));
    assert!(out.contains("loaded"), "{out}");
    assert!(exec(&mut s, ":params").contains("2018-03-01"));
}

// ------------------------------------------------------------ editor support

fn vocab() -> Vocabulary {
    let (s, _) = session(&[COHORT]);
    block(s.vocabulary())
}

fn words(c: Completion) -> Vec<String> {
    match c {
        Completion::Words { words, .. } => words,
        Completion::Path => vec!["<path>".into()],
    }
}

#[test]
fn completion_is_context_aware() {
    let v = vocab();
    assert!(
        v.tables
            .iter()
            .any(|t| t.0 == "members" && t.1.contains(&"tenure_days".to_string()))
    );
    let c = |line: &str| words(complete::complete(line, line.len(), &v));
    assert_eq!(c(":str"), [":strata"]);
    assert_eq!(c("sample mem"), ["members"]);
    assert!(c("sample ").contains(&"cohort".to_string()));
    assert_eq!(c("sample members stratify by countr"), ["country"]);
    assert!(c("sample members stratify by ").contains(&"bucket".to_string()));
    assert_eq!(c("sample members\n  unit mem"), ["member_id"]);
    // Columns of the statement's own source.
    assert!(c("sample events where ").contains(&"event_ts".to_string()));
    assert!(!c("sample events where ").contains(&"tenure_days".to_string()));
    assert_eq!(c("sample members tak"), ["take"]);
    // `keep` and `having` are completed where a clause may start, `mode` as a function.
    assert_eq!(c("sample events unit member_id kee"), ["keep"]);
    assert_eq!(c("sample events unit member_id hav"), ["having"]);
    assert!(c("sample events unit member_id having ").contains(&"mode".to_string()));
    assert!(c("sample events unit member_id having ").contains(&"watch_minutes".to_string()));
    assert!(c("sample events unit member_id keep units in ").contains(&"cohort".to_string()));
    assert_eq!(c(":sql duc"), ["duckdb"]);
    assert_eq!(c(":run co"), ["cohort"]);
    assert_eq!(c(":strata tenure"), ["tenure_days"]);
    assert_eq!(c(":strata event_t"), ["event_ts"]);
    assert!(!c(":strata plan from members where ev").contains(&"event_ts".to_string()));
    assert_eq!(c(":strata country from ev"), ["events"]);
    assert_eq!(c(":load exam"), ["<path>"]);
    assert_eq!(c(":table m ex"), ["<path>"]);
    assert_eq!(c(":help stra"), ["strata"]);
    match complete::complete("sample members stratify by coun", 31, &v) {
        Completion::Words { start, .. } => assert_eq!(start, 27),
        Completion::Path => panic!(),
    }
}

#[test]
fn hints_and_highlighting() {
    assert_eq!(
        complete::hint(":strata", 7),
        Some((
            " EXPR[, EXPR…] [from NAME] [as of T by COLUMN …] [unit COLUMN] [where CONDITION]"
                .into(),
            false
        ))
    );
    assert_eq!(complete::hint(":expl", 5), Some(("ain".into(), true)));
    assert_eq!(complete::hint("sample", 6), None);
    let h = complete::highlight("sample members take 10 # c");
    assert!(
        h.contains("\x1b[1;34msample\x1b[0m")
            && h.contains("\x1b[33m10\x1b[0m")
            && h.contains("\x1b[2m# c\x1b[0m"),
        "{h:?}"
    );
    let stripped: String = strip_ansi(&h);
    assert_eq!(stripped, "sample members take 10 # c");
    assert!(complete::highlight(":run cohort").starts_with("\x1b[1;35m:run"));
    assert_eq!(complete::ident("watch hours"), "`watch hours`");
    assert_eq!(complete::ident("count"), "`count`");
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `:strata … as of T by COLUMN …` counts each unit by its state at T
/// (spec §4.5): the plans of June 1st, not of the snapshots after it; an
/// alias `as` is not `as of`.
#[test]
fn strata_as_of_count_units_by_their_state() {
    let (mut s, _) = session(&[]);
    let days = data("member_days");
    exec(&mut s, &format!(":table member_days {days}/"));
    let a = parse_strata(
        "plan as p as of @2018-06-01 by snapshot_date ties by ingested_at unit member_id",
    )
    .unwrap();
    assert_eq!(a.exprs, "plan as p");
    assert_eq!(
        a.as_of.as_deref(),
        Some("@2018-06-01 by snapshot_date ties by ingested_at")
    );
    assert_eq!(&a.typed[a.at[4]..a.at[4] + 11], "@2018-06-01");
    let june = exec(
        &mut s,
        ":strata plan as of @2018-06-01 by snapshot_date within 30 days ties by ingested_at unit member_id",
    );
    let later = exec(
        &mut s,
        ":strata plan as of @2018-06-10 by snapshot_date within 30 days ties by ingested_at unit member_id",
    );
    assert!(june.contains("strata of member_days ("), "{june}");
    assert_ne!(june, later, "members joined, left and changed plan in June");
    let tied = exec(
        &mut s,
        ":strata plan as of @2018-06-01 by snapshot_date unit member_id",
    );
    assert!(tied.contains("E0209") && tied.contains("100605"), "{tied}");
    // It points at what follows `as of` as typed, not at `:strata`.
    let lines: Vec<&str> = tied.lines().collect();
    let typed = lines
        .iter()
        .position(|l| l.contains(":strata plan as of"))
        .expect("the command is shown");
    let at = lines[typed].chars().position(|c| c == '@');
    let underline = lines[typed + 1].chars().position(|c| c == '─' || c == '┬');
    assert_eq!(at, underline, "{tied}");
}
