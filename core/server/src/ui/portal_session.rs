//! Portal sessions: logging in and out of one portal, and the session a
//! portal page runs with.
//!
//! Each portal has its own session. The cookie is named after the portal
//! and sent only to the portal's own paths (`/portal/<slug>`), and the
//! store finds a session only under the portal that opened it, so a
//! session of one portal is worth nothing at another, at the agent pages
//! or at the API. Its actor has the roles of *this* portal merged with the
//! user's own.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use docket_domain::Actor;
use docket_domain::portal::Portal;
use docket_domain::user::UserType;
use docket_domain::user::check_password;
use docket_store::{NewSession, TokenHolder, TokenPurpose};

use super::auth::check_credentials;
use super::render::{UiError, page_with_status};
use super::session::{FormData, csrf_failed, form_token_matches, set_form_token, url_encode};
use crate::app::AppState;
use crate::extract::cookie;
use crate::secrets::{constant_time_eq, hash_password, random_token, sha256_hex};

/// The login form's token cookie (login CSRF), per portal path.
const LOGIN_CSRF_COOKIE: &str = "docket_portal_login";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portal", get(default_portal))
        .route("/portal/", get(default_portal))
        .route("/portal/{slug}/login", get(login_page).post(login))
        .route("/portal/{slug}/logout", post(logout))
        .route("/portal/{slug}/brand.css", get(brand_css))
        .route("/portal/{slug}/password-reset", get(reset_page).post(request_reset))
        .route("/portal/{slug}/password/{token}", get(password_page).post(set_password))
}

/// The session cookie of one portal.
fn cookie_name(portal: &Portal) -> String {
    format!("docket_portal_{}", portal.id)
}

/// `/portal/<slug>`: where every page of the portal lives.
pub fn home(portal: &Portal) -> String {
    format!("/portal/{}", portal.slug)
}

fn session_cookie(state: &AppState, portal: &Portal, token: &str, max_age_secs: i64) -> String {
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    let (name, path) = (cookie_name(portal), home(portal));
    format!("{name}={token}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
}

fn append_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The portal slug of a path: every portal route is `/portal/{slug}/...`.
pub fn slug_in_path(path: &str) -> Option<&str> {
    path.strip_prefix("/portal/").and_then(|rest| rest.split('/').next()).filter(|slug| !slug.is_empty())
}

/// An active portal by its slug; anything else is not found.
pub async fn site(state: &AppState, slug: &str) -> Result<Portal, UiError> {
    state.store.portal_site(Some(slug)).await?.ok_or(UiError::NotFound)
}

/// The logged-in customer of a portal page. Visitors without a session of
/// this portal go to its login page, which brings them back.
#[derive(Clone)]
pub struct PortalSession {
    pub portal: Portal,
    pub actor: Actor,
    pub csrf_token: String,
    pub token_hash: String,
    pub unread: i64,
}

impl FromRequestParts<AppState> for PortalSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let slug = slug_in_path(parts.uri.path()).unwrap_or("");
        let portal = site(state, slug).await.map_err(IntoResponse::into_response)?;
        let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let to_login = Redirect::to(&format!("{}/login?next={}", home(&portal), url_encode(here))).into_response();
        let Some(token) = cookie(&parts.headers, &cookie_name(&portal)) else {
            return Err(to_login);
        };
        let token_hash = sha256_hex(&token);
        let session = match state.store.portal_session(&token_hash, &portal.id).await {
            Ok(Some(session)) => session,
            Ok(None) => return Err(to_login),
            Err(error) => return Err(UiError::from(error).into_response()),
        };
        let unread = state.store.unread_notifications(&session.actor).await.unwrap_or(0);
        Ok(PortalSession { portal, actor: session.actor, csrf_token: session.csrf_token, token_hash, unread })
    }
}

impl PortalSession {
    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), UiError> {
        if self.csrf_matches(form.get("csrf_token")) { Ok(()) } else { Err(csrf_failed()) }
    }

    pub fn csrf_matches(&self, token: &str) -> bool {
        constant_time_eq(token, &self.csrf_token)
    }

    /// What every portal page's layout needs.
    pub fn context(&self) -> tera::Context {
        let mut context = site_context(&self.portal);
        context.insert("me", &serde_json::json!({ "id": self.actor.user_id, "username": self.actor.username }));
        context.insert("csrf_token", &self.csrf_token);
        context.insert("unread", &self.unread);
        context
    }
}

/// The portal's name, paths and branding, for its layout.
pub fn site_context(portal: &Portal) -> tera::Context {
    let mut context = tera::Context::new();
    let branding = &portal.branding;
    let title = if branding.title.trim().is_empty() { portal.name.as_str() } else { branding.title.as_str() };
    let language = if branding.language.is_empty() { "en" } else { branding.language.as_str() };
    context.insert(
        "portal",
        &serde_json::json!({
            "name": portal.name,
            "title": title,
            "home": home(portal),
            "logo_url": branding.logo_url,
            "language": language,
        }),
    );
    context.insert("errors", &std::collections::BTreeMap::<String, String>::new());
    context
}

/// `/portal`: the default portal.
async fn default_portal(State(state): State<AppState>) -> Result<Response, UiError> {
    let portal = state.store.portal_site(None).await?.ok_or(UiError::NotFound)?;
    Ok(Redirect::to(&format!("{}/", home(&portal))).into_response())
}

/// The portal's colour as a style sheet: the pages' security policy allows
/// no inline styles. The colour was checked to be `#rrggbb` when saved.
async fn brand_css(State(state): State<AppState>, Path(slug): Path<String>) -> Result<Response, UiError> {
    let portal = site(&state, &slug).await?;
    let css = match &portal.branding.primary_color {
        Some(color) => format!(":root {{ --brand: {color}; }}\n"),
        None => String::new(),
    };
    Ok(([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], css).into_response())
}

#[derive(serde::Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: Option<String>,
    /// Set after a password was chosen from an emailed link.
    #[serde(default)]
    password_set: Option<String>,
}

/// Only pages of this portal are followed after login.
fn portal_next(portal: &Portal, next: &str) -> String {
    let local = super::session::safe_next(next);
    let prefix = format!("{}/", home(portal));
    if local.starts_with(&prefix) { local } else { prefix }
}

async fn login_page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<NextQuery>,
) -> Result<Response, UiError> {
    let portal = site(&state, &slug).await?;
    let notice = query.password_set.is_some().then_some("Your password is set. Log in with it.");
    Ok(render_login(&state, &portal, query.next.as_deref().unwrap_or(""), "", Message::notice(notice)))
}

/// What the login page says above its form.
enum Message<'a> {
    None,
    Notice(&'a str),
    Error(&'a str),
}

impl<'a> Message<'a> {
    fn notice(text: Option<&'a str>) -> Message<'a> {
        text.map_or(Message::None, Message::Notice)
    }
}

fn render_login(state: &AppState, portal: &Portal, next: &str, username: &str, message: Message<'_>) -> Response {
    let token = random_token();
    let mut context = site_context(portal);
    context.insert("login_token", &token);
    context.insert("next", &portal_next(portal, next));
    context.insert("username", username);
    let (error, notice) = match message {
        Message::None => (None, None),
        Message::Notice(text) => (None, Some(text)),
        Message::Error(text) => (Some(text), None),
    };
    context.insert("error", &error);
    context.insert("notice", &notice);
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    let mut response = page_with_status(state, "portal/login.html", &context, status);
    set_form_token(state, &mut response, LOGIN_CSRF_COOKIE, &format!("{}/login", home(portal)), &token);
    response
}

async fn login(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    let portal = site(&state, &slug).await?;
    let form = FormData::parse(&body)?;
    let next = portal_next(&portal, form.get("next"));
    let username = form.get("username").trim().to_string();
    if !form_token_matches(&headers, LOGIN_CSRF_COOKIE, &form) {
        let message = "Your login form expired. Please try again.";
        return Ok(render_login(&state, &portal, &next, &username, Message::Error(message)));
    }
    let user = match check_credentials(&state, &peer.ip().to_string(), &username, form.get("password")).await? {
        Ok(user) => user,
        Err(refusal) => {
            let (message, status) = refusal.message();
            let mut response = render_login(&state, &portal, &next, &username, Message::Error(&message));
            if response.status() == StatusCode::UNAUTHORIZED {
                *response.status_mut() = status;
            }
            return Ok(response);
        }
    };
    if user.user_type != UserType::Portal {
        let message = "Staff sign in on the agent login page, not in the portal.";
        return Ok(render_login(&state, &portal, &next, &username, Message::Error(message)));
    }
    // A session token the browser brought is never kept (session
    // fixation): it is ended, and a fresh one issued.
    if let Some(old) = cookie(&headers, &cookie_name(&portal)) {
        state.store.delete_session(&sha256_hex(&old)).await?;
    }
    let (token, csrf_token) = (random_token(), random_token());
    let token_hash = sha256_hex(&token);
    let expires_at = Utc::now() + chrono::Duration::hours(state.config.session_hours);
    let session = NewSession {
        user_id: &user.id,
        token_hash: &token_hash,
        csrf_token: &csrf_token,
        expires_at,
        portal_id: Some(&portal.id),
    };
    match state.store.create_session(&session).await {
        Ok(()) => {}
        Err(docket_store::StoreError::Forbidden(_)) => {
            let message = "This account does not use this portal. Please contact support.";
            return Ok(render_login(&state, &portal, &next, &username, Message::Error(message)));
        }
        Err(other) => return Err(other.into()),
    }
    let mut response = Redirect::to(&next).into_response();
    append_cookie(&mut response, &session_cookie(&state, &portal, &token, state.config.session_hours * 3600));
    Ok(response)
}

async fn logout(State(state): State<AppState>, session: PortalSession, body: Bytes) -> Result<Response, UiError> {
    session.check_csrf(&FormData::parse(&body)?)?;
    state.store.delete_session(&session.token_hash).await?;
    let mut response = Redirect::to(&format!("{}/login", home(&session.portal))).into_response();
    append_cookie(&mut response, &session_cookie(&state, &session.portal, "", 0));
    Ok(response)
}

/// The "forgot your password" form; `sent` once a request went through.
fn render_reset(state: &AppState, portal: &Portal, sent: bool, error: Option<&str>, status: StatusCode) -> Response {
    let token = random_token();
    let mut context = site_context(portal);
    context.insert("login_token", &token);
    context.insert("sent", &sent);
    context.insert("error", &error);
    let mut response = page_with_status(state, "portal/password_reset.html", &context, status);
    set_form_token(state, &mut response, LOGIN_CSRF_COOKIE, &format!("{}/password-reset", home(portal)), &token);
    response
}

async fn reset_page(State(state): State<AppState>, Path(slug): Path<String>) -> Result<Response, UiError> {
    let portal = site(&state, &slug).await?;
    Ok(render_reset(&state, &portal, false, None, StatusCode::OK))
}

/// Queues a reset email when the username or address names one customer.
/// The answer is the same either way: it does not tell who has an account.
async fn request_reset(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    let portal = site(&state, &slug).await?;
    let form = FormData::parse(&body)?;
    if !form_token_matches(&headers, LOGIN_CSRF_COOKIE, &form) {
        let message = "The form expired. Please try again.";
        return Ok(render_reset(&state, &portal, false, Some(message), StatusCode::UNPROCESSABLE_ENTITY));
    }
    let login = form.get("login").trim().to_lowercase();
    let address = peer.ip().to_string();
    // Each request counts, so nobody fills a customer's inbox.
    if let Err(wait) = state.reset_limiter.check(&address, &login) {
        let message = format!("Too many requests. Try again in {} minutes.", wait.div_ceil(60));
        return Ok(render_reset(&state, &portal, false, Some(&message), StatusCode::TOO_MANY_REQUESTS));
    }
    state.reset_limiter.record_failure(&address, &login);
    state.store.request_password_reset(&login, &portal.id).await?;
    state.jobs_wakeup.notify_one();
    Ok(render_reset(&state, &portal, true, None, StatusCode::OK))
}

fn render_password(
    state: &AppState,
    portal: &Portal,
    token: &str,
    holder: Option<&TokenHolder>,
    errors: &docket_domain::ValidationErrors,
    status: StatusCode,
) -> Response {
    let mut context = site_context(portal);
    context.insert("token", token);
    context.insert("username", &holder.map(|h| h.username.as_str()));
    context.insert("invitation", &holder.is_some_and(|h| h.purpose == TokenPurpose::Invitation));
    context.insert("password_min", &docket_domain::user::PASSWORD_MIN);
    context.insert("errors", &errors.fields);
    page_with_status(state, "portal/password.html", &context, status)
}

/// The page an emailed link opens: choose a password, or learn that the
/// link expired or was used.
async fn password_page(
    State(state): State<AppState>,
    Path((slug, token)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let portal = site(&state, &slug).await?;
    let holder = state.store.user_token(&sha256_hex(&token)).await?;
    let status = if holder.is_some() { StatusCode::OK } else { StatusCode::NOT_FOUND };
    Ok(render_password(&state, &portal, &token, holder.as_ref(), &Default::default(), status))
}

async fn set_password(
    State(state): State<AppState>,
    Path((slug, token)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, UiError> {
    let portal = site(&state, &slug).await?;
    let form = FormData::parse(&body)?;
    let token_hash = sha256_hex(&token);
    let Some(holder) = state.store.user_token(&token_hash).await? else {
        return Ok(render_password(&state, &portal, &token, None, &Default::default(), StatusCode::NOT_FOUND));
    };
    let mut errors = docket_domain::ValidationErrors::new();
    let password = form.get("password");
    check_password(&mut errors, password);
    if password != form.get("confirm_password") {
        errors.add("confirm_password", "does not match the password");
    }
    if !errors.is_empty() {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(render_password(&state, &portal, &token, Some(&holder), &errors, status));
    }
    let hash = hash_password(password.to_string()).await?;
    match state.store.set_password_with_token(&token_hash, &hash).await {
        Ok(_) => Ok(Redirect::to(&format!("{}/login?password_set=1", home(&portal))).into_response()),
        // Used meanwhile (a second submission): the link is spent.
        Err(docket_store::StoreError::NotFound) => {
            Ok(render_password(&state, &portal, &token, None, &Default::default(), StatusCode::NOT_FOUND))
        }
        Err(other) => Err(other.into()),
    }
}
