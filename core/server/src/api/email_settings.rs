//! `/api/v1/settings/smtp`, `/api/v1/settings/email-template` and
//! `/api/v1/jobs`: outbound email and the job queue (admins only).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::listing::{Page, Window};
use docket_email::SmtpSettings;
use docket_store::Job;
use serde::Serialize;

use super::integer;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, query_pairs};
use crate::mail::{EmailTemplate, NOTIFICATION_TEMPLATE, SMTP_SETTINGS, notification_template, smtp_settings};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/smtp", get(show_smtp).put(save_smtp))
        .route("/settings/smtp/test", post(test_smtp))
        .route("/settings/email-template", get(show_template).put(save_template))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}/retry", post(retry))
}

fn require_admin(auth: &Auth) -> ApiResult<()> {
    if auth.actor.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only admins manage email settings and jobs".into()))
    }
}

/// SMTP settings as shown: the password never leaves the server again.
#[derive(Serialize)]
pub struct SmtpView {
    pub host: String,
    pub port: u16,
    pub security: String,
    pub username: Option<String>,
    pub password_set: bool,
    pub from_address: String,
    pub from_name: Option<String>,
}

impl From<SmtpSettings> for SmtpView {
    fn from(s: SmtpSettings) -> Self {
        SmtpView {
            host: s.host,
            port: s.port,
            security: s.security,
            username: s.username,
            password_set: s.password.is_some(),
            from_address: s.from_address,
            from_name: s.from_name,
        }
    }
}

async fn show_smtp(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Option<SmtpView>>> {
    require_admin(&auth)?;
    Ok(Json(smtp_settings(&state).await.map(SmtpView::from)))
}

/// Saves SMTP settings; an absent password keeps the stored one.
pub async fn store_smtp(
    state: &AppState,
    actor: &docket_domain::Actor,
    mut settings: SmtpSettings,
) -> ApiResult<SmtpView> {
    settings.validate().map_err(|(field, message)| ApiError::field(&field, message))?;
    if settings.password.as_deref().is_none_or(str::is_empty) {
        // The stored password is only ever sent to the server it was
        // entered for: a new host, port or user needs it typed again.
        settings.password = smtp_settings(state)
            .await
            .filter(|old| old.host == settings.host && old.port == settings.port && old.username == settings.username)
            .and_then(|old| old.password);
    }
    let value = serde_json::to_value(&settings).map_err(|e| ApiError::Internal(e.into()))?;
    state.store.set_setting(actor, SMTP_SETTINGS, &value).await?;
    Ok(SmtpView::from(settings))
}

async fn save_smtp(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(settings): ApiJson<SmtpSettings>,
) -> ApiResult<Json<SmtpView>> {
    require_admin(&auth)?;
    Ok(Json(store_smtp(&state, &auth.actor, settings).await?))
}

#[derive(Serialize)]
struct TestResult {
    ok: bool,
    message: String,
}

async fn test_smtp(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<TestResult>> {
    require_admin(&auth)?;
    let Some(settings) = smtp_settings(&state).await else {
        return Err(ApiError::field("host", "no SMTP server is configured yet"));
    };
    Ok(Json(match docket_email::test_connection(&settings).await {
        Ok(()) => TestResult { ok: true, message: format!("connected to {}:{}", settings.host, settings.port) },
        Err(error) => TestResult { ok: false, message: error.to_string() },
    }))
}

async fn show_template(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<EmailTemplate>> {
    require_admin(&auth)?;
    Ok(Json(notification_template(&state).await))
}

/// Saves the stream email template once it renders with example data.
pub async fn store_template(
    state: &AppState,
    actor: &docket_domain::Actor,
    template: EmailTemplate,
) -> ApiResult<EmailTemplate> {
    template.validate().map_err(|message| {
        let field = if message.starts_with("subject") { "subject" } else { "body" };
        ApiError::field(field, message)
    })?;
    let value = serde_json::to_value(&template).map_err(|e| ApiError::Internal(e.into()))?;
    state.store.set_setting(actor, NOTIFICATION_TEMPLATE, &value).await?;
    Ok(template)
}

async fn save_template(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(template): ApiJson<EmailTemplate>,
) -> ApiResult<Json<EmailTemplate>> {
    require_admin(&auth)?;
    Ok(Json(store_template(&state, &auth.actor, template).await?))
}

async fn jobs(State(state): State<AppState>, auth: Auth, RawQuery(raw): RawQuery) -> ApiResult<Json<Page<Job>>> {
    let (mut status, mut limit, mut offset) = (None, None, None);
    for (key, value) in query_pairs(raw.as_deref())? {
        match key.as_str() {
            "status" if ["queued", "running", "done", "failed"].contains(&value.as_str()) => status = Some(value),
            "status" => return Err(ApiError::field("status", "one of queued, running, done, failed")),
            "limit" => limit = Some(integer("limit", &value)?),
            "offset" => offset = Some(integer("offset", &value)?),
            other => return Err(ApiError::field(other, "unknown parameter; allowed: status, limit, offset")),
        }
    }
    Ok(Json(state.store.list_jobs(&auth.actor, status.as_deref(), Window::new(limit, offset)).await?))
}

async fn retry(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.retry_job(&auth.actor, &id).await?;
    state.jobs_wakeup.notify_waiters();
    Ok(StatusCode::NO_CONTENT)
}
