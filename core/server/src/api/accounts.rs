//! `/api/v1/accounts`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::account::{Account, AccountPatch, NewAccount};
use docket_domain::listing::Page;

use super::{expected_version, simple_filter};
use crate::app::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts", post(create).get(list))
        .route("/accounts/{id}", get(show).patch(update).delete(remove))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(new): ApiJson<NewAccount>,
) -> ApiResult<(StatusCode, Json<Account>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_account(&auth.actor, &new).await?)))
}

async fn list(State(state): State<AppState>, auth: Auth, RawQuery(raw): RawQuery) -> ApiResult<Json<Page<Account>>> {
    let filter = simple_filter(raw.as_deref(), &[])?;
    Ok(Json(state.store.list_accounts(&auth.actor, &filter).await?))
}

async fn show(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Account>> {
    Ok(Json(state.store.get_account(&auth.actor, &id).await?))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(mut patch): ApiJson<AccountPatch>,
) -> ApiResult<Json<Account>> {
    patch.version = expected_version(patch.version, &headers)?;
    Ok(Json(state.store.update_account(&auth.actor, &id, &patch).await?))
}

async fn remove(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_account(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
