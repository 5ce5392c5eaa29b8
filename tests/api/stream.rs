//! The stream: posts (public and internal), follows, notifications and
//! mentions, over HTTP on both backends.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Server, Site, error_of};

const ALL_CASES: &str = r#"{"create": "all", "read": "all", "edit": "all", "delete": "no"}"#;

fn levels() -> Value {
    serde_json::from_str(ALL_CASES).expect("json")
}

async fn followers(server: &Server, key: &str, case_id: &str) -> Vec<String> {
    let (status, body) = server.get(&format!("/api/v1/cases/{case_id}/followers"), key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut names: Vec<String> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|f| f["username"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

async fn notifications(server: &Server, key: &str) -> Value {
    let (status, body) = server.get("/api/v1/notifications", key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn posts_follows_and_notifications(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (ann, ann_key) = server.agent(&site, &admin, "ann", levels(), json!([])).await;
    let (_bob, bob_key) = server.agent(&site, &admin, "bob", levels(), json!([])).await;
    let (_watcher, watcher_key) = server.agent(&site, &admin, "watcher", levels(), json!([])).await;
    // Global auto-follow: watcher follows every new case.
    let (status, _) = server
        .call(Method::PUT, "/api/v1/me/preferences", &watcher_key, Some(json!({"auto_follow_entity_types": ["Case"]})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, contact) = server.post("/api/v1/contacts", &admin, json!({"last_name": "Customer"})).await;
    let (status, _) = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "cust", "type": "portal", "password": "portal-password", "contact_id": contact["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let portal = site.api_key_for("cust");

    // Created by admin (no follow-created preference), assigned to ann,
    // primary contact with a portal user.
    let case = server
        .case(&admin, json!({"name": "Printer on fire", "assigned_user_id": ann["id"], "contact_id": contact["id"]}))
        .await;
    let id = case["id"].as_str().expect("id").to_string();
    assert_eq!(followers(&server, &admin, &id).await, vec!["ann", "cust", "watcher"]);

    // The assignee's Create notification is highlighted.
    let ann_notes = notifications(&server, &ann_key).await;
    assert_eq!(ann_notes["unread"], 1);
    assert_eq!(ann_notes["items"][0]["note_type"], "Create");
    assert_eq!(ann_notes["items"][0]["is_highlighted"], true);
    assert_eq!(ann_notes["items"][0]["case_number"], case["number"]);
    assert_eq!(notifications(&server, &watcher_key).await["items"][0]["is_highlighted"], false);

    // An internal post: staff followers are notified, portal users are not
    // and never see it; bob is mentioned although he does not follow.
    let (status, internal) = server
        .post(
            &format!("/api/v1/cases/{id}/posts"),
            &ann_key,
            json!({"post": "Toner is **flammable**, @bob check stock", "is_internal": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{internal}");
    assert_eq!(internal["type"], "Post");
    assert_eq!(notifications(&server, &portal).await["total"], 1, "only the Create note");
    let bob_notes = notifications(&server, &bob_key).await;
    assert_eq!(bob_notes["items"][0]["kind"], "mention");
    assert_eq!(notifications(&server, &watcher_key).await["unread"], 2);
    assert_eq!(notifications(&server, &ann_key).await["unread"], 1, "no notification for one's own post");

    let (_, portal_stream) = server.get(&format!("/api/v1/cases/{id}/stream"), &portal).await;
    assert!(portal_stream["items"].as_array().expect("items").iter().all(|n| n["is_internal"] == false));
    let (_, staff_stream) = server.get(&format!("/api/v1/cases/{id}/stream"), &bob_key).await;
    assert_eq!(staff_stream["items"][0]["post"], "Toner is **flammable**, @bob check stock");

    // The customer replies: public, the author does not get notified,
    // staff followers do; portal users cannot post internal notes.
    let (status, body) =
        server.post(&format!("/api/v1/cases/{id}/posts"), &portal, json!({"post": "x", "is_internal": true})).await;
    assert!(error_of(status, &body, "validation")["fields"]["is_internal"].is_string());
    let (status, reply) =
        server.post(&format!("/api/v1/cases/{id}/posts"), &portal, json!({"post": "It is still smoking"})).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(notifications(&server, &ann_key).await["unread"], 2);
    let (_, after) = server.get(&format!("/api/v1/cases/{id}"), &admin).await;
    assert!(after["stream_updated_at"].as_str() > case["stream_updated_at"].as_str());
    // Posting makes bob a follower (follow on post is on by default).
    server.post(&format!("/api/v1/cases/{id}/posts"), &bob_key, json!({"post": "Ordered more toner"})).await;
    assert!(followers(&server, &admin, &id).await.contains(&"bob".to_string()));

    // Edits: the author may, another agent may not, system notes never.
    let note_path = format!("/api/v1/notes/{}", internal["id"].as_str().expect("id"));
    let (status, edited) = server.patch(&note_path, &ann_key, json!({"post": "Toner is flammable"})).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["post"], "Toner is flammable");
    let (status, _) = server.patch(&note_path, &bob_key, json!({"post": "hijack"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server.patch(&note_path, &portal, json!({"post": "peek"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "portal users cannot even see internal notes");
    let create_note = staff_stream["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|n| n["type"] == "Create")
        .expect("create")
        .clone();
    let (status, _) = server
        .patch(&format!("/api/v1/notes/{}", create_note["id"].as_str().expect("id")), &admin, json!({"post": "x"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server.call(Method::DELETE, &note_path, &bob_key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server.call(Method::DELETE, &note_path, &ann_key, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Mark read, one and all.
    let ann_notes = notifications(&server, &ann_key).await;
    let first = ann_notes["items"][0]["id"].as_str().expect("id").to_string();
    let (status, _) = server.post(&format!("/api/v1/notifications/{first}/read"), &ann_key, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server.post(&format!("/api/v1/notifications/{first}/read"), &bob_key, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nobody marks another user's notifications");
    let (_, unread) = server.get("/api/v1/notifications?unread=true", &ann_key).await;
    assert!(unread["items"].as_array().expect("items").iter().all(|n| n["is_read"] == false));
    let (_, marked) = server.post("/api/v1/notifications/read-all", &ann_key, json!({})).await;
    assert!(marked["marked"].as_u64().expect("count") >= 1);
    assert_eq!(notifications(&server, &ann_key).await["unread"], 0);
}

async fn follows_end_when_access_ends(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (_, team_a) = server.post("/api/v1/teams", &admin, json!({"name": "A"})).await;
    let (_, team_b) = server.post("/api/v1/teams", &admin, json!({"name": "B"})).await;
    let team_levels = json!({"create": "all", "read": "team", "edit": "team", "delete": "no"});
    let (tess, tess_key) = server.agent(&site, &admin, "tess", team_levels, json!([team_a["id"]])).await;
    let (_, contact) = server.post("/api/v1/contacts", &admin, json!({"last_name": "Customer"})).await;
    server
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "cust", "type": "portal", "password": "portal-password", "contact_id": contact["id"]}),
        )
        .await;
    let case = server
        .case(&admin, json!({"name": "Team A case", "team_ids": [team_a["id"]], "contact_id": contact["id"]}))
        .await;
    let id = case["id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/cases/{id}");

    let (status, _) = server.call(Method::PUT, &format!("{path}/follow"), &tess_key, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(followers(&server, &admin, &id).await, vec!["cust", "tess"]);
    // Moving the case to team B ends tess's follow (she cannot read it now).
    let (status, _) = server.patch(&path, &admin, json!({"team_ids": [team_b["id"]]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(followers(&server, &admin, &id).await, vec!["cust"]);
    let (status, _) = server.call(Method::PUT, &format!("{path}/follow"), &tess_key, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Admins manage followers, but not for users without access.
    let (status, body) =
        server.call(Method::PUT, &format!("{path}/followers/{}", tess["id"].as_str().expect("id")), &admin, None).await;
    assert!(error_of(status, &body, "validation")["fields"]["user_id"].is_string());
    // A portal user moved to another contact stops following.
    let (_, other_contact) = server.post("/api/v1/contacts", &admin, json!({"last_name": "Elsewhere"})).await;
    let (_, users) = server.get("/api/v1/users?q=cust", &admin).await;
    let cust_id = users["items"][0]["id"].as_str().expect("id").to_string();
    server.patch(&format!("/api/v1/users/{cust_id}"), &admin, json!({"contact_id": other_contact["id"]})).await;
    assert!(!followers(&server, &admin, &id).await.contains(&"cust".to_string()));
    server.patch(&format!("/api/v1/users/{cust_id}"), &admin, json!({"contact_id": contact["id"]})).await;
    server.call(Method::PUT, &format!("{path}/followers/{cust_id}"), &admin, None).await;
    assert_eq!(followers(&server, &admin, &id).await, vec!["cust"]);
    // Making the case internal removes portal followers.
    let (status, _) = server.patch(&path, &admin, json!({"is_internal": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(followers(&server, &admin, &id).await.is_empty());
    // Deactivated users stop following.
    let (status, _) = server.patch(&path, &admin, json!({"is_internal": false, "team_ids": [team_a["id"]]})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.call(Method::PUT, &format!("{path}/follow"), &tess_key, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    server
        .patch(&format!("/api/v1/users/{}", tess["id"].as_str().expect("id")), &admin, json!({"is_active": false}))
        .await;
    assert!(!followers(&server, &admin, &id).await.contains(&"tess".to_string()));
}

async fn contacts_relate_and_silent_saves(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (_, agent) = server.agent(&site, &admin, "ann", levels(), json!([])).await;
    let (_, first) = server.post("/api/v1/contacts", &admin, json!({"last_name": "First"})).await;
    let (_, second) = server.post("/api/v1/contacts", &admin, json!({"last_name": "Second"})).await;
    let case = server.case(&admin, json!({"name": "Linked", "contact_id": first["id"]})).await;
    let path = format!("/api/v1/cases/{}", case["id"].as_str().expect("id"));
    let types = |stream: &Value| -> Vec<String> {
        stream["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|n| n["type"].as_str().expect("type").to_string())
            .collect()
    };

    server.patch(&path, &admin, json!({"contact_ids": [first["id"], second["id"]]})).await;
    let (_, stream) = server.get(&format!("{path}/stream"), &admin).await;
    assert_eq!(types(&stream), vec!["Relate", "Create"]);
    assert_eq!(stream["items"][0]["data"]["entity_id"], second["id"]);
    server.patch(&path, &admin, json!({"contact_ids": [first["id"]]})).await;
    let (_, stream) = server.get(&format!("{path}/stream"), &admin).await;
    assert_eq!(types(&stream)[0], "Unrelate");

    // Silent saves (imports) write no notes; only admins may.
    let (status, body) =
        server.call(Method::PATCH, &format!("{path}?silent=true"), &agent, Some(json!({"status": "Closed"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, silent) =
        server.call(Method::PATCH, &format!("{path}?silent=true"), &admin, Some(json!({"status": "Closed"}))).await;
    assert_eq!(status, StatusCode::OK, "{silent}");
    assert_eq!(silent["status"], "Closed");
    let (_, stream) = server.get(&format!("{path}/stream"), &admin).await;
    assert_eq!(stream["total"], 3, "no note for the silent save: {stream}");
    let (status, imported) =
        server.call(Method::POST, "/api/v1/cases?silent=true", &admin, Some(json!({"name": "Imported"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    let (_, stream) =
        server.get(&format!("/api/v1/cases/{}/stream", imported["id"].as_str().expect("id")), &admin).await;
    assert_eq!(stream["total"], 0);
    let (status, body) =
        server.call(Method::POST, "/api/v1/cases?silnet=true", &admin, Some(json!({"name": "x"}))).await;
    error_of(status, &body, "validation");
}

/// A new case's follows, notifications and `case.before_save` run log are
/// written with the case in one statement, unless it has more followers
/// than that statement takes (50): both ways must write the same rows.
async fn a_new_case_writes_its_follows_notifications_and_runs(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    // One run that is final before the insert (fields only), one whose
    // internal note must wait for the case.
    for (name, script) in [
        ("raise", r#"set("priority", "High")"#),
        ("remark", r#"set("type", "Question"); internal_note("checked on the way in")"#),
    ] {
        let (status, rule) = server
            .post("/api/v1/rules", &admin, json!({"name": name, "hook": "case.before_save", "script": script}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");
    }
    let check = |case: Value, expected_followers: usize| {
        let server = &server;
        let admin = admin.clone();
        async move {
            let id = case["id"].as_str().expect("id").to_string();
            assert_eq!((case["priority"].as_str(), case["type"].as_str()), (Some("High"), Some("Question")));
            let (_, listed) = server.get(&format!("/api/v1/cases/{id}/followers?limit=200"), &admin).await;
            assert_eq!(listed["total"], expected_followers, "{listed}");
            let (_, runs) = server.get(&format!("/api/v1/rule-runs?case_id={id}"), &admin).await;
            let mut names: Vec<&str> = runs["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|r| r["rule_name"].as_str().expect("name"))
                .collect();
            names.sort();
            assert_eq!(names, vec!["raise", "remark"], "each run logged once: {runs}");
            assert!(runs["items"].as_array().expect("items").iter().all(|r| r["outcome"] == "applied"), "{runs}");
            let (_, stream) = server.get(&format!("/api/v1/cases/{id}/stream"), &admin).await;
            let posts: Vec<&str> =
                stream["items"].as_array().expect("items").iter().filter_map(|n| n["post"].as_str()).collect();
            assert_eq!(posts, vec!["checked on the way in"], "{stream}");
        }
    };

    let mut keys = Vec::new();
    for i in 0..51 {
        let (_, key) = server.agent(&site, &admin, &format!("watcher{i:02}"), levels(), json!([])).await;
        keys.push(key);
    }
    let follow_all = json!({"auto_follow_entity_types": ["Case"]});
    // Fifty followers: the creation statement writes them all.
    for key in &keys[..50] {
        let (status, _) = server.call(Method::PUT, "/api/v1/me/preferences", key, Some(follow_all.clone())).await;
        assert_eq!(status, StatusCode::OK);
    }
    check(server.case(&admin, json!({"name": "Fifty watch"})).await, 50).await;
    // Fifty-one: written on their own.
    let (status, _) = server.call(Method::PUT, "/api/v1/me/preferences", &keys[50], Some(follow_all)).await;
    assert_eq!(status, StatusCode::OK);
    let case = server.case(&admin, json!({"name": "Fifty-one watch"})).await;
    check(case.clone(), 51).await;
    // Each follower is told of each case it followed from the start.
    for (key, cases) in [(&keys[0], vec![2, 1]), (&keys[50], vec![2])] {
        let body = notifications(&server, key).await;
        let created: Vec<i64> = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|n| n["note_type"] == "Create")
            .map(|n| n["case_number"].as_i64().expect("number"))
            .collect();
        assert_eq!(created, cases, "{body}");
    }
    assert_eq!(case["number"], 2);
}

on_both_backends!(
    posts_follows_and_notifications,
    follows_end_when_access_ends,
    contacts_relate_and_silent_saves,
    a_new_case_writes_its_follows_notifications_and_runs
);
