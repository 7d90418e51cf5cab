//! `strat sql`: compile a rule file and print (or write) the SQL query of one
//! statement for another engine (docs/sql.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use datafusion::prelude::SessionContext;
use strat_online::{Cut, Decisions, DrawKey};
use strat_sql::{
    Dialect, FrozenCut, FrozenCuts, FrozenDraw, FrozenStratum, SqlOptions, check_frozen,
    frozen_statement_sql, statement_sql,
};
use strat_syntax::Diagnostic;

use crate::render::{self, FileDiagnostics};
use crate::{BindArgs, ColorChoice, parse_binding, source};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DialectArg {
    Spark,
    Duckdb,
    Postgres,
    Datafusion,
}

impl DialectArg {
    fn dialect(self) -> Dialect {
        match self {
            DialectArg::Spark => Dialect::Spark,
            DialectArg::Duckdb => Dialect::DuckDb,
            DialectArg::Postgres => Dialect::Postgres,
            DialectArg::Datafusion => Dialect::DataFusion,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct SqlArgs {
    /// The .strat rule file.
    #[arg(value_name = "FILE")]
    pub file: String,
    /// The engine the query is for.
    #[arg(long, value_enum)]
    pub dialect: DialectArg,
    #[command(flatten)]
    pub bind: BindArgs,
    /// Export this named statement instead of the last one.
    #[arg(long, value_name = "NAME")]
    pub emit: Option<String>,
    /// Read table NAME as QUALIFIED_TABLE in the query (e.g. members=prod.members).
    #[arg(long = "name", value_name = "NAME=QUALIFIED_TABLE", value_parser = parse_binding)]
    pub names: Vec<(String, String)>,
    /// Decide each record on its own with the thresholds `strat freeze`
    /// wrote: one query of per-row expressions (no window, aggregate or
    /// join), which Spark Structured Streaming can run.
    #[arg(long, value_name = "DECISIONS")]
    pub thresholds: Option<PathBuf>,
    /// Order a split's rows as `strat run` writes them (spec §7.3). Off by
    /// default: it sorts the whole table, and engines need the same set of
    /// rows, not their order; a sample's rows are always ordered.
    #[arg(long)]
    pub ordered: bool,
    /// Write the query to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "OUT.sql")]
    pub output: Option<PathBuf>,
    /// When to colour human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

pub async fn sql(args: SqlArgs) -> i32 {
    let color = args.color.enabled();
    let file = source::read(&args.file);
    let fail = |diags: Vec<Diagnostic>| {
        let view = FileDiagnostics {
            name: &file.name,
            text: &file.text,
            diagnostics: &diags,
        };
        eprint!("{}", render::human(&view, color));
        eprintln!("{}: failed ({})", file.name, render::summary(&diags));
        1
    };
    if let Some(p) = &file.problem {
        return fail(vec![p.clone()]);
    }
    let ctx = SessionContext::new();
    let compiled = strat_engine::compile(
        &ctx,
        Some(Path::new(&args.file)),
        &file.text,
        &args.bind.options(),
    )
    .await;
    let Some(program) = compiled.program else {
        return fail(compiled.diagnostics);
    };
    // Warnings (no seed, …) are shown; the query is still written.
    if !compiled.diagnostics.is_empty() {
        let view = FileDiagnostics {
            name: &file.name,
            text: &file.text,
            diagnostics: &compiled.diagnostics,
        };
        eprint!("{}", render::human(&view, color));
    }
    let index = match crate::run::emitted_statement(&program, args.emit.as_deref()) {
        Ok(i) => i,
        Err(d) => return fail(vec![*d]),
    };
    let known: Vec<&str> = program.tables.iter().map(|t| t.name.as_str()).collect();
    for (name, _) in &args.names {
        if !known.contains(&name.as_str()) {
            let d = Diagnostic::error(
                "E0142",
                format!("--name {name}=…: the rule file reads no table named `{name}`"),
            )
            .with_help(format!("the tables it reads are: {}", known.join(", ")));
            return fail(vec![d]);
        }
    }
    let options = SqlOptions {
        dialect: args.dialect.dialect(),
        names: args.names.iter().cloned().collect::<BTreeMap<_, _>>(),
        file_name: Path::new(&args.file)
            .file_name()
            .map_or_else(|| args.file.clone(), |n| n.to_string_lossy().into_owned()),
        file_text: file.text.clone(),
        order_splits: args.ordered,
    };
    let query = match &args.thresholds {
        None => statement_sql(&program, index, &options).map_err(|e| Box::new(e.diagnostic())),
        Some(path) => frozen_query(&program, index, &options, path, &args.bind.params),
    };
    let query = match query {
        Ok(q) => q,
        Err(d) => return fail(vec![*d]),
    };
    match &args.output {
        None => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(query.as_bytes());
            0
        }
        Some(path) => match write_atomically(path, &query) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                1
            }
        },
    }
}

/// The frozen query of statement `index` with the thresholds in `path`
/// (`--thresholds`): E0144 for a statement that cannot be decided record by
/// record, E0145 for thresholds that cannot be read or were frozen from
/// other rules, another statement or another seed.
fn frozen_query(
    program: &strat_check::ir::Program,
    index: usize,
    options: &SqlOptions,
    path: &Path,
    params: &[(String, String)],
) -> Result<String, Box<Diagnostic>> {
    check_frozen(program, index, options).map_err(|e| Box::new(e.diagnostic()))?;
    let misfit = |problem: String| {
        Box::new(
            Diagnostic::error(
                "E0145",
                format!("the thresholds do not fit the rules: {problem}; freeze them again"),
            )
            .with_help("freeze them from this rule file: `strat freeze FILE -o decisions.json`"),
        )
    };
    let decisions = Decisions::read(path).map_err(|e| {
        Box::new(
            Diagnostic::error("E0145", format!("the thresholds cannot be used: {e}"))
                .with_help("freeze them with `strat freeze FILE -o decisions.json`"),
        )
    })?;
    let st = &program.statements[index];
    let label = strat_engine::run::statement_label(st.name.as_deref(), index);
    let origin = strat_online::Origin {
        rule_text: &options.file_text,
        params,
    };
    decisions.fits(&origin, &label, st.seed).map_err(misfit)?;
    frozen_statement_sql(program, index, options, &frozen_cuts(&decisions))
        .map_err(|e| Box::new(e.diagnostic()))
}

/// The decisions as the SQL export takes them: per stratum, its weight and cut.
fn frozen_cuts(decisions: &Decisions) -> FrozenCuts {
    let draw = |d: &Option<DrawKey>| {
        d.as_ref().map(|d| FrozenDraw {
            r: d.r,
            key: d.key.clone(),
        })
    };
    let strata = (decisions.strata.iter())
        .map(|(text, s)| {
            let cut = match &s.cut {
                Cut::UpTo(last) => FrozenCut::UpTo(draw(last)),
                Cut::Below { t, .. } => FrozenCut::Below(*t),
                Cut::Parts(bounds) => FrozenCut::Parts(bounds.iter().map(draw).collect()),
                Cut::AboutParts(t) => FrozenCut::AboutParts(t.clone()),
            };
            let weight = s.weight();
            (text.clone(), FrozenStratum { weight, cut })
        })
        .collect();
    FrozenCuts { strata }
}

/// Writes a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "query.sql".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
