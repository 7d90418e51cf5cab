//! Reading a rule file: bytes to text, with a diagnostic for what is not text.

use strat_syntax::{Diagnostic, Span};

/// A rule file as read: its text (lossy when not UTF-8) and any problem reading it.
pub struct RuleFile {
    pub name: String,
    pub text: String,
    pub problem: Option<Diagnostic>,
}

pub fn read(name: &str) -> RuleFile {
    match std::fs::read(name) {
        Err(e) => RuleFile {
            name: name.to_string(),
            text: String::new(),
            problem: Some(
                Diagnostic::error(
                    "E0007",
                    match e.kind() {
                        std::io::ErrorKind::NotFound => {
                            format!("cannot read `{name}`: no such file")
                        }
                        std::io::ErrorKind::PermissionDenied => {
                            format!("cannot read `{name}`: permission denied")
                        }
                        _ if std::path::Path::new(name).is_dir() => {
                            format!("cannot read `{name}`: it is a folder")
                        }
                        _ => format!("cannot read `{name}`: {e}"),
                    },
                )
                .with_help(if e.kind() == std::io::ErrorKind::PermissionDenied {
                    "check the file's permissions: the user running strat must be able to read it"
                } else {
                    "pass the path of a .strat rule file"
                }),
            ),
        },
        Ok(bytes) => from_bytes(name, bytes),
    }
}

pub fn from_bytes(name: &str, bytes: Vec<u8>) -> RuleFile {
    match String::from_utf8(bytes) {
        Ok(text) => RuleFile {
            name: name.to_string(),
            text,
            problem: None,
        },
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            // The lossy text keeps every valid byte before `at` where it was.
            let problem = Diagnostic::error("E0005", "this file is not valid UTF-8 text")
                .at(Span::new(at, at + char::REPLACEMENT_CHARACTER.len_utf8()))
                .with_label("the first invalid byte is here")
                .with_help("save the rule file as UTF-8");
            RuleFile {
                name: name.to_string(),
                text,
                problem: Some(problem),
            }
        }
    }
}
