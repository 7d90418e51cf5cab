//! The `.strat` checker: binds a parsed file to table schemas and params,
//! resolves names, checks types and the rules of spec §8, and produces the
//! checked program ([`ir::Program`]) that the engine lowers.
//!
//! It knows column types only through [`types::Type`]; reading schemas from
//! files is the engine's job, so this crate stays free of Arrow and DataFusion.

mod check;
pub mod ir;
pub mod types;

pub use check::{Checked, Env, check, parse_decimal, parse_param_value};
pub use types::{Column, Type, Value, percent_text};

#[cfg(test)]
mod tests;
