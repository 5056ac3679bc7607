//! What every handler may need: the application state actix hands each request, built once by
//! `startup`, with the readiness check the probes share.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Mutex;

use crate::{
    acts::Acts,
    control::Control,
    intake::Recorder,
    metrics::Metrics,
    notify::Notifiers,
    plan::{GuardRails, Heartbeats, Integrations, Rules, Slo},
    slo::prometheus::Prometheus,
    store::Store,
};

/// What every handler may need.
pub struct State {
    /// The database: intake and every change, through the main pool.
    pub store: Store,
    /// The same database through the read pool ([`Store::reads`]): the API's, the console's
    /// and the SLO report's reads, so that searches never hold intake's connections.
    pub reads: Store,
    /// Records webhook notifications, several to a transaction under load.
    pub recorder: Recorder,
    /// Decide which timers a notification schedules.
    pub rules: Arc<Rules>,
    /// Which alerts renew a heartbeat instead of being recorded.
    pub heartbeats: Arc<Heartbeats>,
    /// What remediation must respect: the console's explain box says how a step would meet it.
    pub guard_rails: Arc<GuardRails>,
    /// Where handlers count what they do.
    pub metrics: Metrics,
    /// Maintenance windows and the pause as this replica sees them.
    pub control: Arc<Control>,
    /// What people do: every surface's acts go through it.
    pub acts: Acts,
    /// The notifiers (Slack apps answer their users through them) and their HTTP client.
    pub notifiers: Notifiers,
    /// Who is who in Slack and PagerDuty, their secrets, and Alertmanager.
    pub integrations: Integrations,
    /// Largest accepted webhook body, in bytes.
    pub body_limit: usize,
    /// Seconds in `Retry-After` when the database is unreachable.
    pub retry_after: u64,
    /// The last readiness check, shared by probes for about a second.
    pub readiness: Readiness,
    /// How `/healthz` tells a stalled engine, when this process runs one.
    pub engine: Option<EngineHealth>,
    /// The SLOs `GET /api/v1/slo/report` measures.
    pub slos: Arc<Vec<Slo>>,
    /// Where it measures them; `None` without `prometheus.url`.
    pub prometheus: Option<Prometheus>,
}

/// How `/healthz` tells a stalled engine: by `medic_engine_last_loop_timestamp_seconds`.
pub struct EngineHealth {
    /// Longer than this since the claim loop last went round: unhealthy.
    pub stall_after: std::time::Duration,
}

/// How long one readiness check answers every probe.
const FRESH: Duration = Duration::from_secs(1);

/// The last readiness check and when it was made.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    /// Ready or not: the last check if fresh, else a new one (one at a time).
    pub async fn check(&self, store: &Store) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ready)) = *last {
            if at.elapsed() < FRESH {
                return ready;
            }
        }
        let ready = match store.is_ready().await {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!("not ready: the database schema is not migrated yet");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "not ready: the database does not answer");
                false
            }
        };
        *last = Some((Instant::now(), ready));
        ready
    }
}
