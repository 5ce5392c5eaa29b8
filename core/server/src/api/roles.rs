//! `/api/v1/roles`: permission levels per record kind (admins only).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::listing::Page;
use docket_domain::user::{NewRole, Role, RolePatch};

use super::expected_version;
use crate::app::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth};

pub fn router() -> Router<AppState> {
    Router::new().route("/roles", post(create).get(list)).route("/roles/{id}", get(show).patch(update).delete(remove))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(new): ApiJson<NewRole>,
) -> ApiResult<(StatusCode, Json<Role>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_role(&auth.actor, &new).await?)))
}

async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Page<Role>>> {
    Ok(Json(state.store.list_roles(&auth.actor).await?))
}

async fn show(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Role>> {
    Ok(Json(state.store.get_role(&auth.actor, &id).await?))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(mut patch): ApiJson<RolePatch>,
) -> ApiResult<Json<Role>> {
    patch.version = expected_version(patch.version, &headers)?;
    Ok(Json(state.store.update_role(&auth.actor, &id, &patch).await?))
}

async fn remove(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_role(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
