//! The one integration-test binary of the workspace (one build for every test).
//! Data-driven: rule files under tests/cases carry their expectations in header comments.

mod check_cases;
mod cli;
mod common;
mod crash;
mod docs;
mod examples;
mod formats;
mod fuzz_corpus;
mod hostile;
mod repl;
mod robustness;
mod run;
mod sql;
mod sql_hostile;
mod statistics;
mod streaming;
