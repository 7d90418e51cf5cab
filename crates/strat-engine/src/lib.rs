//! strat's engine and embedding API: bind tables on a DataFusion
//! `SessionContext`, check a rule file against their schemas, and run it.
//!
//! Tables come from the rule file's `table` declarations, from
//! [`Options::tables`], or from the caller's own context (any table or
//! DataFrame registered under the name the rules use):
//!
//! ```
//! use std::sync::Arc;
//! use datafusion::arrow::array::{Int64Array, StringArray};
//! use datafusion::arrow::datatypes::{DataType, Field, Schema};
//! use datafusion::arrow::record_batch::RecordBatch;
//! use datafusion::prelude::SessionContext;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = SessionContext::new();
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("member_id", DataType::Int64, false),
//!     Field::new("country", DataType::Utf8, false),
//! ]));
//! let ids: Vec<i64> = (1..=100).collect();
//! let countries: Vec<&str> = ids.iter().map(|i| if i % 4 == 0 { "BR" } else { "US" }).collect();
//! let batch = RecordBatch::try_new(schema, vec![
//!     Arc::new(Int64Array::from(ids)),
//!     Arc::new(StringArray::from(countries)),
//! ])?;
//! ctx.register_batch("members", batch)?;
//!
//! let rules = "sample members unit member_id stratify by country take 20 seed 7";
//! let out = strat_engine::sample(&ctx, rules, &strat_engine::Options::default(), None).await?;
//!
//! let rows: usize = out.batches.iter().map(|b| b.num_rows()).sum();
//! assert_eq!(rows, 20);
//! // Proportional: 75 US and 25 BR members give 15 and 5.
//! let sizes: Vec<(String, u64)> = out.report.strata.iter().map(|s| (s.text.clone(), s.selected)).collect();
//! assert_eq!(sizes, [("BR".to_string(), 5), ("US".to_string(), 15)]);
//! # Ok(())
//! # }
//! ```

pub mod catalog;
pub mod compile;

pub use compile::{Compiled, Options, TableBinding, compile};
pub mod draw;
pub mod errtext;
pub mod explain;
pub mod keys;
pub mod lower;
pub mod memory;
pub mod moments;
pub mod output;
mod parallel;
pub mod progress;
pub mod report;
pub mod run;

pub use run::{Report, RunError, RunOutput, StatementReport};

/// Why [`sample`] produced no sample.
#[derive(Debug)]
pub enum SampleError {
    /// The rules did not check: every diagnostic (errors and warnings).
    Check(Vec<strat_syntax::Diagnostic>),
    /// `emit` names no statement of the file.
    NoSuchStatement(String),
    /// The run failed (spec §9).
    Run(RunError),
}

impl std::fmt::Display for SampleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SampleError::Check(d) => {
                let errors: Vec<String> = d
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| format!("{}: {}", d.code, d.message))
                    .collect();
                write!(f, "the rules do not check: {}", errors.join("; "))
            }
            SampleError::NoSuchStatement(n) => write!(f, "no statement named `{n}`"),
            SampleError::Run(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SampleError {}

/// Checks `rules` and runs the statement named `emit` (the last one by
/// default) on `ctx`, returning the sample and its report.
pub async fn sample(
    ctx: &datafusion::prelude::SessionContext,
    rules: &str,
    options: &Options,
    emit: Option<&str>,
) -> Result<RunOutput, SampleError> {
    let compiled = compile(ctx, None, rules, options).await;
    let Some(program) = compiled.program else {
        return Err(SampleError::Check(compiled.diagnostics));
    };
    let index = match emit {
        None => program.statements.len() - 1,
        Some(name) => program
            .statements
            .iter()
            .position(|s| s.name.as_deref() == Some(name))
            .ok_or_else(|| SampleError::NoSuchStatement(name.to_string()))?,
    };
    run::run_statement(ctx, &program, index)
        .await
        .map_err(SampleError::Run)
}
