//! Prometheus metrics: request counts and latencies per route, plus a few
//! domain counters. Hand-rolled: a handful of atomics and one small map
//! need no metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 11] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    total: u64,
}

pub struct Metrics {
    started: Instant,
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    pub cases_created: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            requests: Mutex::default(),
            latency: Mutex::default(),
            cases_created: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        {
            let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            *requests.entry((method.to_string(), route.to_string(), status)).or_insert(0) += 1;
        }
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let histogram = latency.entry(route.to_string()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                histogram.counts[i] += 1;
            }
        }
        histogram.sum += seconds;
        histogram.total += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, backend: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP docket_up Whether the server is running.\n# TYPE docket_up gauge");
        let _ = writeln!(out, "docket_up{{backend=\"{backend}\"}} 1");
        let _ = writeln!(out, "# HELP docket_uptime_seconds Seconds since start.\n# TYPE docket_uptime_seconds gauge");
        let _ = writeln!(out, "docket_uptime_seconds {}", self.started.elapsed().as_secs_f64());
        let _ = writeln!(
            out,
            "# HELP docket_cases_created_total Cases created by this node.\n# TYPE docket_cases_created_total counter"
        );
        let _ = writeln!(out, "docket_cases_created_total {}", self.cases_created.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP docket_http_requests_total HTTP requests by route and status.\n# TYPE docket_http_requests_total counter"
        );
        for ((method, route, status), count) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "docket_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP docket_http_request_duration_seconds HTTP latency by route.\n# TYPE docket_http_request_duration_seconds histogram"
        );
        for (route, histogram) in self.latency.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                let _ = writeln!(
                    out,
                    "docket_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "docket_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                histogram.total
            );
            let _ = writeln!(out, "docket_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", histogram.sum);
            let _ =
                writeln!(out, "docket_http_request_duration_seconds_count{{route=\"{route}\"}} {}", histogram.total);
        }
        out
    }
}

/// Middleware: times every request under its route pattern (never the raw
/// path, which would make one series per case id).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Only standard methods become labels: arbitrary ones would grow the
    // series without bound.
    let method = match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m.to_string(),
        _ => "OTHER".to_string(),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    state.metrics.record(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let metrics = Metrics::default();
        metrics.record("GET", "/api/v1/cases", 200, Duration::from_millis(3));
        metrics.record("GET", "/api/v1/cases", 200, Duration::from_millis(30));
        let text = metrics.render("sqlite");
        assert!(text.contains("docket_http_requests_total{method=\"GET\",route=\"/api/v1/cases\",status=\"200\"} 2"));
        assert!(text.contains("docket_http_request_duration_seconds_bucket{route=\"/api/v1/cases\",le=\"0.005\"} 1"));
        assert!(text.contains("docket_http_request_duration_seconds_count{route=\"/api/v1/cases\"} 2"));
    }
}
