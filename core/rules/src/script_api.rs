//! The one table of functions rule scripts may call (see `register`).
//!
//! Functions either *emit an action* (recorded, applied later by the
//! store), *read* through the [`Reader`] the caller supplies (inside the
//! triggering transaction), or compute (time and business hours). None of
//! them touches the network or the filesystem.
//!
//! A run's state (its actions, log, deadline and reader) lives in a
//! thread-local for the duration of one evaluation: rhai calls these
//! functions synchronously on the evaluating thread, and the engine is
//! shared between threads, so the state cannot live in the engine.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use docket_domain::calendar::BusinessCalendar;
use docket_domain::case::{Case, CasePriority, CaseStatus, CaseType};
use docket_domain::rule::{CaseQuery, Hook, NewRuleCase, RuleAction};
use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map};
use serde::{Deserialize, Serialize};

use crate::values::{case_map, dynamic_to_json, seconds};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// The functions that read through the [`Reader`]. A rule that calls none
/// of them can be evaluated without one (and without a thread hop).
pub const READ_FUNCTIONS: [&str; 6] =
    ["find_cases", "count_cases", "team_users", "last_reply_at", "last_customer_reply_at", "last_applied_at"];

/// Whether a rule's text mentions a read function. A mention in a comment
/// or a string counts too: erring that way only costs a thread hop.
pub fn reads_data(condition: Option<&str>, script: &str) -> bool {
    READ_FUNCTIONS.iter().any(|name| script.contains(name) || condition.is_some_and(|c| c.contains(name)))
}

/// Most cases one `find_cases` call returns.
pub const FIND_LIMIT_MAX: usize = 200;

/// A user as `team_users` returns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: String,
    pub username: String,
    pub name: String,
    pub email: Option<String>,
}

/// Reads scripts may make, answered by the store inside the triggering
/// transaction (so a rule sees the change that triggered it). Errors are
/// messages for the run log.
pub trait Reader: Send {
    fn find_cases(&mut self, query: &CaseQuery, limit: usize) -> Result<Vec<Case>, String>;
    fn count_cases(&mut self, query: &CaseQuery) -> Result<i64, String>;
    /// Active members of a team (by id or name), with the position if given.
    fn team_users(&mut self, team: &str, position: Option<&str>) -> Result<Vec<UserInfo>, String>;
    /// When staff (`true`) or a customer (`false`) last posted on a case.
    fn last_reply_at(&mut self, case_id: &str, by_staff: bool) -> Result<Option<DateTime<Utc>>, String>;
    /// When a rule last applied its actions to a case (from the run log).
    fn last_applied_at(&mut self, case_id: &str, rule: &str) -> Result<Option<DateTime<Utc>>, String>;
}

/// A reader for runs that may not read (it refuses every call).
pub struct NoReader;

impl Reader for NoReader {
    fn find_cases(&mut self, _: &CaseQuery, _: usize) -> Result<Vec<Case>, String> {
        Err("reading cases is not available here".into())
    }
    fn count_cases(&mut self, _: &CaseQuery) -> Result<i64, String> {
        Err("reading cases is not available here".into())
    }
    fn team_users(&mut self, _: &str, _: Option<&str>) -> Result<Vec<UserInfo>, String> {
        Err("reading users is not available here".into())
    }
    fn last_reply_at(&mut self, _: &str, _: bool) -> Result<Option<DateTime<Utc>>, String> {
        Err("reading the stream is not available here".into())
    }
    fn last_applied_at(&mut self, _: &str, _: &str) -> Result<Option<DateTime<Utc>>, String> {
        Err("reading the run log is not available here".into())
    }
}

/// The state of the run on this thread.
pub(crate) struct RunState {
    pub hook: Hook,
    pub actions: Vec<RuleAction>,
    pub log: Vec<String>,
    pub dropped_log_lines: usize,
    pub max_actions: usize,
    pub max_log_lines: usize,
    pub deadline: Instant,
    pub now: DateTime<Utc>,
    pub calendar: BusinessCalendar,
    pub reader: Box<dyn Reader>,
}

thread_local! {
    static RUN: RefCell<Option<RunState>> = const { RefCell::new(None) };
}

pub(crate) fn begin(state: RunState) {
    RUN.with(|run| *run.borrow_mut() = Some(state));
}

/// Starts the next rule of a run: a fresh budget, no actions or log yet.
pub(crate) fn reset(deadline: Instant) {
    RUN.with(|run| {
        if let Some(state) = run.borrow_mut().as_mut() {
            state.deadline = deadline;
            state.actions.clear();
            state.log.clear();
            state.dropped_log_lines = 0;
        }
    });
}

/// The actions, log and count of dropped log lines of the rule that ran.
pub(crate) fn take_output() -> (Vec<RuleAction>, Vec<String>, usize) {
    RUN.with(|run| match run.borrow_mut().as_mut() {
        Some(state) => (std::mem::take(&mut state.actions), std::mem::take(&mut state.log), state.dropped_log_lines),
        None => (Vec::new(), Vec::new(), 0),
    })
}

pub(crate) fn end() -> Option<RunState> {
    RUN.with(|run| run.borrow_mut().take())
}

/// Whether the run on this thread is past its wall-clock budget.
pub(crate) fn past_deadline() -> bool {
    RUN.with(|run| run.borrow().as_ref().is_some_and(|state| Instant::now() > state.deadline))
}

fn with_run<T>(f: impl FnOnce(&mut RunState) -> Fallible<T>) -> Fallible<T> {
    RUN.with(|run| match run.borrow_mut().as_mut() {
        Some(state) => f(state),
        None => Err("rule functions work only while a rule runs".into()),
    })
}

fn emit(action: RuleAction) -> Fallible<()> {
    with_run(|state| {
        if state.actions.len() >= state.max_actions {
            return Err(format!("a rule may emit at most {} actions", state.max_actions).into());
        }
        state.actions.push(action);
        Ok(())
    })
}

pub(crate) fn log_line(line: String) {
    let _ = with_run(|state| {
        if state.log.len() < state.max_log_lines {
            state.log.push(line);
        } else {
            state.dropped_log_lines += 1;
        }
        Ok(())
    });
}

/// The latest time scripts handle: the end of year 9999. Bounding times
/// keeps calendar arithmetic (offsets, days) far from chrono's limits.
const LAST_TIME: i64 = 253_402_300_799;

fn time(secs: i64) -> Fallible<DateTime<Utc>> {
    if !(0..=LAST_TIME).contains(&secs) {
        return Err(format!("{secs} is not a time between 1970 and 9999").into());
    }
    DateTime::from_timestamp(secs, 0).ok_or_else(|| format!("{secs} is not a time").into())
}

/// Text from a script value that must be a string.
fn string(what: &str, value: &Dynamic) -> Fallible<String> {
    value.clone().into_string().map_err(|t| format!("{what} must be a string, not {t}").into())
}

/// User ids from a string, a user map (`#{ id: ... }`) or an array of
/// either (what `team_users` returns).
fn user_ids(value: &Dynamic) -> Fallible<Vec<String>> {
    if let Some(array) = value.clone().try_cast::<Array>() {
        return array.iter().map(user_id).collect();
    }
    Ok(vec![user_id(value)?])
}

fn user_id(value: &Dynamic) -> Fallible<String> {
    if let Some(map) = value.clone().try_cast::<Map>() {
        return map
            .get("id")
            .map(|id| string("a user's id", id))
            .unwrap_or_else(|| Err("a user map needs an `id`".into()));
    }
    string("a user", value)
}

fn from_map<T: serde::de::DeserializeOwned>(what: &str, value: &Dynamic) -> Fallible<T> {
    let json = dynamic_to_json(value)?;
    serde_json::from_value(json).map_err(|e| format!("{what}: {e}").into())
}

fn query(value: &Dynamic) -> Fallible<CaseQuery> {
    Ok(CaseQuery::from_json(&dynamic_to_json(value)?)?)
}

/// `set(field, value)`: checks the field and the value now, so a typo
/// fails the run with the line, not the apply.
fn set(field: &str, value: Dynamic) -> Fallible<()> {
    let json = dynamic_to_json(&value)?;
    let ok = match field {
        "name" => json.as_str().is_some_and(|s| !s.trim().is_empty()),
        "description" | "account_id" => json.is_string() || json.is_null(),
        "status" => json.as_str().map(CaseStatus::parse).transpose()?.is_some(),
        "priority" => json.as_str().map(CasePriority::parse).transpose()?.is_some(),
        "type" => json.is_null() || json.as_str().map(CaseType::parse).transpose()?.is_some(),
        "is_internal" => json.is_boolean(),
        _ => {
            return Err(format!(
                "cannot set `{field}`: settable fields are name, description, status, priority, type, account_id, \
                 is_internal (use assign, link_contact for the others)"
            )
            .into());
        }
    };
    if !ok {
        return Err(format!("`{field}` cannot be set to {json}").into());
    }
    emit(RuleAction::Set { field: field.to_string(), value: json })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailArgs {
    to: serde_json::Value,
    subject: String,
    body: String,
}

fn send_email(args: Dynamic) -> Fallible<()> {
    let args: EmailArgs = from_map("send_email", &args)?;
    let to: Vec<String> = match args.to {
        serde_json::Value::String(one) => vec![one],
        serde_json::Value::Array(many) => many
            .into_iter()
            .map(|v| v.as_str().map(str::to_string).ok_or("`to` lists addresses"))
            .collect::<Result<_, _>>()?,
        _ => return Err("send_email: `to` is an address or a list of addresses".into()),
    };
    if to.is_empty() || to.iter().any(|a| !a.contains('@') || a.len() > 254) {
        return Err("send_email: every `to` must be an email address".into());
    }
    if args.subject.trim().is_empty() {
        return Err("send_email: the subject must not be empty".into());
    }
    emit(RuleAction::SendEmail { to, subject: args.subject, body: args.body })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpArgs {
    #[serde(default = "default_method")]
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<serde_json::Value>,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
}

fn default_method() -> String {
    "POST".into()
}

fn default_timeout() -> u64 {
    10
}

fn http_request(args: Dynamic) -> Fallible<()> {
    let args: HttpArgs = from_map("http_request", &args)?;
    let method = args.method.to_ascii_uppercase();
    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
        return Err(format!("http_request: unsupported method {method}").into());
    }
    if !(args.url.starts_with("https://") || args.url.starts_with("http://")) {
        return Err("http_request: the url must start with http:// or https://".into());
    }
    if !(1..=60).contains(&args.timeout_seconds) {
        return Err("http_request: timeout_seconds must be between 1 and 60".into());
    }
    let body = match args.body {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => Some(text),
        Some(json) => Some(json.to_string()),
    };
    emit(RuleAction::HttpRequest {
        method,
        url: args.url,
        headers: args.headers,
        body,
        timeout_seconds: args.timeout_seconds,
    })
}

fn read<T>(f: impl FnOnce(&mut dyn Reader) -> Result<T, String>) -> Fallible<T> {
    with_run(|state| f(state.reader.as_mut()).map_err(Into::into))
}

fn cases(found: Vec<Case>) -> Array {
    found.iter().map(case_map).collect()
}

fn users(found: Vec<UserInfo>) -> Array {
    found
        .into_iter()
        .map(|user| {
            let mut map = Map::new();
            map.insert("id".into(), user.id.into());
            map.insert("username".into(), user.username.into());
            map.insert("name".into(), user.name.into());
            map.insert("email".into(), user.email.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
            Dynamic::from_map(map)
        })
        .collect()
}

fn calendar<T>(f: impl FnOnce(&BusinessCalendar, DateTime<Utc>) -> T) -> Fallible<T> {
    with_run(|state| Ok(f(&state.calendar, state.now)))
}

/// Registers every function scripts may call. Keep this the only place
/// that does, so the script API is read in one sitting (and documented in
/// docs/rules.md in the same order).
pub(crate) fn register(engine: &mut rhai::Engine) {
    // Emitting actions.
    engine.register_fn("set", |field: &str, value: Dynamic| set(field, value));
    engine.register_fn("create_case", |case: Dynamic| -> Fallible<()> {
        let case: NewRuleCase = from_map("create_case", &case)?;
        case.validate().map_err(|e| format!("create_case: {e}"))?;
        emit(RuleAction::CreateCase { case })
    });
    engine.register_fn("link_contact", |id: &str| emit(RuleAction::LinkContact { contact_id: id.to_string() }));
    engine.register_fn("unlink_contact", |id: &str| emit(RuleAction::UnlinkContact { contact_id: id.to_string() }));
    engine.register_fn("assign", |user: Dynamic| emit(RuleAction::Assign { user_id: Some(user_id(&user)?) }));
    engine.register_fn("unassign", || emit(RuleAction::Assign { user_id: None }));
    engine.register_fn("assign_by", |strategy: &str, team: &str| {
        emit(RuleAction::AssignBy { strategy: strategy.to_string(), team: team.to_string(), position: None })
    });
    engine.register_fn("assign_by", |strategy: &str, team: &str, position: &str| {
        let position = Some(position.to_string()).filter(|p| !p.is_empty());
        emit(RuleAction::AssignBy { strategy: strategy.to_string(), team: team.to_string(), position })
    });
    engine.register_fn("post_note", |text: &str| note(text, false));
    engine.register_fn("internal_note", |text: &str| note(text, true));
    engine.register_fn("follow", |user: Dynamic| emit(RuleAction::Follow { user_id: user_id(&user)? }));
    engine.register_fn("notify", |users: Dynamic, message: &str| -> Fallible<()> {
        let user_ids = user_ids(&users)?;
        if message.trim().is_empty() {
            return Err("notify: the message must not be empty".into());
        }
        emit(RuleAction::Notify { user_ids, message: message.to_string() })
    });
    engine.register_fn("send_email", send_email);
    engine.register_fn("http_request", http_request);
    engine.register_fn("trigger", |rule: &str| emit(RuleAction::Trigger { rule: rule.to_string() }));
    engine.register_fn("reject", |message: &str| -> Fallible<()> {
        let hook = with_run(|state| Ok(state.hook))?;
        if hook != Hook::BeforeSave {
            return Err(format!("reject() works only in case.before_save rules, not {}", hook.as_str()).into());
        }
        emit(RuleAction::Reject { message: message.to_string() })
    });

    engine.register_fn("drop_email", |reason: &str| -> Fallible<()> {
        let hook = with_run(|state| Ok(state.hook))?;
        if hook != Hook::EmailReceived {
            return Err(format!("drop_email() works only in email.received rules, not {}", hook.as_str()).into());
        }
        if reason.trim().is_empty() {
            return Err("drop_email: say why (it is kept with the message)".into());
        }
        emit(RuleAction::DropEmail { reason: reason.to_string() })
    });

    // Reading (inside the triggering transaction).
    engine.register_fn("find_cases", |filter: Dynamic| -> Fallible<Array> {
        let query = query(&filter)?;
        read(|r| r.find_cases(&query, 50)).map(cases)
    });
    engine.register_fn("find_cases", |filter: Dynamic, limit: i64| -> Fallible<Array> {
        let query = query(&filter)?;
        let limit = usize::try_from(limit).unwrap_or(0).clamp(1, FIND_LIMIT_MAX);
        read(|r| r.find_cases(&query, limit)).map(cases)
    });
    engine.register_fn("count_cases", |filter: Dynamic| -> Fallible<i64> {
        let query = query(&filter)?;
        read(|r| r.count_cases(&query))
    });
    engine.register_fn("team_users", |team: &str| read(|r| r.team_users(team, None)).map(users));
    engine.register_fn("team_users", |team: &str, position: &str| {
        read(|r| r.team_users(team, Some(position).filter(|p| !p.is_empty()))).map(users)
    });
    engine.register_fn("last_reply_at", |case_id: &str| -> Fallible<Dynamic> {
        let at = read(|r| r.last_reply_at(case_id, true))?;
        Ok(at.map(|at| Dynamic::from(seconds(at))).unwrap_or(Dynamic::UNIT))
    });
    engine.register_fn("last_customer_reply_at", |case_id: &str| -> Fallible<Dynamic> {
        let at = read(|r| r.last_reply_at(case_id, false))?;
        Ok(at.map(|at| Dynamic::from(seconds(at))).unwrap_or(Dynamic::UNIT))
    });

    engine.register_fn("last_applied_at", |case_id: &str, rule: &str| -> Fallible<Dynamic> {
        let at = read(|r| r.last_applied_at(case_id, rule))?;
        Ok(at.map(|at| Dynamic::from(seconds(at))).unwrap_or(Dynamic::UNIT))
    });

    // Time: seconds since 1970, UTC; the run's clock is fixed when it starts.
    engine.register_fn("now", || with_run(|state| Ok(seconds(state.now))));
    engine.register_fn("minutes", |n: i64| n.saturating_mul(60));
    engine.register_fn("hours", |n: i64| n.saturating_mul(3_600));
    engine.register_fn("days", |n: i64| n.saturating_mul(86_400));
    engine.register_fn("format_time", |at: i64| -> Fallible<ImmutableString> {
        Ok(time(at)?.format("%Y-%m-%d %H:%M UTC").to_string().into())
    });
    engine.register_fn("parse_time", |text: &str| -> Fallible<i64> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp())
            .or_else(|_| {
                chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map(|d| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or_default())
            })
            .map_err(|_| format!("parse_time: `{text}` is neither RFC 3339 nor YYYY-MM-DD").into())
    });
    engine.register_fn("add_working_hours", |at: i64, hours: i64| -> Fallible<i64> {
        let from = time(at)?;
        calendar(|c, _| c.add_working_seconds(from, hours.saturating_mul(3_600)))?
            .map(seconds)
            .ok_or_else(|| "the business calendar has no working time".into())
    });
    engine.register_fn("add_working_days", |at: i64, days: i64| -> Fallible<i64> {
        let from = time(at)?;
        calendar(|c, _| c.add_working_days(from, days))?
            .map(seconds)
            .ok_or_else(|| "the business calendar has no working time".into())
    });
    engine.register_fn("working_hours_between", |from: i64, to: i64| -> Fallible<f64> {
        let (from, to) = (time(from)?, time(to)?);
        calendar(|c, _| c.working_seconds_between(from, to))?
            .map(|seconds| seconds as f64 / 3_600.0)
            .ok_or_else(|| "working_hours_between: at most ten years apart".into())
    });
    engine.register_fn("is_working_time", |at: i64| -> Fallible<bool> {
        let at = time(at)?;
        calendar(|c, _| c.is_working_time(at))
    });
    engine.register_fn("day_of_month", |at: i64| -> Fallible<i64> {
        use chrono::Datelike;
        Ok(time(at)?.day() as i64)
    });

    // `print` and `debug` write to the run log, never to the server's
    // stdout. (There is no `log`: rhai's math `log` would shadow it.)
    engine.on_print(|text| log_line(text.to_string()));
    engine.on_debug(|text, _, position| log_line(format!("{text} ({position})")));
}

fn note(text: &str, internal: bool) -> Fallible<()> {
    if text.trim().is_empty() {
        return Err("a note needs text".into());
    }
    emit(RuleAction::Note { text: text.to_string(), internal })
}
