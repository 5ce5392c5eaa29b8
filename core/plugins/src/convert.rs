//! Between Docket's records and the types generated for WIT 0.1.0.

use std::collections::BTreeMap;

use docket_domain::assignment::Choice;
use docket_domain::rule::{NewRuleCase, RuleAction};

use crate::PluginError;
use crate::bindings::v0_1_0::types as wit;
use crate::records::{
    AssignmentRequest, CaseSnapshot, EmailDecision, EmailFields, ParsedEmail, RuleEvent, StepInput, StepOutput,
};

pub(crate) fn snapshot_to_wit(case: &CaseSnapshot) -> wit::CaseSnapshot {
    wit::CaseSnapshot {
        id: case.id.clone(),
        number: case.number,
        name: case.name.clone(),
        status: case.status.clone(),
        priority: case.priority.clone(),
        case_type: case.case_type.clone(),
        description: case.description.clone(),
        account_id: case.account_id.clone(),
        account_name: case.account_name.clone(),
        contact_id: case.contact_id.clone(),
        contact_ids: case.contact_ids.clone(),
        assigned_user_id: case.assigned_user_id.clone(),
        team_ids: case.team_ids.clone(),
        is_internal: case.is_internal,
        created_at: case.created_at.clone(),
        modified_at: case.modified_at.clone(),
    }
}

pub(crate) fn event_to_wit(event: &RuleEvent) -> wit::Event {
    wit::Event {
        hook: event.hook.clone(),
        case: event.case.as_ref().map(snapshot_to_wit),
        changes: event
            .changes
            .iter()
            .map(|c| wit::FieldChange {
                field: c.field.clone(),
                before: c.before.to_string(),
                after: c.after.to_string(),
            })
            .collect(),
        note: event.note.as_ref().map(|n| wit::Note {
            id: n.id.clone(),
            note_type: n.note_type.clone(),
            post: n.post.clone(),
            is_internal: n.is_internal,
            author_id: n.author_id.clone(),
            created_at: n.created_at.clone(),
        }),
        actor: wit::Actor {
            id: event.actor.id.clone(),
            username: event.actor.username.clone(),
            user_type: event.actor.user_type.clone(),
        },
    }
}

pub(crate) fn assignment_to_wit(request: &AssignmentRequest) -> wit::AssignmentInput {
    wit::AssignmentInput {
        team_id: request.team_id.clone(),
        team_name: request.team_name.clone(),
        position: request.position.clone(),
        candidates: request
            .candidates
            .iter()
            .map(|c| wit::Candidate {
                user_id: c.user_id.clone(),
                username: c.username.clone(),
                open_cases: c.open_cases,
            })
            .collect(),
        case: request.case.as_ref().map(snapshot_to_wit),
    }
}

/// A choice must name one of the candidates.
pub(crate) fn choice_from_wit(
    request: &AssignmentRequest,
    choice: Option<wit::AssignmentChoice>,
) -> Result<Option<Choice>, PluginError> {
    let Some(choice) = choice else { return Ok(None) };
    if !request.candidates.iter().any(|c| c.user_id == choice.user_id) {
        return Err(PluginError::BadOutput(format!("chose `{}`, who is not one of the candidates", choice.user_id)));
    }
    Ok(Some(Choice { user_id: choice.user_id, reason: choice.reason }))
}

fn address_to_wit(address: &crate::records::Address) -> wit::Address {
    wit::Address { name: address.name.clone(), email: address.email.clone() }
}

pub(crate) fn email_to_wit(email: &ParsedEmail) -> wit::ParsedEmail {
    wit::ParsedEmail {
        message_id: email.message_id.clone(),
        sender: address_to_wit(&email.sender),
        to: email.to.iter().map(address_to_wit).collect(),
        cc: email.cc.iter().map(address_to_wit).collect(),
        subject: email.subject.clone(),
        text: email.text.clone(),
        headers: email.headers.clone(),
        mailbox: email.mailbox.clone(),
    }
}

pub(crate) fn decision_from_wit(decision: wit::EmailDecision) -> Result<EmailDecision, PluginError> {
    Ok(match decision {
        wit::EmailDecision::Keep => EmailDecision::Keep,
        wit::EmailDecision::Drop(reason) => EmailDecision::Drop { reason },
        wit::EmailDecision::Rewrite(fields) => EmailDecision::Rewrite(EmailFields {
            subject: fields.subject,
            description: fields.description,
            priority: fields.priority,
            case_type: fields.case_type,
            actions: actions_from_wit(fields.actions)?,
        }),
    })
}

pub(crate) fn step_to_wit(input: &StepInput) -> wit::StepInput {
    wit::StepInput {
        process: input.process.clone(),
        step: input.step.clone(),
        case: snapshot_to_wit(&input.case),
        variables: if input.variables.is_null() { "{}".to_string() } else { input.variables.to_string() },
    }
}

pub(crate) fn step_from_wit(output: wit::StepOutput) -> Result<StepOutput, PluginError> {
    let variables: serde_json::Value = serde_json::from_str(&output.variables)
        .map_err(|e| PluginError::BadOutput(format!("`variables` is not JSON: {e}")))?;
    if !variables.is_object() {
        return Err(PluginError::BadOutput("`variables` must be a JSON object".into()));
    }
    Ok(StepOutput { actions: actions_from_wit(output.actions)?, variables, outcome: output.outcome })
}

/// A plugin returns at most this many actions per call.
pub const MAX_ACTIONS: usize = 100;

pub(crate) fn actions_from_wit(actions: Vec<wit::Action>) -> Result<Vec<RuleAction>, PluginError> {
    if actions.len() > MAX_ACTIONS {
        return Err(PluginError::BadOutput(format!("{} actions; at most {MAX_ACTIONS} per call", actions.len())));
    }
    actions.into_iter().map(action_from_wit).collect()
}

fn action_from_wit(action: wit::Action) -> Result<RuleAction, PluginError> {
    Ok(match action {
        wit::Action::Set(set) => {
            let value = serde_json::from_str(&set.value).map_err(|e| {
                PluginError::BadOutput(format!("set `{}`: the value `{}` is not JSON ({e})", set.field, set.value))
            })?;
            RuleAction::Set { field: set.field, value }
        }
        wit::Action::CreateCase(case) => RuleAction::CreateCase {
            case: NewRuleCase {
                name: case.name,
                description: case.description,
                status: case.status,
                priority: case.priority,
                case_type: case.case_type,
                account_id: case.account_id,
                contact_ids: case.contact_ids,
                team_ids: case.team_ids,
                assigned_user_id: case.assigned_user_id,
            },
        },
        wit::Action::LinkContact(contact_id) => RuleAction::LinkContact { contact_id },
        wit::Action::UnlinkContact(contact_id) => RuleAction::UnlinkContact { contact_id },
        wit::Action::Assign(user_id) => RuleAction::Assign { user_id: Some(user_id) },
        wit::Action::Unassign => RuleAction::Assign { user_id: None },
        wit::Action::AssignBy(by) => {
            RuleAction::AssignBy { strategy: by.strategy, team: by.team, position: by.position }
        }
        wit::Action::PostNote(text) => RuleAction::Note { text, internal: false },
        wit::Action::InternalNote(text) => RuleAction::Note { text, internal: true },
        wit::Action::Follow(user_id) => RuleAction::Follow { user_id },
        wit::Action::Notify(notify) => RuleAction::Notify { user_ids: notify.user_ids, message: notify.message },
        wit::Action::SendEmail(email) => {
            RuleAction::SendEmail { to: email.to, subject: email.subject, body: email.body }
        }
        wit::Action::HttpRequest(request) => RuleAction::HttpRequest {
            method: request.method,
            url: request.url,
            headers: request.headers.into_iter().collect::<BTreeMap<_, _>>(),
            body: request.body,
            timeout_seconds: u64::from(request.timeout_seconds),
        },
        wit::Action::Trigger(rule) => RuleAction::Trigger { rule },
        wit::Action::Reject(message) => RuleAction::Reject { message },
    })
}
