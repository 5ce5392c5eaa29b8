//! Stream pages: posting on a case, following it, the notifications page
//! and the user's preferences.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use docket_domain::listing::Window;
use docket_domain::note::NewPost;
use docket_domain::preferences::Preferences;
use docket_store::StoreError;
use serde_json::json;

use super::render::{UiError, page};
use super::session::{FormData, UiSession};
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cases/{number}/posts", post(create_post))
        .route("/cases/{number}/follow", post(follow))
        .route("/cases/{number}/unfollow", post(unfollow))
        .route("/notifications", get(notifications))
        .route("/notifications/read-all", post(read_all))
        .route("/preferences", get(preferences).post(save_preferences))
}

async fn case_id(state: &AppState, session: &UiSession, number: &str) -> Result<(String, i64), UiError> {
    let number: i64 = number.parse().map_err(|_| UiError::NotFound)?;
    let case = state.store.get_case_by_number(&session.actor, number).await?;
    Ok((case.id, case.number))
}

async fn create_post(
    State(state): State<AppState>,
    session: UiSession,
    Path(number): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let (id, number) = case_id(&state, &session, &number).await?;
    let post = NewPost {
        post: form.get("post").to_string(),
        is_internal: form.checked("is_internal"),
        attachment_ids: Vec::new(),
    };
    match state.store.create_post(&session.actor, &id, &post).await {
        Ok(_) => Ok(Redirect::to(&format!("/cases/{number}#stream")).into_response()),
        // An empty post: back to the case, which shows the form again.
        Err(StoreError::Invalid(_)) => Ok(Redirect::to(&format!("/cases/{number}?post_error=1#post")).into_response()),
        Err(other) => Err(other.into()),
    }
}

async fn follow(
    State(state): State<AppState>,
    session: UiSession,
    Path(number): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    session.check_csrf(&FormData::parse(&body)?)?;
    let (id, number) = case_id(&state, &session, &number).await?;
    state.store.follow(&session.actor, &id, &session.actor.user_id).await?;
    Ok(Redirect::to(&format!("/cases/{number}")).into_response())
}

async fn unfollow(
    State(state): State<AppState>,
    session: UiSession,
    Path(number): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    session.check_csrf(&FormData::parse(&body)?)?;
    let (id, number) = case_id(&state, &session, &number).await?;
    state.store.unfollow(&session.actor, &id, &session.actor.user_id).await?;
    Ok(Redirect::to(&format!("/cases/{number}")).into_response())
}

async fn notifications(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    let list = state.store.notifications(&session.actor, false, Window::new(Some(100), None)).await?;
    let items: Vec<serde_json::Value> = list
        .items
        .iter()
        .map(|n| {
            let what = match (n.kind.as_str(), n.note_type.as_str()) {
                ("mention", _) => "You were mentioned",
                (_, "Create") => "New case",
                (_, "Assign") => "Assignment",
                (_, "Update") => "Changed",
                (_, "Post") => "New post",
                _ => "Update",
            };
            json!({"number": n.case_number, "name": n.case_name, "what": what, "is_read": n.is_read,
                   "is_highlighted": n.is_highlighted, "created_at": n.created_at.format("%Y-%m-%d %H:%M").to_string()})
        })
        .collect();
    let mut context = session.context();
    context.insert("items", &items);
    context.insert("total", &list.total);
    Ok(page(&state, "notifications.html", &context))
}

async fn read_all(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    session.check_csrf(&FormData::parse(&body)?)?;
    state.store.mark_all_notifications_read(&session.actor).await?;
    Ok(Redirect::to("/notifications").into_response())
}

async fn preferences(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    let preferences = state.store.preferences(&session.actor).await?;
    let mut context = session.context();
    context.insert("preferences", &preferences);
    context.insert("auto_follow_cases", &preferences.auto_follow_entity_types.iter().any(|t| t == "Case"));
    context.insert("saved", &false);
    Ok(page(&state, "preferences.html", &context))
}

async fn save_preferences(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let preferences = Preferences {
        auto_follow_entity_types: if form.checked("auto_follow_cases") { vec!["Case".to_string()] } else { Vec::new() },
        follow_on_post: form.checked("follow_on_post"),
        email_notifications: form.checked("email_notifications"),
        follow_created: form.checked("follow_created"),
    };
    let saved = state.store.set_preferences(&session.actor, &preferences).await?;
    let mut context = session.context();
    context.insert("preferences", &saved);
    context.insert("auto_follow_cases", &saved.auto_follow_entity_types.iter().any(|t| t == "Case"));
    context.insert("saved", &true);
    context.insert("errors", &BTreeMap::<String, String>::new());
    let mut response = page(&state, "preferences.html", &context);
    if response.status() != StatusCode::OK {
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    Ok(response)
}
