//! All of medic's SQL. Everything outside this module speaks domain types.

pub mod audit;
pub mod console;
pub mod control;
pub mod incidents;
pub mod integrations;
pub mod listen;
pub mod migrations;
pub mod remediations;
pub mod replay;
pub mod retention;
pub mod slo;
pub mod timers;
pub mod tls;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};

use self::tls::Connector;
use crate::config::DatabaseSettings;

/// Handle on the database: a connection pool plus whether the schema is ready to use.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// How the pool connects, for connections of its own (the engine's LISTEN).
    connector: Connector,
    /// Set once this process has seen the schema at the version it was built for; until then
    /// every request checks it first.
    schema_ready: Arc<AtomicBool>,
}

/// A database failure, split by whether a retry can fix it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, is restarting, or the schema is not migrated yet.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused the caller's input (a regular expression it cannot compile).
    #[error("{0}")]
    Rejected(String),
    /// Anything else: a bug or a schema mismatch; retrying will not help.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if is_unavailable(&e) {
            StoreError::Unavailable(error_chain(&e))
        } else if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_REGULAR_EXPRESSION) {
            StoreError::Rejected(error_chain(&e))
        } else {
            StoreError::Other(anyhow::Error::new(e))
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => e.into(),
            PoolError::Timeout(_) | PoolError::Closed => StoreError::Unavailable(e.to_string()),
            other => StoreError::Other(anyhow::Error::new(other)),
        }
    }
}

/// An error with its causes, `a: b: c`: a TLS failure says why (an unknown CA, a name the
/// certificate does not carry), not only that the handshake failed.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// What a retry (on this server after a restart, or on a promoted standby) can fix: the
/// connection lost or refused (class 08), the server shutting down, starting or cancelling
/// for recovery (57P), too many connections (53300), or a server that turned read-only
/// under us (25006: a demoted primary during failover).
fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let code = code.code();
        return code.starts_with("08") || code.starts_with("57P") || matches!(code, "53300" | "25006");
    }
    std::error::Error::source(e).is_some_and(|source| source.is::<std::io::Error>())
}

impl Store {
    /// Builds the pool; connections are opened lazily, so this succeeds while the database is down.
    pub fn new(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let connection = settings.connection().map_err(|p| anyhow::anyhow!("{p}"))?;
        let connector = Connector::new(connection).map_err(|e| anyhow::anyhow!("database.url: {e}"))?;
        let manager = Manager::from_config(
            connector.config.clone(),
            connector.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let connect = Duration::from_secs(settings.connect_timeout_seconds);
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(settings.acquire_timeout_seconds)))
            .create_timeout(Some(connect))
            .recycle_timeout(Some(connect))
            .build()?;
        Ok(Self {
            pool,
            connector,
            schema_ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A pooled connection, refused while the schema is not at this build's version.
    pub async fn client(&self) -> Result<Object, StoreError> {
        let client = self.pool.get().await?;
        if !self.schema_ready.load(Ordering::Acquire) && !self.check_schema(&client).await? {
            return Err(StoreError::Unavailable(
                "database schema is not migrated yet".into(),
            ));
        }
        Ok(client)
    }

    /// How to open a connection of one's own to this database.
    pub fn connector(&self) -> Connector {
        self.connector.clone()
    }

    /// Connection counts for the pool gauges.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// Whether the database answers and holds the schema this build needs.
    pub async fn is_ready(&self) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        self.check_schema(&client).await
    }

    /// Looks at the schema; once current (whoever migrated it), requests go through.
    async fn check_schema(&self, client: &Object) -> Result<bool, StoreError> {
        let current = migrations::is_current(client).await?;
        if current {
            self.schema_ready.store(true, Ordering::Release);
        }
        Ok(current)
    }

    /// Applies pending migrations, then lets requests through.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let mut client = self.pool.get().await?;
        let applied = migrations::run(&mut client).await?;
        self.schema_ready.store(true, Ordering::Release);
        Ok(applied)
    }

    /// Waits until the schema is current (another replica or `medic migrate` applies it).
    pub async fn await_schema(&self) -> Result<(), StoreError> {
        if self.is_ready().await? {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "database schema is not migrated yet".into(),
            ))
        }
    }

    /// Closes the pool: waiting requests fail, idle connections are dropped.
    pub fn close(&self) {
        self.pool.close();
    }
}
