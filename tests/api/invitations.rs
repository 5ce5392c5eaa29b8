//! Portal users' one-time links on both backends, with real email: staff
//! invite a contact, the customer chooses a password from the emailed link
//! (once), and forgotten passwords are reset by email without telling who
//! has an account.

use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::email::configure_smtp;
use crate::on_both_backends;
use crate::portal_pages::{client, hidden, log_in, set_cookie};
use crate::support::{Server, Site, SmtpSink, error_of};

const PUBLIC_URL: &str = "https://help.example.test";

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_string()
}

/// The token of the portal link in an email (quoted-printable soft line
/// breaks undone).
fn token_in(message: &str) -> String {
    let text = message.replace("=\r\n", "").replace("=\n", "");
    let marker = format!("{PUBLIC_URL}/portal/help/password/");
    let start = text.find(&marker).unwrap_or_else(|| panic!("no link in {message}")) + marker.len();
    text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

/// Posts the choose-a-password form of a link.
async fn choose_password(server: &Server, token: &str, password: &str, again: &str) -> reqwest::Response {
    client()
        .post(server.url(&format!("/portal/help/password/{token}")))
        .form(&[("password", password), ("confirm_password", again)])
        .send()
        .await
        .expect("post")
}

async fn started(site: Site) -> (Site, Server, SmtpSink, String, Value) {
    let smtp = SmtpSink::start().expect("smtp");
    let site = site.with_env("DOCKET_EMAIL_DELAY_SECONDS", "0").with_env("DOCKET_PUBLIC_URL", PUBLIC_URL);
    let server = site.start(&[]);
    let admin = site.admin_key();
    configure_smtp(&server, &admin, smtp.port).await;
    let (status, portal) = server
        .post(
            "/api/v1/portals",
            &admin,
            json!({"name": "Help", "slug": "help", "is_default": true, "branding": {"title": "Acme Help"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{portal}");
    (site, server, smtp, admin, portal)
}

async fn staff_invite_customers_who_choose_a_password_once(site: Site) {
    let (site, server, smtp, admin, portal) = started(site).await;
    let (_, contact) = server
        .post(
            "/api/v1/contacts",
            &admin,
            json!({"first_name": "Bo", "last_name": "Baker", "emails": ["Bo@Bakery.test"]}),
        )
        .await;
    let (_, mute) = server.post("/api/v1/contacts", &admin, json!({"last_name": "No Email"})).await;
    let (_, editor) =
        server.agent(&site, &admin, "ann", json!({"create": "all", "read": "all", "edit": "all"}), json!([])).await;

    // Who may invite, and whom.
    let (status, body) = server.post(&format!("/api/v1/contacts/{}/portal-user", id(&mute)), &editor, json!({})).await;
    error_of(status, &body, "validation");
    let (status, body) = server
        .post(&format!("/api/v1/contacts/{}/portal-user", id(&contact)), &editor, json!({"portal_id": "nope"}))
        .await;
    error_of(status, &body, "validation");
    let (status, user) =
        server.post(&format!("/api/v1/contacts/{}/portal-user", id(&contact)), &editor, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["type"], "portal");
    assert_eq!(user["username"], "bo@bakery.test");
    assert_eq!(user["contact_id"], contact["id"]);
    let (status, body) =
        server.post(&format!("/api/v1/contacts/{}/portal-user", id(&contact)), &editor, json!({})).await;
    error_of(status, &body, "validation");
    let customer_key = site.api_key_for("bo@bakery.test");
    let (_, narrow) =
        server.agent(&site, &admin, "nat", json!({"create": "all", "read": "own", "edit": "all"}), json!([])).await;
    let (status, _) = server.post(&format!("/api/v1/users/{}/invitation", id(&user)), &narrow, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an agent who reads only their own cases invites no one");
    let (status, _) = server.post(&format!("/api/v1/users/{}/invitation", id(&user)), &customer_key, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "customers invite no one");

    // The email names the user and links to the portal; the page shows
    // the username; bad passwords are refused in place.
    let messages = smtp.wait_for(1).await;
    let invitation = &messages[0];
    assert!(invitation.contains("Subject: Your access to Acme Help"), "{invitation}");
    assert!(invitation.to_lowercase().contains("bo@bakery.test"), "{invitation}");
    let token = token_in(invitation);
    let http = client();
    let page = http.get(server.url(&format!("/portal/help/password/{token}"))).send().await.expect("get");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("html").contains("bo@bakery.test"));
    assert_eq!(choose_password(&server, &token, "short", "short").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let mismatch = choose_password(&server, &token, "bread-and-butter", "bread-and-jam").await;
    assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let chosen = choose_password(&server, &token, "bread-and-butter", "bread-and-butter").await;
    assert_eq!(chosen.status(), StatusCode::SEE_OTHER);
    assert_eq!(crate::portal_pages::location(&chosen), "/portal/help/login?password_set=1");

    // The link works once; the password logs in.
    let again = http.get(server.url(&format!("/portal/help/password/{token}"))).send().await.expect("get");
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert!(again.text().await.expect("html").contains("no longer works"));
    let reused = choose_password(&server, &token, "another-password", "another-password").await;
    assert_eq!(reused.status(), StatusCode::NOT_FOUND);
    let (status, customer) = log_in(&server, &portal, "bo@bakery.test", "bread-and-butter", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(customer.is_some());

    // A new invitation replaces the one before it.
    for _ in 0..2 {
        let (status, _) = server.post(&format!("/api/v1/users/{}/invitation", id(&user)), &admin, json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let messages = smtp.wait_for(3).await;
    let newer: Vec<String> = messages.iter().map(|m| token_in(m)).filter(|t| *t != token).collect();
    assert_eq!(newer.len(), 2);
    let live: Vec<bool> = {
        let mut live = Vec::new();
        for token in &newer {
            let page = http.get(server.url(&format!("/portal/help/password/{token}"))).send().await.expect("get");
            live.push(page.status() == StatusCode::OK);
        }
        live
    };
    assert_eq!(live.iter().filter(|l| **l).count(), 1, "only the newer link works: {live:?}");
}

/// Asks for a reset through the portal's form.
async fn ask_reset(server: &Server, login: &str) -> (StatusCode, String) {
    let http = client();
    let page = http.get(server.url("/portal/help/password-reset")).send().await.expect("get");
    let cookie = set_cookie(&page, "docket_portal_login").expect("form cookie");
    let html = page.text().await.expect("html");
    let response = http
        .post(server.url("/portal/help/password-reset"))
        .header(COOKIE, format!("docket_portal_login={cookie}"))
        .form(&[("login_token", hidden(&html, "login_token").as_str()), ("login", login)])
        .send()
        .await
        .expect("post");
    (response.status(), response.text().await.expect("html"))
}

async fn customers_reset_forgotten_passwords_by_email(site: Site) {
    let (_site, server, smtp, admin, portal) = started(site).await;
    let (_, contact) = server.post("/api/v1/contacts", &admin, json!({"last_name": "Baker"})).await;
    let (status, _) = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "bo", "type": "portal", "password": "old-password", "email": "bo@bakery.test",
                   "contact_id": contact["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, customer) = log_in(&server, &portal, "bo", "old-password", None).await;
    let customer = customer.expect("logged in");

    // A forged form sends nothing; an unknown login gets the same answer as
    // a known one, and no email.
    let forged = client()
        .post(server.url("/portal/help/password-reset"))
        .form(&[("login_token", "guess"), ("login", "bo")])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, unknown) = ask_reset(&server, "nobody@nowhere.test").await;
    assert_eq!(status, StatusCode::OK);
    let (status, known) = ask_reset(&server, "BO@bakery.test").await;
    assert_eq!(status, StatusCode::OK);
    let answer = |html: &str| html.contains("If an account matches");
    assert!(answer(&unknown) && answer(&known));
    let messages = smtp.wait_for(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(smtp.messages().len(), 1, "one email, to the known customer");
    assert!(messages[0].contains("Subject: Reset your password for Acme Help"), "{}", messages[0]);

    // The new password replaces the old one and ends the sessions.
    let token = token_in(&messages[0]);
    let chosen = choose_password(&server, &token, "new-password-9", "new-password-9").await;
    assert_eq!(chosen.status(), StatusCode::SEE_OTHER);
    assert_eq!(customer.get("/portal/help/").await.0, StatusCode::SEE_OTHER, "the old session ended");
    assert_eq!(log_in(&server, &portal, "bo", "old-password", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(log_in(&server, &portal, "bo", "new-password-9", None).await.0, StatusCode::SEE_OTHER);

    // Requests are limited per address and login: the inbox cannot be
    // flooded from here.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(ask_reset(&server, "flood@bakery.test").await.0);
    }
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");

    // The token never waited in the job queue: the job made it.
    let (_, jobs) = server.call(Method::GET, "/api/v1/jobs?limit=200", &admin, None).await;
    assert!(jobs["items"].as_array().is_some_and(|items| !items.is_empty()), "{jobs}");
    assert!(!jobs.to_string().contains(&token), "{jobs}");
}

on_both_backends!(staff_invite_customers_who_choose_a_password_once, customers_reset_forgotten_passwords_by_email);
