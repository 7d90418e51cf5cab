//! Hostile inputs of issue 7 not covered by robustness.rs and formats.rs:
//! invalid UTF-8 in the middle of a rule file, keywords as backticked column
//! names, Parquet corrupted or cut short, all-NULL stratum columns, zero
//! eligible rows, an empty folder, unwritable destinations and a file-size
//! limit (`ulimit -f`, as a full disk). Each asserts the message (snapshot,
//! the temporary folder redacted), that nothing partial is left behind, that an
//! existing output is untouched and that no input changed.
//!
//! No read permission and unwritable folders: as root (who reads and writes
//! whatever the mode), `strat` runs as the unprivileged user `nobody` (uid 65534,
//! with `setpriv` or `runuser`), for whom the modes bind; otherwise as the user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cli::tempdir;
use crate::common::{root, stderr, stdout, strat};

const OLD: &[u8] = b"the previous sample\n";

fn redact(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "[DIR]")
}

/// The names in `dir`, hidden temporary files included, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every regular file under `dir` with its bytes (to prove inputs unchanged).
fn snapshot_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            v.push((p.clone(), std::fs::read(&p).unwrap()));
        } else if p.is_dir() {
            v.extend(snapshot_files(&p));
        }
    }
    v.sort();
    v
}

#[test]
fn invalid_utf8_in_the_middle_is_placed() {
    let dir = tempdir("hostile-utf8");
    let members = root()
        .join("examples/data/members.csv")
        .display()
        .to_string();
    let mut bytes =
        format!("table members = \"{members}\"\nsample members\n  where country = \"ab")
            .into_bytes();
    bytes.extend_from_slice(b"\xff\xfe");
    bytes.extend_from_slice(b"cd\"\n  stratify by country\n  take 10\n  seed 1\n");
    std::fs::write(dir.join("r.strat"), &bytes).unwrap();
    let rule = dir.join("r.strat").display().to_string();
    let out = strat(&["check", &rule, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let d = &json["diagnostics"][0];
    assert_eq!(d["code"], "E0005", "{json}");
    // Line 3, the character after `  where country = "ab`.
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(3), Some(22)),
        "{d}"
    );
    let human = strat(&["check", &rule, "--color", "never"]);
    insta::assert_snapshot!("hostile_invalid_utf8_middle", redact(&stderr(&human), &dir));
    // `run` refuses it the same way and writes nothing.
    let out = strat(&[
        "run",
        &rule,
        "-o",
        &dir.join("s.csv").display().to_string(),
        "--color",
        "never",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("E0005"), "{}", stderr(&out));
    assert_eq!(names(&dir), ["r.strat"]);
}

#[test]
fn keywords_as_backticked_column_names() {
    let dir = tempdir("hostile-keywords");
    // Columns named like keywords, with a space, and like a function.
    std::fs::write(
        dir.join("kw.csv"),
        "seed,where,sample,a b,by,count\n1,US,x,p,1,7\n2,BR,y,q,2,7\n3,US,z,p,3,7\n4,DE,w,q,4,7\n5,US,v,q,5,7\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("r.strat"),
        "table t = \"kw.csv\"\n\
         s = sample t where `sample` != \"none\" and `count` = 7 and `by` > 0\n  \
           unit `seed` stratify by `where`, `a b` as `order` take 4 seed 1\n  \
           output `seed`, `where`, `order`, `by`, _weight\n",
    )
    .unwrap();
    let rule = dir.join("r.strat").display().to_string();
    let out = strat(&["check", &rule, "--color", "never"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let csv = dir.join("s.csv");
    let out = strat(&[
        "run",
        &rule,
        "-o",
        &csv.display().to_string(),
        "--color",
        "never",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().next(), Some("seed,where,order,by,_weight"));
    assert_eq!(text.lines().count(), 5, "{text}");
    // Unquoted, a keyword is a syntax error that says how to quote it.
    std::fs::write(
        dir.join("bare.strat"),
        "table t = \"kw.csv\"\nsample t stratify by where take 4 seed 1\n",
    )
    .unwrap();
    let out = strat(&[
        "check",
        &dir.join("bare.strat").display().to_string(),
        "--color",
        "never",
    ]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("hostile_keyword_unquoted", redact(&stderr(&out), &dir));
}

/// Writes examples/data/members.csv as Parquet with `strat run` itself.
fn members_parquet(dir: &Path) -> Vec<u8> {
    let members = root()
        .join("examples/data/members.csv")
        .display()
        .to_string();
    std::fs::write(
        dir.join("all.strat"),
        format!("table m = \"{members}\"\nsample m seed 1\n"),
    )
    .unwrap();
    let path = dir.join("members.parquet");
    let out = strat(&[
        "run",
        &dir.join("all.strat").display().to_string(),
        "-o",
        &path.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(dir.join("all.strat")).unwrap();
    bytes
}

#[test]
fn hostile_data_at_run_time() {
    let dir = tempdir("hostile-run");
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("empty_folder")).unwrap();
    let parquet = members_parquet(&data);
    // Page headers overwritten: the footer (schema) still reads, the data does not.
    let mut corrupt = parquet.clone();
    corrupt[4..200].fill(0xff);
    std::fs::write(data.join("corrupt.parquet"), &corrupt).unwrap();
    // Cut short: no footer.
    std::fs::write(
        data.join("truncated.parquet"),
        &parquet[..parquet.len() / 2],
    )
    .unwrap();
    std::fs::write(data.join("zero.csv"), "").unwrap();
    std::fs::write(
        data.join("nullstratum.csv"),
        "member_id,country\n1,\n2,\n3,\n4,\n",
    )
    .unwrap();
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let rule = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let strata = rule(
        "strata.strat",
        "sample t unit member_id stratify by country take 2 seed 1\n",
    );
    let none = rule(
        "none.strat",
        "sample t where member_id < 0 unit member_id stratify by country take 2 seed 1\n",
    );
    let none_pct = rule(
        "none_pct.strat",
        "sample t where member_id < 0 unit member_id stratify by country take 10% seed 1\n",
    );
    let inputs = snapshot_files(&data);
    let bind = |f: &str| format!("t={}", data.join(f).display());
    let old = out_dir.join("s.csv");

    let mut messages = String::new();
    for (what, rule, table, code) in [
        (
            "corrupted Parquet pages",
            &strata,
            "corrupt.parquet",
            "E0203",
        ),
        ("truncated Parquet", &strata, "truncated.parquet", "E0130"),
        ("0-byte table", &strata, "zero.csv", "E0130"),
        ("empty folder", &strata, "empty_folder", "E0130"),
        (
            "zero eligible rows, take 2",
            &none,
            "nullstratum.csv",
            "E0202",
        ),
    ] {
        std::fs::write(&old, OLD).unwrap();
        let out = strat(&[
            "run",
            rule,
            "--table",
            &bind(table),
            "-o",
            &old.display().to_string(),
            "--color",
            "never",
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains(code), "{what}: expected {code}: {err}");
        if code != "E0202" {
            assert!(
                err.contains(table),
                "{what}: the error names `{table}`: {err}"
            );
        }
        assert_eq!(
            std::fs::read(&old).unwrap(),
            OLD,
            "{what}: the old output is untouched"
        );
        assert_eq!(names(&out_dir), ["s.csv"], "{what}: nothing else written");
        messages.push_str(&format!("== {what}\n{}\n", redact(&err, &dir)));
    }
    insta::assert_snapshot!("hostile_data_at_run_time", messages);

    // A stratum column that is all NULL: NULL is one stratum, the run completes.
    let out_path = out_dir.join("nulls.csv");
    let out = strat(&[
        "run",
        &strata,
        "--table",
        &bind("nullstratum.csv"),
        "-o",
        &out_path.display().to_string(),
        "--color",
        "never",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines().skip(1).all(|l| l.ends_with(',')),
        "an empty (NULL) country: {text}"
    );
    // Zero eligible rows with a fraction: a complete, empty sample (header only).
    let out_path = out_dir.join("none.csv");
    let out = strat(&[
        "run",
        &none_pct,
        "--table",
        &bind("nullstratum.csv"),
        "-o",
        &out_path.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sampled 0 of 0 units"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap(),
        "member_id,country\n"
    );
    assert_eq!(snapshot_files(&data), inputs, "inputs are never modified");
}

#[test]
fn unwritable_destinations() {
    let dir = tempdir("hostile-dest");
    let members = root()
        .join("examples/data/members.csv")
        .display()
        .to_string();
    std::fs::write(
        dir.join("r.strat"),
        format!("table m = \"{members}\"\nsample m take 10 seed 1\n"),
    )
    .unwrap();
    std::fs::write(dir.join("a_file"), "not a folder\n").unwrap();
    let rule = dir.join("r.strat").display().to_string();
    let before = names(&dir);
    let mut messages = String::new();
    // sysfs refuses new files even to root: an unwritable folder that root cannot bypass.
    let sys_ok = Path::new("/sys/kernel").is_dir();
    let mut targets = vec![dir.join("a_file/s.csv").display().to_string()];
    if sys_ok {
        targets.push("/sys/kernel/strat-sample.csv".into());
    }
    for target in &targets {
        let out = strat(&["run", &rule, "-o", target, "--color", "never"]);
        assert_eq!(out.status.code(), Some(1), "{target}");
        let err = stderr(&out);
        assert!(
            err.contains("E0205") && err.contains(&format!("cannot write `{target}`")),
            "{target}: {err}"
        );
        assert!(err.contains("nothing was written"), "{err}");
        if !target.starts_with("/sys") {
            messages.push_str(&format!(
                "== {}\n{}\n",
                redact(target, &dir),
                redact(&err, &dir)
            ));
        }
    }
    assert!(!Path::new("/sys/kernel/strat-sample.csv").exists());
    assert_eq!(names(&dir), before);
    insta::assert_snapshot!("hostile_unwritable_destinations", messages);
}

/// Runs `strat` under `ulimit -f BLOCKS` (1 KiB blocks in bash): a write past
/// the limit fails as on a full disk.
fn strat_with_file_limit(blocks: u32, args: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -f {blocks}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_strat"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run strat under bash")
}

#[test]
fn file_size_limit_fails_cleanly() {
    let dir = tempdir("hostile-ulimit");
    let members = root()
        .join("examples/data/members.csv")
        .display()
        .to_string();
    // Every member (a CSV of ~500 KB, a Parquet of ~140 KB) against a 64 KiB limit.
    std::fs::write(
        dir.join("all.strat"),
        format!("table m = \"{members}\"\nsample m seed 1\n"),
    )
    .unwrap();
    // 6,000 one-member strata: a small sample, a report far over the limit.
    std::fs::write(
        dir.join("strata.strat"),
        format!("table m = \"{members}\"\nsample m unit member_id stratify by member_id take 10 seed 1\n"),
    )
    .unwrap();
    let all = dir.join("all.strat").display().to_string();
    let strata = dir.join("strata.strat").display().to_string();
    let mut messages = String::new();
    for (what, args, old_files) in [
        (
            "csv output",
            vec!["run", &all, "-o", "OUT/s.csv"],
            vec!["s.csv"],
        ),
        (
            "parquet output",
            vec!["run", &all, "-o", "OUT/s.parquet"],
            vec!["s.parquet"],
        ),
        (
            "markdown report",
            vec!["run", &strata, "-o", "OUT/s.csv", "--report", "OUT/r.md"],
            vec!["r.md", "s.csv"],
        ),
        // The sample over the limit, its report small: neither is replaced (the
        // pair is renamed only once both are written).
        (
            "csv output with a report",
            vec!["run", &all, "-o", "OUT/s.csv", "--report", "OUT/r.json"],
            vec!["r.json", "s.csv"],
        ),
    ] {
        let out_dir = dir.join("out");
        let _ = std::fs::remove_dir_all(&out_dir);
        std::fs::create_dir_all(&out_dir).unwrap();
        for f in &old_files {
            std::fs::write(out_dir.join(f), OLD).unwrap();
        }
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("OUT", &out_dir.display().to_string()))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = strat_with_file_limit(64, &[&args[..], &["--color", "never"]].concat());
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: killed or succeeded instead of failing cleanly: {err}"
        );
        assert!(
            err.contains("E0205") && err.contains("File too large"),
            "{what}: {err}"
        );
        assert_eq!(
            names(&out_dir),
            old_files,
            "{what}: no temporary file is left"
        );
        for f in &old_files {
            assert_eq!(
                std::fs::read(out_dir.join(f)).unwrap(),
                OLD,
                "{what}: `{f}` is untouched"
            );
        }
        messages.push_str(&format!("== {what}\n{}\n", redact(&err, &dir)));
    }
    insta::assert_snapshot!("hostile_file_size_limit", messages);
    // The same runs without the limit succeed.
    let out = strat(&["run", &all, "-o", &dir.join("s.csv").display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(std::fs::metadata(dir.join("s.csv")).unwrap().len() > 64 * 1024);
}

/// The command prefix that runs a program as a user for whom file modes bind:
/// `nobody` (uid/gid 65534, no supplementary groups) when the tests run as
/// root, nothing otherwise. The uid that must own the writable folder.
fn unprivileged(dir: &Path) -> (Vec<String>, Option<u32>) {
    use std::os::unix::fs::MetadataExt;
    // A file this process created belongs to its effective uid.
    let euid = std::fs::metadata(dir).unwrap().uid();
    if euid != 0 {
        return (Vec::new(), None);
    }
    let has = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has("setpriv") {
        let v = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ];
        (v.iter().map(|s| s.to_string()).collect(), Some(65534))
    } else if has("runuser") {
        (
            ["runuser", "-u", "nobody", "--"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            Some(65534),
        )
    } else {
        panic!(
            "running as root without setpriv or runuser: cannot drop privileges to test permissions"
        );
    }
}

#[test]
fn unreadable_inputs_and_unwritable_folders() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir("hostile-perm");
    let mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    let members: String = std::fs::read_to_string(root().join("examples/data/members.csv"))
        .unwrap()
        .lines()
        .take(200)
        .map(|l| format!("{l}\n"))
        .collect();
    for f in ["open.csv", "secret.csv"] {
        std::fs::write(dir.join(f), &members).unwrap();
    }
    for d in ["secret_dir", "mixed_dir", "ro_out", "out"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("secret_dir/part-0.csv"), &members).unwrap();
    std::fs::write(dir.join("mixed_dir/part-0.csv"), &members).unwrap();
    std::fs::write(dir.join("mixed_dir/part-1.csv"), &members).unwrap();
    let rule = |name: &str, table: &str| {
        std::fs::write(
            dir.join(name),
            format!("table m = \"{table}\"\nsample m unit member_id stratify by country take 20 seed 1\n"),
        )
        .unwrap();
    };
    rule("ok.strat", "open.csv");
    rule("secret.strat", "secret.csv");
    rule("secret_dir.strat", "secret_dir");
    rule("mixed_dir.strat", "mixed_dir");
    rule("hidden.strat", "open.csv");
    std::fs::write(dir.join("ro_out/s.csv"), OLD).unwrap();
    std::fs::write(dir.join("out/s.csv"), OLD).unwrap();
    let (prefix, owner) = unprivileged(&dir);
    if let Some(uid) = owner {
        // The one folder the user may write to.
        std::os::unix::fs::chown(dir.join("out"), Some(uid), Some(uid)).unwrap();
        std::os::unix::fs::chown(dir.join("out/s.csv"), Some(uid), Some(uid)).unwrap();
    }
    mode(&dir, 0o755);
    mode(&dir.join("secret.csv"), 0o000);
    mode(&dir.join("secret_dir"), 0o000);
    mode(&dir.join("mixed_dir/part-1.csv"), 0o000);
    mode(&dir.join("hidden.strat"), 0o000);
    mode(&dir.join("ro_out"), 0o555);
    let inputs_before: Vec<(String, u64)> = ["open.csv", "secret.csv", "ok.strat"]
        .iter()
        .map(|f| (f.to_string(), std::fs::metadata(dir.join(f)).unwrap().len()))
        .collect();

    let run = |args: &[&str]| -> Output {
        let mut all: Vec<&str> = prefix.iter().map(String::as_str).collect();
        all.push(env!("CARGO_BIN_EXE_strat"));
        all.extend(args);
        all.extend(["--color", "never"]);
        Command::new(all[0])
            .args(&all[1..])
            .current_dir(&dir)
            .env_remove("NO_COLOR")
            .output()
            .expect("run strat")
    };
    // The user can read the open table and write `out/`: the setup itself is sound.
    let ok = run(&["run", "ok.strat", "-o", "out/check.csv"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "as the unprivileged user: {}",
        stderr(&ok)
    );
    std::fs::remove_file(dir.join("out/check.csv")).unwrap();

    let mut messages = String::new();
    for (what, args, code, named) in [
        (
            "table file without read permission",
            vec!["run", "secret.strat", "-o", "out/s.csv"],
            "E0130",
            "secret.csv",
        ),
        (
            "the same, in check",
            vec!["check", "secret.strat"],
            "E0130",
            "secret.csv",
        ),
        (
            "the same, bound with --table",
            vec![
                "run",
                "ok.strat",
                "--table",
                "m=secret.csv",
                "-o",
                "out/s.csv",
            ],
            "E0130",
            "secret.csv",
        ),
        (
            "table folder that cannot be listed",
            vec!["run", "secret_dir.strat", "-o", "out/s.csv"],
            "E0130",
            "secret_dir",
        ),
        (
            "one unreadable file in a table folder",
            vec!["run", "mixed_dir.strat", "-o", "out/s.csv"],
            "E0130",
            "mixed_dir/part-1.csv",
        ),
        (
            "rule file without read permission",
            vec!["run", "hidden.strat", "-o", "out/s.csv"],
            "E0007",
            "hidden.strat",
        ),
        (
            "output folder not writable (CSV over an old file)",
            vec!["run", "ok.strat", "-o", "ro_out/s.csv"],
            "E0205",
            "ro_out/s.csv",
        ),
        (
            "output folder not writable (new Parquet)",
            vec!["run", "ok.strat", "-o", "ro_out/new.parquet"],
            "E0205",
            "ro_out/new.parquet",
        ),
        (
            "report folder not writable",
            vec![
                "run",
                "ok.strat",
                "-o",
                "out/s.csv",
                "--report",
                "ro_out/r.json",
            ],
            "E0205",
            "ro_out/r.json",
        ),
    ] {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains(code), "{what}: expected {code}: {err}");
        assert!(
            err.contains(&format!("`{named}`")),
            "{what}: the message names `{named}`: {err}"
        );
        assert!(
            !err.contains("os error") && !err.contains("Object Store"),
            "{what}: a library's message leaks: {err}"
        );
        // Nothing written, the old outputs untouched, no temporary file anywhere.
        assert_eq!(names(&dir.join("out")), ["s.csv"], "{what}");
        assert_eq!(std::fs::read(dir.join("out/s.csv")).unwrap(), OLD, "{what}");
        assert_eq!(names(&dir.join("ro_out")), ["s.csv"], "{what}");
        assert_eq!(
            std::fs::read(dir.join("ro_out/s.csv")).unwrap(),
            OLD,
            "{what}"
        );
        messages.push_str(&format!("== {what}\n{}\n", redact(&err, &dir)));
    }
    let inputs_after: Vec<(String, u64)> = ["open.csv", "secret.csv", "ok.strat"]
        .iter()
        .map(|f| (f.to_string(), std::fs::metadata(dir.join(f)).unwrap().len()))
        .collect();
    assert_eq!(inputs_after, inputs_before);
    insta::assert_snapshot!("hostile_permissions", messages);
    for p in [
        "secret.csv",
        "secret_dir",
        "mixed_dir/part-1.csv",
        "hidden.strat",
        "ro_out",
    ] {
        mode(&dir.join(p), 0o755);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
