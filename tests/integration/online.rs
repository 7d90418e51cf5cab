//! `strat freeze` and `strat stream`: records decided one by one, as they
//! arrive, are the units `strat run` selects on the whole table (issue 16).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{root, stderr, strat};
use crate::sql::temp_dir;

const RULES: &str = r#"
table members = "MEMBERS"

param size: int = 300

exact = sample members
  where not is_kids_profile
  unit member_id
  stratify by country, plan, bucket(tenure_days, [90, 365]) as band
  take size
  seed 11
  output member_id, country, plan, band, _weight, _stratum

rows = sample members
  stratify by plan
  take 2%
  seed 12
  output member_id, plan, watch_hours_28d, _weight

ney = sample members
  unit member_id
  stratify by country
  take about 4%
  allocate neyman(watch_hours_28d)
  seed 13
  output member_id, country, _weight, _stratum

rates = sample members
  unit member_id
  stratify by plan, device
  take about
  allocate { plan = "premium" => rate 50%  device = "tv" => all  else => rate 5% }
  seed 14
  output member_id, plan, device, _weight, _stratum

one_rate = sample members
  where tenure_days >= 90
  stratify by country
  take about 3%
  seed 15

parts = split members
  unit member_id
  stratify by country, plan
  into train 80%, validation 10%, test 10%
  seed 16
  output member_id, country, plan, _split

kfold = split members unit member_id stratify by country into 5 folds seed 17
  output member_id, _split

about_parts = split members
  unit member_id
  stratify by plan
  into about train 70%, test 30%
  seed 18
  output member_id, plan, _split, _weight
"#;

/// The forms that need frozen thresholds, and those decided by rules alone.
const FROZEN: [&str; 5] = ["exact", "rows", "ney", "parts", "kfold"];
const RULE_ONLY: [&str; 3] = ["rates", "one_rate", "about_parts"];

struct Setup {
    dir: PathBuf,
    rules: PathBuf,
    /// Every member as NDJSON, in a shuffled order.
    records: PathBuf,
}

fn setup(name: &str) -> Setup {
    let dir = temp_dir(&format!("online-{name}"));
    let members = root().join("examples/data/members.csv");
    let rules = dir.join("rules.strat");
    std::fs::write(
        &rules,
        RULES.replace("MEMBERS", &members.display().to_string()),
    )
    .unwrap();
    // Every member, as the table reads them (CSV types inferred), as NDJSON.
    let all = dir.join("all.strat");
    std::fs::write(
        &all,
        format!(
            "table members = \"{}\"\nsample members unit member_id take all seed 1\n",
            members.display()
        ),
    )
    .unwrap();
    let ordered = dir.join("ordered.ndjson");
    let o = run(&[all.to_str().unwrap(), "-o", ordered.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = dir.join("records.ndjson");
    let mut lines: Vec<String> = std::fs::read_to_string(&ordered)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    shuffle(&mut lines, 7);
    std::fs::write(&records, lines.join("\n") + "\n").unwrap();
    Setup {
        dir,
        rules,
        records,
    }
}

fn run(args: &[&str]) -> std::process::Output {
    let mut all = vec!["run", "-q"];
    all.extend_from_slice(args);
    strat(&all)
}

/// A deterministic shuffle (a linear congruential generator's Fisher–Yates).
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut x = seed;
    for i in (1..v.len()).rev() {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        v.swap(i, (x >> 33) as usize % (i + 1));
    }
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(String::from).collect();
    v.sort();
    v
}

/// `strat run` of statement `emit` as NDJSON lines, sorted.
fn batch(s: &Setup, emit: &str, threads: &str) -> Vec<String> {
    let out = s.dir.join(format!("{emit}-{threads}.ndjson"));
    let o = run(&[
        s.rules.to_str().unwrap(),
        "--emit",
        emit,
        "--threads",
        threads,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{emit}: {}", stderr(&o));
    sorted_lines(&std::fs::read_to_string(out).unwrap())
}

fn freeze(s: &Setup, emit: &str, threads: &str) -> PathBuf {
    let out = s.dir.join(format!("{emit}-{threads}.json"));
    let o = strat(&[
        "freeze",
        s.rules.to_str().unwrap(),
        "--emit",
        emit,
        "--threads",
        threads,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{emit}: {}", stderr(&o));
    out
}

/// Runs `strat stream` with `args`, writing `input` to its stdin in
/// `pieces` writes (cut mid-line), and returns (stdout, stderr, success).
fn stream(args: &[&str], input: &[u8], pieces: usize) -> (String, String, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strat"))
        .arg("stream")
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strat stream");
    let mut stdin = child.stdin.take().unwrap();
    let size = input.len().div_ceil(pieces.max(1)).max(1);
    let writer = {
        let input = input.to_vec();
        std::thread::spawn(move || {
            // A refused run exits before reading: a broken pipe is its answer.
            for piece in input.chunks(size) {
                if stdin.write_all(piece).and_then(|()| stdin.flush()).is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.success(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_form_streamed_selects_the_batch_units() {
    let s = setup("forms");
    let records = std::fs::read(&s.records).unwrap();
    for emit in FROZEN {
        let expected = batch(&s, emit, "2");
        assert_eq!(expected, batch(&s, emit, "1"), "{emit}: threads");
        let decisions = freeze(&s, emit, "2");
        assert_eq!(
            std::fs::read(&decisions).unwrap(),
            std::fs::read(freeze(&s, emit, "1")).unwrap(),
            "{emit}: the frozen thresholds depend on the threads"
        );
        let args = [
            path(&s.rules),
            "--emit",
            emit,
            "--thresholds",
            path(&decisions),
        ];
        let (out, err, ok) = stream(&args, &records, 7);
        assert!(ok, "{emit}: {err}");
        assert!(
            !expected.is_empty(),
            "{emit}: an empty sample proves nothing"
        );
        assert_eq!(sorted_lines(&out), expected, "{emit}: {err}");
        assert!(
            err.contains(&format!("{} selected", expected.len())),
            "{emit}: {err}"
        );
    }
    for emit in RULE_ONLY {
        let expected = batch(&s, emit, "2");
        let (out, err, ok) = stream(&[path(&s.rules), "--emit", emit], &records, 3);
        assert!(ok, "{emit}: {err}");
        assert!(!expected.is_empty());
        assert_eq!(sorted_lines(&out), expected, "{emit}: {err}");
    }
}

#[test]
fn line_buffered_csv_records_in_another_column_order_decide_alike() {
    let s = setup("csv");
    let expected = batch(&s, "parts", "2");
    let decisions = freeze(&s, "parts", "2");
    // The members CSV with its columns reversed, one record per write.
    let text = std::fs::read_to_string(root().join("examples/data/members.csv")).unwrap();
    let reversed: String = text
        .lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.reverse();
            cells.join(",") + "\n"
        })
        .collect();
    let args = [
        path(&s.rules),
        "--emit",
        "parts",
        "--thresholds",
        path(&decisions),
        "--input-format",
        "csv",
        "--line-buffered",
    ];
    let (out, err, ok) = stream(&args, reversed.as_bytes(), 40);
    assert!(ok, "{err}");
    assert_eq!(sorted_lines(&out), expected, "{err}");
    // CSV out: a header, then a line per selected record.
    let args = [path(&s.rules), "--emit", "rates", "--output-format", "csv"];
    let (out, err, ok) = stream(&args, &std::fs::read(&s.records).unwrap(), 2);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("member_id,plan,device,_weight,_stratum"),
        "{out}"
    );
    assert_eq!(lines.count(), batch(&s, "rates", "2").len());
}

#[test]
fn a_statement_that_needs_counts_asks_for_thresholds() {
    let s = setup("needs");
    let (out, err, ok) = stream(&[path(&s.rules), "--emit", "exact"], b"", 1);
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("E0143"), "{err}");
    assert!(err.contains("`take 300` needs the table's counts"), "{err}");
    assert!(err.contains("strat freeze"), "{err}");
    let (_, err, ok) = stream(&[path(&s.rules), "--emit", "parts"], b"", 1);
    assert!(
        !ok && err.contains("E0143") && err.contains("exact split"),
        "{err}"
    );
}

#[test]
fn thresholds_of_other_rules_are_refused() {
    let s = setup("stale");
    let decisions = freeze(&s, "exact", "2");
    // The same rules with another seed: the thresholds no longer decide them.
    let text = std::fs::read_to_string(&s.rules).unwrap();
    std::fs::write(&s.rules, text.replace("seed 11", "seed 99")).unwrap();
    let args = [
        path(&s.rules),
        "--emit",
        "exact",
        "--thresholds",
        path(&decisions),
    ];
    let (out, err, ok) = stream(&args, &std::fs::read(&s.records).unwrap(), 1);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("E0145"), "{err}");
    assert!(err.contains("another version of the rules"), "{err}");
    // Thresholds of another statement of the same file.
    std::fs::write(&s.rules, text).unwrap();
    let args = [
        path(&s.rules),
        "--emit",
        "rows",
        "--thresholds",
        path(&decisions),
    ];
    let (_, err, ok) = stream(&args, b"", 1);
    assert!(
        !ok && err.contains("E0145") && err.contains("decide `exact`"),
        "{err}"
    );
    // Thresholds frozen with other params.
    let args = [
        path(&s.rules),
        "--emit",
        "exact",
        "--thresholds",
        path(&decisions),
        "--param",
        "size=301",
    ];
    let (_, err, ok) = stream(&args, b"", 1);
    assert!(!ok && err.contains("E0145"), "{err}");
    assert!(
        err.contains("frozen with params none, this run has --param size=301"),
        "{err}"
    );
    // A damaged file.
    std::fs::write(&decisions, "{\"strat_decisions\": 1}").unwrap();
    let args = [
        path(&s.rules),
        "--emit",
        "exact",
        "--thresholds",
        path(&decisions),
    ];
    let (_, err, ok) = stream(&args, b"", 1);
    assert!(
        !ok && err.contains("E0145") && err.contains("no `strata`"),
        "{err}"
    );
}

#[test]
fn statements_that_need_more_than_a_record_are_refused() {
    let s = setup("refused");
    let members = root().join("examples/data/members.csv");
    let rules = s.dir.join("more.strat");
    std::fs::write(
        &rules,
        format!(
            "table members = \"{}\"\n\
             cohort = sample members unit member_id stratify by country take about 10% seed 1\n\
             again = sample cohort unit member_id take about 50% seed 2\n\
             agg = sample members unit member_id stratify by max(tenure_days) > 365 as old take about 10% seed 3\n",
            members.display()
        ),
    )
    .unwrap();
    for (emit, words) in [
        ("again", "another statement's output"),
        ("agg", "unit aggregates"),
    ] {
        let (_, err, ok) = stream(&[path(&rules), "--emit", emit], b"", 1);
        assert!(!ok, "{emit}");
        assert!(
            err.contains("E0144") && err.contains(words),
            "{emit}: {err}"
        );
        let o = strat(&[
            "freeze",
            path(&rules),
            "--emit",
            emit,
            "-o",
            path(&s.dir.join("x.json")),
        ]);
        assert!(
            !o.status.success() && stderr(&o).contains("E0144"),
            "{emit}"
        );
    }
}

#[test]
fn bad_records_and_units_that_change_stratum_are_skipped_and_told() {
    let s = setup("skips");
    let good = r#"{"member_id":1,"country":"US","plan":"premium","device":"tv","tenure_days":10,"signup_date":"2018-01-01","watch_hours_28d":1.5,"is_kids_profile":false,"referral_source":null}"#;
    let moved = good.replace("\"premium\"", "\"basic\"");
    let bad = good.replace("10,", "\"ten\",");
    // No `plan` key (a stratum column): it would read as NULL, a stratum of
    // its own; `"plan"` inside a string value is not the key. An explicit
    // null is a value, decided as the batch run decides it.
    let no_plan = good.replace(r#""plan":"premium","#, r#""device_note":"\"plan\": x","#);
    let null_plan = good
        .replace(r#""plan":"premium""#, r#""plan":null"#)
        .replace(r#""member_id":1,"#, r#""member_id":2,"#);
    let input = format!("{good}\n{bad}\nnot json\n{moved}\n{good}\n{no_plan}\n{null_plan}\n");
    let (out, err, ok) = stream(&[path(&s.rules), "--emit", "rates"], input.as_bytes(), 1);
    assert!(ok, "{err}");
    // Line 1 and 5: member 1 in premium × tv ("all" by its `device` rule … the
    // first rule that matches is the premium one: rate 50%); its draw decides
    // both alike. Line 4 moves it to basic: skipped and told.
    assert!(err.contains("line 2 skipped: cannot be read"), "{err}");
    assert!(err.contains("line 3 skipped: cannot be read"), "{err}");
    assert!(
        err.contains("line 4 skipped: unit `1` was met in stratum `premium/tv` before"),
        "{err}"
    );
    assert!(
        err.contains("line 6 skipped: no `plan`, a column the decision reads"),
        "{err}"
    );
    assert!(
        err.contains("1 skipped: a column the decision reads is missing"),
        "{err}"
    );
    assert!(err.contains("4 records read"), "{err}");
    assert!(
        err.contains("1 skipped: their unit was in another stratum"),
        "{err}"
    );
    assert!(err.contains("2 skipped: unreadable"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() <= 3, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("\"plan\":\"premium\"") || l.contains("\"plan\":null")),
        "{out}"
    );
}

#[test]
fn records_from_a_growing_file_are_decided_as_they_come() {
    let s = setup("follow");
    let file = s.dir.join("growing.ndjson");
    let records = std::fs::read_to_string(&s.records).unwrap();
    let lines: Vec<&str> = records.lines().collect();
    let (first, rest) = lines.split_at(lines.len() / 2);
    std::fs::write(&file, first.join("\n") + "\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strat"))
        .args([
            "stream",
            path(&s.rules),
            "--emit",
            "rates",
            "--from",
            path(&file),
            "--follow",
        ])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all((rest.join("\n") + "\n").as_bytes()).unwrap();
    drop(f);
    let expected = batch(&s, "rates", "2");
    // Read what it wrote until every selected record is there.
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut text = String::new();
        let mut buf = [0u8; 65536];
        while got.len() < expected.len() {
            let n = std::io::Read::read(&mut out, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            got = text.lines().map(String::from).collect::<Vec<_>>();
            if !text.ends_with('\n') {
                got.pop();
            }
        }
        got.sort();
        (got, expected)
    });
    let (got, expected) = reader.join().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(got, expected);
}

#[test]
fn follow_alone_reads_the_tables_own_file_as_it_grows() {
    let s = setup("follow-table");
    let file = s.dir.join("members.ndjson");
    let records = std::fs::read_to_string(&s.records).unwrap();
    let lines: Vec<&str> = records.lines().collect();
    let (first, rest) = lines.split_at(lines.len() / 3);
    std::fs::write(&file, first.join("\n") + "\n").unwrap();
    let binding = format!("members={}", path(&file));
    let mut child = Command::new(env!("CARGO_BIN_EXE_strat"))
        .args([
            "stream",
            path(&s.rules),
            "--emit",
            "about_parts",
            "--table",
            &binding,
            "--follow",
        ])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    for chunk in rest.chunks(500) {
        f.write_all((chunk.join("\n") + "\n").as_bytes()).unwrap();
        f.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(f);
    // Every record gets a part: one line out per line in.
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut got = Vec::new();
    let mut line = String::new();
    while got.len() < lines.len() {
        line.clear();
        if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
            break;
        }
        got.push(line.trim_end().to_string());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    got.sort();
    let o = run(&[
        path(&s.rules),
        "--emit",
        "about_parts",
        "--table",
        &binding,
        "-o",
        path(&s.dir.join("whole.ndjson")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        got,
        sorted_lines(&std::fs::read_to_string(s.dir.join("whole.ndjson")).unwrap())
    );
}

#[test]
fn a_json_report_carries_the_thresholds_freeze_writes() {
    let s = setup("report");
    for emit in ["exact", "parts"] {
        let sample = s.dir.join(format!("{emit}.ndjson"));
        let report = s.dir.join(format!("{emit}-report.json"));
        let o = run(&[
            path(&s.rules),
            "--emit",
            emit,
            "-o",
            path(&sample),
            "--report",
            path(&report),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        // The sample is the one written without a report.
        let plain = batch(&s, emit, "2");
        assert_eq!(
            sorted_lines(&std::fs::read_to_string(&sample).unwrap()),
            plain
        );
        let report_json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let frozen: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(freeze(&s, emit, "1")).unwrap()).unwrap();
        assert_eq!(report_json["thresholds"], frozen, "{emit}");
        // …and streams with it.
        let args = [
            path(&s.rules),
            "--emit",
            emit,
            "--thresholds",
            path(&report),
        ];
        let (out, err, ok) = stream(&args, &std::fs::read(&s.records).unwrap(), 2);
        assert!(ok, "{err}");
        assert_eq!(sorted_lines(&out), plain);
    }
}

#[test]
fn a_shipped_split_with_excluded_units_streams_from_csv_as_it_runs() {
    let s = setup("shipped");
    let rules = root().join("examples/train_val_test.strat");
    let sample = s.dir.join("tvt.ndjson");
    let o = run(&[path(&rules), "-o", path(&sample)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let decisions = s.dir.join("tvt.json");
    let o = strat(&["freeze", path(&rules), "-o", path(&decisions)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read(root().join("examples/data/members.csv")).unwrap();
    let args = [
        path(&rules),
        "--thresholds",
        path(&decisions),
        "--input-format",
        "csv",
    ];
    let (out, err, ok) = stream(&args, &csv, 5);
    assert!(ok, "{err}");
    let expected = sorted_lines(&std::fs::read_to_string(&sample).unwrap());
    assert_eq!(sorted_lines(&out), expected);
    // The holdout's members are among the records, and left out as in the run.
    assert!(
        err.contains("of units `keep`/`exclude units in` leave out"),
        "{err}"
    );
}

#[test]
fn a_file_of_records_must_be_ndjson_or_csv() {
    let s = setup("not-lines");
    let not_records = root().join("examples/cohort.strat");
    let args = [
        path(&s.rules),
        "--emit",
        "rates",
        "--from",
        path(&not_records),
    ];
    let (out, err, ok) = stream(&args, b"", 1);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("is a .strat file"), "{err}");
    assert!(err.contains("--input-format"), "{err}");
}
