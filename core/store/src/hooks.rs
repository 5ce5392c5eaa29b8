//! Where rules run: the hook points of the case commands, the reads rules
//! make, and the one applier of their actions.
//!
//! A command (create, update, post) calls [`Store::before_save`] before it
//! writes and [`Store::run_hook`] after, inside its own transaction. Each
//! rule's actions are applied under a savepoint: a rule whose actions fail
//! is rolled back alone, logged as failed, and the change that triggered
//! it still commits. Actions that change the case again (set, assign, a
//! note, a new case, a triggered rule) are commands themselves and fire
//! hooks one level deeper; past the depth limit, rules are logged as
//! stopped instead of run.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use docket_domain::assignment::{AssignmentInput, Candidate, Choice};
use docket_domain::calendar::BusinessCalendar;
use docket_domain::case::{Case, CasePatch, CaseStatus, FieldChange};
use docket_domain::ids::new_id;
use docket_domain::listing::{CaseSortField, Sort, Window};
use docket_domain::note::{NewPost, Note};
use docket_domain::rule::{CaseQuery, Hook, Outcome, Rule, RuleAction, RuleRun};
use docket_domain::{Actor, Scope};
use docket_rules::{Evaluation, Event, Reader, UserInfo};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::cases::{Cause, load_case};
use crate::db::{Sql, Tx};
use crate::jobs::{NewJob, enqueue};
use crate::plugins::{PluginRecord, PluginRun, insert_plugin_runs, load_enabled_plugins};
use crate::rules::{RULE_COLUMNS, rule_from_row};
use crate::stream::add_follower;
use crate::{Result, Store, StoreError, now};

/// The job kind that sends an email a rule asked for.
pub const RULE_EMAIL_JOB: &str = "rule_email";
/// The job kind that makes an HTTP request a rule asked for.
pub const RULE_HTTP_JOB: &str = "rule_http";
/// The setting that holds the business calendar.
pub const BUSINESS_HOURS_SETTING: &str = "business_hours";

/// Most rule actions one change may set off, all depths together: 100
/// actions a run and 5 levels would otherwise allow 100^5 inside one
/// transaction.
pub const MAX_ACTIONS_PER_CHANGE: usize = 1_000;

/// How stale a node's view of the rules may get: a rule saved on one node
/// (or by the CLI) is in force on every node within this time.
pub const RULE_CACHE_TTL: Duration = Duration::from_secs(1);

/// The enabled rules and the business calendar, as a node last read them.
pub(crate) struct RuleSet {
    rules: Vec<Rule>,
    calendar: BusinessCalendar,
    /// The enabled plugins (rules and assignments name them).
    plugins: Arc<Vec<PluginRecord>>,
    loaded_at: std::time::Instant,
}

/// The node's cached [`RuleSet`].
pub(crate) type RuleCache = std::sync::Mutex<Option<Arc<RuleSet>>>;

/// What a command collects while it runs: rule runs to log and notes to
/// announce, both after (or at) commit.
#[derive(Default)]
pub(crate) struct Effects {
    pub runs: Vec<RuleRun>,
    /// Plugin calls to log with the runs.
    pub plugin_runs: Vec<PluginRun>,
    pub announce: Vec<(String, String)>,
    /// Rule actions applied so far by this command (see
    /// [`MAX_ACTIONS_PER_CHANGE`]).
    pub actions_applied: usize,
    /// The newest version of each case the command (or its rules) wrote,
    /// so that a command whose rules changed its case again returns that
    /// version without reading it back.
    pub latest: std::collections::HashMap<String, Case>,
    /// Runs already written by the statement that created their case (see
    /// `create_case_in`): `finish` leaves them out.
    pub logged: std::collections::HashSet<String>,
}

impl Effects {
    /// Records a version of a case that was just written.
    pub fn wrote(&mut self, case: &Case) {
        let newer = self.latest.get(&case.id).is_none_or(|known| known.version < case.version);
        if newer {
            self.latest.insert(case.id.clone(), case.clone());
        }
    }

    /// The newest written version of `case`, if rules wrote a newer one.
    pub fn newest(&self, case: Case) -> Case {
        match self.latest.get(&case.id) {
            Some(newer) if newer.version > case.version => newer.clone(),
            _ => case,
        }
    }
}

/// Field actions made into a patch.
pub(crate) struct ResolvedFields {
    pub patch: CasePatch,
    /// How `assign_by` chose, for the note.
    pub assignment: Option<serde_json::Value>,
    /// The user `assign_by` chose (an active staff member).
    pub chosen: Option<String>,
}

/// What the `case.before_save` rules made of a case about to be saved.
pub(crate) struct BeforeSave {
    pub case: Case,
    /// Their other actions, applied once the case is saved.
    pub deferred: Deferred,
    /// How `assign_by` chose the assignee, for the note.
    pub assignment: Option<serde_json::Value>,
    /// The assignee `assign_by` chose: an active staff member, just read,
    /// so the command need not check it again.
    pub verified_assignee: Option<String>,
}

/// The event a hook fires for.
pub(crate) struct Trigger<'a> {
    /// The message, for `email.received` rules (as they see it, `email`).
    pub email: Option<&'a serde_json::Value>,
    pub hook: Hook,
    pub case: Option<&'a Case>,
    pub changes: &'a [FieldChange],
    pub note: Option<&'a Note>,
    pub actor: &'a Actor,
    pub depth: u32,
}

/// Fields `email.received` rules set on the case a message opens.
pub(crate) const EMAIL_CASE_FIELDS: [&str; 4] = ["name", "description", "priority", "type"];

/// What the `email.received` rules decided about a message.
#[derive(Default)]
pub(crate) struct EmailVerdict {
    /// Why the message is dropped, naming the rule.
    pub drop: Option<String>,
    /// Values of [`EMAIL_CASE_FIELDS`] for a new case, in order.
    pub fields: Vec<(String, serde_json::Value)>,
    /// Other actions, for the case the message lands on.
    pub deferred: Deferred,
    /// This message's runs in `Effects::runs`, to name the case later.
    pub runs: Vec<usize>,
}

/// Actions of `case.before_save` rules that need the saved case (notes,
/// emails...): applied right after the write, at the same depth.
pub(crate) type Deferred = Vec<(Rule, Vec<RuleAction>, usize)>;

/// What `evaluate_with` does with the rules: evaluate them, or only their
/// conditions. It gets the reader and hands it back.
type PerRule<T> = fn(&docket_rules::Engine, &[Rule], &Event, Box<dyn Reader>) -> (Vec<T>, Box<dyn Reader>);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Store {
    /// The enabled rules of a hook, in order, from the node's cache of
    /// rules (see [`RuleCache`]).
    pub(crate) async fn enabled_rules(&self, tx: &mut Tx, hook: Hook) -> Result<Vec<Rule>> {
        Ok(self.rule_set(tx).await?.rules.iter().filter(|r| r.hook == hook).cloned().collect())
    }

    /// The enabled rules and the business calendar, reloaded when older
    /// than [`RULE_CACHE_TTL`] or changed on this node. Reading them on
    /// every case event would add two queries to every command, most of
    /// the time to learn that nothing changed.
    async fn rule_set(&self, tx: &mut Tx) -> Result<Arc<RuleSet>> {
        {
            let cache = self.rule_cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(set) = cache.as_ref().filter(|set| set.loaded_at.elapsed() < RULE_CACHE_TTL) {
                return Ok(set.clone());
            }
        }
        let sql = format!("SELECT {RULE_COLUMNS} FROM rules WHERE is_enabled = $1 ORDER BY position, name");
        let rules = tx.query(&sql).bind(true).fetch_all().await?.iter().map(rule_from_row).collect::<Result<_>>()?;
        let calendar = business_calendar(tx).await?;
        let plugins = Arc::new(load_enabled_plugins(tx).await?);
        let set = Arc::new(RuleSet { rules, calendar, plugins, loaded_at: std::time::Instant::now() });
        *self.rule_cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(set.clone());
        Ok(set)
    }

    /// The enabled plugins, cached with the rules.
    pub(crate) async fn cached_plugins(&self, tx: &mut Tx) -> Result<Arc<Vec<PluginRecord>>> {
        Ok(self.rule_set(tx).await?.plugins.clone())
    }

    /// Drops the cached rules: this node changed a rule or a rule setting.
    pub(crate) fn forget_rules(&self) {
        *self.rule_cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Evaluates rules against an event: the condition, then the script
    /// or the plugin. Plugin calls are logged in `plugin_runs`; a dry run
    /// passes `None` (and its plugins' storage writes stay in memory).
    pub(crate) async fn evaluate(
        &self,
        tx: &mut Tx,
        rules: Vec<Rule>,
        trigger: &Trigger<'_>,
        mut plugin_runs: Option<&mut Vec<PluginRun>>,
    ) -> Result<Vec<(Rule, Evaluation)>> {
        // A rule whose script reads data is run on a blocking thread (see
        // `evaluate_with`), a hop that the transaction waits for. When its
        // condition reads nothing, the condition is checked here first: a
        // rule that does not apply (a portal rule on an agent's case) then
        // costs no hop.
        let (not_held, rules) = self.conditions_not_held(tx, rules, trigger).await?;
        let mut evaluated = self
            .evaluate_with(tx, rules, trigger, |engine, rules, event, reader| engine.evaluate_all(rules, event, reader))
            .await?;
        // Back in the rules' order.
        for (position, rule, evaluation) in not_held {
            evaluated.insert(position, (rule, evaluation));
        }
        for (rule, evaluation) in &mut evaluated {
            let Some(plugin) = rule.plugin.clone() else { continue };
            if evaluation.error.is_some() || evaluation.condition_held == Some(false) {
                continue;
            }
            let dry_run = plugin_runs.is_none();
            let (outcome, log, run) = self.run_rule_plugin(tx, rule, &plugin, trigger, dry_run).await;
            evaluation.log.extend(log);
            if let Some(run) = &run {
                evaluation.duration += Duration::from_micros(run.duration_us.max(0) as u64);
            }
            match outcome {
                Ok(actions) => evaluation.actions = actions,
                Err(error) => evaluation.error = Some(error),
            }
            if let (Some(runs), Some(run)) = (plugin_runs.as_deref_mut(), run) {
                runs.push(run);
            }
        }
        Ok(evaluated)
    }

    /// Takes out the rules that read data but whose condition does not,
    /// and does not hold: returned with their position and evaluation,
    /// beside the rules left to evaluate.
    #[allow(clippy::type_complexity)]
    async fn conditions_not_held(
        &self,
        tx: &mut Tx,
        rules: Vec<Rule>,
        trigger: &Trigger<'_>,
    ) -> Result<(Vec<(usize, Rule, Evaluation)>, Vec<Rule>)> {
        let checkable = |rule: &Rule| {
            rule.condition.is_some()
                && docket_rules::reads_data(None, &rule.script)
                && !docket_rules::reads_data(rule.condition.as_deref(), "")
        };
        if !rules.iter().any(checkable) {
            return Ok((Vec::new(), rules));
        }
        let calendar = self.rule_set(tx).await?.calendar.clone();
        let event = Event {
            email: trigger.email,
            hook: trigger.hook,
            ticket: trigger.case,
            changes: trigger.changes,
            note: trigger.note,
            actor: Some(trigger.actor),
            depth: trigger.depth,
            now: Utc::now(),
            calendar: &calendar,
        };
        let (mut not_held, mut left) = (Vec::new(), Vec::with_capacity(rules.len()));
        for (position, rule) in rules.into_iter().enumerate() {
            if !checkable(&rule) {
                left.push(rule);
                continue;
            }
            let started = std::time::Instant::now();
            let (held, _reader) =
                self.rules.conditions(std::slice::from_ref(&rule), &event, Box::new(docket_rules::NoReader));
            if let [Ok(false)] = held.as_slice() {
                let evaluation = Evaluation {
                    condition_held: Some(false),
                    actions: Vec::new(),
                    log: Vec::new(),
                    error: None,
                    duration: started.elapsed(),
                };
                not_held.push((position, rule, evaluation));
            } else {
                // Held, or failed: the full evaluation says so.
                left.push(rule);
            }
        }
        Ok((not_held, left))
    }

    /// Evaluates only the rules' conditions.
    pub(crate) async fn conditions(
        &self,
        tx: &mut Tx,
        rules: Vec<Rule>,
        trigger: &Trigger<'_>,
    ) -> Result<Vec<(Rule, std::result::Result<bool, String>)>> {
        self.evaluate_with(tx, rules, trigger, |engine, rules, event, reader| engine.conditions(rules, event, reader))
            .await
    }

    /// Runs `f` over the rules against the event. Rules that read data run
    /// on a blocking thread (they are synchronous and bounded by their
    /// budget) and their reads come back here over a channel, because only
    /// this task holds the transaction; the others run in place.
    async fn evaluate_with<T: Send + 'static>(
        &self,
        tx: &mut Tx,
        rules: Vec<Rule>,
        trigger: &Trigger<'_>,
        f: PerRule<T>,
    ) -> Result<Vec<(Rule, T)>> {
        let calendar = self.rule_set(tx).await?.calendar.clone();
        if !rules.iter().any(|r| docket_rules::reads_data(r.condition.as_deref(), &r.script)) {
            // Rules that read nothing are pure computation, bounded by their
            // budget: evaluated here, without handing the transaction's
            // task over to another thread and back.
            let event = Event {
                email: trigger.email,
                hook: trigger.hook,
                ticket: trigger.case,
                changes: trigger.changes,
                note: trigger.note,
                actor: Some(trigger.actor),
                depth: trigger.depth,
                now: Utc::now(),
                calendar: &calendar,
            };
            let (results, _reader) = f(&self.rules, &rules, &event, Box::new(docket_rules::NoReader));
            return Ok(rules.into_iter().zip(results).collect());
        }
        let engine = self.rules.clone();
        let (requests, mut incoming) = mpsc::channel::<ReadRequest>(1);
        let case = trigger.case.cloned();
        let changes = trigger.changes.to_vec();
        let note = trigger.note.cloned();
        let actor = trigger.actor.clone();
        let (hook, depth) = (trigger.hook, trigger.depth);
        let email = trigger.email.cloned();
        let mut evaluation = tokio::task::spawn_blocking(move || {
            let event = Event {
                email: email.as_ref(),
                hook,
                ticket: case.as_ref(),
                changes: &changes,
                note: note.as_ref(),
                actor: Some(&actor),
                depth,
                now: Utc::now(),
                calendar: &calendar,
            };
            let reader: Box<dyn Reader> = Box::new(ChannelReader { requests });
            let (results, _reader) = f(&engine, &rules, &event, reader);
            rules.into_iter().zip(results).collect::<Vec<_>>()
        });
        loop {
            tokio::select! {
                Some(request) = incoming.recv() => request.answer(tx).await,
                done = &mut evaluation => {
                    return done.map_err(|e| StoreError::Corrupt(format!("a rule evaluation panicked: {e}")));
                }
            }
        }
    }

    /// Runs the `case.before_save` rules on a case about to be saved.
    /// Returns the case as the rules left it and the actions to apply once
    /// it is saved; a rejection is an error for the user.
    pub(crate) async fn before_save(
        &self,
        tx: &mut Tx,
        pending: &Case,
        changes: &[FieldChange],
        actor: &Actor,
        depth: u32,
        effects: &mut Effects,
    ) -> Result<BeforeSave> {
        let unchanged =
            || BeforeSave { case: pending.clone(), deferred: Vec::new(), assignment: None, verified_assignee: None };
        let rules = self.enabled_rules(tx, Hook::BeforeSave).await?;
        if rules.is_empty() {
            return Ok(unchanged());
        }
        let trigger =
            Trigger { email: None, hook: Hook::BeforeSave, case: Some(pending), changes, note: None, actor, depth };
        if depth > self.depth_limit {
            self.log_depth_limit(&rules, &trigger, effects);
            return Ok(unchanged());
        }
        let mut result = unchanged();
        for (rule, evaluation) in self.evaluate(tx, rules, &trigger, Some(&mut effects.plugin_runs)).await? {
            let mut run = run_record(&rule, &trigger, &evaluation, false);
            if let Some(RuleAction::Reject { message }) =
                evaluation.actions.iter().find(|a| matches!(a, RuleAction::Reject { .. }))
            {
                effects.runs.push(run);
                return Err(StoreError::Rejected { rule: rule.name.clone(), message: message.clone() });
            }
            let (fields, later): (Vec<_>, Vec<_>) = evaluation.actions.iter().cloned().partition(is_field_action);
            // A rule's own references are checked here, so that a rule
            // naming a user or contact that is gone fails alone instead of
            // making the person's change fail.
            let pending = result.case.clone();
            let resolved = match self
                .resolve_fields(tx, &pending.id, Some(&pending), &pending.contact_ids, &fields, effects)
                .await
            {
                Ok(resolved) => {
                    match crate::cases::check_patch_references(tx, &resolved.patch, resolved.chosen.as_deref()).await {
                        Ok(()) => resolved
                            .patch
                            .apply(&result.case)
                            .map(|applied| (applied, resolved))
                            .map_err(StoreError::from),
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error),
            };
            match resolved {
                Ok((applied, resolved)) => {
                    result.case = applied.case;
                    if resolved.assignment.is_some() {
                        result.assignment = resolved.assignment;
                        result.verified_assignee = resolved.chosen;
                    }
                }
                Err(StoreError::Database(error)) => return Err(StoreError::Database(error)),
                Err(error) => {
                    run.outcome = Outcome::Failed;
                    run.error = Some(format!("could not apply: {}", describe_error(&error)));
                    effects.runs.push(run);
                    continue;
                }
            }
            let index = effects.runs.len();
            effects.runs.push(run);
            if !later.is_empty() {
                result.deferred.push((rule, later, index));
            }
        }
        Ok(result)
    }

    /// The patch that field actions make, with `assign_by` resolved to a
    /// user (and how it chose, for the `Assign` note).
    async fn resolve_fields(
        &self,
        tx: &mut Tx,
        case_id: &str,
        pending: Option<&Case>,
        contact_ids: &[String],
        fields: &[RuleAction],
        effects: &mut Effects,
    ) -> Result<ResolvedFields> {
        let mut resolved = ResolvedFields { patch: field_patch(contact_ids, fields)?, assignment: None, chosen: None };
        for action in fields {
            if let RuleAction::AssignBy { strategy, team, position } = action {
                let choice =
                    self.choose_assignee(tx, case_id, pending, strategy, team, position.as_deref(), effects).await?;
                let Some(choice) = choice else {
                    return Err(StoreError::invalid(
                        "assign_by",
                        format!("team {team} has no active member to assign"),
                    ));
                };
                resolved.patch.assigned_user_id = Some(Some(choice.user_id.clone()));
                resolved.assignment = Some(json!({ "strategy": strategy, "team": team, "reason": choice.reason }));
                resolved.chosen = Some(choice.user_id);
            }
        }
        Ok(resolved)
    }

    /// Runs the enabled rules of a hook after a change was written.
    pub(crate) async fn run_hook(&self, tx: &mut Tx, trigger: Trigger<'_>, effects: &mut Effects) -> Result<()> {
        let rules = self.enabled_rules(tx, trigger.hook).await?;
        self.run_rules(tx, rules, &trigger, effects).await
    }

    /// Evaluates the given rules and applies each one's actions.
    pub(crate) async fn run_rules(
        &self,
        tx: &mut Tx,
        rules: Vec<Rule>,
        trigger: &Trigger<'_>,
        effects: &mut Effects,
    ) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        if trigger.depth > self.depth_limit {
            self.log_depth_limit(&rules, trigger, effects);
            return Ok(());
        }
        for (rule, evaluation) in self.evaluate(tx, rules, trigger, Some(&mut effects.plugin_runs)).await? {
            let run = run_record(&rule, trigger, &evaluation, false);
            let index = effects.runs.len();
            effects.runs.push(run);
            if evaluation.error.is_none() && !evaluation.actions.is_empty() {
                let case_id = trigger.case.map(|c| c.id.clone());
                self.apply_guarded(tx, case_id, &rule, evaluation.actions, trigger.depth, index, effects).await?;
            }
        }
        Ok(())
    }

    /// Runs the `email.received` rules (scripts and email-parser plugins)
    /// on a message before it is threaded or makes a case. Failing rules
    /// are recorded and skipped; the message is never lost to one.
    pub(crate) async fn email_received(
        &self,
        tx: &mut Tx,
        email: &serde_json::Value,
        effects: &mut Effects,
    ) -> Result<EmailVerdict> {
        let rules = self.enabled_rules(tx, Hook::EmailReceived).await?;
        let mut verdict = EmailVerdict::default();
        if rules.is_empty() {
            return Ok(verdict);
        }
        let system = Actor::system();
        let trigger = Trigger {
            email: Some(email),
            hook: Hook::EmailReceived,
            case: None,
            changes: &[],
            note: None,
            actor: &system,
            depth: 0,
        };
        for (rule, evaluation) in self.evaluate(tx, rules, &trigger, Some(&mut effects.plugin_runs)).await? {
            let index = effects.runs.len();
            effects.runs.push(run_record(&rule, &trigger, &evaluation, false));
            verdict.runs.push(index);
            if evaluation.error.is_some() {
                continue;
            }
            let mut others = Vec::new();
            for action in evaluation.actions {
                match action {
                    RuleAction::DropEmail { reason } => {
                        verdict.drop.get_or_insert_with(|| format!("{reason} (rule “{}”)", rule.name));
                    }
                    RuleAction::Set { field, value } if EMAIL_CASE_FIELDS.contains(&field.as_str()) => {
                        verdict.fields.push((field, value));
                    }
                    other => others.push(other),
                }
            }
            if !others.is_empty() {
                verdict.deferred.push((rule, others, index));
            }
        }
        Ok(verdict)
    }

    /// Applies deferred `case.before_save` actions once the case exists.
    pub(crate) async fn apply_deferred(
        &self,
        tx: &mut Tx,
        case_id: &str,
        deferred: Deferred,
        depth: u32,
        effects: &mut Effects,
    ) -> Result<()> {
        for (rule, actions, index) in deferred {
            self.apply_guarded(tx, Some(case_id.to_string()), &rule, actions, depth, index, effects).await?;
        }
        Ok(())
    }

    fn log_depth_limit(&self, rules: &[Rule], trigger: &Trigger<'_>, effects: &mut Effects) {
        tracing::warn!(hook = trigger.hook.as_str(), depth = trigger.depth, "rules stopped at the depth limit");
        for rule in rules {
            let evaluation = Evaluation {
                condition_held: None,
                actions: Vec::new(),
                log: Vec::new(),
                error: Some(format!(
                    "not run: rules triggered rules {} levels deep (the limit is {}); this usually means two \
                     rules keep triggering each other",
                    trigger.depth, self.depth_limit
                )),
                duration: Duration::ZERO,
            };
            let mut run = run_record(rule, trigger, &evaluation, false);
            run.outcome = Outcome::DepthLimit;
            effects.runs.push(run);
        }
    }

    /// Applies one rule's actions under a savepoint. A failure rolls back
    /// this rule's effects only and marks its run (at `index`) failed.
    #[allow(clippy::too_many_arguments)]
    fn apply_guarded<'a>(
        &'a self,
        tx: &'a mut Tx,
        case_id: Option<String>,
        rule: &'a Rule,
        actions: Vec<RuleAction>,
        depth: u32,
        index: usize,
        effects: &'a mut Effects,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let savepoint = format!("rule_{}", new_id().replace('-', ""));
            tx.query(&format!("SAVEPOINT {savepoint}")).execute().await?;
            let (runs_before, announce_before) = (effects.runs.len(), effects.announce.len());
            let latest_before = effects.latest.clone();
            let actions_before = effects.actions_applied;
            match self.apply(tx, case_id.as_deref(), rule, actions, depth, effects).await {
                Ok(()) => {
                    tx.query(&format!("RELEASE SAVEPOINT {savepoint}")).execute().await?;
                }
                // Database errors too: on PostgreSQL a failed statement
                // aborts the transaction until it rolls back to the
                // savepoint, which restores it. Only if that fails is the
                // change itself lost.
                Err(error) => {
                    tx.query(&format!("ROLLBACK TO SAVEPOINT {savepoint}")).execute().await?;
                    tx.query(&format!("RELEASE SAVEPOINT {savepoint}")).execute().await?;
                    // What nested rules did was rolled back with it.
                    effects.runs.truncate(runs_before);
                    effects.announce.truncate(announce_before);
                    effects.latest = latest_before;
                    effects.actions_applied = actions_before;
                    let run = &mut effects.runs[index];
                    run.outcome = Outcome::Failed;
                    run.error = Some(format!("could not apply its actions: {}", describe_error(&error)));
                    tracing::info!(rule = %rule.name, error = %error, "a rule's actions failed and were rolled back");
                }
            }
            Ok(())
        })
    }

    /// The applier: carries out one rule's actions, field changes first
    /// (saved together as one update), then the rest in order.
    async fn apply(
        &self,
        tx: &mut Tx,
        case_id: Option<&str>,
        rule: &Rule,
        actions: Vec<RuleAction>,
        depth: u32,
        effects: &mut Effects,
    ) -> Result<()> {
        effects.actions_applied += actions.len();
        if effects.actions_applied > MAX_ACTIONS_PER_CHANGE {
            return Err(StoreError::invalid(
                "rule",
                format!(
                    "this change set off more than {MAX_ACTIONS_PER_CHANGE} rule actions; the rest were not applied"
                ),
            ));
        }
        let system = Actor::system();
        let cause = Cause { depth: depth + 1, rule: Some(rule.name.clone()), assignment: None };
        let (fields, others): (Vec<_>, Vec<_>) = actions.into_iter().partition(is_field_action);
        if !fields.is_empty() {
            let case_id = case_id.ok_or_else(|| no_case("change fields"))?;
            // Linking and unlinking contacts edit the current list; the
            // other field actions need only the case's id.
            let links =
                fields.iter().any(|a| matches!(a, RuleAction::LinkContact { .. } | RuleAction::UnlinkContact { .. }));
            let contact_ids =
                if links { load_case(tx, "c.id = $1", case_id, true).await?.contact_ids } else { Vec::new() };
            let resolved = self.resolve_fields(tx, case_id, None, &contact_ids, &fields, effects).await?;
            let cause = Cause { assignment: resolved.assignment, ..cause.clone() };
            self.update_case_in(tx, &system, case_id, &resolved.patch, &cause, effects).await?;
        }
        for action in others {
            match action {
                RuleAction::Note { text, internal } => {
                    let case_id = case_id.ok_or_else(|| no_case("post a note"))?;
                    let post = NewPost { post: text, is_internal: internal, attachment_ids: Vec::new() };
                    self.create_post_in(tx, &system, case_id, &post, &cause, effects).await?;
                }
                RuleAction::CreateCase { case } => {
                    let draft = crate::cases::rule_draft(&case)?;
                    self.create_case_in(tx, &system, draft, None, &cause, effects).await?;
                }
                RuleAction::Follow { user_id } => {
                    let case_id = case_id.ok_or_else(|| no_case("follow"))?;
                    let case = load_case(tx, "c.id = $1", case_id, false).await?;
                    let follower = crate::auth::load_actor(tx, &user_id)
                        .await?
                        .ok_or_else(|| StoreError::invalid("follow", format!("no active user {user_id}")))?;
                    if !follower.may_follow(&case.ownership()) {
                        return Err(StoreError::invalid(
                            "follow",
                            format!("{} cannot read this case's stream", follower.username),
                        ));
                    }
                    add_follower(tx, case_id, &user_id).await?;
                }
                RuleAction::Notify { user_ids, message } => {
                    let case_id = case_id.ok_or_else(|| no_case("notify"))?;
                    let note_id = self.notify_users(tx, case_id, &user_ids, &message, rule).await?;
                    effects.announce.push((case_id.to_string(), note_id));
                }
                RuleAction::SendEmail { to, subject, body } => {
                    let payload =
                        json!({ "case_id": case_id, "rule": rule.name, "to": to, "subject": subject, "body": body });
                    let job = NewJob { kind: RULE_EMAIL_JOB, payload, run_at: now(), idempotency_key: None };
                    enqueue(tx, &job).await?;
                }
                RuleAction::HttpRequest { method, url, headers, body, timeout_seconds } => {
                    let delivery_id = new_id();
                    let payload = json!({
                        "delivery_id": delivery_id, "case_id": case_id, "rule": rule.name, "method": method,
                        "url": url, "headers": headers, "body": body, "timeout_seconds": timeout_seconds,
                    });
                    let job = NewJob { kind: RULE_HTTP_JOB, payload, run_at: now(), idempotency_key: None };
                    enqueue(tx, &job).await?;
                }
                RuleAction::Trigger { rule: name } => {
                    let sql = format!("SELECT {RULE_COLUMNS} FROM rules WHERE name = $1 AND is_enabled = $2");
                    let row = tx.query(&sql).bind(name.as_str()).bind(true).fetch_optional().await?;
                    let target = row
                        .map(|row| rule_from_row(&row))
                        .transpose()?
                        .ok_or_else(|| StoreError::invalid("trigger", format!("no enabled rule named {name}")))?;
                    let case = match case_id {
                        Some(id) => Some(load_case(tx, "c.id = $1", id, false).await?),
                        None => None,
                    };
                    let trigger = Trigger {
                        email: None,
                        hook: Hook::Sequential,
                        case: case.as_ref(),
                        changes: &[],
                        note: None,
                        actor: &system,
                        depth: depth + 1,
                    };
                    self.run_rules(tx, vec![target], &trigger, effects).await?;
                }
                RuleAction::Set { .. }
                | RuleAction::Assign { .. }
                | RuleAction::AssignBy { .. }
                | RuleAction::LinkContact { .. }
                | RuleAction::UnlinkContact { .. } => unreachable!("field actions were partitioned out above"),
                RuleAction::Reject { .. } => {
                    return Err(StoreError::invalid("reject", "reject works only in case.before_save rules"));
                }
                RuleAction::DropEmail { .. } => {
                    return Err(StoreError::invalid("drop_email", "drop_email works only in email.received rules"));
                }
            }
        }
        Ok(())
    }

    /// An internal note by the rule naming whom it notified, and a
    /// notification for each of those users who may read the case.
    async fn notify_users(
        &self,
        tx: &mut Tx,
        case_id: &str,
        user_ids: &[String],
        message: &str,
        rule: &Rule,
    ) -> Result<String> {
        let case = load_case(tx, "c.id = $1", case_id, false).await?;
        let mut recipients = Vec::new();
        for user_id in user_ids {
            let Some(user) = crate::auth::load_actor(tx, user_id).await? else { continue };
            if user.is_staff() && user.allows(Scope::Case, docket_domain::Action::Read, &case.ownership()) {
                recipients.push(user.user_id);
            }
        }
        recipients.sort();
        recipients.dedup();
        let at = now();
        let note_id = new_id();
        tx.query(
            "INSERT INTO notes (id, case_id, note_type, post, data, is_internal, author_id, created_at, modified_at) \
             VALUES ($1, $2, 'Post', $3, $4, $5, $6, $7, $7)",
        )
        .bind(note_id.as_str())
        .bind(case_id)
        .bind(message)
        .bind(json!({ "rule": rule.name, "notified": recipients }).to_string())
        .bind(true)
        .bind(docket_domain::access::SYSTEM_USER_ID)
        .bind(at)
        .execute()
        .await?;
        for user_id in &recipients {
            let id = crate::stream::insert_rule_notification(tx, user_id, case_id, &note_id, at).await?;
            crate::stream::email_if_wanted(tx, user_id, &id, at + self.email_delay).await?;
        }
        Ok(note_id)
    }

    /// Picks an assignee with a strategy (domain.md, "Assignment rules").
    /// On PostgreSQL the team row is locked first, so that concurrent
    /// assignments to one team take turns and each sees the one before.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn choose_assignee(
        &self,
        tx: &mut Tx,
        case_id: &str,
        pending: Option<&Case>,
        strategy_name: &str,
        team: &str,
        position: Option<&str>,
        effects: &mut Effects,
    ) -> Result<Option<Choice>> {
        // A built-in (or registered) strategy, else an enabled assigner
        // plugin of that name.
        let strategy = self.strategy(strategy_name);
        if strategy.is_none() && !self.has_assigner_plugin(tx, strategy_name).await? {
            return Err(StoreError::invalid(
                "assign_by",
                format!(
                    "unknown strategy `{strategy_name}`; known: {}, or an enabled assigner plugin",
                    self.strategy_names().join(", ")
                ),
            ));
        }
        // On PostgreSQL the team row is locked first, in a statement of its
        // own: concurrent assignments to the team take turns, and the next
        // statement (a new snapshot, taken once the lock is held) sees the
        // case the previous holder assigned. SQLite's single writer
        // serialises them already.
        if tx.backend() == crate::Backend::Postgres {
            tx.query("SELECT id FROM teams WHERE id = $1 OR name = $1 FOR UPDATE").bind(team).fetch_all().await?;
        }
        // The team, its eligible members and each member's latest case
        // (other than this one) in one statement: the latest case is one
        // backward seek on the index over (assigned_user_id, number).
        let mut sql = Sql::new(
            "SELECT t.id AS team_id, t.name AS team_name, u.id AS user_id, u.username, \
             (SELECT c.number FROM cases c WHERE c.assigned_user_id = u.id AND c.id <> ",
        );
        sql.value(case_id).push(
            " ORDER BY c.number DESC LIMIT 1) AS last_number \
             FROM teams t LEFT JOIN team_members m ON m.team_id = t.id",
        );
        if let Some(position) = position {
            sql.push(" AND m.position = ").value(position);
        }
        sql.push(" LEFT JOIN users u ON u.id = m.user_id AND u.user_type IN ('admin', 'agent') AND u.is_active = ");
        sql.value(true).push(" WHERE t.id = ").value(team).push(" OR t.name = ").value(team);
        sql.push(" ORDER BY t.id, u.id");
        let rows = tx.built(&sql).fetch_all().await?;
        let Some(first) = rows.first() else {
            return Err(StoreError::invalid("assign_by", format!("no team {team}")));
        };
        let team_id: String = first.get("team_id")?;
        let team_name: String = first.get("team_name")?;
        let mut candidates = Vec::new();
        let mut last_assigned: Option<(String, i64)> = None;
        for row in &rows {
            let (row_team, user_id): (String, Option<String>) = (row.get("team_id")?, row.get("user_id")?);
            let (true, Some(user_id)) = (row_team == team_id, user_id) else { continue };
            if let Some(number) = row.get::<Option<i64>>("last_number")?
                && last_assigned.as_ref().is_none_or(|(_, best)| number > *best)
            {
                last_assigned = Some((user_id.clone(), number));
            }
            candidates.push(Candidate { user_id, username: row.get("username")?, open_cases: 0 });
        }
        if !candidates.is_empty() && strategy.as_ref().is_none_or(|s| s.needs_open_cases()) {
            // One count per candidate over (assigned_user_id, status): only
            // the open cases are read, however many closed ones there are.
            let open: Vec<&str> = CaseStatus::ALL.into_iter().filter(|s| s.is_open()).map(CaseStatus::as_str).collect();
            for candidate in &mut candidates {
                let mut count = Sql::new("SELECT COUNT(*) AS open FROM cases WHERE assigned_user_id = ");
                count.value(candidate.user_id.as_str()).push(" AND status IN ").list(&open);
                candidate.open_cases = tx.built(&count).fetch_one().await?.get("open")?;
            }
        }
        let input =
            AssignmentInput { team_id, team_name, position: position.map(str::to_string), candidates, last_assigned };
        let choice = match &strategy {
            Some(strategy) => strategy
                .choose(&input)
                .map_err(|e| StoreError::invalid("assign_by", format!("{}: {e}", strategy.name())))?,
            None => {
                let loaded;
                let case = match pending {
                    Some(case) => case,
                    None => {
                        loaded = load_case(tx, "c.id = $1", case_id, true).await?;
                        &loaded
                    }
                };
                let (outcome, run) = self.run_assigner_plugin(tx, strategy_name, &input, Some(case)).await?;
                effects.plugin_runs.extend(run);
                outcome.map_err(|e| StoreError::invalid("assign_by", e))?
            }
        };
        // A strategy (a plugin's, say) may only pick one of the candidates:
        // active staff of the team, which is why the caller need not check
        // the assignee again.
        if let Some(choice) = &choice
            && !input.candidates.iter().any(|c| c.user_id == choice.user_id)
        {
            return Err(StoreError::invalid(
                "assign_by",
                format!("strategy {} chose {}, who is not an active member of the team", strategy_name, choice.user_id),
            ));
        }
        Ok(choice)
    }

    /// Writes the runs a command collected. Runs that did nothing are not
    /// logged: a condition that did not hold, or a script that emitted no
    /// action and printed nothing. With many rules (and scheduled rules
    /// looking at many cases) they would be most of the log and say little;
    /// a dry run shows them.
    pub(crate) async fn insert_runs<'a>(tx: &mut Tx, runs: impl IntoIterator<Item = &'a RuleRun>) -> Result<()> {
        let runs: Vec<&RuleRun> = runs.into_iter().filter(|run| worth_logging(run)).collect();
        for chunk in runs.chunks(RUNS_PER_STATEMENT) {
            let mut sql = Sql::default();
            runs_insert(&mut sql, chunk);
            tx.built(&sql).execute().await?;
        }
        Ok(())
    }

    /// Logs runs outside a command's transaction (after a rejection rolled
    /// the command back). Best effort: a failure is logged, not returned.
    pub(crate) async fn insert_runs_alone(&self, runs: Vec<RuleRun>) {
        let result = async {
            let mut tx = self.pools.write().await?;
            // A refused update keeps its case; a refused creation has none.
            let mut checked = Vec::with_capacity(runs.len());
            for mut run in runs {
                if let Some(case_id) = &run.case_id {
                    let exists = tx
                        .query("SELECT 1 AS one FROM cases WHERE id = $1")
                        .bind(case_id.as_str())
                        .fetch_optional()
                        .await?;
                    if exists.is_none() {
                        run.case_id = None;
                    }
                }
                checked.push(run);
            }
            let runs = checked;
            Self::insert_runs(&mut tx, &runs).await?;
            tx.commit().await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "could not log the runs of a rejected change");
        }
    }

    /// Commits a command's transaction with its run log, then announces
    /// its notes to live pages.
    pub(crate) async fn finish(&self, mut tx: Tx, effects: Effects) -> Result<()> {
        let unlogged = effects.runs.iter().filter(|run| !effects.logged.contains(&run.id));
        Self::insert_runs(&mut tx, unlogged).await?;
        insert_plugin_runs(&mut tx, &effects.plugin_runs).await?;
        tx.commit().await?;
        for (case_id, note_id) in &effects.announce {
            self.announce(case_id, note_id).await;
        }
        Ok(())
    }
}

/// Rule runs written by one statement at most.
pub(crate) const RUNS_PER_STATEMENT: usize = 50;

/// Writes the insert of `runs` (not empty) into the queue of the run log
/// (see `run_log.rs`).
pub(crate) fn runs_insert(sql: &mut Sql, runs: &[&RuleRun]) {
    sql.push(
        "INSERT INTO rule_run_queue (id, rule_id, rule_name, case_id, hook, depth, outcome, condition_held, actions, \
         log, error, duration_us, started_at) VALUES ",
    );
    for (i, run) in runs.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(").value(run.id.as_str()).push(", ");
        sql.value(run.rule_id.as_deref()).push(", ").value(run.rule_name.as_str()).push(", ");
        sql.value(run.case_id.as_deref()).push(", ").value(run.hook.as_str()).push(", ");
        sql.value(run.depth as i64).push(", ").value(run.outcome.as_str()).push(", ");
        sql.value(run.condition_held).push(", ");
        sql.value(serde_json::to_string(&run.actions).unwrap_or_else(|_| "[]".into())).push(", ");
        sql.value(serde_json::to_string(&run.log).unwrap_or_else(|_| "[]".into())).push(", ");
        sql.value(run.error.as_deref()).push(", ").value(run.duration_us).push(", ");
        sql.value(run.started_at).push(")");
    }
}

pub(crate) fn worth_logging(run: &RuleRun) -> bool {
    match run.outcome {
        Outcome::ConditionFalse => false,
        Outcome::Applied => !run.actions.is_empty() || !run.log.is_empty(),
        _ => true,
    }
}

fn no_case(what: &str) -> StoreError {
    StoreError::invalid("rule", format!("cannot {what}: this run has no case"))
}

fn describe_error(error: &StoreError) -> String {
    match error {
        StoreError::Invalid(errors) => errors.summary(),
        StoreError::Rejected { rule, message } => format!("rule {rule} rejected the change: {message}"),
        other => other.to_string(),
    }
}

/// Actions that change the case's own fields.
fn is_field_action(action: &RuleAction) -> bool {
    matches!(
        action,
        RuleAction::Set { .. }
            | RuleAction::Assign { .. }
            | RuleAction::AssignBy { .. }
            | RuleAction::LinkContact { .. }
            | RuleAction::UnlinkContact { .. }
    )
}

/// The patch a list of field actions makes to a case with these
/// contacts (strategy assignments are resolved by the caller).
fn field_patch(contact_ids: &[String], actions: &[RuleAction]) -> Result<CasePatch> {
    let mut patch = CasePatch::default();
    let mut contact_ids = contact_ids.to_vec();
    let mut contacts_changed = false;
    for action in actions {
        match action {
            RuleAction::Set { field, value } => {
                let mut object = serde_json::Map::new();
                object.insert(field.clone(), value.clone());
                let single: CasePatch = serde_json::from_value(serde_json::Value::Object(object))
                    .map_err(|e| StoreError::invalid(field, e.to_string()))?;
                merge(&mut patch, single);
            }
            RuleAction::Assign { user_id } => patch.assigned_user_id = Some(user_id.clone()),
            RuleAction::LinkContact { contact_id } if !contact_ids.contains(contact_id) => {
                contact_ids.push(contact_id.clone());
                contacts_changed = true;
            }
            RuleAction::UnlinkContact { contact_id } => {
                contacts_changed |= contact_ids.contains(contact_id);
                contact_ids.retain(|c| c != contact_id);
            }
            _ => {}
        }
    }
    if contacts_changed {
        patch.contact_ids = Some(contact_ids);
    }
    Ok(patch)
}

/// Later fields win.
fn merge(into: &mut CasePatch, from: CasePatch) {
    macro_rules! take {
        ($($field:ident),*) => { $( if from.$field.is_some() { into.$field = from.$field; } )* };
    }
    take!(name, description, status, priority, case_type, account_id, is_internal);
}

fn run_record(rule: &Rule, trigger: &Trigger<'_>, evaluation: &Evaluation, dry_run: bool) -> RuleRun {
    RuleRun {
        id: new_id(),
        rule_id: Some(rule.id.clone()),
        rule_name: rule.name.clone(),
        case_id: trigger.case.map(|c| c.id.clone()),
        case_number: trigger.case.map(|c| c.number),
        hook: trigger.hook.as_str().to_string(),
        depth: trigger.depth,
        outcome: evaluation.outcome(dry_run),
        condition_held: evaluation.condition_held,
        actions: evaluation.actions.clone(),
        log: evaluation.log.clone(),
        error: evaluation.error.clone(),
        duration_us: evaluation.duration.as_micros().min(i64::MAX as u128) as i64,
        started_at: now(),
    }
}

pub(crate) fn dry_run_record(rule: &Rule, trigger: &Trigger<'_>, evaluation: &Evaluation) -> RuleRun {
    run_record(rule, trigger, evaluation, true)
}

/// The business calendar setting, or the default (Monday to Friday,
/// 09:00 to 17:00 UTC).
pub(crate) async fn business_calendar(tx: &mut Tx) -> Result<BusinessCalendar> {
    let row =
        tx.query("SELECT value FROM settings WHERE key = $1").bind(BUSINESS_HOURS_SETTING).fetch_optional().await?;
    match row {
        Some(row) => serde_json::from_str(&row.get::<String>("value")?)
            .map_err(|e| StoreError::Corrupt(format!("business_hours setting: {e}"))),
        None => Ok(BusinessCalendar::default()),
    }
}

/// A read a running script asked for, with where to send the answer.
enum ReadRequest {
    Find(CaseQuery, usize, oneshot::Sender<Result<Vec<Case>, String>>),
    Count(CaseQuery, oneshot::Sender<Result<i64, String>>),
    TeamUsers(String, Option<String>, oneshot::Sender<Result<Vec<UserInfo>, String>>),
    LastReply(String, bool, oneshot::Sender<Result<Option<DateTime<Utc>>, String>>),
    LastApplied(String, String, oneshot::Sender<Result<Option<DateTime<Utc>>, String>>),
}

impl ReadRequest {
    /// Answers under a savepoint: a read that fails (bad input a script
    /// passed, say) must not abort a PostgreSQL transaction the change
    /// still needs.
    async fn answer(self, tx: &mut Tx) {
        if tx.query("SAVEPOINT rule_read").execute().await.is_err() {
            self.refuse("the database refused the read");
            return;
        }
        let ok = self.run(tx).await;
        end_savepoint(tx, "rule_read", ok).await;
    }

    fn refuse(self, message: &str) {
        // A dropped receiver means the script was stopped meanwhile.
        let message = message.to_string();
        match self {
            ReadRequest::Find(_, _, reply) => drop(reply.send(Err(message))),
            ReadRequest::Count(_, reply) => drop(reply.send(Err(message))),
            ReadRequest::TeamUsers(_, _, reply) => drop(reply.send(Err(message))),
            ReadRequest::LastReply(_, _, reply) | ReadRequest::LastApplied(_, _, reply) => {
                drop(reply.send(Err(message)))
            }
        }
    }

    /// Runs the read and sends the answer; returns whether it succeeded.
    async fn run(self, tx: &mut Tx) -> bool {
        fn send<T>(reply: oneshot::Sender<std::result::Result<T, String>>, result: Result<T>) -> bool {
            let ok = result.is_ok();
            // A dropped receiver means the script was stopped meanwhile.
            let _ = reply.send(result.map_err(|e| e.to_string()));
            ok
        }
        match self {
            ReadRequest::Find(query, limit, reply) => send(reply, find_cases(tx, &query, limit).await),
            ReadRequest::Count(query, reply) => send(reply, count_cases(tx, &query).await),
            ReadRequest::TeamUsers(team, position, reply) => {
                send(reply, team_users(tx, &team, position.as_deref()).await)
            }
            ReadRequest::LastReply(case_id, by_staff, reply) => {
                send(reply, last_reply_at(tx, &case_id, by_staff).await)
            }
            ReadRequest::LastApplied(case_id, rule, reply) => send(reply, last_applied_at(tx, &case_id, &rule).await),
        }
    }
}

/// The script side of the channel: blocks the script's thread until the
/// transaction's task answers.
struct ChannelReader {
    requests: mpsc::Sender<ReadRequest>,
}

impl ChannelReader {
    fn ask<T>(&mut self, request: impl FnOnce(oneshot::Sender<T>) -> ReadRequest) -> Result<T, String> {
        ask_blocking(&self.requests, request)
    }
}

/// Sends a request from a blocking thread (a script or a plugin) to the
/// task that holds the transaction, and waits for the answer.
pub(crate) fn ask_blocking<R, T>(
    requests: &mpsc::Sender<R>,
    request: impl FnOnce(oneshot::Sender<T>) -> R,
) -> Result<T, String> {
    let (reply, answer) = oneshot::channel();
    requests.blocking_send(request(reply)).map_err(|_| "the change was abandoned".to_string())?;
    answer.blocking_recv().map_err(|_| "the change was abandoned".to_string())
}

/// Releases a savepoint, or rolls back to it first when its work is not to
/// be kept. A failure is logged: the caller has answered already.
pub(crate) async fn end_savepoint(tx: &mut Tx, name: &str, keep: bool) {
    let end = if keep { format!("RELEASE SAVEPOINT {name}") } else { format!("ROLLBACK TO SAVEPOINT {name}") };
    if let Err(error) = tx.query(&end).execute().await {
        tracing::warn!(%error, savepoint = name, "could not end a savepoint");
    }
    if !keep {
        let _ = tx.query(&format!("RELEASE SAVEPOINT {name}")).execute().await;
    }
}

impl Reader for ChannelReader {
    fn find_cases(&mut self, query: &CaseQuery, limit: usize) -> Result<Vec<Case>, String> {
        self.ask(|reply| ReadRequest::Find(query.clone(), limit, reply))?
    }
    fn count_cases(&mut self, query: &CaseQuery) -> Result<i64, String> {
        self.ask(|reply| ReadRequest::Count(query.clone(), reply))?
    }
    fn team_users(&mut self, team: &str, position: Option<&str>) -> Result<Vec<UserInfo>, String> {
        self.ask(|reply| ReadRequest::TeamUsers(team.to_string(), position.map(str::to_string), reply))?
    }
    fn last_reply_at(&mut self, case_id: &str, by_staff: bool) -> Result<Option<DateTime<Utc>>, String> {
        self.ask(|reply| ReadRequest::LastReply(case_id.to_string(), by_staff, reply))?
    }
    fn last_applied_at(&mut self, case_id: &str, rule: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.ask(|reply| ReadRequest::LastApplied(case_id.to_string(), rule.to_string(), reply))?
    }
}

/// The condition of a rule query over `cases c`.
pub(crate) fn query_condition(tx: &Tx, query: &CaseQuery) -> Result<Sql> {
    let filter = query.filter().map_err(|e| StoreError::invalid("case_filter", e))?;
    let mut sql = Sql::new(" WHERE 1 = 1");
    crate::cases::case_filter_condition(&mut sql, &filter, tx.backend());
    if query.unassigned == Some(true) {
        sql.push(" AND c.assigned_user_id IS NULL");
    }
    let time = |secs: i64| {
        DateTime::from_timestamp(secs, 0)
            .ok_or_else(|| StoreError::invalid("case_filter", format!("{secs} is not a time")))
    };
    for (column, op, bound) in [
        ("created_at", "<", query.created_before),
        ("created_at", ">=", query.created_after),
        ("modified_at", "<", query.modified_before),
        ("modified_at", ">=", query.modified_after),
    ] {
        if let Some(secs) = bound {
            sql.push(&format!(" AND c.{column} {op} ")).value(time(secs)?);
        }
    }
    Ok(sql)
}

pub(crate) async fn find_cases(tx: &mut Tx, query: &CaseQuery, limit: usize) -> Result<Vec<Case>> {
    let condition = query_condition(tx, query)?;
    let window = Window { offset: 0, limit: limit as i64 };
    let sort = Sort { field: CaseSortField::Number, descending: false };
    crate::cases::select_cases(tx, &condition, sort, window).await
}

async fn count_cases(tx: &mut Tx, query: &CaseQuery) -> Result<i64> {
    let condition = query_condition(tx, query)?;
    let sql = crate::cases::prefixed("SELECT COUNT(*) AS total FROM cases c", &condition);
    tx.built(&sql).fetch_one().await?.get("total")
}

async fn team_users(tx: &mut Tx, team: &str, position: Option<&str>) -> Result<Vec<UserInfo>> {
    let mut sql = Sql::new(
        "SELECT u.id, u.username, u.name, u.email FROM team_members m JOIN users u ON u.id = m.user_id \
         JOIN teams t ON t.id = m.team_id WHERE u.is_active = ",
    );
    sql.value(true).push(" AND (t.id = ").value(team).push(" OR t.name = ").value(team).push(")");
    if let Some(position) = position {
        sql.push(" AND m.position = ").value(position);
    }
    sql.push(" ORDER BY u.id");
    tx.built(&sql)
        .fetch_all()
        .await?
        .iter()
        .map(|row| {
            Ok(UserInfo {
                id: row.get("id")?,
                username: row.get("username")?,
                name: row.get("name")?,
                email: row.get("email")?,
            })
        })
        .collect()
}

/// The last post (or received email) on a case by staff or by customers;
/// notes by rules do not count as replies.
async fn last_reply_at(tx: &mut Tx, case_id: &str, by_staff: bool) -> Result<Option<DateTime<Utc>>> {
    let who = if by_staff {
        "n.note_type = 'Post' AND u.user_type IN ('admin', 'agent', 'api') AND u.id <> 'system'"
    } else {
        "(n.note_type = 'EmailReceived' OR (n.note_type = 'Post' AND u.user_type = 'portal'))"
    };
    let sql = format!(
        "SELECT n.created_at FROM notes n LEFT JOIN users u ON u.id = n.author_id \
         WHERE n.case_id = $1 AND n.is_internal = $2 AND {who} ORDER BY n.created_at DESC LIMIT 1"
    );
    let row = tx.query(&sql).bind(case_id).bind(false).fetch_optional().await?;
    row.map(|row| row.get("created_at")).transpose()
}

/// When a rule last applied its actions to a case.
async fn last_applied_at(tx: &mut Tx, case_id: &str, rule: &str) -> Result<Option<DateTime<Utc>>> {
    let row = tx
        .query(
            "SELECT started_at FROM rule_runs WHERE case_id = $1 AND rule_name = $2 AND outcome = 'applied' \
             AND actions <> '[]' \
             UNION ALL SELECT started_at FROM rule_run_queue WHERE case_id = $1 AND rule_name = $2 \
             AND outcome = 'applied' AND actions <> '[]' \
             ORDER BY started_at DESC LIMIT 1",
        )
        .bind(case_id)
        .bind(rule)
        .fetch_optional()
        .await?;
    row.map(|row| row.get("started_at")).transpose()
}
