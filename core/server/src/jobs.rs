//! Job workers: they lease due jobs from the database queue, run them and
//! record the outcome. Several nodes may run workers on one PostgreSQL;
//! the lease keeps each job on one worker at a time.

use std::time::Duration;

use docket_store::{
    ACCOUNT_EMAIL_JOB, AUTO_REPLY_JOB, EMAIL_NOTIFICATION_JOB, EMAIL_REPLY_JOB, Job, JobOutcome, RULE_EMAIL_JOB,
    RULE_HTTP_JOB, RULE_SCHEDULE_JOB, WEB_FORM_CONFIRMATION_JOB,
};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::AppState;

/// Workers per node.
const WORKERS: usize = 2;
/// How long a job (with the rest of its batch) may run before another
/// worker may take it over.
const LEASE: Duration = Duration::from_secs(120);
/// Jobs leased at once: fewer round trips to the database per job.
const BATCH: i64 = 8;
/// How often idle workers look for due jobs (delayed jobs become due
/// without anyone waking the workers).
const POLL: Duration = Duration::from_secs(1);

/// Running workers; `stop` lets the current jobs finish.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Workers {
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

pub fn start(state: AppState) -> Workers {
    let (stop, stopped) = watch::channel(false);
    let node = format!("{}-{}", std::process::id(), docket_domain::ids::new_id());
    let mut tasks = JoinSet::new();
    for index in 0..WORKERS {
        let state = state.clone();
        let stopped = stopped.clone();
        let worker = format!("{node}-{index}");
        tasks.spawn(async move { work(state, worker, stopped).await });
    }
    let fetcher_state = state.clone();
    let fetcher_stopped = stopped.clone();
    tasks.spawn(async move { crate::fetcher::supervise(fetcher_state, node, fetcher_stopped).await });
    let scheduler_state = state.clone();
    tasks.spawn(async move { crate::rule_jobs::scheduler(scheduler_state, stopped).await });
    Workers { stop, tasks }
}

async fn work(state: AppState, worker: String, mut stopped: watch::Receiver<bool>) {
    loop {
        if *stopped.borrow() {
            return;
        }
        match state.store.claim_jobs(&worker, LEASE, BATCH).await {
            Ok(jobs) if !jobs.is_empty() => {
                let leased_at = tokio::time::Instant::now();
                for job in jobs {
                    // Later jobs of a batch run only while their lease has
                    // time left; the rest expire and are claimed again.
                    let left = LEASE.saturating_sub(leased_at.elapsed());
                    if left < Duration::from_secs(30) {
                        break;
                    }
                    run_and_record(&state, &worker, &job, left - Duration::from_secs(10)).await;
                }
                continue;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not claim jobs"),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = state.jobs_wakeup.notified() => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Runs one leased job and records its outcome. The run must end within
/// `budget`, before its lease does, or another worker would start it too.
async fn run_and_record(state: &AppState, worker: &str, job: &Job, budget: Duration) {
    let outcome = match tokio::time::timeout(budget, run(state, job)).await {
        Ok(outcome) => outcome,
        Err(_) => JobOutcome::Retry(format!("timed out after {} s", budget.as_secs())),
    };
    match &outcome {
        JobOutcome::Done => tracing::debug!(job = %job.id, kind = %job.kind, "job done"),
        JobOutcome::Retry(error) => tracing::warn!(job = %job.id, kind = %job.kind, %error, "job will retry"),
        JobOutcome::Permanent(error) => tracing::error!(job = %job.id, kind = %job.kind, %error, "job failed"),
    }
    if let Err(error) = state.store.finish_job(job, worker, &outcome).await {
        tracing::error!(%error, job = %job.id, "could not record a job's outcome; its lease will expire");
    }
}

/// Runs one job by kind.
async fn run(state: &AppState, job: &Job) -> JobOutcome {
    match job.kind.as_str() {
        EMAIL_NOTIFICATION_JOB => crate::mail::send_notification(state, job).await,
        RULE_SCHEDULE_JOB => crate::rule_jobs::run_schedule(state, job).await,
        RULE_EMAIL_JOB => crate::rule_jobs::send_email(state, job).await,
        RULE_HTTP_JOB => crate::rule_jobs::send_http(state, job).await,
        AUTO_REPLY_JOB => crate::mail::send_auto_reply(state, job).await,
        EMAIL_REPLY_JOB => crate::mail::send_email_reply(state, job).await,
        ACCOUNT_EMAIL_JOB => crate::mail::send_account_email(state, job).await,
        WEB_FORM_CONFIRMATION_JOB => crate::mail::send_web_form_confirmation(state, job).await,
        other => JobOutcome::Permanent(format!("unknown job kind `{other}`")),
    }
}
