//! The REST API under `/api/v1`: one module per resource, each with its
//! own router and request types.

mod accounts;
mod api_keys;
pub mod attachments;
mod cases;
mod contacts;
pub mod email_settings;
mod kb;
pub mod mailboxes;
pub mod plugins;
mod portals;
mod roles;
pub mod rules;
mod session;
mod stream;
mod teams;
mod users;
mod web_forms;

pub use session::session_cookie;

use axum::Router;
use axum::http::StatusCode;
use docket_domain::listing::{SimpleFilter, SimpleSortField, Window, parse_sort};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::query_pairs;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(cases::router())
        .merge(accounts::router())
        .merge(contacts::router())
        .merge(users::router())
        .merge(teams::router())
        .merge(roles::router())
        .merge(portals::router())
        .merge(kb::router())
        .merge(attachments::router(state))
        .merge(session::router())
        .merge(api_keys::router())
        .merge(stream::router())
        .merge(email_settings::router())
        .merge(rules::router())
        .merge(plugins::router())
        .merge(mailboxes::router())
        .merge(web_forms::router(state))
        .method_not_allowed_fallback(method_not_allowed)
}

async fn method_not_allowed() -> (StatusCode, axum::Json<serde_json::Value>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({
            "error": { "status": 405, "code": "method_not_allowed", "message": "this method is not allowed here" }
        })),
    )
}

/// Parses an integer query parameter.
fn integer(name: &str, value: &str) -> ApiResult<i64> {
    value.trim().parse().map_err(|_| ApiError::field(name, "must be an integer"))
}

/// `limit`/`offset`, `q` and `account_id` for the simple lists; any other
/// parameter is an error that lists the allowed ones.
fn simple_filter(raw: Option<&str>, allowed_extra: &[&str]) -> ApiResult<SimpleFilter> {
    let mut filter = SimpleFilter::default();
    let (mut limit, mut offset) = (None, None);
    for (key, value) in query_pairs(raw)? {
        match key.as_str() {
            "limit" => limit = Some(integer("limit", &value)?),
            "offset" => offset = Some(integer("offset", &value)?),
            "q" => filter.q = Some(value),
            "sort" => {
                let sort =
                    parse_sort(&value, &SimpleSortField::ALL).map_err(|message| ApiError::field("sort", message))?;
                filter.sort = Some(sort);
            }
            "account_id" if allowed_extra.contains(&"account_id") => filter.account_id = Some(value),
            other => {
                let mut allowed = vec!["limit", "offset", "q", "sort"];
                allowed.extend_from_slice(allowed_extra);
                return Err(ApiError::field(other, format!("unknown parameter; allowed: {}", allowed.join(", "))));
            }
        }
    }
    filter.window = Window::new(limit, offset);
    Ok(filter)
}

/// The version a client expects: the body's `version`, else `If-Match`.
fn expected_version(body: Option<i64>, headers: &axum::http::HeaderMap) -> ApiResult<Option<i64>> {
    if body.is_some() {
        return Ok(body);
    }
    match headers.get(axum::http::header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        Some(value) => {
            let trimmed = value.trim().trim_start_matches("W/").trim_matches('"');
            trimmed.parse().map(Some).map_err(|_| ApiError::field("If-Match", "must be the record's version number"))
        }
        None => Ok(None),
    }
}
