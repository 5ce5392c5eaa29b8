//! Stream emails through a real SMTP server: who gets them, what they
//! say, the delay that skips read notifications, and failures retried.

use reqwest::StatusCode;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Server, Site, SmtpSink};

pub(crate) async fn configure_smtp(server: &Server, key: &str, port: u16) {
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/smtp",
            key,
            Some(json!({"host": "127.0.0.1", "port": port, "security": "none", "from_address": "support@docket.test",
                        "from_name": "Support"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["password_set"], false);
}

/// A portal customer following a case, and an agent key.
async fn customer_case(server: &Server, site: &Site, admin: &str) -> (String, String) {
    let (_, contact) = server.post("/api/v1/contacts", admin, json!({"last_name": "Customer"})).await;
    let (status, _) = server
        .post(
            "/api/v1/users",
            admin,
            json!({"username": "cust", "type": "portal", "password": "portal-password", "contact_id": contact["id"],
                   "email": "cust@example.test", "name": "Bo Customer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, agent_key) =
        server.agent(site, admin, "ann", json!({"create": "all", "read": "all", "edit": "all"}), json!([])).await;
    let case = server.case(&agent_key, json!({"name": "Printer on fire", "contact_id": contact["id"]})).await;
    (case["id"].as_str().expect("id").to_string(), agent_key)
}

async fn followers_get_stream_email(site: Site) {
    let Some(smtp) = SmtpSink::start() else { return };
    let site =
        site.with_env("DOCKET_EMAIL_DELAY_SECONDS", "0").with_env("DOCKET_PUBLIC_URL", "https://help.example.test");
    let server = site.start(&[]);
    let admin = site.admin_key();
    configure_smtp(&server, &admin, smtp.port).await;
    let (id, agent) = customer_case(&server, &site, &admin).await;
    let (status, _) =
        server.post("/api/v1/portals", &admin, json!({"name": "Help", "slug": "help", "is_default": true})).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, _) = server.post(&format!("/api/v1/cases/{id}/posts"), &agent, json!({"post": "We are on it."})).await;
    assert_eq!(status, StatusCode::CREATED);
    let messages = smtp.wait_for(1).await;
    let message = &messages[0];
    assert!(
        message.contains("To: \"Bo Customer\" <cust@example.test>")
            || message.contains("To: Bo Customer <cust@example.test>"),
        "{message}"
    );
    assert!(message.contains("Subject: [#1] Printer on fire"), "{message}");
    assert!(message.contains(&format!("Message-ID: <case-{id}.note-")), "{message}");
    assert!(message.contains(&format!("In-Reply-To: <case-{id}@docket.test>")), "{message}");
    assert!(message.contains("Auto-Submitted: auto-generated"), "{message}");
    assert!(message.contains("We are on it."), "{message}");
    // The customer's link opens the case in the default portal.
    assert!(message.contains("https://help.example.test/portal/help/cases/1"), "{message}");

    // Internal notes never go to customers; status changes do.
    server
        .post(&format!("/api/v1/cases/{id}/posts"), &agent, json!({"post": "Secret plan", "is_internal": true}))
        .await;
    let (status, _) = server.patch(&format!("/api/v1/cases/{id}"), &agent, json!({"status": "Pending"})).await;
    assert_eq!(status, StatusCode::OK);
    let messages = smtp.wait_for(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let messages = if smtp.messages().len() > messages.len() { smtp.messages() } else { messages };
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages.iter().all(|m| !m.contains("Secret plan")));
    assert!(messages.iter().any(|m| m.contains("changed the status to Pending")), "{messages:?}");

    // Every job is done.
    let (_, done) = server.get("/api/v1/jobs?status=done", &admin).await;
    assert_eq!(done["total"], 2, "{done}");

    // An admin's template without the [#number] tag: the tag is kept anyway,
    // so replies still thread.
    let template = json!({"subject": "Update: {{ case.name }}", "body": "{{ post }}"});
    let (status, body) =
        server.call(reqwest::Method::PUT, "/api/v1/settings/email-template", &admin, Some(template)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.post(&format!("/api/v1/cases/{id}/posts"), &agent, json!({"post": "Tagged anyway."})).await;
    let messages = smtp.wait_for(3).await;
    let tagged = messages.iter().find(|m| m.contains("Tagged anyway.")).expect("the third email");
    assert!(tagged.contains("Subject: [#1] Update: Printer on fire"), "{tagged}");
}

async fn read_notifications_skip_email_and_failures_retry(site: Site) {
    let Some(smtp) = SmtpSink::start() else { return };
    let site = site.with_env("DOCKET_EMAIL_DELAY_SECONDS", "2");
    let server = site.start(&[]);
    let admin = site.admin_key();
    configure_smtp(&server, &admin, smtp.port).await;
    let (id, agent) = customer_case(&server, &site, &admin).await;
    let customer = site.api_key_for("cust");

    // Read in-app before the delay ends: no email.
    server.post(&format!("/api/v1/cases/{id}/posts"), &agent, json!({"post": "Seen in time"})).await;
    let (status, _) = server.post("/api/v1/notifications/read-all", &customer, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert!(smtp.messages().is_empty(), "{:?}", smtp.messages());
    let (_, done) = server.get("/api/v1/jobs?status=done", &admin).await;
    assert_eq!(done["total"], 1, "the skipped job is done: {done}");

    // The mail server goes away: the job is kept and retried, not lost.
    drop(smtp);
    server.post(&format!("/api/v1/cases/{id}/posts"), &agent, json!({"post": "Nobody listens"})).await;
    let mut queued = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, page) = server.get("/api/v1/jobs?status=queued", &admin).await;
        if page["items"][0]["attempts"].as_i64().unwrap_or(0) >= 1 {
            queued = page;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(queued["items"][0]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{queued}");

    // Bad settings and templates are refused with the field named.
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/smtp",
            &admin,
            Some(json!({"host": "x", "port": 25, "security": "ssl", "from_address": "a@b.test"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["fields"]["security"].is_string());
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/email-template",
            &admin,
            Some(json!({"subject": "{{ case.number", "body": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["fields"]["subject"].is_string(), "{body}");
    let (status, _) = server.get("/api/v1/settings/smtp", &agent).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A password is stored but never shown again, and kept when omitted.
    let settings = json!({"host": "127.0.0.1", "port": 25, "security": "starttls", "from_address": "a@b.test", "username": "mailer"});
    let mut with_password = settings.clone();
    with_password["password"] = json!("s3cret");
    let (_, saved) = server.call(reqwest::Method::PUT, "/api/v1/settings/smtp", &admin, Some(with_password)).await;
    assert_eq!(saved["password_set"], true);
    assert!(saved.get("password").is_none());
    let (_, kept) = server.call(reqwest::Method::PUT, "/api/v1/settings/smtp", &admin, Some(settings)).await;
    assert_eq!(kept["password_set"], true);
    let (_, shown) = server.get("/api/v1/settings/smtp", &admin).await;
    assert!(!shown.to_string().contains("s3cret"));
    // A new host never receives the stored password: it must be typed again.
    let mut elsewhere = json!({"host": "127.0.0.2", "port": 25, "security": "starttls", "from_address": "a@b.test", "username": "mailer"});
    let (_, moved) = server.call(reqwest::Method::PUT, "/api/v1/settings/smtp", &admin, Some(elsewhere.clone())).await;
    assert_eq!(moved["password_set"], false);
    elsewhere["password"] = json!("again");
    let (_, retyped) = server.call(reqwest::Method::PUT, "/api/v1/settings/smtp", &admin, Some(elsewhere)).await;
    assert_eq!(retyped["password_set"], true);
}

async fn a_crash_after_commit_still_sends_once(site: Site) {
    let Some(smtp) = SmtpSink::start() else { return };
    let site = site.with_env("DOCKET_EMAIL_DELAY_SECONDS", "2");
    let mut server = site.start(&[]);
    let admin = site.admin_key();
    configure_smtp(&server, &admin, smtp.port).await;
    let (id, agent) = customer_case(&server, &site, &admin).await;
    let (status, _) =
        server.post(&format!("/api/v1/cases/{id}/posts"), &agent, json!({"post": "Survives a crash"})).await;
    assert_eq!(status, StatusCode::CREATED);
    // Killed between the commit and the send.
    assert!(!tokio::task::spawn_blocking(move || server.signal_and_wait("KILL")).await.expect("join"));
    assert!(smtp.messages().is_empty());
    let _restarted = site.start(&[]);
    let messages = smtp.wait_for(1).await;
    assert!(messages[0].contains("Survives a crash"));
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(smtp.messages().len(), 1, "sent once");
}

async fn mail_held_while_smtp_is_down_is_delivered_when_it_returns(site: Site) {
    let Some(smtp) = SmtpSink::start() else { return };
    let port = smtp.port;
    let site = site.with_env("DOCKET_EMAIL_DELAY_SECONDS", "0").with_env("DOCKET_JOB_RETRY_BASE_SECONDS", "1");
    let server = site.start(&[]);
    let admin = site.admin_key();
    configure_smtp(&server, &admin, port).await;
    let (id, agent) = customer_case(&server, &site, &admin).await;
    drop(smtp);
    server.post(&format!("/api/v1/cases/{id}/posts"), &agent, json!({"post": "Held back"})).await;
    // Wait until a delivery attempt failed.
    for _ in 0..100 {
        let (_, page) = server.get("/api/v1/jobs?status=queued", &admin).await;
        if page["items"][0]["last_error"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let Some(back) = SmtpSink::start_on(port) else { return };
    let messages = back.wait_for(1).await;
    assert!(messages[0].contains("Held back"));
    let (_, done) = server.get("/api/v1/jobs?status=done", &admin).await;
    assert_eq!(done["total"], 1, "{done}");
}

on_both_backends!(
    followers_get_stream_email,
    read_notifications_skip_email_and_failures_retry,
    a_crash_after_commit_still_sends_once,
    mail_held_while_smtp_is_down_is_delivered_when_it_returns,
);

/// Two server processes on one PostgreSQL: every email job runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_once_across_two_nodes_on_postgres() {
    let Some(site) = Site::new(crate::support::Backend::Postgres).await else { return };
    let Some(smtp) = SmtpSink::start() else { return };
    let site = site.with_env("DOCKET_EMAIL_DELAY_SECONDS", "1");
    let node_a = site.start(&[]);
    let node_b = site.start(&[]);
    let admin = site.admin_key();
    configure_smtp(&node_a, &admin, smtp.port).await;
    let (id, agent) = customer_case(&node_a, &site, &admin).await;
    for i in 0..20 {
        let node = if i % 2 == 0 { &node_a } else { &node_b };
        let (status, _) =
            node.post(&format!("/api/v1/cases/{id}/posts"), &agent, json!({"post": format!("post {i}")})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    smtp.wait_for(20).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 20, "each job ran exactly once");
    for i in 0..20 {
        assert_eq!(
            messages
                .iter()
                .filter(|m| m.contains(&format!("post {i}\n")) || m.contains(&format!("post {i}\r\n")))
                .count(),
            1,
            "post {i}"
        );
    }
}
