//! Group commit for the webhook: notifications that arrive together are recorded together.
//!
//! Handlers hand their notification to a few writer tasks and wait for the answer. A writer
//! takes whatever is queued (up to `max_batch`) and records it in one transaction, so under
//! load one commit serves many requests, and an idle server commits each notification alone
//! without waiting. Each handler still answers only after its notification is committed.

use std::sync::Arc;

use prometheus::Histogram;
use tokio::{
    sync::{mpsc, oneshot, Mutex},
    task::JoinHandle,
};

use crate::{
    domain::{Notification, PlannedTimer},
    store::{
        incidents::{Entry, Recorded},
        Store, StoreError,
    },
};

/// Requests waiting for a writer; beyond this, handlers wait to enqueue.
const QUEUE: usize = 1024;

/// The handlers' side: enqueue a notification, wait for its commit.
#[derive(Clone)]
pub struct Recorder {
    pending: mpsc::Sender<Pending>,
}

/// A notification waiting for a writer, and where its answer goes.
struct Pending {
    notification: Arc<Notification>,
    timers: Vec<PlannedTimer>,
    reply: oneshot::Sender<Result<Recorded, StoreError>>,
}

impl Recorder {
    /// Starts `writers` tasks that stop once every `Recorder` clone is dropped; their handles
    /// are for supervision (a writer that ends while the server runs is a bug).
    pub fn spawn(
        store: Store,
        writers: usize,
        max_batch: usize,
        batch_sizes: Histogram,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let (pending, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let handles = (0..writers)
            .map(|_| {
                tokio::spawn(write(
                    store.clone(),
                    queue.clone(),
                    max_batch,
                    batch_sizes.clone(),
                ))
            })
            .collect();
        (Self { pending }, handles)
    }

    /// Records one notification with the timers its rules ask for; returns once committed.
    pub async fn record(
        &self,
        notification: Arc<Notification>,
        timers: Vec<PlannedTimer>,
    ) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("medic is shutting down".into());
        self.pending
            .send(Pending {
                notification,
                timers,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Pending {
    fn entry(&self) -> Entry<'_> {
        Entry {
            notification: &self.notification,
            timers: &self.timers,
        }
    }
}

/// One writer: takes what is queued, commits it, answers, again.
async fn write(store: Store, queue: Arc<Mutex<mpsc::Receiver<Pending>>>, max_batch: usize, sizes: Histogram) {
    loop {
        let mut batch = Vec::with_capacity(max_batch);
        if queue.lock().await.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        sizes.observe(batch.len() as f64);
        commit(&store, batch).await;
    }
}

/// Records a batch in one transaction. Groups are locked in key order, so concurrent batches
/// (in this replica or another) never wait on each other in a cycle. If the batch fails for
/// any reason but an unreachable database, each notification is tried alone, so that one bad
/// notification cannot fail the others.
async fn commit(store: &Store, mut batch: Vec<Pending>) {
    batch.sort_by(|a, b| {
        let (a, b) = (&a.notification, &b.notification);
        (&a.receiver, &a.group_key).cmp(&(&b.receiver, &b.group_key))
    });
    let entries: Vec<Entry> = batch.iter().map(Pending::entry).collect();
    match store.record(&entries).await {
        Ok(recorded) => {
            for (job, recorded) in batch.into_iter().zip(recorded) {
                let _ = job.reply.send(Ok(recorded));
            }
        }
        Err(StoreError::Unavailable(reason)) => {
            for job in batch {
                let _ = job.reply.send(Err(StoreError::Unavailable(reason.clone())));
            }
        }
        Err(e) if batch.len() == 1 => {
            if let Some(job) = batch.pop() {
                let _ = job.reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, size = batch.len(), "batch failed; recording its notifications one by one");
            for job in batch {
                let result = store.record(&[job.entry()]).await;
                let _ = job.reply.send(result.map(|mut recorded| recorded.remove(0)));
            }
        }
    }
}
