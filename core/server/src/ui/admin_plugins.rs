//! Admin pages for WebAssembly plugins: the list with an upload form, and
//! a page per plugin to grant capabilities, configure, set limits, enable
//! or disable it, and read its run log.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use docket_domain::listing::Window;
use docket_plugins::{Capability, Grants, Limits, LimitsOverride};
use docket_store::{PluginPatch, PluginRecord, StoreError};
use serde_json::{Value, json};

use super::admin::require_admin;
use super::render::{UiError, page_with_status};
use super::session::{FormData, PageQuery, UiSession, csrf_failed};
use crate::api::plugins::{Upload, read_component, upload_body_limit, upload_error};
use crate::app::AppState;
use crate::error::ApiError;

/// Runs shown per page of a plugin's log.
const RUNS_PER_PAGE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/plugins", get(list).post(upload).layer(upload_body_limit()))
        .route("/admin/plugins/{id}", get(show).post(update))
        .route("/admin/plugins/{id}/delete", post(delete))
}

async fn list(State(state): State<AppState>, session: UiSession, RawQuery(raw): RawQuery) -> Result<Response, UiError> {
    require_admin(&session)?;
    let notice = session.notice(raw.as_deref());
    render_list(&state, &session, BTreeMap::new(), notice, StatusCode::OK).await
}

async fn render_list(
    state: &AppState,
    session: &UiSession,
    errors: BTreeMap<String, String>,
    notice: Option<String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let plugins = state.store.plugins(&session.actor).await?;
    let mut context = session.context();
    context.insert("plugins", &plugins);
    context.insert("capabilities", &Capability::ALL.map(Capability::as_str));
    context.insert("errors", &errors);
    context.insert("notice", &notice);
    Ok(page_with_status(state, "admin/plugins.html", &context, status))
}

/// The upload form (multipart: the CSRF field first, then the choices and
/// the two files). Nothing is read into memory past the CSRF check for a
/// forged form.
async fn upload(
    State(state): State<AppState>,
    session: UiSession,
    mut multipart: Multipart,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let mut csrf_ok = false;
    let mut grants = Vec::new();
    let mut upload = Upload { manifest: None, component: None, grants: None, enabled: false };
    while let Some(field) = multipart.next_field().await.map_err(upload_error)? {
        match field.name() {
            Some("csrf_token") => csrf_ok = session.csrf_matches(&field.text().await.map_err(upload_error)?),
            _ if !csrf_ok => return Err(csrf_failed()),
            Some("grants") => grants.push(field.text().await.map_err(upload_error)?),
            Some("enabled") => upload.enabled = true,
            // A file input left empty still sends a part, with no file name.
            Some("manifest" | "component") if field.file_name().is_none_or(str::is_empty) => {}
            Some("manifest") => upload.manifest = Some(field.text().await.map_err(upload_error)?),
            Some("component") => upload.component = Some(read_component(field).await?),
            _ => {}
        }
    }
    if !csrf_ok {
        return Err(csrf_failed());
    }
    upload.grants = Some(grants.join(","));
    let mut errors = BTreeMap::new();
    let installed = match upload.into_new_plugin() {
        Ok(new) => state.store.install_plugin(&session.actor, new).await,
        Err(ApiError::Validation { fields, .. }) => {
            errors.extend(fields);
            return render_list(&state, &session, errors, None, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        Err(other) => return Err(other.into()),
    };
    match installed {
        Ok(plugin) => {
            let notice = format!("Plugin “{}” {} installed.", plugin.name, plugin.version);
            Ok(Redirect::to(&session.notice_location(&format!("/admin/plugins/{}", plugin.id), &notice))
                .into_response())
        }
        Err(StoreError::Invalid(invalid)) => {
            errors.extend(invalid.fields);
            render_list(&state, &session, errors, None, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(other) => Err(other.into()),
    }
}

/// The settings form's values from a stored plugin.
fn plugin_values(plugin: &PluginRecord) -> Value {
    let limits = &plugin.limits;
    json!({
        "grants": plugin.grants.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "config": serde_json::to_string_pretty(&plugin.config).unwrap_or_default(),
        "fuel": limits.fuel.map(|f| f.to_string()).unwrap_or_default(),
        "memory_mb": limits.memory_bytes.map(|b| (b >> 20).to_string()).unwrap_or_default(),
        "timeout_ms": limits.timeout_ms.map(|t| t.to_string()).unwrap_or_default(),
        "enabled": plugin.enabled,
    })
}

async fn show(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let plugin = state.store.plugin(&session.actor, &id).await?;
    let offset = PageQuery::parse(raw.as_deref()).offset;
    let notice = session.notice(raw.as_deref());
    let values = plugin_values(&plugin);
    render_plugin(&state, &session, &plugin, values, BTreeMap::new(), notice, offset, StatusCode::OK).await
}

#[allow(clippy::too_many_arguments)]
async fn render_plugin(
    state: &AppState,
    session: &UiSession,
    plugin: &PluginRecord,
    values: Value,
    errors: BTreeMap<String, String>,
    notice: Option<String>,
    offset: i64,
    status: StatusCode,
) -> Result<Response, UiError> {
    let (defaults, ceiling) = state.store.plugin_limits();
    let effective = defaults.with(&plugin.limits, &ceiling);
    let runs =
        state.store.plugin_runs(&session.actor, &plugin.id, Window::new(Some(RUNS_PER_PAGE), Some(offset))).await?;
    let rules: Vec<_> = state
        .store
        .list_rules(&session.actor)
        .await?
        .into_iter()
        .filter(|rule| rule.plugin.as_deref() == Some(plugin.name.as_str()))
        .collect();
    let mut context = session.context();
    context.insert("plugin", plugin);
    context.insert("values", &values);
    context.insert("errors", &errors);
    context.insert("notice", &notice);
    context.insert("defaults", &limits_view(&defaults));
    context.insert("ceiling", &limits_view(&ceiling));
    context.insert("effective", &limits_view(&effective));
    context.insert("rules", &rules);
    context.insert("runs", &runs.items);
    context.insert("total", &runs.total);
    context.insert("offset", &offset);
    context.insert("newer_offset", &(offset - RUNS_PER_PAGE).max(0));
    context.insert("older_offset", &(offset + RUNS_PER_PAGE));
    Ok(page_with_status(state, "admin/plugin.html", &context, status))
}

/// Limits as the page shows them (memory in MiB).
fn limits_view(limits: &Limits) -> Value {
    json!({ "fuel": limits.fuel, "memory_mb": limits.memory_bytes >> 20, "timeout_ms": limits.timeout_ms })
}

/// A whole number from a limits field; empty means "the default".
fn limit_field(form: &FormData, field: &str, errors: &mut BTreeMap<String, String>) -> Option<u64> {
    let text = form.get(field).trim();
    if text.is_empty() {
        return None;
    }
    match text.replace('_', "").parse::<u64>() {
        Ok(value) if value > 0 => Some(value),
        _ => {
            errors.insert(field.to_string(), "a whole number above zero, or empty for the default".into());
            None
        }
    }
}

/// Saves the settings form: grants, configuration, limits, enabled.
async fn update(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let plugin = state.store.plugin(&session.actor, &id).await?;
    let mut errors = BTreeMap::new();
    let mut grants = Grants::new();
    for name in form.all("grants") {
        match Capability::parse(&name) {
            Some(capability) => {
                grants.insert(capability);
            }
            None => {
                errors.insert("grants".into(), format!("unknown capability `{name}`"));
            }
        }
    }
    let config = match serde_json::from_str::<Value>(form.get("config").trim()) {
        Ok(config) => Some(config),
        Err(e) => {
            errors.insert("config".into(), format!("not JSON: {e}"));
            None
        }
    };
    let limits = LimitsOverride {
        fuel: limit_field(&form, "fuel", &mut errors),
        memory_bytes: limit_field(&form, "memory_mb", &mut errors).map(|mb| mb.saturating_mul(1 << 20)),
        timeout_ms: limit_field(&form, "timeout_ms", &mut errors),
    };
    let values = json!({
        "grants": form.all("grants"), "config": form.get("config"), "fuel": form.get("fuel"),
        "memory_mb": form.get("memory_mb"), "timeout_ms": form.get("timeout_ms"), "enabled": form.checked("enabled"),
    });
    if errors.is_empty() {
        let patch =
            PluginPatch { enabled: Some(form.checked("enabled")), grants: Some(grants), config, limits: Some(limits) };
        match state.store.update_plugin(&session.actor, &id, &patch).await {
            Ok(saved) => {
                let notice = format!(
                    "Plugin “{}” saved{}.",
                    saved.name,
                    if saved.enabled { " and enabled" } else { "; it is disabled" }
                );
                return Ok(
                    Redirect::to(&session.notice_location(&format!("/admin/plugins/{id}"), &notice)).into_response()
                );
            }
            Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
            Err(StoreError::Conflict(message)) => {
                errors.insert("form".into(), message);
            }
            Err(other) => return Err(other.into()),
        }
    }
    render_plugin(&state, &session, &plugin, values, errors, None, 0, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn delete(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let plugin = state.store.plugin(&session.actor, &id).await?;
    match state.store.delete_plugin(&session.actor, &id).await {
        Ok(()) => {
            let notice = format!("Plugin “{}” deleted with its storage.", plugin.name);
            Ok(Redirect::to(&session.notice_location("/admin/plugins", &notice)).into_response())
        }
        // Rules still run it: say which, on the plugin's page.
        Err(StoreError::Conflict(message)) => {
            let errors = BTreeMap::from([("form".to_string(), format!("Not deleted: {message}."))]);
            let values = plugin_values(&plugin);
            render_plugin(&state, &session, &plugin, values, errors, None, 0, StatusCode::CONFLICT).await
        }
        Err(other) => Err(other.into()),
    }
}
