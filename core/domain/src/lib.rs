//! Docket's domain: the records a helpdesk keeps, their enums and
//! validation, and the access decisions made on them.
//!
//! Nothing here performs IO. The store persists these types; the server
//! turns their errors into HTTP answers.

pub mod access;
pub mod account;
pub mod assignment;
pub mod calendar;
pub mod case;
pub mod contact;
pub mod ids;
pub mod kb;
pub mod listing;
pub mod note;
pub mod patch;
pub mod portal;
pub mod preferences;
pub mod rule;
pub mod rule_file;
pub mod team;
pub mod user;
pub mod validation;

pub use access::{Action, Actor, Level, Permissions, Scope};
pub use validation::ValidationErrors;
