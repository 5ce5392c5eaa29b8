//! The agent area: case list, detail, create and edit forms, Close and
//! Reject, and the global search box.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use docket_domain::case::{Case, CasePatch, CasePriority, CaseStatus, CaseType, NewCase};
use docket_domain::listing::{CaseFilter, CaseSortField, SimpleFilter, Window, parse_sort};
use docket_domain::note::NoteType;
use docket_domain::{Action, Scope};
use docket_store::{RunFilter, StoreError};
use serde_json::{Value, json};

use super::render::{UiError, markdown, page, page_with_status};
use super::session::{FormData, UiSession, csrf_failed};
use crate::api::attachments::save_upload;
use crate::app::AppState;
use crate::extract::query_pairs;

/// Cases per page in the list.
const PAGE_SIZE: i64 = 25;

pub fn router(state: &AppState) -> Router<AppState> {
    let upload_limit = crate::api::attachments::upload_body_limit(state);
    Router::new()
        .route("/cases/{number}/attachments", post(upload).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/", get(list))
        .route("/search", get(search))
        .route("/cases/new", get(new_form))
        .route("/cases", post(create))
        .route("/cases/{number}", get(show))
        .route("/cases/{number}/edit", get(edit_form).post(update))
        .route("/cases/{number}/close", post(close))
        .route("/cases/{number}/reject", post(reject))
        .route("/cases/{number}/rules/{rule_id}", post(run_manual_rule))
}

/// The case list with the filters agents use every day. Filters live in
/// the query string so a view can be bookmarked.
async fn list(State(state): State<AppState>, session: UiSession, RawQuery(raw): RawQuery) -> Result<Response, UiError> {
    let pairs = query_pairs(raw.as_deref()).map_err(|_| UiError::NotFound)?;
    let get =
        |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string()).filter(|v| !v.is_empty());
    let mut filter = CaseFilter::default();
    // Open cases unless the agent asks for another view.
    let view = get("view").unwrap_or_else(|| "open".into());
    match view.as_str() {
        "closed" => filter.open = Some(false),
        "all" => {}
        _ => filter.open = Some(true),
    }
    if get("mine").is_some() {
        filter.assigned_user_id = Some(session.actor.user_id.clone());
    }
    filter.statuses = get("status").and_then(|s| CaseStatus::parse(&s).ok()).into_iter().collect();
    filter.priorities = get("priority").and_then(|p| CasePriority::parse(&p).ok()).into_iter().collect();
    filter.team_id = get("team_id");
    filter.account_id = get("account_id");
    filter.contact_id = get("contact_id");
    filter.q = get("q");
    let sort = get("sort").unwrap_or_else(|| "-number".into());
    if let Ok(parsed) = parse_sort(&sort, &CaseSortField::ALL) {
        filter.sort = parsed;
    }
    let page_number = get("page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).max(1);
    filter.window = Window::new(Some(PAGE_SIZE), Some((page_number - 1).saturating_mul(PAGE_SIZE)));

    let cases = state.store.list_cases(&session.actor, &filter).await?;
    let names = Names::load(&state, &session).await?;
    let pages = (cases.total + PAGE_SIZE - 1) / PAGE_SIZE;

    let mut context = session.context();
    // Every filter key is present (empty when unset) so templates can
    // compare without checking.
    let mut query: BTreeMap<&str, String> = ["q", "status", "priority", "team_id", "account_id", "mine", "sort"]
        .iter()
        .map(|k| (*k, String::new()))
        .collect();
    for (key, value) in pairs.iter().filter(|(k, _)| k != "page") {
        query.insert(key.as_str(), value.clone());
    }
    context.insert("query", &query);
    let set: BTreeMap<&str, &String> = query.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (*k, v)).collect();
    context.insert("query_string", &serde_urlencoded::to_string(&set).unwrap_or_default());
    context.insert("view", &view);
    context.insert("sort", &sort);
    let sort_options = [
        ("-number", "Newest"),
        ("number", "Oldest"),
        ("-priority", "Priority"),
        ("-modified_at", "Recently changed"),
        ("name", "Subject"),
    ];
    context.insert("sort_options", &sort_options.map(|(value, label)| json!({"value": value, "label": label})));
    context.insert("cases", &cases.items.iter().map(|c| case_row(c, &names)).collect::<Vec<_>>());
    context.insert("total", &cases.total);
    context.insert("page", &page_number);
    context.insert("pages", &pages.max(1));
    context.insert("statuses", &CaseStatus::ALL.map(CaseStatus::as_str));
    context.insert("priorities", &CasePriority::ALL.map(CasePriority::as_str));
    context.insert("teams", &names.teams_list());
    context.insert("accounts", &names.accounts_list());
    Ok(page(&state, "cases/list.html", &context))
}

/// The search box: a case number (`42`, `#42`) jumps straight to the case.
async fn search(
    State(state): State<AppState>,
    session: UiSession,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let pairs = query_pairs(raw.as_deref()).map_err(|_| UiError::NotFound)?;
    let q = pairs.iter().find(|(k, _)| k == "q").map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    if let Ok(number) = q.trim_start_matches('#').parse::<i64>()
        && state.store.get_case_by_number(&session.actor, number).await.is_ok()
    {
        return Ok(Redirect::to(&format!("/cases/{number}")).into_response());
    }
    let query = serde_urlencoded::to_string([("view", "all"), ("q", q.as_str())]).unwrap_or_default();
    Ok(Redirect::to(&format!("/?{query}")).into_response())
}

async fn show(
    State(state): State<AppState>,
    session: UiSession,
    Path(number): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let case = load(&state, &session, &number).await?;
    let names = Names::load(&state, &session).await?;
    let stream = state.store.case_stream(&session.actor, &case.id, Window::new(Some(200), None)).await?;
    let mut context = session.context();
    context.insert("case", &case_row(&case, &names));
    context.insert("description_html", &case.description.as_deref().map(markdown));
    context.insert("notes", &stream.items.iter().map(|n| note_row(n, &names)).collect::<Vec<_>>());
    let mut attachments = Vec::new();
    for id in &case.attachment_ids {
        if let Ok(record) = state.store.get_attachment(&session.actor, id).await {
            attachments.push(json!({"id": record.id, "name": record.name, "size": human_size(record.size), "content_type": record.content_type}));
        }
    }
    context.insert("attachments", &attachments);
    context.insert("can_finish", &case.status.is_open());
    let followers = state.store.followers(&session.actor, &case.id).await?;
    context.insert("following", &followers.iter().any(|f| f.user_id == session.actor.user_id));
    context.insert("followers", &followers);
    context.insert("post_error", &raw.as_deref().is_some_and(|q| q.contains("post_error=1")));
    context.insert("notice", &session.notice(raw.as_deref()));
    context.insert("email_error", &session.message(raw.as_deref(), "email_error"));
    context.insert("email_subject", &format!("[#{}] {}", case.number, case.name));
    context.insert("manual_rules", &state.store.manual_rules(&session.actor, &case.id).await?);
    let runs = if session.actor.is_admin() {
        let filter =
            RunFilter { case_id: Some(case.id.clone()), window: Window::new(Some(20), None), ..Default::default() };
        state.store.rule_runs(&session.actor, &filter).await?.items
    } else {
        Vec::new()
    };
    context.insert("rule_runs", &runs);
    context.insert("related_articles", &state.store.case_articles(&session.actor, &case.id).await?);
    context.insert("suggested_articles", &state.store.suggest_articles(&session.actor, &case.id, 5).await?);
    // Opening the case reads its notifications (and the header says so).
    state.store.mark_case_notifications_read(&session.actor, &case.id).await?;
    context.insert("unread", &state.store.unread_notifications(&session.actor).await?);
    Ok(page(&state, "cases/show.html", &context))
}

/// The new-case form; `?account_id=` and `?contact_id=` preselect (the
/// account and contact pages link here).
async fn new_form(
    State(state): State<AppState>,
    session: UiSession,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let pairs = query_pairs(raw.as_deref()).map_err(|_| UiError::NotFound)?;
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let values = json!({
        "name": "", "description": "", "status": "New", "priority": "Normal", "type": "",
        "account_id": get("account_id"), "contact_id": get("contact_id"), "assigned_user_id": "", "team_ids": [],
        "is_internal": false, "version": "",
    });
    form_page(&state, &session, None, values, BTreeMap::new(), None, StatusCode::OK).await
}

async fn create(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let values = form_values(&form);
    let mut errors = BTreeMap::new();
    let new = NewCase {
        name: form.get("name").to_string(),
        description: form.optional("description"),
        status: parse_choice(&form, "status", CaseStatus::parse, &mut errors),
        priority: parse_choice(&form, "priority", CasePriority::parse, &mut errors),
        case_type: parse_choice(&form, "type", CaseType::parse, &mut errors),
        account_id: form.optional("account_id"),
        contact_id: form.optional("contact_id"),
        assigned_user_id: form.optional("assigned_user_id"),
        team_ids: form.all("team_ids"),
        is_internal: form.checked("is_internal"),
        ..Default::default()
    };
    if errors.is_empty() {
        let result = match new.validate() {
            Ok(draft) => state.store.create_case(&session.actor, draft).await,
            Err(invalid) => Err(StoreError::Invalid(invalid)),
        };
        match result {
            Ok(case) => return Ok(Redirect::to(&format!("/cases/{}", case.number)).into_response()),
            Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
            Err(StoreError::Rejected { rule, message }) => {
                let message = rejection(&rule, &message);
                return form_page(
                    &state,
                    &session,
                    None,
                    values,
                    errors,
                    Some(message),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            Err(other) => return Err(other.into()),
        }
    }
    form_page(&state, &session, None, values, errors, None, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// A rule's refusal as shown above the form: the rule's own words, and
/// which rule, so the user knows whom to ask.
fn rejection(rule: &str, message: &str) -> String {
    format!("Not saved: {message} (rule “{rule}”).")
}

async fn edit_form(
    State(state): State<AppState>,
    session: UiSession,
    Path(number): Path<String>,
) -> Result<Response, UiError> {
    let case = load(&state, &session, &number).await?;
    let values = json!({
        "name": case.name, "description": case.description, "status": case.status, "priority": case.priority,
        "type": case.case_type, "account_id": case.account_id, "contact_id": case.contact_id,
        "assigned_user_id": case.assigned_user_id, "team_ids": case.team_ids, "is_internal": case.is_internal,
        "version": case.version,
    });
    form_page(&state, &session, Some(&case), values, BTreeMap::new(), None, StatusCode::OK).await
}

async fn update(
    State(state): State<AppState>,
    session: UiSession,
    Path(number): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let case = load(&state, &session, &number).await?;
    let values = form_values(&form);
    let mut errors = BTreeMap::new();
    let patch = CasePatch {
        name: Some(form.get("name").to_string()),
        description: Some(form.optional("description")),
        status: parse_choice(&form, "status", CaseStatus::parse, &mut errors),
        priority: parse_choice(&form, "priority", CasePriority::parse, &mut errors),
        case_type: Some(parse_choice(&form, "type", CaseType::parse, &mut errors)),
        account_id: Some(form.optional("account_id")),
        contact_id: Some(form.optional("contact_id")),
        assigned_user_id: Some(form.optional("assigned_user_id")),
        team_ids: Some(form.all("team_ids")),
        is_internal: Some(form.checked("is_internal")),
        version: form.get("version").parse().ok(),
        ..Default::default()
    };
    if patch.version.is_none() {
        errors.insert("version".into(), "missing: reload the page".into());
    }
    if errors.is_empty() {
        match state.store.update_case(&session.actor, &case.id, &patch).await {
            Ok(updated) => return Ok(Redirect::to(&format!("/cases/{}", updated.number)).into_response()),
            Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
            Err(StoreError::Rejected { rule, message }) => {
                let message = rejection(&rule, &message);
                return form_page(
                    &state,
                    &session,
                    Some(&case),
                    values,
                    errors,
                    Some(message),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            Err(StoreError::VersionConflict { current }) => {
                let message = format!(
                    "Someone else changed this case while you were editing it (it is now at version {current}). \
                     Nothing was saved. Your changes are still in the form: open the case in a new tab to see theirs, \
                     then save again."
                );
                let mut values = values;
                values["version"] = json!(current);
                return form_page(&state, &session, Some(&case), values, errors, Some(message), StatusCode::CONFLICT)
                    .await;
            }
            Err(other) => return Err(other.into()),
        }
    }
    form_page(&state, &session, Some(&case), values, errors, None, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// The upload form on the case page: the CSRF field comes first in the
/// form, so it is checked before any byte of the file is stored.
async fn upload(
    State(state): State<AppState>,
    session: UiSession,
    Path(number): Path<String>,
    mut multipart: Multipart,
) -> Result<Response, UiError> {
    let case = load(&state, &session, &number).await?;
    if !session.actor.allows(Scope::Case, Action::Edit, &case.ownership()) {
        return Err(UiError::Forbidden("You may not change this case, so you cannot attach files to it.".into()));
    }
    let unreadable = |_| UiError::Forbidden("The upload could not be read. Try again.".into());
    let mut csrf_ok = false;
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("csrf_token") => csrf_ok = session.csrf_matches(&field.text().await.map_err(unreadable)?),
            Some("file") if !csrf_ok => return Err(csrf_failed()),
            Some("file") if field.file_name().is_none_or(str::is_empty) => break,
            Some("file") => {
                let record = save_upload(&state, &session.actor, field).await.map_err(UiError::from)?;
                let patch = CasePatch { attachment_ids: Some(vec![record.id]), ..Default::default() };
                state.store.update_case(&session.actor, &case.id, &patch).await?;
                break;
            }
            _ => {}
        }
    }
    Ok(Redirect::to(&format!("/cases/{}", case.number)).into_response())
}

async fn close(
    state: State<AppState>,
    session: UiSession,
    number: Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    finish(state, session, number, body, CaseStatus::Closed).await
}

async fn reject(
    state: State<AppState>,
    session: UiSession,
    number: Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    finish(state, session, number, body, CaseStatus::Rejected).await
}

async fn finish(
    State(state): State<AppState>,
    session: UiSession,
    Path(number): Path<String>,
    body: Bytes,
    status: CaseStatus,
) -> Result<Response, UiError> {
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let case = load(&state, &session, &number).await?;
    if case.status.is_open() {
        // The version read above: if someone closed or changed the case in
        // between, this fails instead of overwriting their outcome.
        let patch = CasePatch { status: Some(status), version: Some(case.version), ..Default::default() };
        match state.store.update_case(&session.actor, &case.id, &patch).await {
            Ok(_) => {}
            Err(StoreError::Rejected { rule, message }) => {
                return Ok(back_with_notice(&session, &case, &rejection(&rule, &message)));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(Redirect::to(&format!("/cases/{}", case.number)).into_response())
}

/// Back to the case page with a message above it.
fn back_with_notice(session: &UiSession, case: &Case, notice: &str) -> Response {
    Redirect::to(&session.notice_location(&format!("/cases/{}", case.number), notice)).into_response()
}

/// A manual rule's button on the case page.
async fn run_manual_rule(
    State(state): State<AppState>,
    session: UiSession,
    Path((number, rule_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, UiError> {
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let case = load(&state, &session, &number).await?;
    let notice = match state.store.run_manual_rule(&session.actor, &case.id, &rule_id).await {
        Ok(run) if run.error.is_some() => {
            format!("“{}” failed: {}", run.rule_name, run.error.unwrap_or_default())
        }
        Ok(run) => format!("“{}” done.", run.rule_name),
        Err(StoreError::Invalid(errors)) => format!("Not run: {}", errors.summary()),
        Err(StoreError::Rejected { rule, message }) => rejection(&rule, &message),
        Err(other) => return Err(other.into()),
    };
    Ok(back_with_notice(&session, &case, &notice))
}

async fn load(state: &AppState, session: &UiSession, number: &str) -> Result<Case, UiError> {
    let number: i64 = number.parse().map_err(|_| UiError::NotFound)?;
    Ok(state.store.get_case_by_number(&session.actor, number).await?)
}

fn parse_choice<T>(
    form: &FormData,
    field: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    errors: &mut BTreeMap<String, String>,
) -> Option<T> {
    let value = form.get(field);
    if value.is_empty() {
        return None;
    }
    match parse(value) {
        Ok(choice) => Some(choice),
        Err(message) => {
            errors.insert(field.to_string(), message);
            None
        }
    }
}

fn form_values(form: &FormData) -> Value {
    json!({
        "name": form.get("name"), "description": form.get("description"), "status": form.get("status"),
        "priority": form.get("priority"), "type": form.get("type"), "account_id": form.get("account_id"),
        "contact_id": form.get("contact_id"), "assigned_user_id": form.get("assigned_user_id"),
        "team_ids": form.all("team_ids"), "is_internal": form.checked("is_internal"), "version": form.get("version"),
    })
}

#[allow(clippy::too_many_arguments)]
async fn form_page(
    state: &AppState,
    session: &UiSession,
    case: Option<&Case>,
    values: Value,
    errors: BTreeMap<String, String>,
    conflict: Option<String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let names = Names::load(state, session).await?;
    let mut context = session.context();
    // The case's current links are always options, even when the agent
    // cannot list them (or they are past the first 200): saving the form
    // must never clear a value the agent did not touch.
    let keep = |list: Vec<Value>, ids: Vec<String>| -> Vec<Value> {
        let mut list = list;
        for id in ids.into_iter().filter(|id| !id.is_empty()) {
            if !list.iter().any(|item| item["id"] == id.as_str()) {
                list.push(json!({"id": id, "name": "(current value)"}));
            }
        }
        list
    };
    let one = |field: &str| values[field].as_str().map(str::to_string).into_iter().collect::<Vec<_>>();
    let team_ids: Vec<String> = values["team_ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    context.insert("teams", &keep(names.teams_list(), team_ids));
    context.insert("accounts", &keep(names.accounts_list(), one("account_id")));
    context.insert("contacts", &keep(names.contacts_list(), one("contact_id")));
    context.insert("users", &keep(names.users_list(), one("assigned_user_id")));
    context.insert("case", &case.map(|c| case_row(c, &names)));
    context.insert("values", &values);
    context.insert("errors", &errors);
    context.insert("conflict", &conflict);
    context.insert("statuses", &CaseStatus::ALL.map(CaseStatus::as_str));
    context.insert("priorities", &CasePriority::ALL.map(CasePriority::as_str));
    context.insert("types", &CaseType::ALL.map(CaseType::as_str));
    context.insert("teams", &names.teams_list());
    context.insert("accounts", &names.accounts_list());
    context.insert("contacts", &names.contacts_list());
    context.insert("users", &names.users_list());
    Ok(page_with_status(state, "cases/form.html", &context, status))
}

/// Display names of the records cases point at, loaded once per page.
pub(super) struct Names {
    users: BTreeMap<String, String>,
    teams: BTreeMap<String, String>,
    accounts: BTreeMap<String, String>,
    contacts: BTreeMap<String, String>,
}

impl Names {
    pub(super) async fn load(state: &AppState, session: &UiSession) -> Result<Names, UiError> {
        let all = SimpleFilter { window: Window::new(Some(200), None), ..Default::default() };
        let actor = &session.actor;
        let users = state
            .store
            .list_users(actor, &all)
            .await?
            .items
            .into_iter()
            .filter(|u| u.is_active)
            .map(|u| (u.id, u.name))
            .collect();
        let teams = state.store.list_teams(actor, &all).await?.items.into_iter().map(|t| (t.id, t.name)).collect();
        let accounts =
            state.store.list_accounts(actor, &all).await?.items.into_iter().map(|a| (a.id, a.name)).collect();
        let contacts =
            state.store.list_contacts(actor, &all).await?.items.into_iter().map(|c| (c.id, c.name)).collect();
        Ok(Names { users, teams, accounts, contacts })
    }

    fn name(map: &BTreeMap<String, String>, id: Option<&str>) -> Option<String> {
        id.map(|id| map.get(id).cloned().unwrap_or_else(|| "(hidden)".into()))
    }

    fn sorted(map: &BTreeMap<String, String>) -> Vec<Value> {
        let mut list: Vec<Value> = map.iter().map(|(id, name)| json!({"id": id, "name": name})).collect();
        list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        list
    }

    fn teams_list(&self) -> Vec<Value> {
        Self::sorted(&self.teams)
    }
    fn accounts_list(&self) -> Vec<Value> {
        Self::sorted(&self.accounts)
    }
    fn contacts_list(&self) -> Vec<Value> {
        Self::sorted(&self.contacts)
    }
    fn users_list(&self) -> Vec<Value> {
        Self::sorted(&self.users)
    }
}

fn case_row(case: &Case, names: &Names) -> Value {
    json!({
        "id": case.id,
        "number": case.number,
        "name": case.name,
        "status": case.status,
        "is_open": case.status.is_open(),
        "priority": case.priority,
        "type": case.case_type,
        "account": Names::name(&names.accounts, case.account_id.as_deref()),
        "account_id": case.account_id,
        "contact": Names::name(&names.contacts, case.contact_id.as_deref()),
        "contacts": case.contact_ids.iter().map(|id| json!({"id": id, "name": Names::name(&names.contacts, Some(id))})).collect::<Vec<_>>(),
        "assignee": Names::name(&names.users, case.assigned_user_id.as_deref()),
        "teams": case.team_ids.iter().map(|id| Names::name(&names.teams, Some(id))).collect::<Vec<_>>(),
        "is_internal": case.is_internal,
        "created_at": case.created_at.format("%Y-%m-%d %H:%M").to_string(),
        "modified_at": case.modified_at.format("%Y-%m-%d %H:%M").to_string(),
        "version": case.version,
    })
}

pub(super) fn note_row(note: &docket_domain::note::Note, names: &Names) -> Value {
    // What a rule did is shown as the rule's doing.
    let author = match note.data["rule"].as_str() {
        Some(rule) => format!("Rule “{rule}”"),
        None => Names::name(&names.users, note.author_id.as_deref()).unwrap_or_else(|| "Docket".into()),
    };
    let text = match note.note_type {
        NoteType::Create => "created this case".to_string(),
        NoteType::Assign => match note.data["assigned_user_id"].as_str() {
            Some(id) => {
                let to = Names::name(&names.users, Some(id)).unwrap_or_default();
                match note.data["assignment"]["reason"].as_str() {
                    Some(reason) => format!("assigned it to {to} ({reason})"),
                    None => format!("assigned it to {to}"),
                }
            }
            None => "removed the assignee".to_string(),
        },
        NoteType::Update => {
            let fields = note.data["fields"].as_array().cloned().unwrap_or_default();
            let changes: Vec<String> = fields
                .iter()
                .filter_map(|f| f.as_str())
                .map(|field| {
                    let show = |v: &Value| match v {
                        Value::Null => "none".to_string(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let was = show(&note.data["attributes"]["was"][field]);
                    let became = show(&note.data["attributes"]["became"][field]);
                    format!("{field}: {was} → {became}")
                })
                .collect();
            format!("changed {}", changes.join(", "))
        }
        NoteType::Post => {
            if note.is_internal {
                "wrote an internal note".to_string()
            } else {
                "wrote".to_string()
            }
        }
        NoteType::EmailReceived => {
            let from = note.data["from"].as_str().unwrap_or("someone");
            format!("emailed from {from}: {}", note.data["subject"].as_str().unwrap_or_default())
        }
        NoteType::EmailSent => {
            let to: Vec<&str> = note.data["to"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
            format!("emailed {}: {}", to.join(", "), note.data["subject"].as_str().unwrap_or_default())
        }
        NoteType::Relate | NoteType::Unrelate => {
            let verb = if note.note_type == NoteType::Relate { "linked" } else { "unlinked" };
            let contact = Names::name(&names.contacts, note.data["entity_id"].as_str()).unwrap_or_default();
            format!("{verb} contact {contact}")
        }
    };
    json!({
        "type": note.note_type,
        "attachments": note.attachment_ids,
        "author": author,
        "text": text,
        "post_html": note.post.as_deref().map(markdown),
        "is_internal": note.is_internal,
        "created_at": note.created_at.format("%Y-%m-%d %H:%M").to_string(),
    })
}

fn human_size(bytes: i64) -> String {
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 => format!("{:.0} KB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}
