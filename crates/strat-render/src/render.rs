//! Diagnostics rendered at the edge: ariadne for people, JSON for tools.

use ariadne::{Color, Config, IndexType, Label, Report, ReportKind};
use serde_json::json;
use strat_syntax::{Diagnostic, LineIndex, Severity};

/// One source file's diagnostics, ready to render.
pub struct FileDiagnostics<'a> {
    /// The file name as the user gave it.
    pub name: &'a str,
    /// Its text (lossily decoded when it was not UTF-8).
    pub text: &'a str,
    pub diagnostics: &'a [Diagnostic],
}

/// Renders for a terminal with ariadne (colour only when asked).
pub fn human(file: &FileDiagnostics, color: bool) -> String {
    let mut out = Vec::new();
    for d in file.diagnostics {
        render_one(file, d, color, &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn render_one(file: &FileDiagnostics, d: &Diagnostic, color: bool, out: &mut Vec<u8>) {
    let (kind, paint) = match d.severity {
        Severity::Error => (ReportKind::Error, Color::Red),
        Severity::Warning => (ReportKind::Warning, Color::Yellow),
        Severity::Note => (ReportKind::Advice, Color::Cyan),
    };
    let Some(span) = d.span else {
        // Findings without a place: a short rustc-like block.
        let head = format!("{}[{}]: {}", d.severity.as_str(), d.code, d.message);
        out.extend_from_slice(paint_text(&head, paint, color).as_bytes());
        out.push(b'\n');
        out.extend_from_slice(format!("  --> {}\n", file.name).as_bytes());
        if let Some(h) = &d.help {
            out.extend_from_slice(format!("  = help: {h}\n").as_bytes());
        }
        out.push(b'\n');
        return;
    };
    let len = file.text.len();
    let clamp = |s: usize| s.min(len);
    let range = clamp(span.start)..clamp(span.end);
    let name = file.name.to_string();
    let mut report = Report::build(kind, (name.clone(), range.clone()))
        .with_config(
            Config::default()
                .with_color(color)
                .with_index_type(IndexType::Byte),
        )
        .with_code(d.code)
        .with_message(&d.message);
    // ariadne draws no underline for a label without a message.
    let primary = if d.label.is_empty() {
        &d.message
    } else {
        &d.label
    };
    let mut labels = vec![(range, primary, paint)];
    labels.extend(d.labels.iter().map(|l| {
        (
            clamp(l.span.start)..clamp(l.span.end),
            &l.message,
            Color::Blue,
        )
    }));
    // In file order: ariadne starts a new snippet (repeating the file
    // header) for a label above the one before it.
    labels.sort_by_key(|(r, _, _)| (r.start, r.end));
    for (r, message, color) in labels {
        report = report.with_label(
            Label::new((name.clone(), r))
                .with_message(message)
                .with_color(color),
        );
    }
    if let Some(h) = &d.help {
        report = report.with_help(h);
    }
    let source = ariadne::Source::from(file.text);
    let _ = report.finish().write((name, &source), &mut *out);
}

fn paint_text(s: &str, color: Color, enabled: bool) -> String {
    if !enabled {
        return s.to_string();
    }
    let code = match color {
        Color::Red => 31,
        Color::Yellow => 33,
        _ => 36,
    };
    format!("\x1b[1;{code}m{s}\x1b[0m")
}

/// The JSON form: `{"diagnostics":[…]}` with 1-based positions of the primary span.
pub fn json(files: &[FileDiagnostics]) -> String {
    let mut all = Vec::new();
    for f in files {
        let index = LineIndex::new(f.text);
        for d in f.diagnostics {
            let mut v = json!({
                "severity": d.severity.as_str(),
                "code": d.code,
                "message": d.message,
                "file": f.name,
                "line": null,
                "column": null,
                "end_line": null,
                "end_column": null,
                "help": d.help,
            });
            if let Some(span) = d.span {
                let a = index.line_col(span.start);
                let b = index.line_col(span.end);
                v["line"] = a.line.into();
                v["column"] = a.column.into();
                v["end_line"] = b.line.into();
                v["end_column"] = b.column.into();
            }
            all.push(v);
        }
    }
    serde_json::to_string_pretty(&json!({ "diagnostics": all })).expect("JSON of plain values")
}

/// "2 errors, 1 warning" — the closing line of a human report.
pub fn summary(diags: &[Diagnostic]) -> String {
    let count = |s| diags.iter().filter(|d| d.severity == s).count();
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let (e, w) = (count(Severity::Error), count(Severity::Warning));
    match (e, w) {
        (0, 0) => "no problems".to_string(),
        (0, w) => plural(w, "warning"),
        (e, 0) => plural(e, "error"),
        (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
    }
}
