//! Compiling rules (once per rule version) and evaluating them against an
//! event.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use docket_domain::Actor;
use docket_domain::calendar::BusinessCalendar;
use docket_domain::case::{Case, FieldChange};
use docket_domain::note::Note;
use docket_domain::rule::{Hook, Outcome, Rule, RuleAction};
use rhai::{AST, Dynamic, EvalAltResult, Map, Scope};

use crate::sandbox::{Limits, new_engine};
use crate::script_api::{self, Reader, RunState};
use crate::values::{actor_map, case_map, changes_map, note_map};

/// A script that does not compile, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {message} (line {line}, column {column})")]
pub struct CompileError {
    /// `condition` or `script`.
    pub part: &'static str,
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// A rule compiled to ASTs.
struct Compiled {
    version: i64,
    condition: Option<AST>,
    script: AST,
}

/// What a rule runs against.
pub struct Event<'a> {
    /// The message an `email.received` rule looks at (`email`).
    pub email: Option<&'a serde_json::Value>,
    pub hook: Hook,
    /// The case (`ticket`); `None` for scheduled rules without a filter.
    pub ticket: Option<&'a Case>,
    pub changes: &'a [FieldChange],
    pub note: Option<&'a Note>,
    pub actor: Option<&'a Actor>,
    pub depth: u32,
    pub now: DateTime<Utc>,
    pub calendar: &'a BusinessCalendar,
}

/// The result of evaluating one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// `None` when the rule has no condition (or it failed to evaluate).
    pub condition_held: Option<bool>,
    /// Empty when the run failed: a failed rule does nothing.
    pub actions: Vec<RuleAction>,
    pub log: Vec<String>,
    pub error: Option<String>,
    pub duration: Duration,
}

impl Evaluation {
    /// The outcome if the actions are applied (or shown, for a dry run).
    pub fn outcome(&self, dry_run: bool) -> Outcome {
        if self.error.is_some() {
            Outcome::Failed
        } else if self.condition_held == Some(false) {
            Outcome::ConditionFalse
        } else if self.actions.iter().any(|a| matches!(a, RuleAction::Reject { .. })) && !dry_run {
            Outcome::Rejected
        } else if dry_run {
            Outcome::DryRun
        } else {
            Outcome::Applied
        }
    }
}

/// The rules engine: one rhai engine for every rule, and the compiled
/// rules by id. Cheap to share (`Arc<Engine>`); safe across threads.
pub struct Engine {
    rhai: rhai::Engine,
    limits: Limits,
    compiled: RwLock<HashMap<String, Arc<Compiled>>>,
}

/// The same names declared for compiling, so that strict variables reject
/// typos when the rule is saved. Plain variables, not constants: the
/// optimizer would fold a constant's compile-time placeholder into the
/// script.
fn compile_scope<'a>() -> Scope<'a> {
    let mut scope = Scope::new();
    for name in ["ticket", "changes", "event", "actor", "email"] {
        scope.push(name, Dynamic::UNIT);
    }
    scope
}

impl Engine {
    pub fn new(limits: Limits) -> Engine {
        let mut rhai = new_engine(&limits);
        script_api::register(&mut rhai);
        rhai.on_progress(|operations| {
            // Checking the clock every operation would cost more than the
            // operations; every 256th keeps the overshoot to microseconds.
            if operations % 256 == 0 && script_api::past_deadline() {
                Some(Dynamic::from("time budget exceeded"))
            } else {
                None
            }
        });
        Engine { rhai, limits, compiled: RwLock::new(HashMap::new()) }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles a condition and a script; the error says where.
    pub fn check(&self, condition: Option<&str>, script: &str) -> Result<(), CompileError> {
        self.compile(0, condition, script).map(|_| ())
    }

    fn compile(&self, version: i64, condition: Option<&str>, script: &str) -> Result<Compiled, CompileError> {
        let scope = compile_scope();
        let located = |part: &'static str, error: rhai::ParseError| CompileError {
            part,
            message: error.0.to_string(),
            line: error.1.line().unwrap_or(0),
            column: error.1.position().unwrap_or(0),
        };
        let condition = match condition {
            Some(text) => {
                Some(self.rhai.compile_expression_with_scope(&scope, text).map_err(|e| located("condition", e))?)
            }
            None => None,
        };
        let script = self.rhai.compile_with_scope(&scope, script).map_err(|e| located("script", e))?;
        Ok(Compiled { version, condition, script })
    }

    /// The compiled rule, compiling it on first use of this version.
    fn compiled(&self, rule: &Rule) -> Result<Arc<Compiled>, CompileError> {
        if let Some(found) = self.compiled.read().unwrap_or_else(|e| e.into_inner()).get(&rule.id)
            && found.version == rule.version
        {
            return Ok(found.clone());
        }
        let compiled = Arc::new(self.compile(rule.version, rule.condition.as_deref(), &rule.script)?);
        self.compiled.write().unwrap_or_else(|e| e.into_inner()).insert(rule.id.clone(), compiled.clone());
        Ok(compiled)
    }

    /// Drops a rule's compiled form (the rule was deleted, or was a
    /// one-off dry run).
    pub fn forget(&self, rule_id: &str) {
        self.compiled.write().unwrap_or_else(|e| e.into_inner()).remove(rule_id);
    }

    /// Runs one rule: its condition, then (if it held) its script. The
    /// reader is handed back for the next rule.
    pub fn evaluate(&self, rule: &Rule, event: &Event, reader: Box<dyn Reader>) -> (Evaluation, Box<dyn Reader>) {
        let (mut evaluations, reader) = self.evaluate_all(std::slice::from_ref(rule), event, reader);
        (evaluations.remove(0), reader)
    }

    /// Runs rules in order against one event, each with its own budget.
    /// The event's variables are built once and shared by the rules (a
    /// rule cannot change them: they are constants).
    pub fn evaluate_all(
        &self,
        rules: &[Rule],
        event: &Event,
        reader: Box<dyn Reader>,
    ) -> (Vec<Evaluation>, Box<dyn Reader>) {
        let mut scope = self.event_scope(event);
        let base = scope.len();
        self.begin(event, reader);
        let mut evaluations = Vec::with_capacity(rules.len());
        for rule in rules {
            let started = Instant::now();
            script_api::reset(started + self.limits.time_budget);
            scope.rewind(base);
            scope.push_constant("event", event_map(rule, event));
            let (condition_held, result) = match self.compiled(rule) {
                Ok(compiled) => self.run(&compiled, &mut scope),
                Err(error) => (None, Err(error.to_string().into())),
            };
            let (actions, mut log, dropped) = script_api::take_output();
            let actions = without_nul(actions);
            for line in &mut log {
                scrub(line);
            }
            if dropped > 0 {
                log.push(format!("({dropped} more log lines dropped)"));
            }
            evaluations.push(match result {
                Ok(()) => Evaluation { condition_held, actions, log, error: None, duration: started.elapsed() },
                Err(error) => {
                    let mut message = self.explain(&error);
                    scrub(&mut message);
                    failed(condition_held, log, message, started)
                }
            });
        }
        let state = script_api::end().expect("the run state was set by begin");
        (evaluations, state.reader)
    }

    /// Evaluates only rules' conditions (for manual rules: is the button
    /// shown?). A rule without a condition always holds.
    pub fn conditions(
        &self,
        rules: &[Rule],
        event: &Event,
        reader: Box<dyn Reader>,
    ) -> (Vec<Result<bool, String>>, Box<dyn Reader>) {
        let mut scope = self.event_scope(event);
        let base = scope.len();
        self.begin(event, reader);
        let mut results = Vec::with_capacity(rules.len());
        for rule in rules {
            script_api::reset(Instant::now() + self.limits.time_budget);
            scope.rewind(base);
            scope.push_constant("event", event_map(rule, event));
            let result = match self.compiled(rule) {
                Err(error) => Err(error.to_string()),
                Ok(compiled) => match &compiled.condition {
                    None => Ok(true),
                    Some(condition) => match self.rhai.eval_ast_with_scope::<Dynamic>(&mut scope, condition) {
                        Ok(value) => {
                            value.as_bool().map_err(|t| format!("the condition must be true or false, not a {t}"))
                        }
                        Err(error) => Err(self.explain(&error)),
                    },
                },
            };
            results.push(result);
        }
        let state = script_api::end().expect("the run state was set by begin");
        (results, state.reader)
    }

    fn begin(&self, event: &Event, reader: Box<dyn Reader>) {
        script_api::begin(RunState {
            hook: event.hook,
            actions: Vec::new(),
            log: Vec::new(),
            dropped_log_lines: 0,
            max_actions: self.limits.max_actions,
            max_log_lines: self.limits.max_log_lines,
            deadline: Instant::now() + self.limits.time_budget,
            now: event.now,
            calendar: event.calendar.clone(),
            reader,
        });
    }

    /// `ticket`, `changes` and `actor`; `event` is pushed per rule.
    fn event_scope(&self, event: &Event) -> Scope<'static> {
        let mut scope = Scope::new();
        scope.push_constant("ticket", event.ticket.map(case_map).unwrap_or(Dynamic::UNIT));
        scope.push_constant("changes", changes_map(event.changes));
        scope.push_constant("actor", event.actor.map(actor_map).unwrap_or(Dynamic::UNIT));
        let email = event.email.and_then(|email| rhai::serde::to_dynamic(email).ok());
        scope.push_constant("email", email.unwrap_or(Dynamic::UNIT));
        scope
    }

    fn run(&self, compiled: &Compiled, scope: &mut Scope) -> (Option<bool>, Result<(), Box<EvalAltResult>>) {
        let mut condition_held = None;
        if let Some(condition) = &compiled.condition {
            match self.rhai.eval_ast_with_scope::<Dynamic>(scope, condition) {
                Ok(value) => match value.as_bool() {
                    Ok(true) => condition_held = Some(true),
                    Ok(false) => return (Some(false), Ok(())),
                    Err(type_name) => {
                        let message = format!("the condition must be true or false, not a {type_name}");
                        return (None, Err(message.into()));
                    }
                },
                Err(error) => return (None, Err(error)),
            }
        }
        (condition_held, self.rhai.eval_ast_with_scope::<Dynamic>(scope, &compiled.script).map(|_| ()))
    }

    /// A runtime error in words an admin can act on.
    fn explain(&self, error: &EvalAltResult) -> String {
        let at = match error.position() {
            position if position.is_none() => String::new(),
            position => {
                format!(" (line {}, column {})", position.line().unwrap_or(0), position.position().unwrap_or(0))
            }
        };
        let limits = &self.limits;
        match error {
            EvalAltResult::ErrorTerminated(..) => {
                format!("stopped: ran longer than {} ms{at}", limits.time_budget.as_millis())
            }
            EvalAltResult::ErrorTooManyOperations(..) => {
                format!("stopped: more than {} operations{at}", limits.max_operations)
            }
            EvalAltResult::ErrorStackOverflow(..) => {
                format!("stopped: calls nested deeper than {} levels{at}", limits.max_call_levels)
            }
            EvalAltResult::ErrorDataTooLarge(what, ..) => format!(
                "stopped: {what} over the limit (strings {} characters, arrays {} items, maps {} entries){at}",
                limits.max_string_size, limits.max_array_size, limits.max_map_size
            ),
            EvalAltResult::ErrorInFunctionCall(name, _, inner, _) => {
                format!("in function {name}: {}", self.explain(inner))
            }
            other => other.to_string(),
        }
    }
}

/// NUL characters removed: PostgreSQL text cannot hold them, and a script
/// must not be able to make the change it runs in fail that way.
fn scrub(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "");
    }
}

fn without_nul(actions: Vec<RuleAction>) -> Vec<RuleAction> {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => scrub(text),
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::Object(map) => map.values_mut().for_each(walk),
            _ => {}
        }
    }
    actions
        .into_iter()
        .map(|action| {
            let Ok(mut value) = serde_json::to_value(&action) else { return action };
            walk(&mut value);
            serde_json::from_value(value).unwrap_or(action)
        })
        .collect()
}

fn failed(condition_held: Option<bool>, log: Vec<String>, error: String, started: Instant) -> Evaluation {
    Evaluation { condition_held, actions: Vec::new(), log, error: Some(error), duration: started.elapsed() }
}

fn event_map(rule: &Rule, event: &Event) -> Dynamic {
    let mut map = Map::new();
    map.insert("hook".into(), Dynamic::from(event.hook.as_str().to_string()));
    map.insert("rule".into(), Dynamic::from(rule.name.clone()));
    map.insert("depth".into(), Dynamic::from(event.depth as i64));
    // In `case.before_save`, whether the case is being created (it has no
    // number yet) rather than updated.
    let creating = event.hook == Hook::BeforeSave && event.ticket.is_some_and(|t| t.number == 0);
    map.insert("creating".into(), Dynamic::from(creating));
    map.insert("note".into(), event.note.map(note_map).unwrap_or(Dynamic::UNIT));
    Dynamic::from_map(map)
}

#[cfg(test)]
mod tests;
