//! Job workers: they lease due jobs from the database queue, run them and
//! record the outcome. Several nodes may run workers on one PostgreSQL;
//! the lease keeps each job on one worker at a time.

use std::time::Duration;

use docket_store::{EMAIL_NOTIFICATION_JOB, Job, JobOutcome};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::AppState;

/// Workers per node.
const WORKERS: usize = 2;
/// How long a job may run before another worker may take it over.
const LEASE: Duration = Duration::from_secs(120);
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
    Workers { stop, tasks }
}

async fn work(state: AppState, worker: String, mut stopped: watch::Receiver<bool>) {
    loop {
        if *stopped.borrow() {
            return;
        }
        match state.store.claim_job(&worker, LEASE).await {
            Ok(Some(job)) => {
                // A run must end before its lease does, or another worker
                // would start the same job.
                let outcome = match tokio::time::timeout(LEASE - Duration::from_secs(10), run(&state, &job)).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        JobOutcome::Retry(format!("timed out after {} s", (LEASE - Duration::from_secs(10)).as_secs()))
                    }
                };
                match &outcome {
                    JobOutcome::Done => tracing::debug!(job = %job.id, kind = %job.kind, "job done"),
                    JobOutcome::Retry(error) => {
                        tracing::warn!(job = %job.id, kind = %job.kind, %error, "job will retry")
                    }
                    JobOutcome::Permanent(error) => {
                        tracing::error!(job = %job.id, kind = %job.kind, %error, "job failed")
                    }
                }
                if let Err(error) = state.store.finish_job(&job, &worker, &outcome).await {
                    tracing::error!(%error, job = %job.id, "could not record a job's outcome; its lease will expire");
                }
                continue;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "could not claim a job"),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = state.jobs_wakeup.notified() => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Runs one job by kind.
async fn run(state: &AppState, job: &Job) -> JobOutcome {
    match job.kind.as_str() {
        EMAIL_NOTIFICATION_JOB => crate::mail::send_notification(state, job).await,
        other => JobOutcome::Permanent(format!("unknown job kind `{other}`")),
    }
}
