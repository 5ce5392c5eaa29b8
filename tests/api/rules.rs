//! Workflow rules end to end: the examples in `examples/rules` imported
//! with the CLI and doing their job, rule management over the API, hostile
//! scripts, round-robin across several server processes, and the email
//! and HTTP actions through real servers.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, Server, Site, SmtpSink};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules")
}

fn id(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}

/// Moves a case's timestamp into the past, as if time had passed.
async fn backdate(site: &Site, column: &str, case_id: &str, days: i64) {
    use sqlx::Connection;
    let at = chrono::Utc::now() - chrono::Duration::days(days);
    let sql = format!("UPDATE cases SET {column} = $1 WHERE id = $2");
    match site.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&site.database_url).await.expect("open sqlite");
            sqlx::query(&sql).bind(at).bind(case_id).execute(&mut conn).await.expect("backdate");
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&site.database_url).await.expect("open postgres");
            sqlx::query(&sql).bind(at).bind(case_id).execute(&mut conn).await.expect("backdate");
        }
    }
}

async fn team(server: &Server, admin: &str, name: &str, members: &[&Value]) -> Value {
    let members: Vec<Value> = members.iter().map(|u| json!({ "user_id": u["id"] })).collect();
    let (status, team) = server.post("/api/v1/teams", admin, json!({ "name": name, "members": members })).await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    team
}

fn all_cases() -> Value {
    json!({ "read": "all", "edit": "all", "create": "all", "delete": "no" })
}

async fn rule_by_name(server: &Server, admin: &str, name: &str) -> Value {
    let (_, rules) = server.get("/api/v1/rules", admin).await;
    rules
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no rule {name}"))
}

async fn stream_posts(server: &Server, key: &str, case_id: &str) -> Vec<Value> {
    let (_, stream) = server.get(&format!("/api/v1/cases/{case_id}/stream"), key).await;
    stream["items"].as_array().expect("items").iter().filter(|n| n["type"] == "Post").cloned().collect()
}

async fn find_case(server: &Server, key: &str, q: &str) -> Vec<Value> {
    let (_, page) = server.get(&format!("/api/v1/cases?q={}", q.replace(' ', "%20")), key).await;
    page["items"].as_array().expect("items").clone()
}

async fn the_example_rules_do_their_jobs(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (ann, ann_key) = server.agent(&site, &admin, "ann", all_cases(), json!([])).await;
    let (bob, _) = server.agent(&site, &admin, "bob", all_cases(), json!([])).await;
    let (eve, eve_key) = server.agent(&site, &admin, "eve", all_cases(), json!([])).await;
    let (otto, _) = server.agent(&site, &admin, "otto", all_cases(), json!([])).await;
    team(&server, &admin, "Support", &[&ann, &bob]).await;
    team(&server, &admin, "Escalations", &[&eve]).await;
    team(&server, &admin, "Operations", &[&otto]).await;

    let (ok, stdout, stderr) = site.run(&["rules", "import", examples().to_str().expect("path")]);
    assert!(ok, "import failed: {stdout}{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.trim_start().starts_with("created ")).count(), 7, "{stdout}");
    // Rules saved elsewhere (here: by the CLI) are in force within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    // Portal cases: Support is told, and the case is assigned in turn.
    let (_, contact) =
        server.post("/api/v1/contacts", &admin, json!({ "first_name": "Cy", "last_name": "Customer" })).await;
    let (status, _) = server
        .post(
            "/api/v1/users",
            &admin,
            json!({ "username": "cy", "type": "portal", "password": "portal-password", "contact_id": contact["id"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let portal = site.api_key_for("cy");
    let first = server.case(&portal, json!({ "name": "Invoice question" })).await;
    let second = server.case(&portal, json!({ "name": "Another question" })).await;
    let (_, first) = server.get(&format!("/api/v1/cases/{}", id(&first)), &admin).await;
    let (_, second) = server.get(&format!("/api/v1/cases/{}", id(&second)), &admin).await;
    let support: Vec<&str> = {
        let mut ids = vec![id(&ann), id(&bob)];
        ids.sort();
        ids
    };
    assert_eq!(first["assigned_user_id"], support[0], "the first member by id gets the first case");
    assert_eq!(second["assigned_user_id"], support[1], "then the next");
    assert_eq!(first["status"], "Assigned");
    let (_, notifications) = server.get("/api/v1/notifications", &ann_key).await;
    let kinds: Vec<&str> =
        notifications["items"].as_array().expect("items").iter().filter_map(|n| n["kind"].as_str()).collect();
    assert!(kinds.contains(&"rule"), "Support members are notified: {notifications}");
    let (_, stream) = server.get(&format!("/api/v1/cases/{}/stream", id(&first)), &admin).await;
    // Assigned before the case was saved: the Create note says how.
    let create =
        stream["items"].as_array().expect("items").iter().find(|n| n["type"] == "Create").expect("Create note");
    assert!(create["data"]["assignment"]["reason"].as_str().expect("reason").starts_with("round-robin"), "{create}");
    // The customer never sees the rules' internal note, nor how the
    // helpdesk chose the assignee.
    assert!(stream_posts(&server, &portal, id(&first)).await.is_empty());
    let (_, theirs) = server.get(&format!("/api/v1/cases/{}/stream", id(&first)), &portal).await;
    let their_create =
        theirs["items"].as_array().expect("items").iter().find(|n| n["type"] == "Create").expect("Create note");
    assert!(
        their_create["data"].get("assignment").is_none() && their_create["data"].get("rule").is_none(),
        "{their_create}"
    );

    // Keywords raise the priority before the case is saved.
    let outage = server.case(&ann_key, json!({ "name": "Mail server down" })).await;
    assert_eq!(outage["priority"], "Urgent");
    let error = server.case(&ann_key, json!({ "name": "Report", "description": "Export fails with an error" })).await;
    assert_eq!(error["priority"], "High");
    let calm = server.case(&ann_key, json!({ "name": "Question", "priority": "Urgent" })).await;
    assert_eq!(calm["priority"], "Urgent", "the rule never lowers a priority");

    // Closing a Problem opens the root-cause review.
    let problem = server.case(&ann_key, json!({ "name": "Disk full", "type": "Problem" })).await;
    let (status, closed) =
        server.patch(&format!("/api/v1/cases/{}", id(&problem)), &ann_key, json!({ "status": "Closed" })).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    let review = find_case(&server, &admin, "Root-cause review: Disk full").await;
    assert_eq!(review.len(), 1);
    assert_eq!(review[0]["type"], "Problem");
    assert_eq!(review[0]["created_by_id"], "system");

    // Stale urgent cases are escalated once per quiet spell.
    let stale = server.case(&ann_key, json!({ "name": "Payments outage" })).await;
    backdate(&site, "created_at", id(&stale), 10).await;
    let escalate = rule_by_name(&server, &admin, "Escalate stale urgent cases").await;
    let (status, run) = server.post(&format!("/api/v1/rules/{}/run", id(&escalate)), &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let notes: Vec<Value> = stream_posts(&server, &admin, id(&stale)).await;
    assert_eq!(notes.iter().filter(|n| n["post"].as_str().unwrap_or_default().starts_with("Escalated")).count(), 1);
    let (_, eve_notes) = server.get("/api/v1/notifications", &eve_key).await;
    assert!(eve_notes["total"].as_i64().expect("total") >= 1, "Escalations is told: {eve_notes}");
    server.post(&format!("/api/v1/rules/{}/run", id(&escalate)), &admin, json!({})).await;
    let notes: Vec<Value> = stream_posts(&server, &admin, id(&stale)).await;
    assert_eq!(
        notes.iter().filter(|n| n["post"].as_str().unwrap_or_default().starts_with("Escalated")).count(),
        1,
        "not escalated again within the same quiet spell"
    );
    // The fresh urgent case has not waited long enough (unless the clock says otherwise, it has 0 working hours).
    assert!(
        stream_posts(&server, &admin, id(&outage))
            .await
            .iter()
            .all(|n| !n["post"].as_str().unwrap_or_default().starts_with("Escalated"))
    );

    // Pending for a week: closed with a note; pending for a day: left alone.
    let waiting = server.case(&ann_key, json!({ "name": "Waiting long", "status": "Pending" })).await;
    let recent = server.case(&ann_key, json!({ "name": "Waiting briefly", "status": "Pending" })).await;
    backdate(&site, "modified_at", id(&waiting), 8).await;
    let close = rule_by_name(&server, &admin, "Close cases pending on the customer for 7 days").await;
    let (status, run) = server.post(&format!("/api/v1/rules/{}/run", id(&close)), &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["cases"], 2, "both pending cases were looked at");
    let (_, waiting) = server.get(&format!("/api/v1/cases/{}", id(&waiting)), &admin).await;
    assert_eq!(waiting["status"], "Closed");
    let notes = stream_posts(&server, &admin, id(&waiting)).await;
    assert!(
        notes
            .iter()
            .any(|n| n["is_internal"] == false && n["post"].as_str().unwrap_or_default().contains("closing this case"))
    );
    let (_, recent) = server.get(&format!("/api/v1/cases/{}", id(&recent)), &admin).await;
    assert_eq!(recent["status"], "Pending");

    // The monthly maintenance case is born of a schedule, with no case to start from.
    let monthly = rule_by_name(&server, &admin, "Monthly maintenance check").await;
    let (status, _) = server.post(&format!("/api/v1/rules/{}/run", id(&monthly)), &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let made = find_case(&server, &admin, "Monthly maintenance check").await;
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["assigned_user_id"], id(&otto));
    let (_, stream) = server.get(&format!("/api/v1/cases/{}/stream", id(&made[0])), &admin).await;
    let create = stream["items"].as_array().expect("items").iter().find(|n| n["type"] == "Create").expect("Create");
    assert_eq!(create["data"]["rule"], "Monthly maintenance check");

    // Every run is in the log, visible to admins only.
    let (_, runs) = server.get("/api/v1/rule-runs?limit=200", &admin).await;
    assert!(runs["total"].as_i64().expect("total") >= 8, "{runs}");
    assert!(runs["items"].as_array().expect("items").iter().all(|r| r["outcome"] != "failed"), "{runs}");
    let (status, _) = server.get("/api/v1/rule-runs", &ann_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn rules_are_managed_tested_and_explained(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let (_, agent) = server.agent(&site, &admin, "agnes", all_cases(), json!([])).await;

    let broken = json!({ "name": "broken", "hook": "case.created", "script": "set(\"priority\",\n  \"High\"" });
    let (status, error) = server.post("/api/v1/rules", &admin, broken.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error["error"]["fields"]["script"].as_str().expect("script error").contains("line 2"), "{error}");
    let (status, _) =
        server.post("/api/v1/rules", &agent, json!({ "name": "x", "hook": "manual", "script": "print(1)" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let case = server.case(&agent, json!({ "name": "Printer jam" })).await;
    let number = case["number"].as_i64().expect("number");

    // A dry run of an unsaved rule: what it would do, nothing done.
    let draft = json!({
        "name": "close printers", "hook": "case.updated",
        "condition": "ticket.name.contains(\"Printer\")",
        "script": "print(`closing #${ticket.number}`); set(\"status\", \"Closed\"); post_note(\"Fixed\");"
    });
    let (status, run) =
        server.post("/api/v1/rules/test", &admin, json!({ "rule": draft, "case_number": number })).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["outcome"], "dry_run");
    assert_eq!(run["condition_held"], true);
    assert_eq!(run["actions"].as_array().expect("actions").len(), 2);
    assert_eq!(run["log"][0], format!("closing #{number}"));
    let (_, unchanged) = server.get(&format!("/api/v1/cases/{}", id(&case)), &admin).await;
    assert_eq!(unchanged["status"], "New");

    // The CLI shows the same explanation for a rule file.
    let file = site.data_dir.join("../close.rhai");
    std::fs::write(&file, "// name: close printers\n// hook: case.updated\n// condition: ticket.name.contains(\"Printer\")\nset(\"status\", \"Closed\");\n").expect("write");
    let (ok, stdout, stderr) =
        site.run(&["rules", "test", file.to_str().expect("path"), "--case", &number.to_string()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("condition: held"), "{stdout}");
    assert!(stdout.contains("\"status\""), "{stdout}");

    // A manual rule shows as a button while its condition holds.
    let manual = json!({
        "name": "Escalate to second line", "hook": "manual",
        "condition": "ticket.priority != \"Urgent\"",
        "script": "set(\"priority\", \"Urgent\"); internal_note(`Escalated by ${actor.username}`);"
    });
    let (status, manual) = server.post("/api/v1/rules", &admin, manual).await;
    assert_eq!(status, StatusCode::CREATED, "{manual}");
    let (_, buttons) = server.get(&format!("/api/v1/cases/{}/manual-rules", id(&case)), &agent).await;
    assert_eq!(buttons.as_array().expect("buttons").len(), 1, "{buttons}");
    let (status, run) =
        server.post(&format!("/api/v1/cases/{}/manual-rules/{}", id(&case), id(&manual)), &agent, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["outcome"], "applied");
    let (_, case_now) = server.get(&format!("/api/v1/cases/{}", id(&case)), &agent).await;
    assert_eq!(case_now["priority"], "Urgent");
    let (_, buttons) = server.get(&format!("/api/v1/cases/{}/manual-rules", id(&case)), &agent).await;
    assert!(buttons.as_array().expect("buttons").is_empty());
    let posts = stream_posts(&server, &agent, id(&case)).await;
    assert_eq!(posts[0]["post"], "Escalated by agnes");

    // Before-save rules may refuse a change with a message for the user.
    let guard = json!({
        "name": "Closing needs a type", "hook": "case.before_save",
        "condition": "ticket.status == \"Closed\" && ticket.type == ()",
        "script": "reject(\"Set the case type before closing it\");"
    });
    let (status, _) = server.post("/api/v1/rules", &admin, guard).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, refused) =
        server.patch(&format!("/api/v1/cases/{}", id(&case)), &agent, json!({ "status": "Closed" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "rejected_by_rule");
    assert_eq!(refused["error"]["message"], "Set the case type before closing it");
    assert_eq!(refused["error"]["rule"], "Closing needs a type");

    // Export and import round-trip; an import with one bad rule saves none.
    let (_, exported) = server.get("/api/v1/rules/export", &admin).await;
    assert_eq!(exported["rules"].as_array().expect("rules").len(), 2);
    let mut bad = exported.clone();
    bad["rules"].as_array_mut().expect("rules").push(json!({ "name": "bad", "hook": "manual", "script": "let = 1;" }));
    let (status, _) = server.post("/api/v1/rules/import", &admin, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, imported) = server.post("/api/v1/rules/import", &admin, exported).await;
    assert_eq!(status, StatusCode::OK, "{imported}");
    assert!(imported.as_array().expect("imported").iter().all(|r| r["created"] == false));
    let (_, rules) = server.get("/api/v1/rules", &admin).await;
    assert_eq!(rules.as_array().expect("rules").len(), 2);

    // The run log has the manual run, for the case, with its actions.
    let (_, runs) = server.get(&format!("/api/v1/rule-runs?case_id={}", id(&case)), &admin).await;
    let manual_run = runs["items"].as_array().expect("items").iter().find(|r| r["hook"] == "manual").expect("logged");
    assert_eq!(manual_run["rule_name"], "Escalate to second line");
    assert!(manual_run["duration_us"].as_i64().expect("duration") >= 0);
}

async fn hostile_scripts_are_stopped_and_the_case_is_saved(site: Site) {
    let server = site.start(&[]);
    let admin = site.admin_key();
    let hostile = [
        ("loops", "loop { }", "operations"),
        ("recurses", "fn f(n) { f(n + 1) } f(0);", "nested deeper"),
        ("huge string", "let s = \"xxxxxxxx\"; loop { s += s; }", "over the limit"),
        ("huge array", "let a = []; loop { a.push(a.len()); }", "over the limit"),
        ("undefined", "launch_missiles();", "launch_missiles"),
        ("divides", "let x = 10 / (ticket.number - ticket.number);", "zero"),
    ];
    for (name, script, _) in hostile {
        let (status, rule) = server
            .post("/api/v1/rules", &admin, json!({ "name": name, "hook": "case.created", "script": script }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");
    }
    let (status, _) = server
        .post(
            "/api/v1/rules",
            &admin,
            json!({ "name": "garbage", "hook": "case.created", "condition": "\"yes\"", "script": "print(1)" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let started = std::time::Instant::now();
    let case = server.case(&admin, json!({ "name": "Still here" })).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the budgets keep creation bounded");
    let (_, runs) = server.get(&format!("/api/v1/rule-runs?case_id={}", id(&case)), &admin).await;
    let runs = runs["items"].as_array().expect("items");
    for (name, _, expected) in hostile {
        let run = runs.iter().find(|r| r["rule_name"] == name).unwrap_or_else(|| panic!("{name} logged"));
        assert_eq!(run["outcome"], "failed", "{run}");
        let error = run["error"].as_str().expect("error").to_lowercase();
        assert!(error.contains(expected), "{name}: {error}");
    }
    let garbage = runs.iter().find(|r| r["rule_name"] == "garbage").expect("logged");
    assert!(garbage["error"].as_str().expect("error").contains("true or false"));
    let (status, _) = server.get(&format!("/api/v1/cases/{}", id(&case)), &admin).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.get("/api/v1/me", &admin).await;
    assert_eq!(status, StatusCode::OK, "the server keeps serving");
}

async fn round_robin_is_exact_across_server_processes(site: Site) {
    let first = site.start(&[]);
    let admin = site.admin_key();
    let mut agents = Vec::new();
    for name in ["rra", "rrb", "rrc", "rrd"] {
        agents.push(first.agent(&site, &admin, name, all_cases(), json!([])).await.0);
    }
    team(&first, &admin, "Support", &agents.iter().collect::<Vec<_>>()).await;
    let rule = json!({ "name": "spread", "hook": "case.created", "script": "assign_by(\"round-robin\", \"Support\")" });
    let (status, _) = first.post("/api/v1/rules", &admin, rule).await;
    assert_eq!(status, StatusCode::CREATED);
    let processes = if site.backend == Backend::Postgres { 3 } else { 2 };
    let mut servers = vec![first];
    for _ in 1..processes {
        servers.push(site.start(&[]));
    }
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..20 {
        let client = client.clone();
        let base = bases[worker % bases.len()].clone();
        let key = admin.clone();
        tasks.spawn(async move {
            for i in 0..50 {
                let response = client
                    .post(format!("{base}/api/v1/cases"))
                    .bearer_auth(&key)
                    .json(&json!({ "name": format!("rr {worker}-{i}") }))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(response.status(), StatusCode::CREATED, "{:?}", response.text().await);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("worker");
    }
    for agent in &agents {
        let (_, page) = servers[0].get(&format!("/api/v1/cases?assigned_user_id={}&limit=1", id(agent)), &admin).await;
        assert_eq!(page["total"], 250, "each of 4 agents gets exactly a quarter of 1,000 cases");
    }
}

async fn rule_emails_and_http_requests_leave_after_commit(site: Site) {
    let Some(smtp) = SmtpSink::start() else { return };
    let site = site.with_env("DOCKET_EMAIL_DELAY_SECONDS", "0");
    let server = site.start(&[]);
    let admin = site.admin_key();
    let smtp_settings =
        json!({ "host": "127.0.0.1", "port": smtp.port, "security": "none", "from_address": "help@docket.test" });
    let (status, _) = server.call(Method::PUT, "/api/v1/settings/smtp", &admin, Some(smtp_settings)).await;
    assert_eq!(status, StatusCode::OK);

    // A plain HTTP listener on loopback stands in for the webhook target.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let received = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        while !String::from_utf8_lossy(&request).contains("\"case\"") {
            let n = socket.read(&mut buffer).await.expect("read");
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..n]);
        }
        socket.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.expect("write");
        String::from_utf8_lossy(&request).into_owned()
    });

    let script = format!(
        "send_email(#{{ to: \"boss@example.com\", subject: `New: ${{ticket.name}}`, body: `Case ${{ticket.number}} by rule ${{event.rule}} {{{{ not a template }}}}` }});\n\
         http_request(#{{ url: \"http://127.0.0.1:{port}/hook\", body: #{{ \"case\": ticket.number }} }});"
    );
    let (status, rule) =
        server.post("/api/v1/rules", &admin, json!({ "name": "tell", "hook": "case.created", "script": script })).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");

    // By default rules may not reach loopback: the request fails, clearly.
    let first = server.case(&admin, json!({ "name": "Private first" })).await;
    let mut refused = None;
    for _ in 0..100 {
        let (_, jobs) = server.get("/api/v1/jobs?status=failed", &admin).await;
        if let Some(job) = jobs["items"].as_array().expect("items").iter().find(|j| j["kind"] == "rule_http") {
            refused = Some(job.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused = refused.expect("the request to a loopback address failed");
    assert!(refused["last_error"].as_str().expect("error").contains("private or loopback"), "{refused}");
    let messages = smtp.wait_for(1).await;
    let number = first["number"].as_i64().expect("number");
    assert!(messages[0].contains(&format!("Subject: [#{number}] New: Private first")), "{}", messages[0]);
    assert!(messages[0].contains(&format!("Case {number} by rule tell {{{{ not a template }}}}")), "sent as written");

    // Allowed by the admin, the request arrives with its delivery id.
    let settings = json!({ "business_hours": { "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00" }, "http_allow_private": true });
    let (status, saved) = server.call(Method::PUT, "/api/v1/settings/rules", &admin, Some(settings)).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let second = server.case(&admin, json!({ "name": "Allowed now" })).await;
    let request =
        tokio::time::timeout(std::time::Duration::from_secs(20), received).await.expect("in time").expect("task");
    assert!(request.starts_with("POST /hook"), "{request}");
    assert!(request.to_lowercase().contains("x-docket-delivery:"), "{request}");
    assert!(request.contains(&format!("{{\"case\":{}}}", second["number"])), "{request}");
}

on_both_backends!(
    the_example_rules_do_their_jobs,
    rules_are_managed_tested_and_explained,
    hostile_scripts_are_stopped_and_the_case_is_saved,
    round_robin_is_exact_across_server_processes,
    rule_emails_and_http_requests_leave_after_commit,
);
