//! The `.strat` language front end: grammar binding, syntax tree with spans, and
//! diagnostics as data. This crate knows nothing about Arrow, DataFusion or
//! terminals; the checker and the engine build on it, the CLI renders its output.

pub mod ast;
pub mod diagnostic;
pub mod format;
pub mod lex;
mod parser;
pub mod span;

pub use diagnostic::{Diagnostic, Label, Severity};
pub use parser::{MAX_NESTING, Parsed, is_incomplete, parse};
pub use span::{LineCol, LineIndex, Span};

#[cfg(test)]
mod tests;
