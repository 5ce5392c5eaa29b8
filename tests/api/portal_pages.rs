//! The customer portal's pages over HTTP on both backends: logging in to
//! one portal (sessions that are worth nothing elsewhere, login CSRF and
//! session fixation), the customer's cases, creating one with a file,
//! replying, what never shows (other accounts' cases, internal notes and
//! their files), CSRF on every form, and the knowledge base per portal.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::multipart::{Form, Part};
use reqwest::{Client, Response, StatusCode, redirect};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Server, Site, files_under};

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_string()
}

/// A browser-like client that shows redirects instead of following them.
pub(crate) fn client() -> Client {
    Client::builder().redirect(redirect::Policy::none()).build().expect("client")
}

/// The value of a cookie a response sets.
pub(crate) fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response.headers().get_all(SET_COOKIE).iter().find_map(|value| {
        let text = value.to_str().ok()?;
        let (pair, _) = text.split_once(';').unwrap_or((text, ""));
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}

/// The value of a hidden form field in a page.
pub(crate) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[start..].split('"').next().expect("value").to_string()
}

pub(crate) fn location(response: &Response) -> String {
    response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// A logged-in customer at one portal.
pub(crate) struct Customer {
    http: Client,
    base: String,
    /// The `Cookie` header of the portal session.
    cookie: String,
    csrf: String,
}

impl Customer {
    pub(crate) async fn get(&self, path: &str) -> (StatusCode, String) {
        let response =
            self.http.get(format!("{}{path}", self.base)).header(COOKIE, &self.cookie).send().await.expect("get");
        (response.status(), response.text().await.expect("body"))
    }

    /// Posts a multipart form; `with_csrf` puts the token first.
    async fn post_form(&self, path: &str, with_csrf: bool, fields: &[(&str, &str)], file: Option<&str>) -> Response {
        let mut form = Form::new();
        if with_csrf {
            form = form.text("csrf_token", self.csrf.clone());
        }
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        if let Some(name) = file {
            let part = Part::bytes(format!("contents of {name}").into_bytes()).file_name(name.to_string());
            form = form.part("file", part.mime_str("text/plain").expect("mime"));
        }
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .multipart(form)
            .send()
            .await
            .expect("post")
    }
}

/// Logs in through a portal's login page; `planted` is a session cookie
/// value the browser already carried (a fixation attempt).
pub(crate) async fn log_in(
    server: &Server,
    portal: &Value,
    username: &str,
    password: &str,
    planted: Option<&str>,
) -> (StatusCode, Option<Customer>) {
    let http = client();
    let slug = portal["slug"].as_str().expect("slug");
    let cookie_name = format!("docket_portal_{}", id(portal));
    let page = http.get(server.url(&format!("/portal/{slug}/login"))).send().await.expect("login page");
    assert_eq!(page.status(), StatusCode::OK);
    let login_cookie = set_cookie(&page, "docket_portal_login").expect("login token cookie");
    let html = page.text().await.expect("html");
    let mut cookies = format!("docket_portal_login={login_cookie}");
    if let Some(planted) = planted {
        cookies.push_str(&format!("; {cookie_name}={planted}"));
    }
    let response = http
        .post(server.url(&format!("/portal/{slug}/login")))
        .header(COOKIE, cookies)
        .form(&[
            ("login_token", hidden(&html, "login_token").as_str()),
            ("next", hidden(&html, "next").as_str()),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .expect("login");
    let status = response.status();
    let Some(token) = set_cookie(&response, &cookie_name) else { return (status, None) };
    assert_eq!(location(&response), format!("/portal/{slug}/"));
    let cookie = format!("{cookie_name}={token}");
    let home = http.get(server.url(&format!("/portal/{slug}/"))).header(COOKIE, &cookie).send().await.expect("home");
    assert_eq!(home.status(), StatusCode::OK);
    let csrf = hidden(&home.text().await.expect("home html"), "csrf_token");
    (status, Some(Customer { http, base: server.base.clone(), cookie, csrf }))
}

/// Two portals, a customer of "Ours Ltd" and a staff member.
struct Setting {
    admin: String,
    help: Value,
    partners: Value,
    contact: Value,
    theirs: Value,
    user: Value,
}

async fn set_up(site: &Site, server: &Server) -> Setting {
    let admin = site.admin_key();
    let (_, ours) = server.post("/api/v1/accounts", &admin, json!({"name": "Ours Ltd"})).await;
    let (_, theirs) = server.post("/api/v1/accounts", &admin, json!({"name": "Theirs Inc"})).await;
    let (_, contact) =
        server.post("/api/v1/contacts", &admin, json!({"last_name": "Customer", "account_ids": [ours["id"]]})).await;
    let (status, user) = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "cust", "type": "portal", "password": "portal-password", "contact_id": contact["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (status, reader) = server
        .post(
            "/api/v1/portal-roles",
            &admin,
            json!({"name": "Readers", "permissions": {"case": {"create": "own", "read": "account", "edit": "own", "stream": "account"}, "kb_article": {"read": "all"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reader}");
    let branding = json!({"title": "Ours Help", "primary_color": "#0a7d55", "language": "en"});
    let (status, help) = server
        .post(
            "/api/v1/portals",
            &admin,
            json!({"name": "Help", "slug": "help", "is_default": true, "role_ids": [reader["id"]], "branding": branding}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{help}");
    // The partners' portal reaches further: every case.
    let (status, wide) = server
        .post(
            "/api/v1/portal-roles",
            &admin,
            json!({"name": "Partners", "permissions": {"case": {"create": "own", "read": "all", "edit": "own", "stream": "all"}, "kb_article": {"read": "all"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{wide}");
    let (status, partners) = server
        .post("/api/v1/portals", &admin, json!({"name": "Partners", "slug": "partners", "role_ids": [wide["id"]]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{partners}");
    Setting { admin, help, partners, contact, theirs, user }
}

async fn portal_sessions_belong_to_one_portal(site: Site) {
    let server = site.start(&[]);
    let setting = set_up(&site, &server).await;
    let http = client();

    // Visitors are sent to the portal's login page; `/portal` is the
    // default portal; an unknown portal is not found.
    let response = http.get(server.url("/portal/help/")).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/portal/help/login?next=/portal/help/");
    let response = http.get(server.url("/portal")).send().await.expect("get");
    assert_eq!(location(&response), "/portal/help/");
    let response = http.get(server.url("/portal/nowhere/login")).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // The branding: title on the login page, colour in the style sheet.
    let login_page = http.get(server.url("/portal/help/login")).send().await.expect("get");
    assert!(login_page.text().await.expect("html").contains("Log in to Ours Help"));
    let css = http.get(server.url("/portal/help/brand.css")).send().await.expect("css").text().await.expect("css");
    assert!(css.contains("--brand: #0a7d55"), "{css}");

    // Wrong passwords, staff and a forged login form get nowhere.
    let (status, customer) = log_in(&server, &setting.help, "cust", "wrong-password", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(customer.is_none());
    let (status, customer) = log_in(&server, &setting.help, "admin", crate::support::ADMIN_PASSWORD, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "staff log in on the agent page");
    assert!(customer.is_none());
    let forged = http
        .post(server.url("/portal/help/login"))
        .form(&[("login_token", "guess"), ("username", "cust"), ("password", "portal-password")])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&forged, &format!("docket_portal_{}", id(&setting.help))).is_none());

    // Session fixation: a session token the browser brought, even a live
    // one (planted by someone who logged in first), is ended and replaced.
    let (_, planter) = log_in(&server, &setting.help, "cust", "portal-password", None).await;
    let planter = planter.expect("logged in");
    assert_eq!(planter.get("/portal/help/").await.0, StatusCode::OK);
    let planted = planter.cookie.split_once('=').expect("cookie").1.to_string();
    let (status, customer) = log_in(&server, &setting.help, "cust", "portal-password", Some(&planted)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let customer = customer.expect("logged in");
    assert!(!customer.cookie.ends_with(&planted));
    assert_eq!(customer.get("/portal/help/").await.0, StatusCode::OK);
    assert_eq!(planter.get("/portal/help/").await.0, StatusCode::SEE_OTHER, "the planted session ended");

    // The session is worth nothing at the other portal, the agent pages
    // or the API, whatever name its cookie is given.
    let token = customer.cookie.split_once('=').expect("cookie").1.to_string();
    let as_partner = format!("docket_portal_{}={token}", id(&setting.partners));
    let response = http.get(server.url("/portal/partners/")).header(COOKIE, as_partner).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/portal/partners/login"));
    let as_agent = format!("docket_session={token}");
    let response = http.get(server.url("/")).header(COOKIE, as_agent.clone()).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/login"));
    let response = http.get(server.url("/api/v1/me")).header(COOKIE, as_agent).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A customer's own API session does not open the agent or admin pages
    // either, nor their live events.
    let response = http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "cust", "password": "portal-password"}))
        .send()
        .await
        .expect("api login");
    assert_eq!(response.status(), StatusCode::OK);
    let api_session = format!("docket_session={}", set_cookie(&response, "docket_session").expect("session cookie"));
    let case = server.case(&setting.admin, json!({"name": "Visible", "contact_id": setting.contact["id"]})).await;
    for path in [
        "/",
        "/admin/users",
        "/admin/portals",
        "/kb",
        &format!("/cases/{}", case["number"]),
        &format!("/cases/{}/events", case["number"]),
    ] {
        let response = http.get(server.url(path)).header(COOKIE, &api_session).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let page = http.get(server.url("/login")).send().await.expect("agent login page");
    let login_cookie = set_cookie(&page, "docket_login").expect("login token");
    let html = page.text().await.expect("html");
    let refused = http
        .post(server.url("/login"))
        .header(COOKIE, format!("docket_login={login_cookie}"))
        .form(&[
            ("login_token", hidden(&html, "login_token").as_str()),
            ("username", "cust"),
            ("password", "portal-password"),
        ])
        .send()
        .await
        .expect("agent login");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "customers log in at the portal");
    assert!(set_cookie(&refused, "docket_session").is_none());

    // Logging out needs the CSRF token, and ends the session.
    let response = http
        .post(server.url("/portal/help/logout"))
        .header(COOKIE, &customer.cookie)
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(customer.get("/portal/help/").await.0, StatusCode::OK);
    let response = http
        .post(server.url("/portal/help/logout"))
        .header(COOKIE, &customer.cookie)
        .form(&[("csrf_token", customer.csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(customer.get("/portal/help/").await.0, StatusCode::SEE_OTHER);

    // A deactivated portal takes its sessions with it.
    let (_, customer) = log_in(&server, &setting.help, "cust", "portal-password", None).await;
    let customer = customer.expect("logged in again");
    let help = &setting.help;
    let input = json!({"name": help["name"], "slug": help["slug"], "is_active": false, "is_default": false,
                       "role_ids": help["role_ids"], "branding": help["branding"], "version": help["version"]});
    let (status, body) =
        server.call(reqwest::Method::PUT, &format!("/api/v1/portals/{}", id(help)), &setting.admin, Some(input)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(customer.get("/portal/help/").await.0, StatusCode::NOT_FOUND);
}

async fn customers_open_read_and_answer_their_cases(site: Site) {
    let server = site.start(&[]);
    let setting = set_up(&site, &server).await;
    let admin = &setting.admin;
    let (_, customer) = log_in(&server, &setting.help, "cust", "portal-password", None).await;
    let customer = customer.expect("logged in");

    // Cases the helpdesk opened: one of the customer's account with a
    // public answer and an internal note with a file, one of another
    // account, one internal.
    let ours = server
        .case(admin, json!({"name": "Scanner jammed", "contact_id": setting.contact["id"], "status": "Assigned"}))
        .await;
    let ours_id = id(&ours);
    let (status, _) = server
        .post(&format!("/api/v1/cases/{ours_id}/posts"), admin, json!({"post": "We are sending a technician."}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, secret_file) =
        crate::attachments::upload(&server, admin, "margin.txt", b"our margin".to_vec(), "text/plain").await;
    let (status, _) = server
        .post(
            &format!("/api/v1/cases/{ours_id}/posts"),
            admin,
            json!({"post": "Internal: customer is on the cheap plan", "is_internal": true, "attachment_ids": [secret_file["id"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let theirs = server.case(admin, json!({"name": "Their router", "account_id": setting.theirs["id"]})).await;
    let internal = server
        .case(admin, json!({"name": "Internal audit", "contact_id": setting.contact["id"], "is_internal": true}))
        .await;

    // The list shows the customer's case only, and searches.
    let (status, html) = customer.get("/portal/help/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Scanner jammed"), "{html}");
    assert!(!html.contains("Their router") && !html.contains("Internal audit"));
    let (_, html) = customer.get("/portal/help/?view=all&q=scanner").await;
    assert!(html.contains("Scanner jammed"));
    let (_, html) = customer.get("/portal/help/?view=all&q=router").await;
    assert!(!html.contains("Their router"));
    let (_, html) = customer.get("/portal/help/?view=closed").await;
    assert!(!html.contains("Scanner jammed"));

    // The case page: the public answer, never the internal note or its
    // file; cases out of reach are not found.
    let (status, html) = customer.get(&format!("/portal/help/cases/{}", ours["number"])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("We are sending a technician."), "{html}");
    assert!(!html.contains("cheap plan"));
    assert!(!html.contains(secret_file["id"].as_str().expect("id")));
    assert!(html.contains("id=\"case-status\">Assigned"), "status shown read-only");
    for case in [&theirs, &internal] {
        assert_eq!(customer.get(&format!("/portal/help/cases/{}", case["number"])).await.0, StatusCode::NOT_FOUND);
    }
    let (status, _) = customer.get(&format!("/portal/help/attachments/{}", id(&secret_file))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Forms without the session's CSRF token store nothing.
    let files_before = files_under(&site.data_dir).len();
    let forged = customer
        .post_form("/portal/help/cases", false, &[("name", "Forged"), ("description", "x")], Some("forged.txt"))
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let forged = customer
        .post_form(&format!("/portal/help/cases/{}/reply", ours["number"]), false, &[("post", "Forged")], None)
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(files_under(&site.data_dir).len(), files_before);
    let (_, cases) = server.get("/api/v1/cases?q=Forged", admin).await;
    assert_eq!(cases["total"], 0);

    // A new case with a file: the contact and account are the customer's,
    // the customer follows it; an empty subject is refused in place.
    let refused =
        customer.post_form("/portal/help/cases", true, &[("name", " "), ("description", "x")], Some("lost.txt")).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(files_under(&site.data_dir).len(), files_before, "a refused case keeps no file");
    let created = customer
        .post_form(
            "/portal/help/cases",
            true,
            &[("name", "Printer smells of toner"), ("description", "Since **Monday**."), ("priority", "High")],
            Some("photo.txt"),
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let page_path = location(&created);
    let number: i64 = page_path.rsplit('/').next().expect("number").parse().expect("a case number");
    let (_, case) = server.get(&format!("/api/v1/cases/by-number/{number}"), admin).await;
    assert_eq!(case["name"], "Printer smells of toner");
    assert_eq!(case["priority"], "High");
    assert_eq!(case["status"], "New");
    assert_eq!(case["contact_id"], setting.contact["id"]);
    assert_eq!(case["account_id"], setting.contact["account_ids"][0]);
    assert_eq!(case["attachment_ids"].as_array().expect("files").len(), 1);
    let (_, followers) = server.get(&format!("/api/v1/cases/{}/followers", id(&case)), admin).await;
    assert!(followers["items"].as_array().expect("items").iter().any(|f| f["username"] == "cust"), "{followers}");
    let (status, html) = customer.get(&page_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<strong>Monday</strong>") && html.contains("photo.txt"), "{html}");
    let file_id = case["attachment_ids"][0].as_str().expect("file id");
    let (status, body) = customer.get(&format!("/portal/help/attachments/{file_id}")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "contents of photo.txt"));

    // A reply with a file lands on the stream as the customer's public
    // post; an empty one is refused and stores nothing.
    let reply_path = format!("/portal/help/cases/{}/reply", ours["number"]);
    let empty = customer.post_form(&reply_path, true, &[("post", "  ")], None).await;
    assert!(location(&empty).contains("error=empty"));
    let files_before = files_under(&site.data_dir).len();
    let too_long = "x".repeat(100_001);
    let refused = customer.post_form(&reply_path, true, &[("post", too_long.as_str())], Some("lost.txt")).await;
    assert!(location(&refused).contains("error=too_long"), "refused");
    assert_eq!(files_under(&site.data_dir).len(), files_before, "a refused reply keeps no file");
    let replied =
        customer.post_form(&reply_path, true, &[("post", "Thanks, Tuesday suits us.")], Some("map.txt")).await;
    assert_eq!(replied.status(), StatusCode::SEE_OTHER);
    let (_, stream) = server.get(&format!("/api/v1/cases/{ours_id}/stream"), admin).await;
    let newest = &stream["items"][0];
    assert_eq!(newest["post"], "Thanks, Tuesday suits us.");
    assert_eq!(newest["is_internal"], false);
    assert_eq!(newest["attachment_ids"].as_array().expect("files").len(), 1);
    let (_, html) = customer.get(&format!("/portal/help/cases/{}", ours["number"])).await;
    assert!(html.contains("Thanks, Tuesday suits us."));
    let map_id = newest["attachment_ids"][0].as_str().expect("file id");
    assert!(html.contains(&format!("attachments/{map_id}\">map.txt</a>")), "{html}");

    // The agent's answer reaches the customer's notifications.
    let (status, _) = server
        .post(&format!("/api/v1/cases/{}/posts", id(&case)), admin, json!({"post": "Open a window, please."}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, html) = customer.get("/portal/help/notifications").await;
    assert!(html.contains(&format!("#{number} Printer smells of toner")), "{html}");
    assert!(html.contains("id=\"unread-count\">1<"), "{html}");
}

async fn each_portal_shows_its_own_knowledge_base(site: Site) {
    let server = site.start(&[]);
    let setting = set_up(&site, &server).await;
    let admin = &setting.admin;
    let (_, printing) = server.post("/api/v1/kb/categories", admin, json!({"name": "Printing"})).await;
    let (_, orders) = server.post("/api/v1/kb/categories", admin, json!({"name": "Ordering"})).await;
    let article = |name: &str, status: &str, portal: &Value, category: &Value| json!({"name": name, "status": status, "body": format!("How to **{name}**."), "portal_ids": [portal["id"]], "category_ids": [category["id"]]});
    let (status, help_article) =
        server.post("/api/v1/kb/articles", admin, article("Clear a jam", "Published", &setting.help, &printing)).await;
    assert_eq!(status, StatusCode::CREATED, "{help_article}");
    let (_, partner_article) = server
        .post("/api/v1/kb/articles", admin, article("Order toner", "Published", &setting.partners, &orders))
        .await;
    let (_, draft) =
        server.post("/api/v1/kb/articles", admin, article("Unfinished", "Draft", &setting.help, &printing)).await;

    let (_, customer) = log_in(&server, &setting.help, "cust", "portal-password", None).await;
    let customer = customer.expect("logged in");
    let (status, html) = customer.get("/portal/help/kb").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Clear a jam") && html.contains("Printing"), "{html}");
    assert!(!html.contains("Order toner") && !html.contains("Unfinished"));
    assert!(!html.contains("Ordering"), "another portal's category is not shown");
    let (_, html) = customer.get("/portal/help/kb?q=jam").await;
    assert!(html.contains("Clear a jam"));
    let (_, html) = customer.get("/portal/help/kb?q=toner").await;
    assert!(!html.contains("Order toner"));
    let (status, html) = customer.get(&format!("/portal/help/kb/{}", id(&help_article))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("How to <strong>Clear a jam</strong>."), "{html}");
    for other in [&partner_article, &draft] {
        assert_eq!(customer.get(&format!("/portal/help/kb/{}", id(other))).await.0, StatusCode::NOT_FOUND);
    }

    // The partners' portal is not theirs until an admin grants it: its
    // roles reach further.
    let (status, refused) = log_in(&server, &setting.partners, "cust", "portal-password", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(refused.is_none());
    let user_portals = format!("/api/v1/users/{}/portals", id(&setting.user));
    let grant = json!({"portal_ids": [setting.partners["id"]]});
    let (status, body) = server.call(reqwest::Method::PUT, &user_portals, admin, Some(grant)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // There, the same customer reads that portal's articles and reaches
    // what its roles reach, with a session of its own.
    let elsewhere =
        server.case(admin, json!({"name": "Another company's order", "account_id": setting.theirs["id"]})).await;
    let (_, partner) = log_in(&server, &setting.partners, "cust", "portal-password", None).await;
    let partner = partner.expect("logged in at the partners' portal");
    let (_, html) = partner.get("/portal/partners/kb").await;
    assert!(html.contains("Order toner") && html.contains("Ordering") && !html.contains("Clear a jam"), "{html}");
    assert_eq!(partner.get(&format!("/portal/partners/kb/{}", id(&help_article))).await.0, StatusCode::NOT_FOUND);
    let elsewhere_page = format!("/cases/{}", elsewhere["number"]);
    assert_eq!(partner.get(&format!("/portal/partners{elsewhere_page}")).await.0, StatusCode::OK);
    assert_eq!(customer.get(&format!("/portal/help{elsewhere_page}")).await.0, StatusCode::NOT_FOUND);

    // Taken away again: that session stops at once.
    let (status, _) = server.call(reqwest::Method::PUT, &user_portals, admin, Some(json!({"portal_ids": []}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(partner.get("/portal/partners/kb").await.0, StatusCode::SEE_OTHER);
}

on_both_backends!(
    portal_sessions_belong_to_one_portal,
    customers_open_read_and_answer_their_cases,
    each_portal_shows_its_own_knowledge_base
);
