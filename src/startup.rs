//! Building the application, once: the compiled plan, the store, metrics, the HTTP server on
//! its listener, the timer engine with its remediation runner, and the background task that
//! brings the schema up to date.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{dev::Server, middleware::from_fn, web, App, HttpServer};
use anyhow::Context as _;
use tokio::task::JoinHandle;

use crate::{
    acts::{Acts, WindowLimits},
    config::Settings,
    context::Gatherer,
    control::Control,
    engine::{pulse::Pulse, Engine, EngineHandle, Fault},
    http::{self, Authenticator, EngineHealth, ReadLimits, State},
    intake::Recorder,
    metrics::Metrics,
    notify::Notifiers,
    plan::{Plan, Rules},
    remediation::{Kube, Runner},
    retention,
    slo::prometheus::Prometheus,
    store::Store,
};

/// A built medic: listening, not yet serving until awaited.
pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    schema: JoinHandle<()>,
    /// Reads credential files again as they change.
    rotation: JoinHandle<()>,
    /// Prunes history (one replica at a time).
    pruner: JoinHandle<()>,
    /// Reads maintenance windows and the pause every second.
    control: JoinHandle<()>,
    /// The timer engine, unless `engine.enabled` is false.
    engine: Option<EngineHandle>,
    /// The tasks recording notifications; supervised like the engine.
    writers: Vec<JoinHandle<()>>,
    /// How long sends in flight may take to finish after SIGTERM.
    grace: Duration,
}

/// What tests may change in a built medic.
#[derive(Default)]
pub struct Hooks {
    /// Awaited with each timer before it fires (a panic, a hang).
    pub fault: Option<Fault>,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and starts preparing the schema in the
    /// background, so medic serves `/healthz` and answers 503 while the database is away.
    pub async fn build(settings: Settings, plan: Plan) -> anyhow::Result<Self> {
        Self::build_with(settings, plan, Hooks::default()).await
    }

    /// [`Application::build`], with test hooks.
    pub async fn build_with(settings: Settings, plan: Plan, hooks: Hooks) -> anyhow::Result<Self> {
        for warning in &plan.warnings {
            tracing::warn!(key = %warning.path, "{}", warning.message);
        }
        if plan.credentials.allow_unauthenticated {
            tracing::warn!("allow_unauthenticated: anyone can post to /webhook and act on the API");
        }
        let rotation = tokio::spawn(reload_secrets(plan.credentials.rotating()));
        let store = Store::new(&settings.database)?;
        let metrics = Metrics::new().context("registering metrics")?;
        let rules = Arc::new(plan.rules);
        metrics.remediation.expect_verifications(&rules);
        let heartbeats = Arc::new(plan.heartbeats);
        metrics.heartbeats.expect(&heartbeats);
        let control = Control::new();
        let notifiers = Notifiers::new(plan.notifiers, settings.engine.request_timeout.0)?
            .with_store(store.clone(), &plan.integrations.instance);
        let parts = EngineParts {
            notifiers: notifiers.clone(),
            guard_rails: plan.guard_rails.clone(),
            databases: plan.databases,
            control: control.clone(),
            context: plan.context,
            heartbeats: heartbeats.clone(),
        };
        let engine = engine(&settings, parts, &store, &rules, &metrics, hooks).await?;
        let schema = tokio::spawn(prepare_schema(store.clone(), settings.database.migrate_on_start));
        let pruner = tokio::spawn(retention::run(
            store.clone(),
            settings.retention.clone(),
            metrics.retention.clone(),
        ));
        let control_task = tokio::spawn(control.clone().run(store.clone(), metrics.remediation.clone()));
        let (recorder, writers) = Recorder::spawn(
            store.clone(),
            settings.database.writers,
            settings.database.max_batch,
            metrics.intake.batch_size.clone(),
        );
        let acts = Acts::new(
            store.clone(),
            metrics.clone(),
            control.clone(),
            notifiers.client().clone(),
            plan.integrations.alertmanager.clone(),
            WindowLimits::new(&settings.maintenance),
        );
        let state = State {
            acts,
            store: store.clone(),
            reads: store.reads(),
            recorder,
            rules,
            heartbeats,
            guard_rails: Arc::new(plan.guard_rails),
            metrics,
            control,
            notifiers,
            integrations: plan.integrations,
            body_limit: settings.server.body_limit_bytes,
            retry_after: settings.database.retry_after_seconds,
            readiness: Default::default(),
            engine: engine.as_ref().map(|_| EngineHealth {
                stall_after: settings.engine.stall_after.0,
            }),
            slos: Arc::new(plan.slos),
            prometheus: Prometheus::new(&settings.prometheus, settings.engine.request_timeout.0)?,
        };
        let (server, port) = http_server(&settings, state, Authenticator::new(plan.credentials)?)?;
        Ok(Self {
            port,
            server,
            store,
            schema,
            rotation,
            pruner,
            control: control_task,
            engine,
            writers,
            grace: Duration::from_secs(settings.server.shutdown_timeout_seconds),
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Lets the caller stop the server (tests; SIGTERM and SIGINT are handled already).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Aborts the engine's task, as a crash of that task alone would (tests of supervision).
    pub fn abort_engine(&self) {
        if let Some(engine) = &self.engine {
            engine.abort_task();
        }
    }

    /// Serves until stopped (SIGTERM, SIGINT): in-flight requests finish, the engine stops
    /// claiming and lets the sends and remediations it started finish within the grace period
    /// (`server.shutdown_timeout_seconds`), then the pool is closed. What is still running
    /// then is left to its lease: another replica sends an unfinished message again under the
    /// same dedup key, and an unfinished remediation holds its target until
    /// `remediation.action_timeout`, then is recorded as interrupted, never run twice. If the engine, its LISTEN task or a writer ends on
    /// its own, medic stops and returns an error, so the process exits non-zero and
    /// Kubernetes restarts it: a medic that answers probes but fires no timer would fail
    /// silently, and all of its state is in Postgres anyway.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let failure = tokio::select! {
            result = &mut self.server => Ok(result),
            failure = supervise(self.engine.as_mut(), &mut self.writers) => Err(failure),
        };
        let result = match failure {
            Ok(result) => result,
            Err(failure) => {
                tracing::error!(reason = %failure, "a task medic cannot run without stopped; exiting to be restarted");
                // The server's own future runs the stop: drive both together.
                let _ = tokio::join!(handle.stop(true), &mut self.server);
                self.engine = None;
                Err(std::io::Error::other(failure))
            }
        };
        self.schema.abort();
        self.rotation.abort();
        self.pruner.abort();
        self.control.abort();
        if let Some(engine) = self.engine {
            if tokio::time::timeout(self.grace, engine.stop()).await.is_err() {
                tracing::warn!(
                    grace_seconds = self.grace.as_secs(),
                    "work still running after the grace period is left to its lease"
                );
            }
        }
        self.store.close();
        tracing::info!("medic stopped");
        result
    }
}

/// What the plan gives the engine and its remediation runner.
struct EngineParts {
    notifiers: Notifiers,
    guard_rails: crate::plan::GuardRails,
    databases: std::collections::BTreeMap<String, crate::plan::TargetDatabase>,
    control: Arc<Control>,
    /// What the context gatherer reads, when it is on.
    context: crate::plan::ContextPlan,
    heartbeats: Arc<crate::plan::Heartbeats>,
}

/// The timer engine with its remediation runner, started, unless disabled.
async fn engine(
    settings: &Settings,
    parts: EngineParts,
    store: &Store,
    rules: &Arc<Rules>,
    metrics: &Metrics,
    hooks: Hooks,
) -> anyhow::Result<Option<EngineHandle>> {
    if !settings.engine.enabled {
        tracing::info!("timer engine disabled in this process");
        return Ok(None);
    }
    let kube = kube(settings, metrics).await;
    // Without a cluster, context timers fail with the reason (recorded, never shown as context).
    let gatherer = match (&kube, parts.context.enabled) {
        (Ok(cluster), true) => {
            let gatherer = Gatherer::new(
                cluster.clone(),
                parts.context,
                store.clone(),
                metrics.context.clone(),
            );
            Some(Arc::new(gatherer))
        }
        _ => None,
    };
    let runner = Runner::new(
        store.clone(),
        rules.clone(),
        parts.guard_rails,
        kube,
        parts.databases,
        parts.control.clone(),
        metrics.remediation.clone(),
    )
    .with_prometheus(Prometheus::new(
        &settings.prometheus,
        settings.engine.request_timeout.0,
    )?);
    let mut engine = Engine::new(
        store.clone(),
        parts.notifiers,
        rules.clone(),
        &settings.engine,
        metrics.timers.clone(),
    )
    .with_remediations(Arc::new(runner))
    .with_control(parts.control)
    .with_heartbeats(parts.heartbeats, metrics.heartbeats.clone());
    if let Some(out) = &settings.heartbeat_out {
        engine = engine.with_pulse(pulse(out, settings, metrics)?);
    }
    if let Some(fault) = hooks.fault {
        engine = engine.with_fault(fault);
    }
    if let Some(gatherer) = gatherer {
        engine = engine.with_context(gatherer);
    }
    let handle = engine.spawn(settings.engine.concurrency, settings.engine.safety_poll.0);
    Ok(Some(handle))
}

/// medic's pulse outward, to `heartbeat_out.url`.
fn pulse(
    out: &crate::config::HeartbeatOutSettings,
    settings: &Settings,
    metrics: &Metrics,
) -> anyhow::Result<Pulse> {
    let client = crate::outbound::client_builder()?
        .timeout(settings.engine.request_timeout.0)
        .build()
        .context("building heartbeat_out's HTTP client")?;
    Ok(Pulse {
        settings: out.clone(),
        client,
        last_loop: metrics.timers.last_loop.clone(),
        stall_after: settings.engine.stall_after.0,
        pings: metrics.heartbeats.pings.clone(),
    })
}

/// The HTTP server on its listener, and the port it got.
fn http_server(
    settings: &Settings,
    state: State,
    authenticator: Authenticator,
) -> anyhow::Result<(Server, u16)> {
    let listener = TcpListener::bind(settings.server.listen)
        .with_context(|| format!("binding {}", settings.server.listen))?;
    let port = listener.local_addr()?.port();
    let state = web::Data::new(state);
    let authenticator = web::Data::new(authenticator);
    // One count for every worker: a caller's reads may land on any of them.
    let read_limits = web::Data::from(ReadLimits::new(settings.server.read_concurrency_per_user));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(authenticator.clone())
            .app_data(read_limits.clone())
            .wrap(from_fn(http::observe))
            .configure(http::routes)
    })
    .shutdown_timeout(settings.server.shutdown_timeout_seconds);
    if let Some(workers) = settings.server.workers {
        server = server.workers(workers);
    }
    let server = server.listen(listener)?.run();
    tracing::info!(listen = %settings.server.listen, port, "medic listening");
    Ok((server, port))
}

/// Completes when a task medic cannot run without ends: the engine, its LISTEN task, or a
/// writer; pends forever when there is none.
async fn supervise(engine: Option<&mut EngineHandle>, writers: &mut [JoinHandle<()>]) -> String {
    let engine = async {
        match engine {
            Some(engine) => engine.ended().await,
            None => std::future::pending().await,
        }
    };
    let writer = async {
        if writers.is_empty() {
            return std::future::pending().await;
        }
        let (result, _, _) = futures_util::future::select_all(writers.iter_mut()).await;
        match result {
            Err(e) if e.is_panic() => "a notification writer panicked".to_owned(),
            _ => "a notification writer stopped".to_owned(),
        }
    };
    tokio::select! {
        failure = engine => failure,
        failure = writer => failure,
    }
}

/// The cluster if enabled and configured; otherwise why not (a failure recorded per action,
/// not fatal).
async fn kube(settings: &Settings, metrics: &Metrics) -> Result<Kube, String> {
    let kubernetes = &settings.kubernetes;
    if !kubernetes.enabled {
        return Err("kubernetes.enabled is false".to_owned());
    }
    let requests = metrics.remediation.kube_requests.clone();
    Kube::connect(
        kubernetes.kubeconfig.as_deref(),
        kubernetes.request_timeout.0,
        requests,
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "no Kubernetes configuration: actions on the cluster will fail");
        format!("no usable Kubernetes configuration: {e}")
    })
}

/// How often credential files are read again: a rotated Kubernetes Secret (an atomic rename or
/// the kubelet's symlink swap) takes effect within this, and the old value stops working.
const SECRET_RELOAD: Duration = Duration::from_secs(2);

/// Reads every file-backed credential again every [`SECRET_RELOAD`]; a file that cannot be
/// read keeps the value in force (logged once, until it can be read again).
async fn reload_secrets(secrets: Vec<crate::plan::Secret>) {
    if secrets.is_empty() {
        return;
    }
    let mut failing = vec![false; secrets.len()];
    loop {
        tokio::time::sleep(SECRET_RELOAD).await;
        for (secret, failing) in secrets.iter().zip(failing.iter_mut()) {
            let file = secret.file().map(|f| f.display().to_string()).unwrap_or_default();
            match secret.reload() {
                Ok(changed) => {
                    if changed {
                        tracing::info!(file, "credential file changed: the new value is in force");
                    }
                    *failing = false;
                }
                Err(e) if !*failing => {
                    tracing::warn!(file, error = %e, "credential file empty or unreadable: that credential is revoked until it has a value");
                    *failing = true;
                }
                Err(_) => {}
            }
        }
    }
}

/// Retries until the schema is current: applies migrations, or waits for another process to.
async fn prepare_schema(store: Store, migrate: bool) {
    let mut delay = Duration::from_millis(250);
    loop {
        let result = if migrate {
            store.migrate().await.map(|_| ())
        } else {
            store.await_schema().await
        };
        match result {
            Ok(()) => {
                tracing::info!("database schema ready");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database not ready")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}
