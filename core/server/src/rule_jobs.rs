//! The jobs rules leave behind: emails and HTTP requests (performed after
//! the change that asked for them committed), scheduled ticks, and the
//! loop that enqueues those ticks.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use docket_domain::Actor;
use docket_email::{OutgoingEmail, SendError};
use docket_store::{Job, JobOutcome, StoreError};
use serde::Deserialize;
use tokio::sync::watch;

use crate::api::rules::HTTP_ALLOW_PRIVATE_SETTING;
use crate::app::AppState;

/// How often each node looks for scheduled rules that are due. Ticks are
/// taken by one node only (see `Store::schedule_due_rules`).
const SCHEDULER_POLL: Duration = Duration::from_secs(2);

/// How often each node trims the rule run log.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Enqueues due scheduled rules until `stopped`; once an hour trims the
/// rule run log to `DOCKET_RULE_RUNS_DAYS` and archives knowledge-base
/// articles past their expiration date.
pub async fn scheduler(state: AppState, mut stopped: watch::Receiver<bool>) {
    let mut next_prune = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_prune {
            next_prune += PRUNE_EVERY;
            let before = chrono::Utc::now() - chrono::Duration::days(state.config.rule_runs_days);
            match state.store.prune_rule_runs(before).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "pruned old rule runs"),
                Err(error) => tracing::warn!(%error, "could not prune rule runs"),
            }
            match state.store.archive_expired_articles(chrono::Utc::now().date_naive()).await {
                Ok(0) => {}
                Ok(archived) => tracing::info!(archived, "archived expired knowledge-base articles"),
                Err(error) => tracing::warn!(%error, "could not archive expired articles"),
            }
        }
        match state.store.schedule_due_rules().await {
            Ok(0) => {}
            Ok(enqueued) => {
                tracing::debug!(enqueued, "scheduled rules due");
                state.jobs_wakeup.notify_waiters();
            }
            Err(error) => tracing::warn!(%error, "could not check scheduled rules"),
        }
        tokio::select! {
            () = tokio::time::sleep(SCHEDULER_POLL) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// `rule_schedule`: one tick of a scheduled rule.
pub async fn run_schedule(state: &AppState, job: &Job) -> JobOutcome {
    let Some(rule_id) = job.payload["rule_id"].as_str() else {
        return JobOutcome::Permanent("payload has no rule_id".into());
    };
    match state.store.run_scheduled_rule(rule_id).await {
        Ok(run) => {
            tracing::info!(rule_id, cases = run.cases, capped = run.capped, "scheduled rule ran");
            JobOutcome::Done
        }
        // Deleted since the tick was taken: nothing to do.
        Err(StoreError::NotFound) => JobOutcome::Done,
        Err(StoreError::Invalid(errors)) => JobOutcome::Permanent(errors.summary()),
        Err(error) => JobOutcome::Retry(error.to_string()),
    }
}

#[derive(Deserialize)]
struct EmailPayload {
    case_id: Option<String>,
    rule: String,
    to: Vec<String>,
    subject: String,
    body: String,
}

/// `rule_email`: sends the rule's email, one per recipient, with the
/// case's `[#number]` tag in the subject.
pub async fn send_email(state: &AppState, job: &Job) -> JobOutcome {
    let payload: EmailPayload = match serde_json::from_value(job.payload.clone()) {
        Ok(payload) => payload,
        Err(error) => return JobOutcome::Permanent(format!("bad payload: {error}")),
    };
    let settings = match crate::mail::job_sender(state).await {
        Ok(settings) => settings,
        Err(outcome) => return outcome,
    };
    let case = match &payload.case_id {
        Some(id) => match state.store.get_case(&Actor::system(), id).await {
            Ok(case) => Some(case),
            Err(StoreError::NotFound) => return JobOutcome::Permanent("the case was deleted".into()),
            Err(error) => return JobOutcome::Retry(error.to_string()),
        },
        None => None,
    };
    // The script composed the subject and body (with rhai's `${...}`):
    // they are sent as they are, never rendered as templates, so text a
    // customer wrote cannot become template code.
    let (mut subject, body) = (payload.subject.lines().collect::<Vec<_>>().join(" "), payload.body.clone());
    let domain = crate::mail::message_domain(&settings);
    if let Some(case) = &case {
        // Every outgoing mail keeps the [#number] tag, so replies thread.
        let tag = format!("[#{}]", case.number);
        if !subject.contains(&tag) {
            subject = format!("{tag} {subject}");
        }
    }
    for (index, to) in payload.to.iter().enumerate() {
        let thread = case.as_ref().map(|c| format!("case-{}", c.id)).unwrap_or_else(|| "rule".into());
        let email = OutgoingEmail {
            to_address: to.clone(),
            to_name: None,
            subject: subject.clone(),
            text_body: body.clone(),
            message_id: format!("{thread}.rule-{}.{index}@{domain}", job.id),
            in_reply_to: case.as_ref().map(|c| format!("case-{}@{domain}", c.id)),
            reply_to: None,
            headers: vec![("Auto-Submitted", "auto-generated".into()), ("X-Auto-Response-Suppress", "All".into())],
            ..Default::default()
        };
        match docket_email::send(&settings, &email).await {
            Ok(()) => {}
            // A retry sends again to recipients before this one: email is
            // at-least-once, like every job.
            Err(SendError::Temporary(error)) => return JobOutcome::Retry(error),
            Err(SendError::Permanent(error)) => {
                return JobOutcome::Permanent(format!("rule {}: to {to}: {error}", payload.rule));
            }
        }
    }
    JobOutcome::Done
}

#[derive(Deserialize)]
struct HttpPayload {
    delivery_id: String,
    rule: String,
    method: String,
    url: String,
    headers: std::collections::BTreeMap<String, String>,
    body: Option<String>,
    timeout_seconds: u64,
}

/// Addresses a rule may not reach unless the admin allowed private
/// targets: loopback, private ranges, link-local (cloud metadata), CGNAT,
/// unspecified, broadcast and multicast.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (b & 0xc0) == 64)
                || (a == 198 && (b & 0xfe) == 18)
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let first = segments[0];
            // Forms that embed an IPv4 address (mapped, compatible, NAT64,
            // 6to4) are judged by it, or refused when it cannot be told.
            let embedded = |v4: std::net::Ipv4Addr| is_private(IpAddr::V4(v4));
            let compatible = segments[..6] == [0; 6];
            let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            let tail = std::net::Ipv4Addr::new(
                (segments[6] >> 8) as u8,
                segments[6] as u8,
                (segments[7] >> 8) as u8,
                segments[7] as u8,
            );
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || first == 0x2002
                || v6.to_ipv4_mapped().is_some_and(embedded)
                || ((compatible || nat64) && embedded(tail))
        }
    }
}

/// `rule_http`: the request a rule asked for. The host is resolved once,
/// checked against the address policy, and the request goes to exactly
/// that address (no redirects), so DNS cannot swap in an internal one.
pub async fn send_http(state: &AppState, job: &Job) -> JobOutcome {
    let payload: HttpPayload = match serde_json::from_value(job.payload.clone()) {
        Ok(payload) => payload,
        Err(error) => return JobOutcome::Permanent(format!("bad payload: {error}")),
    };
    let url = match reqwest::Url::parse(&payload.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        _ => return JobOutcome::Permanent(format!("rule {}: not an http(s) URL: {}", payload.rule, payload.url)),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let Some(raw_host) = url.host_str() else {
        return JobOutcome::Permanent("the URL has no host".into());
    };
    // IP literals (IPv6 ones in brackets) are checked as they are; names
    // are resolved once.
    let literal = raw_host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
    let (host, addresses): (String, Vec<SocketAddr>) = match literal {
        Some(ip) => (ip.to_string(), vec![SocketAddr::new(ip, port)]),
        None => match tokio::net::lookup_host((raw_host, port)).await {
            Ok(found) => (raw_host.to_string(), found.collect()),
            Err(error) => return JobOutcome::Retry(format!("cannot resolve {raw_host}: {error}")),
        },
    };
    let allow_private =
        matches!(state.store.setting(HTTP_ALLOW_PRIVATE_SETTING).await, Ok(Some(serde_json::Value::Bool(true))));
    let Some(address) = addresses.iter().find(|a| allow_private || !is_private(a.ip())).copied() else {
        return JobOutcome::Permanent(format!(
            "rule {}: {host} resolves only to private or loopback addresses, which rules may not reach \
             (admin area, Rules settings, to allow them)",
            payload.rule
        ));
    };
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(payload.timeout_seconds.clamp(1, 60)))
        .resolve(&host, address)
        // A proxy from the environment would reach the target itself,
        // around the address check.
        .no_proxy()
        .user_agent(concat!("Docket/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => return JobOutcome::Permanent(format!("cannot build an HTTP client: {error}")),
    };
    let method = match reqwest::Method::from_bytes(payload.method.as_bytes()) {
        Ok(method) => method,
        Err(_) => return JobOutcome::Permanent(format!("bad method {}", payload.method)),
    };
    let mut request = client.request(method, url).header("X-Docket-Delivery", &payload.delivery_id);
    for (name, value) in &payload.headers {
        request = request.header(name, value);
    }
    if let Some(body) = payload.body {
        let json = serde_json::from_str::<serde_json::Value>(&body).is_ok();
        if json && !payload.headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
            request = request.header("Content-Type", "application/json");
        }
        request = request.body(body);
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => JobOutcome::Done,
        Ok(response) if response.status().is_server_error() || response.status().as_u16() == 429 => {
            JobOutcome::Retry(format!("{} answered {}", host, response.status()))
        }
        Ok(response) => {
            JobOutcome::Permanent(format!("rule {}: {} answered {}", payload.rule, host, response.status()))
        }
        Err(error) => JobOutcome::Retry(format!("rule {}: {}", payload.rule, crate::error::error_chain(&error))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_private() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().expect("ip")), "{ip}");
        }
    }
}
