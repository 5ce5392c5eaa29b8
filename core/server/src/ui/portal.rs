//! The customer portal's pages (`/portal/<slug>`): the customer's cases,
//! a new case, a case's public stream with a reply form, notifications,
//! and the knowledge base, all in the portal's branding.
//!
//! Every read goes through the store with the session's actor, so a page
//! shows exactly what the portal roles allow: a case out of reach is "not
//! found", internal notes never leave the store. Forms work without
//! JavaScript and carry the session's CSRF token.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use docket_domain::access::Decision;
use docket_domain::case::{Case, CasePriority, CaseType, NewCase};
use docket_domain::listing::{CaseFilter, Window};
use docket_domain::note::{NewPost, Note, NoteType};
use docket_domain::portal::PortalLevel;
use docket_store::{ArticleFilter, StoreError};
use serde_json::{Value, json};

use super::portal_session::{PortalSession, home};
use super::render::{UiError, markdown, page, page_with_status};
use super::session::{FormData, csrf_failed, url_encode};
use crate::api::attachments::{file_response, multipart_error, remove_files, save_upload};
use crate::app::AppState;
use crate::extract::query_pairs;

/// Cases and articles per page.
const PAGE_SIZE: i64 = 20;

pub fn router(state: &AppState) -> Router<AppState> {
    let upload_limit = crate::api::attachments::upload_body_limit(state);
    Router::new()
        .route("/portal/{slug}", get(cases))
        .route("/portal/{slug}/", get(cases))
        .route("/portal/{slug}/cases/new", get(new_case))
        .route("/portal/{slug}/cases", post(create_case).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/portal/{slug}/cases/{number}", get(show_case))
        .route("/portal/{slug}/cases/{number}/reply", post(reply).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/portal/{slug}/attachments/{id}", get(attachment))
        .route("/portal/{slug}/notifications", get(notifications))
        .route("/portal/{slug}/notifications/read-all", post(read_all))
        .route("/portal/{slug}/kb", get(knowledge_base))
        .route("/portal/{slug}/kb/{id}", get(article))
        // Branding may name an https logo: images from elsewhere are
        // allowed here, nothing else is.
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' https:; script-src 'self'; object-src 'none'; \
                 base-uri 'none'; frame-ancestors 'none'",
            ),
        ))
}

/// The value of a query parameter, trimmed; "" when absent.
fn param(pairs: &[(String, String)], name: &str) -> String {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string()).unwrap_or_default()
}

/// The customer's cases: open ones first, closed or all on request, and a
/// search box.
async fn cases(
    State(state): State<AppState>,
    session: PortalSession,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let pairs = query_pairs(raw.as_deref()).map_err(|_| UiError::NotFound)?;
    let view = match param(&pairs, "view").as_str() {
        "closed" => "closed",
        "all" => "all",
        _ => "open",
    };
    let q = param(&pairs, "q");
    let page_number = param(&pairs, "page").parse::<i64>().unwrap_or(1).max(1);
    let mut filter = CaseFilter {
        open: match view {
            "closed" => Some(false),
            "all" => None,
            _ => Some(true),
        },
        q: Some(q.clone()).filter(|q| !q.is_empty()),
        window: Window::new(Some(PAGE_SIZE), Some((page_number - 1).saturating_mul(PAGE_SIZE))),
        ..Default::default()
    };
    if let Ok(sort) = docket_domain::listing::parse_sort("-modified_at", &docket_domain::listing::CaseSortField::ALL) {
        filter.sort = sort;
    }
    let list = state.store.list_cases(&session.actor, &filter).await?;
    let mut context = session.context();
    context.insert("cases", &list.items.iter().map(case_summary).collect::<Vec<_>>());
    context.insert("total", &list.total);
    context.insert("view", view);
    context.insert("q", &q);
    context.insert("q_url", &url_encode(&q));
    context.insert("page", &page_number);
    context.insert("pages", &((list.total + PAGE_SIZE - 1) / PAGE_SIZE).max(1));
    context.insert("may_create", &(session.actor.portal.permissions.case.create != PortalLevel::No));
    Ok(page(&state, "portal/cases.html", &context))
}

fn case_summary(case: &Case) -> Value {
    json!({
        "number": case.number,
        "name": case.name,
        "status": case.status,
        "is_open": case.status.is_open(),
        "priority": case.priority,
        "modified_at": case.modified_at.format("%Y-%m-%d %H:%M").to_string(),
    })
}

fn may_create(session: &PortalSession) -> Result<(), UiError> {
    if session.actor.portal.permissions.case.create == PortalLevel::No {
        return Err(UiError::Forbidden("Your account may not open cases here. Please contact support.".into()));
    }
    Ok(())
}

async fn new_case(State(state): State<AppState>, session: PortalSession) -> Result<Response, UiError> {
    may_create(&session)?;
    let values = json!({"name": "", "description": "", "priority": "Normal", "type": ""});
    Ok(case_form(&state, &session, &values, &BTreeMap::new(), None, StatusCode::OK))
}

fn case_form(
    state: &AppState,
    session: &PortalSession,
    values: &Value,
    errors: &BTreeMap<String, String>,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    let mut context = session.context();
    context.insert("values", values);
    context.insert("errors", errors);
    context.insert("message", &message);
    context.insert("priorities", &CasePriority::ALL.map(CasePriority::as_str));
    context.insert("types", &CaseType::ALL.map(CaseType::as_str));
    page_with_status(state, "portal/case_form.html", &context, status)
}

/// What a multipart portal form sent: its text fields and the files it
/// stored (the CSRF field comes first, so no file is stored for a forged
/// form).
struct Submitted {
    fields: BTreeMap<String, String>,
    attachment_ids: Vec<String>,
}

async fn read_multipart(state: &AppState, session: &PortalSession, multipart: Multipart) -> Result<Submitted, UiError> {
    let mut submitted = Submitted { fields: BTreeMap::new(), attachment_ids: Vec::new() };
    match read_fields(state, session, multipart, &mut submitted).await {
        Ok(()) => Ok(submitted),
        // A form cut off or refused halfway keeps none of its files.
        Err(error) => {
            discard_uploads(state, session, &submitted.attachment_ids).await;
            Err(error)
        }
    }
}

async fn read_fields(
    state: &AppState,
    session: &PortalSession,
    mut multipart: Multipart,
    submitted: &mut Submitted,
) -> Result<(), UiError> {
    let unreadable = |error| UiError::from(multipart_error(error));
    let mut csrf_ok = false;
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "csrf_token" => csrf_ok = session.csrf_matches(&field.text().await.map_err(unreadable)?),
            _ if !csrf_ok => return Err(csrf_failed()),
            "file" if field.file_name().is_none_or(str::is_empty) => {}
            "file" => submitted.attachment_ids.push(save_upload(state, &session.actor, field).await?.id),
            _ => {
                let text = field.text().await.map_err(unreadable)?;
                submitted.fields.insert(name, text.replace("\r\n", "\n"));
            }
        }
    }
    if csrf_ok { Ok(()) } else { Err(csrf_failed()) }
}

/// Files of a form that was not saved: removed, rows and bytes.
async fn discard_uploads(state: &AppState, session: &PortalSession, ids: &[String]) {
    for id in ids {
        match state.store.delete_unlinked_attachment(&session.actor, id).await {
            Ok(key) => remove_files(state, &[key]).await,
            Err(error) => tracing::warn!(%error, attachment = %id, "could not discard an upload"),
        }
    }
}

async fn create_case(
    State(state): State<AppState>,
    session: PortalSession,
    multipart: Multipart,
) -> Result<Response, UiError> {
    may_create(&session)?;
    let submitted = read_multipart(&state, &session, multipart).await?;
    let field = |name: &str| submitted.fields.get(name).map(|v| v.trim().to_string()).unwrap_or_default();
    let values = json!({
        "name": field("name"), "description": field("description"),
        "priority": field("priority"), "type": field("type"),
    });
    let mut errors = BTreeMap::new();
    let priority = match field("priority").as_str() {
        "" => None,
        text => CasePriority::parse(text).map(Some).unwrap_or_else(|_| {
            errors.insert("priority".to_string(), "choose one of the listed priorities".to_string());
            None
        }),
    };
    let case_type = match field("type").as_str() {
        "" => None,
        text => CaseType::parse(text).map(Some).unwrap_or_else(|_| {
            errors.insert("type".to_string(), "choose one of the listed types".to_string());
            None
        }),
    };
    let new = NewCase {
        name: field("name"),
        description: Some(field("description")).filter(|d| !d.is_empty()),
        priority,
        case_type,
        attachment_ids: submitted.attachment_ids.clone(),
        ..Default::default()
    };
    let mut message = None;
    if errors.is_empty() {
        let result = match new.validate() {
            Ok(draft) => state.store.create_case(&session.actor, draft).await,
            Err(invalid) => Err(StoreError::Invalid(invalid)),
        };
        match result {
            Ok(case) => {
                let location = format!("{}/cases/{}", home(&session.portal), case.number);
                return Ok(Redirect::to(&location).into_response());
            }
            Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
            Err(StoreError::Rejected { message: text, .. }) => message = Some(text),
            Err(other) => {
                discard_uploads(&state, &session, &submitted.attachment_ids).await;
                return Err(other.into());
            }
        }
    }
    // The files are not kept with a form that failed: the customer
    // chooses them again.
    discard_uploads(&state, &session, &submitted.attachment_ids).await;
    if !submitted.attachment_ids.is_empty() {
        errors.entry("file".to_string()).or_insert_with(|| "choose your files again".to_string());
    }
    Ok(case_form(&state, &session, &values, &errors, message, StatusCode::UNPROCESSABLE_ENTITY))
}

async fn load_case(state: &AppState, session: &PortalSession, number: &str) -> Result<Case, UiError> {
    let number: i64 = number.parse().map_err(|_| UiError::NotFound)?;
    Ok(state.store.get_case_by_number(&session.actor, number).await?)
}

/// A case as the customer sees it: its fields (the assignee read-only, no
/// teams), its files and its public stream with a reply form.
async fn show_case(
    State(state): State<AppState>,
    session: PortalSession,
    Path((_, number)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let case = load_case(&state, &session, &number).await?;
    let may_stream = session.actor.decide_stream(&case.ownership()) == Decision::Allow;
    let notes = if may_stream {
        state.store.case_stream(&session.actor, &case.id, Window::new(Some(200), None)).await?.items
    } else {
        Vec::new()
    };
    let mut author_ids: Vec<String> = notes.iter().filter_map(|n| n.author_id.clone()).collect();
    author_ids.extend(case.assigned_user_id.clone());
    let names = state.store.user_names(&author_ids).await?;
    let mut files = Vec::new();
    for id in &case.attachment_ids {
        if let Ok(record) = state.store.get_attachment(&session.actor, id).await {
            files.push(json!({"id": record.id, "name": record.name, "size": record.size}));
        }
    }
    let mut context = session.context();
    context.insert(
        "case",
        &json!({
            "number": case.number,
            "name": case.name,
            "status": case.status,
            "priority": case.priority,
            "type": case.case_type,
            "assignee": case.assigned_user_id.as_ref().and_then(|id| names.get(id)),
            "created_at": case.created_at.format("%Y-%m-%d %H:%M").to_string(),
        }),
    );
    context.insert("description_html", &case.description.as_deref().map(markdown));
    context.insert("files", &files);
    context.insert("may_stream", &may_stream);
    // The notes' files by name (the store says which the customer may
    // fetch).
    let mut file_names = BTreeMap::new();
    for id in notes.iter().flat_map(|n| n.attachment_ids.iter()) {
        if let Ok(record) = state.store.get_attachment(&session.actor, id).await {
            file_names.insert(id.clone(), record.name);
        }
    }
    let rows: Vec<Value> = notes.iter().filter_map(|n| note_row(n, &session, &names, &file_names)).collect();
    context.insert("notes", &rows);
    let reply_error = match query_pairs(raw.as_deref()).ok().map(|p| param(&p, "error")).as_deref() {
        Some("empty") => Some("Write something, or attach a file, before sending."),
        Some("too_long") => Some("Your reply is too long. Send it in parts, or attach it as a file."),
        _ => None,
    };
    context.insert("reply_error", &reply_error);
    state.store.mark_case_notifications_read(&session.actor, &case.id).await?;
    context.insert("unread", &state.store.unread_notifications(&session.actor).await?);
    Ok(page(&state, "portal/case.html", &context))
}

/// A stream note in customer words; notes about the helpdesk's own
/// housekeeping (assignment, linked contacts, other fields) are left out.
fn note_row(
    note: &Note,
    session: &PortalSession,
    names: &BTreeMap<String, String>,
    file_names: &BTreeMap<String, String>,
) -> Option<Value> {
    let author = match note.author_id.as_deref() {
        Some(id) if id == session.actor.user_id => "You".to_string(),
        Some(id) => names.get(id).cloned().unwrap_or_else(|| "Support".into()),
        None => "Support".to_string(),
    };
    let text = match note.note_type {
        NoteType::Create => "opened this case".to_string(),
        NoteType::Post => "wrote".to_string(),
        NoteType::EmailReceived => "wrote by email".to_string(),
        NoteType::EmailSent => "replied by email".to_string(),
        NoteType::Update => {
            let status = note.data["attributes"]["became"]["status"].as_str()?;
            format!("changed the status to {status}")
        }
        NoteType::Assign | NoteType::Relate | NoteType::Unrelate => return None,
    };
    Some(json!({
        "type": note.note_type,
        "author": author,
        "text": text,
        "post_html": note.post.as_deref().map(markdown),
        "attachments": note
            .attachment_ids
            .iter()
            .filter_map(|id| file_names.get(id).map(|name| json!({"id": id, "name": name})))
            .collect::<Vec<_>>(),
        "created_at": note.created_at.format("%Y-%m-%d %H:%M").to_string(),
    }))
}

/// A reply on the case's stream, with files; always public.
async fn reply(
    State(state): State<AppState>,
    session: PortalSession,
    Path((_, number)): Path<(String, String)>,
    multipart: Multipart,
) -> Result<Response, UiError> {
    let case = load_case(&state, &session, &number).await?;
    let submitted = read_multipart(&state, &session, multipart).await?;
    let text = submitted.fields.get("post").cloned().unwrap_or_default();
    let post = NewPost { post: text, is_internal: false, attachment_ids: submitted.attachment_ids.clone() };
    let base = format!("{}/cases/{}", home(&session.portal), case.number);
    match state.store.create_post(&session.actor, &case.id, &post).await {
        Ok(_) => Ok(Redirect::to(&format!("{base}#stream")).into_response()),
        Err(StoreError::Invalid(_)) => {
            discard_uploads(&state, &session, &submitted.attachment_ids).await;
            // The only ways a reply is invalid: nothing in it, or too much.
            let code = if post.post.trim().is_empty() { "empty" } else { "too_long" };
            Ok(Redirect::to(&format!("{base}?error={code}#reply")).into_response())
        }
        Err(other) => {
            discard_uploads(&state, &session, &submitted.attachment_ids).await;
            Err(other.into())
        }
    }
}

/// A file of a case, a public note or an article the customer may read.
async fn attachment(
    State(state): State<AppState>,
    session: PortalSession,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let record = state.store.get_attachment(&session.actor, &id).await?;
    Ok(file_response(&state, &record).await?)
}

async fn notifications(State(state): State<AppState>, session: PortalSession) -> Result<Response, UiError> {
    let list = state.store.notifications(&session.actor, false, Window::new(Some(100), None)).await?;
    let items: Vec<Value> = list
        .items
        .iter()
        .map(|n| {
            let what = match n.note_type {
                NoteType::Update => "Status changed",
                NoteType::Create => "New case",
                _ => "New reply",
            };
            json!({"number": n.case_number, "name": n.case_name, "what": what, "is_read": n.is_read,
                   "created_at": n.created_at.format("%Y-%m-%d %H:%M").to_string()})
        })
        .collect();
    let mut context = session.context();
    context.insert("items", &items);
    context.insert("total", &list.total);
    Ok(page(&state, "portal/notifications.html", &context))
}

async fn read_all(State(state): State<AppState>, session: PortalSession, body: Bytes) -> Result<Response, UiError> {
    session.check_csrf(&FormData::parse(&body)?)?;
    state.store.mark_all_notifications_read(&session.actor).await?;
    Ok(Redirect::to(&format!("{}/notifications", home(&session.portal))).into_response())
}

/// The knowledge base: the category tree, a search box and the articles
/// published to this portal.
async fn knowledge_base(
    State(state): State<AppState>,
    session: PortalSession,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let pairs = query_pairs(raw.as_deref()).map_err(|_| UiError::NotFound)?;
    let q = param(&pairs, "q");
    let category = param(&pairs, "category");
    let page_number = param(&pairs, "page").parse::<i64>().unwrap_or(1).max(1);
    let filter = ArticleFilter {
        q: Some(q.clone()).filter(|q| !q.is_empty()),
        category_id: Some(category.clone()).filter(|c| !c.is_empty()),
        window: Window::new(Some(PAGE_SIZE), Some((page_number - 1).saturating_mul(PAGE_SIZE))),
        ..Default::default()
    };
    let articles = match state.store.list_articles(&session.actor, &filter).await {
        // A category id that is not one: nothing in it.
        Err(StoreError::Invalid(_)) => docket_domain::listing::Page { items: Vec::new(), total: 0 },
        other => other?,
    };
    let categories = state.store.list_categories(&session.actor).await?;
    let depth = |id: &str| {
        let mut depth = 0;
        let mut parent = categories.iter().find(|c| c.id == id).and_then(|c| c.parent_id.clone());
        while let Some(id) = parent {
            depth += 1;
            parent = categories.iter().find(|c| c.id == id).and_then(|c| c.parent_id.clone());
            if depth > 20 {
                break;
            }
        }
        depth
    };
    let category_rows: Vec<Value> =
        categories.iter().map(|c| json!({"id": c.id, "name": c.name, "depth": depth(&c.id)})).collect();
    let mut context = session.context();
    context.insert(
        "articles",
        &articles
            .items
            .iter()
            .map(|a| json!({"id": a.id, "name": a.name, "description": a.description}))
            .collect::<Vec<_>>(),
    );
    context.insert("total", &articles.total);
    context.insert("categories", &category_rows);
    context.insert("category", &category);
    context.insert("category_url", &url_encode(&category));
    context.insert("q", &q);
    context.insert("q_url", &url_encode(&q));
    context.insert("page", &page_number);
    context.insert("pages", &((articles.total + PAGE_SIZE - 1) / PAGE_SIZE).max(1));
    Ok(page(&state, "portal/kb.html", &context))
}

async fn article(
    State(state): State<AppState>,
    session: PortalSession,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let article = state.store.get_article(&session.actor, &id).await?;
    let mut files = Vec::new();
    for id in &article.attachment_ids {
        if let Ok(record) = state.store.get_attachment(&session.actor, id).await {
            files.push(json!({"id": record.id, "name": record.name, "size": record.size}));
        }
    }
    let mut context = session.context();
    context.insert(
        "article",
        &json!({"name": article.name, "description": article.description,
                "modified_at": article.modified_at.format("%Y-%m-%d").to_string()}),
    );
    context.insert("body_html", &markdown(&article.body));
    context.insert("files", &files);
    Ok(page(&state, "portal/article.html", &context))
}
