//! `/api/v1/kb`: knowledge-base articles and categories; articles related
//! to a case and suggested for it.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use docket_domain::kb::{Article, ArticleInput, ArticleStatus, Category, CategoryInput};
use docket_domain::listing::{Page, Window};
use docket_store::ArticleFilter;
use serde::Serialize;

use super::{expected_version, integer};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, query_pairs};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/kb/articles", post(create_article).get(list_articles))
        .route("/kb/articles/{id}", get(show_article).put(update_article).delete(remove_article))
        .route("/kb/categories", post(create_category).get(list_categories))
        .route("/kb/categories/{id}", put(update_category).delete(remove_category))
        .route("/cases/{id}/articles", get(case_articles))
        .route("/cases/{id}/articles/{article_id}", put(relate).delete(unrelate))
        .route("/cases/{id}/article-suggestions", get(suggestions))
}

async fn create_article(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<ArticleInput>,
) -> ApiResult<(StatusCode, Json<Article>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_article(&auth.actor, input).await?)))
}

async fn list_articles(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<Article>>> {
    let mut filter = ArticleFilter::default();
    let (mut limit, mut offset) = (None, None);
    for (key, value) in query_pairs(raw.as_deref())? {
        match key.as_str() {
            "q" if value.chars().count() > 200 => return Err(ApiError::field("q", "at most 200 characters")),
            "q" => filter.q = Some(value),
            "status" => filter.status = Some(ArticleStatus::parse(&value).map_err(|e| ApiError::field("status", e))?),
            "category_id" => filter.category_id = Some(value),
            "limit" => limit = Some(integer("limit", &value)?),
            "offset" => offset = Some(integer("offset", &value)?),
            other => {
                return Err(ApiError::field(
                    other,
                    "unknown parameter; allowed: q, status, category_id, limit, offset",
                ));
            }
        }
    }
    filter.window = Window::new(limit, offset);
    Ok(Json(state.store.list_articles(&auth.actor, &filter).await?))
}

async fn show_article(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Article>> {
    Ok(Json(state.store.get_article(&auth.actor, &id).await?))
}

async fn update_article(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(mut input): ApiJson<ArticleInput>,
) -> ApiResult<Json<Article>> {
    input.version = expected_version(input.version, &headers)?;
    Ok(Json(state.store.update_article(&auth.actor, &id, input).await?))
}

async fn remove_article(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let files = state.store.delete_article(&auth.actor, &id).await?;
    super::attachments::remove_files(&state, &files).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_category(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<CategoryInput>,
) -> ApiResult<(StatusCode, Json<Category>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_category(&auth.actor, input).await?)))
}

#[derive(Serialize)]
struct Items<T> {
    items: Vec<T>,
}

async fn list_categories(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Items<Category>>> {
    Ok(Json(Items { items: state.store.list_categories(&auth.actor).await? }))
}

async fn update_category(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(mut input): ApiJson<CategoryInput>,
) -> ApiResult<Json<Category>> {
    input.version = expected_version(input.version, &headers)?;
    Ok(Json(state.store.update_category(&auth.actor, &id, input).await?))
}

async fn remove_category(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_category(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn case_articles(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Items<Article>>> {
    Ok(Json(Items { items: state.store.case_articles(&auth.actor, &id).await? }))
}

async fn relate(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, article_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.store.relate_article(&auth.actor, &id, &article_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unrelate(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, article_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.store.unrelate_article(&auth.actor, &id, &article_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn suggestions(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Items<Article>>> {
    let mut limit = 5;
    for (key, value) in query_pairs(raw.as_deref())? {
        match key.as_str() {
            "limit" => limit = integer("limit", &value)?,
            other => return Err(ApiError::field(other, "unknown parameter; allowed: limit")),
        }
    }
    Ok(Json(Items { items: state.store.suggest_articles(&auth.actor, &id, limit).await? }))
}
