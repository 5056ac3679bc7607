//! Group commit for the webhook: notifications that arrive together are recorded together.
//!
//! Handlers hand their notification to a few writer tasks and wait for the answer. A writer
//! takes whatever is queued (up to `max_batch`) and records it in one transaction, so under
//! load one commit serves many requests, and an idle server commits each notification alone
//! without waiting. Each handler still answers only after its notification is committed.
//!
//! When traces are exported, each notification's recording is a span in its request's trace
//! (its batch's transaction, shared with the others), and a new incident keeps the request's
//! `traceparent` so that its later work joins that trace.

use std::sync::Arc;

use prometheus::Histogram;
use tokio::{
    sync::{mpsc, oneshot, Mutex},
    task::JoinHandle,
};
use tracing::{field::Empty, Span};

use crate::{
    domain::{Notification, PlannedTimer},
    store::{
        incidents::{Entry, Recorded},
        Store, StoreError,
    },
    telemetry,
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
    /// The request's span (disabled unless traces are exported), parent of the recording's.
    span: Span,
    /// The request's trace context, for a new incident to keep.
    traceparent: Option<String>,
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
        let (span, traceparent) = match telemetry::exporting() {
            true => (Span::current(), telemetry::traceparent(&Span::current())),
            false => (Span::none(), None),
        };
        self.pending
            .send(Pending {
                notification,
                timers,
                reply,
                span,
                traceparent,
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
            traceparent: self.traceparent.as_deref(),
        }
    }

    /// The recording's spans in the request's trace: the transaction that holds it, and the
    /// scheduling of the timers its rules ask for (which commits with it).
    fn spans(&self, batch: usize) -> (Span, Span) {
        let n = &self.notification;
        let record = tracing::info_span!(parent: &self.span, "record notification",
            otel.kind = "client", db.system.name = "postgresql", db.operation.name = "medic_record",
            receiver = %n.receiver, group_key = %n.group_key, alerts = n.alerts.len(), batch_size = batch,
            incident_id = Empty, new_incident = Empty, duplicate = Empty, outcome = Empty,
            otel.status_code = Empty, error.message = Empty);
        let schedule = if self.timers.is_empty() || record.is_disabled() {
            Span::none()
        } else {
            let kinds: Vec<String> = self
                .timers
                .iter()
                .map(|t| {
                    format!(
                        "{}:{}:{}@{}ms",
                        t.kind.as_str(),
                        t.notifier,
                        t.step,
                        t.after.as_millis()
                    )
                })
                .collect();
            tracing::info_span!(parent: &record, "schedule timers", planned = self.timers.len(),
                timers = %kinds.join(","), scheduled = Empty, cancelled = Empty)
        };
        (record, schedule)
    }
}

/// Closes a recording's spans with what the transaction did.
fn record_outcome((record, schedule): &(Span, Span), result: &Result<Recorded, StoreError>) {
    match result {
        Ok(r) => {
            record.record("incident_id", r.incident_id);
            record.record("new_incident", r.new_incident);
            record.record("duplicate", r.duplicate);
            record.record("outcome", "committed");
            schedule.record("scheduled", r.timers_scheduled);
            schedule.record("cancelled", r.timers_cancelled);
        }
        Err(e) => {
            record.record("outcome", "failed");
            record.record("otel.status_code", "ERROR");
            record.record("error.message", tracing::field::display(e));
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
    let spans: Vec<(Span, Span)> = match telemetry::exporting() {
        true => batch.iter().map(|job| job.spans(batch.len())).collect(),
        false => Vec::new(),
    };
    let entries: Vec<Entry> = batch.iter().map(Pending::entry).collect();
    match store.record(&entries).await {
        Ok(recorded) => {
            for (i, (job, recorded)) in batch.into_iter().zip(recorded).enumerate() {
                answer(job, spans.get(i), Ok(recorded));
            }
        }
        Err(StoreError::Unavailable(reason)) => {
            for (i, job) in batch.into_iter().enumerate() {
                answer(job, spans.get(i), Err(StoreError::Unavailable(reason.clone())));
            }
        }
        Err(e) if batch.len() == 1 => {
            if let Some(job) = batch.pop() {
                answer(job, spans.first(), Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, size = batch.len(), "batch failed; recording its notifications one by one");
            for (i, job) in batch.into_iter().enumerate() {
                let result = store.record(&[job.entry()]).await;
                answer(job, spans.get(i), result.map(|mut recorded| recorded.remove(0)));
            }
        }
    }
}

/// Tells the handler how its notification's recording went, and closes its spans.
fn answer(job: Pending, spans: Option<&(Span, Span)>, result: Result<Recorded, StoreError>) {
    if let Some(spans) = spans {
        record_outcome(spans, &result);
    }
    let _ = job.reply.send(result);
}
