//! The `strat` command line: clap commands over the engine, and the only place
//! that talks to the terminal (rendering, colours, exit codes).

// The workspace denies printing (`clippy::print_stdout`/`print_stderr`) so
// that only this crate writes to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod progress;
mod repl;
mod run;
mod sql;
mod stream;

pub use strat_render::{render, source};

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use strat_engine::{Options, TableBinding};

/// strat — exact, reproducible stratified samples from declarative rule files.
#[derive(Parser, Debug)]
#[command(name = "strat", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check rule files against their tables' schemas, reading no data.
    Check(CheckArgs),
    /// Run a rule file: write the sample (and a report) atomically.
    Run(run::RunArgs),
    /// Show what a statement does: its plan and its allocation table (writes nothing).
    Explain(run::ExplainArgs),
    /// Export a statement as one SQL query for Spark, DuckDB, PostgreSQL or DataFusion.
    Sql(sql::SqlArgs),
    /// Freeze a batch run's decision: each stratum's draw threshold, as JSON for `strat stream`.
    Freeze(stream::FreezeArgs),
    /// Decide records as they arrive (NDJSON or CSV): the same units as `strat run`.
    Stream(stream::StreamArgs),
    /// Explore interactively: bind tables, try strata and statements, save a rule file.
    Repl(repl::ReplArgs),
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The .strat rule files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    #[command(flatten)]
    pub bind: BindArgs,
    /// How to report diagnostics: `human` on stderr, or `json` on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// When to colour human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// Table and param bindings shared by every command that reads a rule file.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BindArgs {
    /// Bind (or rebind) a table to a file or folder: NAME=PATH.
    #[arg(long = "table", value_name = "NAME=PATH", value_parser = parse_binding)]
    pub tables: Vec<(String, String)>,
    /// Override a declared param: NAME=VALUE (parsed as the param's type).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_binding)]
    pub params: Vec<(String, String)>,
}

impl BindArgs {
    pub fn options(&self) -> Options {
        Options {
            tables: self
                .tables
                .iter()
                .map(|(n, p)| TableBinding {
                    name: n.clone(),
                    path: PathBuf::from(p),
                })
                .collect(),
            params: self.params.clone(),
            registered: Vec::new(),
        }
    }
}

fn parse_binding(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected NAME=VALUE, got `{s}`")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    pub(crate) fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    match cli.command {
        Command::Check(args) => runtime.block_on(check(args)),
        Command::Run(args) => runtime.block_on(run::run(args)),
        Command::Explain(args) => runtime.block_on(run::explain(args)),
        Command::Sql(args) => runtime.block_on(sql::sql(args)),
        Command::Freeze(args) => runtime.block_on(stream::freeze(args)),
        Command::Stream(args) => runtime.block_on(stream::stream(args)),
        Command::Repl(args) => repl::run(args, &runtime),
    }
}

async fn check(args: CheckArgs) -> i32 {
    let options = args.bind.options();
    let color = args.color.enabled();
    let mut files = Vec::new();
    for name in &args.files {
        let file = source::read(name);
        let diagnostics = match &file.problem {
            Some(p) => vec![p.clone()],
            None => {
                let ctx = datafusion::prelude::SessionContext::new();
                strat_engine::compile(&ctx, Some(std::path::Path::new(name)), &file.text, &options)
                    .await
                    .diagnostics
            }
        };
        files.push((file, diagnostics));
    }
    let any_error = files.iter().any(|(_, d)| d.iter().any(|d| d.is_error()));
    let views: Vec<render::FileDiagnostics> = files
        .iter()
        .map(|(f, d)| render::FileDiagnostics {
            name: &f.name,
            text: &f.text,
            diagnostics: d,
        })
        .collect();
    match args.format {
        Format::Json => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", render::json(&views));
        }
        Format::Human => {
            let mut err = std::io::stderr().lock();
            for v in &views {
                let _ = write!(err, "{}", render::human(v, color));
                let verdict = if v.diagnostics.iter().any(|d| d.is_error()) {
                    "failed"
                } else {
                    "ok"
                };
                let _ = writeln!(
                    err,
                    "{}: {verdict} ({})",
                    v.name,
                    render::summary(v.diagnostics)
                );
            }
        }
    }
    i32::from(any_error)
}
