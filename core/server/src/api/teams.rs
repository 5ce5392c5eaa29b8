//! `/api/v1/teams`: teams and their members (admins manage them).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::listing::Page;
use docket_domain::team::{NewTeam, Team, TeamPatch};

use super::{expected_version, simple_filter};
use crate::app::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth};

pub fn router() -> Router<AppState> {
    Router::new().route("/teams", post(create).get(list)).route("/teams/{id}", get(show).patch(update).delete(remove))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(new): ApiJson<NewTeam>,
) -> ApiResult<(StatusCode, Json<Team>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_team(&auth.actor, &new).await?)))
}

async fn list(State(state): State<AppState>, auth: Auth, RawQuery(raw): RawQuery) -> ApiResult<Json<Page<Team>>> {
    let filter = simple_filter(raw.as_deref(), &[])?;
    Ok(Json(state.store.list_teams(&auth.actor, &filter).await?))
}

async fn show(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Team>> {
    Ok(Json(state.store.get_team(&auth.actor, &id).await?))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(mut patch): ApiJson<TeamPatch>,
) -> ApiResult<Json<Team>> {
    patch.version = expected_version(patch.version, &headers)?;
    Ok(Json(state.store.update_team(&auth.actor, &id, &patch).await?))
}

async fn remove(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_team(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
