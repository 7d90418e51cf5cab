//! Typed lines gathered into one input: a statement may take several lines
//! (each continued line gets the `...>` prompt), and a line starting with `:`
//! is always a command — even while a statement is unfinished, whose text is
//! then dropped (with a note saying so, and kept in the history).

/// The prompt of a new input.
pub const PROMPT: &str = "strat> ";
/// The prompt of a continued line (as wide as [`PROMPT`]).
pub const CONTINUED: &str = "  ...> ";

/// What to do after a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Read another line: the statement is unfinished.
    More,
    /// Run `input` (rule text or a command). `dropped` is unfinished rule
    /// text that a command interrupted.
    Run {
        input: String,
        dropped: Option<String>,
    },
}

/// The lines of an input being typed.
#[derive(Debug, Default)]
pub struct Gather {
    pending: String,
}

impl Gather {
    /// Is an unfinished statement being continued?
    pub fn continuing(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The prompt for the next line.
    pub fn prompt(&self) -> &'static str {
        if self.continuing() { CONTINUED } else { PROMPT }
    }

    /// Drops the input being typed (Ctrl-C).
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Takes a line. `more` asks to continue even when the statement is
    /// complete (Alt-Enter).
    pub fn push(&mut self, line: &str, more: bool) -> Step {
        if line.trim_start().starts_with(':') {
            let dropped = std::mem::take(&mut self.pending);
            return Step::Run {
                input: line.to_string(),
                dropped: has_text(&dropped).then_some(dropped),
            };
        }
        if self.pending.is_empty() && line.trim().is_empty() && !more {
            return Step::Run {
                input: String::new(),
                dropped: None,
            };
        }
        if !self.pending.is_empty() {
            self.pending.push('\n');
        }
        self.pending.push_str(line);
        if more || strat_syntax::is_incomplete(&self.pending) {
            return Step::More;
        }
        Step::Run {
            input: std::mem::take(&mut self.pending),
            dropped: None,
        }
    }
}

/// Is there anything but blanks and comments in `text`?
fn has_text(text: &str) -> bool {
    strat_syntax::lex::tokens(text)
        .iter()
        .any(|t| t.kind != strat_syntax::lex::TokenKind::Comment)
}

/// The note shown when a command drops an unfinished statement.
pub fn dropped_note(dropped: &str) -> String {
    let lines = dropped.lines().count();
    let first = dropped.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let shown: String = first.trim().chars().take(40).collect();
    let cut = if shown.len() < first.trim().len() || lines > 1 {
        " …"
    } else {
        ""
    };
    format!(
        "dropped the unfinished statement `{shown}{cut}` ({lines} line{}): a line starting \
         with `:` is a command; ↑ recalls the statement\n",
        if lines == 1 { "" } else { "s" }
    )
}
