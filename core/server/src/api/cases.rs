//! `/api/v1/cases`: the case records and their streams.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::case::{Case, CasePatch, CasePriority, CaseStatus, CaseType, NewCase};
use docket_domain::listing::{CaseFilter, CaseSortField, Page, Window, parse_sort};
use docket_domain::note::Note;
use std::sync::atomic::Ordering;

use super::{expected_version, integer};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, query_pairs};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cases", post(create).get(list))
        .route("/cases/by-number/{number}", get(by_number))
        .route("/cases/{id}", get(show).patch(update).delete(remove))
        .route("/cases/{id}/stream", get(stream))
        .route("/cases/{id}/close", post(close))
        .route("/cases/{id}/reject", post(reject))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
    ApiJson(mut new): ApiJson<NewCase>,
) -> ApiResult<(StatusCode, Json<Case>)> {
    new.silent = silent(raw.as_deref())?;
    let draft = new.validate()?;
    let case = state.store.create_case(&auth.actor, draft).await?;
    state.metrics.cases_created.fetch_add(1, Ordering::Relaxed);
    Ok((StatusCode::CREATED, Json(case)))
}

async fn list(State(state): State<AppState>, auth: Auth, RawQuery(raw): RawQuery) -> ApiResult<Json<Page<Case>>> {
    let filter = case_filter(raw.as_deref(), &auth.actor.user_id)?;
    Ok(Json(state.store.list_cases(&auth.actor, &filter).await?))
}

async fn show(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Case>> {
    Ok(Json(state.store.get_case(&auth.actor, &id).await?))
}

async fn by_number(State(state): State<AppState>, auth: Auth, Path(number): Path<String>) -> ApiResult<Json<Case>> {
    let number: i64 = number.trim_start_matches('#').parse().map_err(|_| ApiError::NotFound)?;
    Ok(Json(state.store.get_case_by_number(&auth.actor, number).await?))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    ApiJson(mut patch): ApiJson<CasePatch>,
) -> ApiResult<Json<Case>> {
    patch.version = expected_version(patch.version, &headers)?;
    patch.silent = silent(raw.as_deref())?;
    Ok(Json(state.store.update_case(&auth.actor, &id, &patch).await?))
}

async fn remove(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let files = state.store.delete_case(&auth.actor, &id).await?;
    super::attachments::remove_files(&state, &files).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn stream(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<Note>>> {
    let filter = super::simple_filter(raw.as_deref(), &[])?;
    Ok(Json(state.store.case_stream(&auth.actor, &id, filter.window).await?))
}

/// `?silent=true`: save without stream notes or notifications (imports,
/// migrations). Admins only; any other parameter is an error.
fn silent(raw: Option<&str>) -> ApiResult<bool> {
    let mut silent = false;
    for (key, value) in query_pairs(raw)? {
        match (key.as_str(), value.as_str()) {
            ("silent", "true" | "1") => silent = true,
            ("silent", "false" | "0") => silent = false,
            ("silent", _) => return Err(ApiError::field("silent", "must be true or false")),
            (other, _) => return Err(ApiError::field(other, "unknown parameter; allowed: silent")),
        }
    }
    Ok(silent)
}

/// Optional body of the Close and Reject actions.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    version: Option<i64>,
}

async fn close(
    state: State<AppState>,
    auth: Auth,
    id: Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Case>> {
    finish(state, auth, id, headers, body, CaseStatus::Closed).await
}

async fn reject(
    state: State<AppState>,
    auth: Auth,
    id: Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Case>> {
    finish(state, auth, id, headers, body, CaseStatus::Rejected).await
}

/// Close and Reject exist for open cases only (`domain.md`).
async fn finish(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
    status: CaseStatus,
) -> ApiResult<Json<Case>> {
    let body: ActionBody = if body.is_empty() { ActionBody::default() } else { crate::extract::parse_json(&body)? };
    let case = state.store.get_case(&auth.actor, &id).await?;
    if !case.status.is_open() {
        return Err(ApiError::Conflict {
            message: format!("case #{} is already {}", case.number, case.status.as_str()),
            current_version: Some(case.version),
        });
    }
    let patch = CasePatch {
        status: Some(status),
        version: Some(expected_version(body.version, &headers)?.unwrap_or(case.version)),
        ..Default::default()
    };
    Ok(Json(state.store.update_case(&auth.actor, &id, &patch).await?))
}

/// Reads the case list's query string; `assigned_user_id=me` means the
/// caller. Unknown parameters and values are errors that list what is
/// allowed.
fn case_filter(raw: Option<&str>, me: &str) -> ApiResult<CaseFilter> {
    let mut filter = CaseFilter::default();
    let (mut limit, mut offset) = (None, None);
    let mut errors = docket_domain::ValidationErrors::new();
    for (key, value) in query_pairs(raw)? {
        match key.as_str() {
            "status" => {
                // Both `status=New&status=Pending` and `status=New,Pending`.
                for part in value.split(',').filter(|p| !p.is_empty()) {
                    match CaseStatus::parse(part) {
                        Ok(status) => filter.statuses.push(status),
                        Err(message) => errors.add("status", message),
                    }
                }
            }
            "open" => match value.as_str() {
                "true" | "1" => filter.open = Some(true),
                "false" | "0" => filter.open = Some(false),
                _ => errors.add("open", "must be true or false"),
            },
            "closed" => match value.as_str() {
                "true" | "1" => filter.open = Some(false),
                "false" | "0" => filter.open = Some(true),
                _ => errors.add("closed", "must be true or false"),
            },
            "priority" => {
                for part in value.split(',').filter(|p| !p.is_empty()) {
                    match CasePriority::parse(part) {
                        Ok(priority) => filter.priorities.push(priority),
                        Err(message) => errors.add("priority", message),
                    }
                }
            }
            "type" => match CaseType::parse(&value) {
                Ok(case_type) => filter.case_type = Some(case_type),
                Err(message) => errors.add("type", message),
            },
            "assigned_user_id" => {
                filter.assigned_user_id = Some(if value == "me" { me.to_string() } else { value });
            }
            "team_id" => filter.team_id = Some(value),
            "account_id" => filter.account_id = Some(value),
            "contact_id" => filter.contact_id = Some(value),
            "q" => {
                if value.chars().count() > 200 {
                    errors.add("q", "at most 200 characters");
                }
                filter.q = Some(value);
            }
            "sort" => match parse_sort(&value, &CaseSortField::ALL) {
                Ok(sort) => filter.sort = sort,
                Err(message) => errors.add("sort", message),
            },
            "limit" => limit = Some(integer("limit", &value)?),
            "offset" => offset = Some(integer("offset", &value)?),
            other => errors.add(
                other,
                "unknown parameter; allowed: status, open, closed, priority, type, assigned_user_id, team_id, \
                 account_id, contact_id, q, sort, limit, offset",
            ),
        }
    }
    errors.into_result()?;
    filter.window = Window::new(limit, offset);
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_filter_reads_the_contract() {
        let filter = case_filter(
            Some("status=New&status=Pending,Assigned&open=true&assigned_user_id=me&q=%25x&sort=-created_at&limit=5000"),
            "u1",
        )
        .expect("valid");
        assert_eq!(filter.statuses, vec![CaseStatus::New, CaseStatus::Pending, CaseStatus::Assigned]);
        assert_eq!(filter.open, Some(true));
        assert_eq!(filter.assigned_user_id.as_deref(), Some("u1"));
        assert_eq!(filter.q.as_deref(), Some("%x"));
        assert!(filter.sort.descending);
        assert_eq!(filter.window.limit, 200);
    }

    #[test]
    fn case_filter_rejects_what_it_does_not_know() {
        match case_filter(Some("status=Open&stauts=New&sort=password"), "u1") {
            Err(ApiError::Validation { fields, .. }) => {
                assert!(fields["status"].contains("New, Assigned"));
                assert!(fields.contains_key("stauts"));
                assert!(fields["sort"].contains("number"));
            }
            other => panic!("expected validation error, got {other:?}"),
        }
    }
}
