//! Portals and portal roles over HTTP on both backends: the access matrix
//! of the portal levels against the cases a customer may meet.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Server, Site, error_of};

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_string()
}

/// A portal role with one level for reading, editing and the stream.
async fn role(server: &Server, admin: &str, name: &str, level: &str, stream: &str) -> String {
    let permissions = json!({"case": {"create": "own", "read": level, "edit": level, "stream": stream}});
    let (status, role) =
        server.post("/api/v1/portal-roles", admin, json!({"name": name, "permissions": permissions})).await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    id(&role)
}

async fn give_roles(server: &Server, admin: &str, user_id: &str, role_ids: &[&str]) {
    let (status, body) = server
        .call(Method::PUT, &format!("/api/v1/users/{user_id}/portal-roles"), admin, Some(json!({"role_ids": role_ids})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// What the portal user reached of one case, every way we look.
async fn reaches(server: &Server, key: &str, case: &Value) -> bool {
    let case_id = id(case);
    let (by_id, body) = server.get(&format!("/api/v1/cases/{case_id}"), key).await;
    let (by_number, _) = server.get(&format!("/api/v1/cases/by-number/{}", case["number"]), key).await;
    let (_, listed) = server.get("/api/v1/cases?limit=200", key).await;
    let in_list = listed["items"].as_array().expect("items").iter().any(|c| c["id"] == case["id"]);
    let name = case["name"].as_str().expect("name");
    let (_, searched) = server.get(&format!("/api/v1/cases?q={}", name.replace(' ', "+")), key).await;
    let in_search = searched["items"].as_array().expect("items").iter().any(|c| c["id"] == case["id"]);
    let (stream, _) = server.get(&format!("/api/v1/cases/{case_id}/stream"), key).await;
    let reached = by_id == StatusCode::OK;
    // Every way agrees, and a case out of reach is not found (never
    // forbidden: that would say it exists).
    assert_eq!(by_number, by_id, "{name}: by number");
    assert_eq!(in_list, reached, "{name}: listed");
    assert_eq!(in_search, reached, "{name}: searched");
    assert_eq!(stream, by_id, "{name}: stream");
    if !reached {
        assert_eq!(by_id, StatusCode::NOT_FOUND, "{name}: {body}");
        let (status, _) = server.post(&format!("/api/v1/cases/{case_id}/posts"), key, json!({"post": "hello?"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: posting");
        let (status, _) = server.patch(&format!("/api/v1/cases/{case_id}"), key, json!({"description": "x"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: editing");
    }
    reached
}

async fn portal_roles_decide_which_cases_a_customer_reaches(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (_, ours) = server.post("/api/v1/accounts", &admin, json!({"name": "Ours Ltd"})).await;
    let (_, theirs) = server.post("/api/v1/accounts", &admin, json!({"name": "Theirs Inc"})).await;
    let contact = |last: &str, account: &Value| json!({"last_name": last, "account_ids": [account["id"]]});
    let (_, me) = server.post("/api/v1/contacts", &admin, contact("Customer", &ours)).await;
    let (_, colleague) = server.post("/api/v1/contacts", &admin, contact("Colleague", &ours)).await;
    let (_, stranger) = server.post("/api/v1/contacts", &admin, contact("Stranger", &theirs)).await;
    let (status, user) = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "cust", "type": "portal", "password": "portal-password", "contact_id": me["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let user_id = id(&user);
    let key = site.api_key_for("cust");

    // The five kinds of case: created by the customer (then moved to a
    // colleague, so only "own" explains it), of their contact (another
    // account), of their account (another contact), of another account,
    // and internal (of their contact).
    let created = server.case(&key, json!({"name": "Created by me"})).await;
    let (status, moved) = server
        .patch(
            &format!("/api/v1/cases/{}", id(&created)),
            &admin,
            json!({"contact_id": colleague["id"], "contact_ids": [colleague["id"]], "account_id": theirs["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let of_contact =
        server.case(&admin, json!({"name": "Of my contact", "contact_id": me["id"], "account_id": theirs["id"]})).await;
    let of_account = server
        .case(&admin, json!({"name": "Of my account", "contact_id": colleague["id"], "account_id": ours["id"]}))
        .await;
    let foreign = server
        .case(&admin, json!({"name": "Of another account", "contact_id": stranger["id"], "account_id": theirs["id"]}))
        .await;
    let internal = server
        .case(
            &admin,
            json!({"name": "Internal one", "contact_id": me["id"], "account_id": ours["id"], "is_internal": true}),
        )
        .await;
    let cases = [&created, &of_contact, &of_account, &foreign, &internal];

    // Without any role: the built-in fallback, own and contact.
    let mut seen = Vec::new();
    for case in cases {
        seen.push(reaches(&server, &key, case).await);
    }
    assert_eq!(seen, [true, true, false, false, false], "fallback");

    let expected = [
        ("no", [false, false, false, false, false]),
        ("own", [true, false, false, false, false]),
        ("contact", [true, true, false, false, false]),
        ("account", [true, true, true, false, false]),
        ("all", [true, true, true, true, false]),
    ];
    for (level, reach) in expected {
        let role_id = role(&server, &admin, &format!("level {level}"), level, level).await;
        give_roles(&server, &admin, &user_id, &[&role_id]).await;
        let mut seen = Vec::new();
        for case in cases {
            seen.push(reaches(&server, &key, case).await);
        }
        assert_eq!(seen, reach, "level {level}");
    }

    // With `all`: posting and editing what customers may edit works; the
    // staff-only fields do not, and internal posts are not theirs.
    let foreign_path = format!("/api/v1/cases/{}", id(&foreign));
    let (status, body) = server.post(&format!("{foreign_path}/posts"), &key, json!({"post": "Any news?"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["is_internal"], false);
    let (status, body) =
        server.post(&format!("{foreign_path}/posts"), &key, json!({"post": "psst", "is_internal": true})).await;
    assert!(status.is_client_error(), "{status} {body}");
    let (status, body) = server.patch(&foreign_path, &key, json!({"description": "More detail"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for patch in [json!({"status": "Closed"}), json!({"assigned_user_id": null}), json!({"is_internal": true})] {
        let (status, body) = server.patch(&foreign_path, &key, patch.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{patch}: {body}");
    }
    let (status, _) = server.call(Method::POST, &format!("{foreign_path}/close"), &key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, accounts) = server.get("/api/v1/accounts", &key).await;
    assert_eq!(accounts["total"], 0, "portal users list no accounts: {accounts}");

    // Reading without the stream: the case shows, its stream is forbidden
    // and no reply goes in; and the follow it had ends. (Level `no` above
    // ended the follow the case began with: follow it again.)
    let of_contact_path = format!("/api/v1/cases/{}", id(&of_contact));
    let (status, body) = server.call(Method::PUT, &format!("{of_contact_path}/follow"), &key, None).await;
    assert!(status.is_success(), "{status} {body}");
    let (_, followers) = server.get(&format!("{of_contact_path}/followers"), &admin).await;
    assert!(followers["items"].as_array().expect("items").iter().any(|f| f["username"] == "cust"), "{followers}");
    let reader = role(&server, &admin, "reader", "all", "own").await;
    give_roles(&server, &admin, &user_id, &[&reader]).await;
    let (status, _) = server.get(&of_contact_path, &key).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server.get(&format!("{of_contact_path}/stream"), &key).await;
    error_of(status, &body, "forbidden");
    let (status, _) = server.post(&format!("{of_contact_path}/posts"), &key, json!({"post": "hi"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, followers) = server.get(&format!("{of_contact_path}/followers"), &admin).await;
    assert!(!followers["items"].as_array().expect("items").iter().any(|f| f["username"] == "cust"), "{followers}");

    // The default portal's roles merge with the user's: the widest wins.
    let narrow = role(&server, &admin, "narrow", "own", "own").await;
    give_roles(&server, &admin, &user_id, &[&narrow]).await;
    assert!(!reaches(&server, &key, &of_account).await);
    let wide = role(&server, &admin, "wide", "account", "account").await;
    let (status, portal) = server
        .post(
            "/api/v1/portals",
            &admin,
            json!({"name": "Customers", "slug": "customers", "is_default": true, "role_ids": [wide]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{portal}");
    assert!(reaches(&server, &key, &of_account).await);
    assert!(!reaches(&server, &key, &foreign).await);
    // No longer the default: its roles stop counting outside it.
    let mut input = portal.clone();
    for field in ["id", "created_at", "modified_at"] {
        input.as_object_mut().expect("object").remove(field);
    }
    input["is_default"] = json!(false);
    let (status, body) =
        server.call(Method::PUT, &format!("/api/v1/portals/{}", id(&portal)), &admin, Some(input)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!reaches(&server, &key, &of_account).await);
}

async fn portals_and_portal_roles_are_managed_by_admins(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (agent, agent_key) = server
        .agent(&site, &admin, "ann", json!({"create": "all", "read": "all", "edit": "all", "delete": "no"}), json!([]))
        .await;
    let (status, _) = server.get("/api/v1/portals", &agent_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Validation: slugs, colours, levels that mean nothing, unknown roles.
    let (status, body) = server
        .post(
            "/api/v1/portals",
            &admin,
            json!({"name": "Bad", "slug": "login", "branding": {"primary_color": "red", "logo_url": "javascript:x"}}),
        )
        .await;
    let error = error_of(status, &body, "validation");
    for field in ["slug", "branding.primary_color", "branding.logo_url"] {
        assert!(error["fields"][field].is_string(), "{field}: {body}");
    }
    let (status, body) = server
        .post("/api/v1/portal-roles", &admin, json!({"name": "Odd", "permissions": {"kb_article": {"read": "own"}}}))
        .await;
    error_of(status, &body, "validation");
    let (status, body) = server
        .post(
            "/api/v1/portals",
            &admin,
            json!({"name": "P", "slug": "p", "role_ids": ["00000000000000000000000000000000"]}),
        )
        .await;
    error_of(status, &body, "validation");
    let (status, body) =
        server.post("/api/v1/portals", &admin, json!({"name": "P", "slug": "p", "colour": "red"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // One default at a time; slugs are unique; versions are checked.
    let (_, first) =
        server.post("/api/v1/portals", &admin, json!({"name": "First", "slug": "first", "is_default": true})).await;
    let (status, second) =
        server.post("/api/v1/portals", &admin, json!({"name": "Second", "slug": "second", "is_default": true})).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let (_, first_now) = server.get(&format!("/api/v1/portals/{}", id(&first)), &admin).await;
    assert_eq!(first_now["is_default"], false);
    let (status, body) = server.post("/api/v1/portals", &admin, json!({"name": "Again", "slug": "first"})).await;
    error_of(status, &body, "validation");
    let stale = json!({"name": "Second", "slug": "second", "is_default": true, "version": 7});
    let (status, body) =
        server.call(Method::PUT, &format!("/api/v1/portals/{}", id(&second)), &admin, Some(stale)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, listed) = server.get("/api/v1/portals", &admin).await;
    assert_eq!(listed["total"], 2);

    // Portal roles go to portal users only; deleting a role takes it off
    // portals and users.
    let reader = role(&server, &admin, "Reader", "contact", "contact").await;
    let (status, body) = server
        .call(
            Method::PUT,
            &format!("/api/v1/users/{}/portal-roles", id(&agent)),
            &admin,
            Some(json!({"role_ids": [reader]})),
        )
        .await;
    error_of(status, &body, "validation");
    let (_, contact) = server.post("/api/v1/contacts", &admin, json!({"last_name": "Customer"})).await;
    let (_, user) = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "cust", "type": "portal", "password": "portal-password", "contact_id": contact["id"]}),
        )
        .await;
    give_roles(&server, &admin, &id(&user), &[&reader]).await;
    let (status, _) = server.call(Method::DELETE, &format!("/api/v1/portal-roles/{reader}"), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, held) = server.get(&format!("/api/v1/users/{}/portal-roles", id(&user)), &admin).await;
    assert_eq!(held["role_ids"], json!([]));
    let (status, _) = server.call(Method::DELETE, &format!("/api/v1/portals/{}", id(&first)), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server.get(&format!("/api/v1/portals/{}", id(&first)), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// What the stream level and the links between records take away: a
/// post's attachment, and follows when a case or a contact changes
/// account.
async fn customers_lose_what_their_level_no_longer_reaches(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (_, ours) = server.post("/api/v1/accounts", &admin, json!({"name": "Ours Ltd"})).await;
    let (_, theirs) = server.post("/api/v1/accounts", &admin, json!({"name": "Theirs Inc"})).await;
    let (_, me) =
        server.post("/api/v1/contacts", &admin, json!({"last_name": "Me", "account_ids": [ours["id"]]})).await;
    let (_, colleague) =
        server.post("/api/v1/contacts", &admin, json!({"last_name": "Colleague", "account_ids": [ours["id"]]})).await;
    let (_, user) = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "cust", "type": "portal", "password": "portal-password", "contact_id": me["id"]}),
        )
        .await;
    let key = site.api_key_for("cust");
    let account_wide = role(&server, &admin, "account-wide", "account", "account").await;
    give_roles(&server, &admin, &id(&user), &[&account_wide]).await;
    let case = server
        .case(&admin, json!({"name": "Of my account", "contact_id": colleague["id"], "account_id": ours["id"]}))
        .await;
    let path = format!("/api/v1/cases/{}", id(&case));
    let followers = |body: Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|f| f["username"].as_str().expect("name").to_string())
            .collect()
    };

    // A public post with an attachment: the stream level decides the file.
    let (status, file) =
        crate::attachments::upload(&server, &admin, "invoice.txt", b"total: 42".to_vec(), "text/plain").await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let (status, post) = server
        .post(&format!("{path}/posts"), &admin, json!({"post": "Your invoice", "attachment_ids": [file["id"]]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{post}");
    let download = format!("/api/v1/attachments/{}", id(&file));
    assert_eq!(server.request(Method::GET, &download, &key).send().await.expect("send").status(), StatusCode::OK);
    let reader = role(&server, &admin, "reader", "account", "own").await;
    give_roles(&server, &admin, &id(&user), &[&reader]).await;
    assert_eq!(server.get(&path, &key).await.0, StatusCode::OK);
    assert_eq!(
        server.request(Method::GET, &download, &key).send().await.expect("send").status(),
        StatusCode::NOT_FOUND
    );

    // Following through the account ends when the case changes account.
    give_roles(&server, &admin, &id(&user), &[&account_wide]).await;
    let (status, _) = server.call(Method::PUT, &format!("{path}/follow"), &key, None).await;
    assert!(status.is_success(), "{status}");
    assert!(followers(server.get(&format!("{path}/followers"), &admin).await.1).contains(&"cust".to_string()));
    let (status, body) = server.patch(&path, &admin, json!({"account_id": theirs["id"]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!followers(server.get(&format!("{path}/followers"), &admin).await.1).contains(&"cust".to_string()));

    // And when the customer's contact leaves the account.
    let (status, body) = server.patch(&path, &admin, json!({"account_id": ours["id"]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server.call(Method::PUT, &format!("{path}/follow"), &key, None).await;
    assert!(status.is_success(), "{status}");
    let (status, body) =
        server.patch(&format!("/api/v1/contacts/{}", id(&me)), &admin, json!({"account_ids": [theirs["id"]]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!followers(server.get(&format!("{path}/followers"), &admin).await.1).contains(&"cust".to_string()));
    assert_eq!(server.get(&path, &key).await.0, StatusCode::NOT_FOUND);
}

on_both_backends!(
    portal_roles_decide_which_cases_a_customer_reaches,
    portals_and_portal_roles_are_managed_by_admins,
    customers_lose_what_their_level_no_longer_reaches
);
