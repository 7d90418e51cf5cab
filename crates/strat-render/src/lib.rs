//! Diagnostics at the edge, for every front end (the command line, the
//! REPL, the Python package): reading a rule file, choosing the statement
//! to run, placing a run-time error on the clause it is about, and
//! rendering diagnostics as ariadne text or JSON. Diagnostics stay data
//! until here.

pub mod render;
pub mod report;
pub mod report_html;
pub mod run_error;
pub mod source;

use strat_syntax::Diagnostic;

/// The statement `--emit NAME` names (the last one without `--emit`), or
/// E0131 with the closest name or the list of names.
pub fn emitted_statement(
    program: &strat_check::ir::Program,
    emit: Option<&str>,
) -> Result<usize, Box<Diagnostic>> {
    let Some(name) = emit else {
        return Ok(program.statements.len() - 1);
    };
    if let Some(i) = program
        .statements
        .iter()
        .position(|s| s.name.as_deref() == Some(name))
    {
        return Ok(i);
    }
    let names: Vec<&str> = program
        .statements
        .iter()
        .filter_map(|s| s.name.as_deref())
        .collect();
    let d = Diagnostic::error(
        "E0131",
        format!("--emit {name}: the file has no statement named `{name}`"),
    );
    Err(Box::new(
        match strat_syntax::diagnostic::closest(name, names.iter().copied()) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None if names.is_empty() => {
                d.with_help("name a statement (`cohort = sample …`) to emit it")
            }
            None => d.with_help(format!("the named statements are: {}", names.join(", "))),
        },
    ))
}
