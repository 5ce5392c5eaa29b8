//! Admin pages for workflow rules: the list, the editor (compile errors
//! next to the field, a dry run against a case before saving), the run log
//! and the rule settings (business hours, HTTP policy).

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use docket_domain::calendar::BusinessCalendar;
use docket_domain::listing::Window;
use docket_domain::rule::{Hook, Outcome, Rule, RuleInput, RuleRun};
use docket_store::{RunFilter, StoreError};
use serde_json::{Value, json};

use super::admin::require_admin;
use super::render::{UiError, page, page_with_status};
use super::session::{FormData, UiSession};
use crate::api::rules::{RuleSettings, rule_settings, store_settings, unsaved_rule};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::query_pairs;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/rules", get(list).post(create))
        .route("/admin/rules/new", get(new_form))
        .route("/admin/rules/settings", post(save_settings))
        .route("/admin/rules/{id}", get(edit_form).post(update))
        .route("/admin/rules/{id}/delete", post(delete))
        .route("/admin/rules/{id}/run", post(run_now))
        .route("/admin/rule-runs", get(runs))
}

async fn list(State(state): State<AppState>, session: UiSession, RawQuery(raw): RawQuery) -> Result<Response, UiError> {
    require_admin(&session)?;
    let notice = session.notice(raw.as_deref());
    let settings = rule_settings(&state).await.map_err(|_| UiError::Internal)?;
    render_list(&state, &session, settings_values(&settings), BTreeMap::new(), notice, StatusCode::OK).await
}

async fn render_list(
    state: &AppState,
    session: &UiSession,
    settings: Value,
    errors: BTreeMap<String, String>,
    notice: Option<String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let rules = state.store.list_rules(&session.actor).await?;
    let mut context = session.context();
    context.insert("rules", &rules);
    context.insert("settings", &settings);
    context.insert("errors", &errors);
    context.insert("notice", &notice);
    context.insert("strategies", &state.store.strategy_names());
    let weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let weekdays: Vec<(String, &str)> = weekdays.iter().enumerate().map(|(i, d)| ((i + 1).to_string(), *d)).collect();
    context.insert("weekdays", &weekdays);
    Ok(page_with_status(state, "admin/rules.html", &context, status))
}

fn settings_values(settings: &RuleSettings) -> Value {
    let calendar = &settings.business_hours;
    json!({
        "days": calendar.days.iter().map(u32::to_string).collect::<Vec<_>>(),
        "start": calendar.start, "end": calendar.end, "utc_offset_minutes": calendar.utc_offset_minutes,
        "holidays": calendar.holidays.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
        "http_allow_private": settings.http_allow_private,
    })
}

async fn save_settings(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let mut errors = BTreeMap::new();
    let days: Vec<u32> = form.all("days").iter().filter_map(|d| d.parse().ok()).collect();
    let offset = form.get("utc_offset_minutes").trim().parse::<i32>().unwrap_or_else(|_| {
        errors.insert("utc_offset_minutes".into(), "a number of minutes, e.g. 60 or -300".into());
        0
    });
    let mut holidays = Vec::new();
    for text in form.get("holidays").split([',', '\n', ' ']).map(str::trim).filter(|t| !t.is_empty()) {
        match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(day) => holidays.push(day),
            Err(_) => {
                errors.insert("holidays".into(), format!("`{text}` is not a date like 2026-12-25"));
            }
        }
    }
    let settings = RuleSettings {
        business_hours: BusinessCalendar {
            utc_offset_minutes: offset,
            days,
            start: form.get("start").trim().to_string(),
            end: form.get("end").trim().to_string(),
            holidays,
        },
        http_allow_private: form.checked("http_allow_private"),
    };
    if errors.is_empty() {
        match store_settings(&state, &session.actor, &settings).await {
            Ok(()) => {
                return Ok(
                    Redirect::to(&session.notice_location("/admin/rules", "Rule settings saved.")).into_response()
                );
            }
            Err(ApiError::Validation { fields, .. }) => errors.extend(fields),
            Err(other) => {
                tracing::error!(error = %other, "saving rule settings");
                return Err(UiError::Internal);
            }
        }
    }
    let mut values = settings_values(&settings);
    values["holidays"] = json!(form.get("holidays"));
    render_list(&state, &session, values, errors, None, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// The editor's values from a stored rule.
fn rule_values(rule: &Rule) -> Value {
    json!({
        "name": rule.name, "description": rule.description.clone().unwrap_or_default(), "hook": rule.hook.as_str(),
        "condition": rule.condition.clone().unwrap_or_default(), "script": rule.script, "position": rule.position,
        "enabled": rule.enabled, "schedule": rule.schedule.clone().unwrap_or_default(),
        "case_filter": rule.case_filter.as_ref().map(|f| f.to_string()).unwrap_or_default(),
        "run_cap": rule.run_cap, "version": rule.version, "case_number": "",
        "plugin": rule.plugin.clone().unwrap_or_default(),
    })
}

/// The editor's values as submitted, and the rule input they make.
fn submitted(form: &FormData, errors: &mut BTreeMap<String, String>) -> (Value, RuleInput) {
    let values = json!({
        "name": form.get("name"), "description": form.get("description"), "hook": form.get("hook"),
        "condition": form.get("condition"), "script": form.get("script"), "position": form.get("position"),
        "enabled": form.checked("enabled"), "schedule": form.get("schedule"), "case_filter": form.get("case_filter"),
        "run_cap": form.get("run_cap"), "version": form.get("version"), "case_number": form.get("case_number"),
        "plugin": form.get("plugin"),
    });
    let number = |field: &str, errors: &mut BTreeMap<String, String>| -> Option<i64> {
        let text = form.get(field).trim();
        if text.is_empty() {
            return None;
        }
        text.parse().map_err(|_| errors.insert(field.to_string(), "must be a whole number".into())).ok()
    };
    let case_filter = match form.get("case_filter").trim() {
        "" => None,
        text => {
            serde_json::from_str(text).map_err(|e| errors.insert("case_filter".into(), format!("not JSON: {e}"))).ok()
        }
    };
    let input = RuleInput {
        name: form.get("name").to_string(),
        description: form.optional("description"),
        hook: form.get("hook").to_string(),
        condition: form.optional("condition"),
        script: form.get("script").replace("\r\n", "\n"),
        plugin: form.optional("plugin"),
        position: number("position", errors).unwrap_or(0),
        enabled: form.checked("enabled"),
        schedule: form.optional("schedule"),
        case_filter,
        run_cap: number("run_cap", errors),
        version: number("version", errors),
    };
    (values, input)
}

async fn editor(
    state: &AppState,
    session: &UiSession,
    rule: Option<&Rule>,
    values: Value,
    errors: BTreeMap<String, String>,
    dry_run: Option<RuleRun>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let mut context = session.context();
    context.insert("rule_id", &rule.map(|r| r.id.clone()));
    context.insert("rule", &rule);
    context.insert("values", &values);
    context.insert("errors", &errors);
    context.insert("hooks", &Hook::ALL.map(Hook::as_str));
    context.insert("dry_run", &dry_run);
    let recent = match rule {
        Some(rule) => {
            let filter =
                RunFilter { rule_id: Some(rule.id.clone()), window: Window::new(Some(20), None), ..Default::default() };
            state.store.rule_runs(&session.actor, &filter).await?.items
        }
        None => Vec::new(),
    };
    context.insert("runs", &recent);
    Ok(page_with_status(state, "admin/rule_form.html", &context, status))
}

async fn new_form(State(state): State<AppState>, session: UiSession) -> Result<Response, UiError> {
    require_admin(&session)?;
    let values = json!({
        "name": "", "description": "", "hook": "case.created", "condition": "", "script": "", "position": 0,
        "enabled": true, "schedule": "", "case_filter": "", "run_cap": 500, "version": "", "case_number": "",
    });
    editor(&state, &session, None, values, BTreeMap::new(), None, StatusCode::OK).await
}

async fn edit_form(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let rule = state.store.get_rule(&session.actor, &id).await?;
    editor(&state, &session, Some(&rule), rule_values(&rule), BTreeMap::new(), None, StatusCode::OK).await
}

async fn create(State(state): State<AppState>, session: UiSession, body: Bytes) -> Result<Response, UiError> {
    save(state, session, None, body).await
}

async fn update(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    save(state, session, Some(id), body).await
}

/// Saves the editor, or (`intent=test`) dry-runs what is in it against a
/// case without saving.
async fn save(state: AppState, session: UiSession, id: Option<String>, body: Bytes) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let existing = match &id {
        Some(id) => Some(state.store.get_rule(&session.actor, id).await?),
        None => None,
    };
    let mut errors = BTreeMap::new();
    let (values, input) = submitted(&form, &mut errors);
    if form.get("intent") == "test" {
        let case_number = form.get("case_number").trim().trim_start_matches('#').parse::<i64>().ok();
        if !form.get("case_number").trim().is_empty() && case_number.is_none() {
            errors.insert("case_number".into(), "a case number, e.g. 42".into());
        }
        let mut dry_run = None;
        if errors.is_empty() {
            match unsaved_rule(&input) {
                Ok(rule) => match state.store.test_rule(&session.actor, &rule, case_number).await {
                    Ok(run) => dry_run = Some(run),
                    Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
                    Err(StoreError::NotFound) => {
                        errors.insert("case_number".into(), "no such case".into());
                    }
                    Err(other) => return Err(other.into()),
                },
                Err(ApiError::Validation { fields, .. }) => errors.extend(fields),
                Err(_) => return Err(UiError::Internal),
            }
        }
        let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
        return editor(&state, &session, existing.as_ref(), values, errors, dry_run, status).await;
    }
    if errors.is_empty() {
        let result = match &existing {
            Some(rule) => state.store.update_rule(&session.actor, &rule.id, &input).await,
            None => state.store.create_rule(&session.actor, &input).await,
        };
        match result {
            Ok(rule) => {
                let notice = format!("Rule “{}” saved.", rule.name);
                return Ok(Redirect::to(&session.notice_location("/admin/rules", &notice)).into_response());
            }
            Err(StoreError::Invalid(invalid)) => errors.extend(invalid.fields),
            Err(StoreError::VersionConflict { current }) => {
                errors.insert(
                    "version".into(),
                    format!(
                        "someone else saved this rule meanwhile (now version {current}); reload to see their change"
                    ),
                );
            }
            Err(other) => return Err(other.into()),
        }
    }
    editor(&state, &session, existing.as_ref(), values, errors, None, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn delete(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    state.store.delete_rule(&session.actor, &id).await?;
    Ok(Redirect::to(&session.notice_location("/admin/rules", "Rule deleted.")).into_response())
}

async fn run_now(
    State(state): State<AppState>,
    session: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    require_admin(&session)?;
    let form = FormData::parse(&body)?;
    session.check_csrf(&form)?;
    let rule = state.store.get_rule(&session.actor, &id).await?;
    if rule.hook != Hook::Schedule || !rule.enabled {
        return Err(UiError::Forbidden("Only enabled scheduled rules run on demand.".into()));
    }
    let run = state.store.run_scheduled_rule(&rule.id).await?;
    let notice = format!(
        "Ran “{}” over {} case(s){}.",
        rule.name,
        run.cases,
        if run.capped { " (capped: more wait for the next tick)" } else { "" }
    );
    let location = format!("/admin/rule-runs?rule_id={}", rule.id);
    Ok(Redirect::to(&session.notice_location(&location, &notice)).into_response())
}

async fn runs(State(state): State<AppState>, session: UiSession, RawQuery(raw): RawQuery) -> Result<Response, UiError> {
    require_admin(&session)?;
    let mut filter = RunFilter::default();
    let mut offset: i64 = 0;
    let mut outcome = String::new();
    for (key, value) in query_pairs(raw.as_deref()).unwrap_or_default() {
        match key.as_str() {
            "rule_id" if !value.is_empty() => filter.rule_id = Some(value),
            "case_id" if !value.is_empty() => filter.case_id = Some(value),
            "outcome" => {
                filter.outcome = Outcome::parse(&value).ok();
                outcome = value;
            }
            "offset" => offset = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    filter.window = Window::new(Some(50), Some(offset));
    let page_of_runs = state.store.rule_runs(&session.actor, &filter).await?;
    let mut context = session.context();
    context.insert("runs", &page_of_runs.items);
    context.insert("total", &page_of_runs.total);
    context.insert("offset", &offset);
    context.insert("newer_offset", &(offset - 50).max(0));
    context.insert("rule_id", &filter.rule_id.clone().unwrap_or_default());
    context.insert("outcome", &outcome);
    context.insert("notice", &session.notice(raw.as_deref()));
    Ok(page(&state, "admin/rule_runs.html", &context))
}
