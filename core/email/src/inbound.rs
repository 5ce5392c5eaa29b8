//! Inbound mail: a raw message parsed (by mail-parser) into what ingestion
//! needs, and the pure decisions about it: whether it is automatic
//! (auto-replies, bounces, bulk mail), which case its subject tags, and a
//! reply's new text without the quoted history. No IO here.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// An address from a header, lower-cased for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    pub address: String,
    pub name: Option<String>,
}

/// A file carried by a message (attachments, inline images, forwarded
/// messages as `.eml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundAttachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// What ingestion needs from a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEmail {
    /// Without angle brackets; `None` when the message has none.
    pub message_id: Option<String>,
    /// The Message-ID, or for a message without one a digest of its bytes:
    /// what deduplicates the message across fetches and mailboxes.
    pub key: String,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub from: Option<EmailAddress>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    /// Decoded (encoded words), one line, trimmed; may be empty.
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    /// The plain-text body, or the HTML body converted to text.
    pub text: String,
    pub attachments: Vec<InboundAttachment>,
    /// Why this message was sent by a machine (auto-reply, bounce, bulk),
    /// if it was: such mail never opens a case or gets an auto-reply.
    pub automatic: Option<String>,
}

/// Why a message could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message has no headers that could be read")]
    Unreadable,
}

/// Reads a raw RFC 5322 message. mail-parser is lenient (bad charsets are
/// decoded lossily, broken boundaries end the part), so only messages with
/// nothing readable fail.
pub fn parse(raw: &[u8]) -> Result<InboundEmail, ParseError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let message = MessageParser::default().parse(raw).ok_or(ParseError::Unreadable)?;
    if message.headers().is_empty() {
        return Err(ParseError::Unreadable);
    }
    let subject = clean(&message.subject().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" "));
    let text = clean(&message.body_text(0).map(Cow::into_owned).unwrap_or_default());
    let mut attachments = Vec::new();
    for (index, part) in message.attachments().enumerate() {
        let content_type = match part.content_type() {
            Some(ct) => format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("octet-stream")).to_ascii_lowercase(),
            None if part.is_message() => "message/rfc822".to_string(),
            None => "application/octet-stream".to_string(),
        };
        let name = match part.attachment_name() {
            Some(name) if !name.trim().is_empty() => name.trim().to_string(),
            _ => default_name(index + 1, &content_type, part.message().and_then(|m| m.subject())),
        };
        let bytes = match &part.body {
            // A forwarded message is kept as it came, to open as `.eml`.
            PartType::Message(nested) => nested.raw_message().to_vec(),
            _ => part.contents().to_vec(),
        };
        attachments.push(InboundAttachment { name, content_type, bytes });
    }
    let header_text = |name: &str| message.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    let content_type = message.content_type().map(|ct| {
        let report = ct.attribute("report-type").unwrap_or_default().to_ascii_lowercase();
        (format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase(), report)
    });
    let from = first_address(message.from());
    let automatic = automatic_reason(&AutoFacts {
        auto_submitted: header_text("Auto-Submitted"),
        x_autoreply: header_text("X-Autoreply"),
        x_autorespond: header_text("X-Autorespond"),
        precedence: header_text("Precedence"),
        x_auto_response_suppress: header_text("X-Auto-Response-Suppress"),
        content_type,
        return_path: header_text("Return-Path"),
        from: from.as_ref().map(|a| a.address.clone()),
    });
    let message_id = message.message_id().map(clean_id).filter(|id| !id.is_empty() && id.len() <= MAX_ID_BYTES);
    let key = match &message_id {
        Some(id) => id.clone(),
        None => format!("sha256-{}@no-message-id", hex::encode(Sha256::digest(raw))),
    };
    // Only the nearest ancestors matter for threading.
    let mut references = ids(message.references());
    if references.len() > MAX_REFERENCES {
        references.drain(..references.len() - MAX_REFERENCES);
    }
    Ok(InboundEmail {
        message_id,
        key,
        in_reply_to: ids(message.in_reply_to()).into_iter().take(MAX_REFERENCES).collect(),
        references,
        from,
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        subject,
        date: message.date().and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)),
        text,
        attachments,
        automatic,
    })
}

fn default_name(index: usize, content_type: &str, subject: Option<&str>) -> String {
    if content_type == "message/rfc822" {
        let subject = subject.unwrap_or("forwarded message");
        let safe: String = subject.chars().filter(|c| c.is_alphanumeric() || " -_".contains(*c)).take(60).collect();
        return format!("{}.eml", if safe.trim().is_empty() { "forwarded message" } else { safe.trim() });
    }
    let extension = match content_type {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "text/plain" => "txt",
        "text/html" => "html",
        "application/pdf" => "pdf",
        _ => "bin",
    };
    format!("attachment-{index}.{extension}")
}

/// Longer Message-IDs are not real ones (RFC 5322 lines are at most 998
/// characters); they are treated as absent.
const MAX_ID_BYTES: usize = 500;
/// References kept (the newest): enough to thread any real conversation.
const MAX_REFERENCES: usize = 50;

fn clean_id(id: &str) -> String {
    clean(id.trim().trim_start_matches('<').trim_end_matches('>').trim())
}

/// Text without NUL characters, which no database text column holds (a
/// decoded `=?UTF-8?B?AA==?=` would otherwise fail every insert).
fn clean(text: &str) -> String {
    if text.contains('\0') { text.replace('\0', "") } else { text.to_string() }
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    value
        .as_text_list()
        .unwrap_or_default()
        .iter()
        .map(|id| clean_id(id))
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID_BYTES)
        .collect()
}

fn to_address(addr: &mail_parser::Addr<'_>) -> Option<EmailAddress> {
    let address = clean(&addr.address()?.trim().to_ascii_lowercase());
    if !address.contains('@') || address.len() > 254 {
        return None;
    }
    let name = addr.name().map(|n| clean(n.trim())).filter(|n| !n.is_empty());
    Some(EmailAddress { address, name })
}

fn first_address(value: Option<&Address<'_>>) -> Option<EmailAddress> {
    value?.iter().find_map(to_address)
}

fn addresses(value: Option<&Address<'_>>) -> Vec<EmailAddress> {
    value.map(|a| a.iter().filter_map(to_address).collect()).unwrap_or_default()
}

/// The headers that tell machine-sent mail apart, lower-cased.
#[derive(Debug, Default)]
struct AutoFacts {
    auto_submitted: Option<String>,
    x_autoreply: Option<String>,
    x_autorespond: Option<String>,
    precedence: Option<String>,
    x_auto_response_suppress: Option<String>,
    /// The top-level type, and its `report-type` parameter.
    content_type: Option<(String, String)>,
    return_path: Option<String>,
    from: Option<String>,
}

/// Why a message is automatic, per `domain.md`: `Auto-Submitted` other
/// than `no`, `X-Autoreply`, `X-Autorespond`, `Precedence: bulk|junk|list`,
/// `X-Auto-Response-Suppress`, and delivery-status bounces.
fn automatic_reason(facts: &AutoFacts) -> Option<String> {
    if let Some((content_type, report)) = &facts.content_type
        && content_type == "multipart/report"
        && report == "delivery-status"
    {
        return Some("a delivery status report (bounce)".into());
    }
    let from = facts.from.as_deref().unwrap_or_default();
    if from.starts_with("mailer-daemon@") || from.starts_with("postmaster@") {
        return Some(format!("sent by {from} (bounce)"));
    }
    if facts.return_path.as_deref().is_some_and(|p| p.is_empty() || p == "<>") {
        return Some("an empty Return-Path (bounce)".into());
    }
    match facts.auto_submitted.as_deref() {
        Some(value) if !value.is_empty() && value != "no" => return Some(format!("Auto-Submitted: {value}")),
        _ => {}
    }
    if facts.x_autoreply.is_some() {
        return Some("X-Autoreply".into());
    }
    if facts.x_autorespond.is_some() {
        return Some("X-Autorespond".into());
    }
    if let Some(precedence) = facts.precedence.as_deref()
        && matches!(precedence, "bulk" | "junk" | "list")
    {
        return Some(format!("Precedence: {precedence}"));
    }
    if facts.x_auto_response_suppress.is_some() {
        return Some("X-Auto-Response-Suppress".into());
    }
    None
}

/// The case a Message-ID that Docket made names: Docket's outgoing mail
/// has IDs like `case-<case id>.<what>@<domain>`, so a reply's
/// In-Reply-To or References lead back to the case without a lookup, and
/// a message carrying such an ID as its own is one of ours coming back.
pub fn docket_case_id(message_id: &str) -> Option<&str> {
    let rest = message_id.strip_prefix("case-")?;
    let end = rest.find(['.', '@']).unwrap_or(rest.len());
    let id = &rest[..end];
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// A Message-ID for mail Docket sends about a case: `what` tells the
/// messages apart (`note-<id>`, `auto-<id>`, `reply-<id>`).
pub fn docket_message_id(case_id: &str, what: &str, domain: &str) -> String {
    format!("case-{case_id}.{what}@{domain}")
}

/// The case number a subject tags with `[#number]`, if any.
pub fn subject_case_number(subject: &str) -> Option<i64> {
    let mut rest = subject;
    while let Some(start) = rest.find("[#") {
        let after = &rest[start + 2..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with(']') {
            return digits.parse().ok();
        }
        rest = after;
    }
    None
}

/// A reply's new text: quoted lines (`>`) and the quoted history after an
/// attribution line ("On ... wrote:", "-----Original Message-----",
/// Outlook's "From:" block) are cut. The raw message keeps everything.
pub fn without_quoted_history(text: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let attribution = (trimmed.starts_with("On ") && trimmed.ends_with("wrote:"))
            || (trimmed.starts_with("Am ") && trimmed.ends_with("schrieb:"))
            || (trimmed.starts_with("Le ") && trimmed.ends_with("a écrit :"))
            || trimmed.starts_with("-----Original Message-----")
            || trimmed.starts_with("-------- Original Message --------")
            || (trimmed.starts_with("From:") && kept.last().is_some_and(|l| l.trim().starts_with("____")));
        if attribution {
            break;
        }
        if trimmed.starts_with('>') {
            continue;
        }
        kept.push(line);
    }
    while kept.last().is_some_and(|l| l.trim().is_empty() || l.trim().starts_with("____")) {
        kept.pop();
    }
    kept.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(headers: &str, body: &str) -> Vec<u8> {
        format!("{}\r\n\r\n{body}", headers.trim().replace('\n', "\r\n")).into_bytes()
    }

    #[test]
    fn a_plain_message_is_read() {
        let raw = message(
            "From: \"Bo Customer\" <Bo@Example.COM>\nTo: support@help.test\nCc: a@x.test, b@y.test\n\
             Subject: =?UTF-8?B?RHJ1Y2tlciBrYXB1dHQg8J+YoA==?=\nMessage-ID: <abc@example.com>\n\
             Date: Fri, 27 Nov 2026 10:00:00 +0000",
            "Hello,\r\nthe printer is broken.\r\n",
        );
        let email = parse(&raw).expect("parses");
        assert_eq!(email.message_id.as_deref(), Some("abc@example.com"));
        let from = email.from.expect("from");
        assert_eq!(from.address, "bo@example.com");
        assert_eq!(from.name.as_deref(), Some("Bo Customer"));
        assert_eq!(email.cc.len(), 2);
        assert_eq!(email.subject, "Drucker kaputt 😠");
        assert!(email.text.contains("the printer is broken"));
        assert_eq!(email.automatic, None);
        assert_eq!(email.date.map(|d| d.timestamp()), Some(1_795_773_600));
    }

    #[test]
    fn html_only_mail_becomes_text_and_attachments_are_kept() {
        let raw = message(
            "From: a@x.test\nSubject: Report\nMIME-Version: 1.0\n\
             Content-Type: multipart/mixed; boundary=\"b1\"",
            "--b1\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<p>Gr\u{fc}\u{df}e <b>bold</b><script>x()</script></p>\r\n\
             --b1\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n\r\nJVBERi0xLjQK\r\n\
             --b1\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@z.test\r\nSubject: Earlier\r\n\r\nOld mail\r\n--b1--\r\n",
        );
        let email = parse(&raw).expect("parses");
        assert!(email.text.contains("bold"), "{}", email.text);
        assert!(!email.text.contains("<b>"), "{}", email.text);
        let names: Vec<&str> = email.attachments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["invoice.pdf", "Earlier.eml"]);
        assert_eq!(email.attachments[0].bytes, b"%PDF-1.4\n");
        assert_eq!(email.attachments[0].content_type, "application/pdf");
        assert!(String::from_utf8_lossy(&email.attachments[1].bytes).contains("Old mail"));
    }

    #[test]
    fn threading_headers_are_lists_of_ids() {
        let raw = message(
            "From: a@x.test\nSubject: Re: [#42] Printer\nIn-Reply-To: <one@docket>\n\
             References: <zero@x> <one@docket>",
            "Thanks",
        );
        let email = parse(&raw).expect("parses");
        assert_eq!(email.in_reply_to, ["one@docket"]);
        assert_eq!(email.references, ["zero@x", "one@docket"]);
        assert_eq!(subject_case_number(&email.subject), Some(42));
    }

    #[test]
    fn machine_mail_is_recognised() {
        for (headers, says) in [
            ("Auto-Submitted: auto-replied", "Auto-Submitted"),
            ("X-Autoreply: yes", "X-Autoreply"),
            ("Precedence: bulk", "Precedence"),
            ("X-Auto-Response-Suppress: All", "X-Auto-Response-Suppress"),
            ("Return-Path: <>", "Return-Path"),
            ("Content-Type: multipart/report; report-type=delivery-status; boundary=x", "bounce"),
        ] {
            let raw = message(&format!("From: a@x.test\nSubject: s\n{headers}"), "body");
            let email = parse(&raw).expect("parses");
            assert!(email.automatic.as_deref().is_some_and(|r| r.contains(says)), "{headers}: {:?}", email.automatic);
        }
        let daemon = parse(&message("From: MAILER-DAEMON@mx.test\nSubject: failure", "x")).expect("parses");
        assert!(daemon.automatic.is_some());
        let human = parse(&message("From: a@x.test\nSubject: s\nAuto-Submitted: no", "x")).expect("parses");
        assert_eq!(human.automatic, None);
    }

    #[test]
    fn nul_characters_and_absurd_ids_are_left_out() {
        let long = "x".repeat(600);
        let mut references: Vec<String> = (0..80).map(|i| format!("<r{i}@x>")).collect();
        references.push(format!("<{long}@x>"));
        let raw = message(
            &format!(
                "From: \"Null =?UTF-8?B?AA==?=Name\" <a@x.test>\nSubject: =?UTF-8?B?QQBC?=\nMessage-ID: <{long}@x>\n\
                 References: {}",
                references.join(" ")
            ),
            "body",
        );
        let email = parse(&raw).expect("parses");
        assert_eq!(email.subject, "AB");
        assert!(!email.from.expect("from").name.unwrap_or_default().contains('\0'));
        assert_eq!(email.message_id, None, "a 600-byte Message-ID is not one");
        assert!(email.key.starts_with("sha256-"));
        assert!(email.references.len() <= MAX_REFERENCES);
        assert_eq!(email.references.last().map(String::as_str), Some("r79@x"));
    }

    #[test]
    fn unreadable_messages_fail_clearly() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b"  \r\n"), Err(ParseError::Empty));
    }

    #[test]
    fn docket_message_ids_name_their_case() {
        let case = "0123456789abcdef0123456789abcdef";
        let id = docket_message_id(case, "auto-1", "help.test");
        assert_eq!(docket_case_id(&id), Some(case));
        assert_eq!(docket_case_id(&format!("case-{case}@help.test")), Some(case));
        assert_eq!(docket_case_id("case-123@x"), None);
        assert_eq!(docket_case_id("abc@example.com"), None);
    }

    #[test]
    fn subject_tags_need_digits_and_a_bracket() {
        assert_eq!(subject_case_number("[#12] x"), Some(12));
        assert_eq!(subject_case_number("Re: Fwd: x [#7]"), Some(7));
        assert_eq!(subject_case_number("[#] x [#abc] [#9"), None);
        assert_eq!(subject_case_number("[#x] then [#5]"), Some(5));
    }

    #[test]
    fn quoted_history_is_cut() {
        let reply = "Works now, thanks!\n\nOn Fri, 27 Nov 2026, Support wrote:\n> Try again\n> please\n";
        assert_eq!(without_quoted_history(reply), "Works now, thanks!");
        let outlook = "Yes.\r\n\r\n-----Original Message-----\r\nFrom: Support\r\nOld text";
        assert_eq!(without_quoted_history(outlook), "Yes.");
        let inline = "> question?\nanswer\n> other?\nsecond answer";
        assert_eq!(without_quoted_history(inline), "answer\nsecond answer");
    }
}
