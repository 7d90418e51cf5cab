//! `strat repl`: an interactive session over the [`backend`]. This module is
//! the terminal side only — rustyline with completion, highlighting, hints,
//! continued lines ([`input`]) and a history file; Ctrl-C cancels the input or
//! a running command, Ctrl-D leaves.

pub mod backend;
pub mod complete;
pub mod input;
pub mod meta;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::{Hint, Hinter, HistoryHinter};
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{
    Cmd, CompletionType, ConditionalEventHandler, Config, Context, Editor, Event, EventContext,
    EventHandler, Helper, KeyCode, KeyEvent, Modifiers, RepeatCount,
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

/// Every line is accepted on Enter; [`input::Gather`] decides whether the
/// statement goes on (so a continued line gets its own prompt).
impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

/// Alt-Enter: accept the line and continue the statement on the next one,
/// even when it is complete.
struct ContinueLine(Arc<AtomicBool>);

impl ConditionalEventHandler for ContinueLine {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, _: &EventContext) -> Option<Cmd> {
        self.0.store(true, Ordering::Relaxed);
        Some(Cmd::AcceptLine)
    }
}

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
    let continue_line = Arc::new(AtomicBool::new(false));
    editor.bind_sequence(
        KeyEvent(KeyCode::Enter, Modifiers::ALT),
        EventHandler::Conditional(Box::new(ContinueLine(continue_line.clone()))),
    );
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

    let mut gather = input::Gather::default();
    loop {
        let line = match editor.readline(gather.prompt()) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                // Ctrl-C: drop the input
                gather.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break, // Ctrl-D
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        };
        let more = continue_line.swap(false, Ordering::Relaxed);
        let (line, dropped) = match gather.push(&line, more) {
            input::Step::More => continue,
            input::Step::Run { input, dropped } => (input, dropped),
        };
        if let Some(d) = &dropped {
            let _ = editor.add_history_entry(d.as_str());
            let _ = write!(out, "{}", input::dropped_note(d));
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
