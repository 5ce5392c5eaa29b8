//! Background tasks that repeat a step at an interval: the run-log mover,
//! the case indexer and SQLite's checkpointer.
//!
//! A step runs a transaction, so stopping never interrupts one: `stop`
//! lets the step in progress finish and then ends the task. (Aborting it
//! mid-transaction left the connection inside that transaction for
//! whoever took it next, and the shutdown's own last move failed.)

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub(crate) struct Periodic {
    stop: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Periodic {
    /// Runs `step` now and then every `interval` (a slow step delays the
    /// next, never doubles it up).
    pub(crate) fn start<F, Fut>(interval: Duration, mut step: F) -> Periodic
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let stop = Arc::new(Notify::new());
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopping.notified() => break,
                    _ = ticks.tick() => step().await,
                }
            }
        });
        Periodic { stop, task: Mutex::new(Some(task)) }
    }

    /// Ends the task once the step in progress, if any, is done.
    pub(crate) async fn stop(&self) {
        // A permit is kept if the task is busy: it stops at its next turn.
        self.stop.notify_one();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Periodic {
    /// A store dropped without `close` (a test, a panic) ends the task
    /// where it is; its transaction rolls back with the connection.
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}
