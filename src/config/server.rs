//! Settings of the process itself: the HTTP listener and its credentials, medic's database,
//! and logging.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{
    jwt::{JwtSettings, OneOrMany},
    postgres::{PgConnection, SessionLimits},
    problem::Problem,
};
use crate::domain::{HumanDuration, Role};

/// The HTTP listener and what it accepts.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest accepted request body; Alertmanager groups of thousands of alerts fit in 1 MiB.
    pub body_limit_bytes: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_timeout_seconds: u64,
    /// HTTP worker threads; defaults to the number of CPUs.
    pub workers: Option<usize>,
    pub auth: AuthSettings,
    /// This installation's name, in PagerDuty dedup keys (`<instance>-incident-<id>`), so
    /// that two installations sharing a PagerDuty service never collide.
    pub instance: String,
    /// Reads of the API and the console one caller may have in flight at once (per user, or
    /// per source address when anonymous); one more is answered 429.
    pub read_concurrency_per_user: usize,
}

/// Who may call medic: Alertmanager's credential (`/webhook` only), and the people and tools
/// using the API, each with a role.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// Alertmanager's token for `http_config.authorization` (type Bearer); it may only post
    /// to `/webhook`.
    pub bearer_token: Option<SecretString>,
    /// File holding the token, e.g. a mounted Kubernetes Secret; surrounding whitespace is
    /// trimmed, and the file is read again when it changes.
    pub bearer_token_file: Option<PathBuf>,
    /// Alertmanager's credentials for `http_config.basic_auth`, instead of a token.
    pub basic_auth: Option<BasicAuthSettings>,
    /// People and tools using the API, each with a bearer token and a role.
    pub users: Vec<UserSettings>,
    /// Identity from an authenticating proxy (oauth2-proxy) in front of medic.
    pub proxy: Option<ProxySettings>,
    /// Issuers of JSON Web Tokens presented as `Authorization: Bearer` (one map, or a list).
    pub jwt: OneOrMany<JwtSettings>,
    /// Must be set explicitly to run without any credential (local trials only): then
    /// anyone may post alerts and act as `anonymous` with every role.
    pub allow_unauthenticated: bool,
}

/// One user of the API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    /// Recorded as who did what (an acknowledgement's `by`).
    pub name: String,
    pub role: Role,
    /// Sent as `Authorization: Bearer`; or `token_file`, read again when it changes.
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
    /// Their Slack user ID (`U…`): what they do with medic's Slack buttons is done as them.
    pub slack_user_id: Option<String>,
    /// Their PagerDuty user ID (`P…`): an acknowledgement in PagerDuty is theirs in medic.
    pub pagerduty_user_id: Option<String>,
}

/// An authenticating proxy that passes the user (and their groups) in headers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySettings {
    /// The header naming the user, e.g. `X-Forwarded-Email`.
    pub user_header: String,
    /// The header listing the user's groups, comma-separated, e.g. `X-Forwarded-Groups`.
    pub groups_header: Option<String>,
    /// Only peers in these networks (CIDR, or single addresses) may set the headers; from
    /// any other peer they are ignored.
    pub trusted_sources: Vec<String>,
    /// Group to role; a user gets the highest role of their groups.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// The role of a user in none of `roles`' groups; none by default (403).
    pub default_role: Option<Role>,
    /// A file holding a secret the proxy sends with every request (`secret_header`): identity
    /// headers count only on requests that carry it, so another pod in a trusted range cannot
    /// claim to be anyone. Required unless every trusted source is a single address.
    pub secret_file: Option<PathBuf>,
    /// The header carrying that secret.
    #[serde(default = "default_proxy_secret_header")]
    pub secret_header: String,
}

fn default_proxy_secret_header() -> String {
    "X-Medic-Proxy-Secret".into()
}

/// HTTP basic authentication.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthSettings {
    pub username: String,
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
}

/// The Postgres database that holds all of medic's state.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/db` or a key=value connection string.
    pub url: SecretString,
    /// Connections in this replica's pool for intake, the engine and everything but reads.
    pub max_connections: usize,
    /// Connections of the pool of their own that the API's, the console's and the SLO
    /// report's reads use, so that readers never take intake's.
    pub read_connections: usize,
    /// How long a read waits for one of those before answering 503 (`Retry-After: 1`).
    pub read_acquire_timeout: HumanDuration,
    /// Longest statement of a read: Postgres cancels it then, and the caller gets 503 saying
    /// the query was too expensive.
    pub read_statement_timeout: HumanDuration,
    /// How long to wait for a new connection before calling the database unreachable.
    pub connect_timeout_seconds: u64,
    /// How long a request waits for a free pooled connection before answering 503.
    pub acquire_timeout_seconds: u64,
    /// `Retry-After` sent with a 503 when the database is unreachable.
    pub retry_after_seconds: u64,
    /// Apply migrations when `serve` starts (otherwise run `medic migrate`).
    pub migrate_on_start: bool,
    /// Longest statement medic's sessions may run (the server ends it after this); a
    /// migration may take longer.
    pub statement_timeout: HumanDuration,
    /// Longest a session may sit idle inside a transaction before the server ends it.
    pub idle_in_transaction_timeout: HumanDuration,
    /// TCP keepalive idle time: a server that vanished without closing is noticed after it.
    pub keepalives_idle: HumanDuration,
    /// Tasks recording notifications, each with one pooled connection at a time.
    pub writers: usize,
    /// Most notifications recorded in one transaction (group commit).
    pub max_batch: usize,
}

/// Logging output.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// How log events are written to stdout.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9095)),
            body_limit_bytes: 1024 * 1024,
            shutdown_timeout_seconds: 30,
            workers: None,
            auth: AuthSettings::default(),
            instance: "medic".into(),
            read_concurrency_per_user: 4,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://medic@localhost:5432/medic"),
            max_connections: 16,
            read_connections: 4,
            read_acquire_timeout: HumanDuration(Duration::from_secs(1)),
            read_statement_timeout: HumanDuration(Duration::from_secs(5)),
            connect_timeout_seconds: 5,
            acquire_timeout_seconds: 2,
            retry_after_seconds: 5,
            migrate_on_start: true,
            statement_timeout: HumanDuration(Duration::from_secs(30)),
            idle_in_transaction_timeout: HumanDuration(Duration::from_secs(60)),
            keepalives_idle: HumanDuration(Duration::from_secs(30)),
            writers: 4,
            max_batch: 16,
        }
    }
}

impl DatabaseSettings {
    /// The connection settings with every session's limits; fails on a malformed URL without
    /// echoing it (it holds a password).
    pub fn connection(&self) -> Result<PgConnection, Problem> {
        self.session("medic", self.statement_timeout.0)
    }

    /// The connection settings of the read pool: its own statement timeout, and its own
    /// name in `pg_stat_activity` (`medic-read`).
    pub fn read_connection(&self) -> Result<PgConnection, Problem> {
        self.session("medic-read", self.read_statement_timeout.0)
    }

    fn session(&self, name: &str, statement_timeout: Duration) -> Result<PgConnection, Problem> {
        let mut connection = PgConnection::parse(self.url.expose_secret())
            .map_err(|e| Problem::new("database.url", e))?
            .limit(&SessionLimits {
                connect_timeout: Duration::from_secs(self.connect_timeout_seconds),
                statement_timeout,
                idle_in_transaction_timeout: self.idle_in_transaction_timeout.0,
                keepalives_idle: self.keepalives_idle.0,
            });
        connection.config.application_name(name);
        Ok(connection)
    }
}
