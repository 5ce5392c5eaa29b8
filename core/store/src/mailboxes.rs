//! Group mailboxes: their settings (the IMAP password is written, never
//! read back out), the lease that lets one node at a time work a mailbox,
//! and the fetch status the admin sees (last success, last error, backlog,
//! back-off).

use chrono::{DateTime, Utc};
use docket_domain::Actor;
use docket_domain::ids::new_id;
use docket_email::imap::ImapSettings;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::db::{Query, Row, Tx};
use crate::rows::{check_assignee, check_exist, check_exists};
use crate::users::require_admin;
use crate::{Result, Store, StoreError, now};

/// The built-in distributions; any other value names an assigner plugin.
pub const DISTRIBUTIONS: [&str; 3] = ["direct", "round-robin", "least-busy"];

/// The largest message a mailbox takes unless set otherwise (25 MB).
pub const DEFAULT_MAX_MESSAGE_BYTES: i64 = 25 * 1024 * 1024;

/// A group mailbox as the API shows it: never the password.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mailbox {
    pub id: String,
    pub name: String,
    pub email_address: String,
    pub imap_host: String,
    pub imap_port: u16,
    pub imap_security: String,
    pub imap_username: String,
    pub imap_folder: String,
    /// Whether a password is stored (it is never shown again).
    pub has_password: bool,
    /// The mailbox's own SMTP server for replies and auto-replies; `None`
    /// sends through the server under Admin -> Email.
    pub smtp: Option<MailboxSmtp>,
    pub has_smtp_password: bool,
    pub is_active: bool,
    pub create_case: bool,
    pub distribution: String,
    pub assign_user_id: Option<String>,
    pub target_team_id: Option<String>,
    pub target_position: Option<String>,
    pub team_ids: Vec<String>,
    pub auto_reply: bool,
    pub auto_reply_subject: String,
    pub auto_reply_body: String,
    pub reply_from_address: Option<String>,
    pub reply_from_name: Option<String>,
    pub reply_to_address: Option<String>,
    pub reopen_on_reply: bool,
    pub create_contacts: bool,
    pub max_message_bytes: i64,
    /// Only mail the server received on or after this day is fetched.
    pub fetch_since: Option<chrono::NaiveDate>,
    pub status: MailboxStatus,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub version: i64,
}

/// A mailbox's own SMTP server (the password is stored apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxSmtp {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub security: String,
    pub username: Option<String>,
}

/// Where fetching stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MailboxStatus {
    pub uid_validity: Option<i64>,
    pub last_uid: i64,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failures in a row; fetching backs off while it is above zero.
    pub failures: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Messages seen on the server but not yet ingested.
    pub backlog: i64,
    pub leased_by: Option<String>,
    pub leased_until: Option<DateTime<Utc>>,
    /// Messages waiting in quarantine.
    pub quarantined: i64,
}

/// What an admin sets (create, or replace with `version`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxInput {
    pub name: String,
    pub email_address: String,
    pub imap_host: String,
    #[serde(default = "default_imap_port")]
    pub imap_port: u16,
    #[serde(default = "default_security")]
    pub imap_security: String,
    pub imap_username: String,
    /// `None` keeps the stored password.
    #[serde(default)]
    pub imap_password: Option<String>,
    #[serde(default = "default_folder")]
    pub imap_folder: String,
    /// The mailbox's own SMTP server; empty sends through the server under
    /// Admin -> Email.
    #[serde(default)]
    pub smtp_host: Option<String>,
    #[serde(default)]
    pub smtp_port: Option<u16>,
    #[serde(default)]
    pub smtp_security: Option<String>,
    #[serde(default)]
    pub smtp_username: Option<String>,
    /// `None` keeps the stored SMTP password.
    #[serde(default)]
    pub smtp_password: Option<String>,
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(default = "yes")]
    pub create_case: bool,
    #[serde(default = "default_distribution")]
    pub distribution: String,
    #[serde(default)]
    pub assign_user_id: Option<String>,
    #[serde(default)]
    pub target_team_id: Option<String>,
    #[serde(default)]
    pub target_position: Option<String>,
    #[serde(default)]
    pub team_ids: Vec<String>,
    #[serde(default)]
    pub auto_reply: bool,
    #[serde(default)]
    pub auto_reply_subject: String,
    #[serde(default)]
    pub auto_reply_body: String,
    #[serde(default)]
    pub reply_from_address: Option<String>,
    #[serde(default)]
    pub reply_from_name: Option<String>,
    #[serde(default)]
    pub reply_to_address: Option<String>,
    #[serde(default)]
    pub reopen_on_reply: bool,
    #[serde(default)]
    pub create_contacts: bool,
    #[serde(default)]
    pub max_message_bytes: Option<i64>,
    /// Skip older mail in the folder: only what the server received on or
    /// after this day (`YYYY-MM-DD`).
    #[serde(default)]
    pub fetch_since: Option<chrono::NaiveDate>,
    /// Required when replacing: the version read.
    #[serde(default)]
    pub version: Option<i64>,
}

fn default_imap_port() -> u16 {
    993
}
fn default_security() -> String {
    "tls".into()
}
fn default_folder() -> String {
    "INBOX".into()
}
fn default_distribution() -> String {
    "direct".into()
}
fn yes() -> bool {
    true
}

/// A plausible single address (`local@domain`), lower-cased.
pub(crate) fn clean_address(text: &str) -> Option<String> {
    let text = text.trim().to_ascii_lowercase();
    // One address, as headers take it: none of the characters that list,
    // quote or bracket addresses.
    let fine = docket_domain::validation::is_email(&text) && !text.contains(|c: char| "<>,;\"()[]\\".contains(c));
    fine.then_some(text)
}

impl MailboxInput {
    fn imap(&self, password: String) -> ImapSettings {
        ImapSettings {
            host: self.imap_host.trim().to_string(),
            port: self.imap_port,
            security: self.imap_security.clone(),
            username: self.imap_username.trim().to_string(),
            password,
            folder: self.imap_folder.trim().to_string(),
        }
    }

    /// The own SMTP server, if the admin gave one.
    fn smtp(&self) -> Option<MailboxSmtp> {
        let host = self.smtp_host.as_deref().map(str::trim).filter(|h| !h.is_empty())?;
        Some(MailboxSmtp {
            host: host.to_string(),
            port: self.smtp_port.unwrap_or(587),
            security: self.smtp_security.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "starttls".into()),
            username: self.smtp_username.as_deref().map(str::trim).filter(|u| !u.is_empty()).map(str::to_string),
        })
    }

    /// Checks what needs no database; the errors name the fields.
    fn validate(&self) -> Result<()> {
        let mut errors = docket_domain::validation::ValidationErrors::new();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            errors.add("name", "required, at most 100 characters");
        }
        if clean_address(&self.email_address).is_none() {
            errors.add("email_address", "not a valid email address");
        }
        if let Err((field, message)) = self.imap(self.imap_password.clone().unwrap_or_default()).validate() {
            errors.add(&format!("imap_{field}"), message);
        }
        for (field, value) in
            [("reply_from_address", &self.reply_from_address), ("reply_to_address", &self.reply_to_address)]
        {
            if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty())
                && clean_address(value).is_none()
            {
                errors.add(field, "not a valid email address");
            }
        }
        if let Some(smtp) = self.smtp() {
            let settings = docket_email::SmtpSettings {
                host: smtp.host,
                port: smtp.port,
                security: smtp.security,
                username: smtp.username,
                password: self.smtp_password.clone(),
                from_address: clean_address(&self.email_address).unwrap_or_else(|| "x@example.com".into()),
                from_name: None,
            };
            if let Err((field, message)) = settings.validate() {
                errors.add(&format!("smtp_{field}"), message);
            }
        }
        let distribution = self.distribution.trim();
        if distribution.is_empty() {
            errors.add("distribution", "direct, round-robin, least-busy or an assigner plugin's name");
        } else if distribution != "direct" && self.target_team_id.as_deref().is_none_or(|t| t.trim().is_empty()) {
            errors.add("target_team_id", format!("required for the {distribution} distribution"));
        }
        if let Some(max) = self.max_message_bytes
            && !(1024..=1 << 30).contains(&max)
        {
            errors.add("max_message_bytes", "between 1 KiB and 1 GiB");
        }
        Ok(errors.into_result()?)
    }
}

/// Columns of [`mailbox_from_row`], with the quarantine count.
const MAILBOX_COLUMNS: &str = "m.id, m.name, m.email_address, m.imap, m.imap_password, m.is_active, m.create_case, \
     m.distribution, m.assign_user_id, m.target_team_id, m.target_position, m.team_ids, m.auto_reply, \
     m.auto_reply_subject, m.auto_reply_body, m.reply_from_address, m.reply_from_name, m.reply_to_address, \
     m.reopen_on_reply, m.create_contacts, m.max_message_bytes, m.uid_validity, m.last_uid, m.leased_by, \
     m.leased_until, m.last_success_at, m.last_error, m.last_error_at, m.failures, m.next_attempt_at, m.backlog, \
     m.created_at, m.modified_at, m.version, m.smtp, m.smtp_password, m.fetch_since, \
     (SELECT COUNT(*) FROM inbound_emails q WHERE q.mailbox_id = m.id AND q.status = 'quarantined') AS quarantined";

/// The stored IMAP settings, without the password column.
#[derive(Serialize, Deserialize)]
struct StoredImap {
    host: String,
    port: u16,
    security: String,
    username: String,
    folder: String,
}

fn mailbox_from_row(row: &Row) -> Result<Mailbox> {
    let imap: StoredImap = crate::rows::json_column(row, "imap")?;
    let password: String = row.get("imap_password")?;
    Ok(Mailbox {
        id: row.get("id")?,
        name: row.get("name")?,
        email_address: row.get("email_address")?,
        imap_host: imap.host,
        imap_port: imap.port,
        imap_security: imap.security,
        imap_username: imap.username,
        imap_folder: imap.folder,
        has_password: !password.is_empty(),
        smtp: row
            .get::<Option<String>>("smtp")?
            .map(|text| serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("mailbox smtp: {e}"))))
            .transpose()?,
        has_smtp_password: !row.get::<String>("smtp_password")?.is_empty(),
        is_active: row.get("is_active")?,
        create_case: row.get("create_case")?,
        distribution: row.get("distribution")?,
        assign_user_id: row.get("assign_user_id")?,
        target_team_id: row.get("target_team_id")?,
        target_position: row.get("target_position")?,
        team_ids: crate::rows::json_column(row, "team_ids")?,
        auto_reply: row.get("auto_reply")?,
        auto_reply_subject: row.get("auto_reply_subject")?,
        auto_reply_body: row.get("auto_reply_body")?,
        reply_from_address: row.get("reply_from_address")?,
        reply_from_name: row.get("reply_from_name")?,
        reply_to_address: row.get("reply_to_address")?,
        reopen_on_reply: row.get("reopen_on_reply")?,
        create_contacts: row.get("create_contacts")?,
        max_message_bytes: row.get("max_message_bytes")?,
        fetch_since: row
            .get::<Option<String>>("fetch_since")?
            .map(|day| {
                chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                    .map_err(|e| StoreError::Corrupt(format!("mailbox fetch_since: {e}")))
            })
            .transpose()?,
        status: MailboxStatus {
            uid_validity: row.get("uid_validity")?,
            last_uid: row.get("last_uid")?,
            last_success_at: row.get("last_success_at")?,
            last_error: row.get("last_error")?,
            last_error_at: row.get("last_error_at")?,
            failures: row.get("failures")?,
            next_attempt_at: row.get("next_attempt_at")?,
            backlog: row.get("backlog")?,
            leased_by: row.get("leased_by")?,
            leased_until: row.get("leased_until")?,
            quarantined: row.get("quarantined")?,
        },
        created_at: row.get("created_at")?,
        modified_at: row.get("modified_at")?,
        version: row.get("version")?,
    })
}

pub(crate) async fn load_mailbox(tx: &mut Tx, id: &str) -> Result<Mailbox> {
    if !docket_domain::ids::looks_like_id(id) {
        return Err(StoreError::NotFound);
    }
    let sql = format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.id = $1");
    mailbox_from_row(&tx.query(&sql).bind(id).fetch_optional().await?.ok_or(StoreError::NotFound)?)
}

impl Store {
    /// Checks the references of a mailbox (users, teams, the plugin).
    async fn check_mailbox_references(&self, tx: &mut Tx, input: &MailboxInput) -> Result<()> {
        check_assignee(tx, "assign_user_id", input.assign_user_id.as_deref()).await?;
        check_exists(tx, "teams", "target_team_id", input.target_team_id.as_deref()).await?;
        check_exist(tx, "teams", "team_ids", &input.team_ids).await?;
        let distribution = input.distribution.trim();
        if !DISTRIBUTIONS.contains(&distribution) && !self.has_assigner_plugin(tx, distribution).await? {
            return Err(StoreError::invalid(
                "distribution",
                format!("`{distribution}` is not direct, round-robin, least-busy or an enabled assigner plugin"),
            ));
        }
        Ok(())
    }

    /// Creates a group mailbox (admins).
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn create_mailbox(&self, actor: &Actor, input: &MailboxInput) -> Result<Mailbox> {
        require_admin(actor, "manage mailboxes")?;
        input.validate()?;
        let mut tx = self.pools.write().await?;
        self.check_mailbox_references(&mut tx, input).await?;
        let id = new_id();
        let at = now();
        let sql = "INSERT INTO mailboxes (name, email_address, imap, imap_password, is_active, create_case, \
             distribution, assign_user_id, target_team_id, target_position, team_ids, auto_reply, auto_reply_subject, \
             auto_reply_body, reply_from_address, reply_from_name, reply_to_address, reopen_on_reply, create_contacts, \
             max_message_bytes, smtp, smtp_password, fetch_since, id, created_at, modified_at, version) VALUES ($1, \
             $2, $3, COALESCE($4, ''), $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, COALESCE($22, ''), $23, $24, $25, $25, 1)";
        bind_fields(tx.query(sql), input).bind(id.as_str()).bind(at).execute().await.map_err(duplicate_name)?;
        let mailbox = load_mailbox(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(mailbox)
    }

    /// Replaces a mailbox's settings (admins); `version` must be the one
    /// read. Changing the server or folder starts fetching afresh.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn update_mailbox(&self, actor: &Actor, id: &str, input: &MailboxInput) -> Result<Mailbox> {
        require_admin(actor, "manage mailboxes")?;
        input.validate()?;
        let Some(version) = input.version else {
            return Err(StoreError::invalid("version", "required: the version you read"));
        };
        let mut tx = self.pools.write().await?;
        let current = load_mailbox(&mut tx, id).await?;
        if current.version != version {
            return Err(StoreError::VersionConflict { current: current.version });
        }
        self.check_mailbox_references(&mut tx, input).await?;
        let moved = current.imap_host != input.imap_host.trim()
            || current.imap_username != input.imap_username.trim()
            || current.imap_folder != input.imap_folder.trim();
        let sql = "UPDATE mailboxes SET name = $1, email_address = $2, imap = $3, \
             imap_password = COALESCE($4, imap_password), is_active = $5, create_case = $6, distribution = $7, \
             assign_user_id = $8, target_team_id = $9, target_position = $10, team_ids = $11, auto_reply = $12, \
             auto_reply_subject = $13, auto_reply_body = $14, reply_from_address = $15, reply_from_name = $16, \
             reply_to_address = $17, reopen_on_reply = $18, create_contacts = $19, max_message_bytes = $20, \
             smtp = $21, smtp_password = COALESCE($22, smtp_password), fetch_since = $23, modified_at = $24, \
             version = version + 1, failures = 0, next_attempt_at = NULL WHERE id = $25";
        bind_fields(tx.query(sql), input).bind(now()).bind(id).execute().await.map_err(duplicate_name)?;
        if moved {
            // Another folder: its UIDs say nothing about the old one's.
            tx.query("UPDATE mailboxes SET uid_validity = NULL, last_uid = 0 WHERE id = $1").bind(id).execute().await?;
        }
        let mailbox = load_mailbox(&mut tx, id).await?;
        tx.commit().await?;
        Ok(mailbox)
    }

    /// Every mailbox (admins), by name.
    #[instrument(level = "debug", skip_all)]
    pub async fn mailboxes(&self, actor: &Actor) -> Result<Vec<Mailbox>> {
        require_admin(actor, "see mailboxes")?;
        let mut tx = self.pools.read().await?;
        let sql = format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes m ORDER BY m.name");
        let list = tx.query(&sql).fetch_all().await?.iter().map(mailbox_from_row).collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(list)
    }

    /// One mailbox (admins).
    #[instrument(level = "debug", skip_all)]
    pub async fn mailbox(&self, actor: &Actor, id: &str) -> Result<Mailbox> {
        require_admin(actor, "see mailboxes")?;
        let mut tx = self.pools.read().await?;
        let mailbox = load_mailbox(&mut tx, id).await?;
        tx.commit().await?;
        Ok(mailbox)
    }

    /// Deletes a mailbox and its fetched messages (admins). Cases keep
    /// their content; they just no longer name the mailbox.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn delete_mailbox(&self, actor: &Actor, id: &str) -> Result<()> {
        require_admin(actor, "manage mailboxes")?;
        let mut tx = self.pools.write().await?;
        load_mailbox(&mut tx, id).await?;
        tx.query("UPDATE cases SET inbound_mailbox_id = NULL WHERE inbound_mailbox_id = $1").bind(id).execute().await?;
        tx.query("DELETE FROM mailboxes WHERE id = $1").bind(id).execute().await?;
        tx.commit().await?;
        Ok(())
    }

    /// The IMAP settings with the stored password, for connecting (the
    /// fetcher and the admin's test button; never sent to a client).
    pub async fn mailbox_imap(&self, id: &str) -> Result<(Mailbox, ImapSettings)> {
        let mut tx = self.pools.read().await?;
        let mailbox = load_mailbox(&mut tx, id).await?;
        let password: String = tx
            .query("SELECT imap_password FROM mailboxes WHERE id = $1")
            .bind(id)
            .fetch_one()
            .await?
            .get("imap_password")?;
        tx.commit().await?;
        let settings = ImapSettings {
            host: mailbox.imap_host.clone(),
            port: mailbox.imap_port,
            security: mailbox.imap_security.clone(),
            username: mailbox.imap_username.clone(),
            password,
            folder: mailbox.imap_folder.clone(),
        };
        Ok((mailbox, settings))
    }

    /// How replies from this mailbox are sent: its own SMTP server with the
    /// stored password, or `None` for the server under Admin -> Email. The
    /// from address is the mailbox's reply-from (else its address).
    pub async fn mailbox_smtp(&self, mailbox: &Mailbox) -> Result<Option<docket_email::SmtpSettings>> {
        let Some(smtp) = &mailbox.smtp else { return Ok(None) };
        let mut tx = self.pools.read().await?;
        let password: String = tx
            .query("SELECT smtp_password FROM mailboxes WHERE id = $1")
            .bind(mailbox.id.as_str())
            .fetch_one()
            .await?
            .get("smtp_password")?;
        tx.commit().await?;
        Ok(Some(docket_email::SmtpSettings {
            host: smtp.host.clone(),
            port: smtp.port,
            security: smtp.security.clone(),
            username: smtp.username.clone(),
            password: Some(password).filter(|p| !p.is_empty()),
            from_address: mailbox.reply_from_address.clone().unwrap_or_else(|| mailbox.email_address.clone()),
            from_name: mailbox.reply_from_name.clone(),
        }))
    }

    /// Active mailboxes that are not leased (or whose lease ran out) and
    /// not backing off: candidates for this node to lease.
    pub async fn mailboxes_due(&self) -> Result<Vec<String>> {
        let mut tx = self.pools.read().await?;
        let at = now();
        let ids = tx
            .query(
                "SELECT id FROM mailboxes WHERE is_active = $1 AND (leased_until IS NULL OR leased_until < $2) \
                 AND (next_attempt_at IS NULL OR next_attempt_at <= $2) ORDER BY id",
            )
            .bind(true)
            .bind(at)
            .fetch_all()
            .await?
            .iter()
            .map(|row| row.get("id"))
            .collect::<Result<Vec<String>>>()?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Takes or renews the lease on a mailbox for `node` until `until`.
    /// False when another node holds it, or the mailbox was deactivated.
    pub async fn lease_mailbox(&self, id: &str, node: &str, until: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.pools.write().await?;
        let changed = tx
            .query(
                "UPDATE mailboxes SET leased_by = $1, leased_until = $2 WHERE id = $3 AND is_active = $4 \
                 AND (leased_by = $1 OR leased_until IS NULL OR leased_until < $5)",
            )
            .bind(node)
            .bind(until)
            .bind(id)
            .bind(true)
            .bind(now())
            .execute()
            .await?;
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// Records what the server said about the folder. A new UIDVALIDITY
    /// means the folder was recreated: fetching starts again from the
    /// first UID (Message-IDs keep already ingested mail from doubling).
    pub async fn mailbox_opened(&self, id: &str, node: &str, uid_validity: u32) -> Result<i64> {
        let mut tx = self.pools.write().await?;
        let row = tx
            .query("SELECT uid_validity, last_uid FROM mailboxes WHERE id = $1 AND leased_by = $2")
            .bind(id)
            .bind(node)
            .fetch_optional()
            .await?
            .ok_or_else(|| StoreError::Conflict("the mailbox's lease was lost".into()))?;
        let stored: Option<i64> = row.get("uid_validity")?;
        let mut last_uid: i64 = row.get("last_uid")?;
        if stored != Some(i64::from(uid_validity)) {
            last_uid = 0;
            tx.query("UPDATE mailboxes SET uid_validity = $1, last_uid = 0 WHERE id = $2")
                .bind(i64::from(uid_validity))
                .bind(id)
                .execute()
                .await?;
        }
        tx.commit().await?;
        Ok(last_uid)
    }

    /// A fetch round went well: `backlog` messages are still waiting.
    pub async fn mailbox_succeeded(&self, id: &str, node: &str, backlog: i64) -> Result<()> {
        let mut tx = self.pools.write().await?;
        tx.query(
            "UPDATE mailboxes SET last_success_at = $1, failures = 0, next_attempt_at = NULL, backlog = $2 \
             WHERE id = $3 AND leased_by = $4",
        )
        .bind(now())
        .bind(backlog)
        .bind(id)
        .bind(node)
        .execute()
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many messages wait on the server (during a fetch round).
    pub async fn mailbox_backlog(&self, id: &str, node: &str, backlog: i64) -> Result<()> {
        let mut tx = self.pools.write().await?;
        tx.query("UPDATE mailboxes SET backlog = $1 WHERE id = $2 AND leased_by = $3")
            .bind(backlog)
            .bind(id)
            .bind(node)
            .execute()
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Fetching failed: record why, back off (`retry_at`), and give up
    /// the lease so any node may try again then.
    pub async fn mailbox_failed(&self, id: &str, node: &str, error: &str, retry_at: DateTime<Utc>) -> Result<()> {
        let mut tx = self.pools.write().await?;
        tx.query(
            "UPDATE mailboxes SET last_error = $1, last_error_at = $2, failures = failures + 1, next_attempt_at = $3, \
             leased_by = NULL, leased_until = NULL WHERE id = $4 AND (leased_by = $5 OR leased_by IS NULL)",
        )
        .bind(error)
        .bind(now())
        .bind(retry_at)
        .bind(id)
        .bind(node)
        .execute()
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives up the lease (shutdown, or the mailbox was deactivated).
    pub async fn release_mailbox(&self, id: &str, node: &str) -> Result<()> {
        let mut tx = self.pools.write().await?;
        tx.query("UPDATE mailboxes SET leased_by = NULL, leased_until = NULL WHERE id = $1 AND leased_by = $2")
            .bind(id)
            .bind(node)
            .execute()
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many failures in a row a mailbox has had (for its back-off).
    pub async fn mailbox_failures(&self, id: &str) -> Result<i64> {
        let mut tx = self.pools.read().await?;
        let failures: i64 =
            tx.query("SELECT failures FROM mailboxes WHERE id = $1").bind(id).fetch_one().await?.get("failures")?;
        tx.commit().await?;
        Ok(failures)
    }
}

fn stored_imap(input: &MailboxInput) -> String {
    let imap = StoredImap {
        host: input.imap_host.trim().to_string(),
        port: input.imap_port,
        security: input.imap_security.clone(),
        username: input.imap_username.trim().to_string(),
        folder: input.imap_folder.trim().to_string(),
    };
    serde_json::to_string(&imap).unwrap_or_default()
}

/// Binds a mailbox's editable fields as $1 to $23, in the order both
/// `create_mailbox` and `update_mailbox` write them. A password that is
/// `None` keeps the stored one (the SQL says `COALESCE`).
fn bind_fields<'q>(query: Query<'q>, input: &'q MailboxInput) -> Query<'q> {
    let trimmed = |value: &'q Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty());
    query
        .bind(input.name.trim())
        .bind(clean_address(&input.email_address).unwrap_or_default())
        .bind(stored_imap(input))
        .bind(input.imap_password.as_deref())
        .bind(input.is_active)
        .bind(input.create_case)
        .bind(input.distribution.trim())
        .bind(input.assign_user_id.as_deref())
        .bind(input.target_team_id.as_deref())
        .bind(trimmed(&input.target_position))
        .bind(serde_json::to_string(&input.team_ids).unwrap_or_else(|_| "[]".into()))
        .bind(input.auto_reply)
        .bind(input.auto_reply_subject.as_str())
        .bind(input.auto_reply_body.as_str())
        .bind(input.reply_from_address.as_deref().and_then(clean_address))
        .bind(trimmed(&input.reply_from_name))
        .bind(input.reply_to_address.as_deref().and_then(clean_address))
        .bind(input.reopen_on_reply)
        .bind(input.create_contacts)
        .bind(input.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES))
        .bind(stored_smtp(input))
        .bind(input.smtp_password.as_deref())
        .bind(input.fetch_since.map(|day| day.format("%Y-%m-%d").to_string()))
}

fn stored_smtp(input: &MailboxInput) -> Option<String> {
    input.smtp().map(|smtp| serde_json::to_string(&smtp).unwrap_or_default())
}

fn duplicate_name(error: StoreError) -> StoreError {
    match error {
        StoreError::Duplicate(_) => StoreError::invalid("name", "another mailbox has this name"),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_lower_cased() {
        assert_eq!(clean_address(" Support@Help.Example.com ").as_deref(), Some("support@help.example.com"));
        for bad in ["", "no-at", "a@b", "a@.b.c", "a b@c.d", "<a@b.c>", "a@b.c, d@e.f"] {
            assert_eq!(clean_address(bad), None, "{bad}");
        }
    }
}
