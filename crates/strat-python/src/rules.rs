//! `strat.Rules`: a rule file, checked and run against tables from Python.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use strat_check::ir::Program;
use strat_engine::memory::{self, Budget};
use strat_engine::report::{self, RunMeta};
use strat_engine::run::{RunError, RunOptions, run_statement_with, statement_label};
use strat_sql::{Dialect, SqlOptions, statement_sql};
use strat_syntax::Severity;

use crate::block_on;
use crate::diagnostics::{Diagnostic, Source, strat_error};
use crate::inputs::{self, Tables};
use crate::sample::Sample;

/// A parsed rule file. `table` declarations resolve relative to its file.
#[pyclass(frozen, module = "strat", name = "Rules")]
pub struct Rules {
    text: String,
    /// The file name diagnostics show.
    name: String,
    path: Option<PathBuf>,
}

/// A statement ready to run: its program, its context with the tables
/// bound, and the files those tables come from.
struct Prepared {
    ctx: SessionContext,
    program: Arc<Program>,
    index: usize,
    inputs: Vec<(String, PathBuf)>,
}

impl Prepared {
    /// A run-time error as a diagnostic placed on the clause it is about.
    fn diagnostic(&self, e: &RunError) -> strat_syntax::Diagnostic {
        strat_render::run_error::run_diagnostic(e, &self.inputs, &self.program, self.index)
    }
}

/// What a call needs of the engine.
enum Engine {
    /// Schemas only (`sql`).
    Schemas,
    /// Data: a context with strat's memory budget and these threads.
    Run { threads: Option<usize> },
}

#[pymethods]
impl Rules {
    #[new]
    fn new(text: String) -> Self {
        Rules {
            text,
            name: "<rules>".to_string(),
            path: None,
        }
    }

    /// The rule file at `path` (str or os.PathLike).
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let name = path.to_string_lossy().into_owned();
        let file = strat_render::source::read(&name);
        if let Some(problem) = &file.problem {
            let source = Source {
                name: &file.name,
                text: &file.text,
            };
            return Err(strat_error(py, std::slice::from_ref(problem), &source));
        }
        Ok(Rules {
            text: file.text,
            name: file.name,
            path: Some(path),
        })
    }

    #[getter]
    fn text(&self) -> &str {
        &self.text
    }

    #[getter]
    fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn __repr__(&self) -> String {
        match &self.path {
            Some(p) => format!("Rules.from_file({:?})", p.display().to_string()),
            None => {
                let first = self
                    .text
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                let more = if self.text.trim().lines().count() > 1 {
                    "…"
                } else {
                    ""
                };
                format!("Rules({:?})", format!("{}{more}", first.trim()))
            }
        }
    }

    /// Every diagnostic of the rules against the tables' schemas (no data read).
    #[pyo3(signature = (tables=None))]
    fn check(
        &self,
        py: Python<'_>,
        tables: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<Diagnostic>> {
        let ctx = SessionContext::new();
        let options = Tables::from_python(tables)?.bind(&ctx, Vec::new())?;
        let (text, path) = (self.text.clone(), self.path.clone());
        let compiled = block_on(py, async move {
            strat_engine::compile(&ctx, path.as_deref(), &text, &options).await
        })?;
        let source = self.source();
        Ok(compiled
            .diagnostics
            .iter()
            .map(|d| Diagnostic::new(d, &source))
            .collect())
    }

    /// Runs the statement `emit` (the last one by default): the sample, as
    /// Arrow data, with its report.
    #[pyo3(signature = (tables=None, params=None, emit=None, threads=None))]
    fn sample(
        &self,
        py: Python<'_>,
        tables: Option<&Bound<'_, PyDict>>,
        params: Option<&Bound<'_, PyDict>>,
        emit: Option<String>,
        threads: Option<usize>,
    ) -> PyResult<Sample> {
        if threads == Some(0) {
            return Err(PyValueError::new_err("threads: at least 1"));
        }
        let p = self.prepare(py, tables, params, emit, Engine::Run { threads })?;
        let (ctx, program, index) = (p.ctx.clone(), p.program.clone(), p.index);
        let run = block_on(py, async move {
            run_statement_with(&ctx, &program, index, &RunOptions::default()).await
        })?;
        let out = run.map_err(|e| strat_error(py, &[p.diagnostic(&e)], &self.source()))?;
        let meta = self.meta(&p.program, index, &p.inputs);
        let report = report::to_json(&out.report, &out.upstream, &meta);
        Ok(Sample::new(out.schema, out.batches, report.to_string()))
    }

    /// The statement as one SQL query for `dialect`: spark, duckdb,
    /// postgres or datafusion.
    #[pyo3(signature = (dialect, tables=None, params=None, emit=None))]
    fn sql(
        &self,
        py: Python<'_>,
        dialect: &str,
        tables: Option<&Bound<'_, PyDict>>,
        params: Option<&Bound<'_, PyDict>>,
        emit: Option<String>,
    ) -> PyResult<String> {
        let dialect = Dialect::from_flag(dialect).ok_or_else(|| {
            PyValueError::new_err(format!(
                "dialect `{dialect}`: one of spark, duckdb, postgres, datafusion"
            ))
        })?;
        let p = self.prepare(py, tables, params, emit, Engine::Schemas)?;
        let options = SqlOptions {
            dialect,
            names: BTreeMap::new(),
            file_name: self
                .path
                .as_deref()
                .and_then(Path::file_name)
                .map_or_else(|| self.name.clone(), |n| n.to_string_lossy().into_owned()),
            file_text: self.text.clone(),
            order_splits: false,
        };
        statement_sql(&p.program, p.index, &options)
            .map_err(|e| strat_error(py, &[e.diagnostic()], &self.source()))
    }

    /// What the statement does: its plan and allocation table (`strat explain`).
    #[pyo3(signature = (tables=None, params=None, emit=None))]
    fn explain(
        &self,
        py: Python<'_>,
        tables: Option<&Bound<'_, PyDict>>,
        params: Option<&Bound<'_, PyDict>>,
        emit: Option<String>,
    ) -> PyResult<String> {
        let p = self.prepare(py, tables, params, emit, Engine::Run { threads: None })?;
        let (ctx, program, index, text) =
            (p.ctx.clone(), p.program.clone(), p.index, self.text.clone());
        let explained = block_on(py, async move {
            strat_engine::explain::explain(&ctx, &program, index, &text).await
        })?;
        explained.map_err(|e| strat_error(py, &[p.diagnostic(&e)], &self.source()))
    }
}

impl Rules {
    fn source(&self) -> Source<'_> {
        Source {
            name: &self.name,
            text: &self.text,
        }
    }

    /// Binds the tables and params, checks the rules and picks the
    /// statement; errors raise StratError, warnings go to Python's warnings.
    fn prepare(
        &self,
        py: Python<'_>,
        tables: Option<&Bound<'_, PyDict>>,
        params: Option<&Bound<'_, PyDict>>,
        emit: Option<String>,
        engine: Engine,
    ) -> PyResult<Prepared> {
        let params = inputs::params(&self.text, params)?
            .map_err(|wrong| strat_error(py, &wrong, &self.source()))?;
        let tables = Tables::from_python(tables)?;
        let ctx = match engine {
            Engine::Schemas => SessionContext::new(),
            Engine::Run { threads } => memory::context(Budget::default_for_machine(), threads)
                .map_err(|e| PyValueError::new_err(format!("cannot set up the engine: {e}")))?,
        };
        let options = tables.bind(&ctx, params)?;
        let (text, path, c) = (self.text.clone(), self.path.clone(), ctx.clone());
        let compiled = block_on(py, async move {
            strat_engine::compile(&c, path.as_deref(), &text, &options).await
        })?;
        let Some(program) = compiled.program else {
            return Err(strat_error(py, &compiled.diagnostics, &self.source()));
        };
        self.warn(py, &compiled.diagnostics)?;
        let index = strat_render::emitted_statement(&program, emit.as_deref())
            .map_err(|d| strat_error(py, &[*d], &self.source()))?;
        Ok(Prepared {
            ctx,
            program: Arc::new(program),
            index,
            inputs: compiled.inputs,
        })
    }

    /// Warnings (no seed, …) as Python warnings: the call goes on.
    fn warn(&self, py: Python<'_>, diagnostics: &[strat_syntax::Diagnostic]) -> PyResult<()> {
        let warnings = py.import("warnings")?;
        let category = py.import("strat")?.getattr("StratWarning")?;
        for d in diagnostics.iter().filter(|d| d.severity != Severity::Error) {
            let text = Diagnostic::new(d, &self.source()).rendered().to_string();
            warnings.call_method1("warn", (text, &category, 3))?;
        }
        Ok(())
    }

    /// The report's provenance: the rules, the statement and the input files.
    fn meta(&self, program: &Program, index: usize, inputs: &[(String, PathBuf)]) -> RunMeta {
        RunMeta {
            rule_file: self.name.clone(),
            rule_hash: report::md5_hex(self.text.as_bytes()),
            statement: statement_label(program.statements[index].name.as_deref(), index),
            inputs: inputs
                .iter()
                .map(|(t, p)| {
                    let print =
                        report::fingerprint(p).unwrap_or_else(|e| format!("unreadable: {e}"));
                    (t.clone(), p.clone(), print)
                })
                .collect(),
            output: Vec::new(),
        }
    }
}
