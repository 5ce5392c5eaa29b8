//! The case endpoints: create, read, update with versions, delete, stream,
//! actions, filters.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Site, error_of, item_names};

async fn crud_follows_the_contract(site: Site) {
    let server = site.start(&[]);
    let key = site.admin_key();

    let created = server.case(&key, json!({"name": "  Printer on fire  ", "description": "Smoke"})).await;
    assert_eq!(created["name"], "Printer on fire");
    assert_eq!(created["status"], "New");
    assert_eq!(created["priority"], "Normal");
    assert_eq!(created["type"], serde_json::Value::Null);
    assert_eq!(created["version"], 1);
    assert_eq!(created["number"], 1);
    let id = created["id"].as_str().expect("id").to_string();

    let (status, fetched) = server.get(&format!("/api/v1/cases/{id}"), &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);
    let (status, by_number) = server.get("/api/v1/cases/by-number/1", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_number["id"], created["id"]);

    // Update with the right version, then a stale one.
    let (status, updated) = server
        .patch(&format!("/api/v1/cases/{id}"), &key, json!({"status": "Pending", "type": "Problem", "version": 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["type"], "Problem");
    let (status, body) =
        server.patch(&format!("/api/v1/cases/{id}"), &key, json!({"priority": "Low", "version": 1})).await;
    let error = error_of(status, &body, "conflict");
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error["current_version"], 2);
    // If-Match carries the version too.
    let response = server
        .request(Method::PATCH, &format!("/api/v1/cases/{id}"), &key)
        .header("If-Match", "1")
        .json(&json!({"priority": "Low"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let (_, unchanged) = server.get(&format!("/api/v1/cases/{id}"), &key).await;
    assert_eq!(unchanged["priority"], "Normal", "a stale update must not write");
    // null clears, absent keeps.
    let (status, cleared) = server.patch(&format!("/api/v1/cases/{id}"), &key, json!({"type": null})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cleared["type"], serde_json::Value::Null);
    assert_eq!(cleared["description"], "Smoke");

    // The stream records what happened, newest first; the description is
    // not audited, the type is.
    let (status, stream) = server.get(&format!("/api/v1/cases/{id}/stream"), &key).await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> =
        stream["items"].as_array().expect("items").iter().map(|n| n["type"].as_str().expect("type")).collect();
    assert_eq!(types, vec!["Update", "Update", "Create"], "{stream}");
    assert_eq!(stream["total"], 3);
    assert_eq!(stream["items"][1]["data"]["attributes"]["became"]["status"], "Pending");
    assert_eq!(stream["items"][1]["data"]["attributes"]["was"]["status"], "New");
    assert_eq!(stream["items"][0]["data"]["fields"], json!(["type"]));

    // Close exists for open cases only.
    let (status, closed) = server.post(&format!("/api/v1/cases/{id}/close"), &key, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "Closed");
    let (status, body) = server.post(&format!("/api/v1/cases/{id}/reject"), &key, json!({})).await;
    error_of(status, &body, "conflict");

    let (status, _) = server.call(Method::DELETE, &format!("/api/v1/cases/{id}"), &key, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = server.get(&format!("/api/v1/cases/{id}"), &key).await;
    error_of(status, &body, "not_found");
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Numbers are never reused.
    assert_eq!(server.case(&key, json!({"name": "next"})).await["number"], 2);
}

async fn lists_filter_sort_and_page(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (_, team) = server.post("/api/v1/teams", &admin, json!({"name": "Support"})).await;
    let (me, key) = server
        .agent(&site, &admin, "ann", json!({"create": "all", "read": "all", "edit": "all"}), json!([team["id"]]))
        .await;
    let (_, account) = server.post("/api/v1/accounts", &admin, json!({"name": "Acme"})).await;
    let (_, contact) =
        server.post("/api/v1/contacts", &admin, json!({"last_name": "Coyote", "emails": ["wile@acme.test"]})).await;
    for i in 1..=12 {
        let mut body = json!({"name": format!("Case {i}"), "priority": if i % 4 == 0 { "Urgent" } else { "Normal" }});
        if i % 2 == 0 {
            body["status"] = json!("Closed");
        }
        if i % 3 == 0 {
            body["assigned_user_id"] = me["id"].clone();
            body["team_ids"] = json!([team["id"]]);
        }
        if i == 5 {
            body["account_id"] = account["id"].clone();
            body["contact_id"] = contact["id"].clone();
            body["description"] = json!("The VPN drops every hour");
        }
        server.case(&admin, body).await;
    }
    let total = |path: &str| {
        let server = &server;
        let key = key.clone();
        let path = path.to_string();
        async move {
            let (status, body) = server.get(&path, &key).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body["total"].as_i64().expect("total")
        }
    };
    assert_eq!(total("/api/v1/cases").await, 12);
    assert_eq!(total("/api/v1/cases?open=true").await, 6);
    assert_eq!(total("/api/v1/cases?status=Closed").await, 6);
    assert_eq!(total("/api/v1/cases?status=Closed&status=New").await, 12);
    assert_eq!(total("/api/v1/cases?assigned_user_id=me").await, 4);
    assert_eq!(total("/api/v1/cases?assigned_user_id=me&open=true").await, 2);
    assert_eq!(total(&format!("/api/v1/cases?team_id={}", team["id"].as_str().expect("id"))).await, 4);
    assert_eq!(total(&format!("/api/v1/cases?account_id={}", account["id"].as_str().expect("id"))).await, 1);
    assert_eq!(total(&format!("/api/v1/cases?contact_id={}", contact["id"].as_str().expect("id"))).await, 1);
    assert_eq!(total("/api/v1/cases?priority=Urgent").await, 3);
    assert_eq!(total("/api/v1/cases?q=vpn").await, 1);
    assert_eq!(total("/api/v1/cases?q=%2312").await, 1);

    let (_, page) = server.get("/api/v1/cases?limit=5&offset=5", &key).await;
    assert_eq!(page["total"], 12);
    let numbers: Vec<i64> =
        page["items"].as_array().expect("items").iter().map(|c| c["number"].as_i64().expect("n")).collect();
    assert_eq!(numbers, vec![7, 6, 5, 4, 3], "default order is number descending");
    let (_, ascending) = server.get("/api/v1/cases?sort=number&limit=2", &key).await;
    assert_eq!(ascending["items"][0]["number"], 1);
    let (_, by_priority) = server.get("/api/v1/cases?sort=-priority&limit=3", &key).await;
    assert!(by_priority["items"].as_array().expect("items").iter().all(|c| c["priority"] == "Urgent"));
}

/// `q` finds cases whose name or description contains the words, in any
/// case, from an index kept in step with renames and deletions.
async fn text_search_finds_substrings_and_follows_changes(site: Site) {
    let server = site.start(&[]);
    let key = site.admin_key();
    let toner = server
        .case(&key, json!({"name": "Toner cartridge empty", "description": "The copier on floor three wants magenta."}))
        .await;
    server.case(&key, json!({"name": "Coupon 50%_off refused", "description": "At checkout."})).await;
    server.case(&key, json!({"name": "Printer jams", "description": "Paper \"A4\" sticks; the toner is fine."})).await;
    let found = |q: &str| {
        let (server, key) = (&server, key.clone());
        let path = format!("/api/v1/cases?q={}", q.replace('%', "%25").replace(' ', "+").replace('"', "%22"));
        async move {
            let (status, body) = server.get(&path, &key).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            let mut names = item_names(&body);
            names.sort();
            names
        }
    };
    assert_eq!(found("cartridge").await, ["Toner cartridge empty"]);
    assert_eq!(found("MAGENTA").await, ["Toner cartridge empty"], "any case, in the description");
    assert_eq!(found("ner cart").await, ["Toner cartridge empty"], "across a word's edge");
    assert_eq!(found("toner").await, ["Printer jams", "Toner cartridge empty"]);
    assert_eq!(found("50%_off").await, ["Coupon 50%_off refused"], "wildcards are plain characters");
    assert_eq!(found("0%_").await, ["Coupon 50%_off refused"]);
    assert_eq!(found("\"A4\" sticks").await, ["Printer jams"], "quotes are plain characters");
    assert_eq!(found("%_").await, ["Coupon 50%_off refused"], "short queries too");
    assert_eq!(found("floor four").await, Vec::<String>::new());

    // A rename is found by its new name only; the description still counts.
    let path = format!("/api/v1/cases/{}", toner["id"].as_str().expect("id"));
    let (status, body) = server.patch(&path, &key, json!({"name": "Drum unit noisy", "version": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(found("cartridge").await, Vec::<String>::new());
    assert_eq!(found("drum unit").await, ["Drum unit noisy"]);
    assert_eq!(found("magenta").await, ["Drum unit noisy"]);
    let (status, body) = server.call(Method::DELETE, &path, &key, None).await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(found("drum unit").await, Vec::<String>::new());
    assert_eq!(found("magenta").await, Vec::<String>::new());
}

on_both_backends!(
    crud_follows_the_contract,
    lists_filter_sort_and_page,
    text_search_finds_substrings_and_follows_changes
);
