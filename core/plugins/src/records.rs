//! What Docket hands plugins and gets back, as plain Rust values that
//! serialise to JSON (the events of `docket plugin run` are these). The
//! host converts them to and from each WIT version's generated types.

use serde::{Deserialize, Serialize};

/// A case as plugins see it. Mirrors `case-snapshot`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaseSnapshot {
    pub id: String,
    pub number: i64,
    pub name: String,
    pub status: String,
    pub priority: String,
    #[serde(rename = "type")]
    pub case_type: Option<String>,
    pub description: Option<String>,
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    pub contact_id: Option<String>,
    pub contact_ids: Vec<String>,
    pub assigned_user_id: Option<String>,
    pub team_ids: Vec<String>,
    pub is_internal: bool,
    pub created_at: String,
    pub modified_at: String,
}

impl CaseSnapshot {
    /// The snapshot of a case (the account's name is the caller's to add).
    pub fn of(case: &docket_domain::case::Case) -> CaseSnapshot {
        CaseSnapshot {
            id: case.id.clone(),
            number: case.number,
            name: case.name.clone(),
            status: case.status.as_str().to_string(),
            priority: case.priority.as_str().to_string(),
            case_type: case.case_type.map(|t| t.as_str().to_string()),
            description: case.description.clone(),
            account_id: case.account_id.clone(),
            account_name: None,
            contact_id: case.contact_id.clone(),
            contact_ids: case.contact_ids.clone(),
            assigned_user_id: case.assigned_user_id.clone(),
            team_ids: case.team_ids.clone(),
            is_internal: case.is_internal,
            created_at: case.created_at.to_rfc3339(),
            modified_at: case.modified_at.to_rfc3339(),
        }
    }
}

/// One changed field, values as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NoteView {
    pub id: String,
    pub note_type: String,
    pub post: Option<String>,
    pub is_internal: bool,
    pub author_id: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActorView {
    pub id: String,
    pub username: String,
    pub user_type: String,
}

impl Default for ActorView {
    fn default() -> Self {
        ActorView { id: "system".into(), username: "system".into(), user_type: "system".into() }
    }
}

/// The input of a `rule` plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleEvent {
    pub hook: String,
    #[serde(rename = "case")]
    pub case: Option<CaseSnapshot>,
    pub changes: Vec<FieldChange>,
    pub note: Option<NoteView>,
    pub actor: ActorView,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CandidateView {
    pub user_id: String,
    pub username: String,
    pub open_cases: i64,
}

/// The input of an `assigner` plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AssignmentRequest {
    pub team_id: String,
    pub team_name: String,
    pub position: Option<String>,
    pub candidates: Vec<CandidateView>,
    #[serde(rename = "case")]
    pub case: Option<CaseSnapshot>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    pub name: Option<String>,
    pub email: String,
}

/// The input of an `email-parser` plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ParsedEmail {
    pub message_id: Option<String>,
    pub sender: Address,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub subject: String,
    pub text: String,
    pub headers: Vec<(String, String)>,
    pub mailbox: Option<String>,
}

/// Fields an email parser sets on the case an email creates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmailFields {
    pub subject: Option<String>,
    pub description: Option<String>,
    pub priority: Option<String>,
    #[serde(rename = "type")]
    pub case_type: Option<String>,
    pub actions: Vec<docket_domain::rule::RuleAction>,
}

/// What an email parser decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum EmailDecision {
    Keep,
    Rewrite(EmailFields),
    Drop { reason: String },
}

/// The input of a `process-step` plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepInput {
    pub process: String,
    pub step: String,
    #[serde(rename = "case")]
    pub case: CaseSnapshot,
    pub variables: serde_json::Value,
}

/// The result of a `process-step` plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutput {
    pub actions: Vec<docket_domain::rule::RuleAction>,
    pub variables: serde_json::Value,
    pub outcome: Option<String>,
}
