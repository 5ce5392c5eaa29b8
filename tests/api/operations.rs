//! Running Docket: health, metrics, the CLI, bootstrap, demo data,
//! graceful shutdown, and a `kill -9` in the middle of a burst.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::StatusCode;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Site, read};

async fn health_metrics_and_headers(site: Site) {
    let server = site.start(&[]);
    let response = server.http.get(server.url("/healthz")).send().await.expect("send");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(response.headers()["content-security-policy"].to_str().expect("ascii").contains("frame-ancestors 'none'"));
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
    let key = site.admin_key();
    server.case(&key, json!({"name": "counted"})).await;
    let text = server.http.get(server.url("/metrics")).send().await.expect("send").text().await.expect("text");
    assert!(text.contains("docket_up{backend="), "{text}");
    assert!(text.contains("docket_cases_created_total 1"), "{text}");
    assert!(
        text.contains("docket_http_requests_total{method=\"POST\",route=\"/api/v1/cases\",status=\"201\"} 1"),
        "{text}"
    );
    assert!(text.contains("docket_http_request_duration_seconds_bucket{route=\"/api/v1/cases\""), "{text}");
}

async fn cli_bootstrap_and_demo(site: Site) {
    // Without DOCKET_ADMIN_PASSWORD the first start prints a random one.
    let site = site.with_env("DOCKET_ADMIN_PASSWORD", "");
    let (ok, stdout, _) = site.run(&["--help"]);
    assert!(ok);
    for command in ["serve", "migrate", "user", "apikey"] {
        assert!(stdout.contains(command), "{stdout}");
    }
    let (ok, stdout, stderr) = site.run(&["migrate"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("migrations applied"));

    let server = site.start(&["--demo"]);
    let printed = server.printed.join("\n");
    let password = printed
        .split("password `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no admin password printed: {printed}"))
        .to_string();
    assert!(printed.contains("alice"), "{printed}");
    let login = server
        .http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .expect("send");
    assert_eq!(login.status(), StatusCode::OK);
    let demo_login = server
        .http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "alice", "password": "docket-demo"}))
        .send()
        .await
        .expect("send");
    assert_eq!(demo_login.status(), StatusCode::OK);
    let key = site.admin_key();
    let (_, cases) = server.get("/api/v1/cases", &key).await;
    let demo_cases = cases["total"].as_i64().expect("total");
    assert!(demo_cases >= 40, "{cases}");
    drop(server);

    // A second --demo start loads nothing twice and prints no new password.
    let server = site.start(&["--demo"]);
    assert!(!server.printed.join("\n").contains("Created the admin user"), "{:?}", server.printed);
    let (_, cases) = server.get("/api/v1/cases", &key).await;
    assert_eq!(cases["total"], demo_cases);

    // `docket user create` makes a user who can log in.
    let (ok, stdout, stderr) =
        site.run(&["user", "create", "--username", "dave", "--password", "dave-password", "--name", "Dave"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("dave"), "{stdout}");
    let login = server
        .http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "dave", "password": "dave-password"}))
        .send()
        .await
        .expect("send");
    assert_eq!(login.status(), StatusCode::OK);
    let (ok, _, stderr) = site.run(&["user", "create", "--username", "dave", "--password", "dave-password"]);
    assert!(!ok);
    assert!(stderr.contains("taken"), "{stderr}");
    let (ok, _, stderr) = site.run(&["apikey", "create", "--user", "nobody"]);
    assert!(!ok);
    assert!(stderr.contains("nobody"), "{stderr}");

    // A reader that has gone away (`docket apikey create | head -1`) ends
    // the command quietly: the key is made, and nothing panics.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let output = site
        .command()
        .args(["apikey", "create", "--user", "dave", "--name", "piped"])
        .stdout(writer)
        .output()
        .expect("run docket");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

async fn graceful_shutdown_finishes_requests(site: Site) {
    let mut server = site.start(&[]);
    let key = site.admin_key();
    let base = server.base.clone();
    let http = server.http.clone();
    let burst: Vec<_> = (0..40)
        .map(|i| {
            let http = http.clone();
            let key = key.clone();
            let url = format!("{base}/api/v1/cases");
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(key)
                    .json(&json!({"name": format!("in flight {i}")}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let exited_cleanly = tokio::task::spawn_blocking(move || server.signal_and_wait("TERM")).await.expect("join");
    assert!(exited_cleanly, "docket did not exit 0 on SIGTERM");
    let mut created = 0;
    for request in burst {
        match request.await.expect("task") {
            Ok(status) => {
                assert_eq!(status, StatusCode::CREATED, "an accepted request must finish");
                created += 1;
            }
            // Requests that arrive after the listener closed are refused.
            Err(error) => assert!(error.is_connect() || error.is_request(), "{error}"),
        }
    }
    let server = site.start(&[]);
    let (_, list) = server.get("/api/v1/cases", &key).await;
    assert_eq!(list["total"], created, "every 201 is stored, nothing else");
}

async fn kill_nine_during_a_burst_leaves_a_consistent_database(site: Site) {
    let mut server = site.start(&[]);
    let key = site.admin_key();
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let http = server.http.clone();
            let url = server.url("/api/v1/cases");
            let key = key.clone();
            let acknowledged = acknowledged.clone();
            let attempts = attempts.clone();
            tokio::spawn(async move {
                for i in 0..10_000 {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let response =
                        http.post(&url).bearer_auth(&key).json(&json!({"name": format!("burst {i}")})).send().await;
                    match response {
                        Ok(response) if response.status() == StatusCode::CREATED => {
                            let case: serde_json::Value = match response.json().await {
                                Ok(case) => case,
                                Err(_) => return,
                            };
                            acknowledged.lock().expect("lock").push(case["number"].as_i64().expect("number"));
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    // Let the burst run, then kill the server without warning.
    while acknowledged.lock().expect("lock").len() < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let _ = tokio::task::spawn_blocking(move || server.signal_and_wait("KILL")).await;
    for worker in workers {
        let _ = worker.await;
    }
    let acknowledged: BTreeSet<i64> = acknowledged.lock().expect("lock").iter().copied().collect();

    let server = site.start(&[]);
    let mut numbers = Vec::new();
    let mut offset = 0;
    loop {
        let (status, page) = server.get(&format!("/api/v1/cases?limit=200&offset={offset}&sort=number"), &key).await;
        assert_eq!(status, StatusCode::OK);
        let items = page["items"].as_array().expect("items");
        if items.is_empty() {
            break;
        }
        for case in items {
            numbers.push(case["number"].as_i64().expect("number"));
            let (_, stream) =
                server.get(&format!("/api/v1/cases/{}/stream", case["id"].as_str().expect("id")), &key).await;
            assert_eq!(stream["items"][0]["type"], "Create", "every stored case has its Create note");
        }
        offset += 200;
    }
    let stored: BTreeSet<i64> = numbers.iter().copied().collect();
    assert_eq!(stored.len(), numbers.len(), "case numbers repeated after the crash");
    assert!(acknowledged.is_subset(&stored), "an acknowledged case was lost");
    assert!(stored.len() <= attempts.load(Ordering::Relaxed));
    let max = stored.iter().max().copied().unwrap_or(0);
    let next = server.case(&key, json!({"name": "after the crash"})).await;
    assert!(next["number"].as_i64().expect("number") > max);
    if site.backend == crate::support::Backend::Sqlite {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&site.database_url).await.expect("open");
        let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check").fetch_one(&mut conn).await.expect("check");
        assert_eq!(check, "ok");
        let (violations,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM pragma_foreign_key_check").fetch_one(&mut conn).await.expect("fk");
        assert_eq!(violations, 0);
    }
}

on_both_backends!(
    health_metrics_and_headers,
    cli_bootstrap_and_demo,
    graceful_shutdown_finishes_requests,
    kill_nine_during_a_burst_leaves_a_consistent_database,
);
