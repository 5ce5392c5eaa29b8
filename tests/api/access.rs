//! Role levels over HTTP: 404 for what the caller cannot read, 403 for
//! what they can read but not change, on every resource.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Site, error_of, item_names};

async fn role_levels_are_enforced_on_every_endpoint(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (_, team_a) = server.post("/api/v1/teams", &admin, json!({"name": "A"})).await;
    let (_, team_b) = server.post("/api/v1/teams", &admin, json!({"name": "B"})).await;
    let (own_user, own) = server
        .agent(
            &site,
            &admin,
            "owen",
            json!({"create": "all", "read": "own", "edit": "own", "delete": "no"}),
            json!([team_a["id"]]),
        )
        .await;
    let (_, team) = server
        .agent(
            &site,
            &admin,
            "tess",
            json!({"create": "all", "read": "team", "edit": "own", "delete": "no"}),
            json!([team_a["id"]]),
        )
        .await;

    let in_a = server.case(&admin, json!({"name": "team A case", "team_ids": [team_a["id"]]})).await;
    let in_b = server.case(&admin, json!({"name": "team B case", "team_ids": [team_b["id"]]})).await;
    let owned = server.case(&own, json!({"name": "Owen's case"})).await;
    let assigned = server.case(&admin, json!({"name": "assigned to Owen", "assigned_user_id": own_user["id"]})).await;

    let names = |body: &serde_json::Value| -> Vec<String> {
        let mut names = item_names(body);
        names.sort();
        names
    };
    let (_, list) = server.get("/api/v1/cases", &own).await;
    assert_eq!(names(&list), vec!["Owen's case", "assigned to Owen"]);
    assert_eq!(list["total"], 2);
    let (_, list) = server.get("/api/v1/cases", &team).await;
    assert_eq!(names(&list), vec!["team A case"]);

    let path = |case: &serde_json::Value| format!("/api/v1/cases/{}", case["id"].as_str().expect("id"));
    // Unreadable: 404 on read, update, delete, stream and by number.
    for (key, case) in [(&own, &in_a), (&team, &in_b), (&team, &owned)] {
        let (status, body) = server.get(&path(case), key).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        error_of(status, &body, "not_found");
        let (status, _) = server.patch(&path(case), key, json!({"name": "hijack"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = server.call(Method::DELETE, &path(case), key, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = server.get(&format!("{}/stream", path(case)), key).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = server.get(&format!("/api/v1/cases/by-number/{}", case["number"]), key).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // Readable but not editable or deletable: 403.
    let (status, body) = server.patch(&path(&in_a), &team, json!({"name": "renamed"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    error_of(status, &body, "forbidden");
    let (status, _) = server.call(Method::DELETE, &path(&owned), &own, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server.patch(&path(&assigned), &own, json!({"priority": "High"})).await;
    assert_eq!(status, StatusCode::OK);
    // Nothing was changed by the refused calls.
    let (_, still) = server.get(&path(&in_a), &admin).await;
    assert_eq!(still["name"], "team A case");

    // Users, teams and roles: agents read, only admins write.
    let (status, _) =
        server.post("/api/v1/users", &own, json!({"username": "x", "type": "agent", "password": "long-enough"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .patch(&format!("/api/v1/users/{}", own_user["id"].as_str().expect("id")), &own, json!({"type": "admin"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server.post("/api/v1/teams", &own, json!({"name": "mine"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server.get("/api/v1/roles", &own).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, users) = server.get("/api/v1/users", &own).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        users["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|u| u.get("password_hash").is_none() && u.get("password").is_none())
    );
}

async fn portal_users_only_reach_their_own_cases(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (_, contact) =
        server.post("/api/v1/contacts", &admin, json!({"last_name": "Customer", "emails": ["c@example.test"]})).await;
    let (status, portal_user) = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "cust", "type": "portal", "password": "portal-password", "contact_id": contact["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{portal_user}");
    let portal = site.api_key_for("cust");
    let theirs = server.case(&admin, json!({"name": "their case", "contact_id": contact["id"]})).await;
    let internal =
        server.case(&admin, json!({"name": "internal", "contact_id": contact["id"], "is_internal": true})).await;
    server.case(&admin, json!({"name": "someone else's"})).await;

    let (_, list) = server.get("/api/v1/cases", &portal).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], theirs["id"]);
    let (status, _) = server.get(&format!("/api/v1/cases/{}", internal["id"].as_str().expect("id")), &portal).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .patch(&format!("/api/v1/cases/{}", theirs["id"].as_str().expect("id")), &portal, json!({"name": "x"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, accounts) = server.get("/api/v1/accounts", &portal).await;
    assert_eq!(accounts["total"], 0);
    let (status, _) = server.post("/api/v1/cases", &portal, json!({"name": "hidden?", "is_internal": true})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Portal users choose subject and text; contact, account, status,
    // assignee and teams are not theirs to set.
    let (_, me) = server.get("/api/v1/me", &admin).await;
    let mine = server
        .case(&portal, json!({"name": "from the portal", "status": "Closed", "assigned_user_id": me["id"]}))
        .await;
    assert_eq!(mine["status"], "New");
    assert_eq!(mine["contact_id"], contact["id"]);
    assert_eq!(mine["assigned_user_id"], serde_json::Value::Null);
    let (status, _) = server.get(&format!("/api/v1/cases/{}", mine["id"].as_str().expect("id")), &portal).await;
    assert_eq!(status, StatusCode::OK);
}

on_both_backends!(role_levels_are_enforced_on_every_endpoint, portal_users_only_reach_their_own_cases);
