use chrono::TimeZone;
use docket_domain::case::{CasePriority, CaseStatus};
use docket_domain::rule::CaseQuery;

use super::*;
use crate::script_api::{NoReader, UserInfo};

fn case() -> Case {
    let at = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).single().expect("valid time");
    Case {
        id: "c1".into(),
        number: 42,
        name: "Printer on fire".into(),
        status: CaseStatus::New,
        priority: CasePriority::Normal,
        case_type: None,
        description: Some("URGENT: smoke everywhere".into()),
        account_id: None,
        contact_id: None,
        contact_ids: vec![],
        inbound_mailbox_id: None,
        is_internal: false,
        assigned_user_id: None,
        team_ids: vec![],
        attachment_ids: vec![],
        created_at: at,
        created_by_id: None,
        modified_at: at,
        modified_by_id: None,
        stream_updated_at: at,
        version: 1,
    }
}

fn rule(hook: Hook, condition: Option<&str>, script: &str) -> Rule {
    Rule {
        id: format!("r-{script}"),
        name: "test rule".into(),
        description: None,
        hook,
        condition: condition.map(str::to_string),
        script: script.into(),
        plugin: None,
        position: 0,
        enabled: true,
        schedule: None,
        case_filter: None,
        run_cap: 100,
        version: 1,
        next_run_at: None,
        created_at: Utc::now(),
        modified_at: Utc::now(),
    }
}

fn evaluate_with(
    limits: Limits,
    hook: Hook,
    condition: Option<&str>,
    script: &str,
    reader: Box<dyn Reader>,
) -> Evaluation {
    let engine = Engine::new(limits);
    let case = case();
    let calendar = BusinessCalendar::default();
    let event = Event {
        email: None,
        hook,
        ticket: Some(&case),
        changes: &[],
        note: None,
        actor: None,
        depth: 0,
        now: case.created_at + chrono::Duration::hours(30),
        calendar: &calendar,
    };
    engine.evaluate(&rule(hook, condition, script), &event, reader).0
}

fn evaluate(hook: Hook, condition: Option<&str>, script: &str) -> Evaluation {
    evaluate_with(Limits::default(), hook, condition, script, Box::new(NoReader))
}

fn error_of(script: &str) -> String {
    let evaluation = evaluate(Hook::Created, None, script);
    assert!(evaluation.actions.is_empty(), "a failed run emits nothing: {evaluation:?}");
    evaluation.error.unwrap_or_else(|| panic!("`{script}` should fail"))
}

#[test]
fn scripts_emit_actions_from_the_ticket() {
    let evaluation = evaluate(
        Hook::Created,
        Some(r#"ticket.description.contains("URGENT")"#),
        r#"set("priority", "Urgent"); internal_note(`Case #${ticket.number} escalated`); assign_by("round-robin", "Support");"#,
    );
    assert_eq!(evaluation.error, None);
    assert_eq!(evaluation.condition_held, Some(true));
    assert_eq!(
        evaluation.actions,
        vec![
            RuleAction::Set { field: "priority".into(), value: "Urgent".into() },
            RuleAction::Note { text: "Case #42 escalated".into(), internal: true },
            RuleAction::AssignBy { strategy: "round-robin".into(), team: "Support".into(), position: None },
        ]
    );
    assert_eq!(evaluation.outcome(false), Outcome::Applied);
    assert_eq!(evaluation.outcome(true), Outcome::DryRun);
}

#[test]
fn a_false_condition_runs_nothing() {
    let evaluation = evaluate(Hook::Created, Some(r#"ticket.priority == "Urgent""#), r#"set("status", "Closed")"#);
    assert_eq!(evaluation.condition_held, Some(false));
    assert!(evaluation.actions.is_empty());
    assert_eq!(evaluation.outcome(false), Outcome::ConditionFalse);
}

#[test]
fn compile_errors_say_where() {
    let engine = Engine::new(Limits::default());
    let error = engine.check(None, "let x = 1;\nset(\"status\", ").expect_err("broken");
    assert_eq!((error.part, error.line), ("script", 2), "{error}");
    let error = engine.check(Some("ticket.priority =="), "print(1)").expect_err("broken");
    assert_eq!(error.part, "condition");
    // Strict variables: a typo is caught when the rule is saved.
    let error = engine.check(None, "print(tikcet.name)").expect_err("unknown variable");
    assert!(error.message.contains("tikcet"), "{error}");
    assert!(engine.check(None, r#"print(ticket.name)"#).is_ok());
}

#[test]
fn eval_and_modules_are_not_part_of_the_language() {
    let engine = Engine::new(Limits::default());
    assert!(engine.check(None, r#"eval("set(\"status\", \"Closed\")")"#).is_err());
    assert!(engine.check(None, r#"import "os" as os;"#).is_err());
}

#[test]
fn endless_loops_are_stopped_by_the_operation_limit() {
    assert!(error_of("loop { }").contains("more than 500000 operations"));
}

#[test]
fn slow_scripts_are_stopped_by_the_time_budget() {
    let limits = Limits { max_operations: u64::MAX / 2, time_budget: Duration::from_millis(50), ..Limits::default() };
    let started = Instant::now();
    let evaluation = evaluate_with(limits, Hook::Created, None, "let x = 0; loop { x += 1; }", Box::new(NoReader));
    let error = evaluation.error.expect("stopped");
    assert!(error.contains("ran longer than 50 ms"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn recursion_is_stopped_by_the_call_depth() {
    let error = error_of("fn down(n) { down(n + 1) } down(0);");
    assert!(error.contains("nested deeper than 24 levels"), "{error}");
}

#[test]
fn huge_strings_and_arrays_are_stopped() {
    let error = error_of(r#"let s = "x"; loop { s += s; }"#);
    assert!(error.contains("over the limit"), "{error}");
    let error = error_of("let a = []; loop { a.push(1); }");
    assert!(error.contains("over the limit"), "{error}");
}

#[test]
fn runtime_mistakes_fail_with_a_message() {
    assert!(error_of("frobnicate(1)").contains("frobnicate"));
    assert!(error_of("let x = 1 / 0;").to_lowercase().contains("division by zero"));
    assert!(error_of(r#"set("status", "Lost")"#).contains("Lost"));
    assert!(error_of(r#"set("number", 7)"#).contains("cannot set `number`"));
    assert!(error_of(r#"reject("no")"#).contains("only in case.before_save"));
    let garbage = evaluate(Hook::Created, Some(r#""yes""#), "print(1)");
    assert!(garbage.error.expect("fails").contains("must be true or false"));
}

#[test]
fn actions_after_an_error_are_dropped_with_it() {
    let evaluation = evaluate(Hook::Created, None, r#"set("priority", "High"); let x = 1 / 0;"#);
    assert!(evaluation.actions.is_empty());
    assert_eq!(evaluation.outcome(false), Outcome::Failed);
}

#[test]
fn reject_works_before_save() {
    let evaluation =
        evaluate(Hook::BeforeSave, None, r#"if ticket.name.len() < 50 { reject("Describe the problem") }"#);
    assert_eq!(evaluation.actions, vec![RuleAction::Reject { message: "Describe the problem".into() }]);
    assert_eq!(evaluation.outcome(false), Outcome::Rejected);
}

#[test]
fn print_goes_to_the_run_print() {
    let evaluation = evaluate(Hook::Created, None, r#"print("hello"); print(`case ${ticket.number}`);"#);
    assert_eq!(evaluation.log, vec!["hello".to_string(), "case 42".to_string()]);
}

#[test]
fn time_helpers_use_the_business_calendar() {
    // Created Friday 10:00; now is Saturday 16:00: 7 working hours passed.
    let evaluation = evaluate(
        Hook::Created,
        None,
        r#"print(working_hours_between(ticket.created_at, now()));
           print(format_time(add_working_hours(ticket.created_at, 8)));
           print(now() - ticket.created_at > hours(24));"#,
    );
    assert_eq!(evaluation.error, None);
    assert_eq!(evaluation.log, vec!["7.0", "2026-11-30 10:00 UTC", "true"]);
}

struct FakeReader;

impl Reader for FakeReader {
    fn find_cases(&mut self, query: &CaseQuery, limit: usize) -> Result<Vec<Case>, String> {
        assert_eq!(query.status, vec!["Pending".to_string()]);
        Ok(vec![case(); limit.min(3)])
    }
    fn count_cases(&mut self, _: &CaseQuery) -> Result<i64, String> {
        Ok(7)
    }
    fn team_users(&mut self, team: &str, _: Option<&str>) -> Result<Vec<UserInfo>, String> {
        Ok(vec![UserInfo { id: format!("{team}-1"), username: "ann".into(), name: "Ann".into(), email: None }])
    }
    fn last_reply_at(&mut self, _: &str, _: bool) -> Result<Option<DateTime<Utc>>, String> {
        Ok(None)
    }
    fn last_applied_at(&mut self, _: &str, _: &str) -> Result<Option<DateTime<Utc>>, String> {
        Ok(None)
    }
}

#[test]
fn reads_go_through_the_reader() {
    let evaluation = evaluate_with(
        Limits::default(),
        Hook::Created,
        None,
        r#"print(find_cases(#{ status: "Pending" }, 2).len());
           print(count_cases(#{}));
           notify(team_users("ops"), "new case");
           if last_reply_at(ticket.id) == () { print("no reply") }"#,
        Box::new(FakeReader),
    );
    assert_eq!(evaluation.error, None);
    assert_eq!(evaluation.log, vec!["2", "7", "no reply"]);
    assert_eq!(
        evaluation.actions,
        vec![RuleAction::Notify { user_ids: vec!["ops-1".into()], message: "new case".into() }]
    );
    assert!(error_of(r#"find_cases(#{ colour: "red" })"#).contains("colour"));
}

#[test]
fn compiled_rules_are_cached_per_version() {
    let engine = Engine::new(Limits::default());
    let case = case();
    let calendar = BusinessCalendar::default();
    let event = Event {
        email: None,
        hook: Hook::Created,
        ticket: Some(&case),
        changes: &[],
        note: None,
        actor: None,
        depth: 0,
        now: Utc::now(),
        calendar: &calendar,
    };
    let mut first = rule(Hook::Created, None, "print(1)");
    first.id = "same".into();
    assert_eq!(engine.evaluate(&first, &event, Box::new(NoReader)).0.log, vec!["1"]);
    let mut edited = rule(Hook::Created, None, "print(2)");
    edited.id = "same".into();
    edited.version = 2;
    assert_eq!(engine.evaluate(&edited, &event, Box::new(NoReader)).0.log, vec!["2"]);
}

#[test]
fn variables_are_not_folded_into_the_compiled_script() {
    let engine = Engine::new(Limits::default());
    let case = case();
    let calendar = BusinessCalendar::default();
    let changes = vec![FieldChange { field: "status", old: "New".into(), new: "Pending".into() }];
    let event = Event {
        email: None,
        hook: Hook::Updated,
        ticket: Some(&case),
        changes: &changes,
        note: None,
        actor: None,
        depth: 0,
        now: Utc::now(),
        calendar: &calendar,
    };
    let rule = rule(
        Hook::Updated,
        Some(r#""status" in changes"#),
        r#"print(`${changes.status.before} -> ${changes.status.after}`)"#,
    );
    let evaluation = engine.evaluate(&rule, &event, Box::new(NoReader)).0;
    assert_eq!(evaluation.error, None);
    assert_eq!(evaluation.log, vec!["New -> Pending"]);
}

#[test]
fn nul_characters_never_leave_a_script() {
    let evaluation = evaluate(Hook::Created, None, r#"print("a\x00b"); post_note("x\x00y");"#);
    assert_eq!(evaluation.log, vec!["ab"]);
    assert_eq!(evaluation.actions, vec![RuleAction::Note { text: "xy".into(), internal: false }]);
    // A backslash followed by "u0000" is text, not a NUL: it stays.
    let literal = evaluate(Hook::Created, None, r#"post_note("C:\\u0000dir")"#);
    assert_eq!(literal.actions, vec![RuleAction::Note { text: "C:\\u0000dir".into(), internal: false }]);
    let error = error_of(r#"throw "bad\x00news""#);
    assert!(!error.contains('\0'), "{error}");
}
