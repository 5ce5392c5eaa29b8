//! Attachments: upload, link to a case, download with access checks, and
//! oversized uploads that leave nothing behind.

use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Site, error_of, files_under, read};

pub(crate) async fn upload(
    server: &crate::support::Server,
    key: &str,
    name: &str,
    bytes: Vec<u8>,
    content_type: &str,
) -> (StatusCode, serde_json::Value) {
    let part = Part::bytes(bytes).file_name(name.to_string()).mime_str(content_type).expect("mime");
    let response = server
        .request(Method::POST, "/api/v1/attachments", key)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .expect("send");
    read(response).await
}

async fn attachments_round_trip_with_access_checks(site: Site) {
    let site = site.with_env("DOCKET_MAX_UPLOAD_BYTES", "100000");
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (_, reader) = server.agent(&site, &admin, "reader", json!({"create": "all", "read": "own"}), json!([])).await;

    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let (status, uploaded) = upload(&server, &admin, "../report é.pdf", bytes.clone(), "application/pdf").await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    assert_eq!(uploaded["name"], "report é.pdf");
    assert_eq!(uploaded["size"], 50_000);
    assert_eq!(uploaded["content_type"], "application/pdf");
    let id = uploaded["id"].as_str().expect("id").to_string();

    // Nobody else may take or read an unlinked upload.
    let (status, _) = server.get(&format!("/api/v1/attachments/{id}/meta"), &reader).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = server.post("/api/v1/cases", &reader, json!({"name": "steal", "attachment_ids": [id]})).await;
    error_of(status, &body, "validation");

    let case = server.case(&admin, json!({"name": "with a file", "attachment_ids": [id]})).await;
    assert_eq!(case["attachment_ids"], json!([id]));

    let response =
        server.request(Method::GET, &format!("/api/v1/attachments/{id}"), &admin).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert!(response.headers()["content-disposition"].to_str().expect("ascii").starts_with("attachment;"));
    assert_eq!(response.bytes().await.expect("bytes").to_vec(), bytes);

    // Access follows the case: a user who cannot read it gets 404.
    let (status, body) = server.get(&format!("/api/v1/attachments/{id}"), &reader).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Too large: 413, and no file or row is left behind.
    let before = files_under(&site.data_dir.join("attachments")).len();
    let (status, body) = upload(&server, &admin, "big.bin", vec![7u8; 150_000], "application/octet-stream").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    error_of(status, &body, "payload_too_large");
    let after = files_under(&site.data_dir.join("attachments"));
    assert_eq!(after.len(), before, "{after:?}");
    assert!(after.iter().all(|p| p.extension().is_none_or(|e| e != "part")));

    // No file field: a clear validation error.
    let response = server
        .request(Method::POST, "/api/v1/attachments", &admin)
        .multipart(Form::new().text("other", "x"))
        .send()
        .await
        .expect("send");
    let (status, body) = read(response).await;
    assert!(error_of(status, &body, "validation")["fields"]["file"].is_string());

    // Deleting the case removes its files.
    let (status, _) =
        server.call(Method::DELETE, &format!("/api/v1/cases/{}", case["id"].as_str().expect("id")), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(files_under(&site.data_dir.join("attachments")).len(), before - 1);
    let (status, _) = server.get(&format!("/api/v1/attachments/{id}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

on_both_backends!(attachments_round_trip_with_access_checks);
