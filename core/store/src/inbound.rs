//! Email-to-case: one fetched message becomes a case, a note on a case,
//! or a recorded reason why not, in one transaction (domain.md,
//! "Email-to-case"). The message row is keyed by (mailbox, UIDVALIDITY,
//! UID), so fetching a message twice (after a crash) ingests it once; the
//! Message-ID key of `email_messages` makes one message one case, however
//! many mailboxes and nodes see it.

use chrono::{DateTime, Utc};
use docket_domain::Actor;
use docket_domain::case::{Case, CaseDraft, CasePatch, CasePriority, CaseStatus, CaseType, DESCRIPTION_MAX, NAME_MAX};
use docket_domain::contact::Contact;
use docket_domain::ids::new_id;
use docket_domain::listing::{Page, Window};
use docket_domain::note::{Note, NoteType};

use docket_email::inbound::{InboundEmail, docket_case_id, subject_case_number, without_quoted_history};
use serde::Serialize;
use serde_json::json;
use tracing::instrument;

use crate::attachments::{AttachmentRecord, NewAttachment, insert_attachment};
use crate::cases::{load_case, load_case_by_number, pending_case};
use crate::contacts::insert_contact_row;
use crate::db::{Row, Sql, Tx};
use crate::hooks::Effects;
use crate::jobs::{NewJob, enqueue};
use crate::mailboxes::{Mailbox, load_mailbox};
use crate::rows::existing_ids;
use crate::stream::{FanOut, contact_portal_users, insert_note_row, notify_followers};
use crate::users::require_admin;
use crate::{Result, Store, StoreError, now};

/// The job that sends a mailbox's auto-reply to a new case's sender.
pub const AUTO_REPLY_JOB: &str = "email_auto_reply";

/// At most this many auto-replies to one address per [`AUTO_REPLY_WINDOW`].
pub const AUTO_REPLY_LIMIT: i64 = 5;
pub const AUTO_REPLY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(2);

/// A message fetched from a mailbox, with its attachments' files already
/// written (in the order of the parsed message's attachments).
pub struct FetchedEmail<'a> {
    pub mailbox_id: &'a str,
    pub uid_validity: u32,
    pub uid: u32,
    pub raw: &'a [u8],
    /// The parsed message, or why it could not be parsed.
    pub parsed: &'a std::result::Result<InboundEmail, String>,
    pub files: Vec<NewAttachment>,
    /// Set when an admin retries a quarantined message: its row.
    pub retry_of: Option<String>,
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Ingested {
    /// This UID was ingested before (a fetch repeated after a crash).
    Again,
    /// A new case.
    Case { case_id: String, number: i64 },
    /// A note on the case it replies to.
    Note { case_id: String, number: i64, reopened: bool },
    /// The same message arrived before (another mailbox, or this one
    /// again after its folder was recreated); the case it made, if any.
    Duplicate { case_id: Option<String> },
    /// Sent by a machine: no case, no auto-reply.
    Automatic { reason: String },
    /// One of Docket's own messages coming back.
    Own,
    /// Nothing to thread onto, and the mailbox creates no cases.
    Ignored { reason: String },
    /// An `email.received` rule (or email parser) dropped it.
    Dropped { reason: String },
    /// Could not be read or processed; waits for an admin.
    Quarantined { reason: String },
}

impl Ingested {
    /// Whether the attachment files were linked (else they may go).
    pub fn kept_files(&self) -> bool {
        matches!(self, Ingested::Case { .. } | Ingested::Note { .. })
    }

    /// The status the message is listed with.
    pub fn status(&self) -> &'static str {
        match self {
            Ingested::Again => "again",
            Ingested::Case { .. } => "case",
            Ingested::Note { .. } => "note",
            Ingested::Duplicate { .. } => "duplicate",
            Ingested::Automatic { .. } => "automatic",
            Ingested::Own => "own",
            Ingested::Ignored { .. } => "ignored",
            Ingested::Dropped { .. } => "dropped",
            Ingested::Quarantined { .. } => "quarantined",
        }
    }

    /// Why it made no case or note, when it did not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Ingested::Automatic { reason }
            | Ingested::Ignored { reason }
            | Ingested::Dropped { reason }
            | Ingested::Quarantined { reason } => Some(reason),
            _ => None,
        }
    }

    fn case_id(&self) -> Option<&str> {
        match self {
            Ingested::Case { case_id, .. } | Ingested::Note { case_id, .. } => Some(case_id),
            Ingested::Duplicate { case_id } => case_id.as_deref(),
            _ => None,
        }
    }
}

/// A fetched message as the admin area lists it (without its bytes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundEmailRecord {
    pub id: String,
    pub mailbox_id: String,
    pub uid_validity: i64,
    pub uid: i64,
    pub message_id: Option<String>,
    pub from_address: Option<String>,
    pub subject: Option<String>,
    pub size: i64,
    pub status: String,
    pub reason: Option<String>,
    pub case_id: Option<String>,
    pub case_number: Option<i64>,
    pub received_at: DateTime<Utc>,
    /// Whether the raw message is kept (not for one refused for its size).
    pub has_raw: bool,
}

/// A message set aside without ingesting it.
pub struct Quarantine<'a> {
    pub mailbox_id: &'a str,
    pub uid_validity: u32,
    pub uid: u32,
    /// `None` for a message not downloaded (too large).
    pub raw: Option<&'a [u8]>,
    pub size: i64,
    pub reason: &'a str,
    pub retry_of: Option<String>,
}

const INBOUND_COLUMNS: &str = "e.id, e.mailbox_id, e.uid_validity, e.uid, e.message_id, e.from_address, e.subject, \
     e.size, e.status, e.reason, e.case_id, c.number AS case_number, e.received_at, \
     (e.raw IS NOT NULL) AS has_raw";

fn inbound_from_row(row: &Row) -> Result<InboundEmailRecord> {
    Ok(InboundEmailRecord {
        id: row.get("id")?,
        mailbox_id: row.get("mailbox_id")?,
        uid_validity: row.get("uid_validity")?,
        uid: row.get("uid")?,
        message_id: row.get("message_id")?,
        from_address: row.get("from_address")?,
        subject: row.get("subject")?,
        size: row.get("size")?,
        status: row.get("status")?,
        reason: row.get("reason")?,
        case_id: row.get("case_id")?,
        case_number: row.get("case_number")?,
        received_at: row.get("received_at")?,
        has_raw: row.get("has_raw")?,
    })
}

impl Store {
    /// Ingests one fetched message (see the module comment). A message
    /// that cannot be parsed is quarantined here; any other failure is the
    /// caller's to quarantine with [`Store::quarantine_email`].
    #[instrument(level = "debug", skip_all, fields(mailbox = email.mailbox_id, uid = email.uid))]
    pub async fn ingest_email(&self, email: FetchedEmail<'_>) -> Result<Ingested> {
        let mut effects = Effects::default();
        let result = async {
            let mut tx = self.pools.write().await?;
            let outcome = self.ingest_in(&mut tx, &email, &mut effects).await?;
            Ok((tx, outcome))
        }
        .await;
        let (tx, outcome) = self.settle(result, &mut effects).await?;
        self.finish(tx, effects).await?;
        Ok(outcome)
    }

    async fn ingest_in(&self, tx: &mut Tx, email: &FetchedEmail<'_>, effects: &mut Effects) -> Result<Ingested> {
        let mailbox = load_mailbox(tx, email.mailbox_id).await?;
        if email.retry_of.is_none() && seen(tx, email.mailbox_id, email.uid_validity, email.uid).await? {
            advance(tx, email.mailbox_id, email.uid_validity, email.uid).await?;
            return Ok(Ingested::Again);
        }
        let outcome = match email.parsed {
            Err(reason) => Ingested::Quarantined { reason: format!("unreadable: {reason}") },
            Ok(parsed) => match fetched_before(tx, email, &parsed.key).await? {
                Some(case_id) => Ingested::Duplicate { case_id },
                None => self.decide(tx, &mailbox, parsed, &email.files, effects).await?,
            },
        };
        let parsed = email.parsed.as_ref().ok();
        let row = InboundRow {
            mailbox_id: email.mailbox_id,
            uid_validity: email.uid_validity,
            uid: email.uid,
            message_id: parsed.map(|p| p.key.as_str()),
            from_address: parsed.and_then(|p| p.from.as_ref()).map(|a| a.address.as_str()),
            subject: parsed.map(|p| p.subject.as_str()),
            size: email.raw.len() as i64,
            raw: Some(email.raw),
            status: outcome.status(),
            reason: outcome.reason(),
            case_id: outcome.case_id(),
        };
        write_row(tx, &row, email.retry_of.as_deref()).await?;
        advance(tx, email.mailbox_id, email.uid_validity, email.uid).await?;
        Ok(outcome)
    }

    /// The pipeline of domain.md: our own mail, machine mail, duplicates,
    /// then threading, then a new case.
    async fn decide(
        &self,
        tx: &mut Tx,
        mailbox: &Mailbox,
        email: &InboundEmail,
        files: &[NewAttachment],
        effects: &mut Effects,
    ) -> Result<Ingested> {
        if docket_case_id(&email.key).is_some() {
            return Ok(Ingested::Own);
        }
        // One lookup answers both "did we send it?" and "did it come before?".
        let known = tx
            .query("SELECT case_id, direction FROM email_messages WHERE message_id = $1")
            .bind(email.key.as_str())
            .fetch_optional()
            .await?
            .map(|row| Ok::<_, StoreError>((row.get::<String>("case_id")?, row.get::<String>("direction")?)))
            .transpose()?;
        if known.as_ref().is_some_and(|(_, direction)| direction == "out") {
            return Ok(Ingested::Own);
        }
        if let Some(reason) = &email.automatic {
            return Ok(Ingested::Automatic { reason: reason.clone() });
        }
        if let Some((case_id, _)) = known {
            return Ok(Ingested::Duplicate { case_id: Some(case_id) });
        }
        let verdict = self.email_received(tx, &email_view(mailbox, email), effects).await?;
        if let Some(reason) = verdict.drop {
            return Ok(Ingested::Dropped { reason });
        }
        if let Some(case) = self.thread(tx, email).await? {
            let reopened = self.add_email_note(tx, mailbox, &case, email, files, effects).await?;
            remember(tx, &email.key, &case.id, "in").await?;
            self.apply_email_rules(tx, &case.id, verdict.deferred, &verdict.runs, effects).await?;
            return Ok(Ingested::Note { case_id: case.id, number: case.number, reopened });
        }
        if !mailbox.create_case {
            return Ok(Ingested::Ignored {
                reason: "it replies to no case, and this mailbox does not create cases".into(),
            });
        }
        let case = self.case_from_email(tx, mailbox, email, files, &verdict.fields, effects).await?;
        remember(tx, &email.key, &case.id, "in").await?;
        self.apply_email_rules(tx, &case.id, verdict.deferred, &verdict.runs, effects).await?;
        self.auto_reply(tx, mailbox, &case, email).await?;
        Ok(Ingested::Case { case_id: case.id, number: case.number })
    }

    /// The `email.received` rules' other actions, on the case the message
    /// landed on; their runs now name it.
    async fn apply_email_rules(
        &self,
        tx: &mut Tx,
        case_id: &str,
        deferred: crate::hooks::Deferred,
        runs: &[usize],
        effects: &mut Effects,
    ) -> Result<()> {
        for index in runs {
            if let Some(run) = effects.runs.get_mut(*index) {
                run.case_id = Some(case_id.to_string());
            }
        }
        self.apply_deferred(tx, case_id, deferred, 0, effects).await
    }

    /// The case a message replies to: first by In-Reply-To and References
    /// (to mail sent or received on a case), then by a `[#number]` tag.
    async fn thread(&self, tx: &mut Tx, email: &InboundEmail) -> Result<Option<Case>> {
        // The nearest ancestor first: In-Reply-To, then References from
        // the newest back. Docket's own Message-IDs name their case; the
        // others are looked up, all in one statement.
        let ancestors: Vec<&String> = email.in_reply_to.iter().chain(email.references.iter().rev()).collect();
        let mut known = std::collections::HashMap::new();
        if !ancestors.is_empty() {
            let mut sql = Sql::new("SELECT message_id, case_id FROM email_messages WHERE message_id IN ");
            let ids: Vec<String> = ancestors.iter().map(|id| id.to_string()).collect();
            sql.list(&ids);
            for row in tx.built(&sql).fetch_all().await? {
                known.insert(row.get::<String>("message_id")?, row.get::<String>("case_id")?);
            }
        }
        for id in &ancestors {
            let Some(case_id) = docket_case_id(id).map(str::to_string).or_else(|| known.get(*id).cloned()) else {
                continue;
            };
            match load_case(tx, "c.id = $1", &case_id, false).await {
                Ok(case) => return Ok(Some(case)),
                Err(StoreError::NotFound) => continue,
                Err(other) => return Err(other),
            }
        }
        if let Some(number) = subject_case_number(&email.subject) {
            match load_case_by_number(tx, number).await {
                Ok(case) => return Ok(Some(case)),
                Err(StoreError::NotFound) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(None)
    }

    /// An `EmailReceived` note on the case; followers are notified, and a
    /// closed case reopens when the mailbox says so. Returns whether it
    /// reopened.
    async fn add_email_note(
        &self,
        tx: &mut Tx,
        mailbox: &Mailbox,
        case: &Case,
        email: &InboundEmail,
        files: &[NewAttachment],
        effects: &mut Effects,
    ) -> Result<bool> {
        let system = Actor::system();
        let sender = match &email.from {
            Some(from) => contact_by_address(tx, &from.address).await?,
            None => None,
        };
        // Mail from a colleague's address (answering a notification, say)
        // may quote internal notes: it is recorded as their internal note.
        let staff = match &email.from {
            Some(from) => staff_with_address(tx, &from.address).await?,
            None => None,
        };
        let is_internal = staff.is_some();
        // Otherwise the sender's own portal user is the author, so they are
        // not notified of what they wrote.
        let author_id = match (&staff, &sender) {
            (Some(user_id), _) => Some(user_id.clone()),
            (None, Some((contact_id, _))) => contact_portal_users(tx, contact_id).await?.into_iter().next(),
            (None, None) => None,
        };
        let trimmed = without_quoted_history(&email.text);
        let post = if trimmed.is_empty() { email.text.trim().to_string() } else { trimmed };
        let at = now();
        let attachment_ids = insert_attachments(tx, files, &system, at).await?;
        let note = Note {
            id: new_id(),
            case_id: case.id.clone(),
            note_type: NoteType::EmailReceived,
            post: Some(truncate(&post, DESCRIPTION_MAX)).filter(|p| !p.is_empty()),
            data: json!({
                "from": email.from.as_ref().map(|a| a.address.clone()),
                "from_name": email.from.as_ref().and_then(|a| a.name.clone()),
                "subject": email.subject,
                "message_id": email.key,
                "mailbox_id": mailbox.id,
                "mailbox": mailbox.name,
            }),
            is_internal,
            author_id: author_id.clone(),
            attachment_ids: attachment_ids.clone(),
            created_at: at,
        };
        insert_note_row(tx, &note).await?;
        link_email_attachments(tx, &note).await?;
        let fan_out = FanOut {
            note_id: &note.id,
            note_type: NoteType::EmailReceived,
            is_internal,
            author_id: author_id.as_deref(),
            emailed: true,
        };
        notify_followers(tx, case, &fan_out, self.email_delay).await?;
        self.note_written(tx, case, &note, &system, 0, effects).await?;
        if mailbox.reopen_on_reply && case.status == CaseStatus::Closed {
            let status = if case.assigned_user_id.is_some() { CaseStatus::Assigned } else { CaseStatus::New };
            let patch = CasePatch { status: Some(status), ..Default::default() };
            self.update_case_in(tx, &system, &case.id, &patch, &Store::top_cause(), effects).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A new case from a message: the sender's contact and account, the
    /// mailbox's teams and distribution, the attachments.
    async fn case_from_email(
        &self,
        tx: &mut Tx,
        mailbox: &Mailbox,
        email: &InboundEmail,
        files: &[NewAttachment],
        fields: &[(String, serde_json::Value)],
        effects: &mut Effects,
    ) -> Result<Case> {
        let system = Actor::system();
        let at = now();
        let mut contact = match &email.from {
            Some(from) => contact_by_address(tx, &from.address).await?,
            None => None,
        };
        if contact.is_none()
            && mailbox.create_contacts
            && let Some(from) = &email.from
        {
            contact = Some((insert_contact(tx, &from.address, from.name.as_deref(), at).await?, None));
        }
        let (contact_id, account_id) = match contact {
            Some((contact_id, account_id)) => (Some(contact_id), account_id),
            None => (None, None),
        };
        let subject = email.subject.trim();
        let attachment_ids = insert_attachments(tx, files, &system, at).await?;
        let mut draft = CaseDraft {
            name: if subject.is_empty() { "(No Subject)".to_string() } else { truncate(subject, NAME_MAX) },
            description: Some(truncate(email.text.trim(), DESCRIPTION_MAX)).filter(|d| !d.is_empty()),
            status: CaseStatus::New,
            priority: CasePriority::default(),
            case_type: None,
            account_id,
            contact_ids: contact_id.iter().cloned().collect(),
            contact_id,
            assigned_user_id: None,
            // A team deleted since the mailbox was saved is left out.
            team_ids: existing_ids(tx, "teams", &mailbox.team_ids).await?,
            is_internal: false,
            attachment_ids,
            silent: false,
            inbound_mailbox_id: Some(mailbox.id.clone()),
        };
        rewrite(&mut draft, fields)?;
        let mut cause = Store::top_cause();
        match (mailbox.distribution.as_str(), mailbox.target_team_id.as_deref()) {
            ("direct", _) => {
                if let Some(user_id) = &mailbox.assign_user_id
                    && active_staff(tx, user_id).await?
                {
                    draft.assigned_user_id = Some(user_id.clone());
                }
            }
            (strategy, Some(team)) => {
                let pending = pending_case(draft.clone(), &system.user_id, at);
                let position = mailbox.target_position.as_deref();
                let choice =
                    self.choose_assignee(tx, &pending.id, Some(&pending), strategy, team, position, effects).await?;
                if let Some(choice) = choice {
                    cause.assignment = Some(json!({ "strategy": strategy, "team": team, "reason": choice.reason }));
                    draft.assigned_user_id = Some(choice.user_id);
                }
            }
            (_, None) => {}
        }
        if draft.assigned_user_id.is_some() {
            draft.status = CaseStatus::Assigned;
        }
        self.create_case_in(tx, &system, draft, None, &cause, effects).await
    }

    /// Queues the mailbox's auto-reply to a new case's sender: never to
    /// one of our own addresses, at most [`AUTO_REPLY_LIMIT`] per address
    /// per [`AUTO_REPLY_WINDOW`].
    async fn auto_reply(&self, tx: &mut Tx, mailbox: &Mailbox, case: &Case, email: &InboundEmail) -> Result<()> {
        let Some(from) = &email.from else { return Ok(()) };
        if !mailbox.auto_reply || is_our_address(tx, &from.address).await? {
            return Ok(());
        }
        let at = now();
        let recent: i64 = tx
            .query("SELECT COUNT(*) AS recent FROM auto_replies WHERE address = $1 AND sent_at > $2")
            .bind(from.address.as_str())
            .bind(at - AUTO_REPLY_WINDOW)
            .fetch_one()
            .await?
            .get("recent")?;
        if recent >= AUTO_REPLY_LIMIT {
            tracing::info!(address = %from.address, "auto-reply suppressed: the limit per address is reached");
            return Ok(());
        }
        tx.query("INSERT INTO auto_replies (address, sent_at) VALUES ($1, $2)")
            .bind(from.address.as_str())
            .bind(at)
            .execute()
            .await?;
        let job = NewJob {
            kind: AUTO_REPLY_JOB,
            payload: json!({
                "mailbox_id": mailbox.id,
                "case_id": case.id,
                "to_address": from.address,
                "to_name": from.name,
                "in_reply_to": email.message_id,
                "subject": email.subject,
            }),
            run_at: at,
            idempotency_key: Some(format!("auto-reply:{}", case.id)),
        };
        enqueue(tx, &job).await
    }

    /// Sets a message aside with its reason (unparseable, too large, or
    /// failing to ingest); the mailbox moves on past it.
    #[instrument(level = "debug", skip_all, fields(mailbox = quarantine.mailbox_id, uid = quarantine.uid))]
    pub async fn quarantine_email(&self, quarantine: Quarantine<'_>) -> Result<()> {
        let parsed = quarantine.raw.and_then(|raw| docket_email::inbound::parse(raw).ok());
        let row = InboundRow {
            mailbox_id: quarantine.mailbox_id,
            uid_validity: quarantine.uid_validity,
            uid: quarantine.uid,
            message_id: parsed.as_ref().map(|p| p.key.as_str()),
            from_address: parsed.as_ref().and_then(|p| p.from.as_ref()).map(|a| a.address.as_str()),
            subject: parsed.as_ref().map(|p| p.subject.as_str()),
            size: quarantine.size,
            raw: quarantine.raw,
            status: "quarantined",
            reason: Some(quarantine.reason),
            case_id: None,
        };
        let retry_of = quarantine.retry_of.as_deref();
        match self.write_quarantined(&row, retry_of).await {
            // Details the database refuses (odd bytes in a subject, an
            // over-long Message-ID) are left out rather than lose the row.
            Err(error) if !error.is_transient() && !matches!(error, StoreError::Conflict(_)) => {
                let bare = InboundRow { message_id: None, from_address: None, subject: None, ..row };
                self.write_quarantined(&bare, retry_of).await
            }
            other => other,
        }
    }

    async fn write_quarantined(&self, row: &InboundRow<'_>, retry_of: Option<&str>) -> Result<()> {
        let mut tx = self.pools.write().await?;
        if retry_of.is_some() || !seen(&mut tx, row.mailbox_id, row.uid_validity, row.uid).await? {
            write_row(&mut tx, row, retry_of).await?;
        }
        advance(&mut tx, row.mailbox_id, row.uid_validity, row.uid).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A mailbox's fetched messages, newest first (admins); `status`
    /// narrows them (`quarantined`, say).
    #[instrument(level = "debug", skip_all)]
    pub async fn inbound_emails(
        &self,
        actor: &Actor,
        mailbox_id: &str,
        status: Option<&str>,
        window: Window,
    ) -> Result<Page<InboundEmailRecord>> {
        require_admin(actor, "see fetched mail")?;
        let mut tx = self.pools.read().await?;
        load_mailbox(&mut tx, mailbox_id).await?;
        let mut count = Sql::new("SELECT COUNT(*) AS total FROM inbound_emails e WHERE e.mailbox_id = ");
        count.value(mailbox_id);
        let mut list = Sql::new(&format!(
            "SELECT {INBOUND_COLUMNS} FROM inbound_emails e LEFT JOIN cases c ON c.id = e.case_id WHERE e.mailbox_id = "
        ));
        list.value(mailbox_id);
        if let Some(status) = status {
            count.push(" AND e.status = ").value(status);
            list.push(" AND e.status = ").value(status);
        }
        list.push(" ORDER BY e.received_at DESC, e.id DESC LIMIT ").value(window.limit);
        list.push(" OFFSET ").value(window.offset);
        let total: i64 = tx.built(&count).fetch_one().await?.get("total")?;
        let items = tx.built(&list).fetch_all().await?.iter().map(inbound_from_row).collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(Page { items, total })
    }

    /// One message fetched by a mailbox, with its raw bytes (admins); not
    /// found when it belongs to another mailbox.
    pub async fn inbound_email(
        &self,
        actor: &Actor,
        mailbox_id: &str,
        id: &str,
    ) -> Result<(InboundEmailRecord, Option<Vec<u8>>)> {
        require_admin(actor, "see fetched mail")?;
        if !docket_domain::ids::looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.read().await?;
        let sql = format!(
            "SELECT {INBOUND_COLUMNS}, e.raw FROM inbound_emails e LEFT JOIN cases c ON c.id = e.case_id \
             WHERE e.id = $1 AND e.mailbox_id = $2"
        );
        let row = tx.query(&sql).bind(id).bind(mailbox_id).fetch_optional().await?.ok_or(StoreError::NotFound)?;
        let record = inbound_from_row(&row)?;
        let raw: Option<Vec<u8>> = row.get("raw")?;
        tx.commit().await?;
        Ok((record, raw))
    }

    /// Discards a quarantined message of a mailbox (admins): its bytes go,
    /// the row stays so the UID is not fetched again.
    pub async fn discard_inbound_email(&self, actor: &Actor, mailbox_id: &str, id: &str) -> Result<()> {
        require_admin(actor, "discard fetched mail")?;
        if !docket_domain::ids::looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.write().await?;
        let changed = tx
            .query(
                "UPDATE inbound_emails SET status = 'discarded', raw = NULL WHERE id = $1 AND mailbox_id = $2 \
                 AND status = 'quarantined'",
            )
            .bind(id)
            .bind(mailbox_id)
            .execute()
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The message as `email.received` rules see it (`email`) and email
/// parsers get it: the shape of the plugins' `parsed-email`, plus `from`
/// and `from_name` for scripts.
fn email_view(mailbox: &Mailbox, email: &InboundEmail) -> serde_json::Value {
    let address = |a: &docket_email::inbound::EmailAddress| json!({ "name": a.name, "email": a.address });
    let sender = email.from.as_ref().map(address).unwrap_or_else(|| json!({ "name": null, "email": "" }));
    json!({
        "message_id": email.message_id,
        "sender": sender,
        "from": email.from.as_ref().map(|a| a.address.clone()).unwrap_or_default(),
        "from_name": email.from.as_ref().and_then(|a| a.name.clone()),
        "to": email.to.iter().map(address).collect::<Vec<_>>(),
        "cc": email.cc.iter().map(address).collect::<Vec<_>>(),
        "subject": email.subject,
        "text": email.text,
        "headers": [],
        "mailbox": mailbox.name,
    })
}

/// Applies the fields `email.received` rules set to a new case's draft;
/// a value the case cannot take is an error (the message is quarantined
/// with it, not half-made).
fn rewrite(draft: &mut CaseDraft, fields: &[(String, serde_json::Value)]) -> Result<()> {
    for (field, value) in fields {
        let text = value.as_str().map(str::trim).unwrap_or_default();
        let bad = |message: String| StoreError::invalid(field, message);
        match field.as_str() {
            "name" => {
                if !text.is_empty() {
                    draft.name = truncate(text, NAME_MAX);
                }
            }
            "description" => draft.description = Some(truncate(text, DESCRIPTION_MAX)).filter(|d| !d.is_empty()),
            "priority" => draft.priority = CasePriority::parse(text).map_err(bad)?,
            "type" if text.is_empty() => draft.case_type = None,
            "type" => draft.case_type = Some(CaseType::parse(text).map_err(bad)?),
            other => return Err(StoreError::invalid(other, "an email rule cannot set this field here")),
        }
    }
    Ok(())
}

/// What the `inbound_emails` row records.
#[derive(Clone, Copy)]
struct InboundRow<'a> {
    mailbox_id: &'a str,
    uid_validity: u32,
    uid: u32,
    message_id: Option<&'a str>,
    from_address: Option<&'a str>,
    subject: Option<&'a str>,
    size: i64,
    raw: Option<&'a [u8]>,
    status: &'a str,
    reason: Option<&'a str>,
    case_id: Option<&'a str>,
}

/// Inserts the row, or (a retried message) rewrites the quarantined one.
async fn write_row(tx: &mut Tx, row: &InboundRow<'_>, retry_of: Option<&str>) -> Result<()> {
    let subject = row.subject.map(|s| truncate(s, 998));
    if let Some(id) = retry_of {
        let changed = tx
            .query(
                "UPDATE inbound_emails SET status = $1, reason = $2, case_id = $3, message_id = $4, \
                 from_address = $5, subject = $6, received_at = $7 WHERE id = $8 AND status = 'quarantined'",
            )
            .bind(row.status)
            .bind(row.reason)
            .bind(row.case_id)
            .bind(row.message_id)
            .bind(row.from_address)
            .bind(subject.as_deref())
            .bind(now())
            .bind(id)
            .execute()
            .await?;
        if changed == 0 {
            // Retried or discarded meanwhile (a double click, two admins).
            return Err(StoreError::Conflict("this message is no longer in quarantine".into()));
        }
        return Ok(());
    }
    tx.query(
        "INSERT INTO inbound_emails (id, mailbox_id, uid_validity, uid, message_id, from_address, subject, size, raw, \
         status, reason, case_id, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(new_id())
    .bind(row.mailbox_id)
    .bind(i64::from(row.uid_validity))
    .bind(i64::from(row.uid))
    .bind(row.message_id)
    .bind(row.from_address)
    .bind(subject.as_deref())
    .bind(row.size)
    .bind(row.raw.map(<[u8]>::to_vec))
    .bind(row.status)
    .bind(row.reason)
    .bind(row.case_id)
    .bind(now())
    .execute()
    .await?;
    Ok(())
}

async fn seen(tx: &mut Tx, mailbox_id: &str, uid_validity: u32, uid: u32) -> Result<bool> {
    let row = tx
        .query("SELECT id FROM inbound_emails WHERE mailbox_id = $1 AND uid_validity = $2 AND uid = $3")
        .bind(mailbox_id)
        .bind(i64::from(uid_validity))
        .bind(i64::from(uid))
        .fetch_optional()
        .await?;
    Ok(row.is_some())
}

/// Moves the mailbox's high-water mark, in the message's transaction, so
/// the mark and what was ingested never disagree.
async fn advance(tx: &mut Tx, mailbox_id: &str, uid_validity: u32, uid: u32) -> Result<()> {
    tx.query("UPDATE mailboxes SET last_uid = $1 WHERE id = $2 AND uid_validity = $3 AND last_uid < $1")
        .bind(i64::from(uid))
        .bind(mailbox_id)
        .bind(i64::from(uid_validity))
        .execute()
        .await?;
    Ok(())
}

/// Links an email note's files to the note and its case, so they show
/// with the case's attachments too.
pub(crate) async fn link_email_attachments(tx: &mut Tx, note: &Note) -> Result<()> {
    for attachment_id in &note.attachment_ids {
        tx.query("UPDATE attachments SET case_id = $1, note_id = $2 WHERE id = $3")
            .bind(note.case_id.as_str())
            .bind(note.id.as_str())
            .bind(attachment_id.as_str())
            .execute()
            .await?;
    }
    Ok(())
}

/// Records a Message-ID of a case's mail, for threading and dedupe.
pub(crate) async fn remember(tx: &mut Tx, message_id: &str, case_id: &str, direction: &str) -> Result<()> {
    tx.query("INSERT INTO email_messages (message_id, case_id, direction, created_at) VALUES ($1, $2, $3, $4)")
        .bind(message_id)
        .bind(case_id)
        .bind(direction)
        .bind(now())
        .execute()
        .await?;
    Ok(())
}

async fn is_our_address(tx: &mut Tx, address: &str) -> Result<bool> {
    let row = tx
        .query("SELECT id FROM mailboxes WHERE email_address = $1 OR reply_from_address = $1 OR reply_to_address = $1")
        .bind(address)
        .fetch_optional()
        .await?;
    Ok(row.is_some())
}

/// The contact with this address and its first account.
pub(crate) async fn contact_by_address(tx: &mut Tx, address: &str) -> Result<Option<(String, Option<String>)>> {
    let row = tx
        .query(
            "SELECT ce.contact_id, (SELECT ca.account_id FROM contact_accounts ca WHERE ca.contact_id = ce.contact_id \
             ORDER BY ca.account_id LIMIT 1) AS account_id FROM contact_emails ce WHERE ce.email = $1 \
             ORDER BY ce.position, ce.contact_id LIMIT 1",
        )
        .bind(address)
        .fetch_optional()
        .await?;
    row.map(|row| Ok((row.get("contact_id")?, row.get("account_id")?))).transpose()
}

/// An active colleague whose address this is.
async fn staff_with_address(tx: &mut Tx, address: &str) -> Result<Option<String>> {
    let row = tx
        .query(
            "SELECT id FROM users WHERE LOWER(email) = $1 AND user_type IN ('admin', 'agent') AND is_active = $2 \
             ORDER BY id LIMIT 1",
        )
        .bind(address)
        .bind(true)
        .fetch_optional()
        .await?;
    row.map(|row| row.get("id")).transpose()
}

/// Whether this mailbox fetched the same message under another UID (its
/// folder was recreated, or the message was copied back): then it is not
/// taken again, whatever became of it the first time.
async fn fetched_before(tx: &mut Tx, email: &FetchedEmail<'_>, key: &str) -> Result<Option<Option<String>>> {
    let row = tx
        .query(
            "SELECT case_id FROM inbound_emails WHERE mailbox_id = $1 AND message_id = $2 \
             AND NOT (uid_validity = $3 AND uid = $4) ORDER BY received_at LIMIT 1",
        )
        .bind(email.mailbox_id)
        .bind(key)
        .bind(i64::from(email.uid_validity))
        .bind(i64::from(email.uid))
        .fetch_optional()
        .await?;
    row.map(|row| row.get::<Option<String>>("case_id")).transpose()
}

async fn active_staff(tx: &mut Tx, user_id: &str) -> Result<bool> {
    let row = tx
        .query("SELECT id FROM users WHERE id = $1 AND user_type IN ('admin', 'agent') AND is_active = $2")
        .bind(user_id)
        .bind(true)
        .fetch_optional()
        .await?;
    Ok(row.is_some())
}

/// A contact for an unknown sender: the display name split into first and
/// last name, or the address's local part as the last name.
pub(crate) async fn insert_contact(
    tx: &mut Tx,
    address: &str,
    name: Option<&str>,
    at: DateTime<Utc>,
) -> Result<String> {
    let name = name.map(str::trim).filter(|n| !n.is_empty() && !n.contains('@'));
    let (first_name, last_name) = match name.and_then(|n| n.rsplit_once(' ')) {
        Some((first, last)) => (Some(truncate(first.trim(), 100)), truncate(last.trim(), 100)),
        None => (None, truncate(name.unwrap_or_else(|| address.split('@').next().unwrap_or(address)), 100)),
    };
    let system = Some(docket_domain::access::SYSTEM_USER_ID.to_string());
    let contact = Contact {
        id: new_id(),
        name: docket_domain::contact::display_name(first_name.as_deref(), &last_name),
        first_name,
        last_name,
        emails: vec![address.to_string()],
        phone: None,
        account_ids: Vec::new(),
        assigned_user_id: None,
        team_ids: Vec::new(),
        created_at: at,
        created_by_id: system.clone(),
        modified_at: at,
        modified_by_id: system,
        version: 1,
    };
    insert_contact_row(tx, &contact).await?;
    // Its one address; the contact is new, so there are no links to replace.
    tx.query("INSERT INTO contact_emails (contact_id, email, position) VALUES ($1, $2, 0)")
        .bind(contact.id.as_str())
        .bind(address)
        .execute()
        .await?;
    Ok(contact.id)
}

/// Attachment rows for files the server wrote, owned by the system user
/// (so that the case or note may take them).
pub(crate) async fn insert_attachments(
    tx: &mut Tx,
    files: &[NewAttachment],
    system: &Actor,
    at: DateTime<Utc>,
) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for file in files {
        let mut record = AttachmentRecord::unlinked(file, &system.user_id, at);
        record.name = truncate(&file.name, 255);
        insert_attachment(tx, &record).await?;
        ids.push(record.id);
    }
    Ok(ids)
}

/// At most `max` characters.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
