//! `as of T by COLUMN …` (spec §4.5) through `strat run`, on the hand-made
//! snapshots of tests/cases/sql/data/snapshots.csv (its SQL cases check the
//! same samples on every engine): which row is each member's state, the
//! window's edges, ties, `where` after the pick, the report's counts, the
//! same sample from one file or one file per day, at 1 or 2 threads
//! (spilling: tests/integration/streaming.rs).

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::tempdir;
use crate::common::{root, stderr, strat};
use crate::sql::read_csv;

const SNAPSHOTS: &str = "tests/cases/sql/data/snapshots.csv";

/// Runs `rules` (whose `snapshots` table is bound to `table`) with `args`
/// and returns the output CSV's rows by member id.
fn state_rows(
    dir: &Path,
    name: &str,
    rules: &str,
    table: &Path,
    args: &[&str],
) -> BTreeMap<String, BTreeMap<String, String>> {
    let rule = dir.join(format!("{name}.strat"));
    std::fs::write(&rule, rules).unwrap();
    let out = dir.join(format!("{name}.csv"));
    let binding = format!("snapshots={}", table.display());
    let mut run = vec![
        "run",
        rule.to_str().unwrap(),
        "--table",
        &binding,
        "-o",
        out.to_str().unwrap(),
        "-q",
    ];
    run.extend(args);
    let o = strat(&run);
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    let rows = read_csv(&std::fs::read_to_string(&out).unwrap());
    let head = rows[0].clone();
    rows[1..]
        .iter()
        .map(|r| {
            let row: BTreeMap<String, String> = head.iter().cloned().zip(r.clone()).collect();
            (row["member_id"].clone(), row)
        })
        .collect()
}

fn all_states(as_of: &str) -> String {
    format!(
        "sample snapshots\n  {as_of}\n  where plan != \"trial\"\n  unit member_id\n  \
         stratify by country, plan\n  take all\n  seed 1\n  \
         output member_id, snapshot_date, seen_at, country, plan\n"
    )
}

#[test]
fn each_member_is_stratified_by_its_row_at_t() {
    let dir = tempdir("as-of-states");
    let table = root().join(SNAPSHOTS);
    let states = state_rows(
        &dir,
        "dates",
        &all_states("as of @2018-06-01 by snapshot_date within 30 days ties by ingested_at"),
        &table,
        &[],
    );
    let at = |m: &str| {
        let r = states
            .get(m)
            .unwrap_or_else(|| panic!("member {m} has no state"));
        format!("{} {} {}", r["snapshot_date"], r["country"], r["plan"])
    };
    // Leakage: member 1 moved to premium on 2018-06-03, after T.
    assert_eq!(at("1"), "2018-05-25 US basic");
    // The window: 5's row at T is in, 12's on the first day of the window too.
    assert_eq!(at("5"), "2018-06-01 GB premium");
    assert_eq!(at("12"), "2018-05-03 BR premium");
    // Ties on the date: the later load wins; a NULL load time never wins.
    assert_eq!(at("6"), "2018-05-20 US premium");
    assert_eq!(at("8"), "2018-05-15 BR standard");
    // A member who moved is where it was at T.
    assert_eq!(at("7"), "2018-05-28 GB basic");
    // No state: joined after T (2, 11), left before the window (3), only a
    // row at T − 30 days (4, 13); and 9, whose state is a trial (`where`
    // tests the state row, never an older one).
    for gone in ["2", "3", "4", "9", "11", "13"] {
        assert!(
            !states.contains_key(gone),
            "member {gone} has no state at T"
        );
    }

    // `desc`: the first load of a day wins (a NULL still never wins).
    let desc = state_rows(
        &dir,
        "desc",
        &all_states("as of @2018-06-01 by snapshot_date within 30 days ties by ingested_at desc"),
        &table,
        &[],
    );
    assert_eq!(desc["6"]["plan"], "standard");
    assert_eq!(desc["8"]["plan"], "standard");

    // Without `within`, 3 and 4 have states (their last rows before T).
    let open = state_rows(
        &dir,
        "open",
        &all_states("as of @2018-06-01 by snapshot_date ties by ingested_at"),
        &table,
        &[],
    );
    assert_eq!(open["3"]["snapshot_date"], "2018-04-20");
    assert_eq!(open["4"]["snapshot_date"], "2018-05-02");

    // A date T against a timestamp column is the whole day: 5's row at
    // 23:59:59 is in, 11's at midnight after T out; the window starts at
    // midnight 30 days before T + 1 day (12 in, 13 at 23:59:59 before out).
    let stamps = state_rows(
        &dir,
        "stamps",
        &all_states("as of @2018-06-01 by seen_at within 30 days ties by ingested_at"),
        &table,
        &[],
    );
    assert_eq!(stamps["5"]["seen_at"], "2018-06-01T23:59:59");
    assert!(stamps.contains_key("12"));
    assert!(!stamps.contains_key("11") && !stamps.contains_key("13"));
}

#[test]
fn the_report_counts_rows_and_units_with_and_without_a_state() {
    let dir = tempdir("as-of-report");
    let report = dir.join("r.json");
    state_rows(
        &dir,
        "r",
        &all_states("as of @2018-06-01 by snapshot_date within 30 days ties by ingested_at"),
        &root().join(SNAPSHOTS),
        &["--report", report.to_str().unwrap()],
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let text = std::fs::read_to_string(root().join(SNAPSHOTS)).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let members: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.split(',').next().unwrap()).collect();
    let a = &json["as_of"];
    assert_eq!(
        a["clause"],
        "as of @2018-06-01 by snapshot_date within 30 days ties by ingested_at"
    );
    assert_eq!(a["rows_read"], rows.len() as u64);
    let with = a["units_with_state"].as_u64().unwrap();
    assert_eq!(
        with + a["units_without_state"].as_u64().unwrap(),
        members.len() as u64
    );
    // `where` drops member 9 after the pick: the population is the rest.
    assert_eq!(json["population"].as_u64().unwrap(), with - 1);
}

#[test]
fn one_file_or_one_file_per_day_and_threads_give_the_same_sample() {
    let dir = tempdir("as-of-files");
    let text = std::fs::read_to_string(root().join(SNAPSHOTS)).unwrap();
    let (head, body) = text.split_once('\n').unwrap();
    let days = dir.join("days");
    std::fs::create_dir_all(&days).unwrap();
    let mut by_day: BTreeMap<&str, String> = BTreeMap::new();
    for line in body.lines() {
        let day = line.split(',').nth(1).unwrap();
        by_day
            .entry(day)
            .or_insert_with(|| format!("{head}\n"))
            .push_str(&format!("{line}\n"));
    }
    assert!(by_day.len() > 30, "one file a day");
    for (day, rows) in &by_day {
        std::fs::write(days.join(format!("{day}.csv")), rows).unwrap();
    }
    let rules = std::fs::read_to_string(root().join("tests/cases/sql/as_of_dates.strat")).unwrap();
    let rules = rules.replace("data/snapshots.csv", "unused.csv");
    let one = root().join(SNAPSHOTS);
    let runs = [
        ("one-file", one.as_path(), vec!["--threads", "1"]),
        ("per-day", days.as_path(), vec!["--threads", "2"]),
    ];
    let mut outputs = Vec::new();
    for (name, table, args) in runs {
        state_rows(&dir, name, &rules, table, &args);
        outputs.push((
            name,
            std::fs::read(dir.join(format!("{name}.csv"))).unwrap(),
        ));
    }
    for (name, bytes) in &outputs[1..] {
        assert!(
            *bytes == outputs[0].1,
            "{name} differs from one file at 1 thread"
        );
    }
}

#[test]
fn rows_tied_at_a_units_latest_time_are_an_error_naming_the_units() {
    let dir = tempdir("as-of-ties");
    let rule = dir.join("tie.strat");
    let out = dir.join("tie.csv");
    for (clause, extra) in [
        (
            "as of @2018-06-01 by snapshot_date within 30 days",
            "add `ties by COLUMN`",
        ),
        (
            "as of @2018-06-01 by snapshot_date within 30 days ties by country",
            "equal on `country` too",
        ),
    ] {
        std::fs::write(
            &rule,
            format!(
                "table snapshots = \"{}\"\n{}",
                root().join(SNAPSHOTS).display(),
                all_states(clause)
            ),
        )
        .unwrap();
        let o = strat(&["run", rule.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains("[E0209]"), "{e}");
        // Members 6 and 8 have two rows on their latest day.
        assert!(e.contains("2 units tie"), "{e}");
        assert!(e.contains("`member_id` = 6 (2 rows)"), "{e}");
        assert!(e.contains("`member_id` = 8 (2 rows)"), "{e}");
        assert!(e.contains(extra), "{e}");
        assert!(!out.exists(), "a failed run writes nothing");
    }
}
