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

/// How long an author may edit their post.
pub const EDIT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// How long an author may delete their post.
pub const DELETE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(30);
/// Longest post, in characters.
pub const POST_MAX: usize = 100_000;

/// A post as a client sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPost {
    #[serde(default)]
    pub post: String,
    #[serde(default)]
    pub is_internal: bool,
    #[serde(default)]
    pub attachment_ids: Vec<String>,
}

impl NewPost {
    /// A post needs text or attachments; only staff post internal notes.
    pub fn validate(&self, is_staff: bool) -> Result<(), crate::ValidationErrors> {
        let mut errors = crate::ValidationErrors::new();
        if self.post.trim().is_empty() && self.attachment_ids.is_empty() {
            errors.add("post", "required (or attach a file)");
        }
        crate::validation::optional_text(&mut errors, "post", &self.post, POST_MAX);
        crate::validation::id_list(&mut errors, "attachment_ids", &self.attachment_ids);
        if self.is_internal && !is_staff {
            errors.add("is_internal", "portal users cannot post internal notes");
        }
        errors.into_result()
    }
}

/// An agent's email from a case: sent to the customer through the outbox,
/// recorded as an `EmailSent` note.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEmailReply {
    /// Recipients; empty: the case's primary contact.
    #[serde(default)]
    pub to: Vec<String>,
    /// Copies; when `to` is empty too, the case's other contacts.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Empty: `[#number] name`. The `[#number]` tag is always kept.
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub attachment_ids: Vec<String>,
}

impl NewEmailReply {
    /// Text or attachments, one-line subject, real addresses (lower-cased).
    pub fn validate(&mut self) -> Result<(), crate::ValidationErrors> {
        let mut errors = crate::ValidationErrors::new();
        if self.body.trim().is_empty() && self.attachment_ids.is_empty() {
            errors.add("body", "required (or attach a file)");
        }
        crate::validation::optional_text(&mut errors, "body", &self.body, POST_MAX);
        if self.subject.contains(['\r', '\n']) || self.subject.chars().count() > 900 {
            errors.add("subject", "one line, at most 900 characters");
        }
        for (field, list) in [("to", &mut self.to), ("cc", &mut self.cc)] {
            for address in list.iter_mut() {
                *address = address.trim().to_lowercase();
                if !crate::validation::is_email(address) || address.contains(['<', '>', ',', ';', '"']) {
                    errors.add(field, format!("`{address}` is not a valid email address"));
                }
            }
            if list.len() > 50 {
                errors.add(field, "at most 50 addresses");
            }
        }
        crate::validation::id_list(&mut errors, "attachment_ids", &self.attachment_ids);
        errors.into_result()
    }
}

/// An edit of a post's text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostEdit {
    pub post: String,
}

/// The `@username` mentions in a post, lowercased, each once, in order.
/// A mention starts at the text's start or after a character that cannot
/// be part of an email address, so `ann@example.com` mentions nobody.
pub fn mentions(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c != '@' {
            continue;
        }
        let starts_word = i == 0 || !(chars[i - 1].is_alphanumeric() || "._-".contains(chars[i - 1]));
        if !starts_word {
            continue;
        }
        let name: String = chars[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(**c))
            .collect::<String>()
            .trim_end_matches(['.', '-', '_'])
            .to_lowercase();
        if !name.is_empty() && !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

/// Whether `at` is still within `window` of `created_at`.
pub fn within(created_at: DateTime<Utc>, window: chrono::TimeDelta, at: DateTime<Utc>) -> bool {
    at - created_at <= window
}

/// An in-app notification: a note on a followed case, or a mention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub case_id: String,
    pub case_number: i64,
    pub case_name: String,
    pub note_id: String,
    /// `note` (a followed case changed) or `mention`.
    pub kind: String,
    pub note_type: NoteType,
    pub author_id: Option<String>,
    /// The assignee's notification of a Create or Assign note.
    pub is_highlighted: bool,
    pub is_read: bool,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_find_usernames_not_email_addresses() {
        assert_eq!(mentions("@Ann please ask @bob.smith, cc @ann."), vec!["ann", "bob.smith"]);
        assert!(mentions("mail ann@example.com").is_empty());
        assert!(mentions("@ alone").is_empty());
    }

    #[test]
    fn posts_need_text_or_files_and_portal_posts_are_public() {
        assert!(NewPost { post: "  ".into(), ..Default::default() }.validate(true).is_err());
        assert!(
            NewPost { post: String::new(), attachment_ids: vec!["a".into()], ..Default::default() }
                .validate(true)
                .is_ok()
        );
        let internal = NewPost { post: "x".into(), is_internal: true, ..Default::default() };
        assert!(internal.validate(true).is_ok());
        assert!(internal.validate(false).expect_err("portal").fields.contains_key("is_internal"));
    }

    #[test]
    fn windows_are_inclusive() {
        let created = Utc::now();
        assert!(within(created, EDIT_WINDOW, created + chrono::TimeDelta::days(7)));
        assert!(!within(created, EDIT_WINDOW, created + chrono::TimeDelta::days(8)));
    }
}
