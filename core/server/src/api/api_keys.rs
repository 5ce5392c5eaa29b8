//! `/api/v1/api-keys`: keys for integrations. The key is shown once, at
//! creation; only its hash is stored.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use docket_store::ApiKeyRecord;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::secrets::new_api_key;

pub fn router() -> Router<AppState> {
    Router::new().route("/api-keys", get(list).post(create)).route("/api-keys/{id}", delete(revoke))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    /// Whose key: defaults to the caller; others need an admin.
    #[serde(default)]
    user_id: Option<String>,
    name: String,
}

#[derive(Serialize)]
struct CreatedKey {
    #[serde(flatten)]
    record: ApiKeyRecord,
    /// The key itself: shown this once.
    key: String,
}

#[derive(Serialize)]
struct KeyList {
    items: Vec<ApiKeyRecord>,
    total: usize,
}

async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<KeyList>> {
    let items = state.store.list_api_keys(&auth.actor).await?;
    Ok(Json(KeyList { total: items.len(), items }))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(new): ApiJson<NewKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.contains('\0') {
        return Err(ApiError::field("name", "required, at most 100 characters"));
    }
    let user_id = new.user_id.unwrap_or_else(|| auth.actor.user_id.clone());
    // The target must exist and be visible; 404 otherwise.
    state.store.get_user(&auth.actor, &user_id).await?;
    let (key, prefix, hash) = new_api_key();
    let record = state.store.create_api_key(&auth.actor, &user_id, name, &prefix, &hash).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { record, key })))
}

async fn revoke(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.revoke_api_key(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
