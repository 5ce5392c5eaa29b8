//! Docket's WebAssembly plugin host.
//!
//! Plugins are components built against the `docket:plugin` WIT package in
//! `wit/` (one folder per released version). They implement one world:
//! `rule`, `assigner`, `email-parser` or `process-step`. Like rhai rules,
//! they return actions as data; Docket applies them.
//!
//! Every call runs in a fresh `Store` instantiated from a cached
//! `InstancePre` (pooling allocator) with a fuel budget, an epoch deadline
//! and a memory cap. A plugin gets only the host functions it was granted,
//! and WASI (with an empty context) only if granted.

mod bindings;
mod convert;
mod error;
mod host;
mod inspect;
mod limits;
mod manifest;
mod records;
mod state;

pub use convert::MAX_ACTIONS;
pub use error::PluginError;
pub use host::{Call, PluginHost, Prepared, Report, component_hash};
pub use inspect::Inspection;
pub use limits::{HostConfig, Limits, LimitsOverride};
pub use manifest::{Capability, Grants, Manifest, SUPPORTED_WIT_VERSIONS, World, validate_config, validate_name};
pub use records::{
    ActorView, Address, AssignmentRequest, CandidateView, CaseSnapshot, EmailDecision, EmailFields, FieldChange,
    NoteView, ParsedEmail, RuleEvent, StepInput, StepOutput,
};
pub use state::{LogLine, MemoryIo, PluginIo, SetOutcome};
