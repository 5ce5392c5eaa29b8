//! Request extractors: the authenticated actor, JSON bodies with precise
//! errors, and query strings.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use docket_domain::Actor;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::ApiError;
use crate::secrets::{constant_time_eq, sha256_hex};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "docket_session";
/// Header browsers send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated user of a request, by API key or session cookie.
/// Requests with a session cookie that change state must carry the
/// session's CSRF token; API-key requests need none (no browser sends
/// them on its own).
pub struct Auth {
    pub actor: Actor,
    /// The hash of the session token, for cookie sessions.
    pub session_hash: Option<String>,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(key) = api_key(&parts.headers) {
            let actor = state
                .store
                .actor_by_api_key(&sha256_hex(&key))
                .await?
                .ok_or_else(|| ApiError::Unauthorized("invalid or revoked API key".into()))?;
            return Ok(Auth { actor, session_hash: None });
        }
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(ApiError::Unauthorized(
                "authentication required: send an API key (Authorization: Bearer ...) or log in".into(),
            ));
        };
        let hash = sha256_hex(&token);
        let session = state
            .store
            .session(&hash)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("your session has expired; log in again".into()))?;
        if !is_safe(&parts.method) {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !constant_time_eq(sent, &session.csrf_token) {
                return Err(ApiError::Forbidden("missing or invalid CSRF token (X-CSRF-Token header)".into()));
            }
        }
        Ok(Auth { actor: session.actor, session_hash: Some(hash) })
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn api_key(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let mut parts = value.splitn(2, ' ');
        if parts.next().is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer")) {
            return parts.next().map(|key| key.trim().to_string());
        }
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string())
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// A JSON body, with errors in the contract's shape: malformed JSON is a
/// 400 that says where; a well-formed body of the wrong shape is a 422
/// naming the field (unknown fields included); too large is a 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !content_type.starts_with("application/json") {
            return Err(ApiError::UnsupportedMediaType("expected a JSON body (Content-Type: application/json)".into()));
        }
        let bytes = read_limited(request, state.config.max_json_bytes).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Reads a body of at most `limit` bytes. A larger one is read on (and
/// dropped) up to a bound before answering 413, so that clients still
/// sending get the answer instead of a reset connection.
async fn read_limited(request: Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    use futures::StreamExt;
    let too_large = || ApiError::PayloadTooLarge(format!("the request body is larger than {limit} bytes"));
    let drain_bound = limit.saturating_mul(8).max(8 * 1024 * 1024);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > drain_bound) {
        return Err(too_large());
    }
    let mut stream = request.into_body().into_data_stream();
    let mut body = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
        seen += chunk.len();
        if seen <= limit {
            body.extend_from_slice(&chunk);
        } else if seen > drain_bound {
            break;
        }
    }
    if seen > limit { Err(too_large()) } else { Ok(body) }
}

/// Parses JSON into `T`, turning serde's errors into the contract's.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => ApiError::BadRequest(format!("malformed JSON: {inner}")),
            serde_json::error::Category::Data => field_error(&path, &inner.to_string()),
        }
    })?;
    deserializer.end().map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Names the field a data error is about: the path, or for unknown and
/// missing fields the field itself.
fn field_error(path: &str, message: &str) -> ApiError {
    // serde's messages end in " at line L column C"; the field says where.
    let message = message.split(" at line ").next().unwrap_or(message).to_string();
    // For unknown fields the path already ends in the field's name; for
    // missing ones it names the enclosing object.
    let (field, text) = if message.starts_with("missing field") {
        let name = message.split('`').nth(1).unwrap_or_default();
        let field = if path == "." { name.to_string() } else { format!("{path}.{name}") };
        (field, "required".to_string())
    } else if path == "." {
        ("body".to_string(), message)
    } else {
        (path.to_string(), message)
    };
    ApiError::field(&field, text)
}

/// The pairs of a query string, in order (keys may repeat).
/// NUL characters are refused: no filter means anything by them, and
/// PostgreSQL rejects them in text.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))?;
    if let Some((key, _)) = pairs.iter().find(|(key, value)| key.contains('\0') || value.contains('\0')) {
        return Err(ApiError::field(key, "must not contain NUL characters"));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use docket_domain::case::NewCase;

    fn fields(error: ApiError) -> std::collections::BTreeMap<String, String> {
        match error {
            ApiError::Validation { fields, .. } => fields,
            other => panic!("expected validation, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        let unknown = parse_json::<NewCase>(br#"{"name":"x","nmae":"y"}"#).expect_err("unknown field");
        assert!(fields(unknown)["nmae"].starts_with("unknown field"));
        let missing = parse_json::<NewCase>(br#"{}"#).expect_err("missing");
        assert_eq!(fields(missing)["name"], "required");
        let bad_enum = parse_json::<NewCase>(br#"{"name":"x","status":"Open"}"#).expect_err("enum");
        assert!(fields(bad_enum)["status"].contains("Closed"));
        let wrong_type = parse_json::<NewCase>(br#"{"name":42}"#).expect_err("type");
        assert!(fields(wrong_type).contains_key("name"));
        assert!(matches!(parse_json::<NewCase>(b"{\"name\":"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse_json::<NewCase>(br#"{"name":"x"} trailing"#), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; docket_session=tok; b=2".parse().expect("header"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
