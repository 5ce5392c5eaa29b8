//! `/api/v1/plugins`: upload WebAssembly plugins, grant capabilities,
//! configure, enable and disable them, and read their run log (admins).

use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{DefaultBodyLimit, Multipart, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::listing::{Page, Window};
use docket_plugins::{Capability, Grants, Manifest};
use docket_store::{NewPlugin, PluginPatch, PluginRecord, PluginRun};

use super::attachments::multipart_error;
use super::integer;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, query_pairs};

/// The largest component accepted (a Python plugin, which carries its
/// interpreter, is about 20 MB).
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// The request body limit of an upload: the component and a manifest.
pub fn upload_body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_COMPONENT_BYTES + (1 << 20))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins", post(upload).layer(upload_body_limit()).get(list))
        .route("/plugins/{id}", get(show).patch(update).delete(remove))
        .route("/plugins/{id}/runs", get(runs))
}

/// What an upload carries, read from a multipart body.
pub struct Upload {
    pub manifest: Option<String>,
    pub component: Option<Vec<u8>>,
    pub grants: Option<String>,
    pub enabled: bool,
}

/// Reads the parts of an upload: `manifest` (JSON), `component` (the
/// `.wasm` file), and optionally `grants` (a JSON array or a
/// comma-separated list) and `enabled` (`true`).
pub async fn read_upload(multipart: &mut Multipart) -> ApiResult<Upload> {
    let mut upload = Upload { manifest: None, component: None, grants: None, enabled: false };
    while let Some(field) = multipart.next_field().await.map_err(upload_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "component" => upload.component = Some(read_component(field).await?),
            "manifest" => upload.manifest = Some(field.text().await.map_err(upload_error)?),
            "grants" => upload.grants = Some(field.text().await.map_err(upload_error)?),
            "enabled" => {
                upload.enabled = matches!(field.text().await.map_err(upload_error)?.trim(), "true" | "on" | "1")
            }
            other => {
                return Err(ApiError::field(
                    other,
                    "unknown part; send `manifest`, `component`, and optionally `grants` and `enabled`",
                ));
            }
        }
    }
    Ok(upload)
}

/// Reads the `component` part, refusing one larger than
/// [`MAX_COMPONENT_BYTES`].
pub async fn read_component(field: Field<'_>) -> ApiResult<Vec<u8>> {
    let bytes = field.bytes().await.map_err(upload_error)?;
    if bytes.len() > MAX_COMPONENT_BYTES {
        return Err(too_large());
    }
    Ok(bytes.to_vec())
}

/// A multipart error, with the plugin limit named when the body was too
/// large.
pub fn upload_error(error: MultipartError) -> ApiError {
    match multipart_error(error) {
        ApiError::PayloadTooLarge(_) => too_large(),
        other => other,
    }
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!("the component is larger than {} MiB", MAX_COMPONENT_BYTES >> 20))
}

/// `["storage"]` or `storage, read-cases`.
pub fn parse_grants(text: &str) -> ApiResult<Grants> {
    let names: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|e| ApiError::field("grants", format!("not a JSON array: {e}")))?
    } else {
        text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    };
    names
        .iter()
        .map(|name| {
            Capability::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Capability::ALL.iter().map(|c| c.as_str()).collect();
                ApiError::field("grants", format!("unknown capability `{name}`; known: {}", known.join(", ")))
            })
        })
        .collect()
}

impl Upload {
    pub fn into_new_plugin(self) -> ApiResult<NewPlugin> {
        let manifest =
            self.manifest.ok_or_else(|| ApiError::field("manifest", "required: the plugin's manifest.json"))?;
        let manifest = Manifest::parse(&manifest).map_err(|e| ApiError::field("manifest", e.to_string()))?;
        let component = self.component.ok_or_else(|| ApiError::field("component", "required: the .wasm component"))?;
        let grants = match &self.grants {
            Some(text) => parse_grants(text)?,
            None => Grants::new(),
        };
        Ok(NewPlugin { manifest, component, grants, enabled: self.enabled })
    }
}

async fn upload(
    State(state): State<AppState>,
    auth: Auth,
    mut multipart: Multipart,
) -> ApiResult<(StatusCode, Json<PluginRecord>)> {
    let new = read_upload(&mut multipart).await?.into_new_plugin()?;
    Ok((StatusCode::CREATED, Json(state.store.install_plugin(&auth.actor, new).await?)))
}

async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<PluginRecord>>> {
    Ok(Json(state.store.plugins(&auth.actor).await?))
}

async fn show(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<PluginRecord>> {
    Ok(Json(state.store.plugin(&auth.actor, &id).await?))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<PluginPatch>,
) -> ApiResult<Json<PluginRecord>> {
    Ok(Json(state.store.update_plugin(&auth.actor, &id, &patch).await?))
}

async fn remove(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_plugin(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn runs(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<PluginRun>>> {
    let (mut limit, mut offset) = (None, None);
    for (key, value) in query_pairs(raw.as_deref())? {
        match key.as_str() {
            "limit" => limit = Some(integer("limit", &value)?),
            "offset" => offset = Some(integer("offset", &value)?),
            other => return Err(ApiError::field(other, "unknown parameter; allowed: limit, offset")),
        }
    }
    // The plugin must exist (and the actor be an admin) for its log.
    state.store.plugin(&auth.actor, &id).await?;
    Ok(Json(state.store.plugin_runs(&auth.actor, &id, Window::new(limit, offset)).await?))
}
