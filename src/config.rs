//! Settings: one tree loaded from defaults, an optional YAML file and `MEDIC_*` environment
//! variables, checked as a whole so that every problem is reported with its key path.

mod escalation;
mod remediation;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    net::SocketAddr,
    path::PathBuf,
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::rules::Rules;
pub use escalation::{
    EngineSettings, NotifierSettings, NotifierTarget, NotifierType, RemediateSettings, RetrySettings,
    RuleSettings, Span, StepSettings, PAGERDUTY_EVENTS_URL,
};
pub use remediation::{
    Budget, BudgetSettings, FlappingSettings, KubernetesSettings, NamespaceSettings, RemediationSettings,
    TargetDatabase,
};

/// Environment variables that override the file: `MEDIC_<SECTION>__<KEY>`.
const ENV_PREFIX: &str = "MEDIC";
/// Honoured for `database.url` when `MEDIC_DATABASE__URL` is unset, as most tooling sets it.
const DATABASE_URL_FALLBACK: &str = "DATABASE_URL";

/// Where settings come from. The environment is passed in, so tests need not mutate the process's.
#[derive(Debug, Default, Clone)]
pub struct Source {
    /// A YAML file; absent means defaults and environment only.
    pub file: Option<PathBuf>,
    /// The environment variables to read (normally `std::env::vars()`).
    pub env: HashMap<String, String>,
}

impl Source {
    /// Settings from `file` and the process environment.
    pub fn from_process(file: Option<PathBuf>) -> Self {
        Self {
            file,
            env: std::env::vars().collect(),
        }
    }
}

/// The whole configuration of a medic process.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    /// Named destinations for messages (Slack, PagerDuty, webhooks).
    pub notifiers: BTreeMap<String, NotifierSettings>,
    /// Which alerts lead to which messages and escalations; first match wins.
    pub rules: Vec<RuleSettings>,
    /// The timer engine that sends messages and escalates.
    pub engine: EngineSettings,
    /// Plan and record every remediation, change nothing.
    pub dry_run: bool,
    /// Guard rails for every rule's remediation.
    pub remediation: RemediationSettings,
    /// How medic reaches the cluster.
    pub kubernetes: KubernetesSettings,
}

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
}

/// Credentials callers of `/webhook` and `/api` must present.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// Token for Alertmanager's `http_config.authorization` (type Bearer).
    pub bearer_token: Option<SecretString>,
    /// File holding the token, e.g. a mounted Kubernetes Secret; surrounding whitespace is trimmed.
    pub bearer_token_file: Option<PathBuf>,
    /// Credentials for Alertmanager's `http_config.basic_auth`.
    pub basic_auth: Option<BasicAuthSettings>,
    /// Must be set explicitly to run without any credential.
    pub allow_unauthenticated: bool,
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
    /// Connections in this replica's pool.
    pub max_connections: usize,
    /// How long to wait for a new connection before calling the database unreachable.
    pub connect_timeout_seconds: u64,
    /// How long a request waits for a free pooled connection before answering 503.
    pub acquire_timeout_seconds: u64,
    /// `Retry-After` sent with a 503 when the database is unreachable.
    pub retry_after_seconds: u64,
    /// Apply migrations when `serve` starts (otherwise run `medic migrate`).
    pub migrate_on_start: bool,
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
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://medic@localhost:5432/medic"),
            max_connections: 16,
            connect_timeout_seconds: 5,
            acquire_timeout_seconds: 2,
            retry_after_seconds: 5,
            migrate_on_start: true,
            writers: 4,
            max_batch: 16,
        }
    }
}

impl DatabaseSettings {
    /// The connection settings; fails on a malformed URL without echoing it (it holds a password).
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, Problem> {
        let mut config: tokio_postgres::Config = self
            .url
            .expose_secret()
            .parse()
            .map_err(|e| Problem::new("database.url", format!("not a valid connection string: {e}")))?;
        config.connect_timeout(Duration::from_secs(self.connect_timeout_seconds));
        config.application_name("medic");
        Ok(config)
    }
}

/// Credentials resolved from the settings, files read.
#[derive(Clone, Default)]
pub struct Credentials {
    pub bearer_token: Option<SecretString>,
    pub basic: Option<(String, SecretString)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "[REDACTED]"))
            .field("basic_username", &self.basic.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl Credentials {
    /// True when no credential is configured at all.
    pub fn is_empty(&self) -> bool {
        self.bearer_token.is_none() && self.basic.is_none()
    }
}

impl AuthSettings {
    /// Reads secret files and checks that exactly one form of each secret is given.
    pub fn credentials(&self) -> Result<Credentials, Vec<Problem>> {
        let mut problems = Vec::new();
        let bearer_token = secret_from(
            "server.auth.bearer_token",
            self.bearer_token.as_ref(),
            self.bearer_token_file.as_ref(),
            &mut problems,
        );
        let basic = self.basic_auth.as_ref().and_then(|basic| {
            if basic.username.is_empty() {
                problems.push(Problem::new(
                    "server.auth.basic_auth.username",
                    "must not be empty",
                ));
            }
            let password = secret_from(
                "server.auth.basic_auth.password",
                basic.password.as_ref(),
                basic.password_file.as_ref(),
                &mut problems,
            );
            if password.is_none() && basic.password.is_none() && basic.password_file.is_none() {
                problems.push(Problem::new(
                    "server.auth.basic_auth",
                    "needs password or password_file",
                ));
            }
            password.map(|password| (basic.username.clone(), password))
        });
        let credentials = Credentials { bearer_token, basic };
        if credentials.is_empty() && !self.allow_unauthenticated && problems.is_empty() {
            problems.push(Problem::new(
                "server.auth",
                "no credential configured: set bearer_token, bearer_token_file or basic_auth, \
                 or set allow_unauthenticated: true to accept anyone",
            ));
        }
        if problems.is_empty() {
            Ok(credentials)
        } else {
            Err(problems)
        }
    }
}

/// A secret given inline (`key`) or in a file (`key_file`), not both.
fn secret_from(
    key: &str,
    inline: Option<&SecretString>,
    file: Option<&PathBuf>,
    problems: &mut Vec<Problem>,
) -> Option<SecretString> {
    let secret = match (inline, file) {
        (Some(_), Some(_)) => {
            problems.push(Problem::new(
                key,
                format!("set either {key} or {key}_file, not both"),
            ));
            return None;
        }
        (Some(secret), None) => secret.clone(),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => SecretString::from(text.trim().to_owned()),
            Err(e) => {
                problems.push(Problem::new(
                    format!("{key}_file"),
                    format!("cannot read {}: {e}", path.display()),
                ));
                return None;
            }
        },
        (None, None) => return None,
    };
    if secret.expose_secret().is_empty() {
        problems.push(Problem::new(key, "must not be empty"));
        return None;
    }
    Some(secret)
}

/// One thing wrong with the configuration, at a key path such as `server.auth.bearer_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Loads and checks the settings; on failure returns every problem found.
pub fn load(source: &Source) -> Result<Settings, Problems> {
    let merged = merge(source).map_err(|e| Problems(vec![Problem::new("<source>", e.to_string())]))?;
    let mut problems = Vec::new();
    let mut unknown = |path: serde_ignored::Path| {
        problems.push(Problem::new(key_path(&path), "unknown key"));
    };
    let parsed: Result<Settings, _> =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(merged, &mut unknown));
    let settings = match parsed {
        Ok(settings) => Some(settings),
        Err(e) => {
            let path = e.path().to_string();
            problems.push(Problem::new(path, e.into_inner().to_string()));
            None
        }
    };
    if let Some(settings) = &settings {
        problems.extend(settings.check());
    }
    match settings {
        Some(settings) if problems.is_empty() => Ok(settings),
        _ => Err(Problems(problems)),
    }
}

/// `rules[0].notify`, as serde_path_to_error writes paths (serde_ignored writes `rules.0.notify`).
fn key_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        Path::Map { parent, key } => match key_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            key_path(parent)
        }
    }
}

fn merge(source: &Source) -> Result<config::Config, config::ConfigError> {
    let mut builder = config::Config::builder();
    let mut notifier_names = Vec::new();
    if let Some(file) = &source.file {
        let file = config::File::from(file.as_path()).format(config::FileFormat::Yaml);
        notifier_names = config::Config::builder()
            .add_source(file.clone())
            .build()?
            .get_table("notifiers")
            .map(|table| table.into_keys().collect())
            .unwrap_or_default();
        builder = builder.add_source(file);
    }
    let mut medic_env = config::Map::new();
    for (key, value) in &source.env {
        if !is_setting(key) {
            continue;
        }
        match notifier_key(key, &notifier_names) {
            Some(path) => builder = builder.set_override(path, value.as_str())?,
            None => {
                medic_env.insert(key.clone(), value.clone());
            }
        }
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .source(Some(medic_env.clone())),
    );
    if !medic_env.contains_key("MEDIC_DATABASE__URL") {
        if let Some(url) = source.env.get(DATABASE_URL_FALLBACK) {
            builder = builder.set_override("database.url", url.as_str())?;
        }
    }
    builder.build()
}

/// The top-level keys of [`Settings`]: `MEDIC_<KEY>` or `MEDIC_<KEY>__...`.
const TOP_LEVEL_KEYS: [&str; 9] = [
    "server",
    "database",
    "log",
    "notifiers",
    "rules",
    "engine",
    "dry_run",
    "remediation",
    "kubernetes",
];

/// Whether a variable addresses a setting. Others that merely start with `MEDIC_` are left
/// alone: Kubernetes injects `MEDIC_SERVICE_HOST`, `MEDIC_PORT_9095_TCP` and the like for a
/// Service named `medic`.
fn is_setting(var: &str) -> bool {
    let Some(rest) = var.strip_prefix(&format!("{ENV_PREFIX}_")) else {
        return false;
    };
    let top = rest.split("__").next().unwrap_or_default().to_ascii_lowercase();
    TOP_LEVEL_KEYS.contains(&top.as_str())
}

/// `MEDIC_NOTIFIERS__INCIDENTS_SLACK__URL` sets `notifiers.incidents-slack.url` when the file
/// names that notifier: variable names cannot hold `-`, and are upper case.
fn notifier_key(var: &str, names: &[String]) -> Option<String> {
    let rest = var.strip_prefix(&format!("{ENV_PREFIX}_NOTIFIERS__"))?;
    let (name, key) = rest.split_once("__")?;
    let normalise = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    // A name written exactly so wins over one that only matches once `-` is read as `_`.
    let name = names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(name))
        .or_else(|| names.iter().find(|n| normalise(n) == normalise(name)))?;
    Some(format!(
        "notifiers.{name}.{}",
        key.to_ascii_lowercase().replace("__", ".")
    ))
}

impl Settings {
    /// Problems that the types alone cannot rule out.
    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err(found) = self.server.auth.credentials() {
            problems.extend(found);
        }
        if let Err(problem) = self.database.pg_config() {
            problems.push(problem);
        }
        let positive = [
            ("server.body_limit_bytes", self.server.body_limit_bytes as u64),
            ("database.max_connections", self.database.max_connections as u64),
            (
                "database.connect_timeout_seconds",
                self.database.connect_timeout_seconds,
            ),
            (
                "database.acquire_timeout_seconds",
                self.database.acquire_timeout_seconds,
            ),
        ];
        for (path, value) in positive {
            if value == 0 {
                problems.push(Problem::new(path, "must be greater than 0"));
            }
        }
        if self.database.writers == 0 {
            problems.push(Problem::new("database.writers", "must be greater than 0"));
        }
        // The batch's calls are pipelined in order; join_all keeps that order up to 30 futures.
        if !(1..=30).contains(&self.database.max_batch) {
            problems.push(Problem::new("database.max_batch", "must be between 1 and 30"));
        }
        if self.server.workers == Some(0) {
            problems.push(Problem::new("server.workers", "must be greater than 0"));
        }
        self.engine.check(&mut problems);
        self.remediation.check(&mut problems);
        problems.extend(crate::remediation::check_databases(
            &self.rules,
            &self.remediation,
        ));
        if let Err(found) = self.escalation() {
            problems.extend(found);
        }
        problems
    }

    /// The notifiers with their secrets read, and the rules compiled against them.
    pub fn escalation(&self) -> Result<(BTreeMap<String, NotifierTarget>, Rules), Vec<Problem>> {
        let mut problems = Vec::new();
        let targets = escalation::notifier_targets(&self.notifiers, &mut problems);
        let kinds = self
            .notifiers
            .iter()
            .map(|(name, notifier)| (name.clone(), notifier.kind))
            .collect();
        match Rules::compile(&self.rules, &kinds) {
            Ok(rules) if problems.is_empty() => Ok((targets, rules)),
            Ok(_) => Err(problems),
            Err(found) => {
                problems.extend(found);
                Err(problems)
            }
        }
    }
}
