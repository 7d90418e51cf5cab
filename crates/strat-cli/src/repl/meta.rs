//! Meta commands (`:run`, `:strata`, …): parsed from a line into [`Meta`], each
//! with its usage and help text.

use std::path::PathBuf;

use strat_syntax::lex::{self, TokenKind};

/// One meta command as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Meta {
    Help(Option<String>),
    Table {
        name: String,
        path: String,
    },
    Tables,
    Schema(Option<String>),
    Strata(StrataArgs),
    Check,
    Explain(Option<String>),
    Sql {
        dialect: String,
        name: Option<String>,
    },
    Run {
        name: Option<String>,
        output: Option<PathBuf>,
    },
    Report {
        name: Option<String>,
        output: Option<PathBuf>,
    },
    Params,
    Set {
        name: String,
        value: String,
    },
    Load(PathBuf),
    Save(PathBuf),
    Show,
    /// `:drop NAME [NAME…]`: dropped together.
    Drop(Vec<String>),
    Quit,
}

/// `:strata EXPR[, EXPR…] [from NAME] [as of T by COLUMN …] [unit COLUMN] [where CONDITION]`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StrataArgs {
    pub exprs: String,
    pub from: Option<String>,
    pub unit: Option<String>,
    pub filter: Option<String>,
    /// What follows `as of` (spec §4.5): `T by COLUMN [within …] [ties by …]`.
    pub as_of: Option<String>,
    /// The arguments as typed, and where each part above starts in them
    /// (exprs, from, unit, filter, as of), so that errors point at what was typed.
    pub typed: String,
    pub at: [usize; 5],
}

/// A meta command's name, usage and help.
pub struct CommandInfo {
    pub name: &'static str,
    /// The arguments, as shown by `:help` and as a hint while typing.
    pub args: &'static str,
    pub summary: &'static str,
    pub help: &'static str,
}

pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        name: "help",
        args: "[COMMAND]",
        summary: "list the commands, or explain one",
        help: "`:help` lists every command; `:help strata` explains one. Anything that does not start with `:` is \
               rule text: a `table` or `param` declaration or a `sample`/`split` statement, checked and kept in the \
               session (typing a named statement again redefines it).",
    },
    CommandInfo {
        name: "table",
        args: "NAME PATH",
        summary: "bind a table to a file or folder",
        help: "Binds (or rebinds) table NAME to a Parquet, CSV, NDJSON or Arrow file, or a folder of them; the same \
               as typing `table NAME = \"PATH\"`. Only the schema is read. PATH is relative to the current folder.",
    },
    CommandInfo {
        name: "tables",
        args: "",
        summary: "list the bound tables",
        help: "Lists the bound tables with their paths and number of columns.",
    },
    CommandInfo {
        name: "schema",
        args: "[NAME]",
        summary: "columns and types of a table or statement",
        help: "`:schema members` shows each column's strat type and Arrow type; `:schema cohort` shows a statement's \
               output columns; without NAME, every table and statement on one line each.",
    },
    CommandInfo {
        name: "strata",
        args: "EXPR[, EXPR…] [from NAME] [as of T by COLUMN …] [unit COLUMN] [where CONDITION]",
        summary: "population per candidate stratum",
        help: "Counts the rows (or, with `unit COLUMN`, the distinct units) of each stratum that the stratum \
               expressions would make, largest first, with each stratum's share; strata with fewer than 30 or under \
               1% are flagged. EXPR is anything `stratify by` accepts: `country, bucket(tenure_days, [90, 365])`. \
               `from` defaults to the table bound last; it may name a statement (or give its number). Example: \
               `:strata country, plan from members where not is_kids_profile`. With `as of` (which needs `unit`), \
               each unit counts by its state at T: `:strata plan from member_days as of @2018-06-01 by \
               snapshot_date ties by ingested_at unit member_id`.",
    },
    CommandInfo {
        name: "check",
        args: "",
        summary: "check the whole session again",
        help: "Checks every declaration and statement again, re-reading the tables' schemas, and shows every \
               warning and note.",
    },
    CommandInfo {
        name: "explain",
        args: "[NAME]",
        summary: "what a statement does: plan and allocation table",
        help: "Like `strat explain`: the checked statement, the DataFusion plan that reads its eligible rows and the \
               allocation table. NAME defaults to the last statement.",
    },
    CommandInfo {
        name: "sql",
        args: "DIALECT [NAME]",
        summary: "a statement as SQL (spark, duckdb, postgres, datafusion)",
        help: "Prints the statement as SQL for DIALECT: spark, duckdb, postgres or datafusion. SQL export is not \
               available in this build yet; `:explain` and `:run` work natively.",
    },
    CommandInfo {
        name: "run",
        args: "[NAME] [-o PATH]",
        summary: "run a statement: first rows and per-stratum summary",
        help: "Runs the statement (the last one by default) and shows its first rows and the per-stratum summary. \
               `-o PATH` also writes the whole sample, atomically (.parquet, .csv, .ndjson or .jsonl).",
    },
    CommandInfo {
        name: "report",
        args: "[NAME] [-o PATH]",
        summary: "the run report of a statement",
        help: "Shows the report of a run (every stratum's N_h, target, selected count and weight, the totals and \
               warnings), as `strat run --report` writes it. `-o report.md` or `-o report.json` writes it to a file.",
    },
    CommandInfo {
        name: "params",
        args: "",
        summary: "list the params and their values",
        help: "Lists the declared params: type, declared value and the value set with `:set` or `--param`.",
    },
    CommandInfo {
        name: "set",
        args: "NAME=VALUE",
        summary: "override a param's value",
        help: "Overrides a declared param for the session, like `--param NAME=VALUE`; VALUE is read as the param's \
               type, e.g. `:set as_of=2018-03-01`. `:save` writes the value in effect.",
    },
    CommandInfo {
        name: "load",
        args: "FILE",
        summary: "load a rule file into the session",
        help: "Reads a .strat file and adds its tables, params and statements to the session (names it shares \
               with the session replace theirs). Its table paths are relative to the file, as in `strat run`.",
    },
    CommandInfo {
        name: "save",
        args: "FILE",
        summary: "write the session as a .strat file",
        help: "Writes the session as a tidy rule file: tables, params, then statements in order; table paths are \
               written relative to FILE's folder. `strat check FILE` and `strat run FILE` accept it.",
    },
    CommandInfo {
        name: "show",
        args: "",
        summary: "print the session as rule text",
        help: "Prints the session exactly as `:save FILE` would write it in the current folder: `:set` values \
               as the params' values, table paths relative to the current folder.",
    },
    CommandInfo {
        name: "drop",
        args: "NAME [NAME…]",
        summary: "remove statements, tables or params",
        help: "Removes a statement (by name, or by its number for an unnamed one), or else a table or param of \
               that name; several names are removed together (numbers are those before the removal). Refused \
               when something left in the session still uses it: the message names the statements that read it.",
    },
    CommandInfo {
        name: "quit",
        args: "",
        summary: "leave (also Ctrl-D)",
        help: "Leaves the REPL; so does Ctrl-D.",
    },
];

/// The SQL dialects `:sql` knows.
pub const DIALECTS: &[&str] = &["spark", "duckdb", "postgres", "datafusion"];

pub fn info(name: &str) -> Option<&'static CommandInfo> {
    let name = name.trim_start_matches(':');
    COMMANDS.iter().find(|c| c.name == name).or_else(|| {
        let alias = match name {
            "q" | "exit" => "quit",
            "h" | "?" => "help",
            _ => return None,
        };
        COMMANDS.iter().find(|c| c.name == alias)
    })
}

impl Meta {
    /// Parses a line starting with `:`. The error is a message ready to show.
    pub fn parse(line: &str) -> Result<Meta, String> {
        let line = line.trim();
        let body = line.strip_prefix(':').unwrap_or(line);
        let (word, rest) = match body.find(char::is_whitespace) {
            Some(i) => (&body[..i], body[i..].trim()),
            None => (body, ""),
        };
        let Some(cmd) = info(word) else {
            let names = COMMANDS.iter().map(|c| c.name);
            return Err(match strat_syntax::diagnostic::closest(word, names) {
                Some(s) => {
                    format!("unknown command `:{word}`; did you mean `:{s}`? (`:help` lists them)")
                }
                None => format!("unknown command `:{word}`; `:help` lists the commands"),
            });
        };
        let usage = || format!("usage: :{} {}", cmd.name, cmd.args);
        let args = words(rest);
        let at_most = |n: usize| if args.len() > n { Err(usage()) } else { Ok(()) };
        let first = || args.first().cloned();
        Ok(match cmd.name {
            "help" => {
                at_most(1)?;
                Meta::Help(first())
            }
            "table" => {
                // `:table NAME PATH`, also `:table NAME=PATH`.
                let (name, path) = match rest.split_once(char::is_whitespace) {
                    Some((n, p)) if !n.contains('=') => (n.to_string(), unquote(p.trim())),
                    _ => match rest.split_once('=') {
                        Some((n, p)) => (n.trim().to_string(), unquote(p.trim())),
                        None => return Err(usage()),
                    },
                };
                if name.is_empty() || path.is_empty() {
                    return Err(usage());
                }
                Meta::Table { name, path }
            }
            "tables" => {
                at_most(0)?;
                Meta::Tables
            }
            "schema" => {
                at_most(1)?;
                Meta::Schema(first())
            }
            "strata" => Meta::Strata(parse_strata(rest).map_err(|e| format!("{e}\n{}", usage()))?),
            "check" => {
                at_most(0)?;
                Meta::Check
            }
            "explain" => {
                at_most(1)?;
                Meta::Explain(first())
            }
            "sql" => {
                at_most(2)?;
                let Some(dialect) = first() else {
                    return Err(usage());
                };
                Meta::Sql {
                    dialect: dialect.to_ascii_lowercase(),
                    name: args.get(1).cloned(),
                }
            }
            "run" | "report" => {
                let (name, output) = name_and_output(&args).ok_or_else(usage)?;
                if cmd.name == "run" {
                    Meta::Run { name, output }
                } else {
                    Meta::Report { name, output }
                }
            }
            "params" => {
                at_most(0)?;
                Meta::Params
            }
            "set" => match rest.split_once('=') {
                Some((n, v)) if !n.trim().is_empty() => Meta::Set {
                    name: n.trim().to_string(),
                    value: v.trim().to_string(),
                },
                _ => return Err(usage()),
            },
            "load" | "save" => {
                let path = unquote(rest);
                if path.is_empty() {
                    return Err(usage());
                }
                if cmd.name == "load" {
                    Meta::Load(path.into())
                } else {
                    Meta::Save(path.into())
                }
            }
            "show" => {
                at_most(0)?;
                Meta::Show
            }
            "drop" => {
                if args.is_empty() {
                    return Err(usage());
                }
                Meta::Drop(args)
            }
            _ => {
                at_most(0)?;
                Meta::Quit
            }
        })
    }
}

/// `[NAME] [-o PATH]` in either order.
fn name_and_output(args: &[String]) -> Option<(Option<String>, Option<PathBuf>)> {
    let (mut name, mut output) = (None, None);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-o" | "--output" => {
                output = Some(PathBuf::from(args.get(i + 1)?));
                i += 2;
            }
            a if name.is_none() && !a.starts_with('-') => {
                name = Some(a.to_string());
                i += 1;
            }
            _ => return None,
        }
    }
    Some((name, output))
}

/// Whitespace-separated words; quotes group.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                any = true;
            }
            None if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            None => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

/// Splits `:strata` arguments at `from`, `as of`, `unit` and `where` outside
/// parentheses and strings.
pub fn parse_strata(rest: &str) -> Result<StrataArgs, String> {
    let toks = lex::tokens(rest);
    let mut depth = 0i64;
    let mut marks: Vec<(&str, usize, usize)> = Vec::new(); // clause, start of keyword, end of keyword
    for (i, t) in toks.iter().enumerate() {
        let text = &rest[t.span.start..t.span.end];
        // `as of` (not the `as` of an alias): the clause ends after `of`.
        let of = toks
            .get(i + 1)
            .filter(|n| text == "as" && &rest[n.span.start..n.span.end] == "of");
        if let Some(of) = of
            && depth == 0
            && !marks.iter().any(|m| m.0 == "as of")
        {
            marks.push(("as of", t.span.start, of.span.end));
            continue;
        }
        match t.kind {
            TokenKind::Punct => match text {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth -= 1,
                _ => {}
            },
            // Only the first of each clause word counts.
            TokenKind::Word
                if depth == 0
                    && matches!(text, "from" | "unit" | "where")
                    && !marks.iter().any(|m| m.0 == text) =>
            {
                marks.push((text, t.span.start, t.span.end));
            }
            _ => {}
        }
    }
    let end_of = |start: usize| {
        marks
            .iter()
            .map(|m| m.1)
            .filter(|&s| s > start)
            .min()
            .unwrap_or(rest.len())
    };
    // Where trimmed `rest[from..to]` starts.
    let start_of =
        |from: usize, to: usize| from + (rest[from..to].len() - rest[from..to].trim_start().len());
    let first = marks.first().map_or(rest.len(), |m| m.1);
    let exprs = rest[..first]
        .trim()
        .trim_end_matches(',')
        .trim()
        .to_string();
    if exprs.is_empty() {
        return Err("name at least one stratum expression, e.g. `:strata country, plan`".into());
    }
    let mut args = StrataArgs {
        exprs,
        typed: rest.to_string(),
        at: [start_of(0, first), 0, 0, 0, 0],
        ..StrataArgs::default()
    };
    for (clause, start, kw_end) in &marks {
        let value = rest[*kw_end..end_of(*start)].trim().to_string();
        if value.is_empty() {
            return Err(format!("`{clause}` needs a value"));
        }
        let at = start_of(*kw_end, end_of(*start));
        match *clause {
            "from" => (args.from, args.at[1]) = (Some(value), at),
            "unit" => (args.unit, args.at[2]) = (Some(value), at),
            "as of" => (args.as_of, args.at[4]) = (Some(value), at),
            _ => (args.filter, args.at[3]) = (Some(value), at),
        }
    }
    Ok(args)
}
