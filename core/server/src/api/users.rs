//! `/api/v1/users`: people and integrations (admins manage them).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::listing::Page;
use docket_domain::user::{NewUser, User, UserPatch};

use super::{expected_version, simple_filter};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::secrets::hash_password;

pub fn router() -> Router<AppState> {
    Router::new().route("/users", post(create).get(list)).route("/users/{id}", get(show).patch(update).delete(remove))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(mut new): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    if !auth.actor.is_admin() {
        return Err(ApiError::Forbidden("only admins may create users".into()));
    }
    new.validate()?;
    let hash = match new.password.take() {
        Some(password) => Some(hash_password(password).await?),
        None => None,
    };
    Ok((StatusCode::CREATED, Json(state.store.create_user(&auth.actor, &new, hash).await?)))
}

async fn list(State(state): State<AppState>, auth: Auth, RawQuery(raw): RawQuery) -> ApiResult<Json<Page<User>>> {
    let filter = simple_filter(raw.as_deref(), &[])?;
    Ok(Json(state.store.list_users(&auth.actor, &filter).await?))
}

async fn show(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<User>> {
    Ok(Json(state.store.get_user(&auth.actor, &id).await?))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(mut patch): ApiJson<UserPatch>,
) -> ApiResult<Json<User>> {
    if !auth.actor.is_admin() {
        // Reading first keeps "not found" for users the caller cannot see.
        state.store.get_user(&auth.actor, &id).await?;
        return Err(ApiError::Forbidden("only admins may edit users".into()));
    }
    patch.validate()?;
    patch.version = expected_version(patch.version, &headers)?;
    let hash = match patch.password.take() {
        Some(password) => Some(hash_password(password).await?),
        None => None,
    };
    Ok(Json(state.store.update_user(&auth.actor, &id, &patch, hash).await?))
}

async fn remove(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_user(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
