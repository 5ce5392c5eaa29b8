//! Accounts, contacts, users and teams: CRUD with the same conventions as
//! cases.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Site, error_of, item_names};

async fn accounts_contacts_users_and_teams(site: Site) {
    let server = site.start(&[]);
    let key = site.admin_key();

    // Accounts.
    let (status, account) = server
        .post(
            "/api/v1/accounts",
            &key,
            json!({"name": "Acme", "email": "it@acme.test", "phone": "+1 555", "website": "https://acme.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let account_path = format!("/api/v1/accounts/{}", account["id"].as_str().expect("id"));
    let (status, body) = server.post("/api/v1/accounts", &key, json!({"name": "Bad", "email": "not-an-email"})).await;
    assert!(error_of(status, &body, "validation")["fields"]["email"].is_string());
    let (status, renamed) = server.patch(&account_path, &key, json!({"name": "Acme Corp", "version": 1})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["version"], 2);
    let (status, _) = server.patch(&account_path, &key, json!({"name": "Stale", "version": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, found) = server.get("/api/v1/accounts?q=acme", &key).await;
    assert_eq!(found["total"], 1);
    // Simple lists sort too.
    server.post("/api/v1/accounts", &key, json!({"name": "Zenith"})).await;
    server.post("/api/v1/accounts", &key, json!({"name": "Beta"})).await;
    let (_, ascending) = server.get("/api/v1/accounts", &key).await;
    assert_eq!(item_names(&ascending), vec!["Acme Corp", "Beta", "Zenith"]);
    let (_, descending) = server.get("/api/v1/accounts?sort=-name", &key).await;
    assert_eq!(item_names(&descending), vec!["Zenith", "Beta", "Acme Corp"]);
    let (_, newest) = server.get("/api/v1/accounts?sort=-created_at&limit=1", &key).await;
    assert_eq!(item_names(&newest), vec!["Beta"]);
    let (status, body) = server.get("/api/v1/accounts?sort=password", &key).await;
    assert!(error_of(status, &body, "validation")["fields"]["sort"].as_str().expect("m").contains("created_at"));

    // Contacts: several addresses, the first primary; linked accounts.
    let (status, contact) = server
        .post(
            "/api/v1/contacts",
            &key,
            json!({"first_name": "Wile", "last_name": "Coyote", "emails": ["Wile@Acme.test", "wile@home.test"], "account_ids": [account["id"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    assert_eq!(contact["name"], "Wile Coyote");
    assert_eq!(contact["emails"], json!(["wile@acme.test", "wile@home.test"]));
    let (status, body) =
        server.post("/api/v1/contacts", &key, json!({"last_name": "X", "emails": ["a@b.test", "A@B.test"]})).await;
    assert!(error_of(status, &body, "validation")["fields"]["emails"].as_str().expect("m").contains("twice"));
    let (_, by_email) = server.get("/api/v1/contacts?q=home.test", &key).await;
    assert_eq!(by_email["total"], 1);
    let (_, by_account) =
        server.get(&format!("/api/v1/contacts?account_id={}", account["id"].as_str().expect("id")), &key).await;
    assert_eq!(by_account["total"], 1);

    // A case links both; deleting the account unlinks, never deletes, cases.
    let case = server
        .case(&key, json!({"name": "Anvil fell", "account_id": account["id"], "contact_ids": [contact["id"]]}))
        .await;
    assert_eq!(case["contact_id"], contact["id"]);
    let (status, _) = server.call(Method::DELETE, &account_path, &key, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, after) = server.get(&format!("/api/v1/cases/{}", case["id"].as_str().expect("id")), &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after["account_id"], serde_json::Value::Null);

    // Teams with members and positions; users with teams.
    let (status, user) = server
        .post("/api/v1/users", &key, json!({"username": "Bob", "name": "Bob B", "email": "bob@help.test", "type": "agent", "password": "bob-password"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["username"], "bob");
    assert!(user.get("password").is_none());
    let (status, body) = server
        .post("/api/v1/users", &key, json!({"username": "bob", "type": "agent", "password": "bob-password"}))
        .await;
    assert!(error_of(status, &body, "validation")["fields"]["username"].is_string());
    let (status, body) = server
        .post("/api/v1/users", &key, json!({"username": "eve", "type": "superuser", "password": "eve-password"}))
        .await;
    assert!(error_of(status, &body, "validation")["fields"]["type"].as_str().expect("m").contains("portal"));
    let (status, team) = server
        .post(
            "/api/v1/teams",
            &key,
            json!({"name": "Support", "members": [{"user_id": user["id"], "position": "Lead"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    assert_eq!(team["members"], json!([{"user_id": user["id"], "position": "Lead"}]));
    let (_, bob) = server.get(&format!("/api/v1/users/{}", user["id"].as_str().expect("id")), &key).await;
    assert_eq!(bob["team_ids"], json!([team["id"]]));
    let (status, body) = server.post("/api/v1/teams", &key, json!({"name": "Support"})).await;
    error_of(status, &body, "validation");
    let (_, teams) = server.get("/api/v1/teams?q=supp", &key).await;
    assert_eq!(teams["total"], 1);
    let (_, users) = server.get("/api/v1/users?limit=1", &key).await;
    assert_eq!(users["total"], 2);
    assert_eq!(users["items"].as_array().expect("items").len(), 1);
}

on_both_backends!(accounts_contacts_users_and_teams);
