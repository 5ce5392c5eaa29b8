//! The durable job queue: anything that leaves the process (email,
//! webhooks) or happens later (delayed notifications) is a job.
//!
//! Jobs are enqueued inside the transaction of the change that causes them,
//! so a rolled-back change leaves no job and a committed one always has
//! its job. Workers lease a job before running it: while the lease holds no
//! other worker (on any node) takes it; a worker that dies lets its lease
//! run out and the job runs again (at-least-once, so handlers are
//! idempotent). Each finish reports a typed outcome.

use std::time::Duration;

use chrono::{DateTime, Utc};
use docket_domain::Actor;
use docket_domain::ids::{looks_like_id, new_id};
use docket_domain::listing::{Page, Window};
use serde::Serialize;
use tracing::instrument;

use crate::cases::page_window;
use crate::db::{Backend, Row, Sql, Tx};
use crate::users::require_admin;
use crate::{Result, Store, StoreError, now};

/// Attempts before a retried job is given up.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 8;

/// A job as workers and the admin area see it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    /// A temporary failure: run again later, with back-off.
    Retry(String),
    /// A failure that will not heal by itself: stop.
    Permanent(String),
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    pub payload: serde_json::Value,
    pub run_at: DateTime<Utc>,
    /// Enqueuing the same key twice makes one job.
    pub idempotency_key: Option<String>,
}

/// Writes a job in the caller's transaction.
pub(crate) async fn enqueue(tx: &mut Tx, job: &NewJob) -> Result<()> {
    tx.query(
        "INSERT INTO jobs (id, kind, payload, idempotency_key, status, attempts, max_attempts, run_at, created_at) \
         VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(new_id())
    .bind(job.kind)
    .bind(job.payload.to_string())
    .bind(job.idempotency_key.as_deref())
    .bind(DEFAULT_MAX_ATTEMPTS)
    .bind(job.run_at)
    .bind(now())
    .execute()
    .await?;
    Ok(())
}

/// The time all nodes agree on: PostgreSQL's clock (node clocks may
/// drift, and leases must not); SQLite has one node.
async fn database_now(tx: &mut Tx) -> Result<DateTime<Utc>> {
    match tx.backend() {
        Backend::Postgres => tx.query("SELECT CURRENT_TIMESTAMP AS now").fetch_one().await?.get("now"),
        Backend::Sqlite => Ok(now()),
    }
}

/// Back-off after `attempts` failed runs: `base` (15 s by default), then
/// doubling, capped at one hour.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let exponent = u32::try_from(attempts.clamp(1, 12) - 1).unwrap_or(0);
    base.saturating_mul(1 << exponent).min(Duration::from_secs(3600))
}

impl Store {
    /// Enqueues a job on its own (for jobs not tied to a change).
    #[instrument(level = "debug", skip_all)]
    pub async fn enqueue_job(&self, job: &NewJob) -> Result<()> {
        let mut tx = self.pools.write().await?;
        enqueue(&mut tx, job).await?;
        tx.commit().await
    }

    /// Leases the next due job for `worker`, or `None`.
    pub async fn claim_job(&self, worker: &str, lease: Duration) -> Result<Option<Job>> {
        Ok(self.claim_jobs(worker, lease, 1).await?.pop())
    }

    /// Leases up to `limit` due jobs for `worker`, oldest first.
    #[instrument(level = "debug", skip_all)]
    pub async fn claim_jobs(&self, worker: &str, lease: Duration, limit: i64) -> Result<Vec<Job>> {
        let mut tx = self.pools.write().await?;
        let at = database_now(&mut tx).await?;
        let until = at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        // A job whose lease ran out after its last attempt (its worker died
        // or hung) fails instead of running forever.
        tx.query(
            "UPDATE jobs SET status = 'failed', finished_at = $1, \
             last_error = COALESCE(last_error, 'the worker stopped answering (lease expired) on the last attempt') \
             WHERE status = 'running' AND leased_until < $1 AND attempts >= max_attempts",
        )
        .bind(at)
        .execute()
        .await?;
        // PostgreSQL: SKIP LOCKED lets workers on several nodes claim
        // different jobs at once. SQLite: the single writer serialises claims.
        let lock = match tx.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, leased_until = $1, leased_by = $2 \
             WHERE id IN (SELECT id FROM jobs WHERE run_at <= $3 \
             AND (status = 'queued' OR (status = 'running' AND leased_until < $3)) \
             ORDER BY run_at, id LIMIT $4{lock}) RETURNING *"
        );
        let rows = tx.query(&sql).bind(until).bind(worker).bind(at).bind(limit.max(1)).fetch_all().await?;
        tx.commit().await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        jobs.sort_by(|a, b| (a.run_at, &a.id).cmp(&(b.run_at, &b.id)));
        Ok(jobs)
    }

    /// Records how a run ended. A worker whose lease was taken over (it ran
    /// too long) changes nothing.
    #[instrument(level = "debug", skip_all)]
    pub async fn finish_job(&self, job: &Job, worker: &str, outcome: &JobOutcome) -> Result<()> {
        // One statement: no transaction needed around it.
        let mut tx = self.pools.write_autocommit().await?;
        let at = database_now(&mut tx).await?;
        let (status, run_at, error) = match outcome {
            JobOutcome::Done => ("done", job.run_at, None),
            JobOutcome::Retry(error) if job.attempts < job.max_attempts => {
                let delay = chrono::Duration::from_std(backoff(self.job_retry_base, job.attempts))
                    .unwrap_or(chrono::Duration::hours(1));
                ("queued", at + delay, Some(error.as_str()))
            }
            JobOutcome::Retry(error) | JobOutcome::Permanent(error) => ("failed", job.run_at, Some(error.as_str())),
        };
        let finished = if status == "queued" { None } else { Some(at) };
        tx.query(
            "UPDATE jobs SET status = $1, run_at = $2, last_error = $3, finished_at = $4, leased_until = NULL \
             WHERE id = $5 AND leased_by = $6 AND attempts = $7 AND status = 'running'",
        )
        .bind(status)
        .bind(run_at)
        .bind(error)
        .bind(finished)
        .bind(job.id.as_str())
        .bind(worker)
        .bind(job.attempts)
        .execute()
        .await?;
        tx.commit().await
    }

    /// Jobs for the admin area, newest first; `status` filters.
    #[instrument(level = "debug", skip_all)]
    pub async fn list_jobs(&self, actor: &Actor, status: Option<&str>, window: Window) -> Result<Page<Job>> {
        require_admin(actor, "see jobs")?;
        let mut tx = self.pools.read().await?;
        let mut condition = Sql::new(" WHERE 1 = 1");
        if let Some(status) = status {
            condition.push(" AND status = ").value(status);
        }
        let total: i64 = tx
            .built(&crate::cases::prefixed("SELECT COUNT(*) AS total FROM jobs", &condition))
            .fetch_one()
            .await?
            .get("total")?;
        let mut select = crate::cases::prefixed("SELECT * FROM jobs", &condition);
        select.push(" ORDER BY created_at DESC, id DESC");
        page_window(&mut select, window);
        let items = tx.built(&select).fetch_all().await?.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(Page { items, total })
    }

    /// Puts a failed job back in the queue with fresh attempts (admins).
    #[instrument(level = "debug", skip_all)]
    pub async fn retry_job(&self, actor: &Actor, id: &str) -> Result<()> {
        require_admin(actor, "retry jobs")?;
        if !looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.write().await?;
        let changed = tx
            .query(
                "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $1, last_error = NULL, finished_at = NULL \
                 WHERE id = $2 AND status = 'failed'",
            )
            .bind(now())
            .bind(id)
            .execute()
            .await?;
        if changed == 0 {
            return Err(StoreError::invalid("id", "only failed jobs can be retried"));
        }
        tx.commit().await
    }
}

fn job_from_row(row: &Row) -> Result<Job> {
    let payload: String = row.get("payload")?;
    Ok(Job {
        id: row.get("id")?,
        kind: row.get("kind")?,
        payload: serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(format!("job payload: {e}")))?,
        status: row.get("status")?,
        attempts: row.get("attempts")?,
        max_attempts: row.get("max_attempts")?,
        run_at: row.get("run_at")?,
        last_error: row.get("last_error")?,
        created_at: row.get("created_at")?,
        finished_at: row.get("finished_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(15);
        assert_eq!(backoff(base, 1), Duration::from_secs(15));
        assert_eq!(backoff(base, 2), Duration::from_secs(30));
        assert_eq!(backoff(base, 5), Duration::from_secs(240));
        assert_eq!(backoff(base, 40), Duration::from_secs(3600));
    }
}
