//! The one integration-test binary of the workspace (one build for every test).
//! Data-driven: rule files under tests/cases carry their expectations in header comments.

// Tests may say what they saw on stderr (cargo shows it for a failing test).
#![allow(clippy::print_stderr)]

mod as_of;
mod browser;
mod check_cases;
mod cli;
mod common;
mod crash;
mod doc_examples;
mod docs;
mod engine_lower;
mod engine_run;
mod examples;
mod formats;
mod fuzz_corpus;
mod hostile;
mod online;
mod oracle;
mod progress;
mod repl;
mod robustness;
mod run;
mod run_errors;
mod sql;
mod sql_hostile;
mod sql_native;
mod sql_snapshots;
mod statistics;
mod streaming;
mod streaming_sql;
