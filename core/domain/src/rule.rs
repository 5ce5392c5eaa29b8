//! Workflow rules as data: where they hook in, what they may do
//! (`RuleAction`), and what a run leaves behind (`RuleRun`).
//!
//! Scripts never touch the database. They return actions; the store
//! applies them in the transaction of the change that triggered them, so
//! a case and its rules' effects commit together (architecture.md,
//! principles 2 and 3).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::case::{Case, CasePriority, CaseStatus, CaseType, FieldChange, NAME_MAX};
use crate::listing::CaseFilter;
use crate::validation::{ValidationErrors, optional_text, required_text};

/// Longest rule name, in characters.
pub const RULE_NAME_MAX: usize = 100;
/// Longest script or condition, in characters.
pub const SCRIPT_MAX: usize = 100_000;
/// How deep rules may trigger rules (through their actions) by default.
pub const DEFAULT_DEPTH_LIMIT: u32 = 5;
/// Most cases one scheduled run may process, unless the rule says fewer.
pub const RUN_CAP_MAX: i64 = 10_000;

/// Where in the life of a case a rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Hook {
    /// Before a create or update commits: may change fields or reject.
    #[serde(rename = "case.before_save")]
    BeforeSave,
    #[serde(rename = "case.created")]
    Created,
    /// With the changed fields, old and new values.
    #[serde(rename = "case.updated")]
    Updated,
    #[serde(rename = "note.created")]
    NoteCreated,
    /// On a cron schedule, over the cases a filter selects (or none).
    #[serde(rename = "schedule")]
    Schedule,
    /// A button agents press on a case, shown while the condition holds.
    #[serde(rename = "manual")]
    Manual,
    /// Run only when another rule triggers it.
    #[serde(rename = "sequential")]
    Sequential,
    /// A message fetched from a group mailbox, before it is threaded or
    /// makes a case: may set the new case's fields or drop the message.
    #[serde(rename = "email.received")]
    EmailReceived,
}

impl Hook {
    pub const ALL: [Hook; 8] = [
        Hook::BeforeSave,
        Hook::Created,
        Hook::Updated,
        Hook::NoteCreated,
        Hook::Schedule,
        Hook::Manual,
        Hook::Sequential,
        Hook::EmailReceived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Hook::BeforeSave => "case.before_save",
            Hook::Created => "case.created",
            Hook::Updated => "case.updated",
            Hook::NoteCreated => "note.created",
            Hook::Schedule => "schedule",
            Hook::Manual => "manual",
            Hook::Sequential => "sequential",
            Hook::EmailReceived => "email.received",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|h| h.as_str() == value).ok_or_else(|| {
            format!("unknown hook `{value}`, expected one of: {}", Self::ALL.map(Self::as_str).join(", "))
        })
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub hook: Hook,
    /// A rhai expression; the script runs only when it is true.
    pub condition: Option<String>,
    /// Empty when the rule runs a plugin.
    pub script: String,
    /// A `rule` WASM plugin (by name) run instead of a script.
    pub plugin: Option<String>,
    /// Rules of a hook run in ascending position, then name.
    pub position: i64,
    pub enabled: bool,
    /// Cron expression (seconds first, as the `cron` crate reads it), for
    /// scheduled rules.
    pub schedule: Option<String>,
    /// Which cases a scheduled rule runs over (the filter of `find_cases`);
    /// without one it runs once per tick with no case.
    pub case_filter: Option<Value>,
    /// Most cases one scheduled run processes.
    pub run_cap: i64,
    pub version: i64,
    pub next_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

/// What an admin submits to create or replace a rule (also the format of
/// rule files).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub hook: String,
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub script: String,
    /// A `rule` plugin to run instead of a script.
    #[serde(default)]
    pub plugin: Option<String>,
    #[serde(default)]
    pub position: i64,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub case_filter: Option<Value>,
    #[serde(default)]
    pub run_cap: Option<i64>,
    /// The version the client last saw (updates only).
    #[serde(default)]
    pub version: Option<i64>,
}

fn enabled_default() -> bool {
    true
}

/// A rule input checked field by field (the script is compiled by the
/// rules engine, the schedule parsed by the store's scheduler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRule {
    pub name: String,
    pub description: Option<String>,
    pub hook: Hook,
    pub condition: Option<String>,
    pub script: String,
    pub plugin: Option<String>,
    pub position: i64,
    pub enabled: bool,
    pub schedule: Option<String>,
    pub case_filter: Option<Value>,
    pub run_cap: i64,
}

impl RuleInput {
    pub fn validate(&self) -> Result<ValidRule, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        required_text(&mut errors, "name", &self.name, RULE_NAME_MAX);
        if let Some(description) = &self.description {
            optional_text(&mut errors, "description", description, 2_000);
        }
        let hook = Hook::parse(&self.hook).map_err(|e| errors.add("hook", e)).ok();
        let condition = self.condition.as_deref().map(str::trim).filter(|c| !c.is_empty()).map(str::to_string);
        if let Some(condition) = &condition {
            optional_text(&mut errors, "condition", condition, SCRIPT_MAX);
        }
        if self.script.chars().count() > SCRIPT_MAX {
            errors.add("script", format!("at most {SCRIPT_MAX} characters"));
        }
        let schedule = self.schedule.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        match (hook, &schedule) {
            (Some(Hook::Schedule), None) => errors.add("schedule", "a scheduled rule needs a cron expression"),
            (Some(hook), Some(_)) if hook != Hook::Schedule => {
                errors.add("schedule", "only scheduled rules have a cron expression")
            }
            _ => {}
        }
        if self.case_filter.as_ref().is_some_and(|f| !f.is_object() && !f.is_null()) {
            errors.add("case_filter", "must be an object such as {\"status\": \"Pending\"}");
        }
        let run_cap = self.run_cap.unwrap_or(500);
        if !(1..=RUN_CAP_MAX).contains(&run_cap) {
            errors.add("run_cap", format!("must be between 1 and {RUN_CAP_MAX}"));
        }
        let plugin = self.plugin.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(str::to_string);
        match (&plugin, self.script.trim().is_empty()) {
            (None, true) => errors.add("script", "must not be empty (or name a plugin to run instead)"),
            (Some(_), false) => errors.add("plugin", "a rule runs a script or a plugin, not both"),
            _ => {}
        }
        errors.into_result()?;
        Ok(ValidRule {
            name: self.name.trim().to_string(),
            description: self.description.clone().filter(|d| !d.trim().is_empty()),
            hook: hook.expect("validated above"),
            condition,
            script: self.script.clone(),
            plugin,
            position: self.position,
            enabled: self.enabled,
            schedule,
            case_filter: self.case_filter.clone().filter(|f| !f.is_null()),
            run_cap,
        })
    }
}

impl ValidRule {
    /// The rule as if it were stored under `id` (dry runs of rules not
    /// saved yet, tests).
    pub fn unsaved(self, id: &str) -> Rule {
        let at = Utc::now();
        Rule {
            id: id.to_string(),
            name: self.name,
            description: self.description,
            hook: self.hook,
            condition: self.condition,
            script: self.script,
            plugin: self.plugin,
            position: self.position,
            enabled: self.enabled,
            schedule: self.schedule,
            case_filter: self.case_filter,
            run_cap: self.run_cap,
            version: 0,
            next_run_at: None,
            created_at: at,
            modified_at: at,
        }
    }
}

impl Rule {
    /// The rule as a file or API input (export).
    pub fn to_input(&self) -> RuleInput {
        RuleInput {
            name: self.name.clone(),
            description: self.description.clone(),
            hook: self.hook.as_str().to_string(),
            condition: self.condition.clone(),
            script: self.script.clone(),
            plugin: self.plugin.clone(),
            position: self.position,
            enabled: self.enabled,
            schedule: self.schedule.clone(),
            case_filter: self.case_filter.clone(),
            run_cap: Some(self.run_cap),
            version: None,
        }
    }
}

/// What a rule asks for. Every script and plugin produces these; one
/// applier in the store carries them out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RuleAction {
    /// Sets a case field (`name`, `status`, `priority`, `type`,
    /// `description`, `account_id`, `is_internal`).
    Set {
        field: String,
        value: Value,
    },
    /// Opens a new case; its `Create` note names the rule.
    CreateCase {
        case: NewRuleCase,
    },
    LinkContact {
        contact_id: String,
    },
    UnlinkContact {
        contact_id: String,
    },
    /// Assigns a user, or unassigns with `None`.
    Assign {
        user_id: Option<String>,
    },
    /// Assigns by a strategy (`round-robin`, `least-busy` or a plugin's)
    /// over the active users of a team, optionally with a position.
    AssignBy {
        strategy: String,
        team: String,
        position: Option<String>,
    },
    Note {
        text: String,
        internal: bool,
    },
    Follow {
        user_id: String,
    },
    Notify {
        user_ids: Vec<String>,
        message: String,
    },
    /// An email rendered from templates (tera) after commit.
    SendEmail {
        to: Vec<String>,
        subject: String,
        body: String,
    },
    HttpRequest {
        method: String,
        url: String,
        headers: BTreeMap<String, String>,
        body: Option<String>,
        timeout_seconds: u64,
    },
    /// Runs another rule (by name) on the same case.
    Trigger {
        rule: String,
    },
    /// Refuses the save (`case.before_save` only); the message reaches
    /// the user.
    Reject {
        message: String,
    },
    /// Drops the message being received (`email.received` only): it makes
    /// no case and no note; the reason is kept with the message.
    DropEmail {
        reason: String,
    },
}

impl RuleAction {
    pub fn kind(&self) -> &'static str {
        match self {
            RuleAction::Set { .. } => "set",
            RuleAction::CreateCase { .. } => "create_case",
            RuleAction::LinkContact { .. } => "link_contact",
            RuleAction::UnlinkContact { .. } => "unlink_contact",
            RuleAction::Assign { .. } => "assign",
            RuleAction::AssignBy { .. } => "assign_by",
            RuleAction::Note { .. } => "note",
            RuleAction::Follow { .. } => "follow",
            RuleAction::Notify { .. } => "notify",
            RuleAction::SendEmail { .. } => "send_email",
            RuleAction::HttpRequest { .. } => "http_request",
            RuleAction::Trigger { .. } => "trigger",
            RuleAction::Reject { .. } => "reject",
            RuleAction::DropEmail { .. } => "drop_email",
        }
    }
}

/// A case a rule opens. Status defaults to `New` (`Assigned` with an
/// assignee), priority to `Normal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRuleCase {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default, rename = "type")]
    pub case_type: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub contact_ids: Vec<String>,
    #[serde(default)]
    pub team_ids: Vec<String>,
    #[serde(default)]
    pub assigned_user_id: Option<String>,
}

impl NewRuleCase {
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = ValidationErrors::new();
        required_text(&mut errors, "name", &self.name, NAME_MAX);
        errors.into_result().map_err(|e| e.to_string())
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The condition held and the actions were applied.
    Applied,
    /// The condition did not hold: nothing ran.
    ConditionFalse,
    /// The script or an action failed; nothing of this run was applied.
    Failed,
    /// The rule was not run: rules triggered rules too deeply.
    DepthLimit,
    /// The save was refused.
    Rejected,
    /// A dry run: the actions were shown, not applied.
    DryRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::ConditionFalse => "condition_false",
            Outcome::Failed => "failed",
            Outcome::DepthLimit => "depth_limit",
            Outcome::Rejected => "rejected",
            Outcome::DryRun => "dry_run",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        [
            Outcome::Applied,
            Outcome::ConditionFalse,
            Outcome::Failed,
            Outcome::DepthLimit,
            Outcome::Rejected,
            Outcome::DryRun,
        ]
        .into_iter()
        .find(|o| o.as_str() == value)
        .ok_or_else(|| format!("unknown outcome `{value}`"))
    }
}

/// One run of one rule, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRun {
    pub id: String,
    pub rule_id: Option<String>,
    pub rule_name: String,
    pub case_id: Option<String>,
    pub case_number: Option<i64>,
    pub hook: String,
    pub depth: u32,
    pub outcome: Outcome,
    /// `None` when the rule has no condition.
    pub condition_held: Option<bool>,
    pub actions: Vec<RuleAction>,
    /// What the script printed or logged.
    pub log: Vec<String>,
    pub error: Option<String>,
    pub duration_us: i64,
    pub started_at: DateTime<Utc>,
}

/// Every field that differs between two versions of a case, for
/// `case.updated` rules (`changes`): the audited ones and the rest.
pub fn all_changes(old: &Case, new: &Case) -> Vec<FieldChange> {
    let mut changes = crate::case::audited_changes(old, new);
    let mut push = |field: &'static str, old: Value, new: Value| {
        if old != new {
            changes.push(FieldChange { field, old, new });
        }
    };
    push("description", Value::from(old.description.clone()), Value::from(new.description.clone()));
    push("assigned_user_id", Value::from(old.assigned_user_id.clone()), Value::from(new.assigned_user_id.clone()));
    let sorted = |ids: &[String]| {
        let mut ids = ids.to_vec();
        ids.sort();
        Value::from(ids)
    };
    push("team_ids", sorted(&old.team_ids), sorted(&new.team_ids));
    push("contact_ids", sorted(&old.contact_ids), sorted(&new.contact_ids));
    changes
}

/// Which cases `find_cases`, `count_cases` and scheduled rules select.
/// Times are seconds since 1970 (UTC), as in scripts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    #[serde(default, deserialize_with = "one_or_many")]
    pub status: Vec<String>,
    #[serde(default)]
    pub open: Option<bool>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub priority: Vec<String>,
    #[serde(default, rename = "type")]
    pub case_type: Option<String>,
    #[serde(default)]
    pub assigned_user_id: Option<String>,
    /// Only cases nobody is assigned to.
    #[serde(default)]
    pub unassigned: Option<bool>,
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub contact_id: Option<String>,
    /// Text in the name, number or description.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub created_before: Option<i64>,
    #[serde(default)]
    pub created_after: Option<i64>,
    #[serde(default)]
    pub modified_before: Option<i64>,
    #[serde(default)]
    pub modified_after: Option<i64>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(value)) => vec![value],
        Some(OneOrMany::Many(values)) => values,
    })
}

impl CaseQuery {
    /// Reads a query from JSON; unknown keys and bad values are errors
    /// that name them.
    pub fn from_json(value: &Value) -> Result<CaseQuery, String> {
        let query: CaseQuery = serde_json::from_value(value.clone()).map_err(|e| format!("case filter: {e}"))?;
        query.filter()?;
        Ok(query)
    }

    /// The list filter for the fields lists share; times are applied by
    /// the store on top.
    pub fn filter(&self) -> Result<CaseFilter, String> {
        let statuses = self.status.iter().map(|s| CaseStatus::parse(s)).collect::<Result<Vec<_>, _>>()?;
        let priorities = self.priority.iter().map(|p| CasePriority::parse(p)).collect::<Result<Vec<_>, _>>()?;
        let case_type = self.case_type.as_deref().map(CaseType::parse).transpose()?;
        Ok(CaseFilter {
            statuses,
            open: self.open,
            priorities,
            case_type,
            assigned_user_id: self.assigned_user_id.clone(),
            team_id: self.team_id.clone(),
            account_id: self.account_id.clone(),
            contact_id: self.contact_id.clone(),
            q: self.text.clone().filter(|t| !t.trim().is_empty()),
            ..CaseFilter::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(hook: &str) -> RuleInput {
        RuleInput {
            name: "r".into(),
            hook: hook.into(),
            script: "print(1)".into(),
            enabled: true,
            ..Default::default()
        }
    }

    #[test]
    fn hooks_round_trip_through_their_names() {
        for hook in Hook::ALL {
            assert_eq!(Hook::parse(hook.as_str()), Ok(hook));
            let json = serde_json::to_string(&hook).expect("serialises");
            assert_eq!(json, format!("\"{}\"", hook.as_str()));
        }
        assert!(Hook::parse("case.deleted").expect_err("fails").contains("case.created"));
    }

    #[test]
    fn scheduled_rules_need_a_schedule_and_others_refuse_one() {
        let errors = input("schedule").validate().expect_err("fails");
        assert!(errors.to_string().contains("schedule"), "{errors}");
        let mut created = input("case.created");
        created.schedule = Some("0 0 * * * *".into());
        assert!(created.validate().expect_err("fails").to_string().contains("only scheduled rules"));
        let mut scheduled = input("schedule");
        scheduled.schedule = Some("0 0 * * * *".into());
        assert_eq!(scheduled.validate().expect("valid").run_cap, 500);
    }

    #[test]
    fn blank_conditions_mean_none_and_run_caps_are_bounded() {
        let mut rule = input("case.created");
        rule.condition = Some("   ".into());
        assert_eq!(rule.validate().expect("valid").condition, None);
        rule.run_cap = Some(0);
        assert!(rule.validate().is_err());
    }

    #[test]
    fn actions_serialise_as_tagged_objects() {
        let action = RuleAction::AssignBy { strategy: "round-robin".into(), team: "Support".into(), position: None };
        let json = serde_json::to_value(&action).expect("serialises");
        assert_eq!(json["action"], "assign_by");
        assert_eq!(serde_json::from_value::<RuleAction>(json).expect("parses"), action);
    }

    #[test]
    fn case_queries_take_one_value_or_many_and_name_bad_ones() {
        let query = CaseQuery::from_json(&serde_json::json!({ "status": "Pending", "priority": ["High", "Urgent"] }))
            .expect("valid");
        let filter = query.filter().expect("valid");
        assert_eq!(filter.statuses, vec![CaseStatus::Pending]);
        assert_eq!(filter.priorities.len(), 2);
        assert!(CaseQuery::from_json(&serde_json::json!({ "status": "Lost" })).expect_err("fails").contains("Lost"));
        assert!(CaseQuery::from_json(&serde_json::json!({ "colour": "red" })).expect_err("fails").contains("colour"));
    }
}
