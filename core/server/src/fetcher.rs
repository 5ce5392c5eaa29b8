//! Mailbox fetchers: every node looks for active mailboxes nobody works,
//! leases one, and keeps it while it fetches (IDLE where the server offers
//! it, polling otherwise). A failure gives the lease up with a back-off, so
//! a mail server that goes away is retried by whichever node is free.
//!
//! Each message is ingested in its own transaction, which also moves the
//! mailbox's high-water mark; a crash between fetching and ingesting only
//! means fetching again, and the (mailbox, UIDVALIDITY, UID) key keeps the
//! second ingest from doubling anything.

use std::collections::HashMap;
use std::time::Duration;

use docket_email::imap::{Connection, FolderState};
use docket_email::inbound::{InboundEmail, parse};
use docket_store::{FetchedEmail, Ingested, Mailbox, NewAttachment, Quarantine, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::attachments::{remove_files, store_bytes};
use crate::app::AppState;

/// How long a lease outlives the fetcher's last renewal: enough for a
/// batch of large messages. A fetcher renews before every batch and every
/// wait, so a lease lasts this plus the longest wait; after a node dies,
/// another takes its mailboxes over once that has passed.
const LEASE_MARGIN: Duration = Duration::from_secs(20);
/// A fetcher busy with one batch renews its lease this often.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often a node looks for mailboxes nobody works.
const DISCOVER: Duration = Duration::from_secs(2);
/// Messages fetched per round trip.
const BATCH: usize = 25;

/// Starts and watches one fetcher per mailbox this node leases.
pub async fn supervise(state: AppState, node: String, mut stopped: watch::Receiver<bool>) {
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        running.retain(|_, task| !task.is_finished());
        if *stopped.borrow() {
            break;
        }
        match state.store.mailboxes_due().await {
            Ok(ids) => {
                for id in ids {
                    if running.contains_key(&id) {
                        continue;
                    }
                    match state.store.lease_mailbox(&id, &node, lease_end(&state)).await {
                        Ok(true) => {
                            let task = tokio::spawn(work(state.clone(), id.clone(), node.clone(), stopped.clone()));
                            running.insert(id, task);
                        }
                        Ok(false) => {}
                        Err(error) => tracing::warn!(%error, mailbox = %id, "could not lease a mailbox"),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not list mailboxes"),
        }
        tokio::select! {
            () = tokio::time::sleep(DISCOVER) => {}
            _ = stopped.changed() => {}
        }
    }
    for (_, task) in running {
        let _ = task.await;
    }
}

fn lease_end(state: &AppState) -> chrono::DateTime<chrono::Utc> {
    let lease = Duration::from_secs(state.config.mail_poll_secs) * 2 + LEASE_MARGIN;
    chrono::Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(80))
}

/// Back-off after `failures` failures in a row: 5 s, doubling, at most
/// ten minutes.
fn backoff(failures: i64) -> Duration {
    let exponent = u32::try_from(failures.clamp(1, 8) - 1).unwrap_or(0);
    Duration::from_secs(5 * 2u64.pow(exponent)).min(Duration::from_secs(600))
}

async fn work(state: AppState, id: String, node: String, stopped: watch::Receiver<bool>) {
    match fetch(&state, &id, &node, stopped).await {
        Ok(()) => {
            if let Err(error) = state.store.release_mailbox(&id, &node).await {
                tracing::warn!(%error, mailbox = %id, "could not release a mailbox");
            }
        }
        Err(error) => {
            let failures = state.store.mailbox_failures(&id).await.unwrap_or(0) + 1;
            let wait = backoff(failures);
            tracing::warn!(mailbox = %id, %error, retry_in_secs = wait.as_secs(), "fetching failed");
            let retry_at =
                chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(5));
            if let Err(error) = state.store.mailbox_failed(&id, &node, &error, retry_at).await {
                tracing::warn!(%error, mailbox = %id, "could not record a fetch failure");
            }
        }
    }
}

/// Fetches until told to stop, the lease is lost, or the settings change
/// (then the supervisor starts afresh with the new ones).
async fn fetch(state: &AppState, id: &str, node: &str, mut stopped: watch::Receiver<bool>) -> Result<(), String> {
    let (mailbox, settings) = state.store.mailbox_imap(id).await.map_err(|e| e.to_string())?;
    let (mut connection, folder) = Connection::open(&settings).await.map_err(|e| e.to_string())?;
    let poll = Duration::from_secs(state.config.mail_poll_secs);
    loop {
        if !state.store.lease_mailbox(id, node, lease_end(state)).await.map_err(|e| e.to_string())? {
            connection.logout().await;
            return Ok(());
        }
        let current = state.store.mailbox(&docket_domain::Actor::system(), id).await.map_err(|e| e.to_string())?;
        if current.version != mailbox.version || !current.is_active {
            connection.logout().await;
            return Ok(());
        }
        let done = fetch_new(state, &mut connection, &current, folder, node, &stopped).await?;
        if !done {
            connection.logout().await;
            return Ok(());
        }
        state.store.mailbox_succeeded(id, node, 0).await.map_err(|e| e.to_string())?;
        tokio::select! {
            waited = connection.wait(poll) => connection = waited.map_err(|e| e.to_string())?,
            _ = stopped.changed() => return Ok(()),
        }
    }
}

/// Ingests every message above the high-water mark, in batches. False
/// when told to stop on the way.
async fn fetch_new(
    state: &AppState,
    connection: &mut Connection,
    mailbox: &Mailbox,
    folder: FolderState,
    node: &str,
    stopped: &watch::Receiver<bool>,
) -> Result<bool, String> {
    let last_uid =
        state.store.mailbox_opened(&mailbox.id, node, folder.uid_validity).await.map_err(|e| e.to_string())?;
    let after = u32::try_from(last_uid).unwrap_or(0);
    let uids = connection.uids_after(after, mailbox.fetch_since).await.map_err(|e| e.to_string())?;
    let mut left = uids.len();
    for batch in uids.chunks(BATCH) {
        if *stopped.borrow() {
            return Ok(false);
        }
        state.store.mailbox_backlog(&mailbox.id, node, left as i64).await.map_err(|e| e.to_string())?;
        let sizes = connection.sizes(batch).await.map_err(|e| e.to_string())?;
        let size_of = |uid: &u32| i64::from(sizes.get(uid).copied().unwrap_or(0));
        let wanted: Vec<u32> = batch.iter().copied().filter(|uid| size_of(uid) <= mailbox.max_message_bytes).collect();
        let (mut fetched, _) = connection.fetch(&wanted).await.map_err(|e| e.to_string())?;
        // In UID order: the high-water mark moves with each message, so
        // every smaller UID must be settled before a larger one is.
        let mut renewed = std::time::Instant::now();
        for uid in batch {
            // Slow messages (large ones, slow rules) must not outlive the
            // lease, or another node would start on the same UIDs.
            if renewed.elapsed() > RENEW_EVERY {
                if !state.store.lease_mailbox(&mailbox.id, node, lease_end(state)).await.map_err(|e| e.to_string())? {
                    return Ok(false);
                }
                renewed = std::time::Instant::now();
            }
            let size = size_of(uid);
            let message = fetched.iter().position(|m| m.uid == *uid).map(|at| fetched.swap_remove(at));
            let reason = match message {
                Some(message) => {
                    ingest(state, mailbox, folder.uid_validity, *uid, &message.raw, None).await?;
                    continue;
                }
                None if size > mailbox.max_message_bytes => format!(
                    "larger ({} KiB) than this mailbox's limit of {} KiB; it stays on the mail server",
                    size / 1024,
                    mailbox.max_message_bytes / 1024
                ),
                None => "deleted from the server before it could be fetched".to_string(),
            };
            let quarantine = Quarantine {
                mailbox_id: &mailbox.id,
                uid_validity: folder.uid_validity,
                uid: *uid,
                raw: None,
                size,
                reason: &reason,
                retry_of: None,
            };
            state.store.quarantine_email(quarantine).await.map_err(|e| e.to_string())?;
        }
        left -= batch.len();
        if !state.store.lease_mailbox(&mailbox.id, node, lease_end(state)).await.map_err(|e| e.to_string())? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Ingests one message: its attachments are written first, then the
/// store decides in one transaction. A message the store cannot take
/// (a rule refusing it, bad data) is quarantined and the mailbox goes on;
/// a database that is down fails the round instead, so nothing is
/// quarantined for a reason that would heal by itself.
pub async fn ingest(
    state: &AppState,
    mailbox: &Mailbox,
    uid_validity: u32,
    uid: u32,
    raw: &[u8],
    retry_of: Option<String>,
) -> Result<Ingested, String> {
    let parsed = parse(raw).map_err(|e| e.to_string());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let files = match &parsed {
            Ok(email) => write_files(state, email).await.map_err(|e| format!("writing attachments: {e}"))?,
            Err(_) => Vec::new(),
        };
        let keys: Vec<String> = files.iter().map(|f| f.storage_key.clone()).collect();
        let fetched = FetchedEmail {
            mailbox_id: &mailbox.id,
            uid_validity,
            uid,
            raw,
            parsed: &parsed,
            files,
            retry_of: retry_of.clone(),
        };
        let result = state.store.ingest_email(fetched).await;
        if !result.as_ref().is_ok_and(Ingested::kept_files) {
            remove_files(state, &keys).await;
        }
        match result {
            Ok(outcome) => {
                tracing::info!(mailbox = %mailbox.name, uid, outcome = ?outcome, "message ingested");
                return Ok(outcome);
            }
            // Another node took the same Message-ID meanwhile: once more,
            // and it is a duplicate.
            Err(StoreError::Duplicate(_)) if attempt == 1 => continue,
            // The database is away or busy: the round fails and is retried;
            // nothing is quarantined for a reason that heals by itself.
            Err(error) if error.is_transient() => return Err(format!("database: {error}")),
            Err(error) => {
                let reason = format!("could not be ingested: {error}");
                let quarantine = Quarantine {
                    mailbox_id: &mailbox.id,
                    uid_validity,
                    uid,
                    raw: Some(raw),
                    size: raw.len() as i64,
                    reason: &reason,
                    retry_of,
                };
                state.store.quarantine_email(quarantine).await.map_err(|e| e.to_string())?;
                tracing::warn!(mailbox = %mailbox.name, uid, %reason, "message quarantined");
                return Ok(Ingested::Quarantined { reason });
            }
        }
    }
}

async fn write_files(state: &AppState, email: &InboundEmail) -> std::io::Result<Vec<NewAttachment>> {
    let mut files = Vec::new();
    for attachment in &email.attachments {
        match store_bytes(state, &attachment.name, &attachment.content_type, &attachment.bytes).await {
            Ok(file) => files.push(file),
            Err(error) => {
                let keys: Vec<String> = files.iter().map(|f: &NewAttachment| f.storage_key.clone()).collect();
                remove_files(state, &keys).await;
                return Err(error);
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(50), Duration::from_secs(600));
    }
}
