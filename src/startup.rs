//! Building the application, once: the compiled plan, the store, metrics, the HTTP server on
//! its listener, the timer engine with its remediation runner, and the background task that
//! brings the schema up to date.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{dev::Server, middleware::from_fn, web, App, HttpServer};
use anyhow::Context as _;
use tokio::task::JoinHandle;

use crate::{
    config::Settings,
    engine::{Engine, EngineHandle},
    http::{self, Authenticator, State},
    intake::Recorder,
    metrics::Metrics,
    notify::Notifiers,
    plan::Plan,
    remediation::{Kube, Runner},
    store::Store,
};

/// A built medic: listening, not yet serving until awaited.
pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    schema: JoinHandle<()>,
    /// The timer engine, unless `engine.enabled` is false.
    engine: Option<EngineHandle>,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and starts preparing the schema in the
    /// background, so medic serves `/healthz` and answers 503 while the database is away.
    pub async fn build(settings: Settings, plan: Plan) -> anyhow::Result<Self> {
        let Plan {
            credentials,
            notifiers,
            rules,
            guard_rails,
            databases,
        } = plan;
        if credentials.is_empty() {
            tracing::warn!("no credential configured: anyone can post to /webhook and read /api");
        }
        let rules = Arc::new(rules);
        let store = Store::new(&settings.database)?;
        let metrics = Metrics::new().context("registering metrics")?;
        let engine = if settings.engine.enabled {
            let notifiers = Notifiers::new(notifiers, settings.engine.request_timeout.0)?;
            let kube = kube(&settings, &metrics).await;
            let runner = Runner::new(
                store.clone(),
                rules.clone(),
                guard_rails,
                kube,
                databases,
                metrics.remediation.clone(),
            );
            let engine = Engine::new(
                store.clone(),
                notifiers,
                rules.clone(),
                &settings.engine,
                metrics.timers.clone(),
            )
            .with_remediations(Arc::new(runner));
            let pg_config = settings
                .database
                .pg_config()
                .map_err(|p| anyhow::anyhow!("{p}"))?;
            Some(engine.spawn(
                pg_config,
                settings.engine.concurrency,
                settings.engine.safety_poll.0,
            ))
        } else {
            tracing::info!("timer engine disabled in this process");
            None
        };
        let schema = tokio::spawn(prepare_schema(store.clone(), settings.database.migrate_on_start));

        let listener = TcpListener::bind(settings.server.listen)
            .with_context(|| format!("binding {}", settings.server.listen))?;
        let port = listener.local_addr()?.port();
        let recorder = Recorder::spawn(
            store.clone(),
            settings.database.writers,
            settings.database.max_batch,
            metrics.intake.batch_size.clone(),
        );
        let state = web::Data::new(State {
            store: store.clone(),
            recorder,
            rules,
            metrics,
            body_limit: settings.server.body_limit_bytes,
            retry_after: settings.database.retry_after_seconds,
        });
        let authenticator = web::Data::new(Authenticator::new(credentials));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(authenticator.clone())
                .wrap(from_fn(http::observe))
                .configure(http::routes)
        })
        .shutdown_timeout(settings.server.shutdown_timeout_seconds);
        if let Some(workers) = settings.server.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        tracing::info!(listen = %settings.server.listen, port, "medic listening");
        Ok(Self {
            port,
            server,
            store,
            schema,
            engine,
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

    /// Serves until stopped; in-flight requests finish, the engine finishes the sends it
    /// started, then the pool is closed.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.schema.abort();
        if let Some(engine) = self.engine {
            engine.stop().await;
        }
        self.store.close();
        tracing::info!("medic stopped");
        result
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
