//! The rule run log's write path.
//!
//! A change writes its runs to `rule_run_queue`, in its own transaction: on
//! SQLite one B-tree, where `rule_runs` has five (the table and its id,
//! case, rule and time indexes), and each B-tree a commit touches is a page
//! of the write-ahead log written while the single writer is held. A
//! background task moves the queued runs into `rule_runs` in batches, twice
//! a second, so each `rule_runs` index is touched once per batch instead of
//! once per change. Reads of the log move what is queued first, so the log
//! never looks behind. Nothing is lost: a run is in one table or the other,
//! and each move is one transaction.

use std::time::Duration;

use crate::Result;
use crate::db::{Backend, Pools};
use crate::periodic::Periodic;

/// The columns of both tables.
const COLUMNS: &str = "id, rule_id, rule_name, case_id, hook, depth, outcome, condition_held, actions, log, error, \
                       duration_us, started_at";

/// Runs moved per transaction, so that a long queue never holds the
/// writer for long.
const MOVE_BATCH: u64 = 1000;

const MOVE_INTERVAL: Duration = Duration::from_millis(500);

/// Who moves the queue, and so what they do about runs another
/// PostgreSQL node is moving at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mover {
    /// The background task skips them: that node is moving them.
    Background,
    /// A reader of the log waits for that node to commit: until then those
    /// runs are in neither table as the reader sees them, and the log
    /// would look behind.
    Reader,
}

/// Moves queued runs into `rule_runs`, oldest first; returns how many.
pub(crate) async fn move_queued_runs(pools: &Pools, mover: Mover) -> Result<u64> {
    let mut moved = 0;
    let lock = match mover {
        Mover::Background => "FOR UPDATE SKIP LOCKED",
        Mover::Reader => "FOR UPDATE",
    };
    loop {
        let mut tx = pools.write().await?;
        let backend = tx.backend();
        let batch = match backend {
            // The single writer keeps the queue still between the two
            // statements: the rows deleted are the rows copied.
            Backend::Sqlite => {
                let copied = tx
                    .query(&format!(
                        "INSERT INTO rule_runs ({COLUMNS}) SELECT {COLUMNS} FROM rule_run_queue ORDER BY id \
                         LIMIT {MOVE_BATCH}"
                    ))
                    .execute()
                    .await?;
                tx.query(&format!(
                    "DELETE FROM rule_run_queue WHERE id IN \
                     (SELECT id FROM rule_run_queue ORDER BY id LIMIT {MOVE_BATCH})"
                ))
                .execute()
                .await?;
                copied
            }
            // Nodes move at the same time: each takes the rows it deletes
            // (see `Mover` for the rows another node has locked).
            Backend::Postgres => {
                tx.query(&format!(
                    "WITH moved AS (DELETE FROM rule_run_queue WHERE id IN \
                     (SELECT id FROM rule_run_queue ORDER BY id LIMIT {MOVE_BATCH} {lock}) \
                     RETURNING {COLUMNS}) \
                     INSERT INTO rule_runs ({COLUMNS}) SELECT {COLUMNS} FROM moved ON CONFLICT (id) DO NOTHING"
                ))
                .execute()
                .await?
            }
        };
        tx.commit().await?;
        moved += batch;
        // On PostgreSQL a reader's batch may come back short because rows
        // it waited for were moved by another node meanwhile: it stops only
        // when nothing is left. Otherwise a short batch emptied the queue.
        let done = match (backend, mover) {
            (Backend::Postgres, Mover::Reader) => batch == 0,
            _ => batch < MOVE_BATCH,
        };
        if done {
            return Ok(moved);
        }
    }
}

/// Starts the background task that moves queued runs.
pub(crate) fn start_mover(pools: Pools) -> Periodic {
    Periodic::start(MOVE_INTERVAL, move || {
        let pools = pools.clone();
        async move {
            // A failed move leaves the runs queued for the next one.
            if let Err(error) = move_queued_runs(&pools, Mover::Background).await {
                tracing::warn!(%error, "could not move queued rule runs into the run log");
            }
        }
    })
}
