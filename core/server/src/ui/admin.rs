//! The admin area (`/admin`): users for now; teams, roles, API keys and
//! settings pages follow. Only admins reach it: others get a 403 page,
//! anonymous visitors the login page.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use docket_domain::listing::{SimpleFilter, Window};
use docket_domain::user::{NewUser, UserPatch, UserType};
use docket_store::StoreError;
use serde_json::{Value, json};

use super::render::{UiError, page};
use super::session::{FormData, UiSession};
use crate::app::AppState;
use crate::secrets::hash_password;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/users") }))
        .route("/admin/users", get(users).post(create_user))
        .route("/admin/users/new", get(new_user))
        .route("/admin/users/{id}", get(edit_user).post(update_user))
}

fn require_admin(session: &UiSession) -> Result<(), UiError> {
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
    let values = json!({
        "username": user.username, "name": user.name, "email": user.email, "type": user.user_type,
        "is_active": user.is_active, "team_ids": user.team_ids, "role_ids": user.role_ids,
        "contact_id": user.contact_id, "version": user.version,
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
    let contacts = state.store.list_contacts(&session.actor, &all).await?.items;
    let mut context = session.context();
    context.insert("user_id", &user_id);
    context.insert("values", &values);
    context.insert("errors", &errors);
    context.insert("types", &UserType::ALL.map(UserType::as_str));
    context.insert("teams", &teams.iter().map(|t| json!({"id": t.id, "name": t.name})).collect::<Vec<_>>());
    context.insert("roles", &roles.iter().map(|r| json!({"id": r.id, "name": r.name})).collect::<Vec<_>>());
    context.insert("contacts", &contacts.iter().map(|c| json!({"id": c.id, "name": c.name})).collect::<Vec<_>>());
    let mut response = page(state, "admin/user_form.html", &context);
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    Ok(response)
}
