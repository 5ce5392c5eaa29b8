//! The admin area (`/admin`): users, teams, roles, API keys and general
//! settings. Only admins reach it: others get a 403 page, anonymous
//! visitors the login page.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use docket_domain::access::{Action, Level, Permissions, Scope};
use docket_domain::listing::{SimpleFilter, Window};
use docket_domain::team::{NewTeam, TeamMember, TeamPatch};
use docket_domain::user::{NewRole, NewUser, RolePatch, UserPatch, UserType};
use docket_store::StoreError;
use serde_json::{Value, json};

use super::render::{UiError, page, page_with_status};
use super::session::{FormData, UiSession};
use crate::app::AppState;
use crate::secrets::{hash_password, new_api_key};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/users") }))
        .route("/admin/users", get(users).post(create_user))
        .route("/admin/users/new", get(new_user))
        .route("/admin/users/{id}", get(edit_user).post(update_user))
        .route("/admin/teams", get(teams).post(save_team))
        .route("/admin/teams/new", get(new_team))
        .route("/admin/teams/{id}", get(edit_team).post(update_team))
        .route("/admin/teams/{id}/delete", post(delete_team))
        .route("/admin/roles", get(roles).post(save_role))
        .route("/admin/roles/new", get(new_role))
        .route("/admin/roles/{id}", get(edit_role).post(update_role))
        .route("/admin/api-keys", get(api_keys).post(create_api_key))
        .route("/admin/api-keys/{id}/revoke", post(revoke_api_key))
        .route("/admin/settings", get(settings).post(save_settings))
}

pub(super) fn require_admin(session: &UiSession) -> Result<(), UiError> {
    if session.actor.is_admin() {
        Ok(())
    } else {
        Err(UiError::Forbidden("The admin area is for administrators.".into()))
    }
}

async fn users(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    let all = SimpleFilter { window: Window::new(Some(200), None), ..Default::default() };
    let users = state.store.list_users(&session.actor, &all).await?;
    let mut context = session.context();
    context.insert("users", &users.items);
    context.insert("total", &users.total);
    Ok(page(&state, "admin/users.html", &context))
}

async fn new_user(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    let values = json!({
        "username": "", "name": "", "email": "", "type": "agent", "is_active": true, "team_ids": [], "role_ids": [],
        "contact_id": "", "version": "",
    });
    user_form(&state, &session, None, values, BTreeMap::new(), StatusCode::OK).await
}

async fn create_user(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let values = user_values(&form);
    let mut errors = BTreeMap::new();
    let user_type = UserType::parse(form.get("type")).unwrap_or_else(|message| {
        errors.insert("type".to_string(), message);
        UserType::Agent
    });
    let mut new = NewUser {
        username: form.get("username").to_string(),
        name: form.optional("name"),
        email: form.optional("email"),
        user_type,
        is_active: form.checked("is_active"),
        team_ids: form.all("team_ids"),
        role_ids: form.all("role_ids"),
        contact_id: form.optional("contact_id"),
        password: form.optional("password"),
    };
    if errors.is_empty() {
        match new.validate() {
            Ok(()) => {
                let hash = match new.password.take() {
                    Some(password) => Some(hash_password(password).await?),
                    None => None,
                };
                match state.store.create_user(&session.actor, &new, hash).await {
                    Ok(_) => return Ok(Redirect::to("/admin/users").into_response()),
                    Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
                    Err(other) => return Err(other.into()),
                }
            }
            Err(invalid) => errors.extend(invalid.fields),
        }
    }
    user_form(&state, &session, None, values, errors, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn edit_user(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let user = state.store.get_user(&session.actor, &id).await?;
    let (portal_role_ids, portal_ids) = match user.user_type {
        UserType::Portal => (
            state.store.user_portal_roles(&session.actor, &id).await?,
            state.store.user_portals(&session.actor, &id).await?,
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let values = json!({
        "username": user.username, "name": user.name, "email": user.email, "type": user.user_type,
        "is_active": user.is_active, "team_ids": user.team_ids, "role_ids": user.role_ids,
        "contact_id": user.contact_id, "version": user.version, "portal_role_ids": portal_role_ids,
        "portal_ids": portal_ids,
    });
    user_form(&state, &session, Some(&id), values, BTreeMap::new(), StatusCode::OK).await
}

async fn update_user(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let values = user_values(&form);
    let mut errors = BTreeMap::new();
    let mut patch = UserPatch {
        username: Some(form.get("username").to_string()),
        name: Some(form.optional("name").unwrap_or_else(|| form.get("username").to_string())),
        email: Some(form.optional("email")),
        user_type: UserType::parse(form.get("type")).map_err(|m| errors.insert("type".into(), m)).ok(),
        is_active: Some(form.checked("is_active")),
        team_ids: Some(form.all("team_ids")),
        role_ids: Some(form.all("role_ids")),
        contact_id: Some(form.optional("contact_id")),
        // An empty password field leaves the password alone.
        password: form.optional("password"),
        version: form.get("version").parse().ok(),
    };
    if errors.is_empty() {
        match patch.validate() {
            Ok(()) => {
                let hash = match patch.password.take() {
                    Some(password) => Some(hash_password(password).await?),
                    None => None,
                };
                match state.store.update_user(&session.actor, &id, &patch, hash).await {
                    Ok(_) => return Ok(Redirect::to("/admin/users").into_response()),
                    Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
                    Err(StoreError::VersionConflict { current }) => {
                        errors.insert(
                            "version".into(),
                            format!("someone else changed this user (now version {current}); reload"),
                        );
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            Err(invalid) => errors.extend(invalid.fields),
        }
    }
    user_form(&state, &session, Some(&id), values, errors, StatusCode::UNPROCESSABLE_ENTITY).await
}

fn user_values(form: &FormData) -> Value {
    json!({
        "username": form.get("username"), "name": form.get("name"), "email": form.get("email"),
        "type": form.get("type"), "is_active": form.checked("is_active"), "team_ids": form.all("team_ids"),
        "role_ids": form.all("role_ids"), "contact_id": form.get("contact_id"), "version": form.get("version"),
    })
}

async fn user_form(
    state: &AppState,
    session: &UiSession,
    user_id: Option<&str>,
    values: Value,
    errors: BTreeMap<String, String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let all = SimpleFilter { window: Window::new(Some(200), None), ..Default::default() };
    let teams = state.store.list_teams(&session.actor, &all).await?.items;
    let roles = state.store.list_roles(&session.actor).await?.items;
    let portal_roles = state.store.list_portal_roles(&session.actor).await?.items;
    let portals = state.store.list_portals(&session.actor).await?.items;
    let contacts = state.store.list_contacts(&session.actor, &all).await?.items;
    let mut context = session.context();
    context.insert("user_id", &user_id);
    context.insert("values", &values);
    context.insert("errors", &errors);
    context.insert("types", &UserType::ALL.map(UserType::as_str));
    context.insert("teams", &teams.iter().map(|t| json!({"id": t.id, "name": t.name})).collect::<Vec<_>>());
    context.insert("roles", &roles.iter().map(|r| json!({"id": r.id, "name": r.name})).collect::<Vec<_>>());
    context
        .insert("portal_roles", &portal_roles.iter().map(|r| json!({"id": r.id, "name": r.name})).collect::<Vec<_>>());
    context.insert(
        "portals",
        &portals.iter().filter(|p| !p.is_default).map(|p| json!({"id": p.id, "name": p.name})).collect::<Vec<_>>(),
    );
    context.insert("contacts", &contacts.iter().map(|c| json!({"id": c.id, "name": c.name})).collect::<Vec<_>>());
    Ok(page_with_status(state, "admin/user_form.html", &context, status))
}

// ---- Teams -------------------------------------------------------------

async fn teams(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    let all = SimpleFilter { window: Window::new(Some(200), None), ..Default::default() };
    let teams = state.store.list_teams(&session.actor, &all).await?;
    let mut context = session.context();
    context.insert(
        "teams",
        &teams
            .items
            .iter()
            .map(|t| json!({"id": t.id, "name": t.name, "members": t.members.len()}))
            .collect::<Vec<_>>(),
    );
    Ok(page(&state, "admin/teams.html", &context))
}

async fn new_team(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    team_form(&state, &session, None, "", &[], None, BTreeMap::new(), StatusCode::OK).await
}

async fn edit_team(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let team = state.store.get_team(&session.actor, &id).await?;
    team_form(
        &state,
        &session,
        Some(&id),
        &team.name,
        &team.members,
        Some(team.version),
        BTreeMap::new(),
        StatusCode::OK,
    )
    .await
}

/// Members come as a checkbox `member` (user id) and a text field
/// `position_<user id>` per user.
fn members_from(form: &FormData) -> Vec<TeamMember> {
    form.all("member")
        .into_iter()
        .map(|user_id| {
            let position = form.optional(&format!("position_{user_id}"));
            TeamMember { user_id, position }
        })
        .collect()
}

async fn save_team(state: State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    store_team(state, session, None, body).await
}

async fn update_team(
    state: State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    store_team(state, session, Some(id), body).await
}

async fn store_team(
    State(state): State<AppState>,
    session: UiSession,
    id: Option<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let name = form.get("name").to_string();
    let members = members_from(&form);
    let version = form.get("version").parse().ok();
    let result = match &id {
        None => state
            .store
            .create_team(&session.actor, &NewTeam { name: name.clone(), members: members.clone() })
            .await
            .map(|_| ()),
        Some(id) => {
            let patch = TeamPatch { name: Some(name.clone()), members: Some(members.clone()), version };
            state.store.update_team(&session.actor, id, &patch).await.map(|_| ())
        }
    };
    let mut errors = BTreeMap::new();
    match result {
        Ok(()) => return Ok(Redirect::to("/admin/teams").into_response()),
        Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
        Err(StoreError::VersionConflict { current }) => {
            errors.insert("name".into(), format!("someone else changed this team (now version {current}); reload"));
        }
        Err(other) => return Err(other.into()),
    }
    team_form(&state, &session, id.as_deref(), &name, &members, version, errors, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn delete_team(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    state.store.delete_team(&session.actor, &id).await?;
    Ok(Redirect::to("/admin/teams").into_response())
}

#[allow(clippy::too_many_arguments)]
async fn team_form(
    state: &AppState,
    session: &UiSession,
    id: Option<&str>,
    name: &str,
    members: &[TeamMember],
    version: Option<i64>,
    errors: BTreeMap<String, String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let all = SimpleFilter { window: Window::new(Some(200), None), ..Default::default() };
    let users = state.store.list_users(&session.actor, &all).await?.items;
    let rows: Vec<Value> = users
        .iter()
        .filter(|u| u.user_type != UserType::Portal)
        .map(|u| {
            let member = members.iter().find(|m| m.user_id == u.id);
            json!({"id": u.id, "name": u.name, "username": u.username, "member": member.is_some(),
                   "position": member.and_then(|m| m.position.clone()).unwrap_or_default()})
        })
        .collect();
    let mut context = session.context();
    context.insert("team_id", &id);
    context.insert("name", name);
    context.insert("version", &version);
    context.insert("users", &rows);
    context.insert("errors", &errors);
    Ok(page_with_status(state, "admin/team_form.html", &context, status))
}

// ---- Roles -------------------------------------------------------------

async fn roles(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    let roles = state.store.list_roles(&session.actor).await?;
    let mut context = session.context();
    context.insert("roles", &roles.items);
    Ok(page(&state, "admin/roles.html", &context))
}

async fn new_role(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    role_form(&state, &session, None, "", &Permissions::default(), None, BTreeMap::new(), StatusCode::OK)
}

async fn edit_role(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let role = state.store.get_role(&session.actor, &id).await?;
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

/// The grid of selects named `<scope>.<action>`.
fn permissions_from(form: &FormData, errors: &mut BTreeMap<String, String>) -> Permissions {
    let mut permissions = Permissions::default();
    for scope in Scope::ALL {
        for action in Action::ALL {
            let field = format!("{}.{}", scope.as_str(), action.as_str());
            let value = form.get(&field);
            match Level::ALL.iter().find(|level| level.as_str() == value) {
                Some(level) => permissions.levels_mut(scope).set(action, *level),
                None => {
                    errors.insert(field, "choose all, team, own or no".into());
                }
            }
        }
    }
    permissions
}

async fn save_role(state: State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    store_role(state, session, None, body).await
}

async fn update_role(
    state: State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    store_role(state, session, Some(id), body).await
}

async fn store_role(
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
        let result = match &id {
            None => state.store.create_role(&session.actor, &NewRole { name: name.clone(), permissions }).await,
            Some(id) => {
                let patch = RolePatch { name: Some(name.clone()), permissions: Some(permissions), version };
                state.store.update_role(&session.actor, id, &patch).await
            }
        };
        match result {
            Ok(_) => return Ok(Redirect::to("/admin/roles").into_response()),
            Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
            Err(StoreError::VersionConflict { current }) => {
                errors.insert("name".into(), format!("someone else changed this role (now version {current}); reload"));
            }
            Err(other) => return Err(other.into()),
        }
    }
    role_form(&state, &session, id.as_deref(), &name, &permissions, version, errors, StatusCode::UNPROCESSABLE_ENTITY)
}

#[allow(clippy::too_many_arguments)]
fn role_form(
    state: &AppState,
    session: &UiSession,
    id: Option<&str>,
    name: &str,
    permissions: &Permissions,
    version: Option<i64>,
    errors: BTreeMap<String, String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let grid: Vec<Value> = Scope::ALL
        .iter()
        .map(|scope| {
            let cells: Vec<Value> = Action::ALL
                .iter()
                .map(|action| {
                    json!({"field": format!("{}.{}", scope.as_str(), action.as_str()), "action": action.as_str(),
                                     "level": permissions.levels(*scope).get(*action).as_str()})
                })
                .collect();
            json!({"scope": scope.as_str(), "cells": cells})
        })
        .collect();
    let mut context = session.context();
    context.insert("role_id", &id);
    context.insert("name", name);
    context.insert("version", &version);
    context.insert("grid", &grid);
    context.insert("actions", &Action::ALL.map(Action::as_str));
    context.insert("levels", &Level::ALL.map(Level::as_str));
    context.insert("errors", &errors);
    Ok(page_with_status(state, "admin/role_form.html", &context, status))
}

// ---- API keys ----------------------------------------------------------

async fn api_keys(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    api_keys_page(&state, &session, None, BTreeMap::new()).await
}

async fn create_api_key(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let name = form.get("name").trim().to_string();
    let user_id = form.get("user_id").to_string();
    let mut errors = BTreeMap::new();
    if name.is_empty() || name.chars().count() > 100 || name.contains('\0') {
        errors.insert("name".to_string(), "required, at most 100 characters".to_string());
    }
    if state.store.get_user(&session.actor, &user_id).await.is_err() {
        errors.insert("user_id".to_string(), "choose a user".to_string());
    }
    if !errors.is_empty() {
        return api_keys_page(&state, &session, None, errors).await;
    }
    let (key, prefix, hash) = new_api_key();
    state.store.create_api_key(&session.actor, &user_id, &name, &prefix, &hash).await?;
    api_keys_page(&state, &session, Some(key), errors).await
}

async fn revoke_api_key(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    state.store.revoke_api_key(&session.actor, &id).await?;
    Ok(Redirect::to("/admin/api-keys").into_response())
}

async fn api_keys_page(
    state: &AppState,
    session: &UiSession,
    new_key: Option<String>,
    errors: BTreeMap<String, String>,
) -> Result<Response, UiError> {
    let all = SimpleFilter { window: Window::new(Some(200), None), ..Default::default() };
    let users = state.store.list_users(&session.actor, &all).await?.items;
    let names: BTreeMap<String, String> = users.iter().map(|u| (u.id.clone(), u.username.clone())).collect();
    let keys: Vec<Value> = state
        .store
        .list_api_keys(&session.actor)
        .await?
        .into_iter()
        .map(|k| json!({"id": k.id, "name": k.name, "prefix": k.key_prefix, "user": names.get(&k.user_id),
                        "created_at": k.created_at.format("%Y-%m-%d %H:%M").to_string(), "revoked": k.revoked_at.is_some()}))
        .collect();
    let failed = !errors.is_empty();
    let mut context = session.context();
    context.insert("keys", &keys);
    context.insert(
        "users",
        &users.iter().filter(|u| u.is_active).map(|u| json!({"id": u.id, "username": u.username})).collect::<Vec<_>>(),
    );
    context.insert("new_key", &new_key);
    context.insert("errors", &errors);
    let status = if failed { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(page_with_status(state, "admin/api_keys.html", &context, status))
}

// ---- Settings ----------------------------------------------------------

/// The helpdesk's name, shown in every page's header.
pub const HELPDESK_NAME: &str = "helpdesk_name";

async fn settings(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    let mut context = session.context();
    context.insert("saved", &false);
    Ok(page(&state, "admin/settings.html", &context))
}

async fn save_settings(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let name = form.get("helpdesk_name").trim().to_string();
    let mut context = session.context();
    if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
        let errors = BTreeMap::from([("helpdesk_name".to_string(), "required, at most 60 characters".to_string())]);
        context.insert("errors", &errors);
        context.insert("saved", &false);
        return Ok(page_with_status(&state, "admin/settings.html", &context, StatusCode::UNPROCESSABLE_ENTITY));
    }
    state.store.set_setting(&session.actor, HELPDESK_NAME, &json!(name)).await?;
    context.insert("helpdesk_name", &name);
    context.insert("saved", &true);
    Ok(page(&state, "admin/settings.html", &context))
}
