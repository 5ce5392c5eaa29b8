//! Authentication: API keys, sessions with CSRF, logout, deactivation,
//! password change and login rate limiting.

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::on_both_backends;
use crate::support::{ADMIN_PASSWORD, Site, error_of, read};

/// Logs in; returns (status, cookie header value, csrf token).
async fn login(server: &crate::support::Server, username: &str, password: &str) -> (StatusCode, String, String) {
    let response = server
        .http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("send");
    let cookie = response
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().expect("ascii").split(';').next().expect("pair").to_string())
        .unwrap_or_default();
    let set_cookie = response.headers().get(SET_COOKIE).map(|v| v.to_str().expect("ascii").to_string());
    let (status, body) = read(response).await;
    if status == StatusCode::OK {
        let flags = set_cookie.expect("cookie");
        assert!(flags.contains("HttpOnly") && flags.contains("SameSite=Lax"), "{flags}");
    }
    (status, cookie, body["csrf_token"].as_str().unwrap_or("").to_string())
}

async fn api_keys_sessions_and_csrf(site: Site) {
    let server = site.start(&[]);
    let key = site.admin_key();

    // No credentials, a bad key: 401 in the contract's shape.
    let (status, body) =
        crate::support::read(server.http.get(server.url("/api/v1/cases")).send().await.expect("send")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    error_of(status, &body, "unauthorized");
    let (status, _) = server.get("/api/v1/cases", "dk_not-a-key").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = server.http.get(server.url("/api/v1/me")).header("X-Api-Key", &key).send().await.expect("send");
    let (status, me) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "admin");
    assert_eq!(me["type"], "admin");

    // Session login: reads work, writes need the CSRF token.
    let (status, cookie, csrf) = login(&server, "ADMIN", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!csrf.is_empty());
    let get = server.http.get(server.url("/api/v1/cases")).header(COOKIE, &cookie).send().await.expect("send");
    assert_eq!(get.status(), StatusCode::OK);
    let forged = server
        .http
        .post(server.url("/api/v1/cases"))
        .header(COOKIE, &cookie)
        .json(&json!({"name": "forged"}))
        .send()
        .await
        .expect("send");
    let (status, body) = read(forged).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_of(status, &body, "forbidden")["message"].as_str().expect("m").contains("CSRF"));
    let wrong = server
        .http
        .post(server.url("/api/v1/cases"))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", "wrong")
        .json(&json!({"name": "forged"}))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let genuine = server
        .http
        .post(server.url("/api/v1/cases"))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "genuine"}))
        .send()
        .await
        .expect("send");
    assert_eq!(genuine.status(), StatusCode::CREATED);
    let (_, list) = server.get("/api/v1/cases", &key).await;
    assert_eq!(list["total"], 1, "the forged posts wrote nothing");

    // Logout ends the session.
    let logout = server
        .http
        .post(server.url("/api/v1/auth/logout"))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .expect("send");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let after = server.http.get(server.url("/api/v1/cases")).header(COOKIE, &cookie).send().await.expect("send");
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

    // Revoked keys stop working.
    let (status, created) = server.post("/api/v1/api-keys", &key, json!({"name": "temporary"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let temporary = created["key"].as_str().expect("key").to_string();
    assert_eq!(server.get("/api/v1/me", &temporary).await.0, StatusCode::OK);
    let (_, keys) = server.get("/api/v1/api-keys", &key).await;
    assert!(
        keys["items"].as_array().expect("items").iter().all(|k| k.get("key").is_none() && k.get("key_hash").is_none())
    );
    let (status, _) = server
        .call(Method::DELETE, &format!("/api/v1/api-keys/{}", created["id"].as_str().expect("id")), &key, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(server.get("/api/v1/me", &temporary).await.0, StatusCode::UNAUTHORIZED);
}

async fn deactivation_passwords_and_rate_limits(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (user, agent_key) =
        server.agent(&site, &admin, "ann", json!({"create": "all", "read": "all"}), json!([])).await;
    let user_path = format!("/api/v1/users/{}", user["id"].as_str().expect("id"));

    let (status, cookie, csrf) = login(&server, "ann", "agent-password").await;
    assert_eq!(status, StatusCode::OK);

    // Password change needs the current password and ends other sessions.
    let change = |current: &'static str, new: &'static str| {
        server
            .http
            .post(server.url("/api/v1/me/password"))
            .header(COOKIE, cookie.clone())
            .header("X-CSRF-Token", csrf.clone())
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    let (status, body) = read(change("wrong", "another-password").await.expect("send")).await;
    assert!(error_of(status, &body, "validation")["fields"]["current_password"].is_string());
    let (status, body) = read(change("agent-password", "short").await.expect("send")).await;
    assert!(error_of(status, &body, "validation")["fields"]["new_password"].is_string());
    assert_eq!(change("agent-password", "another-password").await.expect("send").status(), StatusCode::NO_CONTENT);
    assert_eq!(login(&server, "ann", "agent-password").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(login(&server, "ann", "another-password").await.0, StatusCode::OK);

    // Deactivated users cannot log in, and their keys and sessions stop.
    let (status, body) = server.patch(&user_path, &admin, json!({"is_active": false})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(login(&server, "ann", "another-password").await.0, StatusCode::FORBIDDEN);
    assert_eq!(server.get("/api/v1/me", &agent_key).await.0, StatusCode::UNAUTHORIZED);
    let stale = server.http.get(server.url("/api/v1/me")).header(COOKIE, &cookie).send().await.expect("send");
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);

    // Admins cannot lock themselves out.
    let (_, me) = server.get("/api/v1/me", &admin).await;
    let (status, _) = server
        .patch(&format!("/api/v1/users/{}", me["id"].as_str().expect("id")), &admin, json!({"is_active": false}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Repeated failures lock the username for this address with a clear 429.
    for _ in 0..5 {
        assert_eq!(login(&server, "admin", "guess").await.0, StatusCode::UNAUTHORIZED);
    }
    let response = server
        .http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("send");
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(error_of(status, &body, "rate_limited")["message"].as_str().expect("m").contains("try again"));
}

async fn preferences_round_trip(site: Site) {
    let server = site.start(&[]);
    let key = site.admin_key();
    let (status, defaults) = server.get("/api/v1/me/preferences", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        defaults,
        json!({"auto_follow_entity_types": [], "follow_on_post": true, "email_notifications": false, "follow_created": false})
    );
    let wanted = json!({"auto_follow_entity_types": ["Case"], "follow_on_post": false, "email_notifications": true, "follow_created": true});
    let (status, saved) = server.call(Method::PUT, "/api/v1/me/preferences", &key, Some(wanted.clone())).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(server.get("/api/v1/me/preferences", &key).await.1, wanted);
    let (status, body) = server
        .call(Method::PUT, "/api/v1/me/preferences", &key, Some(json!({"auto_follow_entity_types": ["Cases"]})))
        .await;
    assert!(
        error_of(status, &body, "validation")["fields"]["auto_follow_entity_types"]
            .as_str()
            .expect("m")
            .contains("Case")
    );
    assert_eq!(server.get("/api/v1/me/preferences", &key).await.1, wanted, "a refused update changes nothing");
}

/// Messages a page shows after a redirect ("Rule deleted.", a rejected
/// change, an email error) travel in the query string signed for the
/// session that caused them: a link made by someone else shows nothing.
async fn page_messages_are_signed_for_their_session(site: Site) {
    let server = site.start(&[]);
    let key = site.admin_key();
    let browser = crate::portal_pages::client();
    let (_, cookie, csrf) = login(&server, "admin", ADMIN_PASSWORD).await;
    let (_, other_cookie, _) = login(&server, "admin", ADMIN_PASSWORD).await;
    let page = |path: String, cookie: String| {
        let request = browser.get(server.url(&path)).header(COOKIE, cookie);
        async move {
            let response = request.send().await.expect("get");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            response.text().await.expect("body")
        }
    };

    // A real notice: deleting a rule from its admin page.
    let (status, rule) = server
        .post(
            "/api/v1/rules",
            &key,
            json!({"name": "Tidy", "hook": "case.before_save", "script": "set(\"priority\", \"High\")"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let response = browser
        .post(server.url(&format!("/admin/rules/{}/delete", rule["id"].as_str().expect("id"))))
        .header(COOKIE, &cookie)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf_token={csrf}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let signed = crate::portal_pages::location(&response);
    assert!(signed.contains("notice=Rule%20deleted.") && signed.contains("notice_sig="), "{signed}");
    assert!(page(signed.clone(), cookie.clone()).await.contains("Rule deleted."));
    // The same link in another session, or with other words, shows nothing.
    assert!(!page(signed.clone(), other_cookie.clone()).await.contains("Rule deleted."));
    let altered = signed.replace("Rule%20deleted.", "Rule%20kept.");
    assert!(!page(altered, cookie.clone()).await.contains("Rule kept."));

    // Unsigned words on the case page: neither as a notice nor as an email error.
    let (_, case) = server.post("/api/v1/cases", &key, json!({"name": "Printer"})).await;
    let number = case["number"].as_i64().expect("number");
    let planted = "Your%20account%20is%20locked%3A%20call%20555-0100";
    let html = page(format!("/cases/{number}?notice={planted}&notice_sig=00"), cookie.clone()).await;
    assert!(html.contains("Printer") && !html.contains("555-0100"), "{html}");
    let html = page(format!("/cases/{number}?email_error={planted}"), cookie.clone()).await;
    assert!(!html.contains("555-0100"), "{html}");
}

on_both_backends!(
    api_keys_sessions_and_csrf,
    deactivation_passwords_and_rate_limits,
    preferences_round_trip,
    page_messages_are_signed_for_their_session
);
