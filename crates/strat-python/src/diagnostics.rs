//! Diagnostics as Python objects, and `strat.StratError`, which carries them.

use pyo3::prelude::*;
use strat_render::render::{self, FileDiagnostics};
use strat_syntax::LineIndex;

/// One finding about a rule file (spec §9): what `strat check` prints.
#[pyclass(frozen, module = "strat", name = "Diagnostic")]
pub struct Diagnostic {
    #[pyo3(get)]
    severity: &'static str,
    #[pyo3(get)]
    code: &'static str,
    #[pyo3(get)]
    message: String,
    /// 1-based line and column (characters) of where it is, when it has a place.
    #[pyo3(get)]
    line: Option<usize>,
    #[pyo3(get)]
    column: Option<usize>,
    #[pyo3(get)]
    end_line: Option<usize>,
    #[pyo3(get)]
    end_column: Option<usize>,
    #[pyo3(get)]
    help: Option<String>,
    /// The command line's rendering, without colour.
    rendered: String,
}

#[pymethods]
impl Diagnostic {
    fn __str__(&self) -> &str {
        &self.rendered
    }

    fn __repr__(&self) -> String {
        let at = match (self.line, self.column) {
            (Some(l), Some(c)) => format!(" at {l}:{c}"),
            _ => String::new(),
        };
        format!(
            "<Diagnostic {} {}{at}: {}>",
            self.severity, self.code, self.message
        )
    }
}

/// The rule file diagnostics are about: its name and text.
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl Diagnostic {
    /// The command line's rendering, without colour.
    pub fn rendered(&self) -> &str {
        &self.rendered
    }

    pub fn new(d: &strat_syntax::Diagnostic, source: &Source) -> Self {
        let index = LineIndex::new(source.text);
        let at = d
            .span
            .map(|s| (index.line_col(s.start), index.line_col(s.end)));
        let view = FileDiagnostics {
            name: source.name,
            text: source.text,
            diagnostics: std::slice::from_ref(d),
        };
        Diagnostic {
            severity: d.severity.as_str(),
            code: d.code,
            message: d.message.clone(),
            line: at.map(|(a, _)| a.line),
            column: at.map(|(a, _)| a.column),
            end_line: at.map(|(_, b)| b.line),
            end_column: at.map(|(_, b)| b.column),
            help: d.help.clone(),
            rendered: render::human(&view, false),
        }
    }
}

/// `strat.StratError` (defined in Python, a `ValueError`) carrying
/// `diagnostics`; its message is their rendering.
pub fn strat_error(
    py: Python<'_>,
    diagnostics: &[strat_syntax::Diagnostic],
    source: &Source,
) -> PyErr {
    let view = FileDiagnostics {
        name: source.name,
        text: source.text,
        diagnostics,
    };
    let message = format!(
        "{}{}: failed ({})",
        render::human(&view, false),
        source.name,
        render::summary(diagnostics)
    );
    let objects: Vec<Diagnostic> = diagnostics
        .iter()
        .map(|d| Diagnostic::new(d, source))
        .collect();
    let raised = (|| -> PyResult<PyErr> {
        let class = py.import("strat")?.getattr("StratError")?;
        let error = class.call1((message.clone(), objects))?;
        Ok(PyErr::from_value(error))
    })();
    raised.unwrap_or_else(|e| e)
}
