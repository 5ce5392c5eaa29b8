//! The knowledge base in the agent area (`/kb`): search, articles with
//! their rendered body, the edit form, categories; and relating articles
//! to a case from its page.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use docket_domain::kb::{ArticleInput, ArticleStatus, CategoryInput};
use docket_domain::listing::Window;
use docket_store::{ArticleFilter, StoreError};
use serde_json::{Value, json};

use super::render::{UiError, markdown, page, page_with_status};
use super::session::{FormData, UiSession, csrf_failed};
use crate::api::attachments::save_upload;
use crate::app::AppState;
use crate::extract::query_pairs;

const PAGE_SIZE: i64 = 50;

pub fn router(state: &AppState) -> Router<AppState> {
    let upload_limit = crate::api::attachments::upload_body_limit(state);
    Router::new()
        .route("/kb/{id}/attachments", post(upload).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/kb", get(list).post(create))
        .route("/kb/new", get(new_form))
        .route("/kb/categories", get(categories).post(create_category))
        .route("/kb/categories/{id}/delete", post(delete_category))
        .route("/kb/{id}", get(show))
        .route("/kb/{id}/edit", get(edit_form).post(update))
        .route("/kb/{id}/delete", post(delete))
        .route("/cases/{number}/articles/{article_id}", post(relate))
        .route("/cases/{number}/articles/{article_id}/remove", post(unrelate))
}

fn staff_only(session: &UiSession) -> Result<(), UiError> {
    if session.actor.is_staff() { Ok(()) } else { Err(UiError::NotFound) }
}

async fn list(State(state): State<AppState>, session: UiSession, RawQuery(raw): RawQuery) -> Result<Response, UiError> {
    staff_only(&session)?;
    let pairs = query_pairs(raw.as_deref()).map_err(|_| UiError::NotFound)?;
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string());
    let q = get("q").unwrap_or_default();
    let category_id = get("category_id").filter(|c| !c.is_empty());
    let status = get("status").and_then(|s| ArticleStatus::parse(&s).ok());
    let page_number = get("page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).max(1);
    let filter = ArticleFilter {
        q: Some(q.clone()).filter(|q| !q.is_empty()),
        status,
        category_id: category_id.clone(),
        window: Window::new(Some(PAGE_SIZE), Some((page_number - 1).saturating_mul(PAGE_SIZE))),
    };
    let articles = state.store.list_articles(&session.actor, &filter).await?;
    let categories = state.store.list_categories(&session.actor).await?;
    let mut context = session.context();
    context.insert("articles", &articles.items);
    context.insert("total", &articles.total);
    context.insert("categories", &categories);
    context.insert("q", &q);
    context.insert("category_id", &category_id.unwrap_or_default());
    context.insert("status", &status.map(ArticleStatus::as_str).unwrap_or(""));
    context.insert("statuses", &ArticleStatus::ALL.map(ArticleStatus::as_str));
    context.insert("page", &page_number);
    context.insert("pages", &((articles.total + PAGE_SIZE - 1) / PAGE_SIZE).max(1));
    Ok(page(&state, "kb/list.html", &context))
}

async fn show(State(state): State<AppState>, session: UiSession, Path(id): Path<String>) -> Result<Response, UiError> {
    staff_only(&session)?;
    let article = state.store.get_article(&session.actor, &id).await?;
    let categories = state.store.list_categories(&session.actor).await?;
    let mut context = session.context();
    context.insert("body_html", &markdown(&article.body));
    let names: Vec<&str> =
        categories.iter().filter(|c| article.category_ids.contains(&c.id)).map(|c| c.name.as_str()).collect();
    context.insert("category_names", &names);
    let mut attachments = Vec::new();
    for id in &article.attachment_ids {
        if let Ok(record) = state.store.get_attachment(&session.actor, id).await {
            attachments.push(json!({"id": record.id, "name": record.name, "size": record.size}));
        }
    }
    context.insert("attachments", &attachments);
    context.insert("article", &article);
    Ok(page(&state, "kb/show.html", &context))
}

async fn new_form(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    staff_only(&session)?;
    let values = json!({"status": "Draft", "portal_ids": [], "category_ids": []});
    article_form(&state, &session, None, values, BTreeMap::new(), StatusCode::OK).await
}

async fn edit_form(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    staff_only(&session)?;
    let article = state.store.get_article(&session.actor, &id).await?;
    let values = serde_json::to_value(&article).unwrap_or_default();
    article_form(&state, &session, Some(&id), values, BTreeMap::new(), StatusCode::OK).await
}

/// The form's fields as an input, with field errors for dates that do not
/// parse.
fn article_input(form: &FormData, errors: &mut BTreeMap<String, String>) -> ArticleInput {
    let mut date = |name: &str| {
        let text = form.get(name).trim();
        if text.is_empty() {
            return None;
        }
        text.parse().map_err(|_| errors.insert(name.to_string(), "use a date such as 2026-12-31".into())).ok()
    };
    let publish_date = date("publish_date");
    let expiration_date = date("expiration_date");
    let status =
        ArticleStatus::parse(form.get("status")).map_err(|e| errors.insert("status".into(), e)).unwrap_or_default();
    let order = match form.get("order").trim() {
        "" => None,
        text => text.parse().map_err(|_| errors.insert("order".into(), "a whole number, or empty".into())).ok(),
    };
    ArticleInput {
        name: form.get("name").to_string(),
        status,
        language: form.get("language").to_string(),
        portal_ids: form.all("portal_ids"),
        category_ids: form.all("category_ids"),
        publish_date,
        expiration_date,
        order,
        description: form.optional("description"),
        body: form.get("body").to_string(),
        // Kept as they are (set through the API, or the upload form).
        assigned_user_id: form.optional("assigned_user_id"),
        attachment_ids: form.all("attachment_ids"),
        version: form.get("version").parse().ok(),
    }
}

async fn create(state: State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    save(state, session, None, body).await
}

async fn update(
    state: State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    save(state, session, Some(id), body).await
}

async fn save(
    State(state): State<AppState>,
    session: UiSession,
    id: Option<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    staff_only(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let mut errors = BTreeMap::new();
    let input = article_input(&form, &mut errors);
    let mut values = serde_json::to_value(&input).unwrap_or_default();
    // What was typed, also when it did not parse.
    values["publish_date"] = json!(form.get("publish_date"));
    values["expiration_date"] = json!(form.get("expiration_date"));
    if errors.is_empty() {
        let result = match &id {
            None => state.store.create_article(&session.actor, input).await,
            Some(id) => state.store.update_article(&session.actor, id, input).await,
        };
        match result {
            Ok(article) => return Ok(Redirect::to(&format!("/kb/{}", article.id)).into_response()),
            Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
            Err(StoreError::VersionConflict { current }) => {
                errors.insert(
                    "name".into(),
                    format!("someone else changed this article (now version {current}); reload"),
                );
            }
            Err(other) => return Err(other.into()),
        }
    }
    article_form(&state, &session, id.as_deref(), values, errors, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn delete(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    staff_only(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    let files = state.store.delete_article(&session.actor, &id).await?;
    crate::api::attachments::remove_files(&state, &files).await;
    Ok(Redirect::to("/kb").into_response())
}

async fn article_form(
    state: &AppState,
    session: &UiSession,
    id: Option<&str>,
    values: Value,
    errors: BTreeMap<String, String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let categories = state.store.list_categories(&session.actor).await?;
    // Portals are listed for admins; agents keep what an article has.
    let portals =
        if session.actor.is_admin() { state.store.list_portals(&session.actor).await?.items } else { Vec::new() };
    let mut context = session.context();
    context.insert("article_id", &id);
    context.insert("values", &values);
    context.insert("categories", &categories);
    context.insert("portals", &portals);
    context.insert("statuses", &ArticleStatus::ALL.map(ArticleStatus::as_str));
    context.insert("errors", &errors);
    Ok(page_with_status(state, "kb/form.html", &context, status))
}

async fn categories(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    staff_only(&session)?;
    categories_page(&state, &session, BTreeMap::new(), StatusCode::OK).await
}

async fn categories_page(
    state: &AppState,
    session: &UiSession,
    errors: BTreeMap<String, String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let categories = state.store.list_categories(&session.actor).await?;
    // Depth, for indenting the tree.
    let depth = |id: &str| {
        let mut depth = 0;
        let mut parent = categories.iter().find(|c| c.id == id).and_then(|c| c.parent_id.clone());
        while let Some(p) = parent {
            depth += 1;
            parent = categories.iter().find(|c| c.id == p).and_then(|c| c.parent_id.clone());
        }
        depth
    };
    let rows: Vec<Value> = categories.iter().map(|c| json!({"category": c, "depth": depth(&c.id)})).collect();
    let mut context = session.context();
    context.insert("rows", &rows);
    context.insert("categories", &categories);
    context.insert("errors", &errors);
    Ok(page_with_status(state, "kb/categories.html", &context, status))
}

async fn create_category(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    staff_only(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let order = match form.get("order").trim() {
        "" => Ok(0),
        text => text.parse::<i64>(),
    };
    let Ok(order) = order else {
        let errors = BTreeMap::from([("order".to_string(), "a whole number".to_string())]);
        return categories_page(&state, &session, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let input = CategoryInput {
        name: form.get("name").to_string(),
        parent_id: form.optional("parent_id"),
        order,
        description: form.optional("description"),
        version: None,
    };
    match state.store.create_category(&session.actor, input).await {
        Ok(_) => Ok(Redirect::to("/kb/categories").into_response()),
        Err(StoreError::Invalid(invalid)) => {
            categories_page(&state, &session, invalid.fields, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(other) => Err(other.into()),
    }
}

async fn delete_category(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    staff_only(&session)?;
    session.check_csrf(&FormData::parse(&body)?)?;
    state.store.delete_category(&session.actor, &id).await?;
    Ok(Redirect::to("/kb/categories").into_response())
}

/// Adds a file to an article (multipart: `csrf_token`, then `file`).
async fn upload(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Result<Response, UiError> {
    staff_only(&session)?;
    let unreadable = |_| UiError::Forbidden("The upload could not be read. Try again.".into());
    let mut csrf_ok = false;
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("csrf_token") => csrf_ok = session.csrf_matches(&field.text().await.map_err(unreadable)?),
            Some("file") if !csrf_ok => return Err(csrf_failed()),
            Some("file") if field.file_name().is_none_or(str::is_empty) => break,
            Some("file") => {
                let record = save_upload(&state, &session.actor, field).await.map_err(UiError::from)?;
                state.store.attach_to_article(&session.actor, &id, &record.id).await?;
                break;
            }
            _ => {}
        }
    }
    Ok(Redirect::to(&format!("/kb/{id}")).into_response())
}

/// The case behind a number in a path.
async fn case_id(state: &AppState, session: &UiSession, number: &str) -> Result<(String, i64), UiError> {
    let number: i64 = number.parse().map_err(|_| UiError::NotFound)?;
    let case = state.store.get_case_by_number(&session.actor, number).await?;
    Ok((case.id, number))
}

async fn relate(
    State(state): State<AppState>,
    session: UiSession,
    Path((number, article_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, UiError> {
    session.check_csrf(&FormData::parse(&body)?)?;
    let (case_id, number) = case_id(&state, &session, &number).await?;
    state.store.relate_article(&session.actor, &case_id, &article_id).await?;
    Ok(Redirect::to(&format!("/cases/{number}#articles")).into_response())
}

async fn unrelate(
    State(state): State<AppState>,
    session: UiSession,
    Path((number, article_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, UiError> {
    session.check_csrf(&FormData::parse(&body)?)?;
    let (case_id, number) = case_id(&state, &session, &number).await?;
    state.store.unrelate_article(&session.actor, &case_id, &article_id).await?;
    Ok(Redirect::to(&format!("/cases/{number}#articles")).into_response())
}
