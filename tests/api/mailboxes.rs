//! Email-to-case through real servers: Dovecot serves the group mailboxes
//! over IMAP (mail delivered into them with `doveadm save`), aiosmtpd
//! receives the auto-replies. Each scenario runs on SQLite and PostgreSQL.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Dovecot, Server, Site, SmtpSink};

/// A raw message with CRLF line ends.
fn mail(headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = String::new();
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(&body.replace("\r\n", "\n").replace('\n', "\r\n"));
    text.into_bytes()
}

/// A plain message from `from` with a Message-ID.
fn simple(from: &str, subject: &str, message_id: &str, body: &str) -> Vec<u8> {
    mail(
        &[
            ("From", from),
            ("To", "support@help.test"),
            ("Subject", subject),
            ("Message-ID", &format!("<{message_id}>")),
            ("Date", "Sat, 28 Nov 2026 09:00:00 +0000"),
        ],
        body,
    )
}

/// Polls until `check` returns something, for up to a minute (a mailbox
/// whose node died is taken over when its lease runs out, about 22 s here).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A started site whose fetchers poll every second.
fn fast(site: Site) -> Site {
    site.with_env("DOCKET_MAIL_POLL_SECONDS", "1").with_env("DOCKET_EMAIL_DELAY_SECONDS", "0")
}

async fn configure_smtp(server: &Server, key: &str, port: u16) {
    let settings = json!({"host": "127.0.0.1", "port": port, "security": "none", "from_address": "docket@help.test"});
    let (status, body) = server.call(Method::PUT, "/api/v1/settings/smtp", key, Some(settings)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A Dovecot user and a mailbox that fetches from it.
async fn add_mailbox(server: &Server, key: &str, dovecot: &Dovecot, user: &str, extra: Value) -> Value {
    dovecot.add_user(user, "imap-secret");
    let mut body = json!({
        "name": user, "email_address": format!("{user}@help.test"), "imap_host": "127.0.0.1",
        "imap_port": dovecot.port, "imap_security": "none", "imap_username": user, "imap_password": "imap-secret",
    });
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    let (status, mailbox) = server.post("/api/v1/mailboxes", key, body).await;
    assert_eq!(status, StatusCode::CREATED, "{mailbox}");
    assert!(mailbox.get("imap_password").is_none(), "the password is never shown: {mailbox}");
    assert_eq!(mailbox["has_password"], true);
    mailbox
}

async fn cases(server: &Server, key: &str) -> Vec<Value> {
    let (status, list) = server.get("/api/v1/cases?limit=200&sort=number", key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["items"].as_array().expect("items").clone()
}

async fn wait_for_cases(server: &Server, key: &str, count: usize) -> Vec<Value> {
    eventually(&format!("{count} case(s)"), || async {
        let list = cases(server, key).await;
        (list.len() >= count).then_some(list)
    })
    .await
}

async fn stream(server: &Server, key: &str, case_id: &str) -> Vec<Value> {
    let (_, page) = server.get(&format!("/api/v1/cases/{case_id}/stream"), key).await;
    page["items"].as_array().expect("items").clone()
}

async fn messages(server: &Server, key: &str, mailbox_id: &str, status: &str) -> Vec<Value> {
    let (code, page) = server.get(&format!("/api/v1/mailboxes/{mailbox_id}/messages?status={status}"), key).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    page["items"].as_array().expect("items").clone()
}

async fn wait_for_messages(server: &Server, key: &str, mailbox_id: &str, count: usize) -> Vec<Value> {
    eventually(&format!("{count} fetched message(s)"), || async {
        let (_, page) = server.get(&format!("/api/v1/mailboxes/{mailbox_id}/messages?limit=200"), key).await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        (items.len() >= count).then_some(items)
    })
    .await
}

async fn new_mail_becomes_a_case_and_replies_thread_onto_it(site: Site) {
    let (Some(dovecot), Some(smtp)) = (Dovecot::start(), SmtpSink::start()) else { return };
    let site = fast(site);
    let server = site.start(&[]);
    let admin = site.admin_key();
    configure_smtp(&server, &admin, smtp.port).await;
    let (_, account) = server.post("/api/v1/accounts", &admin, json!({"name": "Acme Corp"})).await;
    let (status, contact) = server
        .post(
            "/api/v1/contacts",
            &admin,
            json!({"first_name": "Bo", "last_name": "Customer", "emails": ["bo@customer.test"], "account_ids": [account["id"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let (ann, ann_key) = server.agent(&site, &admin, "ann", json!({"read": "all", "edit": "all"}), json!([])).await;
    let mailbox = add_mailbox(
        &server,
        &admin,
        &dovecot,
        "support",
        json!({"assign_user_id": ann["id"], "auto_reply": true, "reopen_on_reply": true}),
    )
    .await;
    let mailbox_id = mailbox["id"].as_str().expect("id").to_string();

    // The connection test says what it found.
    let (status, test) = server.post(&format!("/api/v1/mailboxes/{mailbox_id}/test"), &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{test}");
    assert_eq!(test["ok"], true, "{test}");

    // A new message with an attachment: a case for Bo and Acme, assigned.
    let first = mail(
        &[
            ("From", "Bo Customer <Bo@Customer.test>"),
            ("To", "support@help.test"),
            ("Subject", "=?UTF-8?Q?Drucker_kaputt_=E2=80=93_help?="),
            ("Message-ID", "<first@customer.test>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "multipart/mixed; boundary=\"XX\""),
        ],
        "--XX\nContent-Type: text/plain; charset=utf-8\n\nThe printer prints nothing.\n--XX\n\
         Content-Type: text/plain; name=\"error.log\"\nContent-Disposition: attachment; filename=\"error.log\"\n\n\
         E42 paper jam\n--XX--\n",
    );
    dovecot.deliver("support", &first);
    let list = wait_for_cases(&server, &admin, 1).await;
    let case = &list[0];
    let (case_id, number) = (case["id"].as_str().expect("id").to_string(), case["number"].as_i64().expect("number"));
    assert_eq!(case["name"], "Drucker kaputt – help");
    assert!(case["description"].as_str().expect("description").contains("prints nothing"), "{case}");
    assert_eq!(case["contact_id"], contact["id"]);
    assert_eq!(case["account_id"], account["id"]);
    assert_eq!(case["assigned_user_id"], ann["id"]);
    assert_eq!(case["status"], "Assigned");
    assert_eq!(case["inbound_mailbox_id"], mailbox_id.as_str());
    let attachment_id = case["attachment_ids"][0].as_str().expect("an attachment").to_string();
    let response = server.request(Method::GET, &format!("/api/v1/attachments/{attachment_id}"), &admin).send().await;
    let response = response.expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("text").trim(), "E42 paper jam");

    // The auto-reply reaches the customer, marked so it gets no answer.
    let replies = smtp.wait_for(1).await;
    let reply = &replies[0];
    assert!(reply.contains(&format!("Subject: [#{number}]")), "{reply}");
    assert!(reply.contains("In-Reply-To: <first@customer.test>"), "{reply}");
    assert!(reply.contains("Auto-Submitted: auto-replied"), "{reply}");
    assert!(reply.contains("X-Auto-Response-Suppress: All"), "{reply}");
    assert!(reply.contains("bo@customer.test"), "{reply}");
    assert!(reply.contains("Reply-To: support@help.test"), "{reply}");

    // A vacation responder answering the auto-reply creates nothing.
    let vacation = mail(
        &[
            ("From", "bo@customer.test"),
            ("Subject", &format!("Out of office: [#{number}] Drucker")),
            ("Message-ID", "<ooo@customer.test>"),
            ("Auto-Submitted", "auto-replied"),
        ],
        "I am away until Monday.",
    );
    dovecot.deliver("support", &vacation);
    // A bounce creates nothing either.
    let bounce = mail(
        &[
            ("From", "MAILER-DAEMON@mx.customer.test"),
            ("Subject", "Undelivered Mail Returned to Sender"),
            ("Message-ID", "<bounce@mx.customer.test>"),
            ("Content-Type", "multipart/report; report-type=delivery-status; boundary=\"B\""),
        ],
        "--B\nContent-Type: text/plain\n\nThe mail could not be delivered.\n--B--\n",
    );
    dovecot.deliver("support", &bounce);

    // A reply by References threads onto the case, quoted history cut.
    let reply_by_references = mail(
        &[
            ("From", "bo@customer.test"),
            ("Subject", "Re: printer"),
            ("Message-ID", "<second@customer.test>"),
            ("In-Reply-To", "<first@customer.test>"),
            ("References", "<first@customer.test>"),
        ],
        "It works again.\n\nOn Sat, 28 Nov 2026, Support wrote:\n> We opened case\n",
    );
    dovecot.deliver("support", &reply_by_references);
    // A reply with only the tag in its subject too.
    dovecot.deliver(
        "support",
        &simple("bo@customer.test", &format!("Re: [#{number}] anything"), "third@customer.test", "Tag only."),
    );
    let notes = eventually("two email notes", || async {
        let notes: Vec<Value> =
            stream(&server, &admin, &case_id).await.into_iter().filter(|n| n["type"] == "EmailReceived").collect();
        (notes.len() >= 2).then_some(notes)
    })
    .await;
    let posts: Vec<&str> = notes.iter().map(|n| n["post"].as_str().unwrap_or_default()).collect();
    assert!(posts.contains(&"It works again."), "{posts:?}");
    assert!(posts.contains(&"Tag only."), "{posts:?}");
    let fetched = wait_for_messages(&server, &admin, &mailbox_id, 5).await;
    let statuses: Vec<&str> = fetched.iter().map(|m| m["status"].as_str().unwrap_or_default()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "automatic").count(), 2, "{fetched:?}");
    assert_eq!(cases(&server, &admin).await.len(), 1, "the vacation reply and the bounce made no case");
    assert_eq!(smtp.messages().len(), 1, "no auto-reply to machine mail or replies");

    // An agent answers from the case: to the contact, from the mailbox,
    // threaded, tagged, with the attachment; the customer's answer to it
    // (no tag in the subject) threads by its Message-ID.
    let (status, sent) = server
        .post(
            &format!("/api/v1/cases/{case_id}/emails"),
            &ann_key,
            json!({"body": "Please try the other tray.", "subject": "About your printer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["type"], "EmailSent");
    let outgoing = eventually("the agent's email", || async {
        smtp.messages().into_iter().find(|m| m.contains("Please try the other tray."))
    })
    .await;
    assert!(outgoing.contains(&format!("Subject: [#{number}] About your printer")), "{outgoing}");
    assert!(outgoing.contains("bo@customer.test"), "{outgoing}");
    assert!(outgoing.contains("Reply-To: support@help.test"), "{outgoing}");
    assert!(outgoing.contains("In-Reply-To: <third@customer.test>"), "{outgoing}");
    let sent_id = sent["data"]["message_id"].as_str().expect("message id").to_string();
    assert!(outgoing.contains(&format!("Message-ID: <{sent_id}>")), "{outgoing}");
    let answer = mail(
        &[
            ("From", "bo@customer.test"),
            ("Subject", "Re: About your printer"),
            ("Message-ID", "<answer@customer.test>"),
            ("In-Reply-To", &format!("<{sent_id}>")),
            ("MIME-Version", "1.0"),
            ("Content-Type", "multipart/mixed; boundary=\"ZZ\""),
        ],
        "--ZZ\nContent-Type: text/plain; charset=utf-8\n\nThe other tray works.\n--ZZ\n\
         Content-Type: text/plain; name=\"test-page.txt\"\nContent-Disposition: attachment; filename=\"test-page.txt\"\n\n\
         Printed fine.\n--ZZ--\n",
    );
    dovecot.deliver("support", &answer);
    let answer_note = eventually("the answer on the case", || async {
        let notes = stream(&server, &admin, &case_id).await;
        notes.into_iter().find(|n| n["post"] == "The other tray works.")
    })
    .await;
    let answer_file = answer_note["attachment_ids"][0].as_str().expect("the answer's file").to_string();
    // A colleague answering by email (a notification may quote internal
    // notes): recorded as their internal note, never shown to customers.
    let ann_path = format!("/api/v1/users/{}", ann["id"].as_str().expect("id"));
    let (status, body) = server.call(Method::PATCH, &ann_path, &admin, Some(json!({"email": "Ann@Help.test"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let from_staff = mail(
        &[
            ("From", "Ann <ann@help.test>"),
            ("Subject", &format!("Re: [#{number}] internal thoughts")),
            ("Message-ID", "<ann-1@help.test>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "multipart/mixed; boundary=\"YY\""),
        ],
        "--YY\nContent-Type: text/plain; charset=utf-8\n\nBetween us: the printer is beyond repair.\n--YY\n\
         Content-Type: text/plain; name=\"quote.txt\"\nContent-Disposition: attachment; filename=\"quote.txt\"\n\n\
         A new printer: 900 EUR\n--YY--\n",
    );
    dovecot.deliver("support", &from_staff);
    let staff_note = eventually("the colleague's note", || async {
        let notes = stream(&server, &admin, &case_id).await;
        notes.into_iter().find(|n| n["post"] == "Between us: the printer is beyond repair.")
    })
    .await;
    assert_eq!(staff_note["is_internal"], true, "{staff_note}");
    assert_eq!(staff_note["author_id"], ann["id"], "{staff_note}");
    // Its file is listed with the case's files for agents, and not even
    // by id for Bo, who still sees the file of his own first message.
    let staff_file = staff_note["attachment_ids"][0].as_str().expect("the colleague's file").to_string();
    let (_, agents_view) = server.get(&format!("/api/v1/cases/{case_id}"), &admin).await;
    assert!(agents_view["attachment_ids"].as_array().expect("ids").contains(&json!(staff_file)), "{agents_view}");
    let (status, bo) = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "bo", "type": "portal", "password": "portal-password", "contact_id": contact["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bo}");
    let bo_key = site.api_key_for("bo");
    let (status, bos_view) = server.get(&format!("/api/v1/cases/{case_id}"), &bo_key).await;
    assert_eq!(status, StatusCode::OK, "{bos_view}");
    assert_eq!(bos_view["attachment_ids"], json!([attachment_id, answer_file]), "{bos_view}");
    let (_, bos_list) = server.get("/api/v1/cases", &bo_key).await;
    assert_eq!(bos_list["items"][0]["attachment_ids"], json!([attachment_id, answer_file]), "{bos_list}");
    // A portal role that reads his cases but not their streams leaves him
    // the case's own file only.
    let permissions = json!({"case": {"create": "own", "read": "contact", "edit": "own", "stream": "no"}});
    let (status, role) =
        server.post("/api/v1/portal-roles", &admin, json!({"name": "No stream", "permissions": permissions})).await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let bo_roles = format!("/api/v1/users/{}/portal-roles", bo["id"].as_str().expect("id"));
    let (status, body) =
        server.call(Method::PUT, &bo_roles, &admin, Some(json!({"role_ids": [role["id"].clone()]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, bos_view) = server.get(&format!("/api/v1/cases/{case_id}"), &bo_key).await;
    assert_eq!(bos_view["attachment_ids"], json!([attachment_id]), "{bos_view}");
    let (status, refused) = server
        .post(&format!("/api/v1/cases/{case_id}/emails"), &ann_key, json!({"body": "x", "to": ["not an address"]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // Closed, then a reply: reopened (the mailbox says so).
    let (status, body) = server
        .call(
            Method::PATCH,
            &format!("/api/v1/cases/{case_id}"),
            &admin,
            Some(json!({"status": "Closed", "version": 1})),
        )
        .await;
    let version = if status == StatusCode::OK {
        body["version"].as_i64()
    } else {
        let (_, current) = server.get(&format!("/api/v1/cases/{case_id}"), &admin).await;
        let (status, body) = server
            .call(
                Method::PATCH,
                &format!("/api/v1/cases/{case_id}"),
                &admin,
                Some(json!({"status": "Closed", "version": current["version"]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["version"].as_i64()
    };
    assert!(version.is_some());
    dovecot.deliver(
        "support",
        &simple("bo@customer.test", &format!("[#{number}] again"), "fourth@customer.test", "Broken again."),
    );
    eventually("the case to reopen", || async {
        let (_, case) = server.get(&format!("/api/v1/cases/{case_id}"), &admin).await;
        (case["status"] == "Assigned").then_some(())
    })
    .await;

    // The mailbox reports its state.
    let (_, shown) = server.get(&format!("/api/v1/mailboxes/{mailbox_id}"), &admin).await;
    assert!(shown["status"]["last_success_at"].is_string(), "{shown}");
    assert!(shown["status"]["last_uid"].as_i64().expect("last uid") >= 8, "{shown}");
}

async fn auto_replies_are_limited_and_one_message_makes_one_case(site: Site) {
    let (Some(dovecot), Some(smtp)) = (Dovecot::start(), SmtpSink::start()) else { return };
    let site = fast(site);
    let server = site.start(&[]);
    let admin = site.admin_key();
    configure_smtp(&server, &admin, smtp.port).await;
    // Support spreads its new cases round-robin over a team of two.
    let levels = json!({"read": "all", "edit": "all"});
    let (kim, _) = server.agent(&site, &admin, "kim", levels.clone(), json!([])).await;
    let (lou, _) = server.agent(&site, &admin, "lou", levels, json!([])).await;
    let members = json!([{"user_id": kim["id"]}, {"user_id": lou["id"]}]);
    let (status, team) = server.post("/api/v1/teams", &admin, json!({"name": "Mail team", "members": members})).await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let support = json!({"auto_reply": true, "create_contacts": true, "distribution": "round-robin",
                         "target_team_id": team["id"], "team_ids": [team["id"]]});
    let support = add_mailbox(&server, &admin, &dovecot, "support", support).await;
    add_mailbox(&server, &admin, &dovecot, "sales", json!({"auto_reply": true})).await;

    // Six messages from one address: six cases, five auto-replies.
    for i in 1..=6 {
        let message =
            simple("Eve Example <eve@example.test>", &format!("Question {i}"), &format!("q{i}@example.test"), "Hi");
        dovecot.deliver("support", &message);
    }
    // One message sent to both mailboxes: one case.
    let both = simple("zed@example.test", "To both of you", "both@example.test", "Hello both");
    dovecot.deliver("support", &both);
    dovecot.deliver("sales", &both);
    let list = wait_for_cases(&server, &admin, 7).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let list = if cases(&server, &admin).await.len() > list.len() { cases(&server, &admin).await } else { list };
    assert_eq!(list.len(), 7, "{list:?}");
    assert_eq!(list.iter().filter(|c| c["name"] == "To both of you").count(), 1);
    let replies = smtp.wait_for(6).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let to_eve = smtp.messages().iter().filter(|m| m.contains("eve@example.test")).count();
    assert_eq!(to_eve, 5, "at most five auto-replies per address in two hours ({} sent)", replies.len());
    let from_support: Vec<&Value> = list.iter().filter(|c| c["inbound_mailbox_id"] == support["id"]).collect();
    assert!(from_support.len() >= 6, "{list:?}");
    let to_kim = from_support.iter().filter(|c| c["assigned_user_id"] == kim["id"]).count();
    let to_lou = from_support.iter().filter(|c| c["assigned_user_id"] == lou["id"]).count();
    assert_eq!(to_kim + to_lou, from_support.len(), "every case assigned: {from_support:?}");
    assert!(to_kim.abs_diff(to_lou) <= 1, "round-robin: {to_kim} and {to_lou}");
    assert!(from_support.iter().all(|c| c["status"] == "Assigned" && c["team_ids"] == json!([team["id"]])));
    let notes = stream(&server, &admin, from_support[0]["id"].as_str().expect("id")).await;
    let create = notes.iter().find(|n| n["type"] == "Create").expect("the Create note");
    assert_eq!(create["data"]["assignment"]["strategy"], "round-robin", "{create}");
    // A mailbox with its own SMTP server sends its auto-replies through it.
    let Some(own_smtp) = SmtpSink::start() else { return };
    let billing = json!({"auto_reply": true, "smtp_host": "127.0.0.1", "smtp_port": own_smtp.port, "smtp_security": "none",
                         "reply_from_address": "billing@help.test"});
    let billing = add_mailbox(&server, &admin, &dovecot, "billing", billing).await;
    assert_eq!(billing["smtp"]["port"], own_smtp.port, "{billing}");
    let billing_id = billing["id"].as_str().expect("id").to_string();
    let (_, test) = server.post(&format!("/api/v1/mailboxes/{billing_id}/test"), &admin, json!({})).await;
    assert_eq!(test["ok"], true, "{test}");
    assert!(test["message"].as_str().expect("message").contains("SMTP"), "{test}");
    let before = smtp.messages().len();
    dovecot.deliver("billing", &simple("payer@example.test", "Refund please", "refund@example.test", "x"));
    let sent = own_smtp.wait_for(1).await;
    assert!(sent[0].contains("payer@example.test") && sent[0].contains("From: billing@help.test"), "{}", sent[0]);
    assert_eq!(smtp.messages().len(), before, "not through the main SMTP server");

    // Unknown senders became contacts (the support mailbox says so). Only
    // Eve's is certain: the message sent to both mailboxes makes a contact
    // only if the support mailbox happens to fetch it first.
    let (_, contacts) = server.get("/api/v1/contacts?q=Eve", &admin).await;
    assert_eq!(contacts["total"], 1, "{contacts}");
    assert_eq!(contacts["items"][0]["emails"][0], "eve@example.test", "{contacts}");
}

async fn unusual_mail_is_ingested_or_quarantined_and_never_blocks(site: Site) {
    let Some(dovecot) = Dovecot::start() else { return };
    let site = fast(site);
    let server = site.start(&[]);
    let admin = site.admin_key();
    let mailbox = add_mailbox(&server, &admin, &dovecot, "support", json!({"max_message_bytes": 200_000})).await;
    let mailbox_id = mailbox["id"].as_str().expect("id").to_string();
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mail");
    let mut names: Vec<_> = std::fs::read_dir(&folder)
        .expect("tests/fixtures/mail")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "eml"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "the fixture folder holds the unusual messages");
    for path in &names {
        dovecot.deliver("support", &std::fs::read(path).expect("fixture"));
    }
    // One too large for the mailbox's limit, then an ordinary message.
    let huge = simple("big@example.test", "Huge", "huge@example.test", &"x".repeat(300_000));
    dovecot.deliver("support", &huge);
    dovecot.deliver("support", &simple("last@example.test", "After the odd ones", "last@example.test", "Still here?"));
    let fetched = wait_for_messages(&server, &admin, &mailbox_id, names.len() + 2).await;
    for message in &fetched {
        let status = message["status"].as_str().expect("status");
        assert!(["case", "quarantined", "automatic"].contains(&status), "{message}");
    }
    let list = cases(&server, &admin).await;
    assert!(list.iter().any(|c| c["name"] == "After the odd ones"), "the mailbox went on: {list:?}");
    let quarantined = messages(&server, &admin, &mailbox_id, "quarantined").await;
    let huge =
        quarantined.iter().find(|m| m["reason"].as_str().is_some_and(|r| r.contains("limit"))).expect("the huge one");
    assert_eq!(huge["has_raw"], false);
    // Retrying a message that was not downloaded says why not; discarding works.
    let id = huge["id"].as_str().expect("id");
    let (status, body) =
        server.post(&format!("/api/v1/mailboxes/{mailbox_id}/messages/{id}/retry"), &admin, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) =
        server.post(&format!("/api/v1/mailboxes/{mailbox_id}/messages/{id}/discard"), &admin, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, shown) = server.get(&format!("/api/v1/mailboxes/{mailbox_id}"), &admin).await;
    assert_eq!(shown["status"]["quarantined"], quarantined.len() as i64 - 1, "{shown}");
    // Every case from the odd folder has a name and reads back.
    for case in &list {
        assert!(!case["name"].as_str().expect("name").is_empty());
    }
}

async fn fetching_survives_restarts_of_both_servers(site: Site) {
    let Some(mut dovecot) = Dovecot::start() else { return };
    let site = fast(site);
    let mut server = site.start(&[]);
    let admin = site.admin_key();
    let mailbox = add_mailbox(&server, &admin, &dovecot, "support", json!({})).await;
    let mailbox_id = mailbox["id"].as_str().expect("id").to_string();
    for i in 0..120 {
        dovecot.deliver(
            "support",
            &simple("load@example.test", &format!("Load {i}"), &format!("load{i}@example.test"), "x"),
        );
    }
    // Docket is killed while it fetches; a new process finishes the job.
    eventually("some cases", || async { (cases(&server, &admin).await.len() >= 5).then_some(()) }).await;
    server.signal_and_wait("KILL");
    let server = site.start(&[]);
    let list = wait_for_cases(&server, &admin, 120).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, page) = server.get("/api/v1/cases?limit=1", &admin).await;
    assert_eq!(page["total"], 120, "every message exactly once");
    let mut names: Vec<&str> = list.iter().map(|c| c["name"].as_str().unwrap_or_default()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 120);

    // The IMAP server goes away and comes back: fetching resumes.
    dovecot.stop();
    eventually("the failure to show", || async {
        let (_, shown) = server.get(&format!("/api/v1/mailboxes/{mailbox_id}"), &admin).await;
        shown["status"]["last_error"].is_string().then_some(())
    })
    .await;
    dovecot.restart();
    dovecot.deliver("support", &simple("back@example.test", "After the restart", "back@example.test", "x"));
    let list = wait_for_cases(&server, &admin, 121).await;
    assert!(list.iter().any(|c| c["name"] == "After the restart"));
}

/// `email.received` rules: a script raises the priority of urgent mail
/// and drops a spammer's; the Python alert parser turns alerts into
/// Incidents and drops recoveries. Failing rules drop nothing.
async fn email_rules_and_parsers_rewrite_or_drop_mail(site: Site) {
    let Some(dovecot) = Dovecot::start() else { return };
    let site = fast(site);
    let server = site.start(&[]);
    let admin = site.admin_key();
    let mailbox = add_mailbox(&server, &admin, &dovecot, "support", json!({})).await;
    let mailbox_id = mailbox["id"].as_str().expect("id").to_string();
    let script = "if email.subject.contains(\"URGENT\") { set(\"priority\", \"Urgent\"); internal_note(\"Flagged urgent by mail\"); }\n\
                  if email.from.ends_with(\"@spam.test\") { drop_email(\"known spammer\"); }";
    let rule = json!({"name": "Triage mail", "hook": "email.received", "script": script});
    let (status, body) = server.post("/api/v1/rules", &admin, rule).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let broken = json!({"name": "Broken", "hook": "email.received", "script": "let x = email.nope.len();"});
    let (status, body) = server.post("/api/v1/rules", &admin, broken).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let config = json!({"senders": ["alerts@monitoring.test"], "repeat_minutes": 30});
    let manifest = crate::plugins::manifest("alert-parser", "email-parser", &["storage", "read-cases"], config);
    let (status, plugin) = crate::plugins::upload(
        &server,
        &admin,
        &manifest,
        crate::plugins::component("alert-parser"),
        "storage,read-cases",
        true,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{plugin}");
    let (status, body) = server
        .post("/api/v1/rules", &admin, json!({"name": "Alerts", "hook": "email.received", "plugin": "alert-parser"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A rule plugin cannot parse mail, and drop_email belongs to mail rules.
    let (status, body) = server
        .post("/api/v1/rules", &admin, json!({"name": "Wrong", "hook": "case.created", "plugin": "alert-parser"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    dovecot.deliver("support", &simple("ann@customer.test", "URGENT: site down", "urgent@customer.test", "Help!"));
    dovecot.deliver("support", &simple("bot@spam.test", "Cheap watches", "spam@spam.test", "Buy now"));
    let alert = "Severity: critical\nHost: db-01\nService: disk\nSummary: Disk usage is 97% on /var\n";
    dovecot
        .deliver("support", &simple("alerts@monitoring.test", "[ALERT] db-01 disk", "alert-1@monitoring.test", alert));
    let recovery = "Severity: resolved\nHost: db-01\nService: disk\n";
    dovecot
        .deliver("support", &simple("alerts@monitoring.test", "[OK] db-01 disk", "alert-2@monitoring.test", recovery));
    let fetched = wait_for_messages(&server, &admin, &mailbox_id, 4).await;
    let status_of = |id: &str| {
        fetched.iter().find(|m| m["message_id"] == id).map(|m| m["status"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(status_of("spam@spam.test").as_deref(), Some("dropped"), "{fetched:?}");
    assert_eq!(status_of("alert-2@monitoring.test").as_deref(), Some("dropped"), "{fetched:?}");
    let dropped = messages(&server, &admin, &mailbox_id, "dropped").await;
    assert!(dropped.iter().any(|m| m["reason"].as_str().is_some_and(|r| r.contains("known spammer"))), "{dropped:?}");
    let list = cases(&server, &admin).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let urgent = list.iter().find(|c| c["name"] == "URGENT: site down").expect("the urgent case");
    assert_eq!(urgent["priority"], "Urgent");
    let notes = stream(&server, &admin, urgent["id"].as_str().expect("id")).await;
    assert!(notes.iter().any(|n| n["post"] == "Flagged urgent by mail"), "{notes:?}");
    let incident = list.iter().find(|c| c["type"] == "Incident").expect("the alert's case");
    assert_eq!(incident["priority"], "Urgent");
    assert_eq!(incident["name"], "db-01: disk – Disk usage is 97% on /var");
    let notes = stream(&server, &admin, incident["id"].as_str().expect("id")).await;
    assert!(notes.iter().any(|n| n["post"].as_str().is_some_and(|p| p.contains("Alert fields"))), "{notes:?}");
    // The broken rule failed on every message, and is on the run log.
    let (_, runs) = server.get("/api/v1/rule-runs?outcome=failed", &admin).await;
    assert!(runs["total"].as_i64().expect("total") >= 4, "{runs}");
}

/// With IDLE, new mail is fetched when it arrives, not at the next poll
/// (set to two minutes here).
async fn idle_fetches_new_mail_at_once(site: Site) {
    let Some(dovecot) = Dovecot::start() else { return };
    let site = site.with_env("DOCKET_MAIL_POLL_SECONDS", "120");
    let server = site.start(&[]);
    let admin = site.admin_key();
    let mailbox = add_mailbox(&server, &admin, &dovecot, "support", json!({})).await;
    let mailbox_id = mailbox["id"].as_str().expect("id").to_string();
    eventually("the first fetch", || async {
        let (_, shown) = server.get(&format!("/api/v1/mailboxes/{mailbox_id}"), &admin).await;
        shown["status"]["last_success_at"].is_string().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    dovecot.deliver("support", &simple("idle@example.test", "Pushed", "idle@example.test", "x"));
    wait_for_cases(&server, &admin, 1).await;
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}: not IDLE", started.elapsed());
}

/// A mailbox pointed at an old inbox can skip what is already there.
async fn fetch_since_skips_older_mail(site: Site) {
    let Some(dovecot) = Dovecot::start() else { return };
    let site = fast(site);
    let server = site.start(&[]);
    let admin = site.admin_key();
    dovecot.add_user("support", "imap-secret");
    for i in 0..2 {
        dovecot
            .deliver("support", &simple("old@example.test", &format!("Old {i}"), &format!("old{i}@example.test"), "x"));
    }
    let later = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d").to_string();
    let earlier = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    let mut body = json!({
        "name": "support", "email_address": "support@help.test", "imap_host": "127.0.0.1",
        "imap_port": dovecot.port, "imap_security": "none", "imap_username": "support", "imap_password": "imap-secret",
        "fetch_since": later,
    });
    let (status, mailbox) = server.post("/api/v1/mailboxes", &admin, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{mailbox}");
    assert_eq!(mailbox["fetch_since"], later.as_str());
    let id = mailbox["id"].as_str().expect("id").to_string();
    eventually("a fetch", || async {
        let (_, shown) = server.get(&format!("/api/v1/mailboxes/{id}"), &admin).await;
        shown["status"]["last_success_at"].is_string().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(cases(&server, &admin).await.is_empty(), "nothing received since {later}");
    // From yesterday on: both are fetched.
    body["fetch_since"] = json!(earlier);
    body["version"] = mailbox["version"].clone();
    let (status, body) = server.call(Method::PUT, &format!("/api/v1/mailboxes/{id}"), &admin, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for_cases(&server, &admin, 2).await;
    let (status, refused) = server
        .post(
            "/api/v1/mailboxes",
            &admin,
            json!({"name": "x", "email_address": "x@help.test", "imap_host": "h",
                                                   "imap_username": "u", "fetch_since": "yesterday"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
}

on_both_backends!(
    fetch_since_skips_older_mail,
    idle_fetches_new_mail_at_once,
    email_rules_and_parsers_rewrite_or_drop_mail,
    new_mail_becomes_a_case_and_replies_thread_onto_it,
    auto_replies_are_limited_and_one_message_makes_one_case,
    unusual_mail_is_ingested_or_quarantined_and_never_blocks,
    fetching_survives_restarts_of_both_servers,
);
