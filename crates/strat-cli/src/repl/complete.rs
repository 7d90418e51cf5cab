//! What the editor needs to know, without a terminal: completion candidates,
//! syntax highlighting and hints for a line of input.

use strat_syntax::lex::{self, CONTEXTUAL_KEYWORDS, KEYWORDS, TokenKind};

use super::meta::{COMMANDS, DIALECTS, info};

/// The names the session knows, for completion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vocabulary {
    /// Bound tables and their columns.
    pub tables: Vec<(String, Vec<String>)>,
    /// Named statements and their output columns.
    pub statements: Vec<(String, Vec<String>)>,
    pub params: Vec<String>,
}

/// What to complete at the cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Replace the text from `start` to the cursor with one of `words`.
    Words { start: usize, words: Vec<String> },
    /// A file path (the front end's file-name completer handles it).
    Path,
}

pub const FUNCTIONS: &[&str] = &[
    "abs", "avg", "bucket", "ceil", "coalesce", "count", "day", "first", "floor", "last", "length",
    "lower", "max", "min", "mode", "month", "round", "substr", "sum", "trim", "upper", "year",
];

/// A name as written in rule text: backticked unless a plain identifier.
pub fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !lex::is_keyword(name);
    if plain {
        name.to_string()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Completion candidates for `line` with the cursor at byte `pos`.
pub fn complete(line: &str, pos: usize, v: &Vocabulary) -> Completion {
    let pos = pos.min(line.len());
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_word_char(*c))
        .last()
        .map_or(pos, |(i, _)| i);
    let prefix = &before[start..];
    let words = |cands: Vec<String>| {
        let mut w: Vec<String> = cands
            .into_iter()
            .filter(|c| c.starts_with(prefix) || c.starts_with(&format!("`{prefix}")))
            .collect();
        w.sort();
        w.dedup();
        Completion::Words { start, words: w }
    };
    let trimmed = before.trim_start();
    if let Some(body) = trimmed.strip_prefix(':') {
        let Some(end) = body.find(char::is_whitespace) else {
            // The command word itself (with its colon).
            let lead = before.len() - trimmed.len();
            let mut w: Vec<String> = COMMANDS
                .iter()
                .map(|c| format!(":{}", c.name))
                .filter(|n| n.starts_with(trimmed))
                .collect();
            w.sort();
            return Completion::Words {
                start: lead,
                words: w,
            };
        };
        let cmd = &body[..end];
        let args = &body[end..];
        let done = args[..args.len() - prefix.len()]
            .split_whitespace()
            .collect::<Vec<_>>();
        let names = |v: &Vocabulary| v.statements.iter().map(|s| s.0.clone()).collect::<Vec<_>>();
        return match cmd {
            "table" if done.is_empty() => words(Vec::new()),
            "table" | "load" | "save" => Completion::Path,
            "run" | "report" if done.last() == Some(&"-o") => Completion::Path,
            "schema" => words(
                v.tables
                    .iter()
                    .map(|t| t.0.clone())
                    .chain(names(v))
                    .collect(),
            ),
            "explain" | "run" | "report" | "drop" => words(names(v)),
            "sql" if done.is_empty() => words(DIALECTS.iter().map(|d| d.to_string()).collect()),
            "sql" => words(names(v)),
            "set" => words(v.params.clone()),
            "help" => words(COMMANDS.iter().map(|c| c.name.to_string()).collect()),
            "strata" => {
                let prev = done.last().copied().unwrap_or("");
                if prev == "from" {
                    words(sources(v))
                } else {
                    let from = done
                        .iter()
                        .position(|w| *w == "from")
                        .and_then(|i| done.get(i + 1))
                        .copied();
                    let mut c = columns(v, from);
                    c.extend(FUNCTIONS.iter().map(|f| f.to_string()));
                    c.extend(["from", "unit", "where"].map(String::from));
                    words(c)
                }
            }
            _ => words(Vec::new()),
        };
    }

    // Rule text: the previous token and the statement's source decide.
    let toks: Vec<lex::Token> = lex::tokens(&line[..start])
        .into_iter()
        .filter(|t| t.kind != TokenKind::Comment)
        .collect();
    let text = |t: &lex::Token| &line[t.span.start..t.span.end];
    let prev = toks.last().map(text).unwrap_or("");
    let prev2 = toks
        .len()
        .checked_sub(2)
        .map(|i| text(&toks[i]))
        .unwrap_or("");
    let source = toks
        .iter()
        .enumerate()
        .rev()
        .find(|(_, t)| matches!(text(t), "sample" | "split"))
        .and_then(|(i, _)| toks.get(i + 1))
        .map(|t| text(t).trim_matches('`'));
    let params = v.params.clone();
    match prev {
        "sample" | "split" => words(sources(v)),
        "in" if prev2 == "units" => words(sources(v)),
        "unit" => words(columns(v, source)),
        "by" | "where" | "having" | "output" | "," | "(" | "and" | "or" | "not" | "=" | "!="
        | "<" | "<=" | ">" | ">=" | "when" | "then" | "else" | "+" | "-" | "*" | "/" | "[" => {
            let mut c = columns(v, source);
            c.extend(params);
            c.extend(FUNCTIONS.iter().map(|f| f.to_string()));
            if prev == "output" || prev == "," {
                c.extend(["_weight", "_stratum", "_split"].map(String::from));
            }
            words(c)
        }
        _ => {
            let mut c: Vec<String> = KEYWORDS
                .iter()
                .chain(CONTEXTUAL_KEYWORDS)
                .map(|k| k.to_string())
                .collect();
            c.extend(columns(v, source));
            c.extend(v.statements.iter().map(|s| s.0.clone()));
            c.extend(params);
            words(c)
        }
    }
}

fn sources(v: &Vocabulary) -> Vec<String> {
    v.tables
        .iter()
        .chain(&v.statements)
        .map(|t| ident(&t.0))
        .collect()
}

/// The columns of the source named `source`, or of every bound table.
fn columns(v: &Vocabulary, source: Option<&str>) -> Vec<String> {
    let found = source.and_then(|s| v.tables.iter().chain(&v.statements).find(|t| t.0 == s));
    match found {
        Some((_, cols)) => cols.iter().map(|c| ident(c)).collect(),
        None => v
            .tables
            .iter()
            .flat_map(|t| t.1.iter().map(|c| ident(c)))
            .collect(),
    }
}

/// `line` with ANSI colours: keywords, strings, numbers, comments, and the
/// command word of a meta command. The display width is unchanged.
pub fn highlight(line: &str) -> String {
    let trimmed = line.trim_start();
    if trimmed.starts_with(':') {
        let lead = line.len() - trimmed.len();
        let end = trimmed
            .find(char::is_whitespace)
            .map_or(line.len(), |i| lead + i);
        let rest = &line[end..];
        let rest = if trimmed.starts_with(":strata") {
            highlight_code(rest)
        } else {
            rest.to_string()
        };
        return format!(
            "{}\x1b[1;35m{}\x1b[0m{rest}",
            &line[..lead],
            &line[lead..end]
        );
    }
    highlight_code(line)
}

fn highlight_code(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    let mut at = 0;
    for t in lex::tokens(line) {
        out.push_str(&line[at..t.span.start]);
        let s = &line[t.span.start..t.span.end];
        let paint = match t.kind {
            TokenKind::Word if lex::is_keyword(s) => Some("1;34"),
            TokenKind::Word if FUNCTIONS.contains(&s) => Some("36"),
            TokenKind::String | TokenKind::Unterminated => Some("32"),
            TokenKind::Number => Some("33"),
            TokenKind::Comment => Some("2"),
            _ => None,
        };
        match paint {
            Some(code) => out.push_str(&format!("\x1b[{code}m{s}\x1b[0m")),
            None => out.push_str(s),
        }
        at = t.span.end;
    }
    out.push_str(&line[at..]);
    out
}

/// A hint after the cursor for a meta command: the rest of its name, or its
/// arguments. `(text, insertable)`: an argument synopsis is shown, never inserted.
pub fn hint(line: &str, pos: usize) -> Option<(String, bool)> {
    if pos < line.len() || !line.starts_with(':') || line.contains('\n') {
        return None;
    }
    let body = &line[1..];
    if body.is_empty() {
        return None;
    }
    if let Some(name) = body.strip_suffix(' ') {
        let c = info(name)?;
        return (!c.args.is_empty()).then(|| (c.args.to_string(), false));
    }
    if body.contains(char::is_whitespace) {
        return None;
    }
    if let Some(c) = COMMANDS.iter().find(|c| c.name == body) {
        return (!c.args.is_empty()).then(|| (format!(" {}", c.args), false));
    }
    let matches: Vec<_> = COMMANDS
        .iter()
        .filter(|c| c.name.starts_with(body))
        .collect();
    match matches.as_slice() {
        [one] => Some((one.name[body.len()..].to_string(), true)),
        _ => None,
    }
}
