//! `docket-bench`: measures Docket's hot paths.
//!
//! - `cases`: creates N cases over HTTP at concurrency C against a running
//!   server (the default).
//! - `posts`: posts N notes over HTTP to one case with F followers.
//! - `jobs`: pushes N jobs through the durable queue of a fresh SQLite
//!   store (enqueue, lease, finish), with W workers.
//! - `dispatch`: evaluates 20 realistic rules against one case event in
//!   the rules engine, N times, and reports the cost per event.
//! - `rules`: creates N cases over HTTP with no rules, then installs 5
//!   rules (and the team they assign to) and creates N more, in the same
//!   run against the same server, and reports both and their ratio.
//! - `listing`: writes a million cases into a running server's database,
//!   then times the case list and search over HTTP.
//!
//! The load generator runs on the same machine as the server in our
//! figures; it competes for the same cores, so the numbers are a floor.

mod listing;
mod mail;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "docket-bench", about = "Measure Docket's hot paths")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create cases over HTTP.
    Cases(Http),
    /// Post notes over HTTP to one case with many followers.
    Posts {
        #[command(flatten)]
        http: Http,
        /// Followers of the case (users created for the run).
        #[arg(long, default_value_t = 50)]
        followers: usize,
    },
    /// Rule dispatch cost per event with 20 active rules (no server).
    Dispatch {
        #[arg(long, short = 'n', default_value_t = 20_000)]
        events: u64,
    },
    /// Case creation over HTTP with 5 rules active versus none.
    Rules(Http),
    /// Instantiate and call a `rule` plugin with a fresh store, in process
    /// (no server): the per-call cost of the plugin host.
    PluginCall {
        /// The component (plugins/target/vip-escalation.wasm).
        #[arg(long)]
        component: std::path::PathBuf,
        #[arg(long, short = 'n', default_value_t = 20_000)]
        calls: u64,
    },
    /// Case creation over HTTP with one plugin rule active versus none.
    PluginRules {
        #[command(flatten)]
        http: Http,
        /// The rule plugin to upload (plugins/target/vip-escalation.wasm).
        #[arg(long)]
        component: std::path::PathBuf,
    },
    /// Write a corpus of realistic email messages to a folder.
    MailCorpus {
        #[arg(long)]
        out: std::path::PathBuf,
        #[arg(long, short = 'n', default_value_t = 2000)]
        count: u64,
    },
    /// Parse realistic messages in process (no server).
    MailParse {
        #[arg(long, short = 'n', default_value_t = 20_000)]
        count: u64,
    },
    /// Point a new mailbox at an IMAP folder holding COUNT messages (see
    /// scripts/dovecot) and time their ingestion into cases.
    MailIngest {
        #[command(flatten)]
        http: Http,
        /// The IMAP server's port on 127.0.0.1 (user `support`).
        #[arg(long)]
        imap_port: u16,
    },
    /// Write COUNT cases into a running server's database, then time the
    /// case list and search over HTTP.
    Listing {
        /// Base URL of the server.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An admin API key.
        #[arg(long, env = "DOCKET_API_KEY", hide_env_values = true)]
        key: String,
        /// The server's database (its DOCKET_DATABASE_URL).
        #[arg(long)]
        database_url: String,
        /// Cases to write.
        #[arg(long, short = 'n', default_value_t = 1_000_000)]
        count: u64,
        /// Timed runs of each request.
        #[arg(long, default_value_t = 10)]
        repeat: u32,
    },
    /// Push jobs through the queue of a fresh SQLite store.
    Jobs {
        #[arg(long, short = 'n', default_value_t = 20_000)]
        jobs: u64,
        #[arg(long, short = 'w', default_value_t = 2)]
        workers: u64,
    },
}

#[derive(clap::Args)]
struct Http {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An admin API key.
    #[arg(long, env = "DOCKET_API_KEY", hide_env_values = true)]
    key: String,
    /// How many requests.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    count: u64,
    /// How many requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 16)]
    concurrency: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Cases(http) => cases(http).await,
        Command::Posts { http, followers } => posts(http, followers).await,
        Command::Jobs { jobs: count, workers } => jobs(count, workers).await,
        Command::Dispatch { events } => dispatch(events),
        Command::Rules(http) => rules(http).await,
        Command::PluginCall { component, calls } => plugin_call(&component, calls),
        Command::PluginRules { http, component } => plugin_rules(http, &component).await,
        Command::MailCorpus { out, count } => mail::corpus(&out, count),
        Command::MailParse { count } => mail::parse(count),
        Command::Listing { url, key, database_url, count, repeat } => {
            listing::run(listing::Listing { url, key, database_url, cases: count, repeat }).await
        }
        Command::MailIngest { http, imap_port } => mail::ingest(&http.url, &http.key, imap_port, http.count).await,
    }
}

fn client(concurrency: u64) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency as usize)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// 200 cases before the clock starts; also checks the key and the URL.
async fn warm_up(client: &reqwest::Client, endpoint: &str, http: &Http) -> anyhow::Result<()> {
    for i in 0..200 {
        let status = send(client, endpoint, &http.key, case_body(i)).await.context("warm-up request")?;
        if status != 201 {
            bail!("warm-up request answered {status}: check --url and --key");
        }
    }
    Ok(())
}

/// The first half of a comparison: warm up, then create cases with no
/// rules.
async fn baseline(client: &reqwest::Client, endpoint: &str, http: &Http) -> anyhow::Result<Report> {
    warm_up(client, endpoint, http).await?;
    let without = run(client, endpoint, http, case_body).await?;
    without.print("cases created, no rules");
    without.check()?;
    Ok(without)
}

/// The `p`th percentile of sorted latencies, in microseconds.
fn percentile_us(sorted: &[std::time::Duration], p: f64) -> f64 {
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize].as_secs_f64() * 1e6
}

async fn cases(http: Http) -> anyhow::Result<()> {
    let client = client(http.concurrency)?;
    let endpoint = format!("{}/api/v1/cases", http.url.trim_end_matches('/'));
    warm_up(&client, &endpoint, &http).await?;
    let report = run(&client, &endpoint, &http, case_body).await?;
    report.print("cases created");
    report.check()
}

fn case_body(i: u64) -> Value {
    let priority = ["Low", "Normal", "High", "Urgent"][(i % 4) as usize];
    json!({
        "name": format!("Benchmark case {i}: printer on floor {} is offline", i % 40),
        "description": "Created by docket-bench. The printer shows error E-42 and will not print.",
        "priority": priority,
        "type": "Incident",
    })
}

async fn posts(http: Http, followers: usize) -> anyhow::Result<()> {
    let client = client(http.concurrency)?;
    let base = http.url.trim_end_matches('/').to_string();
    let run_id = chrono::Utc::now().timestamp_millis();
    let created: Value = client
        .post(format!("{base}/api/v1/cases"))
        .bearer_auth(&http.key)
        .json(&json!({"name": "Benchmark: a case many people follow"}))
        .send()
        .await?
        .json()
        .await?;
    let case_id = created["id"].as_str().context("no case id: check --url and --key")?.to_string();
    for i in 0..followers {
        let user: Value = client
            .post(format!("{base}/api/v1/users"))
            .bearer_auth(&http.key)
            .json(&json!({"username": format!("follower-{run_id}-{i}"), "type": "api"}))
            .send()
            .await?
            .json()
            .await?;
        let user_id = user["id"].as_str().context("could not create a follower (admin key needed)")?;
        // API users without roles cannot read the case; admins can, so the
        // followers are made admins for the run.
        client
            .patch(format!("{base}/api/v1/users/{user_id}"))
            .bearer_auth(&http.key)
            .json(&json!({"type": "admin"}))
            .send()
            .await?;
        let status = client
            .put(format!("{base}/api/v1/cases/{case_id}/followers/{user_id}"))
            .bearer_auth(&http.key)
            .send()
            .await?
            .status();
        if !status.is_success() {
            bail!("could not add follower {i}: {status}");
        }
    }
    let endpoint = format!("{base}/api/v1/cases/{case_id}/posts");
    let report =
        run(&client, &endpoint, &http, |i| json!({"post": format!("Benchmark post {i}: still investigating")})).await?;
    report.print(&format!("posts to a case with {followers} followers"));
    report.check()
}

/// Sends `http.count` requests built by `body`, `http.concurrency` at a time.
async fn run(client: &reqwest::Client, endpoint: &str, http: &Http, body: fn(u64) -> Value) -> anyhow::Result<Report> {
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..http.concurrency.max(1) {
        let (client, endpoint, key) = (client.clone(), endpoint.to_string(), http.key.clone());
        let (next, failures) = (next.clone(), failures.clone());
        let total = http.count;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return latencies;
                }
                let sent = Instant::now();
                match send(&client, &endpoint, &key, body(i)).await {
                    Ok(201) => latencies.push(sent.elapsed()),
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    latencies.sort();
    Ok(Report {
        latencies,
        failures: failures.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        concurrency: http.concurrency,
    })
}

async fn send(client: &reqwest::Client, endpoint: &str, key: &str, body: Value) -> anyhow::Result<u16> {
    let response = client.post(endpoint).bearer_auth(key).json(&body).send().await?;
    let status = response.status().as_u16();
    // Read the body so the connection is reused.
    let _ = response.bytes().await?;
    Ok(status)
}

struct Report {
    latencies: Vec<Duration>,
    failures: u64,
    elapsed: Duration,
    concurrency: u64,
}

impl Report {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let index = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[index].as_secs_f64() * 1000.0
    }

    fn print(&self, what: &str) {
        let ok = self.latencies.len();
        println!("{what}: {ok} ({} failed)", self.failures);
        println!("concurrency:    {}", self.concurrency);
        println!("elapsed:        {:.2} s", self.elapsed.as_secs_f64());
        println!("throughput:     {:.0} requests/s", ok as f64 / self.elapsed.as_secs_f64());
        println!("latency p50:    {:.2} ms", self.percentile(50.0));
        println!("latency p90:    {:.2} ms", self.percentile(90.0));
        println!("latency p99:    {:.2} ms", self.percentile(99.0));
        println!("latency max:    {:.2} ms", self.percentile(100.0));
    }

    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.failures > 0 { bail!("some requests failed") } else { Ok(()) }
    }
}

/// Enqueues `count` jobs, then drains them with `workers` leasing workers.
async fn jobs(count: u64, workers: u64) -> anyhow::Result<()> {
    use docket_store::{JobOutcome, NewJob, Store, StoreOptions};
    let dir = tempfile::tempdir()?;
    let store =
        Store::open(&format!("sqlite://{}", dir.path().join("jobs.db").display()), &StoreOptions::default()).await?;
    let started = Instant::now();
    let enqueuers: Vec<_> = (0..4u64)
        .map(|part| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut i = part;
                while i < count {
                    let job = NewJob {
                        kind: "bench",
                        payload: json!({ "i": i }),
                        run_at: chrono::Utc::now(),
                        idempotency_key: Some(format!("bench-{i}")),
                    };
                    store.enqueue_job(&job).await?;
                    i += 4;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for enqueuer in enqueuers {
        enqueuer.await??;
    }
    let enqueued = started.elapsed();
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let runners: Vec<_> = (0..workers.max(1))
        .map(|w| {
            let (store, done) = (store.clone(), done.clone());
            tokio::spawn(async move {
                let worker = format!("bench-{w}");
                loop {
                    // Batches of 8, as the server's workers lease them.
                    let jobs = store.claim_jobs(&worker, Duration::from_secs(60), 8).await?;
                    if jobs.is_empty() {
                        break;
                    }
                    for job in jobs {
                        store.finish_job(&job, &worker, &JobOutcome::Done).await?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for runner in runners {
        runner.await??;
    }
    let drained = started.elapsed();
    store.close().await;
    let done = done.load(Ordering::Relaxed);
    if done != count {
        bail!("ran {done} jobs of {count}");
    }
    println!("jobs:           {count} on SQLite, {workers} workers");
    println!("enqueue:        {:.0} jobs/s (one transaction each)", count as f64 / enqueued.as_secs_f64());
    println!("lease + finish: {:.0} jobs/s", count as f64 / drained.as_secs_f64());
    Ok(())
}

/// The 20 rules of the dispatch benchmark: a helpdesk's worth of rules on
/// `case.created`. Most conditions do not hold for a given case (as in
/// life); four rules act.
fn dispatch_rules() -> Vec<(String, Option<String>, String)> {
    let mut rules = vec![
        (
            "keywords".to_string(),
            None,
            r#"let text = ticket.name.to_lower(); if text.contains("offline") || text.contains("down") { set("priority", "Urgent") }"#.to_string(),
        ),
        ("note urgent".into(), Some(r#"ticket.priority == "Urgent""#.into()), r#"internal_note(`Urgent: #${ticket.number}`)"#.into()),
        ("assign".into(), Some("ticket.assigned_user_id == ()".into()), r#"assign_by("round-robin", "Support")"#.into()),
        ("type".into(), Some("ticket.type == ()".into()), r#"set("type", "Question")"#.into()),
    ];
    let quiet = [
        r#"actor.is_portal"#,
        r#"ticket.type == "Problem" && ticket.status == "Closed""#,
        r#""status" in changes"#,
        r#"ticket.is_internal"#,
        r#"ticket.account_id != () && ticket.priority == "Low""#,
        r#"ticket.name.starts_with("[billing]")"#,
        r#"ticket.contact_ids.len() > 3"#,
        r#"ticket.team_ids.contains("vip")"#,
        r#"event.depth > 2"#,
        r#"ticket.description == ()"#,
        r#"ticket.status == "Pending""#,
        r#"ticket.name.len() > 200"#,
        r#"ticket.priority == "Low" && ticket.type == "Incident""#,
        r#"actor.username == "robot""#,
        r#"ticket.status == "Rejected""#,
        r#"ticket.inbound_mailbox_id != ()"#,
    ];
    for (i, condition) in quiet.iter().enumerate() {
        rules.push((format!("quiet {i}"), Some(condition.to_string()), r#"set("priority", "Low")"#.to_string()));
    }
    rules
}

fn dispatch(events: u64) -> anyhow::Result<()> {
    use docket_domain::calendar::BusinessCalendar;
    use docket_domain::case::{Case, CasePriority, CaseStatus};
    use docket_domain::rule::{Hook, Rule};
    use docket_rules::{Engine, Event, Limits, NoReader};
    let engine = Engine::new(Limits::default());
    let now = chrono::Utc::now();
    let rules: Vec<Rule> = dispatch_rules()
        .into_iter()
        .enumerate()
        .map(|(i, (name, condition, script))| Rule {
            id: format!("rule-{i}"),
            name,
            description: None,
            hook: Hook::Created,
            condition,
            script,
            plugin: None,
            position: i as i64,
            enabled: true,
            schedule: None,
            case_filter: None,
            run_cap: 500,
            version: 1,
            next_run_at: None,
            created_at: now,
            modified_at: now,
        })
        .collect();
    let case = Case {
        id: "0123456789abcdef0123456789abcdef".into(),
        number: 4242,
        name: "Printer on floor 3 is offline".into(),
        status: CaseStatus::New,
        priority: CasePriority::Normal,
        case_type: None,
        description: Some("The printer shows error E-42 and will not print.".into()),
        account_id: None,
        contact_id: None,
        contact_ids: vec![],
        inbound_mailbox_id: None,
        is_internal: false,
        assigned_user_id: None,
        team_ids: vec![],
        attachment_ids: vec![],
        created_at: now,
        created_by_id: None,
        modified_at: now,
        modified_by_id: None,
        stream_updated_at: now,
        version: 1,
    };
    let calendar = BusinessCalendar::default();
    let actor = docket_domain::Actor::system();
    let event = Event {
        email: None,
        hook: Hook::Created,
        ticket: Some(&case),
        changes: &[],
        note: None,
        actor: Some(&actor),
        depth: 0,
        now,
        calendar: &calendar,
    };
    let run_all = |reader: Box<dyn docket_rules::Reader>| -> anyhow::Result<(usize, Box<dyn docket_rules::Reader>)> {
        let (evaluations, reader) = engine.evaluate_all(&rules, &event, reader);
        for (rule, evaluation) in rules.iter().zip(&evaluations) {
            if let Some(error) = &evaluation.error {
                bail!("rule {} failed: {error}", rule.name);
            }
        }
        Ok((evaluations.iter().map(|e| e.actions.len()).sum(), reader))
    };
    // Warm-up compiles every rule once (saving a rule does that in Docket).
    let (actions, mut reader) = run_all(Box::new(NoReader))?;
    let mut latencies = Vec::with_capacity(events as usize);
    let started = Instant::now();
    for _ in 0..events {
        let sent = Instant::now();
        let (_, back) = run_all(reader)?;
        reader = back;
        latencies.push(sent.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |p: f64| percentile_us(&latencies, p);
    println!("rule dispatch:  {events} events, 20 rules each ({actions} actions per event)");
    println!("per event p50:  {:.1} µs", at(50.0));
    println!("per event p99:  {:.1} µs", at(99.0));
    println!("per rule p50:   {:.2} µs", at(50.0) / 20.0);
    println!("events/s:       {:.0} (one core)", events as f64 / elapsed.as_secs_f64());
    Ok(())
}

/// The VIP escalation plugin's event: a case of a VIP account, so that
/// the call does its whole job (reads its storage, writes it, returns two
/// actions).
fn vip_event() -> docket_plugins::RuleEvent {
    docket_plugins::RuleEvent {
        hook: "case.created".into(),
        case: Some(docket_plugins::CaseSnapshot {
            id: "0123456789abcdef0123456789abcdef".into(),
            number: 4242,
            name: "Checkout is down".into(),
            status: "New".into(),
            priority: "Normal".into(),
            account_name: Some("Acme Corp".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn plugin_call(component: &std::path::Path, calls: u64) -> anyhow::Result<()> {
    use docket_plugins::{Call, Capability, Grants, HostConfig, Limits, MemoryIo, PluginHost};
    let bytes = std::fs::read(component).with_context(|| format!("reading {}", component.display()))?;
    let host = PluginHost::new(HostConfig::default())?;
    let prepared = host.prepare(&bytes, &Grants::from([Capability::Storage]))?;
    let config = r#"{"vip_accounts": ["Acme Corp"], "priority": "Urgent"}"#.to_string();
    let event = vip_event();
    let io = MemoryIo::default();
    let call = || Call { config: config.clone(), limits: Limits::default(), io: Box::new(io.clone()) };
    // Warm-up: the first calls fault in the pooling allocator's slots.
    for _ in 0..200 {
        prepared.run_rule(call(), &event).outcome?;
    }
    let mut latencies = Vec::with_capacity(calls as usize);
    let mut fuel = 0;
    let started = Instant::now();
    for _ in 0..calls {
        let sent = Instant::now();
        let report = prepared.run_rule(call(), &event);
        latencies.push(sent.elapsed());
        let actions = report.outcome?;
        if actions.len() != 2 {
            bail!("the plugin returned {} actions instead of 2", actions.len());
        }
        fuel = report.fuel_used;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |p: f64| percentile_us(&latencies, p);
    println!("plugin calls:   {calls} (fresh store, instantiate + call, {fuel} fuel each)");
    println!("per call p50:   {:.1} µs", at(50.0));
    println!("per call p99:   {:.1} µs", at(99.0));
    println!("calls/s:        {:.0} (one core)", calls as f64 / elapsed.as_secs_f64());
    Ok(())
}

async fn plugin_rules(http: Http, component: &std::path::Path) -> anyhow::Result<()> {
    let client = client(http.concurrency)?;
    let base = http.url.trim_end_matches('/').to_string();
    let endpoint = format!("{base}/api/v1/cases");
    let without = baseline(&client, &endpoint, &http).await?;

    let bytes = std::fs::read(component).with_context(|| format!("reading {}", component.display()))?;
    let run_id = chrono::Utc::now().timestamp_millis();
    let name = format!("bench-vip-{run_id}");
    // The benchmark's cases have no account: the plugin looks and returns
    // no action. What is measured is the call (a fresh store, the event
    // lowered into the component, the run, the plugin run logged).
    let manifest = json!({"name": name, "version": "1.0.0", "world": "rule", "capabilities": ["storage"],
                          "config": {"vip_accounts": ["Acme Corp"]}});
    let form = reqwest::multipart::Form::new()
        .text("manifest", manifest.to_string())
        .part("component", reqwest::multipart::Part::bytes(bytes).file_name("plugin.wasm"))
        .text("grants", "storage")
        .text("enabled", "true");
    let uploaded = client.post(format!("{base}/api/v1/plugins")).bearer_auth(&http.key).multipart(form).send().await?;
    if !uploaded.status().is_success() {
        bail!("could not upload the plugin: {}", uploaded.text().await?);
    }
    let plugin: Value = uploaded.json().await?;
    let rule = json!({"name": format!("bench plugin {run_id}"), "hook": "case.created", "plugin": name});
    let response = client.post(format!("{base}/api/v1/rules")).bearer_auth(&http.key).json(&rule).send().await?;
    if !response.status().is_success() {
        bail!("could not create the rule: {}", response.text().await?);
    }
    let rule: Value = response.json().await?;
    // Rules reach every node within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let with = run(&client, &endpoint, &http, case_body).await?;
    with.print("cases created, 1 plugin rule active");
    client
        .delete(format!("{base}/api/v1/rules/{}", rule["id"].as_str().unwrap_or_default()))
        .bearer_auth(&http.key)
        .send()
        .await?;
    client
        .delete(format!("{base}/api/v1/plugins/{}", plugin["id"].as_str().unwrap_or_default()))
        .bearer_auth(&http.key)
        .send()
        .await?;
    let ratio = with.throughput() / without.throughput();
    println!("with the plugin rule / without: {:.0}%", ratio * 100.0);
    with.check()
}

/// The 5 rules of the HTTP comparison.
fn http_rules() -> Vec<Value> {
    vec![
        json!({"name": "bench keywords", "hook": "case.before_save", "condition": "event.creating",
               "script": "let text = ticket.name.to_lower(); if text.contains(\"offline\") { set(\"priority\", \"High\") }"}),
        json!({"name": "bench assign", "hook": "case.before_save", "condition": "event.creating && ticket.assigned_user_id == ()",
               "script": "assign_by(\"round-robin\", \"Bench support\")"}),
        json!({"name": "bench urgent note", "hook": "case.created", "condition": "ticket.priority == \"Urgent\"",
               "script": "internal_note(`Urgent case #${ticket.number}`)"}),
        json!({"name": "bench portal", "hook": "case.created", "condition": "actor.is_portal",
               "script": "notify(team_users(\"Bench support\"), \"portal case\")"}),
        json!({"name": "bench problem follow-up", "hook": "case.updated",
               "condition": "\"status\" in changes && ticket.type == \"Problem\"",
               "script": "create_case(#{ name: `Review ${ticket.name}` })"}),
    ]
}

async fn rules(http: Http) -> anyhow::Result<()> {
    let client = client(http.concurrency)?;
    let base = http.url.trim_end_matches('/').to_string();
    let endpoint = format!("{base}/api/v1/cases");
    let without = baseline(&client, &endpoint, &http).await?;

    // The team the assignment rule spreads cases over.
    let run_id = chrono::Utc::now().timestamp_millis();
    let mut members = Vec::new();
    for i in 0..4 {
        let user: Value = client
            .post(format!("{base}/api/v1/users"))
            .bearer_auth(&http.key)
            .json(&json!({"username": format!("bench-agent-{run_id}-{i}"), "type": "agent", "password": format!("bench-password-{run_id}")}))
            .send()
            .await?
            .json()
            .await?;
        let Some(user_id) = user["id"].as_str() else { bail!("could not create an agent: {user}") };
        members.push(json!({"user_id": user_id}));
    }
    let team = client
        .post(format!("{base}/api/v1/teams"))
        .bearer_auth(&http.key)
        .json(&json!({"name": "Bench support", "members": members}))
        .send()
        .await?;
    if !team.status().is_success() {
        bail!("could not create the team: {}", team.text().await?);
    }
    let mut rule_ids = Vec::new();
    for rule in http_rules() {
        let response = client.post(format!("{base}/api/v1/rules")).bearer_auth(&http.key).json(&rule).send().await?;
        if !response.status().is_success() {
            bail!("could not create a rule: {}", response.text().await?);
        }
        let created: Value = response.json().await?;
        rule_ids.push(created["id"].as_str().unwrap_or_default().to_string());
    }
    let with = run(&client, &endpoint, &http, case_body).await?;
    with.print("cases created, 5 rules active");
    for id in rule_ids {
        client.delete(format!("{base}/api/v1/rules/{id}")).bearer_auth(&http.key).send().await?;
    }
    let ratio = with.throughput() / without.throughput();
    println!("with rules / without: {:.0}%", ratio * 100.0);
    with.check()
}
