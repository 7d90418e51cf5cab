//! `strat repl` end to end, in a pseudo-terminal: what a user types (with Tab
//! completion, a multi-line statement, Ctrl-C and Ctrl-D) and what appears.

use std::process::Command;

use rexpect::session::{PtySession, spawn_command};

use crate::common::root;

/// Waits for `text` on the screen; on failure shows what was there.
fn expect(p: &mut PtySession, text: &str) -> String {
    match p.exp_string(text) {
        Ok(before) => before,
        Err(e) => panic!("`{text}` did not appear: {e}"),
    }
}

/// Types `keys` (flushed, so the terminal sees them now).
fn send(p: &mut PtySession, keys: &str) {
    p.send(keys).expect("type");
    p.flush().expect("flush");
}

#[test]
fn a_session_in_a_terminal() {
    let state = std::env::temp_dir().join(format!("strat-repl-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strat"));
    cmd.args([
        "repl",
        "--table",
        "members=examples/data/members.csv",
        "--color",
        "never",
    ])
    .current_dir(root())
    .env("XDG_STATE_HOME", &state)
    .env("TERM", "xterm")
    .env("NO_COLOR", "1");
    let mut p = spawn_command(cmd, Some(30_000)).expect("start strat repl in a pty");

    expect(&mut p, "table members = examples/data/members.csv");
    expect(&mut p, "strat> ");

    // Tab completes the command and the column: `:str⇥ pla⇥` is `:strata plan`.
    send(&mut p, ":str\t");
    send(&mut p, " pla\t");
    send(&mut p, " from members\r");
    expect(&mut p, "strata of members (6000 rows), largest first");
    expect(&mut p, "share");
    expect(&mut p, "basic");
    expect(&mut p, "strat> ");

    // A statement over several lines: Enter continues while it is unfinished
    // (after `where`, after a trailing comma), each continued line with its
    // prompt; `sample mem⇥` completes the table.
    send(&mut p, "cohort = sample mem\t");
    send(&mut p, " where\r");
    expect(&mut p, "  ...> ");
    send(
        &mut p,
        "  tenure_days >= 30 unit member_id stratify by country,\r",
    );
    expect(&mut p, "  ...> ");
    send(&mut p, "  plan take 200 seed 7\r");
    expect(&mut p, "defined `cohort`");

    // A line starting with `:` is a command, even in an unfinished statement
    // (which is dropped, with a note).
    send(&mut p, "sample members where\r");
    expect(&mut p, "  ...> ");
    send(&mut p, ":schema cohort\r");
    expect(
        &mut p,
        "dropped the unfinished statement `sample members where`",
    );
    expect(&mut p, "statement cohort (its output columns)");
    expect(&mut p, "strat> ");

    // Ctrl-C drops the input being typed.
    send(&mut p, "param nothing_here");
    expect(&mut p, "nothing_here");
    p.send_control('c').unwrap();
    expect(&mut p, "strat> ");
    send(&mut p, ":tables\r");
    expect(&mut p, "members.csv");

    send(&mut p, ":run\r");
    expect(&mut p, "N_h");
    expect(&mut p, "cohort: sampled 200 of ");

    send(&mut p, ":sql duckdb\r");
    expect(&mut p, "dialect DuckDB");
    expect(&mut p, "WITH");

    // Ctrl-D leaves; the history is kept in the state folder.
    p.send_control('d').unwrap();
    p.exp_eof().expect("the REPL ends on Ctrl-D");
    let history = std::fs::read_to_string(state.join("strat/history")).expect("a history file");
    assert!(
        history.contains(":sql duckdb") && history.contains(":run"),
        "{history}"
    );
    let _ = std::fs::remove_dir_all(&state);
}
