//! The handle on the database every query goes through: the main pool and the read pool, and
//! whether the schema is at the version this build needs.

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

use super::{error::StoreError, migrations, tls::Connector};
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
