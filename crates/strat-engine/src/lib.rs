//! strat's engine and embedding API: bind tables on a DataFusion
//! `SessionContext`, check a rule file against their schemas, and (soon) run it.

pub mod catalog;
pub mod compile;

pub use compile::{Compiled, Options, TableBinding, compile};
pub mod draw;
pub mod keys;
pub mod output;
pub mod lower;
pub mod run;
pub mod report;
pub mod explain;
