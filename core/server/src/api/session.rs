//! `/api/v1/auth` (login, logout) and `/api/v1/me` (the caller, their
//! password and preferences).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use docket_domain::preferences::Preferences;
use docket_domain::user::{User, check_password};
use docket_store::NewSession;
use serde::Deserialize;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, SESSION_COOKIE};
use crate::secrets::{hash_password, random_token, sha256_hex, verify_password};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/me", get(me))
        .route("/me/password", post(change_password))
        .route("/me/preferences", get(preferences).put(set_preferences))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

/// What a successful login answers: the user and the CSRF token the
/// browser must send back on every state-changing request.
#[derive(serde::Serialize)]
struct LoggedIn {
    user: User,
    csrf_token: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(login): ApiJson<Login>,
) -> ApiResult<Response> {
    let address = peer.ip().to_string();
    if login.username.contains('\0') || login.username.len() > 256 {
        return Err(ApiError::Unauthorized("invalid username or password".into()));
    }
    if let Err(wait) = state.login_limiter.check(&address, &login.username) {
        return Err(ApiError::RateLimited {
            message: format!("too many failed logins; try again in {} minutes", wait.div_ceil(60)),
            retry_after_secs: wait,
        });
    }
    let user = state.store.login_user(&login.username).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    // Verified even for unknown users, so timing does not reveal them.
    let valid = verify_password(login.password, hash).await;
    let Some(user) = user.filter(|_| valid) else {
        state.login_limiter.record_failure(&address, &login.username);
        return Err(ApiError::Unauthorized("invalid username or password".into()));
    };
    if !user.is_active {
        return Err(ApiError::Forbidden("this account is deactivated; ask an administrator".into()));
    }
    state.login_limiter.record_success(&address, &login.username);
    let token = random_token();
    let csrf_token = random_token();
    let expires_at = Utc::now() + chrono::Duration::hours(state.config.session_hours);
    let token_hash = sha256_hex(&token);
    let session =
        NewSession { user_id: &user.id, token_hash: &token_hash, csrf_token: &csrf_token, expires_at, portal_id: None };
    state.store.create_session(&session).await?;
    let actor = state.store.actor(&user.id).await?.ok_or(ApiError::Unauthorized("account unavailable".into()))?;
    let user = state.store.get_user(&actor, &user.id).await?;
    let cookie = session_cookie(&token, state.config.session_hours * 3600, state.config.secure_cookies);
    let mut response = Json(LoggedIn { user, csrf_token }).into_response();
    set_cookie(&mut response, &cookie)?;
    Ok(response)
}

async fn logout(State(state): State<AppState>, auth: Auth) -> ApiResult<Response> {
    if let Some(hash) = &auth.session_hash {
        state.store.delete_session(hash).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_cookie(&mut response, &session_cookie("", 0, state.config.secure_cookies))?;
    Ok(response)
}

/// The session cookie: HttpOnly (no script reads it), SameSite=Lax (no
/// cross-site form posts carry it), Secure behind HTTPS.
pub fn session_cookie(token: &str, max_age_secs: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
}

fn set_cookie(response: &mut Response, cookie: &str) -> ApiResult<()> {
    let value = HeaderValue::from_str(cookie).map_err(|e| ApiError::Internal(e.into()))?;
    response.headers_mut().append(header::SET_COOKIE, value);
    Ok(())
}

async fn me(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<User>> {
    Ok(Json(state.store.get_user(&auth.actor, &auth.actor.user_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password; their other sessions end.
async fn change_password(
    State(state): State<AppState>,
    auth: Auth,
    _headers: HeaderMap,
    ApiJson(change): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    let mut errors = docket_domain::ValidationErrors::new();
    check_password(&mut errors, &change.new_password);
    if let Some(message) = errors.fields.remove("password") {
        errors.add("new_password", message);
    }
    errors.into_result()?;
    let user = state
        .store
        .login_user(&auth.actor.username)
        .await?
        .ok_or(ApiError::Unauthorized("account unavailable".into()))?;
    if !verify_password(change.current_password, user.password_hash).await {
        return Err(ApiError::field("current_password", "does not match your current password"));
    }
    let hash = hash_password(change.new_password).await?;
    state.store.change_password(&auth.actor.user_id, &hash, auth.session_hash.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn preferences(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Preferences>> {
    Ok(Json(state.store.preferences(&auth.actor).await?))
}

async fn set_preferences(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(preferences): ApiJson<Preferences>,
) -> ApiResult<Json<Preferences>> {
    preferences.validate()?;
    Ok(Json(state.store.set_preferences(&auth.actor, &preferences).await?))
}
