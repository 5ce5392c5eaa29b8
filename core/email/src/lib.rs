//! Email: outbound SMTP settings and one `send` that says whether a
//! failure is worth retrying; inbound parsing ([`inbound`]). Kept in its
//! own crate so the TLS, IMAP, SMTP and MIME dependencies compile once,
//! apart from the server.

pub mod imap;
pub mod inbound;

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};

/// How to reach the SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub security: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The From address, e.g. `support@example.com`.
    pub from_address: String,
    #[serde(default)]
    pub from_name: Option<String>,
}

impl SmtpSettings {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.host.trim().is_empty() || self.host.contains(char::is_whitespace) {
            return Err(("host".into(), "required, no spaces".into()));
        }
        if self.port == 0 {
            return Err(("port".into(), "must be 1 to 65535".into()));
        }
        if !matches!(self.security.as_str(), "none" | "starttls" | "tls") {
            return Err(("security".into(), "one of none, starttls, tls".into()));
        }
        if self.from_address.parse::<lettre::Address>().is_err() {
            return Err(("from_address".into(), "not a valid email address".into()));
        }
        Ok(())
    }
}

/// A file sent with a message.
#[derive(Debug, Clone)]
pub struct OutgoingAttachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// One message to send.
#[derive(Debug, Clone, Default)]
pub struct OutgoingEmail {
    pub to_address: String,
    pub to_name: Option<String>,
    /// More recipients besides `to_address`.
    pub also_to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text_body: String,
    /// Without angle brackets; becomes `Message-ID: <...>`.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub reply_to: Option<String>,
    /// Earlier messages of the thread (`References`), oldest first; the
    /// `In-Reply-To` message is added at the end.
    pub references: Vec<String>,
    /// Extra headers such as `Auto-Submitted`.
    pub headers: Vec<(&'static str, String)>,
    pub attachments: Vec<OutgoingAttachment>,
}

/// Why sending failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server or network may recover: try again later.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// The message or settings are wrong: retrying will not help.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Sends one message through the configured SMTP server.
pub async fn send(settings: &SmtpSettings, email: &OutgoingEmail) -> Result<(), SendError> {
    let message = build(settings, email)?;
    let transport = transport(settings)?;
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(error) if error.is_permanent() => Err(SendError::Permanent(error.to_string())),
        Err(error) => Err(SendError::Temporary(error.to_string())),
    }
}

/// Connects and says hello, for the admin's "test connection" button.
pub async fn test_connection(settings: &SmtpSettings) -> Result<(), SendError> {
    let transport = transport(settings)?;
    match transport.test_connection().await {
        Ok(true) => Ok(()),
        Ok(false) => Err(SendError::Temporary("the server did not answer NOOP".into())),
        Err(error) => Err(SendError::Temporary(error.to_string())),
    }
}

fn transport(settings: &SmtpSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
    let tls =
        || TlsParameters::new(settings.host.clone()).map_err(|e| SendError::Permanent(format!("TLS settings: {e}")));
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
        .port(settings.port)
        .timeout(Some(Duration::from_secs(30)));
    builder = match settings.security.as_str() {
        "tls" => builder.tls(Tls::Wrapper(tls()?)),
        "starttls" => builder.tls(Tls::Required(tls()?)),
        _ => builder.tls(Tls::None),
    };
    if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

fn mailbox(name: Option<&str>, address: &str) -> Result<Mailbox, SendError> {
    let address = address.parse().map_err(|e| SendError::Permanent(format!("address `{address}`: {e}")))?;
    Ok(Mailbox::new(name.map(str::to_string), address))
}

fn build(settings: &SmtpSettings, email: &OutgoingEmail) -> Result<Message, SendError> {
    let mut builder = Message::builder()
        .from(mailbox(settings.from_name.as_deref(), &settings.from_address)?)
        .to(mailbox(email.to_name.as_deref(), &email.to_address)?)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{}>", email.message_id)));
    for address in &email.also_to {
        builder = builder.to(mailbox(None, address)?);
    }
    for address in &email.cc {
        builder = builder.cc(mailbox(None, address)?);
    }
    if let Some(reply_to) = &email.reply_to {
        builder = builder.reply_to(mailbox(None, reply_to)?);
    }
    if let Some(in_reply_to) = &email.in_reply_to {
        let mut thread: Vec<String> = email.references.iter().map(|id| format!("<{id}>")).collect();
        thread.push(format!("<{in_reply_to}>"));
        builder = builder.in_reply_to(format!("<{in_reply_to}>")).references(thread.join(" "));
    }
    let built = if email.attachments.is_empty() {
        builder.header(ContentType::TEXT_PLAIN).body(email.text_body.clone())
    } else {
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(email.text_body.clone()));
        for file in &email.attachments {
            let content_type = ContentType::parse(&file.content_type)
                .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("a valid type"));
            parts = parts.singlepart(Attachment::new(file.name.clone()).body(file.bytes.clone(), content_type));
        }
        builder.multipart(parts)
    };
    let mut message = built.map_err(|e| SendError::Permanent(e.to_string()))?;
    for (name, value) in &email.headers {
        message.headers_mut().insert_raw(HeaderValue::new(HeaderName::new_from_ascii_str(name), value.clone()));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: 2525,
            security: "none".into(),
            username: None,
            password: None,
            from_address: "support@example.test".into(),
            from_name: Some("Support".into()),
        }
    }

    #[test]
    fn messages_carry_threading_headers() {
        let email = OutgoingEmail {
            to_address: "ann@example.test".into(),
            to_name: Some("Ann".into()),
            subject: "[#42] Printer on fire".into(),
            text_body: "Hello".into(),
            message_id: "note-1.case-2@docket".into(),
            in_reply_to: Some("case-2@docket".into()),
            reply_to: Some("help@example.test".into()),
            headers: vec![("Auto-Submitted", "auto-generated".into())],
            ..Default::default()
        };
        let text = String::from_utf8(build(&settings(), &email).expect("build").formatted()).expect("utf8");
        assert!(text.contains("Message-ID: <note-1.case-2@docket>"), "{text}");
        assert!(text.contains("In-Reply-To: <case-2@docket>"), "{text}");
        assert!(text.contains("Subject: [#42] Printer on fire"), "{text}");
        assert!(text.contains("Reply-To: help@example.test"), "{text}");
        assert!(text.contains("Auto-Submitted: auto-generated"), "{text}");
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings().validate().is_ok());
        assert_eq!(SmtpSettings { security: "ssl".into(), ..settings() }.validate().expect_err("bad").0, "security");
        assert_eq!(
            SmtpSettings { from_address: "nope".into(), ..settings() }.validate().expect_err("bad").0,
            "from_address"
        );
    }

    #[test]
    fn bad_recipients_are_permanent_failures() {
        let email = OutgoingEmail {
            to_address: "not an address".into(),
            to_name: None,
            subject: "x".into(),
            text_body: "x".into(),
            message_id: "m@docket".into(),
            in_reply_to: None,
            reply_to: None,
            headers: vec![],
            ..Default::default()
        };
        assert!(matches!(build(&settings(), &email), Err(SendError::Permanent(_))));
    }
}
