//! The text index of cases on SQLite (migration 0017).
//!
//! New cases enter the index in batches, from a background task, rather
//! than in the transaction that creates them: FTS5 writes a new index
//! segment per transaction, which cost each creation about 120 µs of the
//! single writer (a sixth of its time). Searches ask the index about the
//! cases it holds and scan only the newer ones (see `cases::text_condition`),
//! so they find the same cases however far it has got, except that the
//! scan folds only ASCII case (`LIKE`): `ÜBERWEISUNG` finds "Überweisung"
//! once it is indexed, half a second later. Renames and deletions of
//! indexed cases reach it at once, through triggers.
//!
//! PostgreSQL's trigram indexes are kept by each insert: their pending
//! list makes that cheap, and this module does nothing there.

use std::time::Duration;

use crate::db::{Backend, Pools};
use crate::periodic::Periodic;
use crate::{Result, Store};

/// How often the background task looks for new cases.
const INDEX_INTERVAL: Duration = Duration::from_millis(500);

/// Case numbers indexed per transaction, so that a long catch-up (after an
/// upgrade, or an import) leaves the writer to others between batches.
const INDEX_BATCH: i64 = 5_000;

impl Store {
    /// Indexes the cases numbered after the index's mark, a batch at a
    /// time, until it is up to date. Returns how many numbers it covered.
    /// Tests call it to know the index is complete.
    pub async fn index_new_cases(&self) -> Result<u64> {
        let mut covered = 0;
        loop {
            match index_batch(&self.pools).await? {
                0 => return Ok(covered),
                batch => covered += batch,
            }
        }
    }
}

/// Indexes one batch of the cases numbered after the index's mark, in one
/// transaction. Returns how many numbers it covered: 0 when up to date.
async fn index_batch(pools: &Pools) -> Result<u64> {
    if pools.backend() != Backend::Sqlite {
        return Ok(0);
    }
    let mut tx = pools.write().await?;
    let row = tx
        .query("SELECT indexed_upto, (SELECT MAX(number) FROM cases) AS newest FROM case_search_state")
        .fetch_one()
        .await?;
    let upto: i64 = row.get("indexed_upto")?;
    let newest: Option<i64> = row.get("newest")?;
    let Some(newest) = newest.filter(|newest| *newest > upto) else {
        tx.commit().await?;
        return Ok(0);
    };
    let target = newest.min(upto + INDEX_BATCH);
    tx.query(
        "INSERT INTO cases_search (rowid, name, description) \
         SELECT number, name, description FROM cases WHERE number > $1 AND number <= $2; \
         UPDATE case_search_state SET indexed_upto = $2",
    )
    .bind(upto)
    .bind(target)
    .execute()
    .await?;
    tx.commit().await?;
    Ok((target - upto) as u64)
}

/// Starts the background task that indexes new cases (SQLite only): one
/// batch per tick, so that stopping (at shutdown, or at the end of a CLI
/// command) never waits for a long catch-up, and requests get the writer
/// between batches. A million cases after an upgrade take a few minutes,
/// during which searches scan what is not indexed yet.
pub(crate) fn start_indexer(pools: Pools) -> Option<Periodic> {
    if pools.backend() != Backend::Sqlite {
        return None;
    }
    Some(Periodic::start(INDEX_INTERVAL, move || {
        let pools = pools.clone();
        async move {
            // A failed batch is tried again at the next tick; searches
            // scan what the index lacks meanwhile.
            if let Err(error) = index_batch(&pools).await {
                tracing::warn!(%error, "could not index new cases for search");
            }
        }
    }))
}
