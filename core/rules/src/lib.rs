//! Docket's rules engine: compiles admin-written rhai scripts, runs them in
//! a sandbox against a case event, and returns what they asked for as
//! [`RuleAction`] data. It never writes anything: the store applies the
//! actions in the transaction of the change (architecture.md, principle 2).
//!
//! - `sandbox`: the rhai engine and its limits;
//! - `script_api`: the one table of functions scripts may call;
//! - `values`: cases, changes and JSON as rhai values and back;
//! - `engine`: compile, cache per rule version, evaluate, explain.

mod engine;
mod sandbox;
mod script_api;
mod values;

pub use engine::{CompileError, Engine, Evaluation, Event};
pub use sandbox::Limits;
pub use script_api::{NoReader, READ_FUNCTIONS, Reader, UserInfo, reads_data};

use docket_domain::rule::RuleAction;

/// The actions of an evaluation, for logs and dry runs.
pub fn describe(actions: &[RuleAction]) -> Vec<String> {
    actions.iter().map(|a| serde_json::to_string(a).unwrap_or_else(|_| a.kind().to_string())).collect()
}
