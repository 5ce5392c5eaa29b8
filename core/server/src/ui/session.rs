//! Browser sessions for the UI: the logged-in user, the CSRF check on
//! every form post, and form bodies.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use docket_domain::Actor;

use super::render::UiError;
use crate::app::AppState;
use crate::extract::{SESSION_COOKIE, cookie};
use crate::secrets::{constant_time_eq, sha256_hex, sign};

/// The logged-in user of a page. Anonymous visitors are sent to the login
/// page, which brings them back afterwards.
#[derive(Clone)]
pub struct UiSession {
    pub actor: Actor,
    pub csrf_token: String,
    pub token_hash: String,
    /// The helpdesk's name from the general settings, for the layout.
    pub helpdesk_name: String,
    /// Unread notifications, for the header badge.
    pub unread: i64,
}

impl FromRequestParts<AppState> for UiSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let to_login = || {
            let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let next: String = url_encode(here);
            Redirect::to(&format!("/login?next={next}")).into_response()
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        let token_hash = sha256_hex(&token);
        match state.store.session(&token_hash).await {
            Ok(Some(session)) if session.actor.is_portal() => {
                Err(UiError::Forbidden("Customers use the portal; the agent area is for staff.".into()).into_response())
            }
            Ok(Some(session)) => {
                let helpdesk_name = match state.store.setting(super::admin::HELPDESK_NAME).await {
                    Ok(Some(serde_json::Value::String(name))) => name,
                    _ => "Docket".to_string(),
                };
                let unread = state.store.unread_notifications(&session.actor).await.unwrap_or(0);
                Ok(UiSession {
                    actor: session.actor,
                    csrf_token: session.csrf_token,
                    token_hash,
                    helpdesk_name,
                    unread,
                })
            }
            Ok(None) => Err(to_login()),
            Err(error) => Err(UiError::from(error).into_response()),
        }
    }
}

impl UiSession {
    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), UiError> {
        if self.csrf_matches(form.get("csrf_token")) { Ok(()) } else { Err(csrf_failed()) }
    }

    /// Whether a form's token (read from a multipart body, where the
    /// token field comes first) is this session's.
    pub fn csrf_matches(&self, token: &str) -> bool {
        constant_time_eq(token, &self.csrf_token)
    }

    /// `location` with a notice for the page it leads to.
    pub fn notice_location(&self, location: &str, notice: &str) -> String {
        self.message_location(location, "notice", notice)
    }

    /// The notice in a page's query string, if this session wrote it.
    pub fn notice(&self, raw_query: Option<&str>) -> Option<String> {
        self.message(raw_query, "notice")
    }

    /// `location` with a message for the page it leads to, as the query
    /// parameter `name`. The message is signed with a key of this session
    /// (the hash of its token, which never reaches the browser), so a link
    /// made elsewhere cannot put its own words inside Docket's pages.
    pub fn message_location(&self, location: &str, name: &str, text: &str) -> String {
        let (path, fragment) = match location.find('#') {
            Some(at) => location.split_at(at),
            None => (location, ""),
        };
        let separator = if path.contains('?') { '&' } else { '?' };
        let signature = sign(&self.token_hash, &format!("{name}\n{text}"));
        format!("{path}{separator}{name}={}&{name}_sig={signature}{fragment}", url_encode(text))
    }

    /// The message `name` in a page's query string, if this session signed
    /// it; anything else is ignored.
    pub fn message(&self, raw_query: Option<&str>, name: &str) -> Option<String> {
        let pairs = crate::extract::query_pairs(raw_query).unwrap_or_default();
        let find = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, value)| value.as_str());
        let (text, signature) = (find(name)?, find(&format!("{name}_sig"))?);
        let expected = sign(&self.token_hash, &format!("{name}\n{text}"));
        constant_time_eq(signature, &expected).then(|| text.to_string())
    }

    /// What every page's layout needs to know about the user.
    pub fn context(&self) -> tera::Context {
        let mut context = tera::Context::new();
        context.insert(
            "me",
            &serde_json::json!({
                "id": self.actor.user_id,
                "username": self.actor.username,
                "is_admin": self.actor.is_admin(),
            }),
        );
        context.insert("csrf_token", &self.csrf_token);
        context.insert("helpdesk_name", &self.helpdesk_name);
        context.insert("unread", &self.unread);
        // Forms override this; pages without errors need it defined.
        context.insert("errors", &std::collections::BTreeMap::<String, String>::new());
        context
    }
}

/// A url-encoded form body: every field, repeated ones kept in order.
#[derive(Debug, Default)]
pub struct FormData {
    pairs: Vec<(String, String)>,
}

impl FormData {
    pub fn parse(body: &[u8]) -> Result<FormData, UiError> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map(|pairs| FormData { pairs })
            .map_err(|_| UiError::Forbidden("The form could not be read.".into()))
    }

    /// The first value of a field, or "".
    pub fn get(&self, name: &str) -> &str {
        self.pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str()).unwrap_or("")
    }

    /// A trimmed value, `None` when empty.
    pub fn optional(&self, name: &str) -> Option<String> {
        let value = self.get(name).trim();
        if value.is_empty() { None } else { Some(value.to_string()) }
    }

    /// Every non-empty value of a repeated field (checkboxes, multi-selects).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(key, value)| key == name && !value.is_empty()).map(|(_, v)| v.clone()).collect()
    }

    pub fn checked(&self, name: &str) -> bool {
        matches!(self.get(name), "on" | "true" | "1")
    }
}

/// What admin list pages read from their query string: a `status` filter
/// and the page's `offset`. (Notices are read by `UiSession::notice`.)
#[derive(Debug, Default)]
pub struct PageQuery {
    pub status: String,
    pub offset: i64,
}

impl PageQuery {
    /// Unknown or malformed parameters are ignored: these are links the
    /// pages make themselves.
    pub fn parse(raw: Option<&str>) -> PageQuery {
        let mut query = PageQuery::default();
        for (key, value) in crate::extract::query_pairs(raw).unwrap_or_default() {
            match key.as_str() {
                "status" => query.status = value,
                "offset" => query.offset = value.parse::<i64>().unwrap_or(0).max(0),
                _ => {}
            }
        }
        query
    }
}

/// Gives a public form (a login or password-reset page, where there is no
/// session yet) a token that must come back with it and match the cookie
/// `name`, sent only to the form's `path`: no other site can submit the
/// form in a visitor's name (login CSRF).
pub fn set_form_token(state: &AppState, response: &mut Response, name: &str, path: &str, token: &str) {
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{name}={token}; Path={path}; HttpOnly; SameSite=Strict; Max-Age=3600{secure}");
    if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
        response.headers_mut().append(axum::http::header::SET_COOKIE, value);
    }
}

/// Whether a public form's `login_token` field matches its cookie `name`.
pub fn form_token_matches(headers: &axum::http::HeaderMap, name: &str, form: &FormData) -> bool {
    let expected = crate::extract::cookie(headers, name).unwrap_or_default();
    !expected.is_empty() && constant_time_eq(form.get("login_token"), &expected)
}

/// The refusal of a form whose CSRF token is missing or not the session's.
pub fn csrf_failed() -> UiError {
    UiError::Forbidden(
        "This form expired or did not come from Docket (CSRF check failed). Go back, reload and try again.".into(),
    )
}

/// Percent-encodes a path for a query parameter.
pub fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Only local paths are followed after login, never another site.
pub fn safe_next(next: &str) -> String {
    // Browsers drop tabs and newlines from URLs, so "/\t/evil" would become
    // "//evil": no whitespace or control characters at all.
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_whitespace() || c.is_control());
    if local { next.to_string() } else { "/".to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_never_leaves_the_site() {
        assert_eq!(safe_next("/cases/4"), "/cases/4");
        assert_eq!(safe_next("//evil.example/x"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next("/\t/evil.example"), "/");
        assert_eq!(safe_next("/\n/evil.example"), "/");
    }

    #[test]
    fn forms_keep_repeated_fields() {
        let form = FormData::parse(b"team_ids=a&team_ids=b&name=+x+&empty=").expect("form");
        assert_eq!(form.all("team_ids"), vec!["a", "b"]);
        assert_eq!(form.optional("name").as_deref(), Some("x"));
        assert_eq!(form.optional("empty"), None);
    }
}
