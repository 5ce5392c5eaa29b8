//! `/api/v1/web-forms/{slug}`: a portal's public case form as a JSON
//! endpoint, for the snippet other sites embed. No login: the spam
//! defences are in [`crate::web_form`]. Browsers may call it from the
//! portal's allowed origins only (CORS); a request from any other page is
//! refused before anything is read.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use docket_domain::portal::Portal;
use serde_json::json;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::web_form::{Received, body_limit, origin_allowed, receive};

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/web-forms/{slug}", post(submit).options(preflight).layer(DefaultBodyLimit::max(body_limit(state))))
}

async fn form_portal(state: &AppState, slug: &str) -> ApiResult<Portal> {
    match state.store.portal_site(Some(slug)).await? {
        Some(portal) if portal.web_form.enabled => Ok(portal),
        _ => Err(ApiError::NotFound),
    }
}

/// The page's origin, when a browser sent one, and whether it may post.
fn check_origin(state: &AppState, portal: &Portal, headers: &HeaderMap) -> ApiResult<Option<HeaderValue>> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(None) };
    let text = origin.to_str().unwrap_or_default();
    if origin_allowed(state, portal, text) {
        Ok(Some(origin.clone()))
    } else {
        Err(ApiError::Forbidden(format!("pages of {text} may not post to this form; an admin can allow the site")))
    }
}

fn allow(response: &mut Response, origin: Option<HeaderValue>) {
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
}

/// CORS preflight: which pages may call, with what.
async fn preflight(State(state): State<AppState>, Path(slug): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let portal = form_portal(&state, &slug).await?;
    let origin = check_origin(&state, &portal, &headers)?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    allow(&mut response, origin);
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    Ok(response)
}

/// A submission (multipart: `name`, `email`, `subject`, `description`,
/// `file`s): 201 with the case number.
async fn submit(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    multipart: Multipart,
) -> ApiResult<Response> {
    let portal = form_portal(&state, &slug).await?;
    let origin = check_origin(&state, &portal, &headers)?;
    let thanks = "Thank you: we received your request and emailed you a confirmation.";
    let mut response = match receive(&state, &portal, peer.ip(), multipart).await.1 {
        Ok(Received::Case(case)) => {
            (StatusCode::CREATED, Json(json!({"number": case.number, "message": thanks}))).into_response()
        }
        Ok(Received::Ignored) => (StatusCode::CREATED, Json(json!({"message": thanks}))).into_response(),
        // Errors carry the CORS header too, so the embedding page can read
        // them (which field, or how long to wait).
        Err(error) => error.into_response(),
    };
    allow(&mut response, origin);
    Ok(response)
}
