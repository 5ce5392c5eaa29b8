//! The admin area's portals and portal roles (`/admin/portals`,
//! `/admin/portal-roles`) and a portal user's own portal roles.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use docket_domain::case::{CasePriority, CaseType};
use docket_domain::listing::{SimpleFilter, Window};
use docket_domain::portal::{Branding, PortalInput, PortalLevel, PortalPermissions, PortalRoleInput, WebForm};
use docket_store::StoreError;
use serde_json::{Value, json};

use super::admin::require_admin;
use super::render::{UiError, page, page_with_status};
use super::session::{FormData, UiSession};
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/portals", get(portals).post(create_portal))
        .route("/admin/portals/new", get(new_portal))
        .route("/admin/portals/{id}", get(edit_portal).post(update_portal))
        .route("/admin/portals/{id}/delete", post(delete_portal))
        .route("/admin/portal-roles", post(create_role))
        .route("/admin/portal-roles/new", get(new_role))
        .route("/admin/portal-roles/{id}", get(edit_role).post(update_role))
        .route("/admin/portal-roles/{id}/delete", post(delete_role))
        .route("/admin/users/{id}/portal-roles", post(set_user_roles))
}

async fn portals(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    let portals = state.store.list_portals(&session.actor).await?;
    let roles = state.store.list_portal_roles(&session.actor).await?;
    let mut context = session.context();
    context.insert("portals", &portals.items);
    context.insert("roles", &roles.items);
    Ok(page(&state, "admin/portals.html", &context))
}

// ---- portals --------------------------------------------------------------

async fn new_portal(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    let values = json!({"is_active": true, "role_ids": []});
    portal_form(&state, &session, None, values, BTreeMap::new(), StatusCode::OK).await
}

async fn edit_portal(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let portal = state.store.get_portal(&session.actor, &id).await?;
    let values = serde_json::to_value(&portal).unwrap_or_default();
    portal_form(&state, &session, Some(&id), values, BTreeMap::new(), StatusCode::OK).await
}

async fn create_portal(state: State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    save_portal(state, session, None, body).await
}

async fn update_portal(
    state: State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    save_portal(state, session, Some(id), body).await
}

fn portal_input(form: &FormData) -> PortalInput {
    let optional = |name: &str| Some(form.get(name).trim().to_string()).filter(|v| !v.is_empty());
    PortalInput {
        name: form.get("name").to_string(),
        slug: form.get("slug").to_string(),
        is_active: form.checked("is_active"),
        is_default: form.checked("is_default"),
        role_ids: form.all("role_ids"),
        branding: Branding {
            title: form.get("branding.title").to_string(),
            logo_url: optional("branding.logo_url"),
            primary_color: optional("branding.primary_color"),
            language: form.get("branding.language").to_string(),
        },
        web_form: WebForm {
            enabled: form.checked("web_form.enabled"),
            allowed_origins: form.get("web_form.allowed_origins").lines().map(str::to_string).collect(),
            priority: CasePriority::parse(form.get("web_form.priority")).ok(),
            case_type: CaseType::parse(form.get("web_form.type")).ok(),
            team_ids: form.all("web_form.team_ids"),
        },
        version: form.get("version").parse().ok(),
    }
}

async fn save_portal(
    State(state): State<AppState>,
    session: UiSession,
    id: Option<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let input = portal_input(&form);
    let values = serde_json::to_value(&input).unwrap_or_default();
    let result = match &id {
        None => state.store.create_portal(&session.actor, input).await,
        Some(id) => state.store.update_portal(&session.actor, id, input).await,
    };
    let errors = match result {
        Ok(_) => return Ok(Redirect::to("/admin/portals").into_response()),
        Err(StoreError::Invalid(invalid)) => invalid.fields,
        Err(StoreError::VersionConflict { current }) => BTreeMap::from([(
            "name".to_string(),
            format!("someone else changed this portal (now version {current}); reload"),
        )]),
        Err(other) => return Err(other.into()),
    };
    portal_form(&state, &session, id.as_deref(), values, errors, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn delete_portal(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    state.store.delete_portal(&session.actor, &id).await?;
    Ok(Redirect::to("/admin/portals").into_response())
}

async fn portal_form(
    state: &AppState,
    session: &UiSession,
    id: Option<&str>,
    values: Value,
    errors: BTreeMap<String, String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let roles = state.store.list_portal_roles(&session.actor).await?;
    let all = SimpleFilter { window: Window::new(Some(200), None), ..Default::default() };
    let teams = state.store.list_teams(&session.actor, &all).await?;
    let mut context = session.context();
    context.insert("portal_id", &id);
    context.insert("teams", &teams.items);
    context.insert("priorities", &CasePriority::ALL.map(CasePriority::as_str));
    context.insert("types", &CaseType::ALL.map(CaseType::as_str));
    let origins = values["web_form"]["allowed_origins"]
        .as_array()
        .map(|list| list.iter().filter_map(|o| o.as_str()).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    context.insert("origins_text", &origins);
    // The snippet other sites paste to embed the form.
    if let (Some(slug), true) = (values["slug"].as_str(), values["web_form"]["enabled"] == Value::Bool(true)) {
        let base = state.config.public_url.trim_end_matches('/');
        context.insert("snippet", &crate::web_form::snippet(base, slug));
    }
    context.insert("values", &values);
    context.insert("roles", &roles.items);
    context.insert("errors", &errors);
    Ok(page_with_status(state, "admin/portal_form.html", &context, status))
}

// ---- portal roles -----------------------------------------------------------

/// The cells of the role form: `case.<action>` and `kb_article.read`.
const CELLS: [(&str, &str); 5] = [
    ("case.create", "Create cases"),
    ("case.read", "Read cases"),
    ("case.edit", "Edit cases"),
    ("case.stream", "Case stream (read and reply)"),
    ("kb_article.read", "Read knowledge-base articles"),
];

fn level_of(permissions: &PortalPermissions, field: &str) -> PortalLevel {
    match field {
        "case.create" => permissions.case.create,
        "case.read" => permissions.case.read,
        "case.edit" => permissions.case.edit,
        "case.stream" => permissions.case.stream,
        _ => permissions.kb_article.read,
    }
}

fn permissions_from(form: &FormData, errors: &mut BTreeMap<String, String>) -> PortalPermissions {
    let mut permissions = PortalPermissions::default();
    for (field, _) in CELLS {
        let value = form.get(field);
        let Some(level) = PortalLevel::ALL.into_iter().find(|level| level.as_str() == value) else {
            errors.insert(field.to_string(), "choose all, account, contact, own or no".into());
            continue;
        };
        match field {
            "case.create" => permissions.case.create = level,
            "case.read" => permissions.case.read = level,
            "case.edit" => permissions.case.edit = level,
            "case.stream" => permissions.case.stream = level,
            _ => permissions.kb_article.read = level,
        }
    }
    permissions
}

async fn new_role(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    let fallback = PortalPermissions::fallback();
    role_form(&state, &session, None, "", &fallback, None, BTreeMap::new(), StatusCode::OK)
}

async fn edit_role(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let role = state.store.get_portal_role(&session.actor, &id).await?;
    role_form(
        &state,
        &session,
        Some(&id),
        &role.name,
        &role.permissions,
        Some(role.version),
        BTreeMap::new(),
        StatusCode::OK,
    )
}

async fn create_role(state: State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    save_role(state, session, None, body).await
}

async fn update_role(
    state: State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    save_role(state, session, Some(id), body).await
}

async fn save_role(
    State(state): State<AppState>,
    session: UiSession,
    id: Option<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let mut errors = BTreeMap::new();
    let name = form.get("name").to_string();
    let permissions = permissions_from(&form, &mut errors);
    let version = form.get("version").parse().ok();
    if errors.is_empty() {
        let input = PortalRoleInput { name: name.clone(), permissions, version };
        let result = match &id {
            None => state.store.create_portal_role(&session.actor, input).await,
            Some(id) => state.store.update_portal_role(&session.actor, id, input).await,
        };
        match result {
            Ok(_) => return Ok(Redirect::to("/admin/portals").into_response()),
            Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
            Err(StoreError::VersionConflict { current }) => {
                errors.insert("name".into(), format!("someone else changed this role (now version {current}); reload"));
            }
            Err(other) => return Err(other.into()),
        }
    }
    role_form(&state, &session, id.as_deref(), &name, &permissions, version, errors, StatusCode::UNPROCESSABLE_ENTITY)
}

async fn delete_role(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    state.store.delete_portal_role(&session.actor, &id).await?;
    Ok(Redirect::to("/admin/portals").into_response())
}

#[allow(clippy::too_many_arguments)]
fn role_form(
    state: &AppState,
    session: &UiSession,
    id: Option<&str>,
    name: &str,
    permissions: &PortalPermissions,
    version: Option<i64>,
    errors: BTreeMap<String, String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let cells: Vec<Value> = CELLS
        .iter()
        .map(|(field, label)| json!({"field": field, "label": label, "level": level_of(permissions, field).as_str()}))
        .collect();
    let mut context = session.context();
    context.insert("role_id", &id);
    context.insert("name", name);
    context.insert("version", &version);
    context.insert("cells", &cells);
    context.insert("levels", &PortalLevel::ALL.map(PortalLevel::as_str));
    context.insert("errors", &errors);
    Ok(page_with_status(state, "admin/portal_role_form.html", &context, status))
}

// ---- a portal user's roles -------------------------------------------------

async fn set_user_roles(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    state.store.set_user_portal_roles(&session.actor, &id, &form.all("portal_role_ids")).await?;
    state.store.set_user_portals(&session.actor, &id, &form.all("portal_ids")).await?;
    Ok(Redirect::to(&format!("/admin/users/{id}")).into_response())
}
