//! The host against real components, built from source by plugins/build
//! (C with wit-bindgen and clang, Python with componentize-py). A missing
//! component fails the test: CI builds them before running the suite.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use docket_domain::rule::RuleAction;
use docket_plugins::{
    Address, AssignmentRequest, Call, CandidateView, Capability, CaseSnapshot, EmailDecision, Grants, HostConfig,
    Limits, MemoryIo, ParsedEmail, PluginError, PluginHost, Prepared, RuleEvent, World,
};

fn component(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("DOCKET_PLUGIN_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; build the example plugins first with plugins/build", path.display()))
}

/// One host for the whole test binary, with a compile cache that outlives
/// it (the Python component takes a while to compile).
fn host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| {
        let cache_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
        PluginHost::new(HostConfig { cache_dir: Some(cache_dir), ..HostConfig::default() }).expect("host")
    })
}

fn prepare(name: &str, grants: &[Capability]) -> Result<Arc<Prepared>, PluginError> {
    host().prepare(&component(name), &grants.iter().copied().collect::<Grants>())
}

fn call(config: serde_json::Value, io: &MemoryIo) -> Call {
    Call { config: config.to_string(), limits: Limits::default(), io: Box::new(io.clone()) }
}

fn case(account: Option<&str>, name: &str, description: &str) -> CaseSnapshot {
    CaseSnapshot {
        id: "case-1".into(),
        number: 42,
        name: name.into(),
        status: "New".into(),
        priority: "Normal".into(),
        description: Some(description.into()),
        account_id: account.map(|_| "account-1".into()),
        account_name: account.map(str::to_string),
        created_at: "2026-11-28T08:00:00+00:00".into(),
        modified_at: "2026-11-28T08:00:00+00:00".into(),
        ..CaseSnapshot::default()
    }
}

fn created(case: CaseSnapshot) -> RuleEvent {
    RuleEvent { hook: "case.created".into(), case: Some(case), ..RuleEvent::default() }
}

#[test]
fn the_c_rule_plugin_escalates_vip_accounts_and_counts_in_its_storage() {
    let plugin = prepare("vip-escalation", &[Capability::Storage]).expect("prepared");
    assert_eq!(plugin.world(), World::Rule);
    assert_eq!(plugin.inspection.wit_version, "0.1.0");
    assert!(plugin.inspection.needs.contains(&Capability::Storage));
    let config = serde_json::json!({"vip_accounts": ["Acme Corp"], "priority": "Urgent"});
    let io = MemoryIo::default();

    for escalation in 1..=2 {
        let report = plugin.run_rule(call(config.clone(), &io), &created(case(Some("ACME corp"), "Down", "")));
        let actions = report.outcome.expect("ran");
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert_eq!(actions[0], RuleAction::Set { field: "priority".into(), value: serde_json::json!("Urgent") });
        let RuleAction::Note { text, internal: true } = &actions[1] else { panic!("{actions:?}") };
        assert!(text.contains(&format!("escalation #{escalation}")), "{text}");
        assert!(report.fuel_used > 0 && report.fuel_used < Limits::default().fuel);
        assert!(report.peak_memory > 0);
        assert_eq!(report.log.len(), 1);
    }
    assert_eq!(io.storage.lock().expect("lock").get("escalations:ACME corp").map(String::as_str), Some("2"));

    // Not a VIP, or already at the priority: nothing to do.
    let other = plugin.run_rule(call(config.clone(), &io), &created(case(Some("Initech"), "Down", "")));
    assert_eq!(other.outcome.expect("ran"), vec![]);
    let mut urgent = case(Some("Acme Corp"), "Down", "");
    urgent.priority = "Urgent".into();
    assert_eq!(plugin.run_rule(call(config.clone(), &io), &created(urgent)).outcome.expect("ran"), vec![]);

    // The plugin's own error, for a configuration it cannot use.
    let bad =
        plugin.run_rule(call(serde_json::json!({"priority": ""}), &io), &created(case(Some("Acme Corp"), "x", "")));
    assert!(matches!(bad.outcome, Err(PluginError::Returned { ref code, .. }) if code == "bad-config"), "{bad:?}");
}

#[test]
fn a_plugin_is_refused_the_imports_it_was_not_granted() {
    let Err(error) = prepare("vip-escalation", &[]) else { panic!("prepared without the storage grant") };
    assert_eq!(error.kind(), "not_granted");
    let message = error.to_string();
    assert!(message.contains("storage") && message.contains("docket:plugin/host@0.1.0#storage-"), "{message}");
}

#[test]
fn the_c_assigner_routes_by_language() {
    let plugin = prepare("language-router", &[]).expect("prepared");
    assert_eq!(plugin.world(), World::Assigner);
    assert!(plugin.inspection.needs.is_empty());
    let config = serde_json::json!({"de": ["anna"], "fr": ["claire"]});
    let candidates = vec![
        CandidateView { user_id: "u-anna".into(), username: "anna".into(), open_cases: 5 },
        CandidateView { user_id: "u-bob".into(), username: "bob".into(), open_cases: 1 },
        CandidateView { user_id: "u-claire".into(), username: "claire".into(), open_cases: 3 },
    ];
    let request = |name: &str, description: &str| AssignmentRequest {
        team_id: "t".into(),
        team_name: "Support".into(),
        candidates: candidates.clone(),
        case: Some(case(None, name, description)),
        ..AssignmentRequest::default()
    };
    let io = MemoryIo::default();
    let choose = |name: &str, description: &str| {
        plugin
            .run_assigner(call(config.clone(), &io), &request(name, description))
            .outcome
            .expect("ran")
            .expect("chose")
    };

    let german = choose("Drucker funktioniert nicht", "Hallo, ich kann nicht drucken. Bitte helfen, danke!");
    assert_eq!(german.user_id, "u-anna");
    assert!(german.reason.contains("language de"), "{}", german.reason);
    let french = choose("Bonjour", "Je ne peux pas imprimer, merci de votre aide");
    assert_eq!(french.user_id, "u-claire");
    let english = choose("Printer broken", "I cannot print anything today.");
    assert_eq!(english.user_id, "u-bob", "fewest open cases: {}", english.reason);

    let nobody = AssignmentRequest { candidates: vec![], ..request("x", "y") };
    assert_eq!(plugin.run_assigner(call(config.clone(), &io), &nobody).outcome.expect("ran"), None);
}

fn alert(sender: &str, severity: &str) -> ParsedEmail {
    ParsedEmail {
        message_id: Some("alert-1@monitoring.example.com".into()),
        sender: Address { name: Some("Monitoring".into()), email: sender.into() },
        subject: "[ALERT] db-01 disk usage".into(),
        text: format!(
            "Severity: {severity}\nHost: db-01\nService: disk\nSummary: Disk usage is 97% on /var\n\n-- \nmonitoring"
        ),
        ..ParsedEmail::default()
    }
}

#[test]
fn the_python_email_parser_turns_alerts_into_incidents() {
    let plugin = prepare("alert-parser", &[Capability::Storage, Capability::ReadCases])
        .expect("prepared (stubbed WASI needs no grant)");
    assert_eq!(plugin.world(), World::EmailParser);
    assert!(!plugin.inspection.needs.contains(&Capability::Wasi));
    let config = serde_json::json!({"senders": ["alerts@monitoring.example.com"]});
    let io = MemoryIo::default();

    let report =
        plugin.run_email_parser(call(config.clone(), &io), &alert("alerts@monitoring.example.com", "critical"));
    let EmailDecision::Rewrite(fields) = report.outcome.expect("ran") else { panic!("not rewritten") };
    assert_eq!(fields.priority.as_deref(), Some("Urgent"));
    assert_eq!(fields.case_type.as_deref(), Some("Incident"));
    assert_eq!(fields.subject.as_deref(), Some("db-01: disk – Disk usage is 97% on /var"));
    assert!(matches!(&fields.actions[..], [RuleAction::Note { internal: true, text }] if text.contains("Host: db-01")));
    assert!(report.log.iter().any(|line| line.message.contains("critical alert for db-01")), "{:?}", report.log);

    let repeat =
        plugin.run_email_parser(call(config.clone(), &io), &alert("alerts@monitoring.example.com", "critical"));
    assert!(
        matches!(repeat.outcome, Ok(EmailDecision::Drop { ref reason }) if reason.contains("repeat")),
        "{repeat:?}"
    );
    let elsewhere = MemoryIo::default();
    let fresh =
        plugin.run_email_parser(call(config.clone(), &elsewhere), &alert("alerts@monitoring.example.com", "critical"));
    assert!(matches!(fresh.outcome, Ok(EmailDecision::Rewrite(_))), "storage is per plugin store: {fresh:?}");

    let recovered =
        plugin.run_email_parser(call(config.clone(), &io), &alert("alerts@monitoring.example.com", "resolved"));
    assert!(matches!(recovered.outcome, Ok(EmailDecision::Drop { ref reason }) if reason.contains("db-01")));
    let customer = plugin.run_email_parser(call(config.clone(), &io), &alert("ada@example.com", "critical"));
    assert_eq!(customer.outcome.expect("ran"), EmailDecision::Keep);
    let bad =
        plugin.run_email_parser(call(serde_json::json!({"senders": 5}), &io), &alert("x@example.com", "critical"));
    assert!(bad.outcome.is_err(), "a configuration it cannot read is the plugin's error: {bad:?}");
}

#[test]
fn a_wasi_importing_plugin_needs_the_wasi_grant_and_then_gets_an_empty_context() {
    let Err(error) = prepare("hostile-wasi", &[Capability::Storage, Capability::ReadCases]) else {
        panic!("prepared without the wasi grant")
    };
    assert_eq!(error.kind(), "not_granted");
    assert!(error.to_string().contains("`wasi`") && error.to_string().contains("wasi:"), "{error}");

    let plugin = prepare("hostile-wasi", &[Capability::Wasi, Capability::Storage, Capability::ReadCases])
        .expect("prepared with the grants");
    let io = MemoryIo::default();
    let config = serde_json::json!({"senders": ["alerts@monitoring.example.com"]});
    let report = plugin.run_email_parser(call(config, &io), &alert("alerts@monitoring.example.com", "warning"));
    let EmailDecision::Rewrite(fields) = report.outcome.expect("ran") else { panic!("not rewritten") };
    assert_eq!(fields.priority.as_deref(), Some("High"));
}

fn limited(limits: Limits) -> Call {
    Call { config: "{}".into(), limits, io: Box::new(MemoryIo::default()) }
}

fn any_event() -> RuleEvent {
    created(case(Some("Acme Corp"), "x", "y"))
}

#[test]
fn an_infinite_loop_is_stopped_by_fuel_or_by_the_deadline() {
    let plugin = prepare("hostile-loop", &[]).expect("prepared");
    let by_fuel = plugin.run_rule(limited(Limits { fuel: 2_000_000, ..Limits::default() }), &any_event());
    assert_eq!(by_fuel.outcome.expect_err("stopped"), PluginError::OutOfFuel(2_000_000));
    assert_eq!(by_fuel.log[0].message, "looping forever");

    let limits = Limits { fuel: 1_000_000_000_000, timeout_ms: 100, ..Limits::default() };
    let by_time = plugin.run_rule(limited(limits), &any_event());
    assert_eq!(by_time.outcome.expect_err("stopped"), PluginError::Timeout(100));
    assert!(
        by_time.duration >= Duration::from_millis(90) && by_time.duration < Duration::from_secs(2),
        "{:?}",
        by_time.duration
    );
}

#[test]
fn a_memory_bomb_is_capped() {
    let plugin = prepare("hostile-memory", &[]).expect("prepared");
    let cap = 8 << 20;
    let report = plugin.run_rule(limited(Limits { memory_bytes: cap, ..Limits::default() }), &any_event());
    assert_eq!(report.outcome.expect_err("stopped"), PluginError::MemoryLimit(cap));
    assert!(report.peak_memory <= cap && report.peak_memory > cap / 2, "peak {}", report.peak_memory);
}

#[test]
fn a_trap_mid_call_is_reported_with_the_log_so_far() {
    let plugin = prepare("hostile-trap", &[]).expect("prepared");
    let report = plugin.run_rule(limited(Limits::default()), &any_event());
    let error = report.outcome.expect_err("trapped");
    assert_eq!(error.kind(), "trap");
    assert!(error.to_string().contains("unreachable"), "{error}");
    assert_eq!(report.log[0].message, "about to trap");
}

#[test]
fn unknown_wit_versions_corrupt_files_and_wrong_worlds_are_refused() {
    let Err(newer) = prepare("hostile-newer", &[]) else { panic!("a 0.9.0 plugin was prepared") };
    assert_eq!(newer, PluginError::UnsupportedVersion { found: "0.9.0".into(), supported: "0.1.0".into() });

    let bytes = component("vip-escalation");
    let grants = Grants::from([Capability::Storage]);
    for (corrupt, says) in [
        (bytes[..bytes.len() / 2].to_vec(), "not a valid WebAssembly component"),
        (b"MZ\x90\x00 not wasm at all".to_vec(), "not WebAssembly"),
        (b"\0asm\x01\x00\x00\x00".to_vec(), "core WebAssembly module"),
        (vec![], "not WebAssembly"),
    ] {
        let error = host().prepare(&corrupt, &grants).err().expect("refused");
        assert_eq!(error.kind(), "invalid");
        assert!(error.to_string().contains(says), "{error}");
    }
    let mut flipped = bytes.clone();
    // The first sections' ids and lengths.
    for byte in &mut flipped[8..24] {
        *byte ^= 0x5A;
    }
    assert_eq!(host().prepare(&flipped, &grants).err().expect("refused").kind(), "invalid");

    // A rule plugin called as an assigner.
    let plugin = prepare("vip-escalation", &[Capability::Storage]).expect("prepared");
    let report = plugin.run_assigner(limited(Limits::default()), &AssignmentRequest::default());
    assert!(report.outcome.expect_err("wrong world").to_string().contains("`rule` plugin, called as a `assigner`"));
}

#[test]
fn the_host_keeps_serving_after_hostile_plugins() {
    for name in ["hostile-loop", "hostile-memory", "hostile-trap"] {
        let plugin = prepare(name, &[]).expect("prepared");
        let limits = Limits { fuel: 5_000_000, memory_bytes: 4 << 20, timeout_ms: 100 };
        assert!(plugin.run_rule(limited(limits), &any_event()).outcome.is_err());
    }
    let plugin = prepare("vip-escalation", &[Capability::Storage]).expect("prepared");
    let config = serde_json::json!({"vip_accounts": ["Acme Corp"]});
    let report = plugin.run_rule(call(config, &MemoryIo::default()), &any_event());
    assert_eq!(report.outcome.expect("ran").len(), 2);
}

#[test]
fn prepared_plugins_are_cached_by_bytes_and_grants() {
    let first = prepare("language-router", &[]).expect("prepared");
    let again = prepare("language-router", &[]).expect("prepared");
    assert!(Arc::ptr_eq(&first, &again));
    let other_grants = prepare("language-router", &[Capability::Storage]).expect("prepared");
    assert!(!Arc::ptr_eq(&first, &other_grants));
    assert!(host().prepared(&first.hash, &Grants::new()).is_some());
}
