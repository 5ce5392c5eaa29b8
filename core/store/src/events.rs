//! Live stream events: "case X has a new note Y", for pages that update
//! without reloading.
//!
//! After a note commits, the store announces it. On SQLite (one node) the
//! announcement goes straight to this process's subscribers. On PostgreSQL
//! it goes through `NOTIFY`, and every node's listener hands it to its own
//! subscribers, so a page served by one node sees notes written on
//! another. Events are hints to refresh: losing one (a crash right after
//! commit) loses no data.

use std::sync::{Arc, Mutex};

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::db::Pools;
use crate::{Result, Store};

const CHANNEL: &str = "docket_stream";

/// A new note on a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    pub case_id: String,
    pub note_id: String,
}

#[derive(Clone)]
pub(crate) struct Events {
    sender: broadcast::Sender<StreamEvent>,
    listener: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Events {
    pub(crate) async fn start(pools: &Pools) -> Result<Events> {
        let (sender, _) = broadcast::channel(1024);
        let listener = match pools {
            Pools::Sqlite { .. } => None,
            Pools::Postgres { pool } => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(CHANNEL).await?;
                let sender = sender.clone();
                Some(tokio::spawn(async move {
                    loop {
                        // recv() reconnects by itself after a lost connection.
                        match listener.recv().await {
                            Ok(notification) => {
                                if let Some(event) = parse(notification.payload()) {
                                    let _ = sender.send(event);
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "stream event listener failed; retrying");
                                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            }
                        }
                    }
                }))
            }
        };
        Ok(Events { sender, listener: Arc::new(Mutex::new(listener)) })
    }

    pub(crate) fn stop(&self) {
        if let Some(task) = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

fn parse(payload: &str) -> Option<StreamEvent> {
    let (case_id, note_id) = payload.split_once(' ')?;
    Some(StreamEvent { case_id: case_id.to_string(), note_id: note_id.to_string() })
}

impl Store {
    /// Subscribes to new notes on every case (filter by `case_id`).
    pub fn subscribe_stream(&self) -> broadcast::Receiver<StreamEvent> {
        self.events.sender.subscribe()
    }

    /// Tells live pages about a committed note. Never fails the caller:
    /// the note is stored whatever happens here.
    pub(crate) async fn announce(&self, case_id: &str, note_id: &str) {
        match &self.pools {
            Pools::Sqlite { .. } => {
                let _ = self.events.sender.send(StreamEvent { case_id: case_id.into(), note_id: note_id.into() });
            }
            Pools::Postgres { pool } => {
                let payload = format!("{case_id} {note_id}");
                if let Err(error) =
                    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(pool).await
                {
                    tracing::warn!(%error, "could not announce a note");
                }
            }
        }
    }

    /// One note, if the actor may see it (for live pages).
    pub async fn visible_note(&self, actor: &docket_domain::Actor, note_id: &str) -> Result<docket_domain::note::Note> {
        if !docket_domain::ids::looks_like_id(note_id) {
            return Err(crate::StoreError::NotFound);
        }
        let mut tx = self.pools.read().await?;
        let row = tx
            .query(
                "SELECT id, case_id, note_type, post, data, is_internal, author_id, created_at FROM notes WHERE id = $1",
            )
            .bind(note_id)
            .fetch_optional()
            .await?
            .ok_or(crate::StoreError::NotFound)?;
        let mut note = crate::cases::note_from_row(&row)?;
        note.attachment_ids = tx
            .query("SELECT id FROM attachments WHERE note_id = $1 ORDER BY created_at")
            .bind(note_id)
            .fetch_all()
            .await?
            .iter()
            .map(|row| row.get("id"))
            .collect::<Result<_>>()?;
        let case = crate::cases::load_case(&mut tx, "c.id = $1", &note.case_id, false).await?;
        tx.commit().await?;
        if !actor.may_follow(&case.ownership()) || (note.is_internal && !actor.is_staff()) {
            return Err(crate::StoreError::NotFound);
        }
        if !actor.is_staff() {
            crate::cases::staff_only_data_removed(&mut note);
        }
        Ok(note)
    }
}
