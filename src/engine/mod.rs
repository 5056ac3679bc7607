//! The timer engine every replica runs: claim due timers under a lease, fire them, record the
//! outcome; sleep until the next one is due.
//!
//! - **Exactly one replica fires a timer**: claims use `FOR UPDATE SKIP LOCKED` and a lease
//!   token (see `store::timers`). A replica that dies mid-send loses the lease; when it ends
//!   another replica takes the timer and sends it, under the same dedup key.
//! - **Exact wake-up**: an idle engine sleeps until the next timer is due (or a lease ends), and
//!   is woken early by `NOTIFY medic_timers` when a timer is scheduled ([`wake`]); a slow
//!   safety poll covers a missed notification. While the LISTEN connection is down, the poll
//!   is fast instead.
//! - **Never blocked by one slow notifier**: sends run concurrently (up to `concurrency`)
//!   ([`claim`]); completions are written in batches as sends finish ([`completions`]).
//! - **What a fired timer does** is a small function of its kind ([`fire`]); failed sends
//!   are retried under [`retry::Backoff`]. A `context` timer only hands its incident to the
//!   [`Gatherer`], which reads the cluster in a task of its own, outside the lease.
//! - **Heartbeats** ([`heartbeats`]): a heartbeat whose deadline passed opens its incident,
//!   once across replicas; and [`pulse`] tells an outside dead man's switch this replica lives.

mod claim;
mod completions;
mod fire;
mod heartbeat_watch;
mod heartbeats;
pub mod pulse;
pub mod retry;
mod wake;

use std::{
    hash::{BuildHasher, RandomState},
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use tokio::{
    sync::{watch, Notify},
    task::JoinHandle,
};

use self::{heartbeat_watch::Watch, retry::Backoff, wake::Idle};
use crate::{
    config::EngineSettings,
    context::Gatherer,
    control::Control,
    metrics::{HeartbeatMetrics, TimerMetrics},
    notify::Notifiers,
    plan::{Heartbeats, Rules},
    remediation::Runner,
    store::Store,
};

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
    /// How long a claimed timer is this engine's.
    lease: Duration,
    /// How far ahead of their due time timers are claimed (then sent on time).
    ahead: Duration,
    /// Most timers claimed, and completions written, per statement.
    batch: usize,
    /// When failed sends are tried again.
    backoff: Backoff,
    metrics: TimerMetrics,
    /// Runs remediation timers; without it they fail.
    remediations: Option<Arc<Runner>>,
    /// Maintenance windows in force, which hold messages.
    control: Arc<Control>,
    /// Remediations running at once, apart from the sends' permits.
    remediation_permits: Arc<tokio::sync::Semaphore>,
    /// Called as each timer is fired, for tests that inject a fault (a panic, a hang).
    fault: Option<Fault>,
    /// Gathers cluster context for `context` timers, in tasks of its own; without it they fail.
    context: Option<Arc<Gatherer>>,
    /// The heartbeats whose deadlines this engine watches, when any is configured.
    heartbeats: Option<Watch>,
    /// medic's own pulse, sent outward while the claim loop goes round.
    pulse: Option<Arc<pulse::Pulse>>,
}

/// A test's hook into firing: awaited with each timer before its work starts, so a test can
/// make that work panic or hang.
pub type Fault =
    Arc<dyn Fn(&crate::store::timers::Claimed) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

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

    /// Completes if the engine or its LISTEN task ends on its own (a panic, a bug, an abort),
    /// saying which and how: the process must not go on serving without them. Not to be
    /// called again once it has completed.
    pub async fn ended(&mut self) -> String {
        let how = |result: Result<(), tokio::task::JoinError>| match result {
            Ok(()) => "it returned".to_owned(),
            Err(e) if e.is_panic() => "it panicked".to_owned(),
            Err(e) => e.to_string(),
        };
        tokio::select! {
            result = &mut self.task => format!("the timer engine stopped: {}", how(result)),
            result = &mut self.listener => format!("the timer engine's LISTEN task stopped: {}", how(result)),
        }
    }

    /// Aborts the engine's task, as a crash of that task alone would (tests of supervision).
    pub fn abort_task(&self) {
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
            backoff: Backoff::new(&settings.retry),
            metrics,
            remediations: None,
            control: Control::new(),
            remediation_permits: Arc::new(tokio::sync::Semaphore::new(settings.remediation_concurrency)),
            fault: None,
            context: None,
            heartbeats: None,
            pulse: None,
        }
    }

    /// Lets this engine gather cluster context.
    pub fn with_context(mut self, gatherer: Arc<Gatherer>) -> Self {
        self.context = Some(gatherer);
        self
    }

    /// Lets this engine watch heartbeats' deadlines and open the incidents of missing ones.
    pub fn with_heartbeats(mut self, heartbeats: Arc<Heartbeats>, metrics: HeartbeatMetrics) -> Self {
        if !heartbeats.is_empty() {
            self.heartbeats = Some(Watch { heartbeats, metrics });
        }
        self
    }

    /// Sends medic's own pulse outward while this engine's claim loop goes round.
    pub fn with_pulse(mut self, pulse: pulse::Pulse) -> Self {
        self.pulse = Some(Arc::new(pulse));
        self
    }

    /// Calls `fault` with each timer before firing it (tests: a panic, a hang).
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Lets this engine run remediation timers.
    pub fn with_remediations(mut self, runner: Arc<Runner>) -> Self {
        self.remediations = Some(runner);
        self
    }

    /// Maintenance windows as this replica sees them: messages they cover are held.
    pub fn with_control(mut self, control: Arc<Control>) -> Self {
        self.control = control;
        self
    }

    /// Starts the engine and its LISTEN connection (a connection of its own to the store's
    /// database) as background tasks.
    pub fn spawn(self, concurrency: usize, safety_poll: Duration) -> EngineHandle {
        let (shutdown, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let listening = Arc::new(AtomicBool::new(false));
        let listener = tokio::spawn(wake::listen(
            self.store.connector(),
            wake.clone(),
            listening.clone(),
        ));
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
}
