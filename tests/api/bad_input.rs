//! Bad input gets the documented error and writes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Site, error_of};

async fn bad_input_gets_documented_errors(site: Site) {
    let server = site.start(&[]);
    let key = site.admin_key();
    let raw = |body: &'static str| {
        server.request(Method::POST, "/api/v1/cases", &key).header("content-type", "application/json").body(body).send()
    };

    let (status, body) = crate::support::read(raw("{\"name\": ").await.expect("send")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(status, &body, "bad_request")["message"].as_str().expect("message").contains("malformed JSON"));

    let (status, body) = server.post("/api/v1/cases", &key, json!({"name": "x", "nmae": "typo"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_of(status, &body, "validation")["fields"]["nmae"].as_str().expect("field").contains("unknown field"));

    let (status, body) = server.post("/api/v1/cases", &key, json!({"name": "x", "priority": "Critical"})).await;
    let error = error_of(status, &body, "validation");
    let message = error["fields"]["priority"].as_str().expect("field");
    for allowed in ["Low", "Normal", "High", "Urgent"] {
        assert!(message.contains(allowed), "{message}");
    }

    let (status, body) = server.post("/api/v1/cases", &key, json!({"name": 12})).await;
    assert!(error_of(status, &body, "validation")["fields"].get("name").is_some());
    let (status, body) = server.post("/api/v1/cases", &key, json!({"description": "no name"})).await;
    assert_eq!(error_of(status, &body, "validation")["fields"]["name"], "required");
    let (status, body) = server.post("/api/v1/cases", &key, json!({"name": "   "})).await;
    assert_eq!(error_of(status, &body, "validation")["fields"]["name"], "required");
    let (status, body) = server.post("/api/v1/cases", &key, json!({"name": "x".repeat(256)})).await;
    error_of(status, &body, "validation");
    let (status, body) = server.post("/api/v1/cases", &key, json!({"name": "x", "account_id": "f".repeat(32)})).await;
    assert!(error_of(status, &body, "validation")["fields"]["account_id"].is_string());

    // Wrong content type.
    let response = server.request(Method::POST, "/api/v1/cases", &key).body("name=x").send().await.expect("send");
    let (status, body) = crate::support::read(response).await;
    error_of(status, &body, "unsupported_media_type");

    // Oversized body.
    let huge = json!({"name": "big", "description": "x".repeat(2 * 1024 * 1024)});
    let (status, body) = server.post("/api/v1/cases", &key, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    error_of(status, &body, "payload_too_large");

    // Nothing above was written.
    let (_, list) = server.get("/api/v1/cases", &key).await;
    assert_eq!(list["total"], 0, "{list}");

    // Lists: limit capped, unknown filters and values explained, hostile q harmless.
    for i in 0..3 {
        server.case(&key, json!({"name": format!("case {i}")})).await;
    }
    let (status, list) = server.get("/api/v1/cases?limit=1000000", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().expect("items").len(), 3);
    let (status, body) = server.get("/api/v1/cases?stauts=New", &key).await;
    assert!(error_of(status, &body, "validation")["fields"]["stauts"].is_string());
    let (status, body) = server.get("/api/v1/cases?status=Open", &key).await;
    assert!(error_of(status, &body, "validation")["fields"]["status"].as_str().expect("m").contains("Duplicate"));
    let (status, body) = server.get("/api/v1/cases?sort=password_hash", &key).await;
    error_of(status, &body, "validation");
    let (status, body) = server.get("/api/v1/cases?limit=ten", &key).await;
    error_of(status, &body, "validation");
    for hostile in ["%25", "_", "%27%3B%20DROP%20TABLE%20cases%3B--", "%5C", "%E2%80%AE"] {
        let (status, list) = server.get(&format!("/api/v1/cases?q={hostile}"), &key).await;
        assert_eq!(status, StatusCode::OK, "{hostile}: {list}");
        assert_eq!(list["total"], 0, "{hostile}: {list}");
    }
    let (status, body) = server.get("/api/v1/cases?q=a%00b", &key).await;
    assert!(error_of(status, &body, "validation")["fields"]["q"].is_string());
    let (_, list) = server.get("/api/v1/cases", &key).await;
    assert_eq!(list["total"], 3);
    let (status, body) = server.post("/api/v1/cases", &key, json!({"name": "x", "team_ids": ["a\u{0}b"]})).await;
    error_of(status, &body, "validation");
    let (status, body) = server.post("/api/v1/cases", &key, json!({"name": "x\u{0}y"})).await;
    error_of(status, &body, "validation");

    // Ids that do not exist, or are not ids at all: 404 in the same shape.
    for id in ["nope", "f".repeat(32).as_str(), "..%2F..%2Fetc%2Fpasswd"] {
        let (status, body) = server.get(&format!("/api/v1/cases/{id}"), &key).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
        error_of(status, &body, "not_found");
    }
    for path in ["/api/v1/api-keys/%00", "/api/v1/roles/%00", "/api/v1/teams/%00", "/api/v1/users/%00"] {
        let (status, body) = server.call(Method::DELETE, path, &key, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, body) = server.get("/api/v1/no-such-endpoint", &key).await;
    error_of(status, &body, "not_found");
    let (status, body) = server.call(Method::PUT, "/api/v1/cases", &key, Some(json!({}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
}

on_both_backends!(bad_input_gets_documented_errors);
