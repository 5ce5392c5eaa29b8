//! Login, logout and password change pages.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::Utc;
use docket_domain::user::check_password;
use docket_store::{LoginUser, NewSession};

use super::render::{UiError, page, page_with_status};
use super::session::{FormData, UiSession, form_token_matches, safe_next, set_form_token};
use crate::api::session_cookie;
use crate::app::AppState;
use crate::secrets::{hash_password, random_token, sha256_hex, verify_password};

/// A login form carries a token that must match this cookie (login CSRF:
/// nobody can log a victim into an account of theirs).
const LOGIN_CSRF_COOKIE: &str = "docket_login";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/password", get(password_page).post(change_password))
}

#[derive(serde::Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

async fn login_page(State(state): State<AppState>, Query(query): Query<NextQuery>) -> Response {
    render_login(&state, query.next.as_deref().unwrap_or("/"), "", None)
}

fn render_login(state: &AppState, next: &str, username: &str, error: Option<&str>) -> Response {
    let token = random_token();
    let mut context = tera::Context::new();
    context.insert("login_token", &token);
    context.insert("next", &safe_next(next));
    context.insert("username", username);
    context.insert("error", &error);
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    let mut response = page_with_status(state, "login.html", &context, status);
    set_form_token(state, &mut response, LOGIN_CSRF_COOKIE, "/login", &token);
    response
}

/// Why a login page refuses a username and password.
pub(super) enum Refusal {
    /// Too many failures: wait this many seconds.
    TooMany(u64),
    Invalid,
    Deactivated,
}

impl Refusal {
    /// The page's words, and its status.
    pub(super) fn message(&self) -> (String, StatusCode) {
        match self {
            Refusal::TooMany(wait) => (
                format!("Too many failed logins. Try again in {} minutes.", wait.div_ceil(60)),
                StatusCode::TOO_MANY_REQUESTS,
            ),
            Refusal::Invalid => ("Invalid username or password.".into(), StatusCode::UNAUTHORIZED),
            Refusal::Deactivated => {
                ("This account is deactivated. Ask an administrator or support.".into(), StatusCode::UNAUTHORIZED)
            }
        }
    }
}

/// Checks a username and password for a login page (the agents' and each
/// portal's), with the failed-login limit of `address`.
pub(super) async fn check_credentials(
    state: &AppState,
    address: &str,
    username: &str,
    password: &str,
) -> Result<Result<LoginUser, Refusal>, UiError> {
    if let Err(wait) = state.login_limiter.check(address, username) {
        return Ok(Err(Refusal::TooMany(wait)));
    }
    let user =
        if username.contains('\0') || username.len() > 256 { None } else { state.store.login_user(username).await? };
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    // Verified even for unknown users, so timing does not reveal them.
    let valid = verify_password(password.to_string(), hash).await;
    let Some(user) = user.filter(|_| valid) else {
        state.login_limiter.record_failure(address, username);
        return Ok(Err(Refusal::Invalid));
    };
    if !user.is_active {
        return Ok(Err(Refusal::Deactivated));
    }
    state.login_limiter.record_success(address, username);
    Ok(Ok(user))
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    let form = FormData::parse(&body)?;
    let next = safe_next(form.get("next"));
    let username = form.get("username").trim().to_string();
    if !form_token_matches(&headers, LOGIN_CSRF_COOKIE, &form) {
        return Ok(render_login(&state, &next, &username, Some("Your login form expired. Please try again.")));
    }
    let user = match check_credentials(&state, &peer.ip().to_string(), &username, form.get("password")).await? {
        Ok(user) => user,
        Err(refusal) => {
            let (message, status) = refusal.message();
            let mut response = render_login(&state, &next, &username, Some(&message));
            // The login page renders (401) or is the 500 page; only the
            // former takes the refusal's status.
            if response.status() == StatusCode::UNAUTHORIZED {
                *response.status_mut() = status;
            }
            return Ok(response);
        }
    };
    if user.user_type == docket_domain::user::UserType::Portal {
        return Ok(render_login(&state, &next, &username, Some("Customers sign in through the portal.")));
    }
    let token = random_token();
    let expires_at = Utc::now() + chrono::Duration::hours(state.config.session_hours);
    let (token_hash, csrf_token) = (sha256_hex(&token), random_token());
    let session =
        NewSession { user_id: &user.id, token_hash: &token_hash, csrf_token: &csrf_token, expires_at, portal_id: None };
    state.store.create_session(&session).await?;
    let mut response = Redirect::to(&next).into_response();
    let cookie = session_cookie(&token, state.config.session_hours * 3600, state.config.secure_cookies);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn logout(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    session.check_csrf(&FormData::parse(&body)?)?;
    state.store.delete_session(&session.token_hash).await?;
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&session_cookie("", 0, state.config.secure_cookies)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn password_page(State(state): State<AppState>, session: UiSession) -> Response {
    page(&state, "password.html", &session.context())
}

async fn change_password(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let mut errors = docket_domain::ValidationErrors::new();
    let new_password = form.get("new_password");
    check_password(&mut errors, new_password);
    if new_password != form.get("confirm_password") {
        errors.add("confirm_password", "does not match the new password");
    }
    let user = state.store.login_user(&session.actor.username).await?.ok_or(UiError::NotFound)?;
    if !verify_password(form.get("current_password").to_string(), user.password_hash).await {
        errors.add("current_password", "does not match your current password");
    }
    let mut context = session.context();
    if errors.is_empty() {
        let hash = hash_password(new_password.to_string()).await?;
        state.store.change_password(&session.actor.user_id, &hash, Some(&session.token_hash)).await?;
        context.insert("saved", &true);
        return Ok(page(&state, "password.html", &context));
    }
    context.insert("errors", &errors.fields);
    Ok(page_with_status(&state, "password.html", &context, StatusCode::UNPROCESSABLE_ENTITY))
}
