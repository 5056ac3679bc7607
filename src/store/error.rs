//! A database failure, split by whether a retry can fix it: what every query of the store
//! returns.

use deadpool_postgres::PoolError;

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
