//! `/api/v1/rules`, `/api/v1/rule-runs`, `/api/v1/settings/rules` and the
//! manual-rule buttons of a case (`/api/v1/cases/{id}/manual-rules`).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use docket_domain::calendar::BusinessCalendar;
use docket_domain::listing::{Page, Window};
use docket_domain::rule::{Hook, Outcome, Rule, RuleInput, RuleRun};
use docket_store::{BUSINESS_HOURS_SETTING, RunFilter};
use serde::{Deserialize, Serialize};

use super::integer;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, query_pairs};

/// Settings key: whether rules' HTTP requests may reach private and
/// loopback addresses.
pub const HTTP_ALLOW_PRIVATE_SETTING: &str = "rules_http_allow_private";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rules", post(create).get(list))
        .route("/rules/export", get(export))
        .route("/rules/import", post(import))
        .route("/rules/test", post(test_unsaved))
        .route("/rules/{id}", get(show).put(update).delete(remove))
        .route("/rules/{id}/test", post(test_saved))
        .route("/rules/{id}/run", post(run_now))
        .route("/rule-runs", get(runs))
        .route("/cases/{id}/manual-rules", get(manual_rules))
        .route("/cases/{id}/manual-rules/{rule_id}", post(run_manual))
        .route("/settings/rules", get(show_settings).put(save_settings))
        .route("/assignment-strategies", get(strategies))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<RuleInput>,
) -> ApiResult<(StatusCode, Json<Rule>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_rule(&auth.actor, &input).await?)))
}

async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<Rule>>> {
    Ok(Json(state.store.list_rules(&auth.actor).await?))
}

async fn show(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Rule>> {
    Ok(Json(state.store.get_rule(&auth.actor, &id).await?))
}

/// Replaces a rule; send `version` to refuse overwriting someone else's edit.
async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RuleInput>,
) -> ApiResult<Json<Rule>> {
    Ok(Json(state.store.update_rule(&auth.actor, &id, &input).await?))
}

async fn remove(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.store.delete_rule(&auth.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSet {
    rules: Vec<RuleInput>,
}

async fn export(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<RuleSet>> {
    let rules = state.store.list_rules(&auth.actor).await?;
    Ok(Json(RuleSet { rules: rules.iter().map(Rule::to_input).collect() }))
}

#[derive(Serialize)]
struct Imported {
    name: String,
    id: String,
    created: bool,
}

/// Imports rules by name (new ones are created, existing ones replaced).
/// Every rule is checked before any is saved, so a bad file changes nothing.
async fn import(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(set): ApiJson<RuleSet>,
) -> ApiResult<Json<Vec<Imported>>> {
    if !auth.actor.is_admin() {
        return Err(ApiError::Forbidden("only admins may manage rules".into()));
    }
    for (index, input) in set.rules.iter().enumerate() {
        match state.store.check_rule(input) {
            Ok(_) => {}
            Err(docket_store::StoreError::Invalid(errors)) => {
                return Err(ApiError::field(
                    &format!("rules[{index}]"),
                    format!("{}: {}", input.name, errors.summary()),
                ));
            }
            Err(other) => return Err(other.into()),
        }
    }
    let mut imported = Vec::new();
    for input in &set.rules {
        let (rule, created) = state.store.import_rule(&auth.actor, input).await?;
        imported.push(Imported { name: rule.name, id: rule.id, created });
    }
    Ok(Json(imported))
}

/// Runs a scheduled rule now, as one tick would (admins): for trying a
/// rule out, or catching up after downtime.
async fn run_now(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<docket_store::ScheduledRun>> {
    let rule = state.store.get_rule(&auth.actor, &id).await?;
    if rule.hook != Hook::Schedule {
        return Err(ApiError::field("hook", "only scheduled rules run on demand; test other rules instead"));
    }
    if !rule.enabled {
        return Err(ApiError::field("enabled", "the rule is disabled"));
    }
    Ok(Json(state.store.run_scheduled_rule(&rule.id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestSaved {
    #[serde(default)]
    case_number: Option<i64>,
}

/// Dry run of a saved rule against a case: what it would do, changing
/// nothing.
async fn test_saved(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TestSaved>,
) -> ApiResult<Json<RuleRun>> {
    let rule = state.store.get_rule(&auth.actor, &id).await?;
    Ok(Json(state.store.test_rule(&auth.actor, &rule, body.case_number).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestUnsaved {
    rule: RuleInput,
    #[serde(default)]
    case_number: Option<i64>,
}

/// Dry run of a rule being written (not saved yet).
async fn test_unsaved(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<TestUnsaved>,
) -> ApiResult<Json<RuleRun>> {
    let rule = unsaved_rule(&body.rule)?;
    Ok(Json(state.store.test_rule(&auth.actor, &rule, body.case_number).await?))
}

/// A rule input as a rule that was never stored, for dry runs.
pub fn unsaved_rule(input: &RuleInput) -> ApiResult<Rule> {
    Ok(input.validate()?.unsaved("unsaved"))
}

async fn runs(State(state): State<AppState>, auth: Auth, RawQuery(raw): RawQuery) -> ApiResult<Json<Page<RuleRun>>> {
    let mut filter = RunFilter::default();
    let (mut limit, mut offset) = (None, None);
    for (key, value) in query_pairs(raw.as_deref())? {
        match key.as_str() {
            "rule_id" => filter.rule_id = Some(value),
            "case_id" => filter.case_id = Some(value),
            "outcome" => filter.outcome = Some(Outcome::parse(&value).map_err(|e| ApiError::field("outcome", e))?),
            "limit" => limit = Some(integer("limit", &value)?),
            "offset" => offset = Some(integer("offset", &value)?),
            other => {
                return Err(ApiError::field(
                    other,
                    "unknown parameter; allowed: rule_id, case_id, outcome, limit, offset",
                ));
            }
        }
    }
    filter.window = Window::new(limit, offset);
    Ok(Json(state.store.rule_runs(&auth.actor, &filter).await?))
}

#[derive(Serialize)]
struct ManualRule {
    id: String,
    name: String,
    description: Option<String>,
}

/// The manual rules whose button shows on the case now.
async fn manual_rules(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ManualRule>>> {
    // Reading the case first gives a 404 for cases the caller cannot see.
    state.store.get_case(&auth.actor, &id).await?;
    let rules = state.store.manual_rules(&auth.actor, &id).await?;
    Ok(Json(rules.into_iter().map(|r| ManualRule { id: r.id, name: r.name, description: r.description }).collect()))
}

async fn run_manual(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, rule_id)): Path<(String, String)>,
) -> ApiResult<Json<RuleRun>> {
    state.store.get_case(&auth.actor, &id).await?;
    Ok(Json(state.store.run_manual_rule(&auth.actor, &id, &rule_id).await?))
}

/// Rule settings: the business calendar and the HTTP address policy.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    pub business_hours: BusinessCalendar,
    /// Let `http_request` reach private, loopback and link-local
    /// addresses (off by default: rules must not probe the internal
    /// network).
    #[serde(default)]
    pub http_allow_private: bool,
}

pub async fn rule_settings(state: &AppState) -> ApiResult<RuleSettings> {
    let business_hours = match state.store.setting(BUSINESS_HOURS_SETTING).await? {
        Some(value) => serde_json::from_value(value).unwrap_or_default(),
        None => BusinessCalendar::default(),
    };
    let http_allow_private =
        state.store.setting(HTTP_ALLOW_PRIVATE_SETTING).await?.and_then(|v| v.as_bool()).unwrap_or(false);
    Ok(RuleSettings { business_hours, http_allow_private })
}

async fn show_settings(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<RuleSettings>> {
    if !auth.actor.is_admin() {
        return Err(ApiError::Forbidden("only admins see rule settings".into()));
    }
    Ok(Json(rule_settings(&state).await?))
}

pub async fn store_settings(state: &AppState, actor: &docket_domain::Actor, settings: &RuleSettings) -> ApiResult<()> {
    settings.business_hours.validate()?;
    let calendar = serde_json::to_value(&settings.business_hours).map_err(|e| ApiError::Internal(e.into()))?;
    state.store.set_setting(actor, BUSINESS_HOURS_SETTING, &calendar).await?;
    state.store.set_setting(actor, HTTP_ALLOW_PRIVATE_SETTING, &serde_json::json!(settings.http_allow_private)).await?;
    Ok(())
}

async fn save_settings(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(settings): ApiJson<RuleSettings>,
) -> ApiResult<Json<RuleSettings>> {
    store_settings(&state, &auth.actor, &settings).await?;
    Ok(Json(rule_settings(&state).await?))
}

#[derive(Serialize)]
struct Strategies {
    strategies: Vec<String>,
    hooks: Vec<&'static str>,
}

/// The assignment strategies `assign_by` accepts, and the hooks.
async fn strategies(State(state): State<AppState>, _auth: Auth) -> Json<Strategies> {
    Json(Strategies { strategies: state.store.strategy_names(), hooks: Hook::ALL.map(Hook::as_str).to_vec() })
}
