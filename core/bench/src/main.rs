//! `docket-bench`: creates N cases over HTTP at concurrency C against a
//! running Docket and prints throughput and latency percentiles.
//!
//! The load generator runs on the same machine as the server in our
//! figures; it competes for the same cores, so the numbers are a floor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
#[command(name = "docket-bench", about = "Create cases over HTTP and measure throughput and latency")]
struct Args {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key to act with (needs case create rights).
    #[arg(long, env = "DOCKET_API_KEY", hide_env_values = true)]
    key: String,
    /// How many cases to create.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    cases: u64,
    /// How many requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 16)]
    concurrency: u64,
    /// Requests sent before measuring (connection set-up, caches).
    #[arg(long, default_value_t = 200)]
    warmup: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 || args.cases == 0 {
        bail!("--cases and --concurrency must be positive");
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .timeout(Duration::from_secs(30))
        .build()?;
    let endpoint = format!("{}/api/v1/cases", args.url.trim_end_matches('/'));

    // Warm-up: also checks the key and the URL before the clock starts.
    for i in 0..args.warmup {
        let response = create(&client, &endpoint, &args.key, i).await.context("warm-up request")?;
        if response != 201 {
            bail!("warm-up request answered {response}: check --url and --key");
        }
    }

    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, endpoint, key) = (client.clone(), endpoint.clone(), args.key.clone());
        let (next, failures) = (next.clone(), failures.clone());
        let total = args.cases;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return latencies;
                }
                let sent = Instant::now();
                match create(&client, &endpoint, &key, i).await {
                    Ok(201) => latencies.push(sent.elapsed()),
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(args.cases as usize);
    for worker in workers {
        latencies.extend(worker.await?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let ok = latencies.len();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((p / 100.0) * (latencies.len() - 1) as f64).round() as usize;
        latencies[index].as_secs_f64() * 1000.0
    };
    println!("cases created:  {ok} ({} failed)", failures.load(Ordering::Relaxed));
    println!("concurrency:    {}", args.concurrency);
    println!("elapsed:        {:.2} s", elapsed.as_secs_f64());
    println!("throughput:     {:.0} cases/s", ok as f64 / elapsed.as_secs_f64());
    println!("latency p50:    {:.2} ms", percentile(50.0));
    println!("latency p90:    {:.2} ms", percentile(90.0));
    println!("latency p99:    {:.2} ms", percentile(99.0));
    println!("latency max:    {:.2} ms", percentile(100.0));
    if failures.load(Ordering::Relaxed) > 0 {
        bail!("some requests failed");
    }
    Ok(())
}

async fn create(client: &reqwest::Client, endpoint: &str, key: &str, i: u64) -> anyhow::Result<u16> {
    let priority = ["Low", "Normal", "High", "Urgent"][(i % 4) as usize];
    let body = json!({
        "name": format!("Benchmark case {i}: printer on floor {} is offline", i % 40),
        "description": "Created by docket-bench. The printer shows error E-42 and will not print.",
        "priority": priority,
        "type": "Incident",
    });
    let response = client.post(endpoint).bearer_auth(key).json(&body).send().await?;
    let status = response.status().as_u16();
    // Read the body so the connection is reused.
    let _ = response.bytes().await?;
    Ok(status)
}
