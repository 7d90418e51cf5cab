//! The batch decision, online: decide records one batch (or one record) at
//! a time exactly as `strat run` decides them on the whole table.
//!
//! A unit's fate depends only on its key, its stratum and its stratum's cut
//! (spec §6.4). Statements whose cut needs no counts — `take about` with
//! `rate`/`all`/`none` rules, `take about P%` alone, `split … into about` —
//! are decided from the rules; any other statement from the thresholds a
//! batch run froze ([`freeze()`], `strat freeze`).
//!
//! ```
//! use std::sync::Arc;
//! use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
//! use datafusion::arrow::datatypes::{DataType, Field, Schema};
//! use datafusion::prelude::SessionContext;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = SessionContext::new();
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("member_id", DataType::Int64, false),
//!     Field::new("plan", DataType::Utf8, false),
//! ]));
//! // Rules need a table to check against: an empty one of the records' schema.
//! ctx.register_batch("members", RecordBatch::new_empty(schema.clone()))?;
//! let rules = r#"sample members unit member_id stratify by plan take about
//!     allocate { plan = "premium" => all  else => rate 10% } seed 7"#;
//! let compiled = strat_engine::compile(&ctx, None, rules, &Default::default()).await;
//! let program = compiled.program.expect("the rules check");
//!
//! let mut decider = strat_online::Decider::new(&ctx, &program, 0, schema.clone(), None)?;
//! let ids: Vec<i64> = (1..=1000).collect();
//! let plans: Vec<&str> = ids.iter().map(|i| if i % 10 == 0 { "premium" } else { "basic" }).collect();
//! let batch = RecordBatch::try_new(schema, vec![
//!     Arc::new(Int64Array::from(ids)),
//!     Arc::new(StringArray::from(plans)),
//! ])?;
//! let decided = decider.decide(&batch)?;
//! // The output is the statement's (here the source columns): every premium
//! // member, and about 10% of the others, each decided on its own.
//! let plan = decided.batch.column(1).as_string::<i32>();
//! let premium = plan.iter().filter(|p| *p == Some("premium")).count();
//! assert_eq!(premium, 100);
//! assert!((150..250).contains(&decided.batch.num_rows()));
//! # Ok(())
//! # }
//! ```

pub mod decide;
pub mod decisions;
pub mod form;
pub mod freeze;

pub use decide::{Counts, Decided, Decider, OnlineError, Skip};
pub use decisions::{Cut, Decisions, DrawKey, Origin, StratumCut};
pub use form::{Form, online_form};
pub use freeze::{
    FreezeError, RuleFile, Tapped, Thresholds, decisions, freeze, tap_thresholds, threshold_outputs,
};
pub use strat_engine::run::UnitFilters;
