//! Settings as plain data: one tree loaded from defaults, an optional YAML file and `MEDIC_*`
//! environment variables, with the checks that need only the settings themselves. Every
//! problem is reported with its key path. Reading secret files, compiling rules and every check
//! that spans sections belong to the plan, a floor above; this module imports only the vocabulary.

mod capacity;
mod context;
mod escalation;
mod heartbeats;
mod jwt;
mod postgres;
mod problem;
mod remediation;
mod server;
mod slo;
mod telemetry;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::Duration,
};

use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::HumanDuration;

pub use capacity::{
    CapacitySettings, DeploymentSettings, DEPLOYMENT_PLACEHOLDER, MAX_POINTS, NAMESPACE_PLACEHOLDER,
};
pub use context::{ContextEvents, ContextLabels, ContextLogs, ContextSettings, DEFAULT_REDACT};
pub use escalation::{
    Approval, EngineSettings, Gitops, Ladder, NotifierSettings, NotifierType, RemediateSettings,
    RetrySettings, RuleSettings, StepSettings, VerifyQuerySettings, PAGERDUTY_EVENTS_URL, SLACK_API_URL,
};
pub use heartbeats::{HeartbeatOutSettings, HeartbeatSettings, PingMethod};
pub use jwt::{JwtSettings, OneOrMany};
pub use postgres::{PgConnection, SessionLimits, Tls, TlsMode};
pub use problem::{Problem, Problems};
pub use remediation::{
    ApprovalSettings, Budget, BudgetSettings, FlappingSettings, KubernetesSettings, LimitsSettings,
    NamespaceSettings, RemediationSettings, TargetDatabaseSettings,
};
pub use server::{
    AuthSettings, BasicAuthSettings, DatabaseSettings, LogFormat, LogSettings, ProxySettings, ServerSettings,
    UserSettings,
};
pub use slo::{LatencySli, PrometheusSettings, RatioSli, SliSettings, SloSettings, WINDOW_PLACEHOLDER};
pub use telemetry::{OtlpProtocol, OtlpSettings, TelemetrySettings, OTLP_TRACES_PATH};

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
    /// Traces (OpenTelemetry).
    pub telemetry: TelemetrySettings,
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
    /// How long history is kept.
    pub retention: RetentionSettings,
    /// The Alertmanager medic makes silences in.
    pub alertmanager: AlertmanagerSettings,
    /// The Prometheus that measures the SLOs.
    pub prometheus: PrometheusSettings,
    /// Service level objectives: `medic slo rules` makes their recording and burn-rate rules.
    pub slos: Vec<SloSettings>,
    /// The Deployments `medic capacity` forecasts.
    pub capacity: CapacitySettings,
    /// What a maintenance window may be.
    pub maintenance: MaintenanceSettings,
    /// What medic gathers from the cluster about an incident's workload.
    pub context: ContextSettings,
    /// Alerts that must keep arriving (Prometheus' Watchdog): a page when they stop.
    pub heartbeats: Vec<HeartbeatSettings>,
    /// medic's own pulse, sent to an external dead man's switch.
    pub heartbeat_out: Option<HeartbeatOutSettings>,
}

/// `maintenance:`: the limits every maintenance window meets, whichever way it is opened.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceSettings {
    /// The longest window a responder may open; a longer one needs an admin. No window lasts
    /// more than 30 days.
    pub max_duration: HumanDuration,
    /// Windows in force or scheduled at once; one more is refused.
    pub max_windows: u32,
}

impl MaintenanceSettings {
    /// No window, whoever opens it, lasts longer than this.
    pub const LONGEST: Duration = Duration::from_secs(30 * 86_400);

    fn check(&self, problems: &mut Vec<Problem>) {
        if self.max_duration.0 < Duration::from_secs(60) || self.max_duration.0 > Self::LONGEST {
            problems.push(Problem::new(
                "maintenance.max_duration",
                "must be between 1m and 30d",
            ));
        }
        if !(1..=10_000).contains(&self.max_windows) {
            problems.push(Problem::new(
                "maintenance.max_windows",
                "must be between 1 and 10000",
            ));
        }
    }
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        Self {
            max_duration: HumanDuration(Duration::from_secs(86_400)),
            max_windows: 100,
        }
    }
}

/// `alertmanager:`: where `POST /api/v1/incidents/{id}/silence` makes its silences (API v2).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertmanagerSettings {
    /// e.g. `http://alertmanager-operated.monitoring:9093`; none: silences are unavailable.
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer` when Alertmanager sits behind a proxy that wants one.
    pub bearer_token: Option<SecretString>,
    pub bearer_token_file: Option<PathBuf>,
}

/// `retention:`: how long each kind of record is kept; `0s` keeps it forever.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Individual delivery rows (each incident keeps its count).
    pub deliveries: HumanDuration,
    /// Every attempt to send a message.
    pub timer_attempts: HumanDuration,
    /// Resolved incidents, with their alerts, deliveries, timers, remediations and timeline.
    pub resolved_incidents: HumanDuration,
    /// How often a replica looks for something to prune.
    pub interval: HumanDuration,
    /// Rows per delete statement (resolved incidents: a fiftieth of it), so that nothing waits.
    pub batch: i64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        let days = |d: u64| HumanDuration(Duration::from_secs(d * 86_400));
        Self {
            deliveries: days(30),
            timer_attempts: days(90),
            resolved_incidents: days(400),
            interval: HumanDuration(Duration::from_secs(60)),
            batch: 1000,
        }
    }
}

/// Loads and checks the settings; on failure returns every problem found. Secrets and rules
/// are not looked at here: the plan's `load` does both steps and reports all problems.
pub fn load(source: &Source) -> Result<Settings, Problems> {
    match read(source) {
        (Some(settings), problems) if problems.is_empty() => Ok(settings),
        (_, problems) => Err(Problems(problems)),
    }
}

/// The settings, if they could be parsed at all, and every problem found in them.
pub fn read(source: &Source) -> (Option<Settings>, Vec<Problem>) {
    let yaml = match &source.file {
        Some(file) => match std::fs::read_to_string(file) {
            Ok(yaml) => Some(yaml),
            Err(e) => {
                return (
                    None,
                    vec![Problem::new("<source>", format!("{}: {e}", file.display()))],
                )
            }
        },
        None => None,
    };
    read_yaml(yaml.as_deref(), &source.env)
}

/// The settings from YAML text (if any) and these environment variables, and every problem.
pub fn read_yaml(yaml: Option<&str>, env: &HashMap<String, String>) -> (Option<Settings>, Vec<Problem>) {
    let merged = match merge(yaml, env) {
        Ok(merged) => merged,
        Err(e) => return (None, vec![Problem::new("<source>", e.to_string())]),
    };
    let mut problems = Vec::new();
    let mut unknown = |path: serde_ignored::Path| {
        problems.push(Problem::new(key_path(&path), "unknown key"));
    };
    let parsed: Result<Settings, _> =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(merged, &mut unknown));
    let settings = match parsed {
        Ok(mut settings) => {
            settings.telemetry.otlp.fill_from(env, &mut problems);
            Some(settings)
        }
        Err(e) => {
            let path = e.path().to_string();
            problems.push(Problem::new(path, e.into_inner().to_string()));
            None
        }
    };
    if let Some(settings) = &settings {
        problems.extend(settings.check());
    }
    (settings, problems)
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

fn merge(yaml: Option<&str>, env: &HashMap<String, String>) -> Result<config::Config, config::ConfigError> {
    let mut builder = config::Config::builder();
    let mut notifier_names = Vec::new();
    if let Some(yaml) = yaml {
        let file = config::File::from_str(yaml, config::FileFormat::Yaml);
        notifier_names = config::Config::builder()
            .add_source(file.clone())
            .build()?
            .get_table("notifiers")
            .map(|table| table.into_keys().collect())
            .unwrap_or_default();
        builder = builder.add_source(file);
    }
    let mut medic_env = config::Map::new();
    for (key, value) in env {
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
        if let Some(url) = env.get(DATABASE_URL_FALLBACK) {
            builder = builder.set_override("database.url", url.as_str())?;
        }
    }
    builder.build()
}

/// The top-level keys of [`Settings`]: `MEDIC_<KEY>` or `MEDIC_<KEY>__...`.
const TOP_LEVEL_KEYS: [&str; 19] = [
    "server",
    "database",
    "log",
    "telemetry",
    "notifiers",
    "rules",
    "engine",
    "dry_run",
    "remediation",
    "kubernetes",
    "retention",
    "alertmanager",
    "prometheus",
    "slos",
    "capacity",
    "maintenance",
    "context",
    "heartbeats",
    "heartbeat_out",
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
    /// Problems that the types alone cannot rule out, each within one section.
    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err(problem) = self.database.connection() {
            problems.push(problem);
        }
        let positive = [
            ("server.body_limit_bytes", self.server.body_limit_bytes as u64),
            ("database.max_connections", self.database.max_connections as u64),
            ("database.read_connections", self.database.read_connections as u64),
            (
                "database.read_acquire_timeout",
                self.database.read_acquire_timeout.0.as_millis() as u64,
            ),
            (
                "database.read_statement_timeout",
                self.database.read_statement_timeout.0.as_millis() as u64,
            ),
            (
                "server.read_concurrency_per_user",
                self.server.read_concurrency_per_user as u64,
            ),
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
        if !(1..=100_000).contains(&self.retention.batch) {
            problems.push(Problem::new("retention.batch", "must be between 1 and 100000"));
        }
        if self.retention.interval.0.is_zero() {
            problems.push(Problem::new("retention.interval", "must be greater than 0"));
        }
        self.prometheus.check(&mut problems);
        self.telemetry.otlp.check(&mut problems);
        slo::check(&self.slos, &mut problems);
        self.capacity.check(&mut problems);
        self.maintenance.check(&mut problems);
        self.context.check(&mut problems);
        heartbeats::check(&self.heartbeats, self.heartbeat_out.as_ref(), &mut problems);
        problems
    }
}
