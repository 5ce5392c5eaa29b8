//! WebAssembly plugins through the server: uploads checked against their
//! manifests, grants and configuration, rules and assignments that run
//! real components (built from source by plugins/build), hostile plugins
//! that fail alone, and the plugin author's CLI.

use std::path::PathBuf;

use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Server, Site, read};

fn plugins_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins")
}

pub(crate) fn component(name: &str) -> Vec<u8> {
    let path = plugins_dir().join("target").join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; build the plugins first with plugins/build", path.display()))
}

pub(crate) fn manifest(name: &str, world: &str, capabilities: &[&str], config: Value) -> Value {
    json!({ "name": name, "version": "1.0.0", "world": world, "capabilities": capabilities, "config": config })
}

pub(crate) async fn upload(
    server: &Server,
    key: &str,
    manifest: &Value,
    bytes: Vec<u8>,
    grants: &str,
    enabled: bool,
) -> (StatusCode, Value) {
    let form = Form::new()
        .text("manifest", manifest.to_string())
        .part("component", Part::bytes(bytes).file_name("plugin.wasm"))
        .text("grants", grants.to_string())
        .text("enabled", enabled.to_string());
    let response = server.request(Method::POST, "/api/v1/plugins", key).multipart(form).send().await.expect("send");
    read(response).await
}

fn message(body: &Value) -> String {
    body.to_string()
}

async fn stream_notes(server: &Server, key: &str, case_id: &str) -> Vec<Value> {
    let (_, stream) = server.get(&format!("/api/v1/cases/{case_id}/stream"), key).await;
    stream["items"].as_array().expect("items").clone()
}

async fn plugins_are_checked_on_upload_and_run_by_rules(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let vip = manifest("vip-escalation", "rule", &["storage"], json!({"vip_accounts": ["Acme Corp"]}));

    // Refused uploads, each with a precise reason.
    let refused: Vec<(Value, Vec<u8>, &str, &str)> = vec![
        (manifest("vip-2", "rule", &["storage"], json!({})), component("vip-escalation"), "", "`storage`"),
        (manifest("vip-3", "rule", &["storage"], json!({})), component("vip-escalation"), "wasi", "not requested"),
        (
            manifest("vip-4", "assigner", &["storage"], json!({})),
            component("vip-escalation"),
            "storage",
            "world `rule`",
        ),
        (manifest("vip-5", "rule", &[], json!({})), component("vip-escalation"), "", "does not request"),
        (
            manifest("junk", "rule", &[], json!({})),
            b"\0asm\x0d\x00\x01\x00garbage".to_vec(),
            "",
            "not a valid WebAssembly component",
        ),
        (manifest("newer", "rule", &[], json!({})), component("hostile-newer"), "", "0.9.0"),
        (json!({"name": "Bad Name", "version": "1", "world": "rule"}), component("vip-escalation"), "", "manifest"),
    ];
    for (manifest, bytes, grants, says) in refused {
        let (status, body) = upload(&server, &admin, &manifest, bytes, grants, true).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{manifest}: {body}");
        assert!(message(&body).contains(says), "{manifest}: expected {says:?} in {body}");
    }
    let (status, _) = server.get("/api/v1/plugins", &site.api_key_for("admin")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, plugin) = upload(&server, &admin, &vip, component("vip-escalation"), "storage", true).await;
    assert_eq!(status, StatusCode::CREATED, "{plugin}");
    assert_eq!(plugin["world"], "rule");
    assert_eq!(plugin["grants"], json!(["storage"]));
    assert_eq!(plugin["enabled"], true);
    assert!(plugin.get("component").is_none(), "the bytes are not sent back");
    let plugin_id = plugin["id"].as_str().expect("id").to_string();
    let (status, again) = upload(&server, &admin, &vip, component("vip-escalation"), "storage", true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{again}");

    // Rules name plugins; a rule runs a script or a plugin.
    for (rule, says) in [
        (json!({"name": "x", "hook": "case.created", "plugin": "nope"}), "no plugin named nope"),
        (json!({"name": "x", "hook": "case.created", "plugin": "vip-escalation", "script": "print(1);"}), "not both"),
    ] {
        let (status, body) = server.post("/api/v1/rules", &admin, rule).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(message(&body).contains(says), "{body}");
    }
    let (status, rule) = server
        .post(
            "/api/v1/rules",
            &admin,
            json!({"name": "VIP escalation", "hook": "case.created", "plugin": "vip-escalation"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");

    let (_, acme) = server.post("/api/v1/accounts", &admin, json!({"name": "Acme Corp"})).await;
    let (_, other) = server.post("/api/v1/accounts", &admin, json!({"name": "Initech"})).await;
    for escalation in 1..=2 {
        let case = server.case(&admin, json!({"name": "Checkout down", "account_id": acme["id"]})).await;
        assert_eq!(case["priority"], "Urgent", "{case}");
        let notes = stream_notes(&server, &admin, case["id"].as_str().expect("id")).await;
        let note = notes.iter().find(|n| n["type"] == "Post").expect("the plugin's note");
        assert_eq!(note["is_internal"], true);
        assert!(
            note["post"].as_str().expect("post").contains(&format!("escalation #{escalation}")),
            "storage is kept between calls: {note}"
        );
    }
    let plain = server.case(&admin, json!({"name": "Question", "account_id": other["id"]})).await;
    assert_eq!(plain["priority"], "Normal");

    let (status, runs) = server.get(&format!("/api/v1/plugins/{plugin_id}/runs"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    // The call for Initech did nothing and is not logged (as rule runs).
    assert_eq!(runs["total"], 2, "{runs}");
    let run = &runs["items"][0];
    assert_eq!(run["outcome"], "ok");
    assert_eq!(run["rule_name"], "VIP escalation", "{run}");
    assert!(run["case_number"].as_i64().is_some(), "{run}");
    assert!(run["fuel_used"].as_i64().expect("fuel") > 0, "{run}");
    assert!(run["duration_us"].as_i64().expect("duration") > 0, "{run}");

    // Disabled: the rule's run fails and says why; the case is saved.
    let (status, disabled) = server
        .call(Method::PATCH, &format!("/api/v1/plugins/{plugin_id}"), &admin, Some(json!({"enabled": false})))
        .await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let saved = server.case(&admin, json!({"name": "While disabled", "account_id": acme["id"]})).await;
    assert_eq!(saved["priority"], "Normal");
    let (_, failed) =
        server.get(&format!("/api/v1/rule-runs?case_id={}", saved["id"].as_str().expect("id")), &admin).await;
    assert!(message(&failed).contains("no enabled plugin named `vip-escalation`"), "{failed}");

    // Enabling needs the grants its imports ask for.
    let (status, body) = server
        .call(
            Method::PATCH,
            &format!("/api/v1/plugins/{plugin_id}"),
            &admin,
            Some(json!({"enabled": true, "grants": []})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(message(&body).contains("storage"), "{body}");

    // A plugin rules use cannot be deleted; agents see no plugins.
    let (status, body) = server.call(Method::DELETE, &format!("/api/v1/plugins/{plugin_id}"), &admin, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, agent) = server.agent(&site, &admin, "agent", json!({"read": "all"}), json!([])).await;
    let (status, _) = server.get("/api/v1/plugins", &agent).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    server.call(Method::DELETE, &format!("/api/v1/rules/{}", rule["id"].as_str().expect("id")), &admin, None).await;
    let (status, _) = server.call(Method::DELETE, &format!("/api/v1/plugins/{plugin_id}"), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn hostile_plugins_fail_alone_and_the_case_is_saved(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    for name in ["hostile-loop", "hostile-memory", "hostile-trap"] {
        let mut manifest = manifest(name, "rule", &[], json!({}));
        manifest["limits"] = json!({"fuel": 50_000_000, "memory_bytes": 8 << 20, "timeout_ms": 200});
        let (status, plugin) = upload(&server, &admin, &manifest, component(name), "", true).await;
        assert_eq!(status, StatusCode::CREATED, "{plugin}");
        let rule = json!({"name": name, "hook": "case.created", "plugin": name});
        let (status, body) = server.post("/api/v1/rules", &admin, rule).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let started = std::time::Instant::now();
    let case = server.case(&admin, json!({"name": "Survives hostile plugins"})).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    let (_, runs) =
        server.get(&format!("/api/v1/rule-runs?case_id={}", case["id"].as_str().expect("id")), &admin).await;
    let runs = runs["items"].as_array().expect("items");
    assert_eq!(runs.len(), 3, "{runs:?}");
    let errors: Vec<String> = runs.iter().map(|r| r["error"].as_str().unwrap_or_default().to_string()).collect();
    assert!(runs.iter().all(|r| r["outcome"] == "failed"), "{runs:?}");
    assert!(errors.iter().any(|e| e.contains("fuel budget")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("memory limit")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("trapped")), "{errors:?}");
    // Still serving, and the case is there.
    let (status, fetched) = server.get(&format!("/api/v1/cases/{}", case["id"].as_str().expect("id")), &admin).await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    let (status, _) = server.get("/api/v1/cases", &admin).await;
    assert_eq!(status, StatusCode::OK);
}

/// The server's settings bound every plugin: its default fuel, and how
/// many storage keys it may hold (a new key beyond that fails, and the
/// plugin carries on without it).
async fn server_settings_bound_plugin_fuel_and_storage(site: Site) {
    let site = site.with_env("DOCKET_PLUGIN_STORAGE_KEYS", "1").with_env("DOCKET_PLUGIN_FUEL", "2000");
    let server = site.start(&[]);
    let admin = site.admin_key();
    let vip = manifest("vip-escalation", "rule", &["storage"], json!({"vip_accounts": ["Acme Corp", "Initech"]}));
    let (status, plugin) = upload(&server, &admin, &vip, component("vip-escalation"), "storage", true).await;
    assert_eq!(status, StatusCode::CREATED, "{plugin}");
    let plugin_id = plugin["id"].as_str().expect("id").to_string();
    let rule = json!({"name": "VIP", "hook": "case.created", "plugin": "vip-escalation"});
    assert_eq!(server.post("/api/v1/rules", &admin, rule).await.0, StatusCode::CREATED);
    let (_, acme) = server.post("/api/v1/accounts", &admin, json!({"name": "Acme Corp"})).await;
    let (_, initech) = server.post("/api/v1/accounts", &admin, json!({"name": "Initech"})).await;

    // 2000 units of fuel are too few for this plugin (it uses about 14,000).
    let starved = server.case(&admin, json!({"name": "Starved", "account_id": acme["id"]})).await;
    assert_eq!(starved["priority"], "Normal", "{starved}");
    let (_, runs) = server.get(&format!("/api/v1/plugins/{plugin_id}/runs"), &admin).await;
    assert!(message(&runs["items"][0]["error"]).contains("fuel budget"), "{runs}");

    // With its own budget it runs; the second account's key is one too many.
    let patch = json!({"limits": {"fuel": 10_000_000}});
    let (status, body) = server.call(Method::PATCH, &format!("/api/v1/plugins/{plugin_id}"), &admin, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for account in [&acme, &initech] {
        let case = server.case(&admin, json!({"name": "Down", "account_id": account["id"]})).await;
        assert_eq!(case["priority"], "Urgent", "the plugin still escalates: {case}");
    }
    let (_, runs) = server.get(&format!("/api/v1/plugins/{plugin_id}/runs?limit=1"), &admin).await;
    let log = message(&runs["items"][0]["log"]);
    assert!(log.contains("could not store the escalation count"), "{runs}");
    assert_eq!(runs["items"][0]["outcome"], "ok", "{runs}");
}

async fn an_assigner_plugin_routes_cases_by_language(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let levels = json!({"read": "all", "edit": "all", "create": "all", "delete": "no"});
    let (anna, _) = server.agent(&site, &admin, "anna", levels.clone(), json!([])).await;
    let (bob, _) = server.agent(&site, &admin, "bob", levels, json!([])).await;
    let members = json!([{"user_id": anna["id"]}, {"user_id": bob["id"]}]);
    let (status, team) = server.post("/api/v1/teams", &admin, json!({"name": "Support", "members": members})).await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let manifest = manifest("language-router", "assigner", &[], json!({"de": ["anna"]}));
    let (status, plugin) = upload(&server, &admin, &manifest, component("language-router"), "", true).await;
    assert_eq!(status, StatusCode::CREATED, "{plugin}");
    let rule = json!({
        "name": "Route by language",
        "hook": "case.before_save",
        "condition": "ticket.assigned_user_id == ()",
        "script": "assign_by(\"language-router\", \"Support\");",
    });
    let (status, body) = server.post("/api/v1/rules", &admin, rule).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // bob has fewer open cases, but the German case goes to anna.
    let german = server
        .case(&admin, json!({"name": "Drucker funktioniert nicht", "description": "Hallo, bitte helfen, danke!"}))
        .await;
    assert_eq!(german["assigned_user_id"], anna["id"], "{german}");
    let notes = stream_notes(&server, &admin, german["id"].as_str().expect("id")).await;
    let create = notes.iter().find(|n| n["type"] == "Create").expect("Create note");
    assert_eq!(create["data"]["assignment"]["strategy"], "language-router");
    assert!(message(create).contains("language de"), "{create}");
    let english = server.case(&admin, json!({"name": "Printer broken", "description": "It does not print."})).await;
    assert_eq!(english["assigned_user_id"], bob["id"], "fewest open cases: {english}");
}

async fn plugin_authors_inspect_and_run_components_with_the_cli(site: Site) {
    let target = plugins_dir().join("target");
    let vip = target.join("vip-escalation.wasm");
    let (ok, out, err) = site.run(&["plugin", "inspect", vip.to_str().expect("path")]);
    assert!(ok, "{err}");
    assert!(out.contains("world:        rule") && out.contains("capabilities: storage"), "{out}");
    assert!(out.contains("docket:plugin/rule-handler@0.1.0"), "{out}");

    let example = plugins_dir().join("vip-escalation");
    let (event, config) = (example.join("event.json"), example.join("config.json"));
    let args = [
        "plugin",
        "run",
        vip.to_str().expect("path"),
        "--event",
        event.to_str().expect("path"),
        "--plugin-config",
        config.to_str().expect("path"),
    ];
    let (ok, out, err) = site.run(&args);
    assert!(ok, "{err}");
    let printed: Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(printed["ok"], true);
    assert_eq!(printed["result"][0]["value"], "Urgent");
    assert!(printed["fuel_used"].as_u64().expect("fuel") > 0);
    assert!(printed["peak_memory_bytes"].as_u64().expect("memory") > 0);
    assert_eq!(printed["storage"]["escalations:Acme Corp"], "1");

    let trap = target.join("hostile-trap.wasm");
    let args = ["plugin", "run", trap.to_str().expect("path"), "--event", event.to_str().expect("path")];
    let (ok, out, _) = site.run(&args);
    assert!(!ok, "a failing plugin exits non-zero");
    assert!(out.contains("\"error\": \"trap:"), "{out}");

    let (ok, _, err) = site.run(&["plugin", "inspect", config.to_str().expect("path")]);
    assert!(!ok);
    assert!(err.contains("not WebAssembly"), "{err}");
}

on_both_backends!(
    plugins_are_checked_on_upload_and_run_by_rules,
    hostile_plugins_fail_alone_and_the_case_is_saved,
    server_settings_bound_plugin_fuel_and_storage,
    an_assigner_plugin_routes_cases_by_language,
    plugin_authors_inspect_and_run_components_with_the_cli,
);
