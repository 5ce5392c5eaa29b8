//! Stream emails: settings, the editable template, and the job that sends
//! one notification by email.

use docket_email::{OutgoingEmail, SendError, SmtpSettings};
use docket_store::{Job, JobOutcome, NotificationEmail, TokenPurpose};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::error::error_chain as chain;

/// Settings keys.
pub const SMTP_SETTINGS: &str = "smtp";
pub const NOTIFICATION_TEMPLATE: &str = "email_template_notification";

/// The stream email's subject and body: tera templates, plain text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTemplate {
    pub subject: String,
    pub body: String,
}

impl Default for EmailTemplate {
    fn default() -> Self {
        EmailTemplate {
            // Every outgoing mail keeps the [#number] tag, so replies thread.
            subject: "[#{{ case.number }}] {{ case.name }}".into(),
            body: "{{ author }} {% if kind == \"mention\" %}mentioned you{% elif note_type == \"Post\" %}wrote{% elif note_type == \"Update\" %}changed the status to {{ case.status }}{% else %}updated the case{% endif %}:\n\n{% if post %}{{ post }}\n\n{% endif %}Case #{{ case.number }}: {{ case.name }} (status: {{ case.status }})\n{% if link %}{{ link }}\n{% endif %}\nYou receive this because you follow this case.\n".into(),
        }
    }
}

impl EmailTemplate {
    /// Renders with the notification's facts; errors name the template.
    pub fn render(&self, context: &tera::Context) -> Result<(String, String), String> {
        // Admin-written templates must not read the server's environment
        // (database URLs, passwords): tera's `get_env` is replaced.
        let mut tera = tera::Tera::default();
        tera.register_function("get_env", |_: &std::collections::HashMap<String, tera::Value>| {
            Err(tera::Error::msg("get_env is not available in Docket templates"))
        });
        let subject = tera.render_str(&self.subject, context).map_err(|e| format!("subject: {}", chain(&e)))?;
        let body = tera.render_str(&self.body, context).map_err(|e| format!("body: {}", chain(&e)))?;
        // A subject is one line, whatever the template does.
        Ok((subject.lines().collect::<Vec<_>>().join(" ").trim().to_string(), body))
    }

    /// Checks that both parts render with example data.
    pub fn validate(&self) -> Result<(), String> {
        self.render(&example_context()).map(|_| ())
    }
}

fn example_context() -> tera::Context {
    let mut context = tera::Context::new();
    context
        .insert("case", &serde_json::json!({"id": "x", "number": 42, "name": "Printer on fire", "status": "Pending"}));
    context.insert("author", "Ann Agent");
    context.insert("kind", "note");
    context.insert("note_type", "Post");
    context.insert("post", "Have you tried turning it off and on again?");
    context.insert("link", "https://help.example.com/cases/42");
    context.insert("recipient", "Bo Customer");
    context
}

pub async fn smtp_settings(state: &AppState) -> Option<SmtpSettings> {
    let value = state.store.setting(SMTP_SETTINGS).await.ok()??;
    serde_json::from_value(value).ok()
}

/// The SMTP settings a job sends with, or the retry that waits until an
/// admin configures them.
pub async fn job_sender(state: &AppState) -> Result<SmtpSettings, JobOutcome> {
    smtp_settings(state)
        .await
        .ok_or_else(|| JobOutcome::Retry("no SMTP server is configured (admin area, Email)".into()))
}

/// The domain of the Message-IDs Docket makes: its From address's.
pub fn message_domain(settings: &SmtpSettings) -> String {
    settings.from_address.rsplit('@').next().unwrap_or("docket.invalid").to_string()
}

pub async fn notification_template(state: &AppState) -> EmailTemplate {
    match state.store.setting(NOTIFICATION_TEMPLATE).await {
        Ok(Some(value)) => serde_json::from_value(value).unwrap_or_default(),
        _ => EmailTemplate::default(),
    }
}

/// The `email_notification` job: skipped when the notification was read
/// in-app meanwhile, or is gone.
pub async fn send_notification(state: &AppState, job: &Job) -> JobOutcome {
    let Some(id) = job.payload["notification_id"].as_str() else {
        return JobOutcome::Permanent("payload has no notification_id".into());
    };
    let facts = match state.store.notification_email(id).await {
        Ok(Some(facts)) => facts,
        Ok(None) => return JobOutcome::Done,
        Err(error) => return JobOutcome::Retry(error.to_string()),
    };
    if facts.is_read {
        return JobOutcome::Done;
    }
    let settings = match job_sender(state).await {
        Ok(settings) => settings,
        Err(outcome) => return outcome,
    };
    let template = notification_template(state).await;
    let (subject, body) = match template.render(&context(state, &facts)) {
        Ok(rendered) => rendered,
        Err(error) => return JobOutcome::Permanent(format!("the email template failed: {error}")),
    };
    let domain = message_domain(&settings);
    let email = OutgoingEmail {
        to_address: facts.to_address.clone(),
        to_name: Some(facts.to_name.clone()),
        // Whatever the admin's template says, the tag stays, so replies thread.
        subject: with_case_tag(&subject, facts.case_number),
        text_body: body,
        // The Message-ID names the case, so a reply's In-Reply-To leads back
        // to it; the notification id keeps it unique per recipient.
        message_id: format!("case-{}.note-{}.{}@{domain}", facts.case_id, facts.note_id, facts.notification_id),
        in_reply_to: Some(format!("case-{}@{domain}", facts.case_id)),
        reply_to: None,
        headers: vec![("Auto-Submitted", "auto-generated".into()), ("X-Auto-Response-Suppress", "All".into())],
        ..Default::default()
    };
    send(&settings, &email).await
}

/// The auto-reply a mailbox sends when none is written: says the case's
/// number, and how to add to it.
pub fn default_auto_reply() -> EmailTemplate {
    EmailTemplate {
        subject: "[#{{ case.number }}] {{ case.name }}".into(),
        body: "Hello{% if contact_name %} {{ contact_name }}{% endif %},\n\nthank you for your message. We opened case #{{ case.number }} for it and will answer soon.\nTo add anything, reply to this email and keep [#{{ case.number }}] in the subject.\n\n{{ mailbox }}\n".into(),
    }
}

/// A mailbox's auto-reply template: its own, or the default for the
/// parts it left empty.
pub fn auto_reply_template(subject: &str, body: &str) -> EmailTemplate {
    let default = default_auto_reply();
    EmailTemplate {
        subject: if subject.trim().is_empty() { default.subject } else { subject.to_string() },
        body: if body.trim().is_empty() { default.body } else { body.to_string() },
    }
}

fn auto_reply_context(case: &serde_json::Value, contact_name: &str, subject: &str, mailbox: &str) -> tera::Context {
    let mut context = tera::Context::new();
    context.insert("case", case);
    context.insert("contact_name", contact_name);
    context.insert("email", &serde_json::json!({ "subject": subject }));
    context.insert("mailbox", mailbox);
    context
}

/// Checks that an auto-reply template renders with example data.
pub fn validate_auto_reply(subject: &str, body: &str) -> Result<(), String> {
    let case = serde_json::json!({"id": "x", "number": 42, "name": "Printer on fire", "status": "New"});
    let context = auto_reply_context(&case, "Bo Customer", "Printer on fire", "Support");
    auto_reply_template(subject, body).render(&context).map(|_| ())
}

/// How mail from a mailbox leaves: through its own SMTP server, or the one
/// under Admin -> Email with the mailbox's from address.
pub async fn sender_for(state: &AppState, mailbox: &docket_store::Mailbox) -> Result<SmtpSettings, JobOutcome> {
    match state.store.mailbox_smtp(mailbox).await {
        Ok(Some(settings)) => Ok(settings),
        Ok(None) => {
            let mut settings = job_sender(state).await?;
            settings.from_address = mailbox.reply_from_address.clone().unwrap_or_else(|| mailbox.email_address.clone());
            if mailbox.reply_from_name.is_some() {
                settings.from_name = mailbox.reply_from_name.clone();
            }
            Ok(settings)
        }
        Err(error) => Err(JobOutcome::Retry(error.to_string())),
    }
}

/// `email_auto_reply`: tells a new case's sender its number. Marked as an
/// automatic reply, so well-behaved responders do not answer it, and sent
/// with the case's `[#number]` tag and In-Reply-To the message.
pub async fn send_auto_reply(state: &AppState, job: &Job) -> JobOutcome {
    let text = |key: &str| job.payload[key].as_str().map(str::to_string);
    let (Some(mailbox_id), Some(case_id), Some(to_address)) = (text("mailbox_id"), text("case_id"), text("to_address"))
    else {
        return JobOutcome::Permanent("payload lacks mailbox_id, case_id or to_address".into());
    };
    let system = docket_domain::Actor::system();
    let mailbox = match state.store.mailbox(&system, &mailbox_id).await {
        Ok(mailbox) => mailbox,
        Err(docket_store::StoreError::NotFound) => return JobOutcome::Permanent("the mailbox was deleted".into()),
        Err(error) => return JobOutcome::Retry(error.to_string()),
    };
    let case = match state.store.get_case(&system, &case_id).await {
        Ok(case) => case,
        Err(docket_store::StoreError::NotFound) => return JobOutcome::Permanent("the case was deleted".into()),
        Err(error) => return JobOutcome::Retry(error.to_string()),
    };
    let settings = match sender_for(state, &mailbox).await {
        Ok(settings) => settings,
        Err(outcome) => return outcome,
    };
    let case_facts =
        serde_json::json!({"id": case.id, "number": case.number, "name": case.name, "status": case.status});
    let to_name = text("to_name");
    let context = auto_reply_context(
        &case_facts,
        to_name.as_deref().unwrap_or_default(),
        text("subject").as_deref().unwrap_or_default(),
        &mailbox.name,
    );
    let (subject, body) =
        match auto_reply_template(&mailbox.auto_reply_subject, &mailbox.auto_reply_body).render(&context) {
            Ok(rendered) => rendered,
            Err(error) => return JobOutcome::Permanent(format!("the auto-reply template failed: {error}")),
        };
    let domain = message_domain(&settings);
    let email = OutgoingEmail {
        to_address,
        to_name,
        subject: with_case_tag(&subject, case.number),
        text_body: body,
        message_id: docket_email::inbound::docket_message_id(&case.id, &format!("auto-{}", job.id), &domain),
        in_reply_to: text("in_reply_to"),
        reply_to: Some(mailbox.reply_to_address.clone().unwrap_or_else(|| mailbox.email_address.clone())),
        headers: vec![("Auto-Submitted", "auto-replied".into()), ("X-Auto-Response-Suppress", "All".into())],
        ..Default::default()
    };
    send(&settings, &email).await
}

/// `email_reply`: sends an agent's reply from a case, from the case's
/// mailbox (so answers come back to it), threaded onto the customer's last
/// message, with the note's attachments.
pub async fn send_email_reply(state: &AppState, job: &Job) -> JobOutcome {
    let Some(note_id) = job.payload["note_id"].as_str() else {
        return JobOutcome::Permanent("payload has no note_id".into());
    };
    let facts = match state.store.email_reply(note_id).await {
        Ok(Some(facts)) => facts,
        Ok(None) => return JobOutcome::Done,
        Err(error) => return JobOutcome::Retry(error.to_string()),
    };
    let mailbox = match &facts.mailbox_id {
        Some(id) => state.store.mailbox(&docket_domain::Actor::system(), id).await.ok(),
        None => None,
    };
    let (settings, reply_to) = match &mailbox {
        Some(mailbox) => match sender_for(state, mailbox).await {
            Ok(settings) => (settings, Some(mailbox.reply_to_address.clone().unwrap_or(mailbox.email_address.clone()))),
            Err(outcome) => return outcome,
        },
        None => match job_sender(state).await {
            Ok(settings) => (settings, None),
            Err(outcome) => return outcome,
        },
    };
    let mut attachments = Vec::new();
    for (name, content_type, storage_key) in &facts.attachments {
        match tokio::fs::read(crate::api::attachments::stored_file(state, storage_key)).await {
            Ok(bytes) => attachments.push(docket_email::OutgoingAttachment {
                name: name.clone(),
                content_type: content_type.clone(),
                bytes,
            }),
            Err(error) => return JobOutcome::Retry(format!("reading attachment {name}: {error}")),
        }
    }
    let mut to = facts.to.into_iter();
    let Some(first) = to.next() else {
        return JobOutcome::Permanent("the reply has no recipient".into());
    };
    let email = OutgoingEmail {
        to_address: first,
        also_to: to.collect(),
        cc: facts.cc,
        subject: with_case_tag(&facts.subject, facts.case_number),
        text_body: facts.body,
        message_id: facts.message_id,
        in_reply_to: facts.in_reply_to,
        reply_to,
        attachments,
        ..Default::default()
    };
    send(&settings, &email).await
}

/// Sends one message; a failure the server may recover from is retried.
/// The `portal_account_email` job: makes a one-time token (only now, so no
/// usable token waits in the queue) and emails its link, an invitation or a
/// password reset. A retry makes a new token, replacing the unsent one.
pub async fn send_account_email(state: &AppState, job: &Job) -> JobOutcome {
    let (Some(user_id), Some(purpose)) =
        (job.payload["user_id"].as_str(), job.payload["purpose"].as_str().and_then(TokenPurpose::parse))
    else {
        return JobOutcome::Permanent("payload has no user_id or purpose".into());
    };
    let base = state.config.public_url.trim_end_matches('/');
    if base.is_empty() {
        return JobOutcome::Permanent("set DOCKET_PUBLIC_URL: the email must link to the portal".into());
    }
    let settings = match job_sender(state).await {
        Ok(settings) => settings,
        Err(outcome) => return outcome,
    };
    let token = crate::secrets::random_token();
    let portal_id = job.payload["portal_id"].as_str();
    let facts =
        match state.store.issue_user_token(user_id, purpose, portal_id, &crate::secrets::sha256_hex(&token)).await {
            Ok(Some(facts)) => facts,
            // The user left, was deactivated or lost their address: nothing to send.
            Ok(None) => return JobOutcome::Done,
            Err(error) => return JobOutcome::Retry(error.to_string()),
        };
    let Some(slug) = &facts.portal_slug else {
        return JobOutcome::Permanent("no active portal to link to (admin area, Portals)".into());
    };
    let link = format!("{base}/portal/{slug}/password/{token}");
    let expires = facts.expires_at.format("%Y-%m-%d %H:%M UTC");
    let (subject, text_body) = match purpose {
        TokenPurpose::Invitation => (
            format!("Your access to {}", facts.portal_title),
            format!(
                "Hello {},\n\nyou are invited to {}, where you can open cases and follow our answers.\n\n\
                 Your username: {}\nChoose your password here (the link works once, until {expires}):\n{link}\n",
                facts.name, facts.portal_title, facts.username
            ),
        ),
        TokenPurpose::PasswordReset => (
            format!("Reset your password for {}", facts.portal_title),
            format!(
                "Hello {},\n\nsomeone (we hope you) asked to reset your password for {}.\n\
                 Your username: {}\nChoose a new password here (the link works once, until {expires}):\n{link}\n\n\
                 If you did not ask for this, ignore this email: your password stays as it is.\n",
                facts.name, facts.portal_title, facts.username
            ),
        ),
    };
    let domain = message_domain(&settings);
    let email = OutgoingEmail {
        to_address: facts.email.clone(),
        to_name: Some(facts.name.clone()),
        subject,
        text_body,
        message_id: format!("account-{}.{}@{domain}", purpose.as_str(), job.id),
        headers: vec![("Auto-Submitted", "auto-generated".into())],
        ..Default::default()
    };
    send(&settings, &email).await
}

/// The `web_form_confirmation` job: tells a visitor of a portal's public
/// form the number of the case their request opened. Its Message-ID names
/// the case, so a reply threads onto it. Anyone can type any address into
/// the form, so the email carries none of the sender's words (no name, no
/// subject): it cannot be used to send someone a message in our name.
pub async fn send_web_form_confirmation(state: &AppState, job: &Job) -> JobOutcome {
    let (Some(case_id), Some(to)) = (job.payload["case_id"].as_str(), job.payload["to"].as_str()) else {
        return JobOutcome::Permanent("payload has no case_id or to".into());
    };
    let case = match state.store.get_case(&docket_domain::Actor::system(), case_id).await {
        Ok(case) => case,
        // Deleted meanwhile: nothing to confirm.
        Err(docket_store::StoreError::NotFound) => return JobOutcome::Done,
        Err(error) => return JobOutcome::Retry(error.to_string()),
    };
    let settings = match job_sender(state).await {
        Ok(settings) => settings,
        Err(outcome) => return outcome,
    };
    let domain = message_domain(&settings);
    let email = OutgoingEmail {
        to_address: to.to_string(),
        to_name: None,
        subject: format!("[#{}] We received your request", case.number),
        text_body: format!(
            "Hello,\n\nwe received a request sent with this email address through our website, and opened \
             case #{} for it. We will answer soon.\nTo add anything, reply to this email and keep [#{}] in the \
             subject.\n\nIf you did not send it, you can ignore this email.\n",
            case.number, case.number
        ),
        message_id: docket_email::inbound::docket_message_id(&case.id, "confirmation", &domain),
        headers: vec![("Auto-Submitted", "auto-replied".into()), ("X-Auto-Response-Suppress", "All".into())],
        ..Default::default()
    };
    send(&settings, &email).await
}

async fn send(settings: &SmtpSettings, email: &OutgoingEmail) -> JobOutcome {
    match docket_email::send(settings, email).await {
        Ok(()) => JobOutcome::Done,
        Err(SendError::Temporary(error)) => JobOutcome::Retry(error),
        Err(SendError::Permanent(error)) => JobOutcome::Permanent(error),
    }
}

/// Every mail about a case carries its `[#number]` tag, whatever the
/// template says, so replies thread.
pub fn with_case_tag(subject: &str, number: i64) -> String {
    if docket_email::inbound::subject_case_number(subject) == Some(number) {
        subject.to_string()
    } else {
        format!("[#{number}] {subject}")
    }
}

fn context(state: &AppState, facts: &NotificationEmail) -> tera::Context {
    let mut context = tera::Context::new();
    context.insert(
        "case",
        &serde_json::json!({"id": facts.case_id, "number": facts.case_number, "name": facts.case_name, "status": facts.case_status}),
    );
    context.insert("author", &facts.author_name);
    context.insert("kind", &facts.kind);
    context.insert("note_type", &facts.note_type);
    context.insert("post", &facts.post);
    context.insert("recipient", &facts.to_name);
    let base = state.config.public_url.trim_end_matches('/');
    // Customers get the case's page in the default portal; staff the agent
    // page.
    let link = match (base.is_empty(), facts.to_is_portal, &facts.portal_slug) {
        (true, _, _) | (false, true, None) => String::new(),
        (false, true, Some(slug)) => format!("{base}/portal/{slug}/cases/{}", facts.case_number),
        (false, false, _) => format!("{base}/cases/{}", facts.case_number),
    };
    context.insert("link", &link);
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_template_renders() {
        let (subject, body) = EmailTemplate::default().render(&example_context()).expect("renders");
        assert_eq!(subject, "[#42] Printer on fire");
        assert!(body.starts_with("Ann Agent wrote:"), "{body}");
        assert!(body.contains("turning it off"));
    }

    #[test]
    fn auto_replies_render_and_keep_the_tag() {
        assert!(validate_auto_reply("", "").is_ok());
        assert!(validate_auto_reply("{{ case.number", "").is_err());
        assert_eq!(with_case_tag("Thanks", 7), "[#7] Thanks");
        assert_eq!(with_case_tag("[#7] Thanks", 7), "[#7] Thanks");
        assert_eq!(with_case_tag("[#8] Thanks", 7), "[#7] [#8] Thanks");
    }

    #[test]
    fn broken_templates_are_refused_with_a_reason() {
        let broken = EmailTemplate { subject: "{{ case.number".into(), body: "x".into() };
        assert!(broken.validate().expect_err("broken").starts_with("subject"));
        let unknown = EmailTemplate { subject: "x".into(), body: "{{ nope.field }}".into() };
        assert!(unknown.validate().is_err());
        let snooping = EmailTemplate { subject: "x".into(), body: "{{ get_env(name=\"PATH\") }}".into() };
        assert!(snooping.validate().is_err(), "templates cannot read the environment");
    }
}
