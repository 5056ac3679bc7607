//! The action catalogue: what medic can do, the parameters each action takes, and the
//! parameters as rendered for one alert.

use std::{collections::BTreeMap, time::Duration};

use serde_json::Value;

use super::{
    kubernetes::{self, LabelSelector},
    HumanDuration,
};

/// A remediation handler, by the name the config, metrics and the API use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RestartPods,
    ScaleUp,
    ScaleTo,
    RolloutRestart,
    PostgresRelievePool,
}

/// The JSON type of a parameter's value in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Text,
    Integer,
    Duration,
    /// A count (`2`) or a percentage (`"50%"`).
    CountOrPercent,
}

/// What a parameter's value must be, checked on literals when the config compiles and on
/// every value rendered from an alert before any request is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A DNS-1123 label.
    Namespace,
    /// A DNS-1123 subdomain: a Deployment's or a pod's name.
    ObjectName,
    /// A label selector that matches by value; written back in canonical form.
    Selector,
    /// An environment variable's name.
    EnvName,
    /// A name under the config (a database under `remediation.databases`).
    ConfigName,
    /// An integer from this minimum up to a configured cap.
    Count(i64, Cap),
    /// A duration no longer than `remediation.action_timeout`.
    UpToActionTimeout,
    /// A duration no shorter than `remediation.limits.min_query_age`.
    QueryAge,
    /// A floor of Ready pods: a percentage from 0% to 100% or a non-negative count.
    MinHealthy,
}

/// The configured caps on counts (`remediation.limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Replicas,
    PodsPerRun,
    Terminations,
    PoolSize,
    /// A fixed bound, for counts that change nothing by themselves.
    Fixed(i64),
}

/// How far rendered parameters may reach (`remediation.limits` and the action timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamLimits {
    /// Most replicas `scale_up` and `scale_to` may ask for (and the largest step).
    pub max_replicas: i64,
    /// Most pods one `restart_pods` run may evict.
    pub max_pods_per_run: i64,
    /// Most sessions one `postgres_relieve_pool` run may terminate.
    pub max_terminations: i64,
    /// Largest pool size `postgres_relieve_pool` may set.
    pub max_pool_size: i64,
    /// Shortest query age `postgres_relieve_pool` may treat as stuck.
    pub min_query_age: Duration,
    /// Durations (grace periods, timeouts) may not exceed this.
    pub action_timeout: Duration,
}

impl Default for ParamLimits {
    fn default() -> Self {
        Self {
            max_replicas: 50,
            max_pods_per_run: 10,
            max_terminations: 20,
            max_pool_size: 1000,
            min_query_age: Duration::from_secs(5),
            action_timeout: Duration::from_secs(600),
        }
    }
}

/// `restart_pods` evicts this many pods per run unless `max_pods` says otherwise.
pub const DEFAULT_MAX_PODS: i64 = 3;
/// `restart_pods` waits this long for each replacement unless `ready_timeout` says otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Whose floor holds which pods, as `medic explain` and the README say it: `min_healthy` stands
/// in for a PodDisruptionBudget only where there is none.
pub const FLOOR_RULE: &str = "pods a PodDisruptionBudget covers are governed by it alone (its 429 is \
    skipped_pdb); min_healthy is the floor only for workloads no budget covers";
/// `restart_pods` keeps half of a workload's desired pods Ready unless `min_healthy` says
/// otherwise.
pub const DEFAULT_MIN_HEALTHY: MinHealthy = MinHealthy::Percent(50);

/// How many of a workload's desired pods must stay Ready, as medik8s' `minHealthy` and Falco
/// Talon's `min_healthy_replicas` read it: a percentage of the desired count, rounded up, or
/// an absolute count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinHealthy {
    /// 0 to 100.
    Percent(u8),
    Count(i32),
}

impl MinHealthy {
    /// `"50%"`, or a count as a number or as text (`2`, `"2"`, as a template renders it).
    pub fn parse(value: &Value) -> Result<MinHealthy, String> {
        let text = match value {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => return Err(format!("{other} is neither a count nor a percentage")),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if let Some(percent) = text.strip_suffix('%').filter(|p| digits(p)) {
            return match percent.parse::<u8>() {
                Ok(p) if p <= 100 => Ok(MinHealthy::Percent(p)),
                _ => Err(format!("{text} is more than 100%")),
            };
        }
        if digits(&text) {
            return text
                .parse()
                .map(MinHealthy::Count)
                .map_err(|_| format!("{text} is more pods than a workload can have"));
        }
        if text.starts_with('-') {
            return Err(format!("{text:?} is negative"));
        }
        Err(format!(
            "{text:?} is neither a count (such as 2) nor a percentage (such as 50%)"
        ))
    }

    /// How many of `desired` pods must stay Ready.
    pub fn required(self, desired: i32) -> i32 {
        match self {
            MinHealthy::Percent(p) => {
                let desired = u64::try_from(desired).unwrap_or(0);
                let required = (desired * u64::from(p)).div_ceil(100);
                i32::try_from(required).unwrap_or(i32::MAX)
            }
            MinHealthy::Count(n) => n,
        }
    }

    /// The canonical form: a percentage as text, a count as a number.
    fn to_value(self) -> Value {
        match self {
            MinHealthy::Percent(_) => Value::from(self.to_string()),
            MinHealthy::Count(n) => Value::from(n),
        }
    }
}

impl std::fmt::Display for MinHealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinHealthy::Percent(p) => write!(f, "{p}%"),
            MinHealthy::Count(n) => write!(f, "{n}"),
        }
    }
}

impl ParamLimits {
    /// How long one action may run: a tenth short of the action timeout, so that it ends,
    /// and its outcome is recorded, before another replica may take it for interrupted.
    pub fn deadline(&self) -> Duration {
        self.action_timeout.mul_f64(0.9)
    }

    /// The longest a `restart_pods` run may take, `max_pods` × `ready_timeout`, if it fits in
    /// the deadline.
    pub fn check_restart_run(&self, max_pods: i64, ready_timeout: Duration) -> Result<(), String> {
        let run = ready_timeout.saturating_mul(u32::try_from(max_pods).unwrap_or(u32::MAX));
        if run > self.deadline() {
            return Err(format!(
                "max_pods × ready_timeout ({}) must fit within the action's deadline ({}, 90% of \
                 remediation.action_timeout)",
                HumanDuration(run),
                HumanDuration(self.deadline())
            ));
        }
        Ok(())
    }

    fn cap(&self, cap: Cap) -> i64 {
        match cap {
            Cap::Replicas => self.max_replicas,
            Cap::PodsPerRun => self.max_pods_per_run,
            Cap::Terminations => self.max_terminations,
            Cap::PoolSize => self.max_pool_size,
            Cap::Fixed(max) => max,
        }
    }
}

/// One parameter an action takes.
#[derive(Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub check: Check,
    pub required: bool,
}

/// A parameter of an action's catalogue entry.
pub const fn param(name: &'static str, check: Check, required: bool) -> ParamSpec {
    ParamSpec {
        name,
        check,
        required,
    }
}

impl ParamSpec {
    /// The JSON type the config must give.
    pub fn kind(&self) -> ParamKind {
        match self.check {
            Check::Count(..) => ParamKind::Integer,
            Check::UpToActionTimeout | Check::QueryAge => ParamKind::Duration,
            Check::MinHealthy => ParamKind::CountOrPercent,
            _ => ParamKind::Text,
        }
    }

    /// The value checked against its kind and the limits, in canonical form (selectors
    /// re-serialised, integers as numbers, durations as `90s`).
    pub fn validate(&self, value: &Value, limits: &ParamLimits) -> Result<Value, String> {
        let name = self.name;
        let text = || {
            value
                .as_str()
                .ok_or_else(|| format!("{name} must be text, not {value}"))
        };
        let checked = match self.check {
            Check::Namespace => kubernetes::check_label(text()?).map(|()| value.clone()),
            Check::ObjectName => kubernetes::check_subdomain(text()?).map(|()| value.clone()),
            Check::Selector => LabelSelector::parse(text()?).map(|s| Value::from(s.to_string())),
            Check::EnvName => check_env_name(text()?).map(|()| value.clone()),
            Check::ConfigName => check_config_name(text()?).map(|()| value.clone()),
            Check::Count(min, cap) => {
                let max = limits.cap(cap);
                match integer(value) {
                    Some(n) if (min..=max).contains(&n) => Ok(Value::from(n)),
                    Some(n) => Err(format!("{n} is outside {min}..={max}")),
                    None => Err(format!("{value} is not an integer")),
                }
            }
            Check::UpToActionTimeout => duration(value).and_then(|d| {
                let max = limits.action_timeout;
                if d > max {
                    Err(format!(
                        "{} is longer than the action timeout ({})",
                        HumanDuration(d),
                        HumanDuration(max)
                    ))
                } else {
                    Ok(Value::from(HumanDuration(d).to_string()))
                }
            }),
            Check::QueryAge => duration(value).and_then(|d| {
                let min = limits.min_query_age;
                if d < min {
                    Err(format!(
                        "{} is shorter than the minimum ({})",
                        HumanDuration(d),
                        HumanDuration(min)
                    ))
                } else {
                    Ok(Value::from(HumanDuration(d).to_string()))
                }
            }),
            Check::MinHealthy => MinHealthy::parse(value).map(MinHealthy::to_value),
        };
        checked.map_err(|e| format!("parameter {name}: {e}"))
    }
}

fn integer(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

fn duration(value: &Value) -> Result<Duration, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("{n} is not a duration"))
            .and_then(|seconds| HumanDuration::from_secs(seconds).map(|d| d.0)),
        Value::String(s) => HumanDuration::parse(s).map(|d| d.0),
        other => Err(format!("{other} is not a duration")),
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters.
fn check_env_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && !bytes[0].is_ascii_digit()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    ok.then_some(())
        .ok_or_else(|| format!("{name:?} is not an environment variable name"))
}

/// Names under the config: letters, digits, `-` and `_`, starting with a letter or digit, at
/// most 63 characters.
fn check_config_name(name: &str) -> Result<(), String> {
    let ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    ok.then_some(())
        .ok_or_else(|| format!("{name:?} is not a configured name"))
}

const RESTART_PODS: &[ParamSpec] = &[
    param("namespace", Check::Namespace, true),
    param("selector", Check::Selector, false),
    param("pod", Check::ObjectName, false),
    param("grace_period", Check::UpToActionTimeout, false),
    param("max_restarts", Check::Count(0, Cap::Fixed(1000)), false),
    param("max_pods", Check::Count(1, Cap::PodsPerRun), false),
    param("ready_timeout", Check::UpToActionTimeout, false),
    param("min_healthy", Check::MinHealthy, false),
];
const SCALE_UP: &[ParamSpec] = &[
    param("namespace", Check::Namespace, true),
    param("deployment", Check::ObjectName, true),
    param("step", Check::Count(1, Cap::Replicas), false),
    param("max", Check::Count(1, Cap::Replicas), false),
];
const SCALE_TO: &[ParamSpec] = &[
    param("namespace", Check::Namespace, true),
    param("deployment", Check::ObjectName, true),
    param("replicas", Check::Count(0, Cap::Replicas), true),
];
const ROLLOUT_RESTART: &[ParamSpec] = &[
    param("namespace", Check::Namespace, true),
    param("deployment", Check::ObjectName, true),
];
const POSTGRES_RELIEVE_POOL: &[ParamSpec] = &[
    param("database", Check::ConfigName, true),
    param("threshold", Check::QueryAge, false),
    param("max_terminations", Check::Count(1, Cap::Terminations), false),
    param("namespace", Check::Namespace, false),
    param("deployment", Check::ObjectName, false),
    param("env", Check::EnvName, false),
    param("pool_step", Check::Count(1, Cap::PoolSize), false),
    param("pool_max", Check::Count(1, Cap::PoolSize), false),
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

    /// Every rendered parameter checked and put in canonical form, before any request is
    /// made: the names a Kubernetes request is built from, selectors, counts and durations.
    pub fn validate(self, params: &ActionParams, limits: &ParamLimits) -> Result<ActionParams, String> {
        let specs = self.params();
        if let Some(unknown) = params
            .0
            .keys()
            .find(|name| !specs.iter().any(|s| s.name == *name))
        {
            return Err(format!("{} takes no parameter {unknown:?}", self.as_str()));
        }
        let mut valid = BTreeMap::new();
        for spec in specs {
            match params.0.get(spec.name) {
                Some(value) => {
                    valid.insert(spec.name.to_owned(), spec.validate(value, limits)?);
                }
                None if spec.required => return Err(format!("parameter {} is required", spec.name)),
                None => {}
            }
        }
        let has = |name: &str| valid.contains_key(name);
        if self == Action::RestartPods && !has("selector") && !has("pod") {
            return Err("restart_pods needs selector or pod".into());
        }
        if self == Action::RestartPods {
            let valid = ActionParams(valid.clone());
            let max_pods = valid.integer("max_pods", DEFAULT_MAX_PODS)?;
            let ready_timeout = valid.duration("ready_timeout", DEFAULT_READY_TIMEOUT)?;
            limits.check_restart_run(max_pods, ready_timeout)?;
        }
        if self == Action::PostgresRelievePool && has("env") && !(has("namespace") && has("deployment")) {
            return Err("env needs namespace and deployment".into());
        }
        Ok(ActionParams(valid))
    }

    /// Whether the action changes a Deployment's spec (replicas, its pod template), which a
    /// GitOps controller would put back. `postgres_relieve_pool` changes one only through its
    /// pool size (`env`), and checks that itself; evictions change no spec.
    pub fn changes_spec(self) -> bool {
        matches!(self, Action::ScaleUp | Action::ScaleTo | Action::RolloutRestart)
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

    /// `restart_pods`' floor of Ready pods, or the default (half).
    pub fn min_healthy(&self) -> Result<MinHealthy, String> {
        match self.0.get("min_healthy") {
            None => Ok(DEFAULT_MIN_HEALTHY),
            Some(value) => MinHealthy::parse(value).map_err(|e| format!("parameter \"min_healthy\": {e}")),
        }
    }
}

/// What cooldowns, budgets and the per-target lock count by; built from validated parameters
/// in canonical form, so two spellings of one object share them.
pub fn target_key(action: Action, params: &ActionParams) -> String {
    let ns = params.text("namespace").unwrap_or("-");
    match action {
        Action::RestartPods => match params.text("pod") {
            Some(pod) => format!("pod/{ns}/{pod}"),
            None => format!("pods/{ns}/{}", params.text("selector").unwrap_or("-")),
        },
        Action::PostgresRelievePool => format!("database/{}", params.text("database").unwrap_or("-")),
        _ => format!("deployment/{ns}/{}", params.text("deployment").unwrap_or("-")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn min_healthy_reads_a_percentage_or_a_count_and_rounds_up() {
        assert_eq!(MinHealthy::parse(&json!("50%")), Ok(MinHealthy::Percent(50)));
        assert_eq!(MinHealthy::parse(&json!(2)), Ok(MinHealthy::Count(2)));
        assert_eq!(MinHealthy::parse(&json!("2")), Ok(MinHealthy::Count(2)));
        assert_eq!(MinHealthy::Percent(50).required(3), 2);
        assert_eq!(MinHealthy::Percent(50).required(4), 2);
        assert_eq!(MinHealthy::Percent(100).required(4), 4);
        assert_eq!(MinHealthy::Percent(0).required(4), 0);
        assert_eq!(MinHealthy::Count(3).required(2), 3, "a count is not capped");
    }

    #[test]
    fn min_healthy_out_of_range_or_misspelt_is_refused() {
        for bad in [
            json!("101%"),
            json!("-10%"),
            json!(-1),
            json!("-1"),
            json!("half"),
            json!("50.5%"),
            json!(1.5),
            json!(" 50%"),
            json!(""),
            json!("99999999999"),
            json!(true),
        ] {
            assert!(MinHealthy::parse(&bad).is_err(), "{bad} accepted");
        }
    }
}
