//! The web UI: server-rendered tera pages for agents (`/`) and admins
//! (`/admin`). Forms work without JavaScript; every state-changing form
//! carries the session's CSRF token.

mod admin;
mod admin_email;
mod admin_mailboxes;
mod admin_plugins;
mod admin_portals;
mod admin_rules;
mod auth;
mod cases;
mod kb;
mod portal;
mod portal_form;
mod portal_session;
mod records;
mod render;
mod session;
mod stream;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

pub use render::{Templates, render_error_pages};

/// The 404 page, for paths no route matches.
pub fn not_found_page() -> axum::response::Response {
    render::UiError::NotFound.into_response()
}

use crate::app::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(cases::router(state))
        .merge(records::router())
        .merge(stream::router(state))
        .merge(admin::router())
        .merge(admin_email::router())
        .merge(admin_rules::router())
        .merge(admin_plugins::router())
        .merge(admin_mailboxes::router())
        .merge(admin_portals::router())
        .merge(kb::router(state))
        .merge(portal_session::router())
        .merge(portal::router(state))
        .merge(portal_form::router(state))
        .route("/static/docket.css", get(css))
        .route("/static/docket.js", get(js))
        .route("/static/docket-form.js", get(form_js))
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")],
        include_str!("../../../ui/static/docket.css"),
    )
}

/// The script of the form other sites embed.
async fn form_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")],
        include_str!("../../../ui/static/docket-form.js"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")],
        include_str!("../../../ui/static/docket.js"),
    )
}
