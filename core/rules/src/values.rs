//! Cases, notes and JSON as rhai values, and rhai values back as JSON.
//!
//! Times are whole seconds since 1970 (UTC) in scripts, so that date
//! arithmetic is plain integer arithmetic: `now() - ticket.created_at >
//! hours(4)`.

use chrono::{DateTime, Utc};
use docket_domain::Actor;
use docket_domain::case::{Case, FieldChange};
use docket_domain::note::Note;
use rhai::{Array, Dynamic, Map};
use serde_json::Value;

pub(crate) fn seconds(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

fn text(value: Option<&str>) -> Dynamic {
    value.map(|v| Dynamic::from(v.to_string())).unwrap_or(Dynamic::UNIT)
}

fn ids(values: &[String]) -> Dynamic {
    Dynamic::from_array(values.iter().map(|v| Dynamic::from(v.clone())).collect::<Array>())
}

/// The case as scripts see it (`ticket`).
pub(crate) fn case_map(case: &Case) -> Dynamic {
    let mut map = Map::new();
    map.insert("id".into(), Dynamic::from(case.id.clone()));
    map.insert("number".into(), Dynamic::from(case.number));
    map.insert("name".into(), Dynamic::from(case.name.clone()));
    map.insert("status".into(), Dynamic::from(case.status.as_str().to_string()));
    map.insert("priority".into(), Dynamic::from(case.priority.as_str().to_string()));
    map.insert("type".into(), text(case.case_type.map(|t| t.as_str())));
    map.insert("description".into(), text(case.description.as_deref()));
    map.insert("account_id".into(), text(case.account_id.as_deref()));
    map.insert("contact_id".into(), text(case.contact_id.as_deref()));
    map.insert("contact_ids".into(), ids(&case.contact_ids));
    map.insert("assigned_user_id".into(), text(case.assigned_user_id.as_deref()));
    map.insert("team_ids".into(), ids(&case.team_ids));
    map.insert("is_internal".into(), Dynamic::from(case.is_internal));
    map.insert("is_open".into(), Dynamic::from(case.status.is_open()));
    map.insert("inbound_mailbox_id".into(), text(case.inbound_mailbox_id.as_deref()));
    map.insert("created_at".into(), Dynamic::from(seconds(case.created_at)));
    map.insert("created_by_id".into(), text(case.created_by_id.as_deref()));
    map.insert("modified_at".into(), Dynamic::from(seconds(case.modified_at)));
    map.insert("stream_updated_at".into(), Dynamic::from(seconds(case.stream_updated_at)));
    Dynamic::from_map(map)
}

/// `changes`: field name to `#{ before, after }` (`new` is a reserved word
/// in rhai).
pub(crate) fn changes_map(changes: &[FieldChange]) -> Dynamic {
    let mut map = Map::new();
    for change in changes {
        let mut pair = Map::new();
        pair.insert("before".into(), json_to_dynamic(&change.old));
        pair.insert("after".into(), json_to_dynamic(&change.new));
        map.insert(change.field.into(), Dynamic::from_map(pair));
    }
    Dynamic::from_map(map)
}

pub(crate) fn note_map(note: &Note) -> Dynamic {
    let mut map = Map::new();
    map.insert("id".into(), Dynamic::from(note.id.clone()));
    map.insert("type".into(), Dynamic::from(note.note_type.as_str().to_string()));
    map.insert("post".into(), text(note.post.as_deref()));
    map.insert("is_internal".into(), Dynamic::from(note.is_internal));
    map.insert("author_id".into(), text(note.author_id.as_deref()));
    map.insert("created_at".into(), Dynamic::from(seconds(note.created_at)));
    Dynamic::from_map(map)
}

pub(crate) fn actor_map(actor: &Actor) -> Dynamic {
    let mut map = Map::new();
    map.insert("id".into(), Dynamic::from(actor.user_id.clone()));
    map.insert("username".into(), Dynamic::from(actor.username.clone()));
    map.insert("type".into(), Dynamic::from(actor.user_type.as_str().to_string()));
    map.insert("team_ids".into(), ids(&actor.team_ids));
    map.insert("contact_id".into(), text(actor.contact_id.as_deref()));
    map.insert("is_portal".into(), Dynamic::from(actor.is_portal()));
    Dynamic::from_map(map)
}

pub(crate) fn json_to_dynamic(value: &Value) -> Dynamic {
    rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT)
}

/// A script value as JSON; functions, timestamps and other host types are
/// refused with a message naming the type.
pub(crate) fn dynamic_to_json(value: &Dynamic) -> Result<Value, String> {
    rhai::serde::from_dynamic::<Value>(value).map_err(|e| format!("cannot use a {} here: {e}", value.type_name()))
}
