//! Cases (tickets): the record everything else in Docket hangs off.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::Ownership;
use crate::patch::double_option;
use crate::validation::{ValidationErrors, id_list, optional_text, required_text};

/// Longest case name (subject), in characters.
pub const NAME_MAX: usize = 255;
/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 200_000;

/// Where a case stands. `Closed`, `Rejected` and `Duplicate` are "not
/// actual": the case is no longer open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum CaseStatus {
    #[default]
    New,
    Assigned,
    Pending,
    Closed,
    Rejected,
    Duplicate,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 6] = [
        CaseStatus::New,
        CaseStatus::Assigned,
        CaseStatus::Pending,
        CaseStatus::Closed,
        CaseStatus::Rejected,
        CaseStatus::Duplicate,
    ];
    /// Statuses of cases that are done with.
    pub const NOT_ACTUAL: [CaseStatus; 3] = [CaseStatus::Closed, CaseStatus::Rejected, CaseStatus::Duplicate];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::New => "New",
            CaseStatus::Assigned => "Assigned",
            CaseStatus::Pending => "Pending",
            CaseStatus::Closed => "Closed",
            CaseStatus::Rejected => "Rejected",
            CaseStatus::Duplicate => "Duplicate",
        }
    }

    pub fn is_open(self) -> bool {
        !Self::NOT_ACTUAL.contains(&self)
    }

    /// Parses a stored or submitted value; the error lists what is allowed.
    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|s| s.as_str() == value).ok_or_else(|| unknown(value, Self::ALL.map(Self::as_str)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum CasePriority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl CasePriority {
    pub const ALL: [CasePriority; 4] =
        [CasePriority::Low, CasePriority::Normal, CasePriority::High, CasePriority::Urgent];

    pub fn as_str(self) -> &'static str {
        match self {
            CasePriority::Low => "Low",
            CasePriority::Normal => "Normal",
            CasePriority::High => "High",
            CasePriority::Urgent => "Urgent",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|s| s.as_str() == value).ok_or_else(|| unknown(value, Self::ALL.map(Self::as_str)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CaseType {
    Question,
    Incident,
    Problem,
}

impl CaseType {
    pub const ALL: [CaseType; 3] = [CaseType::Question, CaseType::Incident, CaseType::Problem];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseType::Question => "Question",
            CaseType::Incident => "Incident",
            CaseType::Problem => "Problem",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|s| s.as_str() == value).ok_or_else(|| unknown(value, Self::ALL.map(Self::as_str)))
    }
}

fn unknown<const N: usize>(value: &str, allowed: [&str; N]) -> String {
    format!("unknown value `{value}`, expected one of: {}", allowed.join(", "))
}

/// A case as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub number: i64,
    pub name: String,
    pub status: CaseStatus,
    pub priority: CasePriority,
    #[serde(rename = "type")]
    pub case_type: Option<CaseType>,
    pub description: Option<String>,
    pub account_id: Option<String>,
    /// The primary contact; always among `contact_ids` when set.
    pub contact_id: Option<String>,
    pub contact_ids: Vec<String>,
    pub inbound_mailbox_id: Option<String>,
    /// Hidden from the portal.
    pub is_internal: bool,
    pub assigned_user_id: Option<String>,
    pub team_ids: Vec<String>,
    pub attachment_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by_id: Option<String>,
    pub modified_at: DateTime<Utc>,
    pub modified_by_id: Option<String>,
    pub stream_updated_at: DateTime<Utc>,
    pub version: i64,
}

impl Case {
    pub fn ownership(&self) -> Ownership<'_> {
        Ownership {
            assigned_user_id: self.assigned_user_id.as_deref(),
            created_by: self.created_by_id.as_deref(),
            team_ids: &self.team_ids,
            contact_ids: &self.contact_ids,
            account_id: self.account_id.as_deref(),
            is_internal: self.is_internal,
        }
    }
}

/// What a client sends to create a case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub status: Option<CaseStatus>,
    #[serde(default)]
    pub priority: Option<CasePriority>,
    #[serde(default, rename = "type")]
    pub case_type: Option<CaseType>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub contact_id: Option<String>,
    #[serde(default)]
    pub contact_ids: Vec<String>,
    #[serde(default)]
    pub assigned_user_id: Option<String>,
    #[serde(default)]
    pub team_ids: Vec<String>,
    #[serde(default)]
    pub is_internal: bool,
    #[serde(default)]
    pub attachment_ids: Vec<String>,
    /// Save without stream notes or notifications (imports); admins only.
    /// Set from the `silent=true` query parameter, never from the body.
    #[serde(skip)]
    pub silent: bool,
}

/// A validated new case: defaults filled in, contacts normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseDraft {
    pub name: String,
    pub description: Option<String>,
    pub status: CaseStatus,
    pub priority: CasePriority,
    pub case_type: Option<CaseType>,
    pub account_id: Option<String>,
    pub contact_id: Option<String>,
    pub contact_ids: Vec<String>,
    pub assigned_user_id: Option<String>,
    pub team_ids: Vec<String>,
    pub is_internal: bool,
    pub attachment_ids: Vec<String>,
    pub silent: bool,
    /// The group mailbox a case came in through (email-to-case only).
    pub inbound_mailbox_id: Option<String>,
}

impl NewCase {
    /// Checks the input and fills in defaults. The primary contact is
    /// always among the contacts; without one, the first contact is primary.
    pub fn validate(self) -> Result<CaseDraft, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        required_text(&mut errors, "name", &self.name, NAME_MAX);
        if let Some(description) = &self.description {
            optional_text(&mut errors, "description", description, DESCRIPTION_MAX);
        }
        id_list(&mut errors, "contact_ids", &self.contact_ids);
        id_list(&mut errors, "team_ids", &self.team_ids);
        id_list(&mut errors, "attachment_ids", &self.attachment_ids);
        errors.into_result()?;

        let contact_id = self.contact_id.or_else(|| self.contact_ids.first().cloned());
        let contact_ids = with_primary(self.contact_ids, contact_id.as_deref());
        Ok(CaseDraft {
            name: self.name.trim().to_string(),
            description: self.description.filter(|d| !d.trim().is_empty()),
            status: self.status.unwrap_or_default(),
            priority: self.priority.unwrap_or_default(),
            case_type: self.case_type,
            account_id: self.account_id,
            contact_id,
            contact_ids,
            assigned_user_id: self.assigned_user_id,
            team_ids: self.team_ids,
            is_internal: self.is_internal,
            attachment_ids: self.attachment_ids,
            silent: self.silent,
            inbound_mailbox_id: None,
        })
    }
}

fn with_primary(mut contact_ids: Vec<String>, primary: Option<&str>) -> Vec<String> {
    if let Some(primary) = primary
        && !contact_ids.iter().any(|c| c == primary)
    {
        contact_ids.insert(0, primary.to_string());
    }
    contact_ids
}

/// A partial update. Absent fields stay; `null` clears nullable ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub status: Option<CaseStatus>,
    #[serde(default)]
    pub priority: Option<CasePriority>,
    #[serde(default, rename = "type", deserialize_with = "double_option")]
    pub case_type: Option<Option<CaseType>>,
    #[serde(default, deserialize_with = "double_option")]
    pub account_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub contact_id: Option<Option<String>>,
    #[serde(default)]
    pub contact_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub assigned_user_id: Option<Option<String>>,
    #[serde(default)]
    pub team_ids: Option<Vec<String>>,
    #[serde(default)]
    pub is_internal: Option<bool>,
    #[serde(default)]
    pub attachment_ids: Option<Vec<String>>,
    /// The version the client last saw; a stale one is a conflict.
    #[serde(default)]
    pub version: Option<i64>,
    /// Save without stream notes or notifications (imports); admins only.
    /// Set from the `silent=true` query parameter, never from the body.
    #[serde(skip)]
    pub silent: bool,
}

/// One audited field's change, written into an `Update` note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub old: Value,
    pub new: Value,
}

/// The result of applying a patch: the new case and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPatch {
    pub case: Case,
    /// Audited field changes other than the assignee (an `Update` note).
    pub audited: Vec<FieldChange>,
    /// The assignee changed (an `Assign` note).
    pub assignee_changed: bool,
    /// Any stored field changed at all.
    pub changed: bool,
    /// Attachments newly linked by this patch.
    pub added_attachment_ids: Vec<String>,
}

impl CasePatch {
    /// The fields this patch sets that only staff may change: portal users
    /// see the status and assignee read-only, and never see teams, the
    /// internal flag or the links the case's access rests on.
    pub fn staff_only_fields(&self) -> Vec<&'static str> {
        let set = [
            ("status", self.status.is_some()),
            ("account_id", self.account_id.is_some()),
            ("contact_id", self.contact_id.is_some()),
            ("contact_ids", self.contact_ids.is_some()),
            ("assigned_user_id", self.assigned_user_id.is_some()),
            ("team_ids", self.team_ids.is_some()),
            ("is_internal", self.is_internal.is_some()),
        ];
        set.into_iter().filter(|(_, is_set)| *is_set).map(|(field, _)| field).collect()
    }

    /// Applies the patch to `current`, validating the result. Pure: the
    /// caller checks references exist and stores the outcome.
    pub fn apply(&self, current: &Case) -> Result<AppliedPatch, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(name) = &self.name {
            required_text(&mut errors, "name", name, NAME_MAX);
        }
        if let Some(Some(description)) = &self.description {
            optional_text(&mut errors, "description", description, DESCRIPTION_MAX);
        }
        for (field, ids) in
            [("contact_ids", &self.contact_ids), ("team_ids", &self.team_ids), ("attachment_ids", &self.attachment_ids)]
        {
            if let Some(ids) = ids {
                id_list(&mut errors, field, ids);
            }
        }
        errors.into_result()?;

        let mut next = current.clone();
        if let Some(name) = &self.name {
            next.name = name.trim().to_string();
        }
        if let Some(description) = &self.description {
            next.description = description.clone().filter(|d| !d.trim().is_empty());
        }
        if let Some(status) = self.status {
            next.status = status;
        }
        if let Some(priority) = self.priority {
            next.priority = priority;
        }
        if let Some(case_type) = self.case_type {
            next.case_type = case_type;
        }
        if let Some(account_id) = &self.account_id {
            next.account_id = account_id.clone();
        }
        if let Some(contact_ids) = &self.contact_ids {
            next.contact_ids = contact_ids.clone();
            // A primary contact dropped from the list stops being primary.
            if next.contact_id.as_ref().is_some_and(|c| !contact_ids.contains(c)) && self.contact_id.is_none() {
                next.contact_id = contact_ids.first().cloned();
            }
        }
        if let Some(contact_id) = &self.contact_id {
            next.contact_id = contact_id.clone();
        }
        next.contact_ids = with_primary(next.contact_ids, next.contact_id.as_deref());
        if let Some(assigned_user_id) = &self.assigned_user_id {
            next.assigned_user_id = assigned_user_id.clone();
        }
        if let Some(team_ids) = &self.team_ids {
            next.team_ids = team_ids.clone();
        }
        if let Some(is_internal) = self.is_internal {
            next.is_internal = is_internal;
        }
        let mut added_attachment_ids = Vec::new();
        if let Some(attachment_ids) = &self.attachment_ids {
            added_attachment_ids =
                attachment_ids.iter().filter(|a| !current.attachment_ids.contains(a)).cloned().collect();
            // Attachments are added, never silently dropped, by a patch.
            next.attachment_ids.extend(added_attachment_ids.iter().cloned());
        }

        Ok(AppliedPatch::between(current, next, added_attachment_ids))
    }
}

impl AppliedPatch {
    /// What changed from `current` to `next` (after a patch, and after the
    /// `case.before_save` rules changed it further).
    pub fn between(current: &Case, next: Case, added_attachment_ids: Vec<String>) -> AppliedPatch {
        let audited = audited_changes(current, &next);
        let assignee_changed = current.assigned_user_id != next.assigned_user_id;
        let changed = !same_stored_fields(current, &next);
        AppliedPatch { case: next, audited, assignee_changed, changed, added_attachment_ids }
    }
}

fn same_stored_fields(a: &Case, b: &Case) -> bool {
    let mut a_teams = a.team_ids.clone();
    let mut b_teams = b.team_ids.clone();
    a_teams.sort();
    b_teams.sort();
    a.name == b.name
        && a.description == b.description
        && a.status == b.status
        && a.priority == b.priority
        && a.case_type == b.case_type
        && a.account_id == b.account_id
        && a.contact_id == b.contact_id
        && a.contact_ids == b.contact_ids
        && a.assigned_user_id == b.assigned_user_id
        && a_teams == b_teams
        && a.is_internal == b.is_internal
        && a.attachment_ids == b.attachment_ids
}

/// The audited fields (see `domain.md`) that differ, assignee excepted.
pub fn audited_changes(old: &Case, new: &Case) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let mut push = |field: &'static str, old: Value, new: Value| {
        if old != new {
            changes.push(FieldChange { field, old, new });
        }
    };
    push("name", json!(old.name), json!(new.name));
    push("status", json!(old.status), json!(new.status));
    push("priority", json!(old.priority), json!(new.priority));
    push("type", json!(old.case_type), json!(new.case_type));
    push("account_id", json!(old.account_id), json!(new.account_id));
    // Contacts added or removed get Relate and Unrelate notes instead (see
    // `linked_contacts`); the primary contact is audited here.
    push("contact_id", json!(old.contact_id), json!(new.contact_id));
    push("is_internal", json!(old.is_internal), json!(new.is_internal));
    changes
}

/// Contacts linked and unlinked by a change: (added, removed), in order.
pub fn linked_contacts(old: &Case, new: &Case) -> (Vec<String>, Vec<String>) {
    let added = new.contact_ids.iter().filter(|c| !old.contact_ids.contains(c)).cloned().collect();
    let removed = old.contact_ids.iter().filter(|c| !new.contact_ids.contains(c)).cloned().collect();
    (added, removed)
}

/// The `data` of an `Update` note: the changed fields with old and new
/// values, in the shape EspoCRM uses (`fields`, `attributes.was/became`).
pub fn update_note_data(changes: &[FieldChange]) -> Value {
    let fields: Vec<&str> = changes.iter().map(|c| c.field).collect();
    let was: serde_json::Map<String, Value> = changes.iter().map(|c| (c.field.to_string(), c.old.clone())).collect();
    let became: serde_json::Map<String, Value> = changes.iter().map(|c| (c.field.to_string(), c.new.clone())).collect();
    json!({ "fields": fields, "attributes": { "was": was, "became": became } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> Case {
        let now = Utc::now();
        Case {
            id: "c".into(),
            number: 1,
            name: "Printer on fire".into(),
            status: CaseStatus::New,
            priority: CasePriority::Normal,
            case_type: None,
            description: None,
            account_id: None,
            contact_id: Some("k1".into()),
            contact_ids: vec!["k1".into(), "k2".into()],
            inbound_mailbox_id: None,
            is_internal: false,
            assigned_user_id: None,
            team_ids: vec![],
            attachment_ids: vec![],
            created_at: now,
            created_by_id: None,
            modified_at: now,
            modified_by_id: None,
            stream_updated_at: now,
            version: 1,
        }
    }

    #[test]
    fn new_case_gets_defaults_and_primary_contact_in_list() {
        let draft = NewCase { name: "  Hi ".into(), contact_id: Some("k9".into()), ..Default::default() }
            .validate()
            .expect("valid");
        assert_eq!(draft.name, "Hi");
        assert_eq!(draft.status, CaseStatus::New);
        assert_eq!(draft.priority, CasePriority::Normal);
        assert_eq!(draft.contact_ids, vec!["k9".to_string()]);

        let first_is_primary =
            NewCase { name: "x".into(), contact_ids: vec!["a".into(), "b".into()], ..Default::default() }
                .validate()
                .expect("valid");
        assert_eq!(first_is_primary.contact_id.as_deref(), Some("a"));
    }

    #[test]
    fn new_case_rejects_blank_and_overlong_names() {
        let blank = NewCase { name: "   ".into(), ..Default::default() }.validate().expect_err("blank");
        assert_eq!(blank.fields["name"], "required");
        let long = NewCase { name: "x".repeat(256), ..Default::default() }.validate().expect_err("long");
        assert!(long.fields["name"].contains("255"));
        assert!(NewCase { name: "é".repeat(255), ..Default::default() }.validate().is_ok());
    }

    #[test]
    fn patch_records_audited_changes_and_assignment_separately() {
        let patch = CasePatch {
            status: Some(CaseStatus::Closed),
            assigned_user_id: Some(Some("u1".into())),
            description: Some(Some("more".into())),
            ..Default::default()
        };
        let applied = patch.apply(&case()).expect("valid");
        assert!(applied.changed);
        assert!(applied.assignee_changed);
        assert_eq!(applied.audited.len(), 1);
        assert_eq!(applied.audited[0].field, "status");
        let data = update_note_data(&applied.audited);
        assert_eq!(data["attributes"]["was"]["status"], "New");
        assert_eq!(data["attributes"]["became"]["status"], "Closed");
    }

    #[test]
    fn dropping_the_primary_contact_promotes_the_next() {
        let patch = CasePatch { contact_ids: Some(vec!["k2".into()]), ..Default::default() };
        let applied = patch.apply(&case()).expect("valid");
        assert_eq!(applied.case.contact_id.as_deref(), Some("k2"));
        assert_eq!(applied.case.contact_ids, vec!["k2".to_string()]);

        let clear = CasePatch { contact_id: Some(None), ..Default::default() }.apply(&case()).expect("valid");
        assert_eq!(clear.case.contact_id, None);
        assert_eq!(clear.case.contact_ids.len(), 2);
    }

    #[test]
    fn empty_patch_changes_nothing() {
        let applied = CasePatch::default().apply(&case()).expect("valid");
        assert!(!applied.changed);
        assert!(applied.audited.is_empty());
    }

    #[test]
    fn absent_and_null_differ_in_patches() {
        let absent: CasePatch = serde_json::from_str("{}").expect("json");
        assert_eq!(absent.assigned_user_id, None);
        let null: CasePatch = serde_json::from_str(r#"{"assigned_user_id":null}"#).expect("json");
        assert_eq!(null.assigned_user_id, Some(None));
        let unknown = serde_json::from_str::<CasePatch>(r#"{"nmae":"x"}"#);
        assert!(unknown.is_err());
        let bad_status = serde_json::from_str::<CasePatch>(r#"{"status":"Open"}"#).expect_err("bad");
        assert!(bad_status.to_string().contains("Closed"), "{bad_status}");
    }

    #[test]
    fn open_means_not_closed_rejected_or_duplicate() {
        assert!(CaseStatus::Pending.is_open());
        assert!(!CaseStatus::Duplicate.is_open());
        assert!(CaseStatus::parse("Open").expect_err("bad").contains("New, Assigned"));
    }
}
