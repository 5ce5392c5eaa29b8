//! `/api/v1/mailboxes`: group mailboxes for email-to-case (admins): their
//! settings, a connection test, and the messages fetched from each, with
//! retry and discard for the quarantined ones.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::listing::{Page, Window};
use docket_store::{InboundEmailRecord, Ingested, Mailbox, MailboxInput};
use serde::Serialize;

use super::integer;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, query_pairs};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mailboxes", get(list).post(create))
        .route("/mailboxes/{id}", get(show).put(replace).delete(remove))
        .route("/mailboxes/{id}/test", post(test))
        .route("/mailboxes/{id}/messages", get(messages))
        .route("/mailboxes/{id}/messages/{message}/raw", get(raw))
        .route("/mailboxes/{id}/messages/{message}/retry", post(retry))
        .route("/mailboxes/{id}/messages/{message}/discard", post(discard))
}

/// The auto-reply template must render before it is saved.
pub fn check_template(input: &MailboxInput) -> ApiResult<()> {
    crate::mail::validate_auto_reply(&input.auto_reply_subject, &input.auto_reply_body)
        .map_err(|e| ApiError::field("auto_reply_body", format!("the template does not render: {e}")))
}

async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<Mailbox>>> {
    Ok(Json(state.store.mailboxes(&auth.actor).await?))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<MailboxInput>,
) -> ApiResult<(StatusCode, Json<Mailbox>)> {
    check_template(&input)?;
    Ok((StatusCode::CREATED, Json(state.store.create_mailbox(&auth.actor, &input).await?)))
}

async fn show(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Mailbox>> {
    Ok(Json(state.store.mailbox(&auth.actor, &id).await?))
}

async fn replace(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<MailboxInput>,
) -> ApiResult<Json<Mailbox>> {
    check_template(&input)?;
    Ok(Json(state.store.update_mailbox(&auth.actor, &id, &input).await?))
}

async fn remove(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_mailbox(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What "test connection" found.
#[derive(Serialize)]
pub struct TestResult {
    pub ok: bool,
    pub message: String,
}

/// Connects, logs in and opens the folder with the stored settings; and
/// says hello to the mailbox's own SMTP server, when it has one.
pub async fn test_mailbox(state: &AppState, actor: &docket_domain::Actor, id: &str) -> ApiResult<TestResult> {
    let mailbox = state.store.mailbox(actor, id).await?;
    let (_, settings) = state.store.mailbox_imap(id).await?;
    let (mut ok, mut message) = match docket_email::imap::test_connection(&settings).await {
        Ok(message) => (true, format!("IMAP: {message}")),
        Err(error) => (false, format!("IMAP: {error}")),
    };
    if let Some(smtp) = state.store.mailbox_smtp(&mailbox).await? {
        match docket_email::test_connection(&smtp).await {
            Ok(()) => message.push_str(" SMTP: the server answered."),
            Err(error) => {
                ok = false;
                message.push_str(&format!(" SMTP: {error}"));
            }
        }
    }
    Ok(TestResult { ok, message })
}

async fn test(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<TestResult>> {
    Ok(Json(test_mailbox(&state, &auth.actor, &id).await?))
}

async fn messages(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<InboundEmailRecord>>> {
    let (mut limit, mut offset, mut status) = (None, None, None);
    for (key, value) in query_pairs(raw.as_deref())? {
        match key.as_str() {
            "limit" => limit = Some(integer("limit", &value)?),
            "offset" => offset = Some(integer("offset", &value)?),
            "status" => status = Some(value),
            other => return Err(ApiError::field(other, "unknown parameter; allowed: status, limit, offset")),
        }
    }
    let page = state.store.inbound_emails(&auth.actor, &id, status.as_deref(), Window::new(limit, offset)).await?;
    Ok(Json(page))
}

/// The message as it was fetched, to open in a mail program.
async fn raw(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, message)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (_, raw) = state.store.inbound_email(&auth.actor, &id, &message).await?;
    let raw =
        raw.ok_or_else(|| ApiError::field("message", "this message was not kept (it was too large or discarded)"))?;
    let mut response = raw.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("message/rfc822"));
    response
        .headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"message.eml\""));
    Ok(response)
}

/// Runs a quarantined message through ingestion again (after fixing a
/// rule, say).
pub async fn retry_message(
    state: &AppState,
    actor: &docket_domain::Actor,
    id: &str,
    message: &str,
) -> ApiResult<Ingested> {
    let mailbox = state.store.mailbox(actor, id).await?;
    let (record, raw) = state.store.inbound_email(actor, &mailbox.id, message).await?;
    if record.status != "quarantined" {
        return Err(ApiError::field(
            "message",
            format!("only quarantined messages are retried; this one is {}", record.status),
        ));
    }
    let raw = raw.ok_or_else(|| {
        ApiError::field(
            "message",
            "this message was too large to download; it stays on the mail server, to be handled there",
        )
    })?;
    let uid_validity = u32::try_from(record.uid_validity).unwrap_or(0);
    let uid = u32::try_from(record.uid).unwrap_or(0);
    crate::fetcher::ingest(state, &mailbox, uid_validity, uid, &raw, Some(record.id))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))
}

async fn retry(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, message)): Path<(String, String)>,
) -> ApiResult<Json<Ingested>> {
    Ok(Json(retry_message(&state, &auth.actor, &id, &message).await?))
}

async fn discard(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, message)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.store.discard_inbound_email(&auth.actor, &id, &message).await?;
    Ok(StatusCode::NO_CONTENT)
}
