//! The REPL's backend: a session of bound tables, params and statements, and
//! the meta commands over it. Every command returns the text to show; nothing
//! here touches the terminal, so it is tested without one.
//!
//! The session is always a rule file that checks: input is applied to a copy,
//! the copy is checked as a whole, and it replaces the session only when it has
//! no error. Diagnostics point at what was typed (or at the session text when
//! the problem lies in something typed earlier).

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::TableReference;
use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
use datafusion::prelude::{SessionContext, lit};
use strat_check::ir::{self, Program};
use strat_engine::lower::{column, lower_expr};
use strat_engine::output;
use strat_engine::report::{self, RunMeta};
use strat_engine::run::{RunOutput, run_statement};
use strat_engine::{Options, compile};
use strat_syntax::ast::{Item, ParamType};
use strat_syntax::{Diagnostic, Span};

use super::complete::{Vocabulary, ident};
use super::meta::{COMMANDS, DIALECTS, Meta, StrataArgs, info};
use crate::render::{self, FileDiagnostics};
use crate::run::{output_diagnostic, run_diagnostic};

/// A stratum smaller than this (units or rows) is flagged by `:strata`.
pub const SMALL_STRATUM: u64 = 30;
/// …and so is one with less than this share (in percent).
pub const SMALL_SHARE_PERCENT: f64 = 1.0;

#[derive(Clone, Debug)]
struct TableEntry {
    name: String,
    /// As given: relative to the current folder, or absolute.
    path: PathBuf,
}

#[derive(Clone, Debug)]
struct ParamEntry {
    name: String,
    ty: ParamType,
    /// The literal as written, e.g. `@2018-06-01`.
    value: String,
}

#[derive(Clone, Debug)]
struct StatementEntry {
    name: Option<String>,
    text: String,
}

/// An item of the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Table(usize),
    Param(usize),
    Statement(usize),
}

/// The session as rule text, and where each item is in it.
struct SessionText {
    text: String,
    pieces: Vec<(Key, Range<usize>)>,
}

/// What was typed (or loaded) and where each of its items is in it.
struct Input<'a> {
    name: &'a str,
    text: &'a str,
    items: Vec<(Key, Range<usize>)>,
}

/// The checked session: tables registered on `ctx`, the program when there is
/// a statement.
#[derive(Clone)]
struct Checked {
    ctx: SessionContext,
    program: Option<Program>,
    inputs: Vec<(String, PathBuf)>,
    text: String,
}

/// The text a command produced, and whether the REPL should end.
#[derive(Debug, Default)]
pub struct Reply {
    pub text: String,
    pub quit: bool,
}

impl From<String> for Reply {
    fn from(text: String) -> Self {
        Reply { text, quit: false }
    }
}

/// A REPL session. Cloning is cheap; a command runs on a clone that replaces
/// the session only when the command completes (so a cancelled one changes nothing).
#[derive(Clone)]
pub struct Session {
    tables: Vec<TableEntry>,
    params: Vec<ParamEntry>,
    /// `--param` and `:set` values, as typed.
    overrides: Vec<(String, String)>,
    statements: Vec<StatementEntry>,
    checked: Option<Checked>,
    /// The last run: statement index, and its output (cleared on any change).
    last_run: Option<(usize, Arc<RunOutput>)>,
    /// Colour in diagnostics.
    pub color: bool,
    /// Table width; `None` lets comfy-table use the terminal's.
    pub width: Option<u16>,
    /// Rows of the sample `:run` shows.
    pub preview_rows: usize,
    /// Rows a long table shows before it is cut with a note.
    pub max_rows: usize,
}

impl Default for Session {
    fn default() -> Self {
        Session::new(false)
    }
}

type Result<T> = std::result::Result<T, String>;

impl Session {
    pub fn new(color: bool) -> Self {
        Session {
            tables: Vec::new(),
            params: Vec::new(),
            overrides: Vec::new(),
            statements: Vec::new(),
            checked: None,
            last_run: None,
            color,
            width: None,
            preview_rows: 10,
            max_rows: 40,
        }
    }

    /// Starts a session as `strat repl [FILE] --table … --param …` asks: the
    /// file's items, then the bindings over them. Returns what to show first.
    pub async fn start(
        &mut self,
        file: Option<&str>,
        tables: &[(String, String)],
        params: &[(String, String)],
    ) -> String {
        let mut out = String::new();
        if let Some(f) = file {
            out.push_str(&self.load(Path::new(f), tables, params).await);
            if self.checked.is_some() {
                return out;
            }
        }
        // No file, or it did not check: the bindings alone.
        let mut new = self.clone();
        for (name, path) in tables {
            new.set_table(name, PathBuf::from(path));
        }
        new.overrides = params.to_vec();
        if !tables.is_empty() || !params.is_empty() {
            let keys: Vec<Key> = (0..new.tables.len()).map(Key::Table).collect();
            out.push_str(&self.commit(new, None, &keys).await);
        }
        out
    }

    /// Runs one line (or several, for a statement): rule text or a meta command.
    pub async fn execute(&mut self, input: &str) -> Reply {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Reply::default();
        }
        if trimmed.starts_with(':') {
            return match Meta::parse(trimmed) {
                Ok(m) => self.meta(m).await,
                Err(e) => format!("{e}\n").into(),
            };
        }
        self.rules(input).await.into()
    }

    pub async fn meta(&mut self, m: Meta) -> Reply {
        let text = match m {
            Meta::Quit => {
                return Reply {
                    text: String::new(),
                    quit: true,
                };
            }
            Meta::Help(cmd) => help(cmd.as_deref()),
            Meta::Table { name, path } => {
                let mut new = self.clone();
                let i = new.set_table(&name, PathBuf::from(path));
                self.commit(new, None, &[Key::Table(i)]).await
            }
            Meta::Tables => self.tables_list().await,
            Meta::Schema(name) => self.schema(name.as_deref()).await,
            Meta::Strata(a) => self.strata(&a).await.unwrap_or_else(|e| e),
            Meta::Check => self.check_all().await,
            Meta::Explain(name) => self.explain(name.as_deref()).await.unwrap_or_else(|e| e),
            Meta::Sql { dialect, name } => {
                self.sql(&dialect, name.as_deref()).unwrap_or_else(|e| e)
            }
            Meta::Run { name, output } => self
                .run(name.as_deref(), output.as_deref())
                .await
                .unwrap_or_else(|e| e),
            Meta::Report { name, output } => self
                .report(name.as_deref(), output.as_deref())
                .await
                .unwrap_or_else(|e| e),
            Meta::Params => self.params_list(),
            Meta::Set { name, value } => self.set(&name, &value).await,
            Meta::Load(path) => self.load(&path, &[], &[]).await,
            Meta::Save(path) => self.save(&path).unwrap_or_else(|e| e),
            Meta::Show => {
                if self.tables.is_empty() && self.params.is_empty() && self.statements.is_empty() {
                    "the session is empty\n".into()
                } else {
                    // What `:save` would write into the current folder.
                    self.rule_file(&absolute(Path::new(".")))
                }
            }
            Meta::Drop(names) => self.drop_items(&names).await,
        };
        text.into()
    }

    // ------------------------------------------------------------ the session

    /// The rule file `:save` writes into folder `dir` (table paths relative to
    /// it, `:set` values as the params' values); `:show` prints it for the
    /// current folder.
    fn rule_file(&self, dir: &Path) -> String {
        let body = self.text(Some(dir), true).text;
        format!("# Saved from a strat repl session.\n\n{body}")
    }

    /// The session as rule-file text. With `dir` (a file in that folder, see
    /// [`Session::rule_file`]), table paths are relative to it and `:set`
    /// values replace the declared ones; `layout` puts each statement's clauses
    /// on lines of their own, otherwise statements stay as typed so
    /// diagnostics can point into what was typed.
    fn text(&self, dir: Option<&Path>, layout: bool) -> SessionText {
        let mut text = String::new();
        let mut pieces = Vec::new();
        for (i, t) in self.tables.iter().enumerate() {
            let path = match dir {
                Some(d) => relative_to(&absolute(&t.path), d),
                None => t.path.clone(),
            };
            let start = text.len();
            let _ = write!(
                text,
                "table {} = {}",
                ident(&t.name),
                string_literal(&path.to_string_lossy())
            );
            pieces.push((Key::Table(i), start..text.len()));
            text.push('\n');
        }
        if !self.tables.is_empty() && !self.params.is_empty() {
            text.push('\n');
        }
        for (i, p) in self.params.iter().enumerate() {
            let start = text.len();
            let value = match (dir, self.overrides.iter().find(|o| o.0 == p.name)) {
                (Some(_), Some((_, v))) => literal_of(p.ty, v),
                _ => p.value.clone(),
            };
            let _ = write!(
                text,
                "param {}: {} = {value}",
                ident(&p.name),
                p.ty.as_str()
            );
            pieces.push((Key::Param(i), start..text.len()));
            if dir.is_some() && value != p.value {
                let _ = write!(text, "   # set in the session; declared {}", p.value);
            }
            text.push('\n');
        }
        for (i, s) in self.statements.iter().enumerate() {
            if !text.is_empty() {
                text.push('\n');
            }
            let start = text.len();
            if layout {
                text.push_str(&laid_out(&s.text));
            } else {
                text.push_str(&s.text);
            }
            pieces.push((Key::Statement(i), start..text.len()));
            text.push('\n');
        }
        SessionText { text, pieces }
    }

    fn set_table(&mut self, name: &str, path: PathBuf) -> usize {
        match self.tables.iter().position(|t| t.name == name) {
            Some(i) => {
                self.tables[i].path = path;
                i
            }
            None => {
                self.tables.push(TableEntry {
                    name: name.to_string(),
                    path,
                });
                self.tables.len() - 1
            }
        }
    }

    /// Adds the items of parsed `text` (table paths relative to `base`);
    /// returns each item's key and its range in `text`.
    fn apply(
        &mut self,
        text: &str,
        file: &strat_syntax::ast::File,
        base: Option<&Path>,
    ) -> Vec<(Key, Range<usize>)> {
        let mut keys = Vec::new();
        for item in &file.items {
            let span = item.span();
            let key = match item {
                Item::Table(t) => {
                    let path = match base {
                        Some(b) => b.join(&t.path.value),
                        None => PathBuf::from(&t.path.value),
                    };
                    Key::Table(self.set_table(&t.name.name, path))
                }
                Item::Param(p) => {
                    let vspan = p.value.span();
                    let entry = ParamEntry {
                        name: p.name.name.clone(),
                        ty: p.ty,
                        value: text[vspan.start..vspan.end].to_string(),
                    };
                    match self.params.iter().position(|q| q.name == entry.name) {
                        Some(i) => {
                            self.params[i] = entry;
                            Key::Param(i)
                        }
                        None => {
                            self.params.push(entry);
                            Key::Param(self.params.len() - 1)
                        }
                    }
                }
                Item::Statement(s) => {
                    let entry = StatementEntry {
                        name: s.name.as_ref().map(|n| n.name.clone()),
                        text: tidy(&text[span.start..span.end]),
                    };
                    let same = entry.name.as_ref().and_then(|n| {
                        self.statements
                            .iter()
                            .position(|t| t.name.as_deref() == Some(n.as_str()))
                    });
                    match same {
                        Some(i) => {
                            self.statements[i] = entry;
                            Key::Statement(i)
                        }
                        None => {
                            self.statements.push(entry);
                            Key::Statement(self.statements.len() - 1)
                        }
                    }
                }
            };
            keys.push((key, span.start..span.end));
        }
        keys
    }

    /// Checks the session text on a fresh context.
    async fn check_text(&self) -> (Checked, Vec<Diagnostic>, SessionText) {
        let src = self.text(None, false);
        // Runs spill past strat's default budget, as `strat run` does.
        let budget = strat_engine::memory::Budget::default_for_machine();
        let ctx = strat_engine::memory::context(budget, None).unwrap_or_default();
        let options = Options {
            params: self.overrides.clone(),
            ..Options::default()
        };
        let compiled = compile(&ctx, None, &src.text, &options).await;
        let mut diags = compiled.diagnostics;
        if self.statements.is_empty() {
            diags.retain(|d| d.code != "E0006");
        }
        let checked = Checked {
            ctx,
            program: compiled.program,
            inputs: compiled.inputs,
            text: src.text.clone(),
        };
        (checked, diags, src)
    }

    /// Checks `new` and makes it the session when it has no error. `changed`
    /// names the items to confirm; `input` maps diagnostics back to what was typed.
    async fn commit(
        &mut self,
        mut new: Session,
        input: Option<&Input<'_>>,
        changed: &[Key],
    ) -> String {
        let (checked, diags, src) = new.check_text().await;
        let errors = diags.iter().any(Diagnostic::is_error);
        let mut out = String::new();
        if errors {
            out.push_str(&self.render_mapped(&diags, &src, input));
            let _ = writeln!(
                out,
                "not applied ({}): the session is unchanged",
                render::summary(&diags)
            );
            return out;
        }
        // Warnings and notes about what changed only (the rest was shown before).
        let mine: Vec<Diagnostic> = diags
            .into_iter()
            .filter(|d| {
                d.span
                    .is_some_and(|s| piece_at(&src, s).is_some_and(|k| changed.contains(&k)))
            })
            .collect();
        out.push_str(&self.render_mapped(&mine, &src, input));
        new.checked = Some(checked);
        new.last_run = None;
        let before = std::mem::replace(self, new);
        for key in changed {
            out.push_str(&self.describe(*key, &before).await);
        }
        out
    }

    /// One line confirming a change.
    async fn describe(&self, key: Key, before: &Session) -> String {
        match key {
            Key::Table(i) => {
                let t = &self.tables[i];
                let cols = self.table_columns(&t.name).await.unwrap_or_default();
                let list: Vec<String> = cols
                    .iter()
                    .take(8)
                    .map(|(n, ty, _)| format!("{n} {ty}"))
                    .collect();
                let more = if cols.len() > 8 {
                    format!(", … ({} in all)", cols.len())
                } else {
                    String::new()
                };
                format!(
                    "table {} = {}: {}{more}\n",
                    t.name,
                    t.path.display(),
                    list.join(", ")
                )
            }
            Key::Param(i) => {
                let p = &self.params[i];
                format!("param {}: {} = {}\n", p.name, p.ty.as_str(), p.value)
            }
            Key::Statement(i) => {
                let s = &self.statements[i];
                match &s.name {
                    Some(n)
                        if before
                            .statements
                            .iter()
                            .any(|b| b.name.as_deref() == Some(n.as_str())) =>
                    {
                        format!("redefined `{n}` — `:run {n}` runs it\n")
                    }
                    Some(n) => {
                        format!("defined `{n}` — `:run {n}` runs it, `:explain {n}` explains it\n")
                    }
                    None => format!(
                        "added statement {} (unnamed: `:run` runs the last statement; name it `NAME = sample …` to redefine it later)\n",
                        i + 1
                    ),
                }
            }
        }
    }

    /// Renders diagnostics: those in an item that came from `input` against
    /// the input, the others against the session text.
    fn render_mapped(
        &self,
        diags: &[Diagnostic],
        src: &SessionText,
        input: Option<&Input<'_>>,
    ) -> String {
        let mut mine = Vec::new();
        let mut rest = Vec::new();
        for d in diags {
            let mapped = d.span.and_then(|s| {
                let (key, range) = src
                    .pieces
                    .iter()
                    .find(|(_, r)| r.start <= s.start && s.start <= r.end)?;
                let input = input?;
                let (_, irange) = input.items.iter().find(|(k, _)| k == key)?;
                // Only when the session holds the item exactly as typed.
                if src.text.get(range.clone())? != input.text.get(irange.clone())? {
                    return None;
                }
                let shift = |sp: Span| {
                    Span::new(
                        sp.start - range.start + irange.start,
                        sp.end.min(range.end) - range.start + irange.start,
                    )
                };
                let mut m = d.clone();
                m.span = Some(shift(s));
                m.labels
                    .retain(|l| range.start <= l.span.start && l.span.end <= range.end);
                for l in &mut m.labels {
                    l.span = shift(l.span);
                }
                Some(m)
            });
            match mapped {
                Some(m) => mine.push(m),
                None => rest.push(d.clone()),
            }
        }
        let mut out = String::new();
        if let Some(input) = input
            && !mine.is_empty()
        {
            out.push_str(&render::human(
                &FileDiagnostics {
                    name: input.name,
                    text: input.text,
                    diagnostics: &mine,
                },
                self.color,
            ));
        }
        if !rest.is_empty() {
            out.push_str(&render::human(
                &FileDiagnostics {
                    name: "session",
                    text: &src.text,
                    diagnostics: &rest,
                },
                self.color,
            ));
        }
        out
    }

    /// Rule text typed at the prompt.
    async fn rules(&mut self, text: &str) -> String {
        let parsed = strat_syntax::parse(text);
        let diags: Vec<Diagnostic> = parsed
            .diagnostics
            .into_iter()
            .filter(|d| d.code != "E0006")
            .collect();
        if diags.iter().any(Diagnostic::is_error) {
            return render::human(
                &FileDiagnostics {
                    name: "input",
                    text,
                    diagnostics: &diags,
                },
                self.color,
            );
        }
        if parsed.file.items.is_empty() {
            return String::new();
        }
        let mut new = self.clone();
        let items = new.apply(text, &parsed.file, None);
        let keys: Vec<Key> = items.iter().map(|i| i.0).collect();
        let input = Input {
            name: "input",
            text,
            items,
        };
        self.commit(new, Some(&input), &keys).await
    }

    async fn load(
        &mut self,
        path: &Path,
        tables: &[(String, String)],
        params: &[(String, String)],
    ) -> String {
        let name = path.to_string_lossy();
        let file = crate::source::read(&name);
        if let Some(p) = &file.problem {
            return render::human(
                &FileDiagnostics {
                    name: &file.name,
                    text: &file.text,
                    diagnostics: std::slice::from_ref(p),
                },
                self.color,
            );
        }
        let parsed = strat_syntax::parse(&file.text);
        if parsed.diagnostics.iter().any(Diagnostic::is_error) {
            let mut out = render::human(
                &FileDiagnostics {
                    name: &file.name,
                    text: &file.text,
                    diagnostics: &parsed.diagnostics,
                },
                self.color,
            );
            let _ = writeln!(
                out,
                "not loaded ({}): the session is unchanged",
                render::summary(&parsed.diagnostics)
            );
            return out;
        }
        let mut new = self.clone();
        let base = path.parent().filter(|p| !p.as_os_str().is_empty());
        let items = new.apply(&file.text, &parsed.file, base);
        for (n, p) in tables {
            new.set_table(n, PathBuf::from(p));
        }
        for (n, v) in params {
            new.overrides.retain(|o| &o.0 != n);
            new.overrides.push((n.clone(), v.clone()));
        }
        let counts = format!(
            "{} table(s), {} param(s), {} statement(s)",
            parsed
                .file
                .items
                .iter()
                .filter(|i| matches!(i, Item::Table(_)))
                .count(),
            parsed
                .file
                .items
                .iter()
                .filter(|i| matches!(i, Item::Param(_)))
                .count(),
            parsed
                .file
                .items
                .iter()
                .filter(|i| matches!(i, Item::Statement(_)))
                .count()
        );
        let mut keys: Vec<Key> = items.iter().map(|i| i.0).collect();
        keys.dedup();
        let input = Input {
            name: &file.name,
            text: &file.text,
            items,
        };
        let mut out = self.commit(new, Some(&input), &keys).await;
        if !out.contains("not applied") {
            let _ = writeln!(out, "loaded {}: {counts}", file.name);
        }
        out
    }

    /// The checked session, or why there is none.
    fn checked(&self) -> Result<&Checked> {
        self.checked.as_ref().ok_or_else(|| {
            "the session is empty: bind a table with `:table NAME PATH` and type a statement, e.g. \
             `sample members stratify by country take 100 seed 1`\n"
                .to_string()
        })
    }

    /// The program and the index of statement `name` (the last by default).
    fn target(&self, name: Option<&str>) -> Result<(&Checked, &Program, usize)> {
        let c = self.checked()?;
        let Some(program) = &c.program else {
            return Err("the session has no statement yet: type one, e.g. `sample members stratify by country take 100 seed 1`\n".into());
        };
        let index = match name {
            None => program.statements.len() - 1,
            Some(n) => match program
                .statements
                .iter()
                .position(|s| s.name.as_deref() == Some(n))
            {
                Some(i) => i,
                None => match n.parse::<usize>() {
                    Ok(k) if (1..=program.statements.len()).contains(&k) => k - 1,
                    _ => {
                        let names: Vec<&str> = program
                            .statements
                            .iter()
                            .filter_map(|s| s.name.as_deref())
                            .collect();
                        return Err(
                            match strat_syntax::diagnostic::closest(n, names.iter().copied()) {
                                Some(s) => {
                                    format!("no statement named `{n}`; did you mean `{s}`?\n")
                                }
                                None if names.is_empty() => format!(
                                    "no statement named `{n}`: the session's statements are unnamed (use their number)\n"
                                ),
                                None => format!(
                                    "no statement named `{n}`; the named statements are: {}\n",
                                    names.join(", ")
                                ),
                            },
                        );
                    }
                },
            },
        };
        Ok((c, program, index))
    }

    /// Columns of a bound table: name, strat type, Arrow type.
    async fn table_columns(&self, name: &str) -> Option<Vec<(String, String, String)>> {
        let c = self.checked.as_ref()?;
        let df = c.ctx.table(TableReference::bare(name)).await.ok()?;
        let schema = df.schema().as_arrow().clone();
        Some(
            schema
                .fields()
                .iter()
                .map(|f| {
                    (
                        f.name().clone(),
                        strat_engine::catalog::checker_type(f.data_type()).to_string(),
                        f.data_type().to_string(),
                    )
                })
                .collect(),
        )
    }

    /// The names the editor completes.
    pub async fn vocabulary(&self) -> Vocabulary {
        let mut v = Vocabulary::default();
        for t in &self.tables {
            let cols = self.table_columns(&t.name).await.unwrap_or_default();
            v.tables
                .push((t.name.clone(), cols.into_iter().map(|c| c.0).collect()));
        }
        if let Some(p) = self.checked.as_ref().and_then(|c| c.program.as_ref()) {
            for s in &p.statements {
                if let Some(n) = &s.name {
                    v.statements.push((
                        n.clone(),
                        s.output_columns().into_iter().map(|c| c.name).collect(),
                    ));
                }
            }
        }
        v.params = self.params.iter().map(|p| p.name.clone()).collect();
        v
    }

    fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if let Some(w) = self.width {
            t.set_width(w);
        }
        t
    }

    // ------------------------------------------------------------ commands

    async fn tables_list(&self) -> String {
        if self.tables.is_empty() {
            return "no tables bound yet: `:table NAME PATH`\n".into();
        }
        let mut t = self.table();
        t.set_header(["table", "path", "columns"]);
        for e in &self.tables {
            let n = self
                .table_columns(&e.name)
                .await
                .map_or("?".to_string(), |c| c.len().to_string());
            t.add_row([e.name.clone(), e.path.display().to_string(), n]);
        }
        format!("{t}\n")
    }

    async fn schema(&self, name: Option<&str>) -> String {
        let statement_columns = |n: &str| {
            let p = self.checked.as_ref()?.program.as_ref()?;
            p.statement(n).map(|s| s.output_columns())
        };
        match name {
            Some(n) => {
                if let Some(cols) = self.table_columns(n).await {
                    let mut t = self.table();
                    t.set_header(["column", "type", "arrow type"]);
                    for (c, ty, arrow) in cols {
                        t.add_row([ident(&c), ty, arrow]);
                    }
                    return format!("table {n}\n{t}\n");
                }
                if let Some(cols) = statement_columns(n) {
                    let mut t = self.table();
                    t.set_header(["column", "type"]);
                    for c in cols {
                        t.add_row([ident(&c.name), c.ty.to_string()]);
                    }
                    return format!("statement {n} (its output columns)\n{t}\n");
                }
                let names = self
                    .tables
                    .iter()
                    .map(|t| t.name.as_str())
                    .chain(self.statements.iter().filter_map(|s| s.name.as_deref()));
                match strat_syntax::diagnostic::closest(n, names) {
                    Some(s) => format!("no table or statement named `{n}`; did you mean `{s}`?\n"),
                    None => {
                        format!("no table or statement named `{n}`; `:tables` lists the tables\n")
                    }
                }
            }
            None => {
                let mut out = String::new();
                for e in &self.tables {
                    let cols = self.table_columns(&e.name).await.unwrap_or_default();
                    let list: Vec<String> = cols
                        .iter()
                        .map(|(c, ty, _)| format!("{} {ty}", ident(c)))
                        .collect();
                    let _ = writeln!(out, "{}: {}", e.name, list.join(", "));
                }
                for s in &self.statements {
                    if let Some(n) = &s.name
                        && let Some(cols) = statement_columns(n)
                    {
                        let list: Vec<String> = cols
                            .iter()
                            .map(|c| format!("{} {}", ident(&c.name), c.ty))
                            .collect();
                        let _ = writeln!(out, "{n} (statement): {}", list.join(", "));
                    }
                }
                if out.is_empty() {
                    "no tables bound yet: `:table NAME PATH`\n".into()
                } else {
                    out
                }
            }
        }
    }

    async fn check_all(&mut self) -> String {
        if self.tables.is_empty() && self.statements.is_empty() && self.params.is_empty() {
            return "the session is empty: nothing to check\n".into();
        }
        let (checked, diags, src) = self.check_text().await;
        let mut out = self.render_mapped(&diags, &src, None);
        let errors = diags.iter().any(Diagnostic::is_error);
        let _ = writeln!(
            out,
            "session: {} ({}; {} table(s), {} param(s), {} statement(s))",
            if errors { "failed" } else { "ok" },
            render::summary(&diags),
            self.tables.len(),
            self.params.len(),
            self.statements.len()
        );
        if !errors {
            self.checked = Some(checked);
            self.last_run = None;
        }
        out
    }

    async fn explain(&self, name: Option<&str>) -> Result<String> {
        let (c, program, index) = self.target(name)?;
        match strat_engine::explain::explain(&c.ctx, program, index, &c.text).await {
            Ok(text) => Ok(cut_lines(&text, self.max_rows * 2, "lines")),
            Err(e) => {
                Err(self.render_run_error(&c.text, run_diagnostic(&e, &c.inputs, program, index)))
            }
        }
    }

    fn render_run_error(&self, text: &str, d: Diagnostic) -> String {
        self.render_run_error_in("session", text, d)
    }

    fn render_run_error_in(&self, name: &str, text: &str, d: Diagnostic) -> String {
        render::human(
            &FileDiagnostics {
                name,
                text,
                diagnostics: &[d],
            },
            self.color,
        )
    }

    fn sql(&self, dialect: &str, name: Option<&str>) -> Result<String> {
        let dialect = match dialect {
            "postgresql" | "pg" => "postgres",
            d => d,
        };
        if !DIALECTS.contains(&dialect) {
            return Err(
                match strat_syntax::diagnostic::closest(dialect, DIALECTS.iter().copied()) {
                    Some(s) => format!(
                        "unknown SQL dialect `{dialect}`; did you mean `{s}`? ({})\n",
                        DIALECTS.join(", ")
                    ),
                    None => format!(
                        "unknown SQL dialect `{dialect}`; the dialects are {}\n",
                        DIALECTS.join(", ")
                    ),
                },
            );
        }
        let (c, program, index) = self.target(name)?;
        let Some(d) = strat_sql::Dialect::from_flag(dialect) else {
            return Err(format!("unknown SQL dialect `{dialect}`\n"));
        };
        let options = strat_sql::SqlOptions {
            dialect: d,
            names: Default::default(),
            file_name: "repl session".into(),
            file_text: c.text.clone(),
            order_splits: false,
        };
        match strat_sql::statement_sql(program, index, &options) {
            Ok(sql) => Ok(if sql.ends_with('\n') { sql } else { sql + "\n" }),
            Err(e) => Err(format!(
                "error[{}]: {}\n  = help: {}\n",
                e.code, e.message, e.help
            )),
        }
    }

    async fn execute_statement(&mut self, name: Option<&str>) -> Result<(usize, Arc<RunOutput>)> {
        let (c, program, index) = self.target(name)?;
        if let Some((i, out)) = &self.last_run
            && *i == index
        {
            return Ok((index, out.clone()));
        }
        let out = match run_statement(&c.ctx, program, index).await {
            Ok(out) => Arc::new(out),
            Err(e) => {
                return Err(
                    self.render_run_error(&c.text, run_diagnostic(&e, &c.inputs, program, index))
                );
            }
        };
        self.last_run = Some((index, out.clone()));
        Ok((index, out))
    }

    async fn run(&mut self, name: Option<&str>, output: Option<&Path>) -> Result<String> {
        if let Some(path) = output {
            let c = self.checked()?;
            let inputs: Vec<PathBuf> = c.inputs.iter().map(|(_, p)| p.clone()).collect();
            output::OutputFormat::for_path(path)
                .and_then(|_| output::check_not_an_input(path, &inputs))
                .map_err(|e| self.render_run_error(&c.text, output_diagnostic(e)))?;
        }
        self.last_run = None; // a run asked for is a fresh run
        let (index, out) = self.execute_statement(name).await?;
        let label = self.label(index);
        let mut text = String::new();
        let rows: usize = out.batches.iter().map(RecordBatch::num_rows).sum();
        text.push_str(&self.preview(&out.batches, out.schema.fields().len(), rows));
        if rows > self.preview_rows {
            let _ = writeln!(
                text,
                "(the first {} of {rows} rows; `:run {label} -o FILE` writes them all)",
                self.preview_rows
            );
        }
        text.push_str(&self.summary(&out.report));
        for w in &out.report.warnings {
            let _ = writeln!(text, "warning: {w}");
        }
        let r = &out.report;
        if r.split_totals.is_empty() {
            let _ = writeln!(
                text,
                "{label}: sampled {} of {} units ({rows} rows)",
                r.total_selected, r.total_population
            );
        } else {
            let parts: Vec<String> = r
                .split_totals
                .iter()
                .map(|(n, c)| format!("{n} {c}"))
                .collect();
            let _ = writeln!(
                text,
                "{label}: split {} units ({rows} rows): {}",
                r.total_population,
                parts.join(", ")
            );
        }
        if let Some(path) = output {
            let c = self.checked()?;
            let threads = c.ctx.state().config().target_partitions();
            output::write_atomic(path, out.schema.clone(), &out.batches, threads)
                .map_err(|e| self.render_run_error(&c.text, output_diagnostic(e)))?;
            let _ = writeln!(text, "wrote {rows} rows to {}", path.display());
        }
        Ok(text)
    }

    fn label(&self, index: usize) -> String {
        self.statements
            .get(index)
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| (index + 1).to_string())
    }

    fn preview(&self, batches: &[RecordBatch], columns: usize, rows: usize) -> String {
        let Some(first) = batches.first() else {
            return "(no rows)\n".into();
        };
        let mut t = self.table();
        t.set_header(
            first
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>(),
        );
        let options = FormatOptions::default().with_null("NULL");
        let mut left = self.preview_rows.min(rows);
        for b in batches {
            if left == 0 {
                break;
            }
            let formatters: Vec<_> = b
                .columns()
                .iter()
                .filter_map(|a| ArrayFormatter::try_new(a.as_ref(), &options).ok())
                .collect();
            if formatters.len() != columns {
                return "(the rows cannot be shown)\n".into();
            }
            for row in 0..b.num_rows().min(left) {
                t.add_row(
                    formatters
                        .iter()
                        .map(|f| f.value(row).to_string())
                        .collect::<Vec<_>>(),
                );
            }
            left -= b.num_rows().min(left);
        }
        format!("{t}\n")
    }

    fn summary(&self, r: &strat_engine::Report) -> String {
        let mut t = self.table();
        let name = |s: &str| {
            if s.is_empty() {
                "(all)".to_string()
            } else {
                s.to_string()
            }
        };
        if r.split_totals.is_empty() {
            t.set_header(["stratum", "N_h", "target", "selected", "weight"]);
        } else {
            let mut h = vec!["stratum".to_string(), "N_h".to_string()];
            h.extend(r.split_totals.iter().map(|(n, _)| n.clone()));
            t.set_header(h);
        }
        let shown = (self.max_rows / 2).max(1);
        for s in r.strata.iter().take(shown) {
            if r.split_totals.is_empty() {
                let target = report::target_cell(&s.target);
                t.add_row([
                    name(&s.text),
                    s.population.to_string(),
                    target,
                    s.selected.to_string(),
                    report::weight_cell(s, Some(4)),
                ]);
            } else {
                let mut row = vec![name(&s.text), s.population.to_string()];
                row.extend(s.split_counts.iter().map(|(_, c)| c.to_string()));
                t.add_row(row);
            }
        }
        let mut out = format!("{t}\n");
        if r.strata.len() > shown {
            let _ = writeln!(
                out,
                "… and {} more strata (`:report` shows them all)",
                r.strata.len() - shown
            );
        }
        out
    }

    async fn report(&mut self, name: Option<&str>, output: Option<&Path>) -> Result<String> {
        let (index, out) = self.execute_statement(name).await?;
        let c = self.checked()?;
        let meta = RunMeta {
            rule_file: "session".into(),
            rule_hash: report::md5_hex(c.text.as_bytes()),
            statement: strat_engine::run::statement_label(
                self.statements.get(index).and_then(|s| s.name.as_deref()),
                index,
            ),
            inputs: c
                .inputs
                .iter()
                .map(|(t, p)| {
                    (
                        t.clone(),
                        p.clone(),
                        report::fingerprint(p).unwrap_or_else(|e| format!("unreadable: {e}")),
                    )
                })
                .collect(),
            output: Vec::new(),
        };
        let markdown = report::to_markdown(&out.report, &out.upstream, &meta);
        let Some(path) = output else {
            let label = self.label(index);
            return Ok(cut_lines(
                &markdown,
                self.max_rows + 20,
                &format!("lines; `:report {label} -o report.md` writes it all"),
            ));
        };
        let inputs: Vec<PathBuf> = c.inputs.iter().map(|(_, p)| p.clone()).collect();
        let Some(format) = strat_render::report::report_format(path) else {
            return Err(format!(
                "cannot tell the report format of `{}`: name it {}\n",
                path.display(),
                strat_render::report::REPORT_EXTENSIONS
            ));
        };
        let text = strat_render::report::report_text(format, &out.report, &out.upstream, &meta);
        output::check_not_an_input(path, &inputs)
            .and_then(|_| {
                output::write_file_atomic(path, |w| {
                    std::io::Write::write_all(w, text.as_bytes()).map_err(|e| e.to_string())
                })
            })
            .map_err(|e| self.render_run_error(&c.text, output_diagnostic(e)))?;
        Ok(format!(
            "wrote the report of {} strata to {}\n",
            out.report.strata.len(),
            path.display()
        ))
    }

    fn params_list(&self) -> String {
        if self.params.is_empty() {
            return "no params declared: type one, e.g. `param as_of: date = @2018-06-01`\n".into();
        }
        let mut t = self.table();
        t.set_header(["param", "type", "declared", "set to"]);
        for p in &self.params {
            let set = self
                .overrides
                .iter()
                .find(|o| o.0 == p.name)
                .map_or(String::new(), |o| o.1.clone());
            t.add_row([
                p.name.clone(),
                p.ty.as_str().to_string(),
                p.value.clone(),
                set,
            ]);
        }
        format!("{t}\n")
    }

    async fn set(&mut self, name: &str, value: &str) -> String {
        let mut new = self.clone();
        new.overrides.retain(|o| o.0 != name);
        new.overrides.push((name.to_string(), value.to_string()));
        let out = self.commit(new, None, &[]).await;
        if out.contains("not applied") {
            return out;
        }
        let declared = self
            .params
            .iter()
            .find(|p| p.name == name)
            .map_or(String::new(), |p| p.value.clone());
        format!("{out}{name} = {value} (declared {declared})\n")
    }

    fn save(&self, path: &Path) -> Result<String> {
        if self.statements.is_empty() {
            return Err(
                "nothing to save: the session has no statement (a rule file needs one)\n".into(),
            );
        }
        let dir = absolute(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        );
        let text = self.rule_file(&dir);
        output::write_file_atomic(path, |w| {
            std::io::Write::write_all(w, text.as_bytes()).map_err(|e| e.to_string())
        })
        .map_err(|e| format!("error: {} ({})\n", e.message, e.help))?;
        Ok(format!(
            "saved {} table(s), {} param(s), {} statement(s) to {} — `strat run {} -o sample.parquet` runs it\n",
            self.tables.len(),
            self.params.len(),
            self.statements.len(),
            path.display(),
            path.display()
        ))
    }

    /// `:drop NAME [NAME…]`: the items are removed together.
    async fn drop_items(&mut self, names: &[String]) -> String {
        // Statements by name, else by number (as numbered now), else tables, else params.
        let mut statements = Vec::new();
        let mut tables = Vec::new();
        let mut params = Vec::new();
        let mut what = Vec::new();
        for name in names {
            if let Some(i) = self
                .statements
                .iter()
                .position(|s| s.name.as_deref() == Some(name))
            {
                statements.push(i);
                what.push(format!("statement `{name}`"));
            } else if let Ok(k) = name.parse::<usize>()
                && (1..=self.statements.len()).contains(&k)
            {
                statements.push(k - 1);
                what.push(format!("statement {k}"));
            } else if let Some(i) = self.tables.iter().position(|t| &t.name == name) {
                tables.push(i);
                what.push(format!("table `{name}`"));
            } else if let Some(i) = self.params.iter().position(|p| &p.name == name) {
                params.push(i);
                what.push(format!("param `{name}`"));
            } else {
                return format!("nothing named `{name}` in the session\n");
            }
        }
        if let Some(refused) = self.still_read(names, &statements, &tables) {
            return refused;
        }
        let mut new = self.clone();
        for list in [&mut statements, &mut tables, &mut params] {
            list.sort_unstable();
            list.dedup();
        }
        for &i in statements.iter().rev() {
            new.statements.remove(i);
        }
        for &i in tables.iter().rev() {
            new.tables.remove(i);
        }
        for &i in params.iter().rev() {
            let p = new.params.remove(i);
            new.overrides.retain(|o| o.0 != p.name);
        }
        let what = what.join(", ");
        if new.tables.is_empty() && new.params.is_empty() && new.statements.is_empty() {
            *self = Session {
                color: self.color,
                width: self.width,
                preview_rows: self.preview_rows,
                max_rows: self.max_rows,
                ..Session::new(self.color)
            };
            return format!("dropped {what}; the session is empty\n");
        }
        let out = self.commit(new, None, &[]).await;
        if out.contains("not applied") {
            out
        } else {
            format!("{out}dropped {what}\n")
        }
    }

    /// Why the statements (indices) and tables (indices) named `names`
    /// cannot be dropped: statements that stay read them. `None` when none do.
    fn still_read(
        &self,
        names: &[String],
        statements: &[usize],
        tables: &[usize],
    ) -> Option<String> {
        let program = self.checked.as_ref()?.program.as_ref()?;
        let mut sources: Vec<(String, ir::Source)> = statements
            .iter()
            .map(|&i| (self.item_label(i), ir::Source::Statement(i)))
            .collect();
        sources.extend(tables.iter().map(|&i| {
            let name = &self.tables[i].name;
            (format!("table `{name}`"), ir::Source::Table(name.clone()))
        }));
        for (label, source) in sources {
            let readers: Vec<usize> = program
                .statements
                .iter()
                .enumerate()
                .filter(|(j, st)| !statements.contains(j) && reads(st, &source))
                .map(|(j, _)| j)
                .collect();
            if readers.is_empty() {
                continue;
            }
            let described: Vec<String> = readers.iter().map(|&j| self.described(j)).collect();
            let refs: Vec<String> = readers.iter().map(|&j| self.label(j)).collect();
            let (it, them) = if readers.len() == 1 {
                ("reads it", "that")
            } else {
                ("read it", "them")
            };
            let mut all: Vec<String> = names.to_vec();
            all.extend(refs.iter().cloned());
            let described = match described.split_last() {
                Some((last, init)) if !init.is_empty() => format!("{} and {last}", init.join(", ")),
                _ => described.join(""),
            };
            return Some(format!(
                "cannot drop {label}: {described} {it}\n  drop {them} first (`:drop {}`), or drop them together (`:drop {}`)\n",
                refs.join(" "),
                all.join(" ")
            ));
        }
        None
    }

    /// "statement `cohort`" or "statement 2".
    fn item_label(&self, index: usize) -> String {
        match self.statements.get(index).and_then(|s| s.name.as_deref()) {
            Some(n) => format!("statement `{n}`"),
            None => format!("statement {}", index + 1),
        }
    }

    /// A statement named for a message: "`cohort`", or "statement 2 (`split cohort …`)".
    fn described(&self, index: usize) -> String {
        let Some(s) = self.statements.get(index) else {
            return format!("statement {}", index + 1);
        };
        match &s.name {
            Some(n) => format!("`{n}`"),
            None => {
                // Its first words, up to about 30 characters.
                let words: Vec<&str> = s.text.split_whitespace().collect();
                let mut shown = String::new();
                for w in &words {
                    if !shown.is_empty() && shown.chars().count() + 1 + w.chars().count() > 32 {
                        break;
                    }
                    if !shown.is_empty() {
                        shown.push(' ');
                    }
                    shown.push_str(w);
                }
                let more = if shown.len() < words.join(" ").len() {
                    " …"
                } else {
                    ""
                };
                format!("statement {} (`{shown}{more}`)", index + 1)
            }
        }
    }

    /// `:strata`: units (or rows) per stratum that the expressions would make.
    async fn strata(&self, a: &StrataArgs) -> Result<String> {
        // Errors point at the command as typed: `:strata ARGS`.
        let typed = format!(":strata {}", a.typed);
        let args_at = typed.len() - a.typed.len();
        let mut src = self.text(None, false);
        // `from N`: statement N (an unnamed one gets a name here, to be read).
        let source = match (&a.from, self.tables.last()) {
            (Some(f), _) => match f.parse::<usize>() {
                Ok(k) if (1..=self.statements.len()).contains(&k) => {
                    match &self.statements[k - 1].name {
                        Some(n) => ident(n),
                        None => {
                            let name = format!("__statement_{k}");
                            let at = src
                                .pieces
                                .iter()
                                .find(|(key, _)| *key == Key::Statement(k - 1))
                                .map_or(0, |(_, r)| r.start);
                            src.text.insert_str(at, &format!("{name} = "));
                            name
                        }
                    }
                }
                Ok(k) => {
                    return Err(format!(
                        "no statement {k}: the session has {} statement(s)\n",
                        self.statements.len()
                    ));
                }
                Err(_) => f.clone(),
            },
            (None, Some(t)) => ident(&t.name),
            (None, None) => {
                return Err(
                    "no table bound yet: `:table NAME PATH`, then `:strata COLUMN`\n".into(),
                );
            }
        };
        // A throwaway statement after the session's items, checked with them;
        // `map` says where each of its parts was typed.
        let mut stmt = String::new();
        let mut map: Vec<(Range<usize>, Range<usize>)> = Vec::new();
        let mut part = |stmt: &mut String, text: &str, typed_at: Option<(usize, usize)>| {
            let start = stmt.len();
            stmt.push_str(text);
            if let Some((at, len)) = typed_at {
                map.push((start..stmt.len(), args_at + at..args_at + at + len));
            }
        };
        let from = a.from.as_ref().map(|f| (a.at[1], f.len()));
        part(&mut stmt, "__strata = sample ", None);
        part(&mut stmt, &source, from.or(Some((0, 0))));
        if let Some(x) = &a.as_of {
            part(&mut stmt, "\n  as of ", None);
            part(&mut stmt, x, Some((a.at[4], x.len())));
        }
        if let Some(w) = &a.filter {
            part(&mut stmt, "\n  where ", None);
            part(&mut stmt, w, Some((a.at[3], w.len())));
        }
        if let Some(u) = &a.unit {
            part(&mut stmt, "\n  unit ", None);
            part(&mut stmt, u, Some((a.at[2], u.len())));
        }
        part(&mut stmt, "\n  stratify by ", None);
        part(&mut stmt, &a.exprs, Some((a.at[0], a.exprs.len())));
        part(&mut stmt, "\n  seed 1", None);
        // A place in the statement → the place in what was typed (the whole
        // part when the text differs, e.g. a statement number).
        let to_typed = |s: Span| -> Span {
            let Some((r, t)) = map
                .iter()
                .find(|(r, _)| r.start <= s.start && s.start <= r.end)
            else {
                // A clause that starts with words of ours (`as of …`): the
                // first typed part inside it.
                return map
                    .iter()
                    .filter(|(r, _)| s.start <= r.start && r.start < s.end)
                    .min_by_key(|(r, _)| r.start)
                    .map_or(Span::new(0, args_at.saturating_sub(1)), |(_, t)| {
                        Span::new(t.start, t.end)
                    });
            };
            if r.len() == t.len() {
                Span::new(
                    t.start + (s.start - r.start),
                    t.start + (s.end.min(r.end) - r.start),
                )
            } else {
                Span::new(t.start, t.end)
            }
        };
        let offset = src.text.len() + 1;
        let text = format!("{}\n{stmt}\n", src.text);
        let ctx = SessionContext::new();
        let options = Options {
            params: self.overrides.clone(),
            ..Options::default()
        };
        let compiled = compile(&ctx, None, &text, &options).await;
        if compiled.has_errors() {
            let errors: Vec<Diagnostic> = compiled
                .diagnostics
                .into_iter()
                .filter(Diagnostic::is_error)
                .collect();
            let (mine, rest): (Vec<Diagnostic>, Vec<Diagnostic>) = errors
                .into_iter()
                .partition(|d| d.span.is_some_and(|s| s.start >= offset));
            let local = |s: Span| Span::new(s.start - offset, s.end.saturating_sub(offset));
            let mut mine: Vec<Diagnostic> = mine
                .into_iter()
                .map(|mut d| {
                    d.span = d.span.map(|s| to_typed(local(s)));
                    d.labels.retain(|l| l.span.start >= offset);
                    for l in &mut d.labels {
                        l.span = to_typed(local(l.span));
                    }
                    d
                })
                .collect();
            strat_syntax::diagnostic::sort_by_position(&mut mine);
            let mut out = render::human(
                &FileDiagnostics {
                    name: "strata",
                    text: &typed,
                    diagnostics: &mine,
                },
                self.color,
            );
            out.push_str(&render::human(
                &FileDiagnostics {
                    name: "session",
                    text: &text,
                    diagnostics: &rest,
                },
                self.color,
            ));
            return Err(out);
        }
        let program = compiled.program.expect("no errors, so a program");
        let index = program.statements.len() - 1;
        let st = &program.statements[index];
        let fast = matches!(st.source, ir::Source::Table(_))
            && st.as_of.is_none()
            && !st.strata.iter().any(|s| s.expr.has_aggregate());
        let counts = if fast {
            count_by_strata(&ctx, st).await
        } else {
            run_statement(&ctx, &program, index)
                .await
                .map(|o| {
                    o.report
                        .strata
                        .iter()
                        .map(|s| (s.values.clone(), s.population))
                        .collect()
                })
                .map_err(|e| run_diagnostic(&e, &compiled.inputs, &program, index))
        };
        let mut counts = counts.map_err(|mut d| match d.span {
            // About the throwaway statement: point at what was typed.
            Some(s) if s.start >= offset => {
                let local = |s: Span| Span::new(s.start - offset, s.end.saturating_sub(offset));
                d.span = Some(to_typed(local(s)));
                d.labels.retain(|l| l.span.start >= offset);
                for l in &mut d.labels {
                    l.span = to_typed(local(l.span));
                }
                self.render_run_error_in("strata", &typed, d)
            }
            _ => self.render_run_error(&text, d),
        })?;
        counts.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        let what = if st.unit.is_some() { "units" } else { "rows" };
        let shown = match (&a.from, source.strip_prefix("__statement_")) {
            (Some(_), Some(k)) => format!("statement {k}"),
            _ => source,
        };
        Ok(self.strata_table(st, &shown, what, &counts))
    }

    fn strata_table(
        &self,
        st: &ir::Statement,
        source: &str,
        what: &str,
        counts: &[(Vec<String>, u64)],
    ) -> String {
        let total: u64 = counts.iter().map(|c| c.1).sum();
        let small = |n: u64| {
            n < SMALL_STRATUM
                || (total > 0 && (n as f64) * 100.0 / (total as f64) < SMALL_SHARE_PERCENT)
        };
        let mut t = self.table();
        let mut header: Vec<String> = st.strata.iter().map(|s| s.name.clone()).collect();
        header.extend([what.to_string(), "share".into(), String::new()]);
        t.set_header(header);
        let row = |(values, n): &(Vec<String>, u64)| {
            let mut r = values.clone();
            r.push(n.to_string());
            r.push(if total > 0 {
                format!("{:.1}%", (*n as f64) * 100.0 / (total as f64))
            } else {
                "-".into()
            });
            r.push(if small(*n) {
                "small".into()
            } else {
                String::new()
            });
            r
        };
        let limit = self.max_rows.max(4);
        if counts.len() <= limit {
            for c in counts {
                t.add_row(row(c));
            }
        } else {
            // The largest and the smallest strata; the middle is summarised.
            let head = limit / 2;
            let tail = limit - head;
            for c in &counts[..head] {
                t.add_row(row(c));
            }
            let middle = &counts[head..counts.len() - tail];
            let mut gap = vec![format!("… {} more strata", middle.len())];
            gap.extend((1..st.strata.len()).map(|_| String::new()));
            gap.push(format!(
                "{}–{}",
                middle.last().map_or(0, |c| c.1),
                middle.first().map_or(0, |c| c.1)
            ));
            gap.extend([String::new(), String::new()]);
            t.add_row(gap);
            for c in &counts[counts.len() - tail..] {
                t.add_row(row(c));
            }
        }
        let flagged = counts.iter().filter(|c| small(c.1)).count();
        let mut out = format!(
            "{} strata of {source} ({total} {what}), largest first\n{t}\n",
            counts.len()
        );
        if flagged > 0 {
            let _ = writeln!(
                out,
                "{flagged} small strata (fewer than {SMALL_STRATUM} {what} or under {SMALL_SHARE_PERCENT}%): consider \
                 `=> all` for them, `min K per stratum`, or coarser strata (`bucket`, `case`)"
            );
        }
        out
    }
}

/// Counts rows (or distinct units) per stratum with one DataFusion aggregate.
async fn count_by_strata(
    ctx: &SessionContext,
    st: &ir::Statement,
) -> std::result::Result<Vec<(Vec<String>, u64)>, Diagnostic> {
    let df_err = |e: datafusion::error::DataFusionError| {
        Diagnostic::error(
            "E0203",
            format!(
                "counting strata: {}",
                e.to_string().lines().next().unwrap_or_default()
            ),
        )
        .with_help("check the input files: they must be readable and match their schema")
    };
    let lower_err = |e: strat_engine::lower::LowerError| Diagnostic::error("E0204", e.to_string());
    let ir::Source::Table(t) = &st.source else {
        unreachable!("the caller checks the source")
    };
    let mut df = ctx
        .table(TableReference::bare(t.as_str()))
        .await
        .map_err(df_err)?;
    if let Some(f) = &st.filter {
        df = df
            .filter(lower_expr(f, None).map_err(lower_err)?)
            .map_err(df_err)?;
    }
    let groups = st
        .strata
        .iter()
        .enumerate()
        .map(|(i, s)| lower_expr(&s.expr, None).map(|e| e.alias(format!("__s{i}"))))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(lower_err)?;
    let n = match &st.unit {
        Some(c) => count_distinct(column(&c.name)),
        None => count(lit(1i64)),
    };
    let batches = df
        .aggregate(groups, vec![n.alias("__n")])
        .map_err(df_err)?
        .collect()
        .await
        .map_err(df_err)?;
    let options = FormatOptions::default().with_null("NULL");
    let k = st.strata.len();
    let mut out = Vec::new();
    for b in &batches {
        let formatters = b.columns()[..k]
            .iter()
            .map(|a| ArrayFormatter::try_new(a.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| df_err(e.into()))?;
        let counts = b.column(k).as_primitive::<Int64Type>();
        for row in 0..b.num_rows() {
            let n = if counts.is_null(row) {
                0
            } else {
                counts.value(row).max(0) as u64
            };
            out.push((
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
                n,
            ));
        }
    }
    Ok(out)
}

fn help(cmd: Option<&str>) -> String {
    match cmd {
        Some(c) => match info(c) {
            Some(i) => format!(":{} {}\n  {}\n", i.name, i.args, i.help),
            None => format!("unknown command `{c}`; `:help` lists the commands\n"),
        },
        None => {
            let mut out = String::from(
                "Type rule text — `table NAME = \"PATH\"`, `param …`, `[NAME =] sample …`, `split …` — to check it and \
                 keep it in the session (a statement continues over lines until it is complete; typing a named \
                 statement again redefines it). Commands:\n",
            );
            let width = COMMANDS
                .iter()
                .map(|c| c.name.len() + c.args.len() + 2)
                .max()
                .unwrap_or(0);
            for c in COMMANDS {
                let usage = format!(":{} {}", c.name, c.args);
                let _ = writeln!(out, "  {usage:<width$}  {}", c.summary);
            }
            out.push_str("Tab completes, Ctrl-C cancels the input or a running command, Ctrl-D leaves. `:help COMMAND` for more.\n");
            out
        }
    }
}

/// Text cut to `max` lines, with a note saying how many were left out.
fn cut_lines(text: &str, max: usize, what: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= max {
        return if text.ends_with('\n') {
            text.to_string()
        } else {
            format!("{text}\n")
        };
    }
    let mut out = lines[..max].join("\n");
    let _ = writeln!(out, "\n… {} more {what}", lines.len() - max);
    out
}

/// Statement text as kept: trailing blanks of each line and blank edges dropped.
/// A statement's text one clause a line (as typed when it holds a comment).
fn laid_out(text: &str) -> String {
    let parsed = strat_syntax::parse(text);
    match parsed.file.items.first() {
        Some(Item::Statement(st)) if parsed.diagnostics.is_empty() => {
            strat_syntax::format::layout_statement(text, st).unwrap_or_else(|| text.to_string())
        }
        _ => text.to_string(),
    }
}

fn tidy(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn string_literal(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A `--param`/`:set` value as a literal of the param's type.
fn literal_of(ty: ParamType, value: &str) -> String {
    match ty {
        ParamType::String => string_literal(value),
        ParamType::Date | ParamType::Timestamp if !value.starts_with('@') => format!("@{value}"),
        _ => value.to_string(),
    }
}

fn absolute(path: &Path) -> PathBuf {
    let p = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    normalize(&p)
}

/// `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `path` relative to the folder `dir` (both absolute), with `..` as needed.
fn relative_to(path: &Path, dir: &Path) -> PathBuf {
    let p: Vec<Component> = path.components().collect();
    let d: Vec<Component> = dir.components().collect();
    let common = p.iter().zip(&d).take_while(|(a, b)| a == b).count();
    // Sharing only the root (`/`): the absolute path reads better than `../../..`.
    if common <= 1 {
        return path.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..d.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// The item of the session text that holds `span`.
fn piece_at(src: &SessionText, span: Span) -> Option<Key> {
    src.pieces
        .iter()
        .find(|(_, r)| r.start <= span.start && span.start <= r.end)
        .map(|p| p.0)
}

/// Does `st` read `source` (as its source, or in `keep`/`exclude units in`)?
fn reads(st: &ir::Statement, source: &ir::Source) -> bool {
    &st.source == source
        || st.keep.as_ref().is_some_and(|(s, _)| s == source)
        || st.exclude.as_ref().is_some_and(|(s, _)| s == source)
}
