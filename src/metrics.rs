//! medic's own Prometheus metrics, on a registry of its own (never the global one).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::{
    domain::{ContextErrorKind, TimerKind, Verification},
    store::{PoolName, Store},
};

/// Every metric medic exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    pub intake: IntakeMetrics,
    pub pool: PoolMetrics,
    pub timers: TimerMetrics,
    pub remediation: RemediationMetrics,
    pub retention: RetentionMetrics,
    pub acts: ActMetrics,
    pub context: ContextMetrics,
    pub heartbeats: HeartbeatMetrics,
    /// When the pending-timer gauge was last read from the database.
    pending_counted: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

/// Heartbeats: how many are ok or missing, their renewals, and medic's own pulse outward.
#[derive(Clone)]
pub struct HeartbeatMetrics {
    /// Heartbeats (each `per` value counts) by state, read at scrape time.
    pub states: IntGaugeVec,
    /// Renewals by heartbeat name (never by `per` value: that would be unbounded).
    pub renewals: IntCounterVec,
    /// Heartbeats this replica found missing (each opened an incident).
    pub missed: IntCounter,
    /// Calls to `heartbeat_out.url`, by result: `ok`, `failed`, `skipped` (engine unhealthy).
    pub pings: IntCounterVec,
}

impl HeartbeatMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let states = IntGaugeVec::new(
            Opts::new("medic_heartbeats", "Heartbeats by state, in all replicas"),
            &["state"],
        )?;
        let renewals = IntCounterVec::new(
            Opts::new(
                "medic_heartbeat_renewals_total",
                "Heartbeat alerts received, by heartbeat",
            ),
            &["heartbeat"],
        )?;
        let missed = IntCounter::new(
            "medic_heartbeats_missed_total",
            "Heartbeats this replica found missing, each opening an incident",
        )?;
        let pings = IntCounterVec::new(
            Opts::new(
                "medic_heartbeat_out_pings_total",
                "Calls to heartbeat_out.url, by result",
            ),
            &["result"],
        )?;
        for state in crate::domain::HeartbeatState::ALL {
            states.with_label_values(&[state.as_str()]);
        }
        for result in ["ok", "failed", "skipped"] {
            pings.with_label_values(&[result]);
        }
        Ok(Self {
            states: register(registry, states),
            renewals: register(registry, renewals),
            missed: register(registry, missed),
            pings: register(registry, pings),
        })
    }

    /// Pre-registers the renewal counter of every configured heartbeat.
    pub fn expect(&self, heartbeats: &crate::plan::Heartbeats) {
        for heartbeat in heartbeats.iter() {
            self.renewals.with_label_values(&[heartbeat.name.as_str()]);
        }
    }

    async fn count(&self, store: &Store) -> Result<(), crate::store::StoreError> {
        let counts = store.heartbeat_counts().await?;
        for state in crate::domain::HeartbeatState::ALL {
            let count = counts.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
            self.states.with_label_values(&[state.as_str()]).set(count);
        }
        Ok(())
    }
}

/// Requests served, by route pattern (never the raw path, to bound cardinality).
#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
}

/// What Alertmanager sent and what became of it.
#[derive(Clone)]
pub struct IntakeMetrics {
    /// Notifications by outcome: `recorded`, `duplicate`, `rejected`, `unavailable`, `error`,
    /// `heartbeat` (only heartbeat alerts: renewals, nothing recorded).
    pub notifications: IntCounterVec,
    /// Alerts carried by accepted notifications, by alert status.
    pub alerts: IntCounterVec,
    /// Deliveries that changed nothing (retries, HA twins, repeats).
    pub duplicates: IntCounter,
    pub incidents_opened: IntCounter,
    pub incidents_resolved: IntCounter,
    /// Notifications per transaction (group commit).
    pub batch_size: Histogram,
}

/// The timer engine: what it scheduled, fired and cancelled, how late, and every send.
#[derive(Clone)]
pub struct TimerMetrics {
    pub scheduled: IntCounter,
    /// By kind: `opened`, `escalation`, `acknowledged`, `resolved`.
    pub fired: IntCounterVec,
    pub cancelled: IntCounter,
    /// Pending timers (leased ones included), read at scrape time.
    pub pending: IntGauge,
    /// Seconds from when a timer was due to when an engine took it.
    pub lateness: Histogram,
    /// Deliveries by notifier, its type and result: `sent`, `retry`, `failed`, `gave_up`.
    pub attempts: IntCounterVec,
    pub send_duration: HistogramVec,
    /// Completions refused because another engine had taken the timer over.
    pub leases_lost: IntCounter,
    /// Timers whose work panicked (each recorded as a failed attempt).
    pub panics: IntCounter,
    /// When the claim loop last went round (Unix seconds): an engine that stalls stops this.
    pub last_loop: Gauge,
}

impl TimerMetrics {
    /// Counts what an acknowledgement did, whichever way it came (API, console, Slack,
    /// PagerDuty): pending escalations and remediations stopped, announcements scheduled.
    pub fn acknowledged(&self, cancelled: i32, scheduled: i32) {
        self.cancelled.inc_by(u64::try_from(cancelled).unwrap_or(0));
        self.scheduled.inc_by(u64::try_from(scheduled).unwrap_or(0));
    }

    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let scheduled = IntCounter::new("medic_timers_scheduled_total", "Timers scheduled")?;
        let fired = IntCounterVec::new(
            Opts::new(
                "medic_timers_fired_total",
                "Timers whose message was delivered, by kind",
            ),
            &["kind"],
        )?;
        let cancelled = IntCounter::new(
            "medic_timers_cancelled_total",
            "Timers cancelled because their incident resolved or was acknowledged",
        )?;
        let pending = IntGauge::new("medic_timers_pending", "Timers waiting to fire, in all replicas")?;
        let lateness = Histogram::with_opts(
            HistogramOpts::new(
                "medic_timer_lateness_seconds",
                "Time from when a timer was due to when an engine took it",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )?;
        let attempts = IntCounterVec::new(
            Opts::new(
                "medic_notifier_attempts_total",
                "Attempts to deliver a message, by notifier, type and result",
            ),
            &["notifier", "type", "result"],
        )?;
        let send_duration = HistogramVec::new(
            HistogramOpts::new(
                "medic_notifier_request_duration_seconds",
                "Time for a notifier to answer, by type",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["type"],
        )?;
        let leases_lost = IntCounter::new(
            "medic_timer_leases_lost_total",
            "Completions dropped because the lease had passed to another engine",
        )?;
        let panics = IntCounter::new(
            "medic_timer_panics_total",
            "Timers whose work panicked, each recorded as a failed attempt and retried",
        )?;
        let last_loop = Gauge::new(
            "medic_engine_last_loop_timestamp_seconds",
            "When this replica's timer engine last went round its claim loop (Unix time)",
        )?;
        for kind in TimerKind::ALL {
            fired.with_label_values(&[kind.as_str()]);
        }
        Ok(Self {
            scheduled: register(registry, scheduled),
            fired: register(registry, fired),
            cancelled: register(registry, cancelled),
            pending: register(registry, pending),
            lateness: register(registry, lateness),
            attempts: register(registry, attempts),
            send_duration: register(registry, send_duration),
            leases_lost: register(registry, leases_lost),
            panics: register(registry, panics),
            last_loop: register(registry, last_loop),
        })
    }
}

/// What people did, whichever way they came.
#[derive(Clone)]
pub struct ActMetrics {
    /// `medic_acts_total{act, surface, outcome}`: `done`, `unchanged` (acknowledged already,
    /// silenced long enough already), `refused` (role, limits, state) or `failed` (the database
    /// or Alertmanager).
    pub total: IntCounterVec,
}

impl ActMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let total = IntCounterVec::new(
            Opts::new(
                "medic_acts_total",
                "What people did through the API, the console, Slack and PagerDuty, by act, surface and outcome",
            ),
            &["act", "surface", "outcome"],
        )?;
        Ok(Self {
            total: register(registry, total),
        })
    }
}

/// Retention: rows pruned, by table.
#[derive(Clone)]
pub struct RetentionMetrics {
    /// `medic_pruned_rows_total{table}`.
    pub pruned: IntCounterVec,
}

impl RetentionMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let pruned = IntCounterVec::new(
            Opts::new(
                "medic_pruned_rows_total",
                "History rows pruned by retention, by table",
            ),
            &["table"],
        )?;
        for table in [
            "deliveries",
            "timer_attempts",
            "incidents",
            "alerts",
            "timers",
            "remediations",
            "audit_events",
        ] {
            pruned.with_label_values(&[table]);
        }
        Ok(Self {
            pruned: register(registry, pruned),
        })
    }
}

/// Cluster context: how long gathering took, and what could not be read.
#[derive(Clone)]
pub struct ContextMetrics {
    /// `medic_context_gather_seconds`.
    pub gather: Histogram,
    /// `medic_context_errors_total{kind}`.
    pub errors: IntCounterVec,
}

impl ContextMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let gather = Histogram::with_opts(
            HistogramOpts::new(
                "medic_context_gather_seconds",
                "Time to gather an incident's cluster context, deadline included",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0]),
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "medic_context_errors_total",
                "Parts of cluster context that could not be read, by kind",
            ),
            &["kind"],
        )?;
        for kind in ContextErrorKind::ALL {
            errors.with_label_values(&[kind.as_str()]);
        }
        Ok(Self {
            gather: register(registry, gather),
            errors: register(registry, errors),
        })
    }

    /// One gathering: its duration and its errors.
    pub fn observe(&self, seconds: f64, errors: impl Iterator<Item = ContextErrorKind>) {
        self.gather.observe(seconds);
        for kind in errors {
            self.errors.with_label_values(&[kind.as_str()]).inc();
        }
    }
}

/// Remediation: every decision, how long it took, and every Kubernetes call.
#[derive(Clone)]
pub struct RemediationMetrics {
    /// `medic_remediations_total{action, result}`.
    pub remediations: IntCounterVec,
    /// `medic_remediation_duration_seconds{action}`.
    pub duration: HistogramVec,
    /// `medic_kubernetes_requests_total{verb, code}`.
    pub kube_requests: IntCounterVec,
    /// `medic_remediation_verifications_total{action, result}`: `fixed`, `not_fixed` or
    /// `relapsed`.
    pub verifications: IntCounterVec,
    /// `medic_remediation_rule_verifications_total{rule, result}`: the same by rule, for the
    /// dashboard's "fixed by medic".
    pub rule_verifications: IntCounterVec,
    /// `medic_remediation_outcomes_total{rule, action, outcome}`: what each step came to
    /// (fixed, relapsed, not_fixed, failed, skipped).
    pub outcomes: IntCounterVec,
    /// `medic_remediation_observed_outcomes_total{rule, action, outcome}`: the same for steps
    /// of rules in `mode: observe`, which changed nothing (kept apart, so that a fix rate read
    /// from the outcomes counts only what medic did).
    pub observed_outcomes: IntCounterVec,
    /// `medic_remediation_paused`: 1 while an admin has paused remediation.
    pub paused: IntGauge,
    /// `medic_maintenance_windows_active`: windows in force now.
    pub windows_active: IntGauge,
}

fn remediation_metrics(registry: &Registry) -> prometheus::Result<RemediationMetrics> {
    let remediations = IntCounterVec::new(
        Opts::new(
            "medic_remediations_total",
            "Remediation decisions, by action and result",
        ),
        &["action", "result"],
    )?;
    let duration = HistogramVec::new(
        HistogramOpts::new(
            "medic_remediation_duration_seconds",
            "Time from taking a remediation to recording its outcome, by action",
        )
        .buckets(vec![
            0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0,
        ]),
        &["action"],
    )?;
    let kube_requests = IntCounterVec::new(
        Opts::new(
            "medic_kubernetes_requests_total",
            "Kubernetes API calls, by verb and status code",
        ),
        &["verb", "code"],
    )?;
    let verifications = IntCounterVec::new(
        Opts::new(
            "medic_remediation_verifications_total",
            "Remediation steps verified after verify_within and hold, by action and result (fixed, not_fixed, relapsed)",
        ),
        &["action", "result"],
    )?;
    let rule_verifications = IntCounterVec::new(
        Opts::new(
            "medic_remediation_rule_verifications_total",
            "Remediation steps verified after verify_within and hold, by rule and result (fixed, not_fixed, relapsed)",
        ),
        &["rule", "result"],
    )?;
    let outcomes = IntCounterVec::new(
        Opts::new(
            "medic_remediation_outcomes_total",
            "What remediation steps came to, by rule, action and outcome (fixed, relapsed, not_fixed, failed, skipped)",
        ),
        &["rule", "action", "outcome"],
    )?;
    let observed_outcomes = IntCounterVec::new(
        Opts::new(
            "medic_remediation_observed_outcomes_total",
            "What remediation steps of rules in mode: observe would have come to (nothing was done), by rule, action and outcome (fixed, relapsed, not_fixed, failed, skipped)",
        ),
        &["rule", "action", "outcome"],
    )?;
    let paused = IntGauge::new(
        "medic_remediation_paused",
        "1 while remediation is paused (PUT /api/v1/remediation/pause)",
    )?;
    let windows_active = IntGauge::new(
        "medic_maintenance_windows_active",
        "Maintenance windows in force now",
    )?;
    Ok(RemediationMetrics {
        remediations: register(registry, remediations),
        duration: register(registry, duration),
        kube_requests: register(registry, kube_requests),
        verifications: register(registry, verifications),
        rule_verifications: register(registry, rule_verifications),
        outcomes: register(registry, outcomes),
        observed_outcomes: register(registry, observed_outcomes),
        paused: register(registry, paused),
        windows_active: register(registry, windows_active),
    })
}

impl RemediationMetrics {
    /// Starts the verification series of every step that verifies at zero, so that
    /// `increase()` sees the first verification after a restart too.
    pub fn expect_verifications(&self, rules: &crate::plan::Rules) {
        for rule in rules.iter() {
            for step in rule.remediate.iter().filter(|step| step.verify_within.is_some()) {
                for result in [
                    Verification::Fixed,
                    Verification::NotFixed,
                    Verification::Relapsed,
                ] {
                    self.verifications
                        .with_label_values(&[step.action.as_str(), result.as_str()]);
                    self.rule_verifications
                        .with_label_values(&[&rule.name, result.as_str()]);
                }
            }
        }
    }
}

/// The database connection pools (`main`, `read`), read at scrape time.
#[derive(Clone)]
pub struct PoolMetrics {
    /// Connections by pool and state: `in_use` or `idle`.
    pub connections: IntGaugeVec,
    /// Largest size of each pool.
    pub max: IntGaugeVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are fixed and distinct, so registration can only fail on a programming error.
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered twice");
    metric
}

impl HttpMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "medic_http_requests_total",
                "HTTP requests served, by route, method and status code",
            ),
            &["route", "method", "code"],
        )?;
        let buckets = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "medic_http_request_duration_seconds",
                "Time to answer an HTTP request",
            )
            .buckets(buckets),
            &["route", "method"],
        )?;
        Ok(Self {
            requests: register(registry, requests),
            duration: register(registry, duration),
        })
    }

    /// Counts one answered request.
    pub fn observe(&self, route: &str, method: &str, code: u16, started: Instant) {
        self.requests
            .with_label_values(&[route, method, &code.to_string()])
            .inc();
        self.duration
            .with_label_values(&[route, method])
            .observe(started.elapsed().as_secs_f64());
    }
}

impl IntakeMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let notifications = IntCounterVec::new(
            Opts::new(
                "medic_notifications_total",
                "Alertmanager notifications received, by outcome",
            ),
            &["outcome"],
        )?;
        let alerts = IntCounterVec::new(
            Opts::new(
                "medic_alerts_received_total",
                "Alerts in accepted notifications, by alert status",
            ),
            &["status"],
        )?;
        let duplicates = IntCounter::new(
            "medic_duplicate_deliveries_total",
            "Notifications that changed nothing: retries, HA duplicates and repeats",
        )?;
        let opened = IntCounter::new("medic_incidents_opened_total", "Incidents opened")?;
        let resolved = IntCounter::new("medic_incidents_resolved_total", "Incidents resolved")?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "medic_intake_batch_size",
                "Notifications recorded per database transaction",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 30.0]),
        )?;
        for outcome in [
            "recorded",
            "duplicate",
            "rejected",
            "unavailable",
            "error",
            "heartbeat",
        ] {
            notifications.with_label_values(&[outcome]);
        }
        for status in ["firing", "resolved"] {
            alerts.with_label_values(&[status]);
        }
        Ok(Self {
            notifications: register(registry, notifications),
            alerts: register(registry, alerts),
            duplicates: register(registry, duplicates),
            incidents_opened: register(registry, opened),
            incidents_resolved: register(registry, resolved),
            batch_size: register(registry, batch_size),
        })
    }
}

impl PoolMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let connections = IntGaugeVec::new(
            Opts::new(
                "medic_db_pool_connections",
                "Database connections by pool (main: intake, engine, changes; read: the API's, console's and SLO reads) and state",
            ),
            &["pool", "state"],
        )?;
        let max = IntGaugeVec::new(
            Opts::new(
                "medic_db_pool_max_connections",
                "Largest size each database pool may grow to",
            ),
            &["pool"],
        )?;
        Ok(Self {
            connections: register(registry, connections),
            max: register(registry, max),
        })
    }

    fn update(&self, store: &Store) {
        for name in PoolName::ALL {
            let status = store.pool_status(name);
            let idle = status.available as i64;
            let pool = name.as_str();
            self.connections.with_label_values(&[pool, "idle"]).set(idle);
            self.connections
                .with_label_values(&[pool, "in_use"])
                .set(status.size as i64 - idle);
            self.max.with_label_values(&[pool]).set(status.max_size as i64);
        }
    }
}

impl Metrics {
    /// All of medic's metrics plus the process collector, on a fresh registry.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            http: HttpMetrics::new(&registry)?,
            intake: IntakeMetrics::new(&registry)?,
            pool: PoolMetrics::new(&registry)?,
            timers: TimerMetrics::new(&registry)?,
            remediation: remediation_metrics(&registry)?,
            retention: RetentionMetrics::new(&registry)?,
            acts: ActMetrics::new(&registry)?,
            context: ContextMetrics::new(&registry)?,
            heartbeats: HeartbeatMetrics::new(&registry)?,
            registry,
            pending_counted: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// The text exposition format, with the pool gauges read now and the pending-timer gauge
    /// read at most once a second (however many scrape).
    pub async fn render(&self, store: &Store) -> String {
        self.pool.update(store);
        let mut counted = self.pending_counted.lock().await;
        if counted.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            // A scrape must not hang on a database that is away: keep the last value then.
            let pending = tokio::time::timeout(Duration::from_millis(500), store.pending_timers()).await;
            match pending {
                Ok(Ok(pending)) => self.timers.pending.set(pending),
                Ok(Err(e)) => tracing::debug!(error = %e, "pending timers not counted"),
                Err(_) => tracing::debug!("pending timers not counted: the database is slow"),
            }
            let heartbeats =
                tokio::time::timeout(Duration::from_millis(500), self.heartbeats.count(store)).await;
            if !matches!(heartbeats, Ok(Ok(()))) {
                tracing::debug!("heartbeats not counted");
            }
            *counted = Some(Instant::now());
        }
        drop(counted);
        let mut buffer = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}
