//! Agents' email replies from a case: an `EmailSent` note and an outbox
//! job in one transaction, so a reply is sent exactly when its note
//! exists. The reply's Message-ID names the case and is remembered, so
//! the customer's answer threads back onto the case.

use docket_domain::Actor;
use docket_domain::access::{Action, Scope};
use docket_domain::ids::new_id;
use docket_domain::note::{NewEmailReply, Note, NoteType};

use docket_email::inbound::{docket_message_id, subject_case_number};
use serde_json::json;
use tracing::instrument;

use crate::cases::{AttachmentOwner, check_attachments, load_case};
use crate::db::Tx;
use crate::hooks::Effects;
use crate::inbound::{link_email_attachments, remember};
use crate::jobs::{NewJob, enqueue};
use crate::rows::enforce;
use crate::stream::{FanOut, insert_note_row, notify_followers};
use crate::{Result, Store, StoreError, now};

/// The job that sends an agent's reply.
pub const EMAIL_REPLY_JOB: &str = "email_reply";

/// What the job needs to send a reply.
#[derive(Debug, Clone)]
pub struct EmailReplyFacts {
    pub case_id: String,
    pub case_number: i64,
    pub note_id: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub body: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    /// The group mailbox replies go back to, if any.
    pub mailbox_id: Option<String>,
    /// (name, content type, storage key) of each attached file.
    pub attachments: Vec<(String, String, String)>,
}

impl Store {
    /// Sends an email from a case (staff who may read it). Recipients
    /// default to the case's contacts; the subject keeps `[#number]`.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn send_email_reply(&self, actor: &Actor, case_id: &str, mut reply: NewEmailReply) -> Result<Note> {
        if !actor.is_staff() {
            return Err(StoreError::Forbidden("customers answer in the portal or by email".into()));
        }
        reply.validate()?;
        let mut effects = Effects::default();
        let result = async {
            let mut tx = self.pools.write().await?;
            let note = self.send_email_reply_in(&mut tx, actor, case_id, reply, &mut effects).await?;
            Ok((tx, note))
        }
        .await;
        let (tx, note) = self.settle(result, &mut effects).await?;
        self.finish(tx, effects).await?;
        Ok(note)
    }

    async fn send_email_reply_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        case_id: &str,
        reply: NewEmailReply,
        effects: &mut Effects,
    ) -> Result<Note> {
        let case = load_case(tx, "c.id = $1", case_id, false).await?;
        enforce(actor.decide(Scope::Case, Action::Read, &case.ownership()), "email from this case")?;
        check_attachments(tx, actor, &reply.attachment_ids, AttachmentOwner::New).await?;
        let (mut to, mut cc) = (reply.to, reply.cc);
        if to.is_empty() {
            let contacts = contact_addresses(tx, &case.id).await?;
            let mut addresses = contacts.into_iter();
            to.extend(addresses.next());
            if cc.is_empty() {
                cc.extend(addresses);
            }
        }
        if to.is_empty() {
            return Err(StoreError::invalid("to", "the case has no contact with an email address; give `to`"));
        }
        let subject = match reply.subject.trim() {
            "" => format!("[#{}] {}", case.number, case.name),
            given if subject_case_number(given) == Some(case.number) => given.to_string(),
            given => format!("[#{}] {given}", case.number),
        };
        // Replies go back to the mailbox the case came in through, or the
        // first active one.
        let mut mailbox = match &case.inbound_mailbox_id {
            Some(id) => {
                tx.query("SELECT id, email_address FROM mailboxes WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional()
                    .await?
            }
            None => None,
        };
        if mailbox.is_none() {
            mailbox = tx
                .query("SELECT id, email_address FROM mailboxes WHERE is_active = $1 ORDER BY created_at, id LIMIT 1")
                .bind(true)
                .fetch_optional()
                .await?;
        }
        let (mailbox_id, domain) = match mailbox {
            Some(row) => {
                let address: String = row.get("email_address")?;
                (Some(row.get::<String>("id")?), address.rsplit('@').next().unwrap_or("docket.invalid").to_string())
            }
            None => (None, "docket.invalid".to_string()),
        };
        let in_reply_to: Option<String> = tx
            .query(
                "SELECT message_id FROM email_messages WHERE case_id = $1 AND direction = 'in' \
                 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(case.id.as_str())
            .fetch_optional()
            .await?
            .map(|row| row.get("message_id"))
            .transpose()?;
        let at = now();
        let note_id = new_id();
        let message_id = docket_message_id(&case.id, &format!("reply-{note_id}"), &domain);
        let note = Note {
            id: note_id,
            case_id: case.id.clone(),
            note_type: NoteType::EmailSent,
            post: Some(reply.body.trim().to_string()).filter(|b| !b.is_empty()),
            data: json!({
                "to": to, "cc": cc, "subject": subject, "message_id": message_id,
                "in_reply_to": in_reply_to, "mailbox_id": mailbox_id,
            }),
            is_internal: false,
            author_id: Some(actor.user_id.clone()),
            attachment_ids: reply.attachment_ids.clone(),
            created_at: at,
        };
        insert_note_row(tx, &note).await?;
        link_email_attachments(tx, &note).await?;
        remember(tx, &message_id, &case.id, "out").await?;
        let job = NewJob {
            kind: EMAIL_REPLY_JOB,
            payload: json!({ "note_id": note.id }),
            run_at: at,
            idempotency_key: Some(format!("email-reply:{}", note.id)),
        };
        enqueue(tx, &job).await?;
        // Followers hear of it in the app; the customer gets the email itself.
        let fan_out = FanOut {
            note_id: &note.id,
            note_type: NoteType::EmailSent,
            is_internal: false,
            author_id: Some(&actor.user_id),
            emailed: false,
        };
        notify_followers(tx, &case, &fan_out, self.email_delay).await?;
        self.note_written(tx, &case, &note, actor, 0, effects).await?;
        Ok(note)
    }

    /// The facts of a reply to send, or `None` when its note is gone.
    pub async fn email_reply(&self, note_id: &str) -> Result<Option<EmailReplyFacts>> {
        let mut tx = self.pools.read().await?;
        let row = tx
            .query(
                "SELECT n.id, n.case_id, n.post, n.data, c.number FROM notes n JOIN cases c ON c.id = n.case_id \
                 WHERE n.id = $1 AND n.note_type = 'EmailSent'",
            )
            .bind(note_id)
            .fetch_optional()
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let data: serde_json::Value = crate::rows::json_column(&row, "data")?;
        let strings = |key: &str| -> Vec<String> {
            data[key]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let text = |key: &str| data[key].as_str().map(str::to_string);
        let attachments = tx
            .query("SELECT name, content_type, storage_key FROM attachments WHERE note_id = $1 ORDER BY created_at, id")
            .bind(note_id)
            .fetch_all()
            .await?
            .iter()
            .map(|r| Ok((r.get("name")?, r.get("content_type")?, r.get("storage_key")?)))
            .collect::<Result<Vec<_>>>()?;
        let facts = EmailReplyFacts {
            case_id: row.get("case_id")?,
            case_number: row.get("number")?,
            note_id: row.get("id")?,
            to: strings("to"),
            cc: strings("cc"),
            subject: text("subject").unwrap_or_default(),
            body: row.get::<Option<String>>("post")?.unwrap_or_default(),
            message_id: text("message_id").unwrap_or_default(),
            in_reply_to: text("in_reply_to"),
            mailbox_id: text("mailbox_id"),
            attachments,
        };
        tx.commit().await?;
        Ok(Some(facts))
    }
}

/// The first address of each of the case's contacts, primary first.
async fn contact_addresses(tx: &mut Tx, case_id: &str) -> Result<Vec<String>> {
    let rows = tx
        .query(
            "SELECT (SELECT ce.email FROM contact_emails ce WHERE ce.contact_id = cc.contact_id \
             ORDER BY ce.position LIMIT 1) AS email FROM case_contacts cc WHERE cc.case_id = $1 ORDER BY cc.position",
        )
        .bind(case_id)
        .fetch_all()
        .await?;
    let mut addresses = Vec::new();
    for row in rows {
        if let Some(email) = row.get::<Option<String>>("email")?
            && !addresses.contains(&email)
        {
            addresses.push(email);
        }
    }
    Ok(addresses)
}
