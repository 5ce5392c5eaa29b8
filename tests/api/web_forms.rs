//! A portal's public case form on both backends: its JSON endpoint (what
//! the embedded snippet posts to) and its page, the contact matched or
//! made, the portal's defaults, the confirmation email, and the spam
//! defences: honeypot, limits per IP and per address (429), size limits,
//! and CORS for the allowed sites only.

use reqwest::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::email::configure_smtp;
use crate::on_both_backends;
use crate::support::{Server, Site, SmtpSink, error_of, files_under, read};

const ENDPOINT: &str = "/api/v1/web-forms/help";

fn form(name: &str, email: &str, subject: &str, files: &[(&str, usize)]) -> Form {
    let mut form = Form::new()
        .text("name", name.to_string())
        .text("email", email.to_string())
        .text("subject", subject.to_string())
        .text("description", format!("{subject}: please help."));
    for (file, size) in files {
        let part = Part::bytes(vec![b'x'; *size]).file_name(file.to_string()).mime_str("text/plain").expect("mime");
        form = form.part("file", part);
    }
    form
}

async fn submit(server: &Server, form: Form, origin: Option<&str>) -> (StatusCode, Value, Option<String>) {
    let mut request = server.http.post(server.url(ENDPOINT)).multipart(form);
    if let Some(origin) = origin {
        request = request.header(ORIGIN, origin);
    }
    let response = request.send().await.expect("post");
    let allowed = response.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).map(|v| v.to_str().expect("ascii").to_string());
    let (status, body) = read(response).await;
    (status, body, allowed)
}

/// A default portal with its form on: High priority, a team, one allowed
/// site.
async fn portal_with_form(server: &Server, admin: &str) -> (Value, Value) {
    let (_, team) = server.post("/api/v1/teams", admin, json!({"name": "Front desk"})).await;
    let web_form = json!({"enabled": true, "allowed_origins": ["https://www.bakery.test"], "priority": "High",
                          "type": "Question", "team_ids": [team["id"]]});
    let (status, portal) = server
        .post(
            "/api/v1/portals",
            admin,
            json!({"name": "Help", "slug": "help", "is_default": true, "web_form": web_form}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{portal}");
    (portal, team)
}

async fn visitors_open_cases_through_the_form(site: Site) {
    let smtp = SmtpSink::start().expect("smtp");
    let site = site
        .with_env("DOCKET_EMAIL_DELAY_SECONDS", "0")
        .with_env("DOCKET_MAX_UPLOAD_BYTES", "50000")
        .with_env("DOCKET_WEB_FORM_PER_ADDRESS_HOUR", "2");
    let server = site.start(&[]);
    let admin = site.admin_key();
    configure_smtp(&server, &admin, smtp.port).await;

    // No form until a portal offers one.
    let (status, _, _) = submit(&server, form("Al", "al@bakery.test", "Hello", &[]), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, team) = portal_with_form(&server, &admin).await;
    let (_, account) = server.post("/api/v1/accounts", &admin, json!({"name": "Bakery"})).await;
    let (_, alice) = server
        .post(
            "/api/v1/contacts",
            &admin,
            json!({"first_name": "Alice", "last_name": "Baker", "emails": ["alice@bakery.test"], "account_ids": [account["id"]]}),
        )
        .await;

    // Bad fields are named.
    let (status, body, _) = submit(&server, form("", "not-an-address", " ", &[]), None).await;
    let error = error_of(status, &body, "validation");
    for field in ["name", "email", "subject"] {
        assert!(error["fields"][field].is_string(), "{field}: {body}");
    }

    // A known address: Alice's contact (not her account: nobody proved the
    // address), the portal's defaults, the files, and a confirmation with
    // the number and none of the sender's words.
    let files_before = files_under(&site.data_dir).len();
    let (status, body, _) = submit(
        &server,
        form("Alice B.", "ALICE@bakery.test", "Oven broken", &[("oven.txt", 100), ("door.txt", 200)]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let number = body["number"].as_i64().expect("number");
    let (_, case) = server.get(&format!("/api/v1/cases/by-number/{number}"), &admin).await;
    assert_eq!(case["contact_id"], alice["id"]);
    assert!(case["account_id"].is_null(), "{case}");
    assert_eq!(case["priority"], "High");
    assert_eq!(case["type"], "Question");
    assert_eq!(case["team_ids"], json!([team["id"]]));
    assert_eq!(case["status"], "New");
    assert_eq!(case["description"], "Oven broken: please help.");
    assert_eq!(case["attachment_ids"].as_array().expect("files").len(), 2);
    let messages = smtp.wait_for(1).await;
    let confirmation = &messages[0];
    assert!(confirmation.contains(&format!("Subject: [#{number}] We received your request")), "{confirmation}");
    assert!(confirmation.contains("alice@bakery.test"), "{confirmation}");
    assert!(!confirmation.contains("Oven broken") && !confirmation.contains("Alice B."), "{confirmation}");

    // An unknown address: a contact is made.
    let (status, body, _) = submit(&server, form("Carl Cook", "carl@cafe.test", "Coffee machine", &[]), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, case) = server.get(&format!("/api/v1/cases/by-number/{}", body["number"]), &admin).await;
    let (_, carl) =
        server.get(&format!("/api/v1/contacts/{}", case["contact_id"].as_str().expect("contact")), &admin).await;
    assert_eq!((carl["name"].as_str(), carl["emails"].clone()), (Some("Carl Cook"), json!(["carl@cafe.test"])));

    // The honeypot: the robot hears thanks, nothing is kept.
    let (_, before) = server.get("/api/v1/cases?limit=1", &admin).await;
    let (status, body, _) = submit(
        &server,
        form("Bot", "bot@spam.test", "Cheap pills", &[("a.txt", 10)]).text("website", "http://spam.test"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["number"].is_null());
    let (_, after) = server.get("/api/v1/cases?limit=1", &admin).await;
    assert_eq!(before["total"], after["total"]);

    // Size limits: too many files, a file too large; nothing stays behind.
    let six: Vec<(&str, usize)> = (0..6).map(|_| ("f.txt", 10)).collect();
    let (status, body, _) = submit(&server, form("Dee", "dee@x.test", "Many files", &six), None).await;
    error_of(status, &body, "validation");
    let (status, _, _) = submit(&server, form("Dee", "dee@x.test", "Huge", &[("big.bin", 60_000)]), None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(files_under(&site.data_dir).len(), files_before + 2, "only the kept case's files");

    // Per address: Alice may send two an hour, +tags or not.
    let (status, _, _) = submit(&server, form("Alice", "alice+oven@bakery.test", "Again", &[]), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body, _) = submit(&server, form("Alice", "Alice+2@bakery.test", "And again", &[]), None).await;
    error_of(status, &body, "rate_limited");

    // CORS: the allowed site may post and read the answer; others may not.
    let (status, _, allowed) =
        submit(&server, form("Eve", "eve@bakery.test", "From the site", &[]), Some("https://www.bakery.test")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(allowed.as_deref(), Some("https://www.bakery.test"));
    let (status, _, allowed) =
        submit(&server, form("Mallory", "m@evil.test", "From elsewhere", &[]), Some("https://evil.test")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(allowed.is_none());
    let preflight = |origin: &'static str| {
        server
            .http
            .request(Method::OPTIONS, server.url(ENDPOINT))
            .header(ORIGIN, origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
    };
    let allowed = preflight("https://www.bakery.test").await.expect("preflight");
    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    assert_eq!(allowed.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "https://www.bakery.test");
    assert_eq!(preflight("https://evil.test").await.expect("preflight").status(), StatusCode::FORBIDDEN);
}

async fn the_form_page_keeps_input_and_limits_each_address(site: Site) {
    let site = site.with_env("DOCKET_WEB_FORM_PER_IP_HOUR", "3");
    let server = site.start(&[]);
    let admin = site.admin_key();
    portal_with_form(&server, &admin).await;

    let page = server.http.get(server.url("/portal/help/form")).send().await.expect("get");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("name=\"website\""), "the honeypot is on the page");

    // A mistake: the page comes back with what was typed.
    let post = |form: Form| server.http.post(server.url("/portal/help/form")).multipart(form).send();
    let response = post(form("Gil", "gil@bakery.test", "", &[])).await.expect("post");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(html.contains("id=\"subject-error\"") && html.contains("value=\"gil@bakery.test\""), "{html}");
    let response = post(form("Gil", "gil@bakery.test", "Flour delivery late", &[])).await.expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("html");
    let (_, cases) = server.get("/api/v1/cases?q=Flour", &admin).await;
    assert!(html.contains(&format!("#{}", cases["items"][0]["number"])), "{html}");

    // The third request from this address this hour is the last.
    let response = post(form("Gil", "gil2@bakery.test", "One more", &[])).await.expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    let response = post(form("Gil", "gil3@bakery.test", "Too many", &[])).await.expect("post");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let (status, body, _) = submit(&server, form("Gil", "gil4@bakery.test", "Through the API", &[]), None).await;
    error_of(status, &body, "rate_limited");
    let (_, cases) = server.get("/api/v1/cases?q=many", &admin).await;
    assert_eq!(cases["total"], 0);
}

on_both_backends!(visitors_open_cases_through_the_form, the_form_page_keeps_input_and_limits_each_address);
