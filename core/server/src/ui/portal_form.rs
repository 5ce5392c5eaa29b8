//! The portal's public case form page (`/portal/<slug>/form`): no login,
//! works without JavaScript, keeps what the visitor typed when something
//! must be corrected. The work is in [`crate::web_form`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use docket_domain::portal::{Portal, WebFormInput};

use super::portal_session::{site, site_context};
use super::render::{UiError, page_with_status};
use crate::app::AppState;
use crate::error::ApiError;
use crate::web_form::{MAX_FILES, Received, body_limit, receive};

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/portal/{slug}/form", get(form_page).post(submit).layer(DefaultBodyLimit::max(body_limit(state))))
}

async fn form_portal(state: &AppState, slug: &str) -> Result<Portal, UiError> {
    let portal = site(state, slug).await?;
    if portal.web_form.enabled { Ok(portal) } else { Err(UiError::NotFound) }
}

fn render(
    state: &AppState,
    portal: &Portal,
    values: &WebFormInput,
    errors: &BTreeMap<String, String>,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    let mut context = site_context(portal);
    context.insert("values", values);
    context.insert("errors", errors);
    context.insert("message", &message);
    context.insert("max_files", &MAX_FILES);
    page_with_status(state, "portal/web_form.html", &context, status)
}

async fn form_page(State(state): State<AppState>, Path(slug): Path<String>) -> Result<Response, UiError> {
    let portal = form_portal(&state, &slug).await?;
    Ok(render(&state, &portal, &WebFormInput::default(), &BTreeMap::new(), None, StatusCode::OK))
}

async fn submit(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    multipart: Multipart,
) -> Result<Response, UiError> {
    let portal = form_portal(&state, &slug).await?;
    let (values, result) = receive(&state, &portal, peer.ip(), multipart).await;
    let (errors, message, status) = match result {
        Ok(received) => {
            let mut context = site_context(&portal);
            let number = match received {
                Received::Case(case) => Some(case.number),
                Received::Ignored => None,
            };
            context.insert("number", &number);
            return Ok(page_with_status(&state, "portal/web_form_done.html", &context, StatusCode::OK));
        }
        Err(ApiError::Validation { fields, .. }) => (fields, None, StatusCode::UNPROCESSABLE_ENTITY),
        Err(ApiError::RateLimited { message, .. }) => {
            (BTreeMap::new(), Some(capitalised(&message)), StatusCode::TOO_MANY_REQUESTS)
        }
        Err(ApiError::Rejected { message, .. }) => (BTreeMap::new(), Some(message), StatusCode::UNPROCESSABLE_ENTITY),
        Err(other) => return Err(other.into()),
    };
    Ok(render(&state, &portal, &values, &errors, message, status))
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
