//! The one error type of the HTTP surface, rendered as the contract's
//! `{"error": {...}}` shape. Internal errors are logged, never shown.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use docket_domain::ValidationErrors;
use docket_store::StoreError;
use serde_json::json;

pub type ApiResult<T> = Result<T, ApiError>;

/// An error and its causes on one line ("a: b: c"), for messages that
/// must say what really failed (template and configuration errors).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict { message: String, current_version: Option<i64> },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Validation { message: String, fields: BTreeMap<String, String> },
    /// A rule refused the change (`case.before_save`).
    #[error("{message}")]
    Rejected { rule: String, message: String },
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation { .. } | ApiError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Validation { .. } => "validation",
            ApiError::Rejected { .. } => "rejected_by_rule",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Internal(_) => "internal",
        }
    }

    /// A validation error on one field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::from(ValidationErrors::single(field, message))
    }

    fn message(&self) -> String {
        match self {
            ApiError::NotFound => "not found".to_string(),
            // Never the cause: it may hold SQL, paths or secrets.
            ApiError::Internal(_) => "internal error; the server log has the details".to_string(),
            other => other.to_string(),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::Validation { message: format!("invalid input: {}", errors.summary()), fields: errors.fields }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Forbidden(message) => ApiError::Forbidden(message),
            StoreError::VersionConflict { current } => ApiError::Conflict {
                message: format!(
                    "someone else changed this record; it is now at version {current}. Reload it and apply your change again"
                ),
                current_version: Some(current),
            },
            StoreError::Duplicate(message) => ApiError::Conflict { message, current_version: None },
            StoreError::Invalid(errors) => ApiError::from(errors),
            StoreError::Rejected { rule, message } => ApiError::Rejected { rule, message },
            StoreError::Conflict(message) => ApiError::Conflict { message, current_version: None },
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = ?cause, "internal error");
        }
        let mut body = json!({ "status": status.as_u16(), "code": self.code(), "message": self.message() });
        match &self {
            ApiError::Validation { fields, .. } => body["fields"] = json!(fields),
            ApiError::Rejected { rule, .. } => body["rule"] = json!(rule),
            ApiError::Conflict { current_version: Some(version), .. } => body["current_version"] = json!(version),
            _ => {}
        }
        let mut response = (status, axum::Json(json!({ "error": body }))).into_response();
        if let ApiError::RateLimited { retry_after_secs, .. } = &self
            && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let ApiError::Unauthorized(_) = &self {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
