//! The completion writer: records what became of fired timers, several per statement, and
//! vacuums the timers table under sustained load.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    sync::{mpsc, Notify},
    task::JoinHandle,
};

use super::Engine;
use crate::store::{timers::Completion, Store, StoreError};

/// Vacuum after this many completions...
const VACUUM_EVERY: usize = 5_000;
/// ...at most this often.
const VACUUM_INTERVAL: Duration = Duration::from_secs(5);

impl Engine {
    /// Writes completions as they arrive, several per statement. A retry or a repeat moves
    /// its timer's `due_at`, so the idle claimer is woken to look again.
    pub(super) async fn record_completions(
        self,
        mut completions: mpsc::Receiver<Completion>,
        wake: Arc<Notify>,
    ) {
        let mut batch = Vec::with_capacity(self.batch);
        let mut vacuum = Vacuum::default();
        while completions.recv_many(&mut batch, self.batch).await > 0 {
            self.complete_with_retries(&batch).await;
            wake.notify_one();
            vacuum.after(batch.len(), &self.store);
            batch.clear();
        }
    }

    /// While the database is away, keeps trying for as long as the lease lasts; after that
    /// another engine will have taken the timers over and the outcome no longer matters here.
    async fn complete_with_retries(&self, batch: &[Completion]) {
        let deadline = Instant::now() + self.lease;
        let mut delay = Duration::from_millis(100);
        loop {
            match self.complete(batch).await {
                Ok(()) => return,
                Err(e) if Instant::now() + delay < deadline => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "recording sends failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = %e, timers = batch.len(), "recording sends failed; the lease will expire and they will be sent again");
                    return;
                }
            }
        }
    }

    /// Records one batch; a completion whose lease another engine took is counted, not applied.
    pub(super) async fn complete(&self, batch: &[Completion]) -> Result<(), StoreError> {
        let applied = self.store.complete_timers(batch).await?;
        for completion in batch {
            if !applied.contains(&completion.id) {
                self.metrics.leases_lost.inc();
                tracing::warn!(
                    timer_id = completion.id,
                    "lease lost: another engine took this timer over"
                );
            }
        }
        Ok(())
    }
}

/// Vacuums the timers table after every `VACUUM_EVERY` completions (at most every
/// `VACUUM_INTERVAL`), in the background: see [`Store::vacuum_timers`].
#[derive(Default)]
struct Vacuum {
    completed: usize,
    last: Option<Instant>,
    running: Option<JoinHandle<()>>,
}

impl Vacuum {
    fn after(&mut self, completed: usize, store: &Store) {
        self.completed += completed;
        let due =
            self.completed >= VACUUM_EVERY && self.last.is_none_or(|at| at.elapsed() >= VACUUM_INTERVAL);
        let idle = self.running.as_ref().is_none_or(|task| task.is_finished());
        if !(due && idle) {
            return;
        }
        self.completed = 0;
        self.last = Some(Instant::now());
        let store = store.clone();
        self.running = Some(tokio::spawn(async move {
            if let Err(e) = store.vacuum_timers().await {
                tracing::warn!(error = %e, "vacuuming timers failed");
            }
        }));
    }
}
