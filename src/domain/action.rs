//! The action catalogue: what medic can do, the parameters each action takes, and the
//! parameters as rendered for one alert.

use std::{collections::BTreeMap, time::Duration};

use serde_json::Value;

use super::HumanDuration;

/// A remediation handler, by the name the config, metrics and the API use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RestartPods,
    ScaleUp,
    ScaleTo,
    RolloutRestart,
    PostgresRelievePool,
}

/// What a parameter holds, checked at load (literals) and when rendered (templates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Text,
    Integer,
    Duration,
}

/// One parameter an action takes.
#[derive(Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    pub required: bool,
}

pub const fn param(name: &'static str, kind: ParamKind, required: bool) -> ParamSpec {
    ParamSpec { name, kind, required }
}

const RESTART_PODS: &[ParamSpec] = &[
    param("namespace", ParamKind::Text, true),
    param("selector", ParamKind::Text, false),
    param("pod", ParamKind::Text, false),
    param("grace_period", ParamKind::Duration, false),
    param("max_restarts", ParamKind::Integer, false),
    param("max_pods", ParamKind::Integer, false),
    param("ready_timeout", ParamKind::Duration, false),
];
const SCALE_UP: &[ParamSpec] = &[
    param("namespace", ParamKind::Text, true),
    param("deployment", ParamKind::Text, true),
    param("step", ParamKind::Integer, false),
    param("max", ParamKind::Integer, false),
];
const SCALE_TO: &[ParamSpec] = &[
    param("namespace", ParamKind::Text, true),
    param("deployment", ParamKind::Text, true),
    param("replicas", ParamKind::Integer, true),
];
const ROLLOUT_RESTART: &[ParamSpec] = &[
    param("namespace", ParamKind::Text, true),
    param("deployment", ParamKind::Text, true),
];
const POSTGRES_RELIEVE_POOL: &[ParamSpec] = &[
    param("database", ParamKind::Text, true),
    param("threshold", ParamKind::Duration, false),
    param("max_terminations", ParamKind::Integer, false),
    param("namespace", ParamKind::Text, false),
    param("deployment", ParamKind::Text, false),
    param("env", ParamKind::Text, false),
    param("pool_step", ParamKind::Integer, false),
    param("pool_max", ParamKind::Integer, false),
];

impl Action {
    pub const ALL: [Action; 5] = [
        Action::RestartPods,
        Action::ScaleUp,
        Action::ScaleTo,
        Action::RolloutRestart,
        Action::PostgresRelievePool,
    ];

    /// The name used in the config, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RestartPods => "restart_pods",
            Action::ScaleUp => "scale_up",
            Action::ScaleTo => "scale_to",
            Action::RolloutRestart => "rollout_restart",
            Action::PostgresRelievePool => "postgres_relieve_pool",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Every parameter the action takes; any other is a config error.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            Action::RestartPods => RESTART_PODS,
            Action::ScaleUp => SCALE_UP,
            Action::ScaleTo => SCALE_TO,
            Action::RolloutRestart => ROLLOUT_RESTART,
            Action::PostgresRelievePool => POSTGRES_RELIEVE_POOL,
        }
    }

    /// Whether the action needs the Kubernetes API.
    pub fn needs_kubernetes(self, params: &ActionParams) -> bool {
        self != Action::PostgresRelievePool || params.0.contains_key("env")
    }
}

/// Parameters rendered for one alert.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActionParams(pub BTreeMap<String, Value>);

impl ActionParams {
    /// A text parameter, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// A required text parameter.
    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.text(name)
            .ok_or_else(|| format!("parameter {name:?} is missing or empty"))
    }

    /// An integer parameter (a number, or text holding one after rendering), or the default.
    pub fn integer(&self, name: &str, default: i64) -> Result<i64, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(value) => value
                .as_i64()
                .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| format!("parameter {name:?} is not an integer: {value}")),
        }
    }

    /// A duration parameter, or the default.
    pub fn duration(&self, name: &str, default: Duration) -> Result<Duration, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Duration::from_secs)
                .ok_or_else(|| format!("parameter {name:?} is not a duration: {n}")),
            Some(Value::String(s)) => HumanDuration::parse(s).map(|s| s.0),
            Some(other) => Err(format!("parameter {name:?} is not a duration: {other}")),
        }
    }
}
