//! Remediation: what a fired remediation timer does. Guard rails first (the alert still fires,
//! namespace allowed, not flapping, no other action on the target running, cooldown and
//! budgets), decided and recorded atomically in Postgres; then the handler, in dry-run or for
//! real; then the outcome, recorded, counted, logged and reported to the rule's channels.

mod action;
mod kube;
mod postgres_pool;
mod restart_pods;
mod rollout;
mod scale;

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use prometheus::{HistogramVec, IntCounterVec};
use serde_json::{json, Value};

pub use self::{
    action::{Action, Param, Params},
    kube::Kube,
    postgres_pool::Database,
};
use crate::{
    config::{Problem, RemediationSettings},
    rules::{Remediate, Rules},
    store::{
        remediations::{Intent, Limits},
        timers::Claimed,
        Store, StoreError,
    },
};

/// What a handler did.
#[derive(Debug, Clone)]
pub struct Report {
    /// `success`, `failure`, `dry_run`, `skipped_pdb` or `skipped_noop`.
    pub result: &'static str,
    /// One line for people: before and after.
    pub summary: String,
    pub detail: Value,
}

impl Report {
    pub fn new(result: &'static str, summary: String, detail: Value) -> Self {
        Self {
            result,
            summary,
            detail,
        }
    }
    pub fn success(summary: String, detail: Value) -> Self {
        Self::new("success", summary, detail)
    }
    pub fn dry_run(summary: String, detail: Value) -> Self {
        Self::new("dry_run", summary, detail)
    }
    /// Nothing to do: at the cap, already enough replicas, no unhealthy pod.
    pub fn noop(summary: String) -> Self {
        Self::new("skipped_noop", summary, json!({}))
    }
}

/// How a remediation timer ended, for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Decided and recorded (whatever the result).
    Finished,
    /// Another action on the same target is running: try again shortly.
    Busy,
}

/// Counts every decision and Kubernetes call.
#[derive(Clone)]
pub struct RemediationMetrics {
    /// `medic_remediations_total{action, result}`.
    pub remediations: IntCounterVec,
    /// `medic_remediation_duration_seconds{action}`.
    pub duration: HistogramVec,
    /// `medic_kubernetes_requests_total{verb, code}`.
    pub kube_requests: IntCounterVec,
}

/// Everything a remediation needs.
pub struct Remediator {
    store: Store,
    rules: Arc<Rules>,
    settings: Arc<RemediationSettings>,
    /// The global `dry_run`.
    dry_run: bool,
    /// The cluster, or why it cannot be reached.
    kube: Result<Kube, String>,
    databases: BTreeMap<String, Database>,
    metrics: RemediationMetrics,
}

/// The episode and parameters a remediation timer carries.
struct Job {
    params: Result<Params, String>,
    fingerprint: String,
    starts_at: DateTime<Utc>,
}

impl Remediator {
    pub fn new(
        store: Store,
        rules: Arc<Rules>,
        settings: Arc<RemediationSettings>,
        dry_run: bool,
        kube: Result<Kube, String>,
        databases: BTreeMap<String, Database>,
        metrics: RemediationMetrics,
    ) -> Self {
        Self {
            store,
            rules,
            settings,
            dry_run,
            kube,
            databases,
            metrics,
        }
    }

    /// Runs one remediation timer to a decision; `Busy` asks the engine to come back.
    pub async fn run(&self, timer: &Claimed) -> Result<Done, StoreError> {
        let started = Instant::now();
        let job = job(timer);
        let remediate = self
            .rules
            .get(&timer.rule)
            .and_then(|rule| rule.remediate.as_ref());
        let Some(remediate) = remediate else {
            tracing::error!(rule = %timer.rule, "remediation for a rule that no longer has one; dropped");
            return Ok(Done::Finished);
        };
        let action = remediate.action;
        let params = job.params.clone().unwrap_or_default();
        let target = target(action, &params);
        let skip = self.precheck(action, &job, &params);
        let dry_run = remediate.dry_run.unwrap_or(self.dry_run);
        let intent = Intent {
            incident_id: timer.incident.id,
            rule: &timer.rule,
            action: action.as_str(),
            target: &target,
            episode: &timer.subject,
            fingerprint: &job.fingerprint,
            starts_at: job.starts_at,
            skip: skip.as_ref().map(|(result, _)| *result),
            dry_run,
            limits: self.limits(remediate),
        };
        let decision = self.store.begin_remediation(&intent).await?;
        let Some(id) = decision.remediation_id else {
            return Ok(Done::Busy);
        };
        let report = match decision.decision.as_str() {
            "busy" => return Ok(Done::Busy),
            "duplicate" => return Ok(Done::Finished),
            "interrupted" => Report::new(
                "failure",
                "interrupted: the replica acting stopped; not retried".into(),
                json!({}),
            ),
            "act" | "dry_run" => self.execute(action, &params, dry_run).await,
            skipped => {
                let reason = skip.map(|(_, reason)| reason).unwrap_or_else(|| explain(skipped));
                Report::new(result_name(skipped), reason, json!({}))
            }
        };
        self.finish(timer, remediate, id, &target, &report, started)
            .await?;
        Ok(Done::Finished)
    }

    /// Decisions medic can make without the database: the parameters, the namespace, Kubernetes.
    fn precheck(&self, action: Action, job: &Job, params: &Params) -> Option<(&'static str, String)> {
        if let Err(e) = &job.params {
            return Some(("failure", format!("parameters could not be rendered: {e}")));
        }
        if let Some(namespace) = params.text("namespace") {
            if !self.settings.namespace_allowed(namespace) {
                return Some((
                    "skipped_namespace",
                    format!("namespace {namespace:?} is not allowed"),
                ));
            }
        }
        if action.needs_kubernetes(params) {
            if let Err(reason) = &self.kube {
                return Some(("failure", format!("Kubernetes is not available: {reason}")));
            }
        }
        None
    }

    fn limits(&self, remediate: &Remediate) -> Limits {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let budget = &self.settings.budget;
        Limits {
            cooldown_ms: ms(remediate.cooldown.unwrap_or(self.settings.cooldown.0)),
            per_target: (budget.per_target.actions as i32, ms(budget.per_target.window)),
            per_rule: (budget.per_rule.actions as i32, ms(budget.per_rule.window)),
            global: (budget.global.actions as i32, ms(budget.global.window)),
            flapping: (
                self.settings.flapping.max_fires as i32,
                ms(self.settings.flapping.window.0),
            ),
            action_timeout_ms: ms(self.settings.action_timeout.0),
        }
    }

    /// Runs the handler; an error from it is a failure with its reason.
    async fn execute(&self, action: Action, params: &Params, dry_run: bool) -> Report {
        let kube = self.kube.as_ref().ok();
        let result = match (action, kube) {
            (Action::PostgresRelievePool, kube) => {
                match params.text("database").and_then(|d| self.databases.get(d)) {
                    Some(database) => postgres_pool::relieve(database, kube, params, dry_run).await,
                    None => Err(format!(
                        "database {:?} is not under remediation.databases",
                        params.text("database")
                    )),
                }
            }
            (_, None) => Err("Kubernetes is not available".into()),
            (Action::ScaleUp, Some(kube)) => scale::scale_up(kube, params, dry_run).await,
            (Action::ScaleTo, Some(kube)) => scale::scale_to(kube, params, dry_run).await,
            (Action::RolloutRestart, Some(kube)) => rollout::rollout_restart(kube, params, dry_run).await,
            (Action::RestartPods, Some(kube)) => restart_pods::restart_pods(kube, params, dry_run).await,
        };
        result.unwrap_or_else(|reason| Report::new("failure", reason, json!({})))
    }

    async fn finish(
        &self,
        timer: &Claimed,
        remediate: &Remediate,
        id: i64,
        target: &str,
        report: &Report,
        started: Instant,
    ) -> Result<(), StoreError> {
        self.store
            .finish_remediation(id, report.result, &report.summary, &report.detail)
            .await?;
        let action = remediate.action.as_str();
        self.metrics
            .remediations
            .with_label_values(&[action, report.result])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[action])
            .observe(started.elapsed().as_secs_f64());
        // An exhausted budget or a flapping alert always escalates instead of acting; other
        // failures and skips do when the rule asks.
        let escalate = matches!(report.result, "skipped_budget" | "skipped_flapping")
            || (remediate.escalate_on_failure && !matches!(report.result, "success" | "dry_run"));
        tracing::info!(
            incident_id = timer.incident.id, rule = %timer.rule, action, target, episode = %timer.subject,
            result = report.result, summary = %report.summary, escalate, "remediation"
        );
        if escalate {
            self.store.escalate_now(timer.incident.id).await?;
        }
        Ok(())
    }
}

fn job(timer: &Claimed) -> Job {
    let payload = timer.payload.clone().unwrap_or_default();
    let params = match payload.get("error").and_then(Value::as_str) {
        Some(error) => Err(error.to_owned()),
        None => serde_json::from_value(payload["params"].clone()).map_err(|e| e.to_string()),
    };
    Job {
        params,
        fingerprint: payload["fingerprint"].as_str().unwrap_or_default().to_owned(),
        starts_at: serde_json::from_value(payload["starts_at"].clone()).unwrap_or_default(),
    }
}

/// What cooldowns, budgets and the per-target lock count by.
pub fn target(action: Action, params: &Params) -> String {
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

fn result_name(decision: &str) -> &'static str {
    match decision {
        "skipped_cooldown" => "skipped_cooldown",
        "skipped_budget" => "skipped_budget",
        "skipped_resolved" => "skipped_resolved",
        "skipped_namespace" => "skipped_namespace",
        "skipped_flapping" => "skipped_flapping",
        "skipped_acknowledged" => "skipped_acknowledged",
        _ => "failure",
    }
}

fn explain(decision: &str) -> String {
    match decision {
        "skipped_cooldown" => "the target was acted on within its cooldown".into(),
        "skipped_budget" => "the action budget (per target, rule or global) is spent".into(),
        "skipped_resolved" => "the alert is no longer firing".into(),
        "skipped_flapping" => "the alert fired too often in the flapping window".into(),
        "skipped_acknowledged" => "the incident was acknowledged: a person has it".into(),
        other => format!("not acted on: {other}"),
    }
}

/// Checks that each `postgres_relieve_pool` rule names a configured database.
pub fn check_databases(
    rules: &[crate::config::RuleSettings],
    settings: &RemediationSettings,
) -> Vec<Problem> {
    rules
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| {
            let remediate = rule.remediate.as_ref()?;
            let database = remediate.params.get("database")?.as_str()?;
            let known = database.contains("{{") || settings.databases.contains_key(database);
            (remediate.action == "postgres_relieve_pool" && !known).then(|| {
                Problem::new(
                    format!("rules[{i}].remediate.params.database"),
                    format!("{database:?} is not under remediation.databases"),
                )
            })
        })
        .collect()
}
