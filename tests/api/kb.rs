//! The knowledge base over HTTP on both backends: categories, articles,
//! full-text search, relating to cases, suggestions, and what customers
//! see.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Site, error_of, item_names};

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_string()
}

async fn articles_are_written_searched_related_and_suggested(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();

    // Categories form a tree; a category cannot move under itself.
    let (status, printing) = server.post("/api/v1/kb/categories", &admin, json!({"name": "Printing"})).await;
    assert_eq!(status, StatusCode::CREATED, "{printing}");
    let (_, toner) =
        server.post("/api/v1/kb/categories", &admin, json!({"name": "Toner", "parent_id": printing["id"]})).await;
    let (status, body) = server
        .call(
            Method::PUT,
            &format!("/api/v1/kb/categories/{}", id(&printing)),
            &admin,
            Some(json!({"name": "Printing", "parent_id": toner["id"]})),
        )
        .await;
    error_of(status, &body, "validation");
    let (_, categories) = server.get("/api/v1/kb/categories", &admin).await;
    assert_eq!(item_names(&categories), vec!["Printing", "Toner"]);

    // Articles: new ones go on top; bad dates are refused.
    let (status, body) = server
        .post(
            "/api/v1/kb/articles",
            &admin,
            json!({"name": "Bad dates", "publish_date": "2026-12-01", "expiration_date": "2026-11-01"}),
        )
        .await;
    error_of(status, &body, "validation");
    // Years past 9999 would compare wrongly as text; orders stay bounded.
    for bad in [json!({"name": "Far", "publish_date": "+10000-01-01"}), json!({"name": "Huge", "order": i64::MAX})] {
        let (status, body) = server.post("/api/v1/kb/articles", &admin, bad).await;
        error_of(status, &body, "validation");
    }
    let (status, portal) = server
        .post("/api/v1/portals", &admin, json!({"name": "Customers", "slug": "customers", "is_default": true}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{portal}");
    let article = |name: &str, status: &str, body: &str| json!({"name": name, "status": status, "body": body, "portal_ids": [portal["id"]], "category_ids": [toner["id"]]});
    let (status, offline) = server
        .post(
            "/api/v1/kb/articles",
            &admin,
            article("Printer offline", "Published", "Restart the **spooler** service."),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{offline}");
    let (_, password) = server
        .post(
            "/api/v1/kb/articles",
            &admin,
            article("Reset your password", "Published", "Use the printer? No: Settings."),
        )
        .await;
    let (_, draft) = server
        .post("/api/v1/kb/articles", &admin, article("Printer secrets", "Draft", "Not ready for customers."))
        .await;
    let mut expired = article("Old printer driver", "Published", "Install driver 1.0 for the printer.");
    expired["expiration_date"] = json!("2020-01-31");
    let (status, expired) = server.post("/api/v1/kb/articles", &admin, expired).await;
    assert_eq!(status, StatusCode::CREATED, "{expired}");
    let (_, all) = server.get("/api/v1/kb/articles", &admin).await;
    assert_eq!(
        item_names(&all),
        vec!["Old printer driver", "Printer secrets", "Reset your password", "Printer offline"]
    );

    // Full-text search: every word, best match (the name) first; search
    // syntax in the query is only words.
    let (_, found) = server.get("/api/v1/kb/articles?q=printer", &admin).await;
    assert_eq!(found["total"], 4, "{found}");
    assert_ne!(item_names(&found)[3], "Printer offline", "a name match ranks above a body match: {found}");
    assert_eq!(item_names(&found).last().map(String::as_str), Some("Reset your password"));
    let (_, found) = server.get("/api/v1/kb/articles?q=printer+spooler", &admin).await;
    assert_eq!(item_names(&found), vec!["Printer offline"]);
    let (status, found) = server.get("/api/v1/kb/articles?q=%22spooler%22+OR+NEAR(x*", &admin).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["total"], 0, "every word must match, and `or`, `near`, `x` are words too: {found}");
    let (_, found) = server.get(&format!("/api/v1/kb/articles?status=Draft&category_id={}", id(&toner)), &admin).await;
    assert_eq!(item_names(&found), vec!["Printer secrets"]);
    let (status, body) = server.get("/api/v1/kb/articles?state=Draft", &admin).await;
    error_of(status, &body, "validation");

    // Editing replaces, with the version checked; the index follows.
    let mut edited = article("Printer offline", "Published", "Restart the print queue service.");
    edited["version"] = json!(1);
    let (status, body) =
        server.call(Method::PUT, &format!("/api/v1/kb/articles/{}", id(&offline)), &admin, Some(edited.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) =
        server.call(Method::PUT, &format!("/api/v1/kb/articles/{}", id(&offline)), &admin, Some(edited)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, found) = server.get("/api/v1/kb/articles?q=spooler", &admin).await;
    assert_eq!(found["total"], 0);
    let (_, found) = server.get("/api/v1/kb/articles?q=queue", &admin).await;
    assert_eq!(item_names(&found), vec!["Printer offline"]);

    // Suggestions for a case: published articles sharing its words, best
    // first, not the ones already related.
    let case = server.case(&admin, json!({"name": "My printer is offline", "description": "Since this morning"})).await;
    let case_path = format!("/api/v1/cases/{}", id(&case));
    let (_, suggested) = server.get(&format!("{case_path}/article-suggestions"), &admin).await;
    let suggested = item_names(&suggested);
    assert_eq!(suggested.first().map(String::as_str), Some("Printer offline"), "{suggested:?}");
    assert!(!suggested.contains(&"Printer secrets".to_string()), "drafts are not suggested");
    assert!(!suggested.contains(&"Old printer driver".to_string()), "expired articles are not suggested");
    let (status, _) = server.call(Method::DELETE, &format!("{case_path}/articles/%00"), &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.call(Method::PUT, &format!("{case_path}/articles/{}", id(&offline)), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, related) = server.get(&format!("{case_path}/articles"), &admin).await;
    assert_eq!(item_names(&related), vec!["Printer offline"]);
    let (_, suggested) = server.get(&format!("{case_path}/article-suggestions"), &admin).await;
    assert!(!item_names(&suggested).contains(&"Printer offline".to_string()));

    // Relating needs edit access to the case.
    let (_, reader_key) = server
        .agent(&site, &admin, "rita", json!({"create": "all", "read": "all", "edit": "own", "delete": "no"}), json!([]))
        .await;
    let (status, _) =
        server.call(Method::PUT, &format!("{case_path}/articles/{}", id(&password)), &reader_key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Customers: published, in date, in the default portal, read level.
    let (_, contact) = server.post("/api/v1/contacts", &admin, json!({"last_name": "Customer"})).await;
    let (_, user) = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "cust", "type": "portal", "password": "portal-password", "contact_id": contact["id"]}),
        )
        .await;
    let customer = site.api_key_for("cust");
    let (_, seen) = server.get("/api/v1/kb/articles", &customer).await;
    assert_eq!(item_names(&seen), vec!["Reset your password", "Printer offline"]);
    // Who on the staff wrote them is not the customer's business.
    let (_, staff_view) = server.get(&format!("/api/v1/kb/articles/{}", id(&offline)), &admin).await;
    assert!(staff_view["created_by_id"].is_string(), "{staff_view}");
    for article in seen["items"].as_array().expect("items") {
        assert!(article["created_by_id"].is_null() && article["assigned_user_id"].is_null(), "{article}");
    }
    for hidden in [&draft, &expired] {
        let (status, _) = server.get(&format!("/api/v1/kb/articles/{}", id(hidden)), &customer).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = server.post("/api/v1/kb/articles", &customer, json!({"name": "Mine"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server.get(&format!("{case_path}/article-suggestions"), &customer).await;
    assert!(status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND, "{status}");
    let (_, role) = server
        .post(
            "/api/v1/portal-roles",
            &admin,
            json!({"name": "No articles", "permissions": {"case": {"read": "own"}, "kb_article": {"read": "no"}}}),
        )
        .await;
    let (status, _) = server
        .call(
            Method::PUT,
            &format!("/api/v1/users/{}/portal-roles", id(&user)),
            &admin,
            Some(json!({"role_ids": [role["id"]]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, seen) = server.get("/api/v1/kb/articles", &customer).await;
    assert_eq!(seen["total"], 0);
    let (status, _) = server.get(&format!("/api/v1/kb/articles/{}", id(&offline)), &customer).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An article's files: customers download them where they may read the
    // article; nobody takes them into a case.
    let (_, file) =
        crate::attachments::upload(&server, &admin, "steps.txt", b"1. restart".to_vec(), "text/plain").await;
    let (_, draft_file) = crate::attachments::upload(&server, &admin, "wip.txt", b"todo".to_vec(), "text/plain").await;
    let mut with_file = article("Reset your password", "Published", "Use the printer? No: Settings.");
    with_file["attachment_ids"] = json!([file["id"]]);
    let (status, body) =
        server.call(Method::PUT, &format!("/api/v1/kb/articles/{}", id(&password)), &admin, Some(with_file)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["attachment_ids"], json!([file["id"]]));
    let mut draft_with_file = article("Printer secrets", "Draft", "Not ready for customers.");
    draft_with_file["attachment_ids"] = json!([draft_file["id"]]);
    let (status, body) =
        server.call(Method::PUT, &format!("/api/v1/kb/articles/{}", id(&draft)), &admin, Some(draft_with_file)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .post(&format!("{case_path}/posts"), &admin, json!({"post": "see file", "attachment_ids": [file["id"]]}))
        .await;
    error_of(status, &body, "validation");
    let (status, _) = server
        .call(Method::PUT, &format!("/api/v1/users/{}/portal-roles", id(&user)), &admin, Some(json!({"role_ids": []})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let download = |file: &Value| format!("/api/v1/attachments/{}", id(file));
    let status = server.request(Method::GET, &download(&file), &customer).send().await.expect("send").status();
    assert_eq!(status, StatusCode::OK);
    let status = server.request(Method::GET, &download(&draft_file), &customer).send().await.expect("send").status();
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting an article removes it from search and from the case.
    let (status, _) = server.call(Method::DELETE, &format!("/api/v1/kb/articles/{}", id(&offline)), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, found) = server.get("/api/v1/kb/articles?q=queue", &admin).await;
    assert_eq!(found["total"], 0);
    let (_, related) = server.get(&format!("{case_path}/articles"), &admin).await;
    assert_eq!(related["items"], json!([]));
    // And its files go with it, from the disk too.
    let files_before = crate::support::files_under(&site.data_dir.join("attachments")).len();
    let (status, _) =
        server.call(Method::DELETE, &format!("/api/v1/kb/articles/{}", id(&password)), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(crate::support::files_under(&site.data_dir.join("attachments")).len(), files_before - 1);
    let status = server.request(Method::GET, &download(&file), &admin).send().await.expect("send").status();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

on_both_backends!(articles_are_written_searched_related_and_suggested);
