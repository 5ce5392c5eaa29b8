//! Stream notes: the timeline of a case.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NoteType {
    /// A message by a user; may be internal.
    Post,
    /// The case was created.
    Create,
    /// Audited fields changed; `data` holds old and new values.
    Update,
    /// The assignee changed.
    Assign,
    /// A contact was linked.
    Relate,
    /// A contact was unlinked.
    Unrelate,
    EmailReceived,
    EmailSent,
}

impl NoteType {
    pub const ALL: [NoteType; 8] = [
        NoteType::Post,
        NoteType::Create,
        NoteType::Update,
        NoteType::Assign,
        NoteType::Relate,
        NoteType::Unrelate,
        NoteType::EmailReceived,
        NoteType::EmailSent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoteType::Post => "Post",
            NoteType::Create => "Create",
            NoteType::Update => "Update",
            NoteType::Assign => "Assign",
            NoteType::Relate => "Relate",
            NoteType::Unrelate => "Unrelate",
            NoteType::EmailReceived => "EmailReceived",
            NoteType::EmailSent => "EmailSent",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|t| t.as_str() == value).ok_or_else(|| format!("unknown note type `{value}`"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub id: String,
    pub case_id: String,
    #[serde(rename = "type")]
    pub note_type: NoteType,
    pub post: Option<String>,
    pub data: serde_json::Value,
    pub is_internal: bool,
    pub author_id: Option<String>,
    pub attachment_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
}
