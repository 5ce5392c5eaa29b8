//! Email benchmarks: a corpus of realistic messages, how fast they parse,
//! and how fast a server turns a full IMAP folder into cases.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A realistic message, one of five kinds by `i`: a short question, a
/// multipart/alternative mail with HTML, one with a 40 KB attachment, a
/// reply (quoted history, References to an earlier message of the
/// corpus), and a Latin-1 HTML-only mail with an encoded subject.
pub fn message(i: u64) -> Vec<u8> {
    let from = format!("Customer {} <customer{}@customer.test>", i % 50, i % 50);
    let id = format!("<bench-{i}@customer.test>");
    let date = "Sat, 28 Nov 2026 09:00:00 +0000";
    let text = match i % 5 {
        0 => format!(
            "From: {from}\r\nTo: support@help.test\r\nSubject: Printer on floor {} is offline\r\nMessage-ID: {id}\r\n\
             Date: {date}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             Hello,\r\n\r\nthe printer on floor {} shows error E-42 since this morning. We restarted it twice.\r\n\
             Could someone have a look?\r\n\r\nThanks,\r\nCustomer {}\r\n",
            i % 40,
            i % 40,
            i % 50
        ),
        1 => format!(
            "From: {from}\r\nTo: support@help.test\r\nSubject: Invoice {i} looks wrong\r\nMessage-ID: {id}\r\n\
             Date: {date}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"alt-{i}\"\r\n\r\n\
             --alt-{i}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
             Dear support,=0D=0Athe invoice lists 12 licences; we have 10. Please correct it.=0D=0ARegards\r\n\
             --alt-{i}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
             <html><body><p>Dear support,</p><p>the invoice lists <b>12</b> licences; we have <b>10</b>.</p>\
             <p>Please correct it.</p><p>Regards</p></body></html>\r\n--alt-{i}--\r\n"
        ),
        2 => {
            let attachment = attachment_base64(40 * 1024, i);
            format!(
                "From: {from}\r\nTo: support@help.test\r\nSubject: Log files for the outage\r\nMessage-ID: {id}\r\n\
                 Date: {date}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix-{i}\"\r\n\r\n\
                 --mix-{i}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe logs from last night are attached.\r\n\
                 --mix-{i}\r\nContent-Type: application/pdf; name=\"report-{i}.pdf\"\r\n\
                 Content-Disposition: attachment; filename=\"report-{i}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                 {attachment}\r\n--mix-{i}--\r\n"
            )
        }
        3 => {
            let earlier = format!("<bench-{}@customer.test>", i.saturating_sub(3));
            format!(
                "From: {from}\r\nTo: support@help.test\r\nSubject: Re: Printer on floor {} is offline\r\nMessage-ID: {id}\r\n\
                 In-Reply-To: {earlier}\r\nReferences: {earlier}\r\nDate: {date}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
                 It happened again just now.\r\n\r\nOn Fri, 27 Nov 2026, Support wrote:\r\n> Please restart it.\r\n> Thanks\r\n",
                i % 40
            )
        }
        _ => format!(
            "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg{}@customer.test>\r\nTo: support@help.test\r\n\
             Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln_{i}?=\r\nMessage-ID: {id}\r\nDate: {date}\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n\
             <html><body><p>Guten Tag,</p><p>unser Zugang funktioniert nicht mehr.</p></body></html>\r\n",
            i % 50
        ),
    };
    text.into_bytes()
}

/// Base64 text of `size` pseudo-random bytes, in 76-character lines.
fn attachment_base64(size: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let chars = size.div_ceil(3) * 4;
    let mut out = String::with_capacity(chars + chars / 76 * 2);
    for n in 0..chars {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.push(ALPHABET[(state >> 58) as usize] as char);
        if (n + 1) % 76 == 0 {
            out.push_str("\r\n");
        }
    }
    out
}

/// Writes `count` messages as `DIR/0000001.eml`...
pub fn corpus(out: &std::path::Path, count: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for i in 0..count {
        std::fs::write(out.join(format!("{i:07}.eml")), message(i))?;
    }
    println!("wrote {count} messages to {}", out.display());
    Ok(())
}

/// Parses the corpus over and over: messages per second and MB/s.
pub fn parse(count: u64) -> anyhow::Result<()> {
    let corpus: Vec<Vec<u8>> = (0..100).map(message).collect();
    let bytes: usize = corpus.iter().map(Vec::len).sum();
    for raw in &corpus {
        docket_email::inbound::parse(raw).context("a corpus message failed to parse")?;
    }
    let started = Instant::now();
    let mut attachments = 0usize;
    for i in 0..count {
        let email = docket_email::inbound::parse(&corpus[(i % 100) as usize]).context("parse")?;
        attachments += email.attachments.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_message = bytes as f64 / 100.0;
    println!(
        "parsed {count} messages ({:.1} KiB average, {attachments} attachments) in {elapsed:.2} s: \
         {:.0} messages/s, {:.1} MB/s",
        per_message / 1024.0,
        count as f64 / elapsed,
        count as f64 * per_message / elapsed / 1e6
    );
    Ok(())
}

/// Creates a mailbox on a folder already holding `count` messages and
/// waits until every one is ingested: messages per second from the first
/// ingested to the last (the time to discover the mailbox is left out).
pub async fn ingest(url: &str, key: &str, imap_port: u16, count: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let base = url.trim_end_matches('/');
    let body = json!({
        "name": format!("bench-{}", chrono::Utc::now().timestamp_millis()),
        "email_address": "support@help.test", "imap_host": "127.0.0.1", "imap_port": imap_port,
        "imap_security": "none", "imap_username": "support", "imap_password": "support-password",
    });
    let response = client.post(format!("{base}/api/v1/mailboxes")).bearer_auth(key).json(&body).send().await?;
    if !response.status().is_success() {
        bail!("creating the mailbox answered {}: {}", response.status(), response.text().await?);
    }
    let mailbox: Value = response.json().await?;
    let id = mailbox["id"].as_str().context("no mailbox id")?.to_string();
    let created = Instant::now();
    let messages = format!("{base}/api/v1/mailboxes/{id}/messages");
    loop {
        let page: Value = client.get(format!("{messages}?limit=1")).bearer_auth(key).send().await?.json().await?;
        let total = page["total"].as_u64().unwrap_or(0);
        if total >= count {
            break;
        }
        if created.elapsed() > Duration::from_secs(1800) {
            bail!("only {total} of {count} messages ingested after 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = created.elapsed().as_secs_f64();
    let newest: Value = client.get(format!("{messages}?limit=1")).bearer_auth(key).send().await?.json().await?;
    let oldest: Value =
        client.get(format!("{messages}?limit=1&offset={}", count - 1)).bearer_auth(key).send().await?.json().await?;
    let at = |page: &Value| -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
        let text = page["items"][0]["received_at"].as_str().context("received_at")?;
        Ok(chrono::DateTime::parse_from_rfc3339(text)?.with_timezone(&chrono::Utc))
    };
    let span = (at(&newest)? - at(&oldest)?).num_milliseconds().max(1) as f64 / 1000.0;
    let quarantined: Value =
        client.get(format!("{messages}?status=quarantined&limit=1")).bearer_auth(key).send().await?.json().await?;
    println!(
        "ingested {count} messages in {span:.2} s: {:.0} messages/s ({wall:.1} s from creating the mailbox; \
         {} quarantined)",
        (count - 1) as f64 / span,
        quarantined["total"]
    );
    if quarantined["total"].as_u64().unwrap_or(0) > 0 {
        bail!("messages were quarantined: the corpus should all ingest");
    }
    Ok(())
}
