//! The stream API: posts, follows and notifications.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use docket_domain::listing::Window;
use docket_domain::note::{NewEmailReply, NewPost, Note, PostEdit};
use docket_store::{Follower, NotificationPage};

use super::integer;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, query_pairs};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cases/{id}/posts", post(create_post))
        .route("/cases/{id}/emails", post(send_email))
        .route("/notes/{id}", patch(edit_post).delete(delete_post))
        .route("/cases/{id}/followers", get(followers))
        .route("/cases/{id}/follow", put(follow).delete(unfollow))
        .route("/cases/{id}/followers/{user_id}", put(add_follower).delete(remove_follower))
        .route("/notifications", get(notifications))
        .route("/notifications/read-all", post(read_all))
        .route("/notifications/{id}/read", post(read_one))
}

async fn create_post(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(new): ApiJson<NewPost>,
) -> ApiResult<(StatusCode, Json<Note>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_post(&auth.actor, &id, &new).await?)))
}

/// An email to the customer from the case (an `EmailSent` note; the
/// outbox sends it).
async fn send_email(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(reply): ApiJson<NewEmailReply>,
) -> ApiResult<(StatusCode, Json<Note>)> {
    let note = state.store.send_email_reply(&auth.actor, &id, reply).await?;
    state.jobs_wakeup.notify_one();
    Ok((StatusCode::CREATED, Json(note)))
}

async fn edit_post(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(edit): ApiJson<PostEdit>,
) -> ApiResult<Json<Note>> {
    Ok(Json(state.store.edit_post(&auth.actor, &id, &edit.post).await?))
}

async fn delete_post(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let files = state.store.delete_post(&auth.actor, &id).await?;
    super::attachments::remove_files(&state, &files).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Serialize)]
struct Followers {
    items: Vec<Follower>,
    total: usize,
}

async fn followers(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Followers>> {
    let items = state.store.followers(&auth.actor, &id).await?;
    Ok(Json(Followers { total: items.len(), items }))
}

async fn follow(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.follow(&auth.actor, &id, &auth.actor.user_id.clone()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unfollow(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.unfollow(&auth.actor, &id, &auth.actor.user_id.clone()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_follower(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.store.follow(&auth.actor, &id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_follower(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.store.unfollow(&auth.actor, &id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn notifications(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<NotificationPage>> {
    let (mut unread, mut limit, mut offset) = (false, None, None);
    for (key, value) in query_pairs(raw.as_deref())? {
        match key.as_str() {
            "unread" => unread = matches!(value.as_str(), "true" | "1"),
            "limit" => limit = Some(integer("limit", &value)?),
            "offset" => offset = Some(integer("offset", &value)?),
            other => return Err(ApiError::field(other, "unknown parameter; allowed: unread, limit, offset")),
        }
    }
    Ok(Json(state.store.notifications(&auth.actor, unread, Window::new(limit, offset)).await?))
}

async fn read_one(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.mark_notification_read(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Serialize)]
struct Marked {
    marked: u64,
}

async fn read_all(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Marked>> {
    Ok(Json(Marked { marked: state.store.mark_all_notifications_read(&auth.actor).await? }))
}
