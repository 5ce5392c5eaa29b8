//! Account and contact pages: searchable lists, and a page per record
//! with its details and its cases.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use docket_domain::listing::{CaseFilter, SimpleFilter, Window};
use serde_json::json;

use super::render::{UiError, page, page_with_status};
use super::session::{FormData, UiSession};
use crate::app::AppState;
use crate::extract::query_pairs;
use docket_domain::user::PortalInvitation;
use docket_store::StoreError;

const PAGE_SIZE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts", get(accounts))
        .route("/accounts/{id}", get(account))
        .route("/contacts", get(contacts))
        .route("/contacts/{id}", get(contact))
        .route("/contacts/{id}/invite", axum::routing::post(invite))
}

/// `q` and `page` from the query string.
fn list_filter(raw: Option<&str>) -> Result<(SimpleFilter, String, i64), UiError> {
    let pairs = query_pairs(raw).map_err(|_| UiError::NotFound)?;
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string());
    let q = get("q").unwrap_or_default();
    let page_number = get("page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).max(1);
    let filter = SimpleFilter {
        q: Some(q.clone()).filter(|q| !q.is_empty()),
        account_id: None,
        sort: None,
        window: Window::new(Some(PAGE_SIZE), Some((page_number - 1).saturating_mul(PAGE_SIZE))),
    };
    Ok((filter, q, page_number))
}

async fn accounts(
    State(state): State<AppState>,
    session: UiSession,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let (filter, q, page_number) = list_filter(raw.as_deref())?;
    let list = state.store.list_accounts(&session.actor, &filter).await?;
    let mut context = session.context();
    context.insert("accounts", &list.items);
    context.insert("total", &list.total);
    context.insert("q", &q);
    context.insert("page", &page_number);
    context.insert("pages", &((list.total + PAGE_SIZE - 1) / PAGE_SIZE).max(1));
    Ok(page(&state, "accounts/list.html", &context))
}

async fn account(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let account = state.store.get_account(&session.actor, &id).await?;
    let cases = state
        .store
        .list_cases(
            &session.actor,
            &CaseFilter { account_id: Some(id.clone()), window: Window::new(Some(200), None), ..Default::default() },
        )
        .await?;
    let contacts = state
        .store
        .list_contacts(
            &session.actor,
            &SimpleFilter { account_id: Some(id), window: Window::new(Some(200), None), ..Default::default() },
        )
        .await?;
    let mut context = session.context();
    context.insert("account", &account);
    context.insert("cases", &cases.items.iter().map(case_summary).collect::<Vec<_>>());
    context.insert("case_total", &cases.total);
    context.insert("contacts", &contacts.items);
    Ok(page(&state, "accounts/show.html", &context))
}

async fn contacts(
    State(state): State<AppState>,
    session: UiSession,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let (filter, q, page_number) = list_filter(raw.as_deref())?;
    let list = state.store.list_contacts(&session.actor, &filter).await?;
    let mut context = session.context();
    context.insert("contacts", &list.items);
    context.insert("total", &list.total);
    context.insert("q", &q);
    context.insert("page", &page_number);
    context.insert("pages", &((list.total + PAGE_SIZE - 1) / PAGE_SIZE).max(1));
    Ok(page(&state, "contacts/list.html", &context))
}

async fn contact(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    // Fixed words only: a link cannot make this page say something else.
    let invited = query_pairs(raw.as_deref()).unwrap_or_default().iter().any(|(k, v)| k == "invited" && v == "1");
    let notice = invited.then(|| "Invitation sent: the customer gets an email to choose a password.".to_string());
    contact_page(&state, &session, id, notice, None, StatusCode::OK).await
}

async fn contact_page(
    state: &AppState,
    session: &UiSession,
    id: String,
    notice: Option<String>,
    invite_error: Option<String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let contact = state.store.get_contact(&session.actor, &id).await?;
    let cases = state
        .store
        .list_cases(
            &session.actor,
            &CaseFilter { contact_id: Some(id), window: Window::new(Some(200), None), ..Default::default() },
        )
        .await?;
    let mut accounts = Vec::new();
    for account_id in &contact.account_ids {
        if let Ok(account) = state.store.get_account(&session.actor, account_id).await {
            accounts.push(json!({"id": account.id, "name": account.name}));
        }
    }
    let mut context = session.context();
    context.insert("contact", &contact);
    context.insert("accounts", &accounts);
    context.insert("cases", &cases.items.iter().map(case_summary).collect::<Vec<_>>());
    context.insert("case_total", &cases.total);
    context.insert("notice", &notice);
    context.insert("invite_error", &invite_error);
    Ok(page_with_status(state, "contacts/show.html", &context, status))
}

/// "Invite to the portal": a portal user for the contact, and an email
/// with a link to choose a password.
async fn invite(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    session.check_csrf(&FormData::parse(&body)?)?;
    match state.store.invite_contact(&session.actor, &id, &PortalInvitation::default()).await {
        Ok(_) => {
            state.jobs_wakeup.notify_one();
            Ok(Redirect::to(&format!("/contacts/{id}?invited=1")).into_response())
        }
        Err(error @ (StoreError::Invalid(_) | StoreError::Forbidden(_))) => {
            let message = match error {
                StoreError::Invalid(invalid) => invalid.fields.into_values().collect::<Vec<_>>().join("; "),
                other => other.to_string(),
            };
            contact_page(&state, &session, id, None, Some(message), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(other) => Err(other.into()),
    }
}

fn case_summary(case: &docket_domain::case::Case) -> serde_json::Value {
    json!({
        "number": case.number, "name": case.name, "status": case.status, "priority": case.priority,
        "modified_at": case.modified_at.format("%Y-%m-%d %H:%M").to_string(),
    })
}
