//! `docket-bench listing`: the case list and search at a million cases.
//!
//! Creating a million cases over HTTP would take most of an hour on this
//! machine, so the cases are written straight into the running server's
//! database with one `INSERT ... SELECT` per batch (a realistic mix: most
//! closed, some open, spread over agents, priorities and types, with
//! names and descriptions drawn from helpdesk topics). The requests that
//! are timed then go through the HTTP API like any client's.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sqlx::Connection;

/// Cases written per statement (and per transaction).
const SEED_BATCH: u64 = 50_000;

/// Agents the seeded cases are assigned to.
const AGENTS: usize = 8;

/// Topics of the seeded cases: (a phrase for the name, a sentence for the
/// description). One case in twenty has each.
const TOPICS: [(&str, &str); 20] = [
    ("printer offline", "The printer on the second floor shows offline and will not print."),
    ("VPN drops", "The VPN connection drops every few minutes when on the hotel wifi."),
    ("invoice amount wrong", "The last invoice charges twice for the same licence."),
    ("password reset", "I cannot reset my password: the link in the email has expired."),
    ("laptop slow", "My laptop takes ten minutes to start and the fan never stops."),
    ("email bounces", "Mail to our partner bounces with a relay denied message."),
    ("new starter account", "Please create accounts for the new starter on Monday."),
    ("licence renewal", "Our licence runs out at the end of the month; how do we renew?"),
    ("report export fails", "Exporting the monthly report to spreadsheet fails halfway."),
    ("phone line noise", "The desk phones crackle during calls since the office move."),
    ("shared drive full", "The shared drive says it is full although we deleted old files."),
    ("calendar sync", "Meetings made on the phone do not appear in the desktop calendar."),
    ("monitor flickers", "The second monitor flickers when the laptop is docked."),
    ("order not delivered", "Order placed three weeks ago has still not arrived."),
    ("refund request", "We were charged for a cancelled subscription and want a refund."),
    ("login blocked", "My account is locked after the password change this morning."),
    ("backup failed", "Last night's backup job failed with a timeout on the database."),
    ("wifi weak", "The meeting room wifi is too weak for video calls."),
    ("software install", "Please install the drawing software on the design team's machines."),
    ("data import error", "Importing the customer list stops at row 2,000 with an encoding error."),
];

/// The list and search requests timed at a million cases: (what, query).
fn requests(agent_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("newest first, first page", "".to_string()),
        ("open cases", "open=true".to_string()),
        ("status New", "status=New".to_string()),
        ("one agent's cases", format!("assigned_user_id={agent_id}")),
        ("one agent's open cases, by priority", format!("assigned_user_id={agent_id}&open=true&sort=-priority")),
        ("page 2,000 (offset 40,000)", "offset=40000".to_string()),
        ("sorted by name", "sort=name".to_string()),
        ("search, a rare code (about 100 cases)", "q=E-4242".to_string()),
        ("search, a common word (5%)", "q=printer".to_string()),
        ("search, two words of a phrase", "q=shared+drive".to_string()),
        ("search, nothing matches", "q=zebra-crossing".to_string()),
        ("search by number", "q=%23500000".to_string()),
    ]
}

pub struct Listing {
    pub url: String,
    pub key: String,
    pub database_url: String,
    pub cases: u64,
    pub repeat: u32,
}

pub async fn run(args: Listing) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let base = args.url.trim_end_matches('/').to_string();
    let agents = create_agents(&client, &base, &args.key).await?;

    let started = Instant::now();
    let seeded = seed(&args.database_url, args.cases, &agents).await?;
    println!("seeded:         {seeded} cases in {:.0} s", started.elapsed().as_secs_f64());

    println!("repeats:        {} per request, after one untimed", args.repeat);
    println!("{:<42} {:>10} {:>10} {:>10}", "request", "p50 ms", "max ms", "total");
    for (what, query) in requests(&agents[0]) {
        let url = format!("{base}/api/v1/cases?limit=20&{query}");
        let (total, _) = timed_get(&client, &url, &args.key).await?;
        let mut times = Vec::new();
        for _ in 0..args.repeat {
            let (_, elapsed) = timed_get(&client, &url, &args.key).await?;
            times.push(elapsed);
        }
        times.sort();
        let p50 = times[times.len() / 2].as_secs_f64() * 1e3;
        let max = times.last().copied().unwrap_or_default().as_secs_f64() * 1e3;
        println!("{what:<42} {p50:>10.1} {max:>10.1} {total:>10}");
    }
    Ok(())
}

async fn timed_get(client: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<(i64, Duration)> {
    let started = Instant::now();
    let response = client.get(url).bearer_auth(key).send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    let elapsed = started.elapsed();
    if !status.is_success() {
        bail!("{url}: {status} {body}");
    }
    Ok((body["total"].as_i64().unwrap_or(-1), elapsed))
}

async fn create_agents(client: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<Vec<String>> {
    let run_id = chrono::Utc::now().timestamp_millis();
    let mut ids = Vec::new();
    for i in 0..AGENTS {
        let user: Value = client
            .post(format!("{base}/api/v1/users"))
            .bearer_auth(key)
            .json(&json!({"username": format!("list-agent-{run_id}-{i}"), "type": "agent", "password": format!("bench-password-{run_id}")}))
            .send()
            .await?
            .json()
            .await?;
        ids.push(user["id"].as_str().with_context(|| format!("could not create an agent: {user}"))?.to_string());
    }
    Ok(ids)
}

/// Writes `count` cases after the server's highest number, in batches,
/// and moves the case counter past them. Returns how many were written.
async fn seed(database_url: &str, count: u64, agents: &[String]) -> anyhow::Result<u64> {
    let postgres = database_url.starts_with("postgres");
    let statement = insert_statement(postgres);
    let mut written = 0;
    if postgres {
        let mut db = sqlx::PgConnection::connect(database_url).await.context("connecting to PostgreSQL")?;
        while written < count {
            let batch = SEED_BATCH.min(count - written);
            let mut tx = db.begin().await?;
            let base: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'case_number' FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
            let mut query = sqlx::query(&statement).bind(batch as i64).bind(base);
            for agent in agents {
                query = query.bind(agent.as_str());
            }
            query.execute(&mut *tx).await?;
            sqlx::query("UPDATE counters SET value = value + $1 WHERE name = 'case_number'")
                .bind(batch as i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            written += batch;
            eprint!("\rseeding: {written} of {count}");
        }
        // What autovacuum does shortly after such a load: statistics for
        // the planner, and the visibility map that lets counts read only
        // the indexes.
        eprint!("\rseeding: vacuuming                ");
        sqlx::query("VACUUM ANALYZE cases").execute(&mut db).await?;
    } else {
        let mut db = sqlx::SqliteConnection::connect(database_url).await.context("opening the SQLite database")?;
        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut db).await?;
        while written < count {
            let batch = SEED_BATCH.min(count - written);
            let mut tx = db.begin_with("BEGIN IMMEDIATE").await?;
            let base: i64 =
                sqlx::query_scalar("SELECT value FROM counters WHERE name = 'case_number'").fetch_one(&mut *tx).await?;
            let mut query = sqlx::query(&statement).bind(batch as i64).bind(base);
            for agent in agents {
                query = query.bind(agent.as_str());
            }
            query.execute(&mut *tx).await?;
            sqlx::query("UPDATE counters SET value = value + $1 WHERE name = 'case_number'")
                .bind(batch as i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            written += batch;
            eprint!("\rseeding: {written} of {count}");
        }
        // The server adds new cases to SQLite's text index in the
        // background; the figures are for a server that has caught up.
        // (Servers before migration 0017 have no such index.)
        let newest: i64 =
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'case_number'").fetch_one(&mut db).await?;
        let has_index: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'case_search_state'")
            .fetch_one(&mut db)
            .await?;
        if has_index > 0 {
            loop {
                let indexed: i64 =
                    sqlx::query_scalar("SELECT indexed_upto FROM case_search_state").fetch_one(&mut db).await?;
                eprint!("\rindexing: {indexed} of {newest}      ");
                if indexed >= newest {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    eprintln!();
    Ok(written)
}

/// The batch insert: `$1` cases numbered after `$2`, assigned among the
/// agents `$3..`. Statuses follow a helpdesk with history: 70% Closed,
/// 10% New (unassigned), 10% Assigned, 5% Pending, 5% Rejected. Topic,
/// status, agent, priority and type come from different digits of the
/// number, so that they do not go together (every printer case Closed).
fn insert_statement(postgres: bool) -> String {
    let topics: Vec<String> = TOPICS
        .iter()
        .enumerate()
        .map(|(i, (name, text))| format!("({i}, '{}', '{}')", name.replace('\'', "''"), text.replace('\'', "''")))
        .collect();
    let agent = (0..AGENTS).map(|i| format!("WHEN {i} THEN ${}", i + 3)).collect::<Vec<_>>().join(" ");
    let columns = "id, number, name, status, priority, case_type, description, is_internal, assigned_user_id, \
                   created_at, created_by_id, modified_at, modified_by_id, stream_updated_at, version";
    // Created one minute apart in number order, from 2024.
    let (numbers, id, at, internal, text) = if postgres {
        (
            "generate_series(1, $1::bigint) AS seq(n)",
            "'5eed' || lpad(to_hex($2 + n), 28, '0')",
            "TIMESTAMPTZ '2024-01-01 00:00:00+00' + make_interval(mins => ($2 + n)::int)",
            "FALSE",
            "::text",
        )
    } else {
        (
            "seq",
            "printf('5eed%028x', $2 + n)",
            "strftime('%Y-%m-%dT%H:%M:%f+00:00', '2024-01-01', '+' || ($2 + n) || ' minutes')",
            "0",
            "",
        )
    };
    let with = if postgres {
        "WITH".to_string()
    } else {
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $1),".to_string()
    };
    format!(
        "{with} topics(i, name, text) AS (VALUES {topics}) \
         INSERT INTO cases ({columns}) \
         SELECT {id}, $2 + n, \
           'Seeded case ' || ($2 + n){text} || ': ' || t.name || ' at site ' || (n % 997){text}, \
           CASE WHEN n / 20 % 20 < 14 THEN 'Closed' WHEN n / 20 % 20 < 16 THEN 'New' \
                WHEN n / 20 % 20 < 18 THEN 'Assigned' WHEN n / 20 % 20 = 18 THEN 'Pending' ELSE 'Rejected' END, \
           CASE n / 3 % 4 WHEN 0 THEN 'Low' WHEN 1 THEN 'Normal' WHEN 2 THEN 'High' ELSE 'Urgent' END, \
           CASE n / 11 % 3 WHEN 0 THEN 'Question' WHEN 1 THEN 'Incident' ELSE 'Problem' END, \
           'Reported by customer ' || (n % 5003){text} || '. ' || t.text || ' Error code E-' || (n % 10007){text} \
             || '. Tried so far: a restart, the cables, the latest driver.', \
           {internal}, \
           CASE WHEN n / 20 % 20 IN (14, 15) THEN NULL ELSE CASE n / 7 % {AGENTS} {agent} END END, \
           {at}, 'system', {at}, 'system', {at}, 1 \
         FROM {numbers} JOIN topics t ON t.i = n % 20",
        topics = topics.join(", "),
    )
}
