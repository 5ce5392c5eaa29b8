//! `/api/v1/attachments`: upload (multipart) and download, access-checked.
//!
//! Files are streamed to a temporary file under the data directory,
//! counted as they arrive (so an oversized upload is cut off at the limit,
//! not buffered), synced, renamed into place, and only then recorded in
//! the database. A failed upload leaves nothing behind.

use std::path::{Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::multipart::Field;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::Actor;
use docket_store::{AttachmentRecord, NewAttachment};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;

pub fn router(state: &AppState) -> Router<AppState> {
    let limit = upload_body_limit(state);
    Router::new()
        .route("/attachments", post(upload).layer(DefaultBodyLimit::max(limit)))
        .route("/attachments/{id}", get(download).delete(remove))
        .route("/attachments/{id}/meta", get(meta))
}

/// The body limit of upload routes: the largest allowed file plus room for
/// the multipart framing around it.
pub fn upload_body_limit(state: &AppState) -> usize {
    usize::try_from(state.config.max_upload_bytes).unwrap_or(usize::MAX).saturating_add(64 * 1024)
}

/// What an upload answers.
#[derive(serde::Serialize)]
struct Uploaded {
    id: String,
    name: String,
    size: i64,
    content_type: String,
}

async fn upload(
    State(state): State<AppState>,
    auth: Auth,
    mut multipart: Multipart,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() == Some("file") {
            let record = save_upload(&state, &auth.actor, field).await?;
            let uploaded =
                Uploaded { id: record.id, name: record.name, size: record.size, content_type: record.content_type };
            return Ok((StatusCode::CREATED, Json(uploaded)));
        }
    }
    Err(ApiError::field("file", "required: send the file as a multipart field named `file`"))
}

/// Streams one multipart file field to disk and records it (unlinked).
/// Shared by the API and the UI's upload form.
pub async fn save_upload(state: &AppState, actor: &Actor, field: Field<'_>) -> ApiResult<AttachmentRecord> {
    let new = write_upload(state, field).await?;
    match state.store.create_attachment(actor, &new).await {
        Ok(record) => Ok(record),
        Err(error) => {
            remove_files(state, &[new.storage_key]).await;
            Err(error.into())
        }
    }
}

/// Streams one multipart file field to disk, cut off at the upload limit;
/// the caller records it (or removes it with [`remove_files`]).
pub async fn write_upload(state: &AppState, mut field: Field<'_>) -> ApiResult<NewAttachment> {
    let max = state.config.max_upload_bytes;
    let name = clean_file_name(field.file_name().unwrap_or("attachment"));
    let content_type = field
        .content_type()
        .map(str::to_string)
        .filter(|t| t.parse::<HeaderValue>().is_ok() && t.contains('/') && t.len() <= 255)
        .unwrap_or_else(|| guess_content_type(&name).to_string());

    let storage_key = docket_domain::ids::new_id();
    let final_path = file_path(&state.config.data_dir, &storage_key);
    let temp_path = final_path.with_extension("part");
    if let Some(parent) = final_path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io_error)?;
    }
    let mut file = tokio::fs::File::create(&temp_path).await.map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let written: ApiResult<()> = async {
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            size += chunk.len() as u64;
            if size > max {
                return Err(ApiError::PayloadTooLarge(format!("attachments may be at most {max} bytes")));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io_error)?;
        }
        file.sync_all().await.map_err(io_error)?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(error) = written {
        let _ = tokio::fs::remove_file(&temp_path).await;
        return Err(error);
    }
    tokio::fs::rename(&temp_path, &final_path).await.map_err(io_error)?;
    Ok(NewAttachment { name, content_type, size: size as i64, sha256: hex::encode(hasher.finalize()), storage_key })
}

async fn meta(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<AttachmentRecord>> {
    Ok(Json(state.store.get_attachment(&auth.actor, &id).await?))
}

async fn download(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let record = state.store.get_attachment(&auth.actor, &id).await?;
    file_response(&state, &record).await
}

/// A stored file as a download (the API and the portal pages), with the
/// headers that keep a browser from running it.
pub async fn file_response(state: &AppState, record: &AttachmentRecord) -> ApiResult<Response> {
    let path = file_path(&state.config.data_dir, &record.storage_key);
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::Internal(anyhow::anyhow!("attachment {} has no file at {}: {e}", record.id, path.display()))
    })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&record.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(record.size as u64));
    if let Ok(value) = HeaderValue::from_str(&content_disposition(&record.name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    // Uploaded files are untrusted: never let a browser run them as a page.
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=0"));
    Ok(response)
}

async fn remove(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let key = state.store.delete_unlinked_attachment(&auth.actor, &id).await?;
    remove_files(&state, &[key]).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes stored files whose rows are gone; a missing file is no error.
pub async fn remove_files(state: &AppState, storage_keys: &[String]) {
    for key in storage_keys {
        let path = file_path(&state.config.data_dir, key);
        if let Err(error) = tokio::fs::remove_file(&path).await
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%error, path = %path.display(), "could not remove attachment file");
        }
    }
}

/// Writes a file that came in another way (an email's attachment) and
/// says what to record; the caller's transaction records it. The file is
/// synced and renamed into place first, like an upload.
pub async fn store_bytes(
    state: &AppState,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> std::io::Result<NewAttachment> {
    let name = clean_file_name(name);
    let content_type = if content_type.parse::<HeaderValue>().is_ok() && content_type.contains('/') {
        content_type.to_string()
    } else {
        guess_content_type(&name).to_string()
    };
    let storage_key = docket_domain::ids::new_id();
    let final_path = file_path(&state.config.data_dir, &storage_key);
    let temp_path = final_path.with_extension("part");
    if let Some(parent) = final_path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let written = async {
        let mut file = tokio::fs::File::create(&temp_path).await?;
        file.write_all(bytes).await?;
        file.sync_all().await
    }
    .await;
    if let Err(error) = written {
        let _ = tokio::fs::remove_file(&temp_path).await;
        return Err(error);
    }
    tokio::fs::rename(&temp_path, &final_path).await?;
    Ok(NewAttachment {
        name,
        content_type,
        size: bytes.len() as i64,
        sha256: hex::encode(Sha256::digest(bytes)),
        storage_key,
    })
}

/// Where a stored file lives.
pub fn stored_file(state: &AppState, storage_key: &str) -> PathBuf {
    file_path(&state.config.data_dir, storage_key)
}

/// Files fan out over 256 folders by the first two characters of the key.
fn file_path(data_dir: &FsPath, storage_key: &str) -> PathBuf {
    let fan = storage_key.get(..2).unwrap_or("00");
    data_dir.join("attachments").join(fan).join(storage_key)
}

/// Keeps the last path segment, drops control characters, caps the length.
fn clean_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let trimmed = cleaned.trim().trim_start_matches('.');
    if trimmed.is_empty() { "attachment".to_string() } else { trimmed.to_string() }
}

fn guess_content_type(name: &str) -> &'static str {
    let extension = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "zip" => "application/zip",
        "json" => "application/json",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

/// `attachment` with an ASCII fallback name and the UTF-8 name (RFC 6266).
fn content_disposition(name: &str) -> String {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

pub fn multipart_error(error: axum::extract::multipart::MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("the upload is larger than the attachment limit".into())
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {}", error.body_text()))
    }
}

fn io_error(error: std::io::Error) -> ApiError {
    ApiError::Internal(anyhow::Error::new(error).context("storing an attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\Users\\x\\report.pdf"), "report.pdf");
        assert_eq!(clean_file_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(clean_file_name("..."), "attachment");
    }

    #[test]
    fn content_disposition_quotes_safely() {
        let value = content_disposition("résumé \"final\".pdf");
        assert!(value.starts_with("attachment; filename=\"r_sum_ _final_.pdf\""));
        assert!(value.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"));
        assert!(HeaderValue::from_str(&value).is_ok());
    }
}
