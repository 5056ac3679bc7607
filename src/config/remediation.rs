//! Settings for acting: guard rails shared by every rule, Kubernetes access, and the databases
//! `postgres_relieve_pool` may touch.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use secrecy::SecretString;
use serde::{de, Deserialize, Deserializer};

use super::problem::Problem;
use crate::domain::{HumanDuration, ParamLimits};

/// `remediation:`: what every rule's action must respect.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RemediationSettings {
    pub namespaces: NamespaceSettings,
    pub budget: BudgetSettings,
    /// Default per-target cooldown when a rule sets none.
    pub cooldown: HumanDuration,
    /// An alert that fired more often than this escalates instead of being acted on.
    pub flapping: FlappingSettings,
    /// How long a started action holds its target before another may act on it.
    pub action_timeout: HumanDuration,
    /// Databases `postgres_relieve_pool` may act on, by name.
    pub databases: BTreeMap<String, TargetDatabaseSettings>,
    /// How far parameters rendered from alert labels may reach.
    pub limits: LimitsSettings,
    /// Steps with `approval: required` wait this long for a person.
    pub approval: ApprovalSettings,
    /// A step whose alert resolved within `verify_within` is `fixed` only once the alert
    /// stays resolved this long; firing again sooner makes it `relapsed`. A step may set its
    /// own `hold`.
    pub hold: HumanDuration,
    /// A step that relapses or fails this often needs approval from then on, until an
    /// admin promotes it.
    pub demote_after: DemoteSettings,
}

/// `remediation.demote_after`: `count` relapses or failures of one step within `window`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoteSettings {
    /// 0: never demote.
    pub count: u32,
    pub window: HumanDuration,
}

impl Default for DemoteSettings {
    fn default() -> Self {
        Self {
            count: 3,
            window: HumanDuration(Duration::from_secs(24 * 3600)),
        }
    }
}

/// `remediation.approval`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalSettings {
    /// An unanswered request expires after this as `skipped_unapproved`.
    pub timeout: HumanDuration,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        Self {
            timeout: HumanDuration(Duration::from_secs(15 * 60)),
        }
    }
}

/// `remediation.limits`: bounds on what a rendered parameter may ask for. A value outside
/// them is recorded as `skipped_invalid` and nothing is requested.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// `scale_up`'s `max` and `step`, `scale_to`'s `replicas`.
    pub max_replicas: i64,
    /// `restart_pods`' `max_pods`.
    pub max_pods_per_run: i64,
    /// `postgres_relieve_pool`'s `max_terminations`.
    pub max_terminations: i64,
    /// `postgres_relieve_pool`'s `pool_step` and `pool_max`.
    pub max_pool_size: i64,
    /// `postgres_relieve_pool`'s `threshold` may not be shorter.
    pub min_query_age: HumanDuration,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        let limits = ParamLimits::default();
        Self {
            max_replicas: limits.max_replicas,
            max_pods_per_run: limits.max_pods_per_run,
            max_terminations: limits.max_terminations,
            max_pool_size: limits.max_pool_size,
            min_query_age: HumanDuration(limits.min_query_age),
        }
    }
}

/// Namespaces medic may act in, checked by medic itself (not only through RBAC).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NamespaceSettings {
    /// Empty: any namespace not denied.
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

/// Most actions per window, counted in Postgres across replicas.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BudgetSettings {
    /// On one target (a Deployment, a pod selector, a database).
    pub per_target: Budget,
    /// By one rule, on any target.
    pub per_rule: Budget,
    /// By all rules.
    pub global: Budget,
}

/// Re-fires of one alert (its fingerprint) within a window.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FlappingSettings {
    pub max_fires: u32,
    pub window: HumanDuration,
}

/// `N/window`, e.g. `3/1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub actions: u32,
    pub window: Duration,
}

impl Budget {
    /// Parses `3/1h`.
    pub fn parse(text: &str) -> Result<Budget, String> {
        let bad = || format!("{text:?} is not a budget such as 3/1h");
        let (count, window) = text.split_once('/').ok_or_else(bad)?;
        let actions = count.trim().parse().map_err(|_| bad())?;
        let window = HumanDuration::parse(window.trim()).map_err(|_| bad())?.0;
        if window.is_zero() {
            return Err(bad());
        }
        Ok(Budget { actions, window })
    }
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Budget::parse(&text).map_err(de::Error::custom)
    }
}

/// A database `postgres_relieve_pool` may terminate queries on.
#[derive(Debug, Clone, Deserialize)]
pub struct TargetDatabaseSettings {
    /// Connection string; a secret (also `url_file`, or `MEDIC_REMEDIATION__DATABASES__<NAME>__URL`).
    pub url: Option<SecretString>,
    pub url_file: Option<PathBuf>,
    /// Only backends of these users are terminated; empty means none.
    #[serde(default)]
    pub users: Vec<String>,
    /// Longest statement medic runs there.
    #[serde(default = "target_statement_timeout")]
    pub statement_timeout: HumanDuration,
}

fn target_statement_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

/// `kubernetes:`: how medic reaches the cluster.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct KubernetesSettings {
    /// Off: actions that need Kubernetes are recorded as failed and escalation proceeds.
    pub enabled: bool,
    /// A kubeconfig file; by default in-cluster configuration, then `KUBECONFIG`.
    pub kubeconfig: Option<PathBuf>,
    /// Longest wait for one API call.
    pub request_timeout: HumanDuration,
}

impl Default for RemediationSettings {
    fn default() -> Self {
        Self {
            namespaces: NamespaceSettings::default(),
            budget: BudgetSettings::default(),
            cooldown: HumanDuration(Duration::from_secs(600)),
            flapping: FlappingSettings::default(),
            action_timeout: HumanDuration(Duration::from_secs(600)),
            databases: BTreeMap::new(),
            limits: LimitsSettings::default(),
            approval: ApprovalSettings::default(),
            hold: HumanDuration(Duration::from_secs(600)),
            demote_after: DemoteSettings::default(),
        }
    }
}

impl Default for NamespaceSettings {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            deny: vec!["kube-system".into()],
        }
    }
}

impl Default for BudgetSettings {
    fn default() -> Self {
        let hour = Duration::from_secs(3600);
        Self {
            per_target: Budget {
                actions: 3,
                window: hour,
            },
            per_rule: Budget {
                actions: 10,
                window: hour,
            },
            global: Budget {
                actions: 20,
                window: hour,
            },
        }
    }
}

impl Default for FlappingSettings {
    fn default() -> Self {
        Self {
            max_fires: 5,
            window: HumanDuration(Duration::from_secs(3600)),
        }
    }
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            kubeconfig: None,
            request_timeout: HumanDuration(Duration::from_secs(10)),
        }
    }
}

impl RemediationSettings {
    /// Problems the types cannot rule out; the databases' secrets are read by the plan.
    pub fn check(&self, problems: &mut Vec<Problem>) {
        let limits = &self.limits;
        for (key, value) in [
            ("max_replicas", limits.max_replicas),
            ("max_pods_per_run", limits.max_pods_per_run),
            ("max_terminations", limits.max_terminations),
            ("max_pool_size", limits.max_pool_size),
        ] {
            if value < 1 {
                problems.push(Problem::new(
                    format!("remediation.limits.{key}"),
                    "must be at least 1",
                ));
            }
        }
        if self.action_timeout.0.is_zero() {
            problems.push(Problem::new(
                "remediation.action_timeout",
                "must be greater than 0",
            ));
        }
        // A request nobody could answer would only ever expire.
        if self.approval.timeout.0.is_zero() {
            problems.push(Problem::new(
                "remediation.approval.timeout",
                "must be greater than 0",
            ));
        }
    }
}
