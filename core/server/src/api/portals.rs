//! `/api/v1/portals`, `/api/v1/portal-roles` and a portal user's own
//! portal roles (admins only).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::listing::Page;
use docket_domain::portal::{Portal, PortalInput, PortalRole, PortalRoleInput};
use docket_domain::user::{PortalInvitation, User};
use serde::{Deserialize, Serialize};

use super::expected_version;
use crate::app::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portals", post(create_portal).get(list_portals))
        .route("/portals/{id}", get(show_portal).put(update_portal).delete(remove_portal))
        .route("/portal-roles", post(create_role).get(list_roles))
        .route("/portal-roles/{id}", get(show_role).put(update_role).delete(remove_role))
        .route("/users/{id}/portal-roles", get(user_roles).put(set_user_roles))
        .route("/users/{id}/portals", get(user_portals).put(set_user_portals))
        .route("/contacts/{id}/portal-user", post(invite_contact))
        .route("/users/{id}/invitation", post(invite_user))
}

/// Makes a portal user for a contact and emails them an invitation.
async fn invite_contact(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(invitation): ApiJson<PortalInvitation>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = state.store.invite_contact(&auth.actor, &id, &invitation).await?;
    state.jobs_wakeup.notify_one();
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reinvitation {
    #[serde(default)]
    portal_id: Option<String>,
}

/// Emails a portal user a new invitation link (the old one stops working).
async fn invite_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Reinvitation>,
) -> ApiResult<StatusCode> {
    state.store.invite_user(&auth.actor, &id, body.portal_id.as_deref()).await?;
    state.jobs_wakeup.notify_one();
    Ok(StatusCode::ACCEPTED)
}

async fn create_portal(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<PortalInput>,
) -> ApiResult<(StatusCode, Json<Portal>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_portal(&auth.actor, input).await?)))
}

async fn list_portals(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Page<Portal>>> {
    Ok(Json(state.store.list_portals(&auth.actor).await?))
}

async fn show_portal(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Portal>> {
    Ok(Json(state.store.get_portal(&auth.actor, &id).await?))
}

async fn update_portal(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(mut input): ApiJson<PortalInput>,
) -> ApiResult<Json<Portal>> {
    input.version = expected_version(input.version, &headers)?;
    Ok(Json(state.store.update_portal(&auth.actor, &id, input).await?))
}

async fn remove_portal(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_portal(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_role(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<PortalRoleInput>,
) -> ApiResult<(StatusCode, Json<PortalRole>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_portal_role(&auth.actor, input).await?)))
}

async fn list_roles(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Page<PortalRole>>> {
    Ok(Json(state.store.list_portal_roles(&auth.actor).await?))
}

async fn show_role(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<PortalRole>> {
    Ok(Json(state.store.get_portal_role(&auth.actor, &id).await?))
}

async fn update_role(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(mut input): ApiJson<PortalRoleInput>,
) -> ApiResult<Json<PortalRole>> {
    input.version = expected_version(input.version, &headers)?;
    Ok(Json(state.store.update_portal_role(&auth.actor, &id, input).await?))
}

async fn remove_role(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_portal_role(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A portal user's own portal roles.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRoles {
    role_ids: Vec<String>,
}

async fn user_roles(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<UserRoles>> {
    Ok(Json(UserRoles { role_ids: state.store.user_portal_roles(&auth.actor, &id).await? }))
}

/// The portals a portal user may use besides the default one.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPortals {
    portal_ids: Vec<String>,
}

async fn user_portals(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<UserPortals>> {
    Ok(Json(UserPortals { portal_ids: state.store.user_portals(&auth.actor, &id).await? }))
}

async fn set_user_portals(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<UserPortals>,
) -> ApiResult<Json<UserPortals>> {
    Ok(Json(UserPortals { portal_ids: state.store.set_user_portals(&auth.actor, &id, &input.portal_ids).await? }))
}

async fn set_user_roles(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<UserRoles>,
) -> ApiResult<Json<UserRoles>> {
    Ok(Json(UserRoles { role_ids: state.store.set_user_portal_roles(&auth.actor, &id, &input.role_ids).await? }))
}
