//! Group commit for the webhook: notifications that arrive together are recorded together.
//!
//! Handlers hand their notification to a few writer tasks and wait for the answer. A writer
//! takes whatever is queued (up to `max_batch`) and records it in one transaction, so under
//! load one commit serves many requests, and an idle server commits each notification alone
//! without waiting. Each handler still answers only after its notification is committed.
//!
//! Heartbeat renewals ride along: they commit in the same transaction as the batch's
//! notifications, so a Watchdog notification costs what a repeat of any other does.
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
    domain::{Notification, PlannedTimer, Renewal, TimerWork},
    store::{
        heartbeats::Returned,
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

/// What intake stored for one request.
#[derive(Debug, Clone, Default)]
pub struct Taken {
    /// The notification's recording; None when every alert it carried was a heartbeat's.
    pub recorded: Option<Recorded>,
    /// Heartbeats it renewed that were missing: their incidents resolved with it.
    pub returned: Vec<Returned>,
}

/// A notification waiting for a writer, and where its answer goes.
struct Pending {
    /// None when the request only renews heartbeats.
    notification: Option<Arc<Notification>>,
    timers: Vec<PlannedTimer>,
    renewals: Vec<Renewal>,
    reply: oneshot::Sender<Result<Taken, StoreError>>,
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

    /// Records one notification (if any alert is left once heartbeats took theirs) with the
    /// timers its rules ask for, and the heartbeats it renews; returns once committed.
    pub async fn record(
        &self,
        notification: Option<Arc<Notification>>,
        timers: Vec<PlannedTimer>,
        renewals: Vec<Renewal>,
    ) -> Result<Taken, StoreError> {
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
                renewals,
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
    fn entry(&self) -> Option<Entry<'_>> {
        Some(Entry {
            notification: self.notification.as_deref()?,
            timers: &self.timers,
            traceparent: self.traceparent.as_deref(),
        })
    }

    /// The group this request locks, for ordering a batch; heartbeats only: first.
    fn key(&self) -> (&str, &str) {
        self.notification
            .as_deref()
            .map_or(("", ""), |n| (n.receiver.as_str(), n.group_key.as_str()))
    }

    /// What the store returned that is this request's.
    fn taken(&self, recorded: Option<Recorded>, returned: &[Returned]) -> Taken {
        let mine = |r: &&Returned| {
            self.renewals
                .iter()
                .any(|n| n.name == r.name && n.per_value == r.per_value)
        };
        Taken {
            recorded,
            returned: returned.iter().filter(mine).cloned().collect(),
        }
    }

    /// The recording's spans in the request's trace: the transaction that holds it, and the
    /// scheduling of the timers its rules ask for (which commits with it).
    fn spans(&self, batch: usize) -> (Span, Span) {
        let Some(n) = self.notification.as_deref() else {
            return (Span::none(), Span::none());
        };
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
                    // Whom a message goes to, or what a remediation does.
                    let to = match &t.work {
                        TimerWork::Remediation(work) | TimerWork::Verify(work) => work.action.as_str(),
                        work => work.notifier().unwrap_or_default(),
                    };
                    format!(
                        "{}:{to}:{}@{}ms",
                        t.kind().as_str(),
                        t.work.step(),
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
fn record_outcome((record, schedule): &(Span, Span), result: &Result<Taken, StoreError>) {
    match result {
        Ok(Taken { recorded: None, .. }) => {}
        Ok(Taken {
            recorded: Some(r), ..
        }) => {
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
    batch.sort_by(|a, b| a.key().cmp(&b.key()));
    let spans: Vec<(Span, Span)> = match telemetry::exporting() {
        true => batch.iter().map(|job| job.spans(batch.len())).collect(),
        false => Vec::new(),
    };
    match store_batch(store, &batch).await {
        Ok(taken) => {
            for (i, (job, taken)) in batch.into_iter().zip(taken).enumerate() {
                answer(job, spans.get(i), Ok(taken));
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
                let result = store_batch(store, std::slice::from_ref(&job)).await;
                answer(job, spans.get(i), result.map(|mut taken| taken.remove(0)));
            }
        }
    }
}

/// Stores a batch's notifications and renewals in one transaction; one answer per request.
async fn store_batch(store: &Store, batch: &[Pending]) -> Result<Vec<Taken>, StoreError> {
    let entries: Vec<Entry> = batch.iter().filter_map(Pending::entry).collect();
    let renewals: Vec<&Renewal> = batch.iter().flat_map(|job| &job.renewals).collect();
    let (recorded, returned) = store.record(&entries, &renewals).await?;
    let mut recorded = recorded.into_iter();
    Ok(batch
        .iter()
        .map(|job| {
            let mine = job.notification.as_ref().and_then(|_| recorded.next());
            job.taken(mine, &returned)
        })
        .collect())
}

/// Tells the handler how its notification's recording went, and closes its spans.
fn answer(job: Pending, spans: Option<&(Span, Span)>, result: Result<Taken, StoreError>) {
    if let Some(spans) = spans {
        record_outcome(spans, &result);
    }
    let _ = job.reply.send(result);
}
