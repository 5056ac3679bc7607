//! The timer engine every replica runs: claim due timers under a lease, send their messages,
//! record the outcome; sleep until the next one is due.
//!
//! - **Exactly one replica fires a timer**: claims use `FOR UPDATE SKIP LOCKED` and a lease
//!   token (see `store::timers`). A replica that dies mid-send loses the lease; when it ends
//!   another replica takes the timer and sends it, under the same dedup key.
//! - **Exact wake-up**: an idle engine sleeps until the next timer is due (or a lease ends), and is woken early
//!   by `NOTIFY medic_timers` when a timer is scheduled; a slow safety poll covers a missed
//!   notification. While the LISTEN connection is down, the poll is fast instead.
//! - **Never blocked by one slow notifier**: sends run concurrently (up to `concurrency`);
//!   completions are written in batches as sends finish.
//! - **Retries**: exponential backoff with jitter, `Retry-After` honoured, up to a horizon.

use std::{
    hash::{BuildHasher, RandomState},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use futures_util::StreamExt;
use tokio::{
    sync::{mpsc, watch, Notify, Semaphore},
    task::{JoinHandle, JoinSet},
};
use tokio_postgres::AsyncMessage;

use crate::{
    config::EngineSettings,
    domain::TimerKind,
    metrics::TimerMetrics,
    notify::{Failure, Message, Notifiers},
    remediation::{Done, Remediator},
    rules::Rules,
    store::{
        timers::{Claimed, Completion, Outcome, CHANNEL},
        Store, StoreError,
    },
};

/// How long an acknowledge or resolve waits for a trigger being sent to the same notifier.
const INFLIGHT_WAIT_MS: i64 = 250;
/// How soon a remediation waiting for another action on its target tries again.
const BUSY_RETRY_MS: i64 = 1000;
/// Poll interval while the LISTEN connection is down.
const FAST_POLL: Duration = Duration::from_secs(1);
/// Pause when due timers exist but other engines hold every one of them.
const CONTENDED: Duration = Duration::from_millis(20);

/// One engine: what it needs to fire timers.
#[derive(Clone)]
pub struct Engine {
    /// Where timers are claimed and completed.
    store: Store,
    /// Where messages go.
    notifiers: Notifiers,
    /// For the rule's runbook link.
    rules: Arc<Rules>,
    /// This engine's lease token, random per process.
    token: i64,
    lease: Duration,
    /// How far ahead of their due time timers are claimed (then sent on time).
    ahead: Duration,
    batch: usize,
    retry: Retry,
    metrics: TimerMetrics,
    /// Runs remediation timers; without it they fail.
    remediator: Option<Arc<Remediator>>,
}

/// Backoff for failed sends.
#[derive(Debug, Clone, Copy)]
struct Retry {
    initial: Duration,
    max: Duration,
    give_up_after: Duration,
}

/// A running engine: stop it gracefully, or kill it as a crash would.
pub struct EngineHandle {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    listener: JoinHandle<()>,
}

impl EngineHandle {
    /// Stops claiming, lets sends in flight finish and records them, then returns.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        let _ = (&mut self.task).await;
    }

    /// Drops everything at once, sends in flight included, as a crashed process would.
    pub fn kill(self) {
        self.task.abort();
    }
}

impl Drop for EngineHandle {
    /// The engine itself stops once it sees its handle gone; the LISTEN task is ended here.
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Engine {
    /// An engine over `store`, with its own random lease token.
    pub fn new(
        store: Store,
        notifiers: Notifiers,
        rules: Arc<Rules>,
        settings: &EngineSettings,
        metrics: TimerMetrics,
    ) -> Self {
        Self {
            store,
            notifiers,
            rules,
            token: RandomState::new().hash_one(Instant::now()) as i64,
            lease: settings.lease.0,
            ahead: settings.claim_ahead.0,
            batch: settings.batch,
            retry: Retry {
                initial: settings.retry.initial_backoff.0,
                max: settings.retry.max_backoff.0,
                give_up_after: settings.retry.give_up_after.0,
            },
            metrics,
            remediator: None,
        }
    }

    /// Lets this engine run remediation timers.
    pub fn with_remediator(mut self, remediator: Arc<Remediator>) -> Self {
        self.remediator = Some(remediator);
        self
    }

    /// Starts the engine and its LISTEN connection (to `pg_config`) as background tasks.
    pub fn spawn(
        self,
        pg_config: tokio_postgres::Config,
        concurrency: usize,
        safety_poll: Duration,
    ) -> EngineHandle {
        let (shutdown, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let listening = Arc::new(AtomicBool::new(false));
        let listener = tokio::spawn(listen(pg_config, wake.clone(), listening.clone()));
        let idle = Idle {
            wake,
            listening,
            safety_poll,
            stopped,
        };
        let task = tokio::spawn(self.run(idle, concurrency));
        EngineHandle {
            shutdown,
            task,
            listener,
        }
    }

    /// Claims and sends until shut down; completions are recorded alongside.
    async fn run(self, mut idle: Idle, concurrency: usize) {
        let (done, completions) = mpsc::channel(concurrency * 2);
        let recorder = self.clone().record_completions(completions, idle.wake.clone());
        let claimer = async move {
            let permits = Arc::new(Semaphore::new(concurrency));
            let mut sends = JoinSet::new();
            while !idle.is_stopped() {
                while sends.try_join_next().is_some() {}
                let fired = self.claim_and_send(&permits, &mut sends, &done).await;
                match fired {
                    Ok(0) => self.idle(&mut idle).await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming timers failed");
                        idle.sleep(FAST_POLL).await;
                    }
                }
            }
            while sends.join_next().await.is_some() {}
        };
        tokio::join!(claimer, recorder);
        tracing::info!("timer engine stopped");
    }

    /// Claims as many due timers as there are free send slots and starts sending them.
    async fn claim_and_send(
        &self,
        permits: &Arc<Semaphore>,
        sends: &mut JoinSet<()>,
        done: &mpsc::Sender<Completion>,
    ) -> Result<usize, StoreError> {
        let Ok(first) = permits.clone().acquire_owned().await else {
            return Ok(0);
        };
        let room = (permits.available_permits() + 1).min(self.batch);
        let claimed = self
            .store
            .claim_timers(
                room as i64,
                self.token,
                self.lease.as_millis() as i64,
                self.ahead.as_millis() as i64,
            )
            .await?;
        let count = claimed.len();
        let mut first = Some(first);
        for timer in claimed {
            // Only this loop takes permits, so the room counted above is still there.
            let permit = match first.take() {
                Some(permit) => permit,
                None => match permits.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return Ok(count),
                },
            };
            let (engine, done) = (self.clone(), done.clone());
            sends.spawn(async move {
                let completion = engine.try_execute(timer).await;
                drop(permit);
                let _ = done.send(completion).await;
            });
        }
        Ok(count)
    }

    /// Sleeps until the next timer is due, a NOTIFY, the safety poll, or shutdown.
    async fn idle(&self, idle: &mut Idle) {
        let poll = if idle.listening.load(Ordering::Acquire) {
            idle.safety_poll
        } else {
            FAST_POLL
        };
        // Timers become claimable `ahead` of their due time.
        let ahead = self.ahead.as_secs_f64();
        let wait = match self.store.next_timer_due().await {
            Ok(Some(seconds)) if seconds - ahead <= 0.0 => CONTENDED,
            Ok(Some(seconds)) => Duration::from_secs_f64(seconds - ahead).min(poll),
            Ok(None) => poll,
            Err(e) => {
                tracing::warn!(error = %e, "reading the next timer failed");
                FAST_POLL
            }
        };
        idle.sleep(wait).await;
    }

    /// Fires one claimed timer: decides whether it still applies, sends it, and says what
    /// became of it. Tests call this through [`Engine::try_execute_batch`].
    pub async fn try_execute(&self, mut timer: Claimed) -> Completion {
        // Claimed ahead of time: wait for the moment it is due.
        if timer.due_in > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(timer.due_in)).await;
            timer.lateness += timer.due_in;
        }
        if timer.attempt == 1 {
            self.metrics.lateness.observe(timer.lateness.max(0.0));
        }
        let started_at = Utc::now();
        let completion = |outcome, status_code, error| Completion {
            id: timer.id,
            claim: timer.claim,
            occurrence: timer.occurrence,
            attempt: timer.attempt,
            started_at,
            outcome,
            status_code,
            error,
        };
        if timer.kind == TimerKind::Remediation {
            let outcome = self.remediate(&timer).await;
            return completion(outcome.0, None, outcome.1);
        }
        let stale = timer.kind == TimerKind::Escalation
            && (!timer.incident.firing || timer.incident.acknowledged.is_some());
        if stale {
            self.metrics.cancelled.inc();
            tracing::info!(
                timer_id = timer.id,
                incident_id = timer.incident.id,
                "escalation dropped: the incident resolved or was acknowledged"
            );
            return completion(Outcome::Cancelled, None, None);
        }
        if timer.behind_inflight {
            let delay_ms = INFLIGHT_WAIT_MS;
            return completion(Outcome::Requeue { delay_ms }, None, None);
        }
        let (outcome, code, error) = self.deliver(&timer).await;
        let completion = completion(outcome, code, error);
        self.report(&timer, &completion);
        completion
    }

    /// One log event and the metrics for each send.
    fn report(&self, timer: &Claimed, c: &Completion) {
        let result = match c.outcome {
            Outcome::Sent => "sent",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed => "failed",
            Outcome::GaveUp => "gave_up",
            Outcome::Cancelled | Outcome::Requeue { .. } => return,
        };
        let kind = self
            .notifiers
            .kind(&timer.notifier)
            .map_or("unknown", |k| k.as_str());
        self.metrics
            .attempts
            .with_label_values(&[&timer.notifier, kind, result])
            .inc();
        if c.outcome == Outcome::Sent {
            self.metrics.fired.with_label_values(&[timer.kind.as_str()]).inc();
        }
        let event = tracing::field::display(timer.kind.as_str());
        if matches!(c.outcome, Outcome::Sent | Outcome::Retry { .. }) {
            tracing::info!(timer_id = timer.id, incident_id = timer.incident.id, kind = event, rule = %timer.rule,
                step = timer.step, notifier = %timer.notifier, attempt = timer.attempt, result,
                status_code = c.status_code, error = c.error.as_deref(), lateness_seconds = timer.lateness,
                "message delivery");
        } else {
            tracing::error!(timer_id = timer.id, incident_id = timer.incident.id, kind = event, rule = %timer.rule,
                step = timer.step, notifier = %timer.notifier, attempt = timer.attempt, result,
                status_code = c.status_code, error = c.error.as_deref(), "message not delivered");
        }
    }

    /// Runs a remediation behind its guard rails; the decision is recorded by the remediator.
    async fn remediate(&self, timer: &Claimed) -> (Outcome, Option<String>) {
        let Some(remediator) = &self.remediator else {
            return (Outcome::Failed, Some("this replica runs no remediation".into()));
        };
        match remediator.run(timer).await {
            Ok(Done::Finished) => (Outcome::Sent, None),
            Ok(Done::Busy) => (
                Outcome::Requeue {
                    delay_ms: BUSY_RETRY_MS,
                },
                None,
            ),
            Err(e) => {
                tracing::warn!(timer_id = timer.id, error = %e, "remediation could not be decided; retrying");
                let delay = self.retry.initial.as_millis() as i64;
                (Outcome::Retry { delay_ms: delay }, Some(e.to_string()))
            }
        }
    }

    async fn deliver(&self, timer: &Claimed) -> (Outcome, Option<i32>, Option<String>) {
        let runbook_url = timer
            .incident
            .annotations
            .get("runbook_url")
            .map(String::as_str)
            .or_else(|| self.rules.get(&timer.rule).and_then(|r| r.runbook_url.as_deref()));
        let message = Message { timer, runbook_url };
        let kind = self
            .notifiers
            .kind(&timer.notifier)
            .map_or("unknown", |k| k.as_str());
        let started = Instant::now();
        let result = self.notifiers.send(&timer.notifier, &message).await;
        self.metrics
            .send_duration
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(code) => (Outcome::Sent, Some(i32::from(code)), None),
            Err(failure) => {
                let outcome = self.after_failure(timer, &failure);
                (outcome, failure.status.map(i32::from), Some(failure.reason))
            }
        }
    }

    /// Retry later (backoff with jitter, or `Retry-After`), give up past the horizon, or fail.
    fn after_failure(&self, timer: &Claimed, failure: &Failure) -> Outcome {
        if !failure.retryable {
            return Outcome::Failed;
        }
        let exponent = u32::try_from(timer.attempt.max(1) - 1).unwrap_or(0).min(20);
        let backoff = self
            .retry
            .initial
            .saturating_mul(1 << exponent)
            .min(self.retry.max);
        // Equal jitter: half the backoff, plus a random part of the other half.
        let backoff = backoff / 2 + backoff.mul_f64(random_fraction() / 2.0);
        let delay = failure.retry_after.unwrap_or(backoff);
        let waited = Duration::from_secs_f64(timer.lateness.max(0.0));
        if waited + delay > self.retry.give_up_after {
            return Outcome::GaveUp;
        }
        Outcome::Retry {
            delay_ms: delay.as_millis() as i64,
        }
    }

    /// Claims due timers once, fires them all and records the outcomes; returns how many
    /// were claimed. The loop in [`Engine::spawn`] does the same, pipelined.
    pub async fn try_execute_batch(&self) -> Result<usize, StoreError> {
        let claimed = self
            .store
            .claim_timers(self.batch as i64, self.token, self.lease.as_millis() as i64, 0)
            .await?;
        let count = claimed.len();
        let completions =
            futures_util::future::join_all(claimed.into_iter().map(|timer| self.try_execute(timer))).await;
        self.complete(&completions).await?;
        Ok(count)
    }

    /// Writes completions as they arrive, several per statement. A retry or a repeat moves
    /// its timer's `due_at`, so the idle claimer is woken to look again.
    async fn record_completions(self, mut completions: mpsc::Receiver<Completion>, wake: Arc<Notify>) {
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

    async fn complete(&self, batch: &[Completion]) -> Result<(), StoreError> {
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

const VACUUM_EVERY: usize = 5_000;
const VACUUM_INTERVAL: Duration = Duration::from_secs(5);

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

/// What an idle engine waits on.
struct Idle {
    wake: Arc<Notify>,
    listening: Arc<AtomicBool>,
    safety_poll: Duration,
    stopped: watch::Receiver<bool>,
}

impl Idle {
    /// Stopped on request, or when the handle was dropped.
    fn is_stopped(&self) -> bool {
        *self.stopped.borrow() || self.stopped.has_changed().is_err()
    }

    async fn sleep(&mut self, wait: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.wake.notified() => {}
            _ = self.stopped.changed() => {}
        }
    }
}

/// Keeps a LISTEN connection open and turns each NOTIFY into a wake-up; reconnects forever.
async fn listen(config: tokio_postgres::Config, wake: Arc<Notify>, listening: Arc<AtomicBool>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let statement = format!("LISTEN {CHANNEL}");
                let subscribe = client.batch_execute(&statement);
                let subscribed = tokio::select! {
                    result = subscribe => result.is_ok(),
                    _ = messages.next() => false,
                };
                if subscribed {
                    listening.store(true, Ordering::Release);
                    delay = Duration::from_millis(200);
                    // Anything scheduled while we were not listening.
                    wake.notify_one();
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "timer wake-up connection lost");
                                break;
                            }
                        }
                    }
                }
                listening.store(false, Ordering::Release);
            }
            Err(e) => tracing::debug!(error = %e, "timer wake-up connection failed"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Uniform in [0, 1), from the standard library's randomly keyed hasher.
fn random_fraction() -> f64 {
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}
