//! Stream pages: posting on a case, following it, live updates, the
//! notifications page and the user's preferences.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use docket_domain::listing::Window;
use docket_domain::note::{NewEmailReply, NewPost};
use docket_domain::preferences::Preferences;
use docket_store::StoreError;
use serde_json::json;

use super::render::{UiError, page};
use super::session::{FormData, UiSession, csrf_failed};
use crate::api::attachments::save_upload;
use crate::app::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let upload_limit = crate::api::attachments::upload_body_limit(state);
    Router::new()
        .route("/cases/{number}/posts", post(create_post).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/cases/{number}/email", post(send_email).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/cases/{number}/follow", post(follow))
        .route("/cases/{number}/unfollow", post(unfollow))
        .route("/cases/{number}/events", get(events))
        .route("/notifications", get(notifications))
        .route("/notifications/read-all", post(read_all))
        .route("/preferences", get(preferences).post(save_preferences))
}

async fn case_id(state: &AppState, session: &UiSession, number: &str) -> Result<(String, i64), UiError> {
    let number: i64 = number.parse().map_err(|_| UiError::NotFound)?;
    let case = state.store.get_case_by_number(&session.actor, number).await?;
    Ok((case.id, case.number))
}

/// The post form (multipart: the CSRF field first, then text, the
/// internal flag and files). Files are stored only after the CSRF check and
/// only for users who may read the case.
async fn create_post(
    State(state): State<AppState>,
    session: UiSession,
    Path(number): Path<String>,
    mut multipart: Multipart,
) -> Result<Response, UiError> {
    let (id, number) = case_id(&state, &session, &number).await?;
    let unreadable = |_| UiError::Forbidden("The form could not be read. Try again.".into());
    let (mut csrf_ok, mut text, mut is_internal, mut attachment_ids) = (false, String::new(), false, Vec::new());
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("csrf_token") => csrf_ok = session.csrf_matches(&field.text().await.map_err(unreadable)?),
            _ if !csrf_ok => return Err(csrf_failed()),
            Some("post") => text = field.text().await.map_err(unreadable)?,
            Some("is_internal") => {
                is_internal = matches!(field.text().await.map_err(unreadable)?.as_str(), "on" | "true")
            }
            Some("file") if field.file_name().is_none_or(str::is_empty) => {}
            Some("file") => {
                let record = save_upload(&state, &session.actor, field).await.map_err(UiError::from)?;
                attachment_ids.push(record.id);
            }
            _ => {}
        }
    }
    if !csrf_ok {
        return Err(csrf_failed());
    }
    let post = NewPost { post: text, is_internal, attachment_ids };
    match state.store.create_post(&session.actor, &id, &post).await {
        Ok(_) => Ok(Redirect::to(&format!("/cases/{number}#stream")).into_response()),
        // An empty post: back to the case, which shows the form again.
        Err(StoreError::Invalid(_)) => Ok(Redirect::to(&format!("/cases/{number}?post_error=1#post")).into_response()),
        Err(other) => Err(other.into()),
    }
}

/// The "reply by email" form (multipart: the CSRF field first, then the
/// addresses, subject, text and files). The email leaves through the
/// outbox; the case shows it as an `EmailSent` note.
async fn send_email(
    State(state): State<AppState>,
    session: UiSession,
    Path(number): Path<String>,
    mut multipart: Multipart,
) -> Result<Response, UiError> {
    let (id, number) = case_id(&state, &session, &number).await?;
    let unreadable = |_| UiError::Forbidden("The form could not be read. Try again.".into());
    let addresses = |text: String| -> Vec<String> {
        text.split([',', ';', ' ', '\n']).map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect()
    };
    let (mut csrf_ok, mut reply) = (false, NewEmailReply::default());
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("csrf_token") => csrf_ok = session.csrf_matches(&field.text().await.map_err(unreadable)?),
            _ if !csrf_ok => return Err(csrf_failed()),
            Some("to") => reply.to = addresses(field.text().await.map_err(unreadable)?),
            Some("cc") => reply.cc = addresses(field.text().await.map_err(unreadable)?),
            Some("subject") => reply.subject = field.text().await.map_err(unreadable)?,
            Some("body") => reply.body = field.text().await.map_err(unreadable)?.replace("\r\n", "\n"),
            Some("file") if field.file_name().is_none_or(str::is_empty) => {}
            Some("file") => reply.attachment_ids.push(save_upload(&state, &session.actor, field).await?.id),
            _ => {}
        }
    }
    if !csrf_ok {
        return Err(csrf_failed());
    }
    match state.store.send_email_reply(&session.actor, &id, reply).await {
        Ok(_) => {
            state.jobs_wakeup.notify_one();
            let location = format!("/cases/{number}#stream");
            Ok(Redirect::to(&session.notice_location(&location, "Email queued for sending.")).into_response())
        }
        Err(StoreError::Invalid(invalid)) => {
            let message = invalid.fields.into_values().collect::<Vec<_>>().join("; ");
            let location = session.message_location(&format!("/cases/{number}#email"), "email_error", &message);
            Ok(Redirect::to(&location).into_response())
        }
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
    Ok(page(&state, "preferences.html", &context))
}

/// Live updates of a case page: each new note the viewer may see, as
/// server-rendered HTML (`note` events). Ends when the server shuts down.
async fn events(
    State(state): State<AppState>,
    session: UiSession,
    Path(number): Path<String>,
) -> Result<Response, UiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;

    let (case_id, _) = case_id(&state, &session, &number).await?;
    let receiver = state.store.subscribe_stream();
    let shutdown = state.shutdown.subscribe();
    let stream = futures::stream::unfold(
        (receiver, shutdown, state, session, case_id),
        |(mut receiver, mut shutdown, state, session, case_id)| async move {
            loop {
                if *shutdown.borrow() {
                    return None;
                }
                let event = tokio::select! {
                    _ = shutdown.changed() => return None,
                    received = receiver.recv() => match received {
                        Ok(event) if event.case_id == case_id => {
                            // The session is checked again for every note:
                            // a logout or lost access ends the stream.
                            let Ok(Some(current)) = state.store.session(&session.token_hash).await else {
                                return None;
                            };
                            if state.store.get_case(&current.actor, &case_id).await.is_err() {
                                return None;
                            }
                            let viewer = UiSession { actor: current.actor, ..session.clone() };
                            match note_html(&state, &viewer, &event.note_id).await {
                                Some(html) => Event::default().event("note").data(html),
                                None => continue,
                            }
                        }
                        Ok(_) => continue,
                        // Too far behind: the page reloads instead.
                        Err(RecvError::Lagged(_)) => Event::default().event("reload").data("lagged"),
                        Err(RecvError::Closed) => return None,
                    },
                };
                return Some((Ok::<_, std::convert::Infallible>(event), (receiver, shutdown, state, session, case_id)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// A note rendered like the case page renders it, if the viewer may see it.
async fn note_html(state: &AppState, session: &UiSession, note_id: &str) -> Option<String> {
    let note = state.store.visible_note(&session.actor, note_id).await.ok()?;
    let names = super::cases::Names::load(state, session).await.ok()?;
    let mut context = tera::Context::new();
    context.insert("n", &super::cases::note_row(&note, &names));
    state.templates.render("cases/note.html", &context).ok()
}
