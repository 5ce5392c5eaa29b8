//! Admin pages for group mailboxes: the list with each one's fetch status,
//! the settings form (the password is never shown again), a connection
//! test, and the fetched messages with retry and discard for quarantined
//! ones.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use docket_domain::listing::{SimpleFilter, Window};
use docket_domain::user::UserType;
use docket_store::{DISTRIBUTIONS, Mailbox, MailboxInput, StoreError};
use serde_json::{Value, json};

use super::admin::require_admin;
use super::render::{UiError, page_with_status};
use super::session::{FormData, PageQuery, UiSession};
use crate::api::mailboxes::{check_template, retry_message, test_mailbox};
use crate::app::AppState;
use crate::error::ApiError;

/// Messages shown per page of a mailbox's list.
const MESSAGES_PER_PAGE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/mailboxes", get(list).post(create))
        .route("/admin/mailboxes/new", get(new_form))
        .route("/admin/mailboxes/{id}", get(edit_form).post(update))
        .route("/admin/mailboxes/{id}/test", post(test))
        .route("/admin/mailboxes/{id}/delete", post(delete))
        .route("/admin/mailboxes/{id}/messages/{message}/retry", post(retry))
        .route("/admin/mailboxes/{id}/messages/{message}/discard", post(discard))
}

async fn list(State(state): State<AppState>, session: UiSession, RawQuery(raw): RawQuery) -> Result<Response, UiError> {
    require_admin(&session)?;
    let mailboxes = state.store.mailboxes(&session.actor).await?;
    let mut context = session.context();
    context.insert("mailboxes", &mailboxes);
    context.insert("notice", &session.notice(raw.as_deref()));
    Ok(page_with_status(&state, "admin/mailboxes.html", &context, StatusCode::OK))
}

/// The form's values from a stored mailbox (never its password).
fn mailbox_values(mailbox: &Mailbox) -> Value {
    json!({
        "name": mailbox.name, "email_address": mailbox.email_address, "imap_host": mailbox.imap_host,
        "imap_port": mailbox.imap_port, "imap_security": mailbox.imap_security,
        "imap_username": mailbox.imap_username, "imap_folder": mailbox.imap_folder,
        "is_active": mailbox.is_active, "create_case": mailbox.create_case, "distribution": mailbox.distribution,
        "assign_user_id": mailbox.assign_user_id, "target_team_id": mailbox.target_team_id,
        "target_position": mailbox.target_position, "team_ids": mailbox.team_ids, "auto_reply": mailbox.auto_reply,
        "auto_reply_subject": mailbox.auto_reply_subject, "auto_reply_body": mailbox.auto_reply_body,
        "reply_from_address": mailbox.reply_from_address, "reply_from_name": mailbox.reply_from_name,
        "reply_to_address": mailbox.reply_to_address, "reopen_on_reply": mailbox.reopen_on_reply,
        "create_contacts": mailbox.create_contacts, "max_message_mb": mailbox.max_message_bytes >> 20,
        "version": mailbox.version,
        "fetch_since": mailbox.fetch_since.map(|d| d.to_string()).unwrap_or_default(),
        "smtp_host": mailbox.smtp.as_ref().map(|s| s.host.clone()).unwrap_or_default(),
        "smtp_port": mailbox.smtp.as_ref().map(|s| s.port.to_string()).unwrap_or_default(),
        "smtp_security": mailbox.smtp.as_ref().map(|s| s.security.clone()).unwrap_or_else(|| "starttls".into()),
        "smtp_username": mailbox.smtp.as_ref().and_then(|s| s.username.clone()).unwrap_or_default(),
    })
}

/// The input a submitted form makes, and the values to show again.
fn submitted(form: &FormData, errors: &mut BTreeMap<String, String>) -> (Value, MailboxInput) {
    let number = |field: &str, errors: &mut BTreeMap<String, String>| -> Option<i64> {
        let text = form.get(field).trim();
        if text.is_empty() {
            return None;
        }
        text.parse().map_err(|_| errors.insert(field.to_string(), "must be a whole number".into())).ok()
    };
    let port = number("imap_port", errors).unwrap_or(993);
    let port = u16::try_from(port).unwrap_or_else(|_| {
        errors.insert("imap_port".into(), "1 to 65535".into());
        993
    });
    let max_mb = number("max_message_mb", errors);
    let smtp_port = number("smtp_port", errors).map(|port| {
        u16::try_from(port).unwrap_or_else(|_| {
            errors.insert("smtp_port".into(), "1 to 65535".into());
            587
        })
    });
    let input = MailboxInput {
        name: form.get("name").to_string(),
        email_address: form.get("email_address").to_string(),
        imap_host: form.get("imap_host").to_string(),
        imap_port: port,
        imap_security: form.get("imap_security").to_string(),
        imap_username: form.get("imap_username").to_string(),
        // An empty password field keeps the stored one.
        imap_password: form.optional("imap_password"),
        imap_folder: form.optional("imap_folder").unwrap_or_else(|| "INBOX".into()),
        smtp_host: form.optional("smtp_host"),
        smtp_port,
        smtp_security: form.optional("smtp_security"),
        smtp_username: form.optional("smtp_username"),
        smtp_password: form.optional("smtp_password"),
        is_active: form.checked("is_active"),
        create_case: form.checked("create_case"),
        distribution: form.get("distribution").to_string(),
        assign_user_id: form.optional("assign_user_id"),
        target_team_id: form.optional("target_team_id"),
        target_position: form.optional("target_position"),
        team_ids: form.all("team_ids"),
        auto_reply: form.checked("auto_reply"),
        auto_reply_subject: form.get("auto_reply_subject").replace("\r\n", "\n"),
        auto_reply_body: form.get("auto_reply_body").replace("\r\n", "\n"),
        reply_from_address: form.optional("reply_from_address"),
        reply_from_name: form.optional("reply_from_name"),
        reply_to_address: form.optional("reply_to_address"),
        reopen_on_reply: form.checked("reopen_on_reply"),
        create_contacts: form.checked("create_contacts"),
        max_message_bytes: max_mb.map(|mb| mb.saturating_mul(1 << 20)),
        fetch_since: match form.get("fetch_since").trim() {
            "" => None,
            text => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| errors.insert("fetch_since".into(), "a day like 2026-11-01, or empty".into()))
                .ok(),
        },
        version: number("version", errors),
    };
    let mut values = json!({
        "name": input.name, "email_address": input.email_address, "imap_host": input.imap_host,
        "imap_port": form.get("imap_port"), "imap_security": input.imap_security,
        "imap_username": input.imap_username, "imap_folder": input.imap_folder, "is_active": input.is_active,
        "create_case": input.create_case, "distribution": input.distribution,
        "assign_user_id": input.assign_user_id, "target_team_id": input.target_team_id,
        "target_position": input.target_position, "team_ids": input.team_ids, "auto_reply": input.auto_reply,
        "auto_reply_subject": input.auto_reply_subject, "auto_reply_body": input.auto_reply_body,
        "reply_from_address": input.reply_from_address, "reply_from_name": input.reply_from_name,
        "reply_to_address": input.reply_to_address, "reopen_on_reply": input.reopen_on_reply,
        "create_contacts": input.create_contacts, "max_message_mb": form.get("max_message_mb"),
        "fetch_since": form.get("fetch_since"),
        "smtp_host": form.get("smtp_host"), "smtp_port": form.get("smtp_port"),
        "smtp_security": form.get("smtp_security"), "smtp_username": form.get("smtp_username"),
    });
    values["version"] = json!(input.version);
    (values, input)
}

struct Form<'a> {
    mailbox: Option<&'a Mailbox>,
    values: Value,
    errors: BTreeMap<String, String>,
    notice: Option<String>,
    test: Option<Value>,
}

async fn render_form(
    state: &AppState,
    session: &UiSession,
    form: Form<'_>,
    query: &PageQuery,
    status: StatusCode,
) -> Result<Response, UiError> {
    let all = SimpleFilter { window: Window::new(Some(200), None), ..Default::default() };
    let staff: Vec<Value> = state
        .store
        .list_users(&session.actor, &all)
        .await?
        .items
        .into_iter()
        .filter(|u| u.is_active && matches!(u.user_type, UserType::Admin | UserType::Agent))
        .map(|u| json!({ "id": u.id, "label": format!("{} ({})", u.name, u.username) }))
        .collect();
    let teams: Vec<Value> = state
        .store
        .list_teams(&session.actor, &all)
        .await?
        .items
        .into_iter()
        .map(|t| json!({ "id": t.id, "name": t.name }))
        .collect();
    let assigners: Vec<String> = state
        .store
        .plugins(&session.actor)
        .await?
        .into_iter()
        .filter(|p| p.enabled && p.world == docket_plugins::World::Assigner)
        .map(|p| p.name)
        .collect();
    let mut context = session.context();
    context.insert("mailbox", &form.mailbox);
    context.insert("values", &form.values);
    context.insert("errors", &form.errors);
    context.insert("notice", &form.notice);
    context.insert("test", &form.test);
    context.insert("staff", &staff);
    context.insert("teams", &teams);
    context.insert("distributions", &DISTRIBUTIONS.iter().map(|d| d.to_string()).chain(assigners).collect::<Vec<_>>());
    context.insert("status_filter", &query.status);
    if let Some(mailbox) = form.mailbox {
        let status = Some(query.status.as_str()).filter(|s| !s.is_empty());
        let window = Window::new(Some(MESSAGES_PER_PAGE), Some(query.offset));
        let messages = state.store.inbound_emails(&session.actor, &mailbox.id, status, window).await?;
        context.insert("messages", &messages.items);
        context.insert("total", &messages.total);
        context.insert("offset", &query.offset);
        context.insert("newer_offset", &(query.offset - MESSAGES_PER_PAGE).max(0));
        context.insert("older_offset", &(query.offset + MESSAGES_PER_PAGE));
    }
    Ok(page_with_status(state, "admin/mailbox_form.html", &context, status))
}

async fn new_form(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    let values = json!({
        "name": "", "email_address": "", "imap_host": "", "imap_port": 993, "imap_security": "tls",
        "imap_username": "", "imap_folder": "INBOX", "is_active": true, "create_case": true, "distribution": "direct",
        "assign_user_id": null, "target_team_id": null, "target_position": null, "team_ids": [], "auto_reply": false,
        "auto_reply_subject": "", "auto_reply_body": "", "reply_from_address": null, "reply_from_name": null,
        "reply_to_address": null, "reopen_on_reply": false, "create_contacts": false,
        "max_message_mb": docket_store::DEFAULT_MAX_MESSAGE_BYTES >> 20, "version": null,
        "smtp_host": "", "smtp_port": "", "smtp_security": "starttls", "smtp_username": "", "fetch_since": "",
    });
    let form = Form { mailbox: None, values, errors: BTreeMap::new(), notice: None, test: None };
    render_form(&state, &session, form, &PageQuery::default(), StatusCode::OK).await
}

async fn edit_form(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let mailbox = state.store.mailbox(&session.actor, &id).await?;
    let query = PageQuery::parse(raw.as_deref());
    let form = Form {
        mailbox: Some(&mailbox),
        values: mailbox_values(&mailbox),
        errors: BTreeMap::new(),
        notice: session.notice(raw.as_deref()),
        test: None,
    };
    render_form(&state, &session, form, &query, StatusCode::OK).await
}

async fn create(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    save(state, session, None, body).await
}

async fn update(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    save(state, session, Some(id), body).await
}

async fn save(state: AppState, session: UiSession, id: Option<String>, body: Bytes) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let existing = match &id {
        Some(id) => Some(state.store.mailbox(&session.actor, id).await?),
        None => None,
    };
    let mut errors = BTreeMap::new();
    let (values, input) = submitted(&form, &mut errors);
    if errors.is_empty()
        && let Err(ApiError::Validation { fields, .. }) = check_template(&input)
    {
        errors.extend(fields);
    }
    if errors.is_empty() {
        let result = match &existing {
            Some(mailbox) => state.store.update_mailbox(&session.actor, &mailbox.id, &input).await,
            None => state.store.create_mailbox(&session.actor, &input).await,
        };
        match result {
            Ok(mailbox) => {
                let notice = format!("Mailbox “{}” saved.", mailbox.name);
                return Ok(Redirect::to(
                    &session.notice_location(&format!("/admin/mailboxes/{}", mailbox.id), &notice),
                )
                .into_response());
            }
            Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
            Err(StoreError::VersionConflict { current }) => {
                errors.insert(
                    "form".into(),
                    format!("someone else saved this mailbox meanwhile (now version {current}); reload to see it"),
                );
            }
            Err(other) => return Err(other.into()),
        }
    }
    let form = Form { mailbox: existing.as_ref(), values, errors, notice: None, test: None };
    render_form(&state, &session, form, &PageQuery::default(), StatusCode::UNPROCESSABLE_ENTITY).await
}

/// Connects with the stored settings and shows what happened.
async fn test(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    let mailbox = state.store.mailbox(&session.actor, &id).await?;
    let result = test_mailbox(&state, &session.actor, &id).await?;
    let form = Form {
        mailbox: Some(&mailbox),
        values: mailbox_values(&mailbox),
        errors: BTreeMap::new(),
        notice: None,
        test: Some(json!({ "ok": result.ok, "message": result.message })),
    };
    render_form(&state, &session, form, &PageQuery::default(), StatusCode::OK).await
}

async fn delete(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    let mailbox = state.store.mailbox(&session.actor, &id).await?;
    state.store.delete_mailbox(&session.actor, &id).await?;
    let notice = format!("Mailbox “{}” deleted; its cases stay.", mailbox.name);
    Ok(Redirect::to(&session.notice_location("/admin/mailboxes", &notice)).into_response())
}

async fn retry(
    State(state): State<AppState>,
    session: UiSession,
    Path((id, message)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    let notice = match retry_message(&state, &session.actor, &id, &message).await {
        Ok(outcome) => match outcome.reason() {
            Some(reason) => format!("Retried: {} ({reason}).", outcome.status()),
            None => format!("Retried: {}.", outcome.status()),
        },
        Err(ApiError::Validation { fields, .. }) => {
            format!("Not retried: {}", fields.into_values().collect::<Vec<_>>().join("; "))
        }
        Err(other) => return Err(other.into()),
    };
    Ok(Redirect::to(&session.notice_location(&format!("/admin/mailboxes/{id}#messages"), &notice)).into_response())
}

async fn discard(
    State(state): State<AppState>,
    session: UiSession,
    Path((id, message)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    state.store.discard_inbound_email(&session.actor, &id, &message).await?;
    let location = format!("/admin/mailboxes/{id}#messages");
    Ok(Redirect::to(&session.notice_location(&location, "Message discarded.")).into_response())
}
