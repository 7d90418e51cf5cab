//! Parse → bind schemas → check, for one rule file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::prelude::SessionContext;
use strat_check::{Env, ir::Program};
use strat_syntax::ast::Item;
use strat_syntax::{Diagnostic, Span};

use crate::catalog;

/// A table bound from outside the file (`--table NAME=PATH`).
#[derive(Clone, Debug)]
pub struct TableBinding {
    pub name: String,
    pub path: PathBuf,
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Bindings that override or add to the file's `table` declarations.
    pub tables: Vec<TableBinding>,
    /// `--param NAME=VALUE` overrides.
    pub params: Vec<(String, String)>,
    /// Tables the caller registered on the context itself (a Python frame):
    /// they take the place of the file's `table` declarations of the same
    /// name, as `tables` bindings do.
    pub registered: Vec<String>,
}

/// The checked program (when there is no error) and every diagnostic.
#[derive(Debug)]
pub struct Compiled {
    pub program: Option<Program>,
    pub diagnostics: Vec<Diagnostic>,
    /// The files bound to tables, by table name (tables the caller registered
    /// on the context themselves have none).
    pub inputs: Vec<(String, PathBuf)>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Checks the rule file `text` (read from `file`, whose folder anchors relative
/// table paths). Every table it binds is registered on `ctx` under its name;
/// only schemas are read.
pub async fn compile(
    ctx: &SessionContext,
    file: Option<&Path>,
    text: &str,
    options: &Options,
) -> Compiled {
    let parsed = strat_syntax::parse(text);
    let mut diagnostics = parsed.diagnostics;
    let base = file
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();

    // Bindings: declarations, then command-line overrides.
    let mut bindings: BTreeMap<String, (PathBuf, Option<Span>)> = BTreeMap::new();
    for item in &parsed.file.items {
        if let Item::Table(t) = item {
            bindings
                .entry(t.name.name.clone())
                .or_insert((base.join(&t.path.value), Some(t.path.span)));
        }
    }
    for b in &options.tables {
        bindings.insert(b.name.clone(), (b.path.clone(), None));
    }
    for name in &options.registered {
        bindings.remove(name);
    }

    let mut env = Env {
        tables: BTreeMap::new(),
        params: options.params.clone(),
    };
    for (name, (path, span)) in &bindings {
        match catalog::register(ctx, name, path).await {
            Ok(schema) => {
                env.tables
                    .insert(name.clone(), Some(catalog::checker_columns(&schema)));
            }
            Err(e) => {
                let mut d = Diagnostic::error("E0130", format!("table `{name}`: {}", e.message))
                    .with_help(e.help);
                if let Some(span) = span {
                    d = d.at(*span);
                } else {
                    d.message = format!("--table {name}={}: {}", path.display(), e.message);
                }
                diagnostics.push(d);
                env.tables.insert(name.clone(), None);
            }
        }
    }

    // Tables the caller registered on the context themselves (embedding): any
    // source the file names that is bound nowhere else, or that
    // `options.registered` names.
    for item in &parsed.file.items {
        let Item::Statement(st) = item else { continue };
        for name in std::iter::once(&st.source)
            .chain(st.keep.as_ref())
            .chain(st.exclude.as_ref())
        {
            if env.tables.contains_key(&name.name)
                || !ctx.table_exist(quoted(&name.name)).unwrap_or(false)
            {
                continue;
            }
            if let Ok(table) = ctx.table(quoted(&name.name)).await {
                env.tables.insert(
                    name.name.clone(),
                    Some(catalog::checker_columns(table.schema().as_arrow())),
                );
            }
        }
    }

    let checked = strat_check::check(text, &parsed.file, &env);
    diagnostics.extend(checked.diagnostics);
    strat_syntax::diagnostic::sort_by_position(&mut diagnostics);
    let has_errors = diagnostics.iter().any(Diagnostic::is_error);
    let inputs = bindings
        .into_iter()
        .map(|(name, (path, _))| (name, path))
        .collect();
    Compiled {
        program: if has_errors { None } else { checked.program },
        diagnostics,
        inputs,
    }
}

/// A table name as DataFusion reads it: quoted, so case and symbols are kept.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
