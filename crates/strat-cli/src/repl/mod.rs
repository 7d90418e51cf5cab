//! `strat repl`: an interactive session over the [`backend`]. This module is
//! the terminal side only — rustyline with completion, highlighting, hints,
//! multi-line input and a history file; Ctrl-C cancels the input or a running
//! command, Ctrl-D leaves.

pub mod backend;
pub mod complete;
pub mod meta;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::{Hint, Hinter, HistoryHinter};
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{
    Cmd, CompletionType, Config, Context, Editor, Helper, KeyCode, KeyEvent, Modifiers,
};

use crate::{BindArgs, ColorChoice};
use backend::Session;
use complete::{Completion, Vocabulary};

#[derive(clap::Args, Debug)]
pub struct ReplArgs {
    /// A rule file to load into the session.
    #[arg(value_name = "FILE")]
    pub file: Option<String>,
    #[command(flatten)]
    pub bind: BindArgs,
    /// When to colour (diagnostics and syntax highlighting).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// The editor's helper: completion from the session's names, highlighting,
/// hints, and multi-line input while the parser says the input is unfinished.
struct ReplHelper {
    vocab: Vocabulary,
    files: FilenameCompleter,
    history: HistoryHinter,
    color: bool,
}

/// A hint: a command's synopsis (shown, never inserted) or the rest of a word.
struct ReplHint {
    text: String,
    insert: bool,
}

impl Hint for ReplHint {
    fn display(&self) -> &str {
        &self.text
    }
    fn completion(&self) -> Option<&str> {
        self.insert.then_some(self.text.as_str())
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        match complete::complete(line, pos, &self.vocab) {
            Completion::Words { start, words } => Ok((
                start,
                words
                    .into_iter()
                    .map(|w| Pair {
                        display: w.clone(),
                        replacement: w,
                    })
                    .collect(),
            )),
            Completion::Path => self.files.complete_path(line, pos),
        }
    }
}

impl Hinter for ReplHelper {
    type Hint = ReplHint;

    fn hint(&self, line: &str, pos: usize, ctx: &Context<'_>) -> Option<ReplHint> {
        if let Some((text, insert)) = complete::hint(line, pos) {
            return Some(ReplHint { text, insert });
        }
        self.history
            .hint(line, pos, ctx)
            .map(|text| ReplHint { text, insert: true })
    }
}

impl Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if self.color {
            Cow::Owned(complete::highlight(line))
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.color {
            Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
        } else {
            Cow::Borrowed(hint)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, kind: CmdKind) -> bool {
        self.color && kind != CmdKind::MoveCursor
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        let t = input.trim_start();
        if t.is_empty() || t.starts_with(':') || !strat_syntax::is_incomplete(input) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Helper for ReplHelper {}

/// Where the history is kept: `$XDG_STATE_HOME/strat/history`, else
/// `~/.local/state/strat/history`.
pub fn history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("strat").join("history"))
}

/// Runs the REPL until `:quit` or Ctrl-D; returns the exit code.
pub fn run(args: ReplArgs, runtime: &tokio::runtime::Runtime) -> i32 {
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let mut session = Session::new(color);
    let greeting =
        runtime.block_on(session.start(args.file.as_deref(), &args.bind.tables, &args.bind.params));
    let mut out = std::io::stdout();
    let _ = write!(
        out,
        "strat {} — `:help` lists the commands, Ctrl-D leaves\n{greeting}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = out.flush();

    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_dups(true)
        .map(|b| b.completion_type(CompletionType::List).build())
        .unwrap_or_default();
    let mut editor: Editor<ReplHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the line editor: {e}");
            return 1;
        }
    };
    // Alt-Enter starts a new line even when the statement is already complete.
    editor.bind_sequence(KeyEvent(KeyCode::Enter, Modifiers::ALT), Cmd::Newline);
    let vocab = runtime.block_on(session.vocabulary());
    editor.set_helper(Some(ReplHelper {
        vocab,
        files: FilenameCompleter::new(),
        history: HistoryHinter::new(),
        color,
    }));
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }

    loop {
        let mut line = match editor.readline("strat> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue, // Ctrl-C: drop the input
            Err(ReadlineError::Eof) => break,            // Ctrl-D
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        };
        // Without a terminal (input piped in) the validator is not asked:
        // read on while the statement is unfinished.
        let mut cancelled = false;
        while !line.trim_start().starts_with(':') && strat_syntax::is_incomplete(&line) {
            match editor.readline("  ...> ") {
                Ok(more) => {
                    line.push('\n');
                    line.push_str(&more);
                }
                Err(ReadlineError::Interrupted) => {
                    cancelled = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if cancelled {
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        if let Some(h) = &history {
            if let Some(dir) = h.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = editor.save_history(h);
        }

        // Tables fit the terminal (a terminal that reports no size gets 100 columns).
        session.width = comfy_table::Table::new()
            .width()
            .map(|w| if w < 40 { 100 } else { w });
        // The command runs on a copy of the session in a task; Ctrl-C aborts
        // it and the session stays as it was.
        let mut work = session.clone();
        let task = runtime.spawn(async move {
            let reply = work.execute(&line).await;
            (work, reply)
        });
        let abort = task.abort_handle();
        let outcome = runtime.block_on(async {
            tokio::select! {
                done = task => Some(done),
                _ = tokio::signal::ctrl_c() => None,
            }
        });
        let (next, reply) = match outcome {
            Some(Ok(done)) => done,
            Some(Err(e)) => {
                println!("internal error: {e}; the session is unchanged");
                continue;
            }
            None => {
                abort.abort();
                println!("cancelled; the session is unchanged");
                continue;
            }
        };
        session = next;
        let _ = write!(out, "{}", reply.text);
        let _ = out.flush();
        if reply.quit {
            break;
        }
        let vocab = runtime.block_on(session.vocabulary());
        if let Some(h) = editor.helper_mut() {
            h.vocab = vocab;
        }
    }
    0
}
