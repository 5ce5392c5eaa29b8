//! `/api/v1/contacts`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::contact::{Contact, ContactPatch, NewContact};
use docket_domain::listing::Page;

use super::{expected_version, simple_filter};
use crate::app::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/contacts", post(create).get(list))
        .route("/contacts/{id}", get(show).patch(update).delete(remove))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(new): ApiJson<NewContact>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_contact(&auth.actor, &new).await?)))
}

async fn list(State(state): State<AppState>, auth: Auth, RawQuery(raw): RawQuery) -> ApiResult<Json<Page<Contact>>> {
    let filter = simple_filter(raw.as_deref(), &["account_id"])?;
    Ok(Json(state.store.list_contacts(&auth.actor, &filter).await?))
}

async fn show(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Contact>> {
    Ok(Json(state.store.get_contact(&auth.actor, &id).await?))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(mut patch): ApiJson<ContactPatch>,
) -> ApiResult<Json<Contact>> {
    patch.version = expected_version(patch.version, &headers)?;
    Ok(Json(state.store.update_contact(&auth.actor, &id, &patch).await?))
}

async fn remove(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_contact(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
