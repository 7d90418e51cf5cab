//! A run report written to a file, its format chosen by the file's
//! extension: JSON, Markdown or a self-contained HTML page (the JSON drawn
//! as charts, [`crate::report_html`]). One place for the command line and
//! the REPL.

use std::path::Path;

use strat_engine::report::{self, RunMeta};
use strat_engine::run::{Report, StatementReport};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Markdown,
    Html,
}

/// The extensions a report may have, for error messages.
pub const REPORT_EXTENSIONS: &str = ".json, .md or .html";

/// The format `path`'s extension names, if it names one.
pub fn report_format(path: &Path) -> Option<ReportFormat> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "json" => Some(ReportFormat::Json),
        "md" | "markdown" => Some(ReportFormat::Markdown),
        "html" | "htm" => Some(ReportFormat::Html),
        _ => None,
    }
}

/// The report's text in `format`.
pub fn report_text(
    format: ReportFormat,
    report: &Report,
    upstream: &[StatementReport],
    meta: &RunMeta,
) -> String {
    report_text_with(format, report, upstream, meta, None)
}

/// [`report_text`] with the statement's frozen `thresholds` (for `strat
/// stream`) in the JSON report, and in the JSON an HTML page embeds.
pub fn report_text_with(
    format: ReportFormat,
    report: &Report,
    upstream: &[StatementReport],
    meta: &RunMeta,
    thresholds: Option<serde_json::Value>,
) -> String {
    let json = || {
        let mut v = report::to_json(report, upstream, meta);
        if let (serde_json::Value::Object(o), Some(t)) = (&mut v, thresholds.clone()) {
            o.insert("thresholds".into(), t);
        }
        v
    };
    match format {
        ReportFormat::Json => serde_json::to_string_pretty(&json()).unwrap_or_default() + "\n",
        ReportFormat::Markdown => report::to_markdown(report, upstream, meta),
        ReportFormat::Html => crate::report_html::to_html(&json()),
    }
}
