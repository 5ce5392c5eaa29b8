//! Admin pages for outbound email (SMTP settings, the stream email
//! template, a connection test) and the job queue (failures, retry).

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use docket_domain::listing::Window;
use docket_email::SmtpSettings;
use serde_json::json;

use super::admin::require_admin;
use super::render::{UiError, page, page_with_status};
use super::session::{FormData, UiSession};
use crate::api::email_settings::{store_smtp, store_template};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::query_pairs;
use crate::mail::{EmailTemplate, notification_template, smtp_settings};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/email", get(email_page))
        .route("/admin/email/smtp", post(save_smtp))
        .route("/admin/email/test", post(test_smtp))
        .route("/admin/email/template", post(save_template))
        .route("/admin/jobs", get(jobs))
        .route("/admin/jobs/{id}/retry", post(retry))
}

/// Validation errors of the API helpers become form errors.
fn form_errors(error: ApiError) -> Result<BTreeMap<String, String>, UiError> {
    match error {
        ApiError::Validation { fields, .. } => Ok(fields),
        ApiError::Forbidden(message) => Err(UiError::Forbidden(message)),
        other => {
            tracing::error!(error = %other, "saving email settings");
            Err(UiError::Internal)
        }
    }
}

async fn render(
    state: &AppState,
    session: &UiSession,
    smtp_form: Option<serde_json::Value>,
    template: Option<EmailTemplate>,
    errors: BTreeMap<String, String>,
    message: Option<String>,
) -> Result<Response, UiError> {
    let smtp = match smtp_form {
        Some(form) => form,
        None => match smtp_settings(state).await {
            Some(s) => {
                json!({"host": s.host, "port": s.port, "security": s.security, "username": s.username.unwrap_or_default(),
                              "password_set": s.password.is_some(), "from_address": s.from_address, "from_name": s.from_name.unwrap_or_default()})
            }
            None => {
                json!({"host": "", "port": 587, "security": "starttls", "username": "", "password_set": false, "from_address": "", "from_name": ""})
            }
        },
    };
    let failed = !errors.is_empty();
    let mut context = session.context();
    context.insert("smtp", &smtp);
    context.insert("template", &template.unwrap_or(notification_template(state).await));
    context.insert("errors", &errors);
    context.insert("message", &message);
    context.insert("delay", &state.config.email_delay_secs);
    let status = if failed { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(page_with_status(state, "admin/email.html", &context, status))
}

async fn email_page(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    render(&state, &session, None, None, BTreeMap::new(), None).await
}

async fn save_smtp(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let port = form.get("port").trim().parse::<u16>();
    let settings = SmtpSettings {
        host: form.get("host").trim().to_string(),
        port: *port.as_ref().unwrap_or(&0),
        security: form.get("security").to_string(),
        username: form.optional("username"),
        password: form.optional("password"),
        from_address: form.get("from_address").trim().to_string(),
        from_name: form.optional("from_name"),
    };
    let echo = json!({"host": settings.host, "port": form.get("port"), "security": settings.security,
                      "username": form.get("username"), "password_set": false,
                      "from_address": settings.from_address, "from_name": form.get("from_name")});
    if port.is_err() {
        let errors = BTreeMap::from([("port".to_string(), "must be a number from 1 to 65535".to_string())]);
        return render(&state, &session, Some(echo), None, errors, None).await;
    }
    match store_smtp(&state, &session.actor, settings).await {
        Ok(_) => render(&state, &session, None, None, BTreeMap::new(), Some("SMTP settings saved.".into())).await,
        Err(error) => render(&state, &session, Some(echo), None, form_errors(error)?, None).await,
    }
}

async fn test_smtp(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    require_admin(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    let message = match smtp_settings(&state).await {
        None => "No SMTP server is configured yet.".to_string(),
        Some(settings) => match docket_email::test_connection(&settings).await {
            Ok(()) => format!("Connected to {}:{}.", settings.host, settings.port),
            Err(error) => format!("Could not connect: {error}"),
        },
    };
    render(&state, &session, None, None, BTreeMap::new(), Some(message)).await
}

async fn save_template(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let template = if form.checked("reset") {
        EmailTemplate::default()
    } else {
        EmailTemplate { subject: form.get("subject").to_string(), body: form.get("body").to_string() }
    };
    match store_template(&state, &session.actor, template.clone()).await {
        Ok(_) => render(&state, &session, None, None, BTreeMap::new(), Some("Template saved.".into())).await,
        Err(error) => render(&state, &session, None, Some(template), form_errors(error)?, None).await,
    }
}

async fn jobs(State(state): State<AppState>, session: UiSession, RawQuery(raw): RawQuery) -> Result<Response, UiError> {
    require_admin(&session)?;
    let pairs = query_pairs(raw.as_deref()).map_err(|_| UiError::NotFound)?;
    let status = pairs
        .iter()
        .find(|(k, _)| k == "status")
        .map(|(_, v)| v.clone())
        .filter(|v| ["queued", "running", "done", "failed"].contains(&v.as_str()));
    let list = state.store.list_jobs(&session.actor, status.as_deref(), Window::new(Some(100), None)).await?;
    let items: Vec<serde_json::Value> = list
        .items
        .iter()
        .map(|j| json!({"id": j.id, "kind": j.kind, "status": j.status, "attempts": j.attempts, "max_attempts": j.max_attempts,
                         "run_at": j.run_at.format("%Y-%m-%d %H:%M:%S").to_string(), "last_error": j.last_error,
                         "created_at": j.created_at.format("%Y-%m-%d %H:%M:%S").to_string()}))
        .collect();
    let mut context = session.context();
    context.insert("jobs", &items);
    context.insert("total", &list.total);
    context.insert("status", &status.unwrap_or_default());
    Ok(page(&state, "admin/jobs.html", &context))
}

async fn retry(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    state.store.retry_job(&session.actor, &id).await?;
    state.jobs_wakeup.notify_waiters();
    Ok(Redirect::to("/admin/jobs?status=failed").into_response())
}
