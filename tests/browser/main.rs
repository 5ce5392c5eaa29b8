//! Real-browser tests: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) drives the real `docket` binary through its pages.
//!
//! Set `DOCKET_SCREENSHOTS_DIR=docs/screenshots` to save screenshots of the
//! main pages while the tests run.

#[path = "../api/support.rs"]
#[allow(dead_code)]
mod support;
mod webdriver;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::{ADMIN_PASSWORD, Backend, Server, Site};
use webdriver::{Browser, Driver};

/// One browser at a time: two cores do not run several Chromiums well.
static BROWSER_SLOT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn screenshot(browser: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("DOCKET_SCREENSHOTS_DIR") {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        browser.screenshot(&root.join(dir).join(format!("{name}.png"))).await;
    }
}

/// Polls until `check` holds (pages load asynchronously after clicks).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Clicks something that loads a new page, and waits until the new page
/// has replaced the old one (so the old page's elements cannot be found
/// by mistake).
async fn click_and_wait(browser: &Browser, css: &str) {
    browser.script("window.__docket_old_page = true; return true;").await;
    browser.find(css).await.click().await;
    eventually("the next page", || async {
        browser.script("return window.__docket_old_page === undefined && document.readyState === 'complete';").await
            == json!(true)
    })
    .await;
}

async fn wait_for(browser: &Browser, css: &str) {
    for _ in 0..300 {
        if browser.exists(css).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for `{css}` on {}:\n{}", browser.current_url().await, browser.source().await);
}

async fn log_in(browser: &Browser, server: &Server, username: &str, password: &str) {
    browser.goto(&server.url("/login")).await;
    submit_login(browser, username, password).await;
}

/// Fills in the login form of the current page.
async fn submit_login(browser: &Browser, username: &str, password: &str) {
    let field = browser.find("#username").await;
    field.clear().await;
    field.type_text(username).await;
    browser.find("#password").await.type_text(password).await;
    click_and_wait(browser, "form button[type=submit]").await;
}

async fn log_out(browser: &Browser) {
    click_and_wait(browser, "header .user button").await;
    wait_for(browser, "#username").await;
}

async fn setup(demo: bool) -> Option<(Site, Server, Driver, Browser)> {
    let driver = Driver::start().await?;
    let site = Site::new(Backend::Sqlite).await.expect("site");
    let server = site.start(if demo { &["--demo"] } else { &[] });
    let browser = driver.session().await;
    Some((site, server, driver, browser))
}

#[tokio::test]
async fn login_list_filters_and_search() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((_site, server, _driver, browser)) = setup(true).await else { return };

    // Anonymous visitors are sent to the login page, and back afterwards.
    browser.goto(&server.url("/cases/3")).await;
    wait_for(&browser, "#username").await;
    screenshot(&browser, "login").await;
    submit_login(&browser, "alice", "wrong password").await;
    wait_for(&browser, ".alert.error").await;
    assert!(browser.text(".alert.error").await.contains("Invalid username or password"));
    submit_login(&browser, "alice", "docket-demo").await;
    eventually("the case page", || async { browser.current_url().await.ends_with("/cases/3") }).await;

    browser.goto(&server.url("/")).await;
    wait_for(&browser, "table.cases").await;
    screenshot(&browser, "cases").await;
    let open: i64 = browser.text("#case-count").await.parse().expect("count");
    assert!(open > 0);
    // Text search through the filter form.
    browser.find("form.filters input[name=q]").await.type_text("VAT").await;
    click_and_wait(&browser, "form.filters button[type=submit]").await;
    eventually("filtered list", || async { browser.current_url().await.contains("q=VAT") }).await;
    let rows = browser.text("table.cases tbody").await;
    assert!(rows.contains("Invoice shows the wrong VAT rate"), "{rows}");
    assert!(!rows.contains("SSO login"), "{rows}");
    // The Closed tab shows only closed cases.
    browser.goto(&server.url("/")).await;
    click_and_wait(&browser, "a[href='/?view=closed']").await;
    eventually("closed view", || async { browser.current_url().await.contains("view=closed") }).await;
    let closed = browser.text("table.cases tbody").await;
    assert!(closed.contains("Closed") && !closed.contains("Pending") && !closed.contains("New"), "{closed}");
    // The global search box jumps straight to a case number.
    browser.find("#global-search").await.type_text("#12\n").await;
    eventually("case 12", || async { browser.current_url().await.ends_with("/cases/12") }).await;
    assert!(browser.text("h1").await.contains("#12"));
    screenshot(&browser, "case").await;
    browser.close().await;
}

#[tokio::test]
async fn create_with_a_validation_error_then_success_edit_stale_and_close() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((site, server, _driver, browser)) = setup(false).await else { return };
    let key = site.admin_key();
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;
    wait_for(&browser, "table.cases, p.empty").await;

    browser.goto(&server.url("/cases/new")).await;
    browser.find("#description").await.type_text("No subject given").await;
    click_and_wait(&browser, "form.grid-form button[type=submit]").await;
    wait_for(&browser, "#name-error").await;
    assert_eq!(browser.text("#name-error").await, "required");
    assert_eq!(browser.text("#description").await, "No subject given", "the form keeps what was typed");
    screenshot(&browser, "case-form-errors").await;
    browser.find("#name").await.type_text("Printer on fire").await;
    click_and_wait(&browser, "form.grid-form button[type=submit]").await;
    wait_for(&browser, "#case-name").await;
    assert_eq!(browser.text("#case-name").await, "Printer on fire");
    assert!(browser.current_url().await.ends_with("/cases/1"));

    // Someone else saves while this agent edits: nothing is overwritten.
    browser.goto(&server.url("/cases/1/edit")).await;
    wait_for(&browser, "#name").await;
    let (_, case) = server.get("/api/v1/cases/by-number/1", &key).await;
    let id = case["id"].as_str().expect("id").to_string();
    let (status, _) = server.patch(&format!("/api/v1/cases/{id}"), &key, json!({"name": "Renamed elsewhere"})).await;
    assert_eq!(status, StatusCode::OK);
    let name = browser.find("#name").await;
    name.clear().await;
    name.type_text("My stale rename").await;
    click_and_wait(&browser, "form.grid-form button[type=submit]").await;
    wait_for(&browser, "#conflict").await;
    assert!(browser.text("#conflict").await.contains("Someone else changed this case"));
    let (_, after) = server.get(&format!("/api/v1/cases/{id}"), &key).await;
    assert_eq!(after["name"], "Renamed elsewhere");
    // Saving again from the refreshed form (new version) works.
    click_and_wait(&browser, "form.grid-form button[type=submit]").await;
    wait_for(&browser, "#case-name").await;
    assert_eq!(browser.text("#case-name").await, "My stale rename");

    // Close.
    click_and_wait(&browser, "#close-case").await;
    eventually("closed status", || async { browser.text("#case-status").await.contains("Closed") }).await;
    assert!(!browser.exists("#close-case").await);
    let (_, closed) = server.get(&format!("/api/v1/cases/{id}"), &key).await;
    assert_eq!(closed["status"], "Closed");
    browser.close().await;
}

#[tokio::test]
async fn attachments_upload_and_download() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((site, server, _driver, browser)) = setup(false).await else { return };
    let key = site.admin_key();
    server.case(&key, json!({"name": "Needs a log file"})).await;
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;
    wait_for(&browser, "table.cases").await;
    browser.goto(&server.url("/cases/1")).await;
    let file = tempfile::Builder::new().prefix("server-").suffix(".log").tempfile().expect("file");
    std::fs::write(file.path(), "line one\nline two: ünïcode\n").expect("write");
    browser.find("#file").await.type_text(&file.path().display().to_string()).await;
    click_and_wait(&browser, "#upload").await;
    wait_for(&browser, "ul.attachments a").await;
    let link = browser.find("ul.attachments a").await;
    assert!(link.text().await.starts_with("server-"));
    let href = link.attribute("href").await.expect("href");
    let downloaded = browser.script(&format!("return fetch('{href}').then(r => r.text());")).await;
    assert_eq!(downloaded.as_str(), Some("line one\nline two: ünïcode\n"));
    let (_, case) = server.get("/api/v1/cases/by-number/1", &key).await;
    assert_eq!(case["attachment_ids"].as_array().map(Vec::len), Some(1));
    browser.close().await;
}

#[tokio::test]
async fn admin_creates_a_user_who_then_logs_in() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((_site, server, _driver, browser)) = setup(false).await else { return };
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;
    wait_for(&browser, "header .user").await;
    browser.goto(&server.url("/admin/users/new")).await;
    browser.find("#username").await.type_text("newagent").await;
    browser.find("#name").await.type_text("New Agent").await;
    browser.find("#password").await.type_text("short").await;
    click_and_wait(&browser, "form.grid-form button[type=submit]").await;
    wait_for(&browser, "#password-error").await;
    assert!(browser.text("#password-error").await.contains("at least 8"));
    browser.find("#password").await.type_text("a-long-enough-password").await;
    // The seeded Agent role.
    browser.find("input[name=role_ids]").await.click().await;
    click_and_wait(&browser, "form.grid-form button[type=submit]").await;
    // The form posts to /admin/users too: wait for the list itself.
    wait_for(&browser, "table").await;
    assert!(browser.text("table").await.contains("newagent"));
    screenshot(&browser, "admin-users").await;
    log_out(&browser).await;

    log_in(&browser, &server, "newagent", "a-long-enough-password").await;
    wait_for(&browser, "header .user").await;
    assert_eq!(browser.text("header .user a[href='/preferences']").await, "newagent");
    // Agents are not admins: the admin area answers with a 403 page.
    browser.goto(&server.url("/admin/users")).await;
    wait_for(&browser, ".error-page").await;
    assert!(browser.text(".error-code").await.contains("403"));
    browser.close().await;
}

#[tokio::test]
async fn forged_posts_are_rejected_and_payloads_stay_inert() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((site, server, _driver, browser)) = setup(false).await else { return };
    let key = site.admin_key();
    let payload = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">";
    server
        .case(
            &key,
            json!({"name": payload, "description": format!("{payload}\n\n[click](javascript:window.__xss=3) **bold**")}),
        )
        .await;
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;
    wait_for(&browser, "table.cases").await;
    assert!(browser.text("table.cases").await.contains("<script>"), "the name shows as text");
    browser.goto(&server.url("/cases/1")).await;
    wait_for(&browser, "#description").await;
    assert_eq!(browser.script("return typeof window.__xss;").await, json!("undefined"));
    assert_eq!(browser.text("#description strong").await, "bold");
    assert!(!browser.source().await.contains("javascript:window"));
    screenshot(&browser, "case-xss").await;

    // A form posted without the session's CSRF token is refused.
    browser
        .script(
            "const f = document.createElement('form'); f.method = 'post'; f.action = '/cases';
             const n = document.createElement('input'); n.name = 'name'; n.value = 'forged'; f.appendChild(n);
             const t = document.createElement('input'); t.name = 'csrf_token'; t.value = 'not-the-token'; f.appendChild(t);
             document.body.appendChild(f); f.submit(); return true;",
        )
        .await;
    wait_for(&browser, ".error-page").await;
    assert!(browser.text(".error-page").await.contains("CSRF"));
    let (_, list) = server.get("/api/v1/cases", &key).await;
    assert_eq!(list["total"], 1, "the forged post created nothing");
    browser.close().await;
}

#[tokio::test]
async fn admin_manages_teams_roles_api_keys_and_settings() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((site, server, _driver, browser)) = setup(false).await else { return };
    let key = site.admin_key();
    let (status, _) = server
        .post("/api/v1/users", &key, json!({"username": "tina", "type": "agent", "password": "tina-password"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;

    // A team with a member in a position.
    browser.goto(&server.url("/admin/teams/new")).await;
    browser.find("#name").await.type_text("Tier 1 Support").await;
    browser.find("#member-tina").await.click().await;
    browser.find("#position-tina").await.type_text("Lead").await;
    click_and_wait(&browser, "form button[type=submit].primary").await;
    wait_for(&browser, "table").await;
    assert!(browser.text("table").await.contains("Tier 1 Support"));
    let (_, teams) = server.get("/api/v1/teams", &key).await;
    let members = &teams["items"][0]["members"];
    assert_eq!(members[0]["position"], "Lead", "{teams}");

    // A role with its own levels.
    browser.goto(&server.url("/admin/roles/new")).await;
    browser.find("#name").await.type_text("Read-only").await;
    browser
        .find("select[name='case.read'] option[value='all'], select[name='case.read'] option:first-child")
        .await
        .click()
        .await;
    click_and_wait(&browser, "form button[type=submit].primary").await;
    wait_for(&browser, "table").await;
    screenshot(&browser, "admin-roles").await;
    let (_, roles) = server.get("/api/v1/roles", &key).await;
    let role =
        roles["items"].as_array().expect("roles").iter().find(|r| r["name"] == "Read-only").expect("role").clone();
    assert_eq!(role["permissions"]["case"]["read"], "all");
    assert_eq!(role["permissions"]["case"]["delete"], "no");

    // An API key is shown once, works, and stops working when revoked.
    browser.goto(&server.url("/admin/api-keys")).await;
    browser.find("#key-user option:nth-child(2)").await.click().await;
    browser.find("#key-name").await.type_text("billing sync").await;
    click_and_wait(&browser, "#create-key").await;
    wait_for(&browser, "#new-key").await;
    let new_key = browser.text("#new-key").await;
    assert!(new_key.starts_with("dk_"));
    assert_eq!(server.get("/api/v1/me", &new_key).await.0, StatusCode::OK);
    browser.goto(&server.url("/admin/api-keys")).await;
    assert!(!browser.source().await.contains(&new_key), "the key is shown only once");
    // Revoking asks first.
    browser.find("td form button.danger").await.click().await;
    browser.accept_alert().await;
    wait_for(&browser, "td .badge").await;
    assert_eq!(server.get("/api/v1/me", &new_key).await.0, StatusCode::UNAUTHORIZED);

    // General settings: the helpdesk's name heads every page.
    browser.goto(&server.url("/admin/settings")).await;
    let name = browser.find("#helpdesk_name").await;
    name.clear().await;
    name.type_text("Acme Help").await;
    click_and_wait(&browser, "form button[type=submit].primary").await;
    wait_for(&browser, ".alert.success").await;
    browser.goto(&server.url("/")).await;
    assert_eq!(browser.text("header .brand").await, "Acme Help");
    browser.close().await;
}

#[tokio::test]
async fn account_and_contact_pages_list_their_cases_and_passwords_change() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((_site, server, _driver, browser)) = setup(true).await else { return };
    log_in(&browser, &server, "bob", "docket-demo").await;
    wait_for(&browser, "table.cases").await;
    browser.goto(&server.url("/accounts?q=initech")).await;
    click_and_wait(&browser, "table a").await;
    wait_for(&browser, "#account-name").await;
    assert_eq!(browser.text("#account-name").await, "Initech");
    let cases = browser.text("table.cases").await;
    assert!(cases.contains("Export to CSV") || cases.contains("API returns 502"), "{cases}");
    screenshot(&browser, "account").await;
    click_and_wait(&browser, "aside a[href^='/contacts/']").await;
    wait_for(&browser, "#contact-name").await;
    assert!(browser.text("aside").await.contains("Initech"));
    assert!(browser.exists("table.cases tbody tr").await);

    // Password change, then the old password no longer works.
    browser.goto(&server.url("/password")).await;
    browser.find("#current_password").await.type_text("docket-demo").await;
    browser.find("#new_password").await.type_text("bobs-new-password").await;
    browser.find("#confirm_password").await.type_text("bobs-new-password").await;
    click_and_wait(&browser, "main form button[type=submit]").await;
    wait_for(&browser, ".alert.success").await;
    log_out(&browser).await;
    submit_login(&browser, "bob", "docket-demo").await;
    wait_for(&browser, ".alert.error").await;
    submit_login(&browser, "bob", "bobs-new-password").await;
    wait_for(&browser, "table.cases").await;
    browser.close().await;
}

#[tokio::test]
async fn posting_following_and_notifications() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((site, server, _driver, browser)) = setup(false).await else { return };
    let key = site.admin_key();
    let (_, ann) = server
        .post(
            "/api/v1/users",
            &key,
            json!({"username": "ann", "type": "agent", "password": "ann-password", "role_ids": []}),
        )
        .await;
    let (_, roles) = server.get("/api/v1/roles", &key).await;
    server
        .patch(
            &format!("/api/v1/users/{}", ann["id"].as_str().expect("id")),
            &key,
            json!({"role_ids": [roles["items"][0]["id"]]}),
        )
        .await;
    server.case(&key, json!({"name": "Printer on fire", "assigned_user_id": ann["id"]})).await;

    // Ann is the assignee: she follows and has a (highlighted) notification.
    log_in(&browser, &server, "ann", "ann-password").await;
    wait_for(&browser, "#unread-count").await;
    assert_eq!(browser.text("#unread-count").await, "1");
    click_and_wait(&browser, "#notifications-link").await;
    assert!(browser.text("ul.notifications").await.contains("Printer on fire"));
    click_and_wait(&browser, "ul.notifications a").await;
    wait_for(&browser, "#followers").await;
    assert!(browser.text("#followers").await.contains("ann"));
    assert!(!browser.exists("#unread-count").await || browser.text("#unread-count").await == "0");

    // An empty post is refused; an internal post with Markdown appears,
    // marked internal and rendered.
    click_and_wait(&browser, "#post-submit").await;
    wait_for(&browser, "#post-error").await;
    browser.find("#post-text").await.type_text("Toner is **flammable**, @admin FYI").await;
    browser.find("#post-internal").await.click().await;
    click_and_wait(&browser, "#post-submit").await;
    wait_for(&browser, ".note.internal strong").await;
    assert_eq!(browser.text(".note.internal strong").await, "flammable");
    screenshot(&browser, "case-stream").await;
    let (_, admin_notes) = server.get("/api/v1/notifications", &key).await;
    assert_eq!(admin_notes["items"][0]["kind"], "mention");

    // A post with an attached file.
    let file = tempfile::Builder::new().prefix("trace-").suffix(".txt").tempfile().expect("file");
    std::fs::write(file.path(), "stack trace here").expect("write");
    browser.find("#post-text").await.type_text("See the trace").await;
    browser.find("#post-files").await.type_text(&file.path().display().to_string()).await;
    click_and_wait(&browser, "#post-submit").await;
    wait_for(&browser, ".note-attachments a").await;
    let href = browser.find(".note-attachments a").await.attribute("href").await.expect("href");
    let downloaded = browser.script(&format!("return fetch('{href}').then(r => r.text());")).await;
    assert_eq!(downloaded.as_str(), Some("stack trace here"));

    // Unfollow and follow again.
    click_and_wait(&browser, "#follow-toggle").await;
    assert_eq!(browser.text("#follow-toggle").await, "Follow");
    click_and_wait(&browser, "#follow-toggle").await;
    assert_eq!(browser.text("#follow-toggle").await, "Unfollow");

    // Preferences: global auto-follow makes ann follow new cases.
    browser.goto(&server.url("/preferences")).await;
    browser.find("#auto_follow_cases").await.click().await;
    click_and_wait(&browser, "main form button[type=submit]").await;
    wait_for(&browser, ".alert.success").await;
    let other = server.case(&key, json!({"name": "Unrelated case"})).await;
    let (_, followers) =
        server.get(&format!("/api/v1/cases/{}/followers", other["id"].as_str().expect("id")), &key).await;
    assert_eq!(followers["items"][0]["username"], "ann");
    browser.close().await;
}

#[tokio::test]
async fn admin_configures_email_and_sees_jobs() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some(smtp) = support::SmtpSink::start() else { return };
    let Some(driver) = Driver::start().await else { return };
    let site = Site::new(Backend::Sqlite).await.expect("site").with_env("DOCKET_EMAIL_DELAY_SECONDS", "0");
    let server = site.start(&[]);
    let browser = driver.session().await;
    let key = site.admin_key();
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;
    wait_for(&browser, "header .user").await;

    browser.goto(&server.url("/admin/email")).await;
    for (field, value) in [("#host", "127.0.0.1".to_string()), ("#from_address", "support@docket.test".to_string())] {
        browser.find(field).await.type_text(&value).await;
    }
    let port = browser.find("#port").await;
    port.clear().await;
    port.type_text(&smtp.port.to_string()).await;
    browser.find("#security option[value=none], #security option:last-child").await.click().await;
    click_and_wait(&browser, "#save-smtp").await;
    wait_for(&browser, "#email-message").await;
    click_and_wait(&browser, "#test-smtp").await;
    assert!(browser.text("#email-message").await.starts_with("Connected"), "{}", browser.text("#email-message").await);

    // A broken template is refused with the reason; a good one is saved.
    let subject = browser.find("#subject").await;
    subject.clear().await;
    subject.type_text("{{ case.number").await;
    click_and_wait(&browser, "#save-template").await;
    wait_for(&browser, "#subject-error").await;
    let subject = browser.find("#subject").await;
    subject.clear().await;
    subject.type_text("Case {{ case.number }} [#{{ case.number }}]: {{ case.name }}").await;
    click_and_wait(&browser, "#save-template").await;
    wait_for(&browser, "#email-message").await;
    screenshot(&browser, "admin-email").await;

    // An email goes out with the new subject; the jobs page shows it done.
    let (_, me) = server.get("/api/v1/me", &key).await;
    server
        .patch(
            &format!("/api/v1/users/{}", me["id"].as_str().expect("id")),
            &key,
            json!({"email": "admin@docket.test"}),
        )
        .await;
    server
        .call(
            reqwest::Method::PUT,
            "/api/v1/me/preferences",
            &key,
            Some(json!({"email_notifications": true, "follow_created": true})),
        )
        .await;
    let case = server.case(&key, json!({"name": "Mail me"})).await;
    let (_, agent_key) =
        server.agent(&site, &key, "ann", json!({"create": "all", "read": "all", "edit": "all"}), json!([])).await;
    server
        .post(
            &format!("/api/v1/cases/{}/posts", case["id"].as_str().expect("id")),
            &agent_key,
            json!({"post": "Hello admin"}),
        )
        .await;
    let messages = smtp.wait_for(1).await;
    assert!(messages[0].contains("Subject: Case 1 [#1]: Mail me"), "{}", messages[0]);
    browser.goto(&server.url("/admin/jobs?status=done")).await;
    wait_for(&browser, "table").await;
    assert!(browser.text("table").await.contains("email_notification"));
    browser.close().await;
}

/// New notes appear on an open case page without a reload, also when they
/// are written through another node on the same PostgreSQL database.
#[tokio::test]
async fn live_stream_updates_across_nodes() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some(driver) = Driver::start().await else { return };
    let Some(site) = Site::new(Backend::Postgres).await else { return };
    let node_a = site.start(&[]);
    let node_b = site.start(&[]);
    let key = site.admin_key();
    let case = node_a.case(&key, json!({"name": "Watch me"})).await;
    let browser = driver.session().await;
    log_in(&browser, &node_a, "admin", ADMIN_PASSWORD).await;
    browser.goto(&node_a.url("/cases/1")).await;
    wait_for(&browser, "ol.stream").await;
    // Give the event stream a moment to connect, and mark the page so a
    // reload would show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    browser.script("window.__same_page = true; return true;").await;

    let (status, _) = node_b
        .post(
            &format!("/api/v1/cases/{}/posts", case["id"].as_str().expect("id")),
            &key,
            json!({"post": "Written on **node B**"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    eventually("the live note", || async { browser.exists(".note-post strong").await }).await;
    assert_eq!(browser.text(".note-post strong").await, "node B");
    assert_eq!(browser.script("return window.__same_page === true;").await, json!(true), "no reload happened");

    // A status change through node B arrives too.
    node_b
        .patch(&format!("/api/v1/cases/{}", case["id"].as_str().expect("id")), &key, json!({"status": "Pending"}))
        .await;
    eventually("the live update note", || async { browser.exists(".note-update").await }).await;

    // An open event stream does not hold up a graceful shutdown.
    let mut node_a = node_a;
    let stopping = tokio::task::spawn_blocking(move || node_a.signal_and_wait("TERM"));
    let exited =
        tokio::time::timeout(Duration::from_secs(15), stopping).await.expect("shut down in time").expect("join");
    assert!(exited, "node A exits cleanly");
    browser.close().await;
}

#[tokio::test]
async fn admin_writes_tests_and_uses_rules() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((site, server, _driver, browser)) = setup(false).await else { return };
    let key = site.admin_key();
    let case = server.case(&key, json!({"name": "Printer on fire", "priority": "Normal"})).await;
    let number = case["number"].as_i64().expect("number");
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;

    // A manual rule with a mistake: the error names the line, nothing is saved.
    browser.goto(&server.url("/admin/rules/new")).await;
    browser.find("#name").await.type_text("Escalate").await;
    browser.find("#hook option[value='manual']").await.click().await;
    browser.find("#condition").await.type_text("ticket.priority != \"Urgent\"").await;
    browser
        .find("#script")
        .await
        .type_text("set(\"priority\", \"Urgent\");\ninternal_note(\"Escalated by \" + actor.username;")
        .await;
    click_and_wait(&browser, "button[value=save]").await;
    wait_for(&browser, "#script-error").await;
    assert!(browser.text("#script-error").await.contains("line 2"), "{}", browser.text("#script-error").await);
    let (_, rules) = server.get("/api/v1/rules", &key).await;
    assert!(rules.as_array().expect("rules").is_empty());

    // Fixed, then tried against the case before saving: the dry run shows the actions.
    let script = browser.find("#script").await;
    script.clear().await;
    script.type_text("set(\"priority\", \"Urgent\");\ninternal_note(\"Escalated by \" + actor.username);").await;
    browser.find("#case_number").await.type_text(&number.to_string()).await;
    click_and_wait(&browser, "button[value=test]").await;
    wait_for(&browser, ".dry-run-result").await;
    let result = browser.text(".dry-run-result").await;
    assert!(result.contains("held"), "{result}");
    assert!(result.contains("\"priority\""), "{result}");
    browser.script("document.querySelector('.dry-run-result').scrollIntoView(); return true;").await;
    screenshot(&browser, "admin-rule-dry-run").await;
    let (_, unchanged) = server.get(&format!("/api/v1/cases/{}", case["id"].as_str().expect("id")), &key).await;
    assert_eq!(unchanged["priority"], "Normal", "a dry run changes nothing");
    click_and_wait(&browser, "button[value=save]").await;
    wait_for(&browser, ".alert.success").await;
    assert!(browser.text("table").await.contains("Escalate"));
    screenshot(&browser, "admin-rules").await;

    // The button shows on the case while the condition holds, and runs the rule.
    browser.goto(&server.url(&format!("/cases/{number}"))).await;
    wait_for(&browser, ".rule-button").await;
    click_and_wait(&browser, ".rule-button").await;
    wait_for(&browser, "#notice").await;
    assert!(browser.text("#notice").await.contains("done"), "{}", browser.text("#notice").await);
    assert!(browser.text(".stream").await.contains("Escalated by admin"));
    assert!(browser.text("#rule-runs + .table-wrap").await.contains("applied"));
    assert!(!browser.exists(".rule-button").await, "the condition no longer holds");
    screenshot(&browser, "case-rule-runs").await;
    browser.close().await;
}

#[tokio::test]
async fn admin_installs_configures_and_watches_a_plugin() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((site, server, _driver, browser)) = setup(false).await else { return };
    let key = site.admin_key();
    // Chromium wants canonical paths for file inputs.
    let plugins =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins").canonicalize().expect("plugins");
    let manifest = plugins.join("vip-escalation/manifest.json");
    let component = plugins.join("target/vip-escalation.wasm");
    assert!(component.exists(), "{} is missing; build the plugins first with plugins/build", component.display());
    let choose = |css: &'static str, path: &std::path::Path| {
        let browser = &browser;
        let path = path.display().to_string();
        async move { browser.find(css).await.type_text(&path).await }
    };
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;

    // An upload without the session's CSRF token is refused before its files are read.
    browser.goto(&server.url("/admin/plugins")).await;
    let forged = browser
        .script(
            "const f = new FormData(); f.append('csrf_token', 'forged');
             f.append('component', new Blob(['\\0asm']), 'x.wasm');
             return fetch('/admin/plugins', {method: 'POST', body: f}).then(r => r.status);",
        )
        .await;
    assert_eq!(forged, json!(403));

    // No component: the form says so and installs nothing.
    choose("#manifest", &manifest).await;
    click_and_wait(&browser, "#install").await;
    wait_for(&browser, "#component-error").await;
    assert!(browser.text("#component-error").await.contains("required"));

    // Enabled without the `storage` grant its imports need: refused, naming it.
    choose("#manifest", &manifest).await;
    choose("#component", &component).await;
    browser.find("#enabled").await.click().await;
    click_and_wait(&browser, "#install").await;
    wait_for(&browser, "#component-error").await;
    assert!(browser.text("#component-error").await.contains("storage"), "{}", browser.text("#component-error").await);
    let (_, installed) = server.get("/api/v1/plugins", &key).await;
    assert_eq!(installed, json!([]), "a refused upload installs nothing");

    // With the grant it installs, enabled, and opens its page.
    choose("#manifest", &manifest).await;
    choose("#component", &component).await;
    browser.find("input[name=grants][value=storage]").await.click().await;
    browser.find("#enabled").await.click().await;
    click_and_wait(&browser, "#install").await;
    wait_for(&browser, ".alert.success").await;
    assert!(browser.text(".plugin-facts").await.contains("docket:plugin@0.1.0"));

    // Configuration is checked as JSON, then saved.
    let config = browser.find("#config").await;
    config.clear().await;
    config.type_text("{\"vip_accounts\": [\"Initech\"],").await;
    click_and_wait(&browser, "#save").await;
    wait_for(&browser, "#config-error").await;
    assert!(browser.text("#config-error").await.contains("not JSON"));
    let config = browser.find("#config").await;
    config.clear().await;
    config.type_text("{\"vip_accounts\": [\"Initech\"], \"priority\": \"High\"}").await;
    click_and_wait(&browser, "#save").await;
    wait_for(&browser, ".alert.success").await;

    // A rule runs it; the run shows in its log with the case, fuel and log line.
    let (status, rule) = server
        .post("/api/v1/rules", &key, json!({"name": "VIP", "hook": "case.created", "plugin": "vip-escalation"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let (_, initech) = server.post("/api/v1/accounts", &key, json!({"name": "Initech"})).await;
    let case = server.case(&key, json!({"name": "TPS reports lost", "account_id": initech["id"]})).await;
    assert_eq!(case["priority"], "High", "the saved configuration is used: {case}");
    browser.goto(&browser.current_url().await).await;
    wait_for(&browser, "table.plugin-runs a[href^='/cases/']").await;
    let runs = browser.text("table.plugin-runs").await;
    assert!(runs.contains(&format!("#{}", case["number"])), "{runs}");
    assert!(runs.contains("VIP"), "{runs}");
    assert!(runs.contains("ok"), "{runs}");
    browser.script("document.querySelector('#runs').scrollIntoView(); return true;").await;
    screenshot(&browser, "admin-plugin").await;

    // Not deleted while a rule runs it; the page names the rule.
    browser.find("#delete").await.click().await;
    browser.accept_alert().await;
    wait_for(&browser, "#form-error").await;
    assert!(browser.text("#form-error").await.contains("VIP"), "{}", browser.text("#form-error").await);

    // Disabled from its page: the list shows it, and the rule's run says why.
    browser.find("#enabled").await.click().await;
    click_and_wait(&browser, "#save").await;
    wait_for(&browser, ".alert.success").await;
    browser.goto(&server.url("/admin/plugins")).await;
    assert!(browser.text("table.plugins").await.contains("disabled"));
    let (_, listed) = server.get("/api/v1/plugins", &key).await;
    assert_eq!(listed[0]["enabled"], false, "{listed}");
    browser.close().await;
}

#[tokio::test]
async fn admin_sets_up_a_mailbox_and_an_agent_replies_by_email() {
    let _slot = BROWSER_SLOT.lock().await;
    let (Some(dovecot), Some(smtp)) = (support::Dovecot::start(), support::SmtpSink::start()) else { return };
    let driver = Driver::start().await.expect("chromium");
    let site = Site::new(Backend::Sqlite)
        .await
        .expect("site")
        .with_env("DOCKET_MAIL_POLL_SECONDS", "1")
        .with_env("DOCKET_EMAIL_DELAY_SECONDS", "0");
    let server = site.start(&[]);
    let browser = driver.session().await;
    let key = site.admin_key();
    let smtp_settings =
        json!({"host": "127.0.0.1", "port": smtp.port, "security": "none", "from_address": "docket@help.test"});
    let (status, _) = server.call(reqwest::Method::PUT, "/api/v1/settings/smtp", &key, Some(smtp_settings)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, contact) = server
        .post(
            "/api/v1/contacts",
            &key,
            json!({"first_name": "Bo", "last_name": "Customer", "emails": ["bo@customer.test"]}),
        )
        .await;
    dovecot.add_user("support", "imap-secret");
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;

    // A mistake first: the form keeps what was typed and names the field.
    browser.goto(&server.url("/admin/mailboxes/new")).await;
    browser.find("#name").await.type_text("Support").await;
    browser.find("#email_address").await.type_text("not an address").await;
    browser.find("#imap_host").await.type_text("127.0.0.1").await;
    let port = browser.find("#imap_port").await;
    port.clear().await;
    port.type_text(&dovecot.port.to_string()).await;
    browser.find("#imap_security option[value='none']").await.click().await;
    browser.find("#imap_username").await.type_text("support").await;
    browser.find("#imap_password").await.type_text("imap-secret").await;
    click_and_wait(&browser, "#save").await;
    wait_for(&browser, "#email_address-error").await;
    assert_eq!(browser.find("#name").await.attribute("value").await.as_deref(), Some("Support"));
    let address = browser.find("#email_address").await;
    address.clear().await;
    address.type_text("support@help.test").await;
    // The password field is never filled back in; it is typed again.
    browser.find("#imap_password").await.type_text("imap-secret").await;
    click_and_wait(&browser, "#save").await;
    wait_for(&browser, "#notice").await;
    assert!(!browser.source().await.contains("imap-secret"), "the password is never shown");

    // The connection test says it works.
    click_and_wait(&browser, "#test").await;
    wait_for(&browser, "#test-result").await;
    assert!(browser.text("#test-result").await.contains("Connection works"), "{}", browser.text("#test-result").await);

    // Mail arrives: a case for Bo. A rule refuses invoices, so that one
    // waits in quarantine; once the rule is gone, a retry makes its case.
    let rule = json!({"name": "No invoices", "hook": "case.before_save",
                      "script": "if ticket.name.contains(\"Invoice\") { reject(\"invoices go to billing\"); }"});
    let (status, rule) = server.post("/api/v1/rules", &key, rule).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let raw = "From: Bo Customer <bo@customer.test>\r\nSubject: Printer offline\r\nMessage-ID: <b1@customer.test>\r\n\r\nIt says E-42.\r\n";
    dovecot.deliver("support", raw.as_bytes());
    let invoice =
        "From: bo@customer.test\r\nSubject: Invoice overdue\r\nMessage-ID: <b2@customer.test>\r\n\r\nPay us.\r\n";
    dovecot.deliver("support", invoice.as_bytes());
    let (_, mailboxes) = server.get("/api/v1/mailboxes", &key).await;
    let mailbox_page = server.url(&format!("/admin/mailboxes/{}", mailboxes[0]["id"].as_str().expect("id")));
    eventually("the quarantined message", || async {
        browser.goto(&format!("{mailbox_page}?status=quarantined")).await;
        browser.exists("table.messages button.retry").await
    })
    .await;
    assert!(browser.text("table.messages").await.contains("invoices go to billing"));
    browser.script("document.querySelector('#messages').scrollIntoView(); return true;").await;
    screenshot(&browser, "admin-mailbox").await;
    let rule_id = rule["id"].as_str().expect("id");
    let (status, _) = server.call(reqwest::Method::DELETE, &format!("/api/v1/rules/{rule_id}"), &key, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    click_and_wait(&browser, "table.messages button.retry").await;
    wait_for(&browser, "#notice").await;
    assert!(browser.text("#notice").await.contains("Retried: case"), "{}", browser.text("#notice").await);

    // The agent answers from the case page by email.
    let (_, cases) = server.get("/api/v1/cases?q=Printer", &key).await;
    let case = cases["items"][0].clone();
    assert_eq!(case["contact_id"], contact["id"]);
    let number = case["number"].as_i64().expect("number");
    browser.goto(&server.url(&format!("/cases/{number}"))).await;
    browser.find("#email summary").await.click().await;
    browser.find("#email-body").await.type_text("Please switch it off and on again.").await;
    click_and_wait(&browser, "#email-send").await;
    wait_for(&browser, "#notice").await;
    let sent = smtp.wait_for(1).await;
    let message = sent.iter().find(|m| m.contains("switch it off")).expect("the agent's email");
    assert!(message.contains(&format!("Subject: [#{number}] Printer offline")), "{message}");
    assert!(message.contains("bo@customer.test"), "{message}");
    assert!(message.contains("In-Reply-To: <b1@customer.test>"), "{message}");
    browser.goto(&server.url(&format!("/cases/{number}"))).await;
    assert!(browser.text(".stream").await.contains("emailed bo@customer.test"), "{}", browser.text(".stream").await);
    browser.close().await;
}

#[tokio::test]
async fn admin_sets_up_a_portal_its_roles_and_a_customers_roles() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((site, server, _driver, browser)) = setup(false).await else { return };
    let key = site.admin_key();
    let (_, contact) = server.post("/api/v1/contacts", &key, json!({"last_name": "Customer"})).await;
    let (status, customer) = server
        .post(
            "/api/v1/users",
            &key,
            json!({"username": "cust", "type": "portal", "password": "portal-password", "contact_id": contact["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;

    // A portal role: a level that means nothing is refused beside its
    // field, then corrected.
    browser.goto(&server.url("/admin/portals")).await;
    assert!(browser.text("main").await.contains("No portal roles yet"));
    browser.goto(&server.url("/admin/portal-roles/new")).await;
    browser.find("#name").await.type_text("Company-wide").await;
    browser.find("select[name='case.read'] option:nth-child(2)").await.click().await; // account
    browser.find("select[name='kb_article.read'] option:nth-child(4)").await.click().await; // own
    click_and_wait(&browser, "form button[type=submit].primary").await;
    wait_for(&browser, ".alert.error").await;
    assert!(browser.source().await.contains("must be all or no"));
    browser.find("select[name='kb_article.read'] option:nth-child(1)").await.click().await; // all
    click_and_wait(&browser, "form button[type=submit].primary").await;
    wait_for(&browser, "table").await;
    let (_, roles) = server.get("/api/v1/portal-roles", &key).await;
    let role = roles["items"][0].clone();
    assert_eq!(
        (role["name"].as_str(), role["permissions"]["case"]["read"].as_str()),
        (Some("Company-wide"), Some("account"))
    );
    assert_eq!(role["permissions"]["kb_article"]["read"], "all");

    // A portal: a reserved address is refused, then a good one is saved
    // as the default with the role.
    browser.goto(&server.url("/admin/portals/new")).await;
    browser.find("#name").await.type_text("Customers").await;
    browser.find("#slug").await.type_text("login").await;
    browser.find("#branding\\.primary_color").await.type_text("#1f6feb").await;
    browser.find("input[name=role_ids]").await.click().await;
    browser.find("input[name=is_default]").await.click().await;
    click_and_wait(&browser, "form button[type=submit].primary").await;
    wait_for(&browser, ".alert.error").await;
    screenshot(&browser, "admin-portal-error").await;
    let slug = browser.find("#slug").await;
    slug.clear().await;
    slug.type_text("customers").await;
    click_and_wait(&browser, "form button[type=submit].primary").await;
    wait_for(&browser, "table").await;
    assert!(browser.text("table").await.contains("/portal/customers"));
    let (_, portals) = server.get("/api/v1/portals", &key).await;
    let portal = &portals["items"][0];
    assert_eq!(portal["is_default"], true, "{portals}");
    assert_eq!(portal["role_ids"], json!([role["id"]]));
    assert_eq!(portal["branding"]["primary_color"], "#1f6feb");

    // The customer's own portal roles, on their user page.
    let customer_id = customer["id"].as_str().expect("id");
    browser.goto(&server.url(&format!("/admin/users/{customer_id}"))).await;
    browser.find("input[name=portal_role_ids]").await.click().await;
    click_and_wait(&browser, "form[action$='/portal-roles'] button[type=submit]").await;
    let (_, held) = server.get(&format!("/api/v1/users/{customer_id}/portal-roles"), &key).await;
    assert_eq!(held["role_ids"], json!([role["id"]]));
    screenshot(&browser, "admin-portals").await;
    browser.close().await;
}

#[tokio::test]
async fn agents_write_articles_and_use_them_on_a_case() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some((site, server, _driver, browser)) = setup(false).await else { return };
    let key = site.admin_key();
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;

    // A category, then an article whose dates are refused, then fixed.
    browser.goto(&server.url("/kb/categories")).await;
    browser.find("#name").await.type_text("Printing").await;
    click_and_wait(&browser, "#create-category").await;
    wait_for(&browser, "#categories").await;
    assert!(browser.text("#categories").await.contains("Printing"));
    browser.goto(&server.url("/kb/new")).await;
    browser.find("#name").await.type_text("Printer offline").await;
    browser.find("#body").await.type_text("Restart the **spooler** service.").await;
    browser.find("#status option:nth-child(3)").await.click().await; // Published
    browser.find("input[name=category_ids]").await.click().await;
    browser.script("document.getElementById('publish_date').value = '2026-12-01'; return true;").await;
    browser.script("document.getElementById('expiration_date').value = '2026-11-01'; return true;").await;
    click_and_wait(&browser, "form button[type=submit].primary").await;
    wait_for(&browser, ".alert.error").await;
    assert!(browser.source().await.contains("must be after the publish date"));
    browser.script("document.getElementById('publish_date').value = ''; return true;").await;
    browser.script("document.getElementById('expiration_date').value = '2099-12-31'; return true;").await;
    click_and_wait(&browser, "form button[type=submit].primary").await;
    wait_for(&browser, "#article-body").await;
    assert_eq!(browser.text("#article-body strong").await, "spooler", "the body is rendered Markdown");
    // A file on the article, kept when the article is saved again.
    let file = tempfile::Builder::new().prefix("spooler-").suffix(".txt").tempfile().expect("file");
    std::fs::write(file.path(), "net stop spooler\nnet start spooler\n").expect("write");
    browser.find("#file").await.type_text(&file.path().display().to_string()).await;
    click_and_wait(&browser, "#upload").await;
    wait_for(&browser, "#article-attachments a").await;
    assert!(browser.text("#article-attachments").await.contains("spooler-"));
    let article_url = browser.current_url().await;
    browser.goto(&format!("{article_url}/edit")).await;
    click_and_wait(&browser, "form button[type=submit].primary").await;
    wait_for(&browser, "#article-attachments a").await;
    screenshot(&browser, "kb-article").await;

    // Search finds it.
    browser.goto(&server.url("/kb")).await;
    browser.find("#kb-q").await.type_text("spooler").await;
    click_and_wait(&browser, "#kb-search").await;
    wait_for(&browser, "#articles").await;
    assert!(browser.text("#articles").await.contains("Printer offline"));

    // On a case about it: suggested, related, inserted into the reply.
    let case = server.case(&key, json!({"name": "My printer is offline"})).await;
    browser.goto(&server.url(&format!("/cases/{}", case["number"]))).await;
    assert!(browser.text("#suggested-articles").await.contains("Printer offline"));
    click_and_wait(&browser, "#suggested-articles button[type=submit]").await;
    wait_for(&browser, "#related-articles a").await;
    assert!(browser.text("#related-articles").await.contains("Printer offline"));
    assert!(!browser.exists("#suggested-articles").await, "a related article is no longer suggested");
    browser.find("#related-articles button[data-insert]").await.click().await;
    let body = browser.script("return document.getElementById('email-body').value;").await;
    assert_eq!(body, json!("Restart the **spooler** service."));
    let (_, related) = server.get(&format!("/api/v1/cases/{}/articles", case["id"].as_str().expect("id")), &key).await;
    assert_eq!(related["items"][0]["name"], "Printer offline");
    screenshot(&browser, "kb-case").await;
    browser.close().await;
}

/// The portal end to end: a customer opens a case with a file in the
/// portal; an agent answers it and writes an internal note; the customer
/// sees the answer and not the note, in the portal and in the email they
/// get; their answer by email lands on the case.
#[tokio::test]
async fn a_customer_and_an_agent_talk_through_the_portal_and_email() {
    let _slot = BROWSER_SLOT.lock().await;
    let (Some(dovecot), Some(smtp)) = (support::Dovecot::start(), support::SmtpSink::start()) else { return };
    let driver = Driver::start().await.expect("chromium");
    let site = Site::new(Backend::Sqlite)
        .await
        .expect("site")
        .with_env("DOCKET_MAIL_POLL_SECONDS", "1")
        .with_env("DOCKET_EMAIL_DELAY_SECONDS", "0")
        .with_env("DOCKET_PUBLIC_URL", "https://help.example.test");
    let server = site.start(&[]);
    let browser = driver.session().await;
    let key = site.admin_key();

    // The helpdesk: outgoing mail from the support address, whose inbox
    // Docket reads; a default portal; Bo, a customer with a portal login.
    let smtp_settings =
        json!({"host": "127.0.0.1", "port": smtp.port, "security": "none", "from_address": "support@help.test"});
    let (status, _) = server.call(reqwest::Method::PUT, "/api/v1/settings/smtp", &key, Some(smtp_settings)).await;
    assert_eq!(status, StatusCode::OK);
    dovecot.add_user("support", "imap-secret");
    let mailbox = json!({"name": "Support", "email_address": "support@help.test", "imap_host": "127.0.0.1",
                         "imap_port": dovecot.port, "imap_security": "none", "imap_username": "support",
                         "imap_password": "imap-secret"});
    let (status, body) = server.post("/api/v1/mailboxes", &key, mailbox).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server
        .post(
            "/api/v1/portals",
            &key,
            json!({"name": "Help", "slug": "help", "is_default": true, "branding": {"title": "Acme Help"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, account) = server.post("/api/v1/accounts", &key, json!({"name": "Bo's Bakery"})).await;
    let (_, contact) = server
        .post(
            "/api/v1/contacts",
            &key,
            json!({"first_name": "Bo", "last_name": "Baker", "emails": ["bo@bakery.test"], "account_ids": [account["id"]]}),
        )
        .await;

    // An agent invites Bo from the contact's page; Bo chooses a password
    // from the emailed link and logs in to the portal.
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;
    browser.goto(&server.url(&format!("/contacts/{}", contact["id"].as_str().expect("id")))).await;
    click_and_wait(&browser, "#invite").await;
    wait_for(&browser, "#notice").await;
    let invitation = smtp.wait_for(1).await.remove(0).replace("=\r\n", "").replace("=\n", "");
    let link = invitation.split_whitespace().find(|w| w.contains("/portal/help/password/")).expect("the link");
    let path = link.trim_start_matches("https://help.example.test");
    browser.goto(&server.url(path)).await;
    wait_for(&browser, "#token-username").await;
    assert_eq!(browser.text("#token-username").await, "bo@bakery.test");
    browser.find("#password").await.type_text("bo-password-123").await;
    browser.find("#confirm_password").await.type_text("bo-password-123").await;
    click_and_wait(&browser, "#set-password").await;
    wait_for(&browser, "#notice").await;
    assert!(browser.text("h1").await.contains("Acme Help"));
    submit_login(&browser, "bo@bakery.test", "bo-password-123").await;
    wait_for(&browser, "a[href='/portal/help/cases/new']").await;
    click_and_wait(&browser, ".page-head a[href='/portal/help/cases/new']").await;
    browser.find("#name").await.type_text("Oven door will not close").await;
    browser.find("#description").await.type_text("The hinge broke this morning.").await;
    let photo = tempfile::Builder::new().prefix("hinge-").suffix(".txt").tempfile().expect("file");
    std::fs::write(photo.path(), "a photo of the hinge").expect("write");
    browser.find("#file").await.type_text(&photo.path().display().to_string()).await;
    click_and_wait(&browser, "#create-case").await;
    wait_for(&browser, "#case-files a").await;
    assert!(browser.text("#case-files").await.contains("hinge-"));
    screenshot(&browser, "portal-case").await;
    let (_, cases) = server.get("/api/v1/cases?q=Oven", &key).await;
    let case = cases["items"][0].clone();
    let (number, case_id) = (case["number"].as_i64().expect("number"), case["id"].as_str().expect("id").to_string());
    assert_eq!(case["contact_id"], contact["id"]);
    assert_eq!(case["account_id"], account["id"]);

    // An agent sees the case and its file, answers and notes internally
    // (the agent's session lives on beside Bo's portal session).
    browser.goto(&server.url(&format!("/cases/{number}"))).await;
    wait_for(&browser, "#post-text").await;
    assert!(browser.text("ul.attachments").await.contains("hinge-"));
    browser.find("#post-text").await.type_text("A technician comes on Tuesday.").await;
    click_and_wait(&browser, "#post-submit").await;
    wait_for(&browser, "#post-text").await;
    browser.find("#post-text").await.type_text("Warranty ran out last month; charge the visit.").await;
    browser.find("#post-internal").await.click().await;
    click_and_wait(&browser, "#post-submit").await;
    wait_for(&browser, ".note.internal").await;

    // The email Bo gets has the answer and a link into the portal, and
    // not the note. (Waited for first: had Bo read the answer in the portal
    // before it left, the email would rightly not be sent.)
    let sent = smtp.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = if smtp.messages().len() > sent.len() { smtp.messages() } else { sent };
    let to_bo: Vec<&String> =
        sent.iter().filter(|m| m.contains("bo@bakery.test") && !m.contains("Your access to")).collect();
    assert_eq!(to_bo.len(), 1, "{sent:?}");
    let email = to_bo[0];
    assert!(email.contains("A technician comes on Tuesday."), "{email}");
    assert!(email.contains(&format!("https://help.example.test/portal/help/cases/{number}")), "{email}");
    assert!(sent.iter().all(|m| !m.contains("Warranty")), "{sent:?}");
    let message_id = email
        .lines()
        .find_map(|line| line.strip_prefix("Message-ID: "))
        .expect("the email's Message-ID")
        .trim()
        .to_string();

    // Bo sees the answer in the portal too, never the note.
    browser.goto(&server.url(&format!("/portal/help/cases/{number}"))).await;
    wait_for(&browser, "#stream").await;
    let stream = browser.text("#stream").await;
    assert!(stream.contains("A technician comes on Tuesday."), "{stream}");
    assert!(!browser.source().await.contains("Warranty"), "the internal note stays internal");

    // Bo answers by email; the answer lands on the case.
    let answer = format!(
        "From: Bo Baker <bo@bakery.test>\r\nTo: support@help.test\r\nSubject: Re: [#{number}] Oven door will not close\r\n\
         Message-ID: <bo-answer@bakery.test>\r\nIn-Reply-To: {message_id}\r\nReferences: {message_id}\r\n\r\n\
         Tuesday is fine, we open at 6.\r\n"
    );
    dovecot.deliver("support", answer.as_bytes());
    eventually("the emailed answer on the case", || async {
        let (_, stream) = server.get(&format!("/api/v1/cases/{case_id}/stream"), &key).await;
        stream["items"].as_array().is_some_and(|notes| {
            notes
                .iter()
                .any(|n| n["type"] == "EmailReceived" && n["post"].as_str().unwrap_or("").contains("we open at 6"))
        })
    })
    .await;
    let (_, cases) = server.get("/api/v1/cases?q=Oven", &key).await;
    assert_eq!(cases["total"], 1, "the answer made no new case");
    browser.goto(&server.url(&format!("/portal/help/cases/{number}"))).await;
    wait_for(&browser, "#stream").await;
    assert!(browser.text("#stream").await.contains("we open at 6"));
    browser.close().await;
}

/// Serves one page, as another site would (a different origin).
fn other_site(html: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = std::io::Write::write_all(&mut stream, response.as_bytes());
        }
    });
    format!("http://{address}")
}

/// Another site pastes the snippet from the portal's admin page; a visitor
/// of that site sends the form and reads their case number in place.
#[tokio::test]
async fn another_site_embeds_the_portal_form() {
    let _slot = BROWSER_SLOT.lock().await;
    let Some(driver) = Driver::start().await else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let site = Site::new(Backend::Sqlite)
        .await
        .expect("site")
        .with_env("DOCKET_LISTEN", &format!("127.0.0.1:{port}"))
        .with_env("DOCKET_PUBLIC_URL", &format!("http://127.0.0.1:{port}"));
    let server = site.start(&[]);
    let browser = driver.session().await;
    let key = site.admin_key();
    // The form is on; which site may embed it is decided below, once that
    // site (its page is the snippet) listens.
    let (status, portal) = server
        .post(
            "/api/v1/portals",
            &key,
            json!({"name": "Help", "slug": "help", "is_default": true,
                   "web_form": {"enabled": true, "allowed_origins": ["http://127.0.0.1:1"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{portal}");

    // The admin copies the snippet from the portal's page.
    log_in(&browser, &server, "admin", ADMIN_PASSWORD).await;
    browser.goto(&server.url(&format!("/admin/portals/{}", portal["id"].as_str().expect("id")))).await;
    wait_for(&browser, "#snippet").await;
    let snippet = browser.script("return document.querySelector('#snippet').value;").await;
    let snippet = snippet.as_str().expect("snippet").to_string();
    assert!(snippet.contains(&format!("http://127.0.0.1:{port}/api/v1/web-forms/help")), "{snippet}");
    let origin =
        other_site(format!("<!doctype html><html><head><title>Bakery</title></head><body>{snippet}</body></html>"));
    // The admin allows that site.
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/portals/{}", portal["id"].as_str().expect("id")),
            &key,
            Some(json!({"name": "Help", "slug": "help", "is_default": true, "version": portal["version"],
                        "web_form": {"enabled": true, "allowed_origins": [origin]}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A visitor of the other site sends the form.
    browser.goto(&origin).await;
    wait_for(&browser, "form.docket-form input[name=name]").await;
    browser.find("form.docket-form input[name=name]").await.type_text("Flo Baker").await;
    browser.find("form.docket-form input[name=email]").await.type_text("flo@bakery.test").await;
    browser.find("form.docket-form input[name=subject]").await.type_text("Mixer makes noise").await;
    browser.find("form.docket-form textarea[name=description]").await.type_text("A loud rattle.").await;
    browser.find("form.docket-form button[type=submit]").await.click().await;
    wait_for(&browser, ".docket-form-result[data-ok=true]").await;
    let result = browser.text(".docket-form-result").await;
    let (_, cases) = server.get("/api/v1/cases?q=Mixer", &key).await;
    assert_eq!(cases["total"], 1, "{result}");
    assert!(result.contains(&format!("case #{}", cases["items"][0]["number"])), "{result}");
    browser.close().await;
}
