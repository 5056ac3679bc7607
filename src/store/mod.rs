//! All of medic's SQL. Everything outside this module speaks domain types.

pub mod audit;
pub mod console;
pub mod context;
pub mod control;
pub mod demotions;
pub mod effectiveness;
pub mod heartbeats;
pub mod incidents;
pub mod integrations;
pub mod listen;
pub mod migrations;
pub mod remediations;
pub mod replay;
pub mod retention;
pub mod slo;
pub mod timer_work;
pub mod timers;
pub mod tls;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};

use self::tls::Connector;
use crate::config::DatabaseSettings;

/// Handle on the database: two connection pools plus whether the schema is ready to use.
///
/// Intake, the engine and everything that changes state use the main pool; the API's, the
/// console's and the SLO report's reads use [`Store::reads`], a view of the same store whose
/// connections come from a pool of their own, with a statement timeout of their own, so that
/// however many people search, intake never waits for a connection behind them.
#[derive(Clone)]
pub struct Store {
    /// The pool this view takes its connections from.
    pool: Pool,
    /// Which one that is.
    which: PoolName,
    /// Both pools, for the other view and the gauges.
    pools: Arc<Pools>,
    /// How the pool connects, for connections of its own (the engine's LISTEN).
    connector: Connector,
    /// Set once this process has seen the schema at the version it was built for; until then
    /// every request checks it first.
    schema_ready: Arc<AtomicBool>,
}

/// The two pools, by name.
struct Pools {
    main: Pool,
    read: Pool,
}

/// A pool's name: the closed set of values of the gauges' `pool` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolName {
    /// Intake, the engine, remediation, retention and every change people make.
    Main,
    /// The API's, the console's and the SLO report's reads.
    Read,
}

impl PoolName {
    /// Every pool.
    pub const ALL: [PoolName; 2] = [PoolName::Main, PoolName::Read];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolName::Main => "main",
            PoolName::Read => "read",
        }
    }
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
    /// A read ran past its statement timeout (`database.read_statement_timeout`) and
    /// Postgres cancelled it: the query was too expensive.
    #[error("the query ran longer than its deadline and was cancelled")]
    TooExpensive,
    /// Every connection of the read pool stayed busy past `database.read_acquire_timeout`.
    #[error("every read connection is busy")]
    Busy,
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
        } else if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
            StoreError::TooExpensive
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
    /// Builds the pools; connections are opened lazily, so this succeeds while the database is down.
    pub fn new(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let connection = settings.connection().map_err(|p| anyhow::anyhow!("{p}"))?;
        let connector = Connector::new(connection).map_err(|e| anyhow::anyhow!("database.url: {e}"))?;
        let read_connection = settings.read_connection().map_err(|p| anyhow::anyhow!("{p}"))?;
        let read_connector =
            Connector::new(read_connection).map_err(|e| anyhow::anyhow!("database.url: {e}"))?;
        let connect = Duration::from_secs(settings.connect_timeout_seconds);
        let main = pool(
            &connector,
            settings.max_connections,
            Duration::from_secs(settings.acquire_timeout_seconds),
            connect,
        )?;
        let read = pool(
            &read_connector,
            settings.read_connections,
            settings.read_acquire_timeout.0,
            connect,
        )?;
        Ok(Self {
            pool: main.clone(),
            which: PoolName::Main,
            pools: Arc::new(Pools { main, read }),
            connector,
            schema_ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The same store, reading through the read pool: what the API, the console and the SLO
    /// report use to look at things.
    pub fn reads(&self) -> Store {
        Store {
            pool: self.pools.read.clone(),
            which: PoolName::Read,
            ..self.clone()
        }
    }

    /// A pooled connection, refused while the schema is not at this build's version.
    pub async fn client(&self) -> Result<Object, StoreError> {
        let client = match self.pool.get().await {
            // Waiting for a connection, not making one: the readers are busy, the database is not away.
            Err(PoolError::Timeout(TimeoutType::Wait)) if self.which == PoolName::Read => {
                return Err(StoreError::Busy)
            }
            other => other?,
        };
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

    /// Connection counts of one pool, for its gauges.
    pub fn pool_status(&self, name: PoolName) -> deadpool_postgres::Status {
        match name {
            PoolName::Main => self.pools.main.status(),
            PoolName::Read => self.pools.read.status(),
        }
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

    /// Closes both pools: waiting requests fail, idle connections are dropped.
    pub fn close(&self) {
        self.pools.main.close();
        self.pools.read.close();
    }
}

/// A pool of `size` connections made by `connector`, waiting at most `wait` for one.
fn pool(connector: &Connector, size: usize, wait: Duration, connect: Duration) -> anyhow::Result<Pool> {
    let manager = Manager::from_config(
        connector.config.clone(),
        connector.tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(connect))
        .recycle_timeout(Some(connect))
        .build()?)
}
