//! Remediation compiled: each rule's action with its parameter templates, the guard rails
//! every action must respect, and the databases `postgres_relieve_pool` may act on.

use std::{collections::BTreeMap, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use super::{
    secrets::secret_from,
    template::{ParamTemplate, QueryTemplate},
};
use crate::{
    alertmanager::KV,
    config::{
        Approval, Budget, Gitops, PgConnection, Problem, PrometheusSettings, RemediateSettings,
        RemediationSettings, RuleSettings,
    },
    domain::{
        Action, ActionParams, Evidence, ParamLimits, RuleMode, ValueFormat, DEFAULT_MAX_PODS,
        DEFAULT_READY_TIMEOUT,
    },
};

/// A rule's remediation, checked.
#[derive(Debug)]
pub struct RemediationSpec {
    pub action: Action,
    params: BTreeMap<String, ParamTemplate>,
    /// None: the global default.
    pub cooldown: Option<Duration>,
    /// None: the global `dry_run`.
    pub dry_run: Option<bool>,
    /// The alert must resolve within this after the action, or the next step runs.
    pub verify_within: Option<Duration>,
    /// How long the alert must stay resolved for the step to be `fixed`; None: the global
    /// `remediation.hold`.
    pub hold: Option<Duration>,
    /// A person approves the step before it acts.
    pub approval: bool,
    /// Change a Deployment that Argo CD or Flux manages anyway (`gitops: allow`).
    pub gitops_allow: bool,
    /// Read from Prometheus before the step acts and when it is verified.
    pub verify_query: Option<VerifyQuery>,
}

/// A step's `verify_query`, compiled.
#[derive(Debug, Clone)]
pub struct VerifyQuery {
    pub query: QueryTemplate,
    /// What people call the value.
    pub name: Option<String>,
    pub format: ValueFormat,
}

impl VerifyQuery {
    /// The evidence to gather for one alert (nothing read yet), or why the query cannot be
    /// rendered for it.
    pub fn evidence(&self, labels: &KV, annotations: &KV) -> Result<Evidence, String> {
        Ok(Evidence {
            query: self.query.render(labels, annotations)?,
            name: self.name.clone(),
            format: self.format,
            before: None,
            after: None,
        })
    }
}

impl RemediationSpec {
    /// The parameters as configured, by name: literals, or templates naming labels and
    /// annotations.
    pub fn params(&self) -> impl Iterator<Item = (&str, &ParamTemplate)> {
        self.params.iter().map(|(name, param)| (name.as_str(), param))
    }

    /// The parameters for one alert, or why they cannot be rendered.
    pub fn render(&self, labels: &KV, annotations: &KV) -> Result<ActionParams, String> {
        self.params
            .iter()
            .map(|(name, param)| Ok((name.clone(), param.render(labels, annotations)?)))
            .collect::<Result<_, String>>()
            .map(ActionParams)
    }

    /// Compiles a rule's `remediate:` block at key path `at`.
    pub fn compile(
        at: &str,
        settings: &RemediateSettings,
        limits: &ParamLimits,
        problems: &mut Vec<Problem>,
    ) -> Option<Self> {
        let Some(action) = Action::parse(&settings.action) else {
            let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
            problems.push(Problem::new(
                format!("{at}.action"),
                format!(
                    "unknown action {:?}; known: {}",
                    settings.action,
                    known.join(", ")
                ),
            ));
            return None;
        };
        let specs = action.params();
        let mut params = BTreeMap::new();
        for (name, value) in &settings.params {
            let key = format!("{at}.params.{name}");
            match specs.iter().find(|spec| spec.name == name) {
                None => problems.push(Problem::new(
                    key,
                    format!("{} takes no parameter {name:?}", action.as_str()),
                )),
                Some(spec) => match ParamTemplate::compile(value, spec, limits) {
                    Ok(param) => {
                        params.insert(name.clone(), param);
                    }
                    Err(e) => problems.push(Problem::new(key, e)),
                },
            }
        }
        for spec in specs.iter().filter(|spec| spec.required) {
            if !settings.params.contains_key(spec.name) {
                problems.push(Problem::new(
                    format!("{at}.params.{}", spec.name),
                    format!("required by {}", action.as_str()),
                ));
            }
        }
        if action == Action::RestartPods {
            check_restart_pods(at, settings, limits, problems);
        }
        let verify_query = settings
            .verify_query
            .as_ref()
            .and_then(|v| compile_verify_query(at, settings, v, problems));
        Some(RemediationSpec {
            action,
            params,
            cooldown: settings.cooldown.map(|c| c.0),
            dry_run: settings.dry_run,
            verify_within: settings.verify_within.map(|v| v.0),
            hold: settings.hold.map(|h| h.0),
            approval: settings.approval == Approval::Required,
            gitops_allow: settings.gitops == Gitops::Allow,
            verify_query,
        })
    }
}

/// A step's `verify_query`: its templates name something, and the step is verified (the query
/// is read again then). That `prometheus.url` is set is [`check_verify_queries`]'.
fn compile_verify_query(
    at: &str,
    settings: &RemediateSettings,
    verify: &crate::config::VerifyQuerySettings,
    problems: &mut Vec<Problem>,
) -> Option<VerifyQuery> {
    let key = format!("{at}.verify_query");
    if settings.verify_within.is_none() {
        problems.push(Problem::new(
            key.clone(),
            "needs verify_within: the query is read again when the step is verified",
        ));
    }
    match QueryTemplate::compile(&verify.query) {
        Ok(query) => Some(VerifyQuery {
            query,
            name: verify.name.clone().filter(|n| !n.trim().is_empty()),
            format: verify.format,
        }),
        Err(e) => {
            problems.push(Problem::new(key, e));
            None
        }
    }
}

/// A step's `verify_query` is read from `prometheus.url`, which must be set.
pub fn check_verify_queries(
    rules: &[RuleSettings],
    prometheus: &PrometheusSettings,
    problems: &mut Vec<Problem>,
) {
    if prometheus.url.is_some() {
        return;
    }
    for (at, remediate) in steps(rules) {
        if remediate.verify_query.is_some() {
            problems.push(Problem::new(
                format!("{at}.verify_query"),
                "needs prometheus.url: the query is read from that Prometheus",
            ));
        }
    }
}

/// `restart_pods` needs a selector or a pod, and a run (`max_pods` × `ready_timeout`, as
/// configured or by default) must fit in the action's deadline; templated values are checked
/// when rendered.
fn check_restart_pods(
    at: &str,
    settings: &RemediateSettings,
    limits: &ParamLimits,
    problems: &mut Vec<Problem>,
) {
    let params = &settings.params;
    if !params.contains_key("selector") && !params.contains_key("pod") {
        problems.push(Problem::new(
            format!("{at}.params"),
            "restart_pods needs selector or pod",
        ));
    }
    let templated = |name: &str| {
        params
            .get(name)
            .and_then(|v| v.as_str())
            .is_some_and(|s| s.contains("{{"))
    };
    if templated("max_pods") || templated("ready_timeout") {
        return;
    }
    let literal = ActionParams(
        ["max_pods", "ready_timeout"]
            .into_iter()
            .filter_map(|name| Some((name.to_owned(), params.get(name)?.clone())))
            .collect(),
    );
    let (Ok(max_pods), Ok(ready_timeout)) = (
        literal.integer("max_pods", DEFAULT_MAX_PODS),
        literal.duration("ready_timeout", DEFAULT_READY_TIMEOUT),
    ) else {
        return; // reported as the parameter's own problem
    };
    if let Err(e) = limits.check_restart_run(max_pods, ready_timeout) {
        problems.push(Problem::new(format!("{at}.params"), e));
    }
}

/// Limits every action must respect, counted in Postgres across replicas.
#[derive(Debug, Clone)]
pub struct GuardRails {
    /// Empty: any namespace not denied.
    pub allowed_namespaces: Vec<String>,
    pub denied_namespaces: Vec<String>,
    /// Default per-target cooldown when a rule sets none.
    pub cooldown: Duration,
    pub per_target: Budget,
    pub per_rule: Budget,
    pub global: Budget,
    /// Most fires of one alert within `flapping_window` before it escalates instead.
    pub flapping_max_fires: u32,
    pub flapping_window: Duration,
    /// The global `dry_run`.
    pub dry_run: bool,
    /// How far parameters rendered from alerts may reach, and the action timeout (how long
    /// a started action holds its target before another may act on it).
    pub limits: ParamLimits,
    /// How long a request for approval waits for a person.
    pub approval_timeout: Duration,
    /// How long a fixed alert must stay resolved, when a step sets no `hold`.
    pub hold: Duration,
    /// Relapses or failures of one step within `demote_window` that demote it (0: never).
    pub demote_count: u32,
    pub demote_window: Duration,
}

impl GuardRails {
    /// The guard rails of `remediation:` and the global `dry_run`.
    pub fn new(settings: &RemediationSettings, dry_run: bool) -> Self {
        Self {
            allowed_namespaces: settings.namespaces.allow.clone(),
            denied_namespaces: settings.namespaces.deny.clone(),
            cooldown: settings.cooldown.0,
            per_target: settings.budget.per_target,
            per_rule: settings.budget.per_rule,
            global: settings.budget.global,
            flapping_max_fires: settings.flapping.max_fires,
            flapping_window: settings.flapping.window.0,
            dry_run,
            limits: limits(settings),
            approval_timeout: settings.approval.timeout.0,
            hold: settings.hold.0,
            demote_count: settings.demote_after.count,
            demote_window: settings.demote_after.window.0,
        }
    }

    /// Whether medic may act in `namespace`.
    pub fn namespace_allowed(&self, namespace: &str) -> bool {
        let allowed =
            self.allowed_namespaces.is_empty() || self.allowed_namespaces.iter().any(|n| n == namespace);
        allowed && !self.denied_namespaces.iter().any(|n| n == namespace)
    }
}

/// The limits of `remediation.limits`, with the action timeout.
pub fn limits(settings: &RemediationSettings) -> ParamLimits {
    let limits = &settings.limits;
    ParamLimits {
        max_replicas: limits.max_replicas,
        max_pods_per_run: limits.max_pods_per_run,
        max_terminations: limits.max_terminations,
        max_pool_size: limits.max_pool_size,
        min_query_age: limits.min_query_age.0,
        action_timeout: settings.action_timeout.0,
    }
}

/// A database `postgres_relieve_pool` may act on.
#[derive(Debug, Clone)]
pub struct TargetDatabase {
    /// The connection string; holds a password.
    pub url: SecretString,
    /// Only backends of these users are terminated.
    pub users: Vec<String>,
    /// Longest statement medic runs there.
    pub statement_timeout: Duration,
}

/// The databases with their connection strings read and parsed.
pub fn databases(
    settings: &RemediationSettings,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, TargetDatabase> {
    let mut databases = BTreeMap::new();
    for (name, database) in &settings.databases {
        let key = format!("remediation.databases.{name}.url");
        let Some(url) = secret_from(&key, database.url.as_ref(), database.url_file.as_ref(), problems) else {
            continue;
        };
        if let Err(e) = PgConnection::parse(url.expose_secret()) {
            problems.push(Problem::new(key, e));
            continue;
        }
        let users = database.users.clone();
        let statement_timeout = database.statement_timeout.0;
        databases.insert(
            name.clone(),
            TargetDatabase {
                url,
                users,
                statement_timeout,
            },
        );
    }
    databases
}

/// Each `postgres_relieve_pool` rule names a configured database (or a template).
pub fn check_databases(rules: &[RuleSettings], settings: &RemediationSettings, problems: &mut Vec<Problem>) {
    for (at, remediate) in steps(rules) {
        let Some(database) = remediate.params.get("database").and_then(|d| d.as_str()) else {
            continue;
        };
        let known = database.contains("{{") || settings.databases.contains_key(database);
        if remediate.action == Action::PostgresRelievePool.as_str() && !known {
            problems.push(Problem::new(
                format!("{at}.params.database"),
                format!("{database:?} is not under remediation.databases"),
            ));
        }
    }
}

/// Every remediation step of every rule, with its key path.
fn steps(rules: &[RuleSettings]) -> impl Iterator<Item = (String, &RemediateSettings)> {
    rules.iter().enumerate().flat_map(|(i, rule)| {
        rule.remediate
            .iter()
            .flat_map(move |ladder| ladder.steps(&format!("rules[{i}].remediate")))
    })
}

/// What is allowed but probably not meant: a rule that takes its namespace from the alert
/// while no namespace is allowed explicitly (whoever can make an alert fire chooses where medic
/// acts; only the deny list stands), and `mode: observe` on a rule that remediates nothing.
pub fn warnings(rules: &[RuleSettings], settings: &RemediationSettings) -> Vec<Problem> {
    let mut warnings: Vec<Problem> = rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.mode == RuleMode::Observe && rule.remediate.is_none())
        .map(|(i, _)| {
            Problem::new(
                format!("rules[{i}].mode"),
                "observe has no effect: the rule has no remediate",
            )
        })
        .collect();
    warnings.extend(namespace_warnings(rules, settings));
    warnings
}

fn namespace_warnings(rules: &[RuleSettings], settings: &RemediationSettings) -> Vec<Problem> {
    if !settings.namespaces.allow.is_empty() {
        return Vec::new();
    }
    steps(rules)
        .filter_map(|(at, remediate)| {
            let namespace = remediate.params.get("namespace")?.as_str()?;
            namespace.contains("{{").then(|| {
                Problem::new(
                    format!("{at}.params.namespace"),
                    "is taken from the alert and remediation.namespaces.allow is empty: \
                     an alert can point medic at any namespace not denied; list the allowed ones",
                )
            })
        })
        .collect()
}
