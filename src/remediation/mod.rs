//! Remediation: what a fired remediation timer does. Guard rails first (the alert still fires,
//! not acknowledged, not paused, no maintenance window, namespace allowed, not flapping, no
//! other action on the target running, cooldown and budgets), decided and recorded atomically
//! in Postgres; then a request for approval, if the step needs one, or the handler, in dry-run
//! or for real; then the outcome, recorded, counted, logged and reported to the rule's
//! channels.
//!
//! A rule's `remediate:` is a ladder. A step that succeeds with `verify_within` is verified
//! when that is up (a `verify` timer): `fixed` if its alert episode resolved, else `not_fixed`
//! and the next step runs, through every guard rail again. A step that is skipped or fails,
//! and a last step that did not fix it, hand the incident to people: the first pending
//! escalation step is due at once, saying what was tried.

pub mod explain;
mod gitops;
mod kube;
mod postgres_pool;
mod restart_pods;
mod rollout;
mod scale;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use serde_json::{json, Value};
use tracing::{field::Empty, Instrument, Span};

pub use self::kube::Kube;
use crate::{
    control::Control,
    domain::{Action, ActionParams, Mute, RemediationDecision, RemediationJob, RemediationResult},
    metrics::RemediationMetrics,
    plan::{GuardRails, RemediationSpec, Rules, TargetDatabase},
    store::{
        remediations::{Intent, Limits, VerifyStep},
        timers::Claimed,
        Store, StoreError,
    },
    telemetry,
};

/// What a handler did.
#[derive(Debug, Clone)]
pub struct Report {
    /// `Success`, `Failure`, `DryRun`, `SkippedPdb`, `SkippedMinHealthy` or `SkippedNoop`
    /// from a handler; any result from the guard rails.
    pub result: RemediationResult,
    /// One line for people: before and after.
    pub summary: String,
    pub detail: Value,
}

impl Report {
    pub fn new(result: RemediationResult, summary: String, detail: Value) -> Self {
        Self {
            result,
            summary,
            detail,
        }
    }
    pub fn success(summary: String, detail: Value) -> Self {
        Self::new(RemediationResult::Success, summary, detail)
    }
    pub fn dry_run(summary: String, detail: Value) -> Self {
        Self::new(RemediationResult::DryRun, summary, detail)
    }
    /// Nothing to do: at the cap, already enough replicas, no unhealthy pod.
    pub fn noop(summary: String) -> Self {
        Self::new(RemediationResult::SkippedNoop, summary, json!({}))
    }

    /// The report with a warning (a GitOps controller may revert it) in its summary and its
    /// detail, when the action did something or planned to.
    fn warned(mut self, warning: Option<String>) -> Self {
        let Some(warning) = warning.filter(|_| self.result.is_done()) else {
            return self;
        };
        self.summary = format!("{}; {warning}", self.summary);
        if let Some(detail) = self.detail.as_object_mut() {
            detail.insert("gitops_warning".into(), Value::String(warning));
        }
        self
    }
}

/// How a remediation timer ended, for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Decided and recorded (whatever the result).
    Finished,
    /// Another action on the same target is running: try again shortly.
    Busy,
    /// Waiting for a person's approval: come back at this time (the request's expiry), or
    /// sooner when someone decides (the answer wakes the timer).
    Wait(DateTime<Utc>),
    /// The timer cannot be run at all (its job cannot be decoded, or its rule no longer
    /// remediates): a failure, with the reason, that no retry can fix.
    Rejected(String),
}

/// Runs remediation timers: guard rails, then the handler, then the record and the report.
pub struct Runner {
    /// Where decisions and outcomes are recorded.
    store: Store,
    /// Each timer's rule says which action, with which options.
    rules: Arc<Rules>,
    /// Namespaces, cooldown, budgets, flapping and the action timeout.
    guard_rails: GuardRails,
    /// The cluster, or why it cannot be reached.
    kube: Result<Kube, String>,
    /// What `postgres_relieve_pool` may touch, by name.
    databases: BTreeMap<String, TargetDatabase>,
    /// Maintenance windows in force.
    control: Arc<Control>,
    metrics: RemediationMetrics,
}

impl Runner {
    pub fn new(
        store: Store,
        rules: Arc<Rules>,
        guard_rails: GuardRails,
        kube: Result<Kube, String>,
        databases: BTreeMap<String, TargetDatabase>,
        control: Arc<Control>,
        metrics: RemediationMetrics,
    ) -> Self {
        Self {
            store,
            rules,
            guard_rails,
            kube,
            databases,
            control,
            metrics,
        }
    }

    /// Runs one remediation timer to a decision; `Busy` asks the engine to come back. When
    /// traces are exported, within a span of its own in the incident's trace.
    pub async fn run(&self, timer: &Claimed) -> Result<Done, StoreError> {
        if !telemetry::exporting() {
            return self.decide_and_act(timer).await;
        }
        let span = tracing::info_span!("remediate", otel.name = %format_args!("remediate {}", timer.notifier),
            action = %timer.notifier, incident_id = timer.incident.id, rule = %timer.rule, step = timer.step,
            episode = %timer.subject, target = Empty, dry_run = Empty, verdict = Empty, remediation_id = Empty,
            result = Empty, summary = Empty, otel.status_code = Empty);
        let done = self.decide_and_act(timer).instrument(span.clone()).await;
        let failed = match &done {
            Ok(Done::Rejected(reason)) => Some(reason.clone()),
            Err(e) => Some(e.to_string()),
            Ok(_) => None,
        };
        if let Some(reason) = failed {
            span.record("result", "failure");
            span.record("summary", reason.as_str());
            span.record("otel.status_code", "ERROR");
        }
        done
    }

    /// [`Runner::run`]: the guard rails' verdict, then the action, recorded.
    async fn decide_and_act(&self, timer: &Claimed) -> Result<Done, StoreError> {
        let started = Instant::now();
        let job = match RemediationJob::decode(timer.payload.as_ref()) {
            Ok(job) => job,
            Err(reason) => return Ok(self.reject(timer, reason)),
        };
        let step = timer.step.max(1);
        let spec = self
            .rules
            .get(&timer.rule)
            .and_then(|rule| rule.remediation_step(step));
        let Some(spec) = spec else {
            let reason = format!("rule {:?} no longer has remediation step {step}", timer.rule);
            return Ok(self.reject(timer, reason));
        };
        let (params, skip, warning) = self.precheck(spec, &job).await;
        let target = target_key(spec.action, &params);
        let dry_run = spec.dry_run.unwrap_or(self.guard_rails.dry_run);
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let intent = Intent {
            incident_id: timer.incident.id,
            rule: &timer.rule,
            step,
            action: spec.action,
            target: &target,
            episode: &timer.subject,
            fingerprint: &job.fingerprint,
            starts_at: job.starts_at,
            skip: skip.as_ref().map(|(result, _)| *result),
            dry_run,
            approval: spec.approval,
            approval_timeout_ms: ms(self.guard_rails.approval_timeout),
            limits: self.limits(spec),
        };
        let span = Span::current();
        span.record("target", target.as_str());
        span.record("dry_run", dry_run);
        let decided = self.store.decide_remediation(&intent).await?;
        span.record("verdict", decided.decision.as_str());
        let Some(id) = decided.remediation_id else {
            return Ok(Done::Busy);
        };
        span.record("remediation_id", id);
        let report = match decided.decision {
            RemediationDecision::Busy => return Ok(Done::Busy),
            RemediationDecision::Duplicate => return Ok(Done::Finished),
            RemediationDecision::Interrupted => Report::new(
                RemediationResult::Failure,
                decided.summary.unwrap_or_else(|| "interrupted".into()),
                json!({}),
            ),
            RemediationDecision::AwaitingApproval => {
                let until = decided.expires_at.unwrap_or_else(Utc::now);
                self.request_approval(timer, spec, id, &params, &target, until)
                    .await?;
                return Ok(Done::Wait(until));
            }
            RemediationDecision::Act | RemediationDecision::DryRun => {
                let report = self
                    .execute(spec.action, &params, dry_run, spec.gitops_allow)
                    .await;
                report.warned(warning)
            }
            RemediationDecision::Skipped(result) => {
                let reason = skip.map_or_else(|| result.reason().to_owned(), |(_, reason)| reason);
                Report::new(result, reason, json!({}))
            }
        };
        span.record("result", report.result.as_str());
        span.record("summary", report.summary.as_str());
        if report.result == RemediationResult::Failure {
            span.record("otel.status_code", "ERROR");
        }
        self.finish(timer, spec, &job, id, &target, &report, started)
            .await?;
        Ok(Done::Finished)
    }

    /// A step whose turn came and needs a person: what a dry run says it would do is
    /// recorded with the request, and the rule's channels are asked.
    async fn request_approval(
        &self,
        timer: &Claimed,
        spec: &RemediationSpec,
        id: i64,
        params: &ActionParams,
        target: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let plan = self.execute(spec.action, params, true, spec.gitops_allow).await;
        let summary = format!(
            "waiting for approval until {}: {}",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            plan.summary
        );
        let params = serde_json::to_value(&params.0).unwrap_or_default();
        self.store
            .request_approval(id, &params, &plan.summary, &summary)
            .await?;
        self.metrics
            .remediations
            .with_label_values(&[spec.action.as_str(), RemediationResult::AwaitingApproval.as_str()])
            .inc();
        tracing::info!(
            incident_id = timer.incident.id, rule = %timer.rule, action = spec.action.as_str(), target,
            episode = %timer.subject, remediation_id = id, until = %until, plan = %plan.summary,
            "remediation awaits approval"
        );
        Ok(())
    }

    /// What is decided before the database is asked: the parameters, a skip (invalid, a
    /// namespace not allowed, Kubernetes unavailable, a maintenance window, a target GitOps
    /// manages) and a warning for the report (a managed target the step may change anyway).
    async fn precheck(
        &self,
        spec: &RemediationSpec,
        job: &RemediationJob,
    ) -> (ActionParams, Option<(RemediationResult, String)>, Option<String>) {
        let params = match self.check(spec.action, job) {
            Ok(params) => params,
            Err(skip) => return (ActionParams::default(), Some(skip), None),
        };
        if let Some(skip) = self.maintenance(job) {
            return (params, Some(skip), None);
        }
        match self.gitops(spec, &params).await {
            gitops::Verdict::Free => (params, None, None),
            gitops::Verdict::Skip(why) => (params, Some((RemediationResult::SkippedGitops, why)), None),
            gitops::Verdict::Warn(warning) => (params, None, Some(warning)),
        }
    }

    /// Whether Argo CD or Flux manages the Deployment a spec-changing action would change.
    async fn gitops(&self, spec: &RemediationSpec, params: &ActionParams) -> gitops::Verdict {
        let (Ok(kube), true) = (&self.kube, spec.action.changes_spec()) else {
            return gitops::Verdict::Free;
        };
        let (Some(namespace), Some(name)) = (params.text("namespace"), params.text("deployment")) else {
            return gitops::Verdict::Free;
        };
        gitops::check(kube, namespace, name, spec.gitops_allow).await
    }

    /// Skips the step when a maintenance window muting remediation covers its alert.
    fn maintenance(&self, job: &RemediationJob) -> Option<(RemediationResult, String)> {
        let window = self.control.covering(Mute::Remediation, [&job.labels])?;
        let reason = format!(
            "maintenance window {} ({}) until {}",
            window.id,
            window.reason,
            window.ends_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        Some((RemediationResult::SkippedMaintenance, reason))
    }

    /// A step's `verify_within` is up: records whether it fixed the alert and, if it did
    /// not, schedules the next step or hands the incident to people.
    pub async fn verify(&self, timer: &Claimed) -> Result<Done, StoreError> {
        let job = match RemediationJob::decode(timer.payload.as_ref()) {
            Ok(job) => job,
            Err(reason) => return Ok(self.reject(timer, reason)),
        };
        let step = timer.step.max(1);
        let next = self
            .rules
            .get(&timer.rule)
            .and_then(|rule| rule.remediation_step(step + 1))
            .map(|spec| {
                let params = spec.render(&job.labels, &job.annotations);
                (spec.action, job.for_step(params).to_payload())
            });
        let check = VerifyStep {
            incident_id: timer.incident.id,
            rule: &timer.rule,
            step,
            episode: &timer.subject,
            fingerprint: &job.fingerprint,
            starts_at: job.starts_at,
            next: next.as_ref().map(|(action, job)| (*action, job)),
        };
        if let Some(verification) = self.store.verify_step(&check).await? {
            let result = verification.as_str();
            self.metrics
                .verifications
                .with_label_values(&[&timer.notifier, result])
                .inc();
            self.metrics
                .rule_verifications
                .with_label_values(&[&timer.rule, result])
                .inc();
            tracing::info!(
                incident_id = timer.incident.id, rule = %timer.rule, step, action = %timer.notifier,
                episode = %timer.subject, verification = result,
                next_step = next.as_ref().map(|(action, _)| action.as_str()),
                "remediation verified"
            );
        }
        Ok(Done::Finished)
    }

    /// A timer that cannot be run: logged and counted, and a failure for the engine to record.
    fn reject(&self, timer: &Claimed, reason: String) -> Done {
        tracing::error!(
            timer_id = timer.id, incident_id = timer.incident.id, rule = %timer.rule,
            action = %timer.notifier, episode = %timer.subject, reason = %reason,
            "remediation cannot be run"
        );
        if let Some(action) = Action::parse(&timer.notifier) {
            self.metrics
                .remediations
                .with_label_values(&[action.as_str(), RemediationResult::Failure.as_str()])
                .inc();
        }
        Done::Rejected(reason)
    }

    /// Decisions medic can make without the database: the parameters rendered and valid
    /// (every name, selector, count and duration checked before any request), the namespace
    /// allowed, Kubernetes reachable. Ok carries the parameters in canonical form.
    fn check(
        &self,
        action: Action,
        job: &RemediationJob,
    ) -> Result<ActionParams, (RemediationResult, String)> {
        let rendered = job.params().map_err(|e| {
            let reason = format!("parameters could not be rendered: {e}");
            (RemediationResult::Failure, reason)
        })?;
        let params = action
            .validate(rendered, &self.guard_rails.limits)
            .map_err(|e| (RemediationResult::SkippedInvalid, e))?;
        if let Some(namespace) = params.text("namespace") {
            if !self.guard_rails.namespace_allowed(namespace) {
                let reason = format!("namespace {namespace:?} is not allowed");
                return Err((RemediationResult::SkippedNamespace, reason));
            }
        }
        if action.needs_kubernetes(&params) {
            if let Err(reason) = &self.kube {
                let reason = format!("Kubernetes is not available: {reason}");
                return Err((RemediationResult::Failure, reason));
            }
        }
        Ok(params)
    }

    fn limits(&self, spec: &RemediationSpec) -> Limits {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let budget = |b: crate::config::Budget| (b.actions as i32, ms(b.window));
        let rails = &self.guard_rails;
        Limits {
            cooldown_ms: ms(spec.cooldown.unwrap_or(rails.cooldown)),
            per_target: budget(rails.per_target),
            per_rule: budget(rails.per_rule),
            global: budget(rails.global),
            flapping: (rails.flapping_max_fires as i32, ms(rails.flapping_window)),
            action_timeout_ms: ms(rails.limits.action_timeout),
        }
    }

    /// Runs the handler under the action's deadline; an error from it, or the deadline
    /// passing, is a failure with its reason.
    async fn execute(
        &self,
        action: Action,
        params: &ActionParams,
        dry_run: bool,
        gitops_allow: bool,
    ) -> Report {
        let deadline = self.guard_rails.limits.deadline();
        let handled = self.handle(action, params, dry_run, gitops_allow);
        match tokio::time::timeout(deadline, handled).await {
            Ok(report) => report,
            Err(_) => Report::new(
                RemediationResult::Failure,
                format!(
                    "deadline: the action ran past {} and was stopped; what it did so far stands",
                    crate::domain::HumanDuration(deadline)
                ),
                json!({}),
            ),
        }
    }

    /// The action's handler.
    async fn handle(
        &self,
        action: Action,
        params: &ActionParams,
        dry_run: bool,
        gitops_allow: bool,
    ) -> Report {
        let kube = self.kube.as_ref().ok();
        let result = match (action, kube) {
            (Action::PostgresRelievePool, kube) => {
                match params.text("database").and_then(|d| self.databases.get(d)) {
                    Some(database) => {
                        let run = postgres_pool::Run {
                            dry_run,
                            gitops_allow,
                        };
                        postgres_pool::relieve(database, kube, params, run).await
                    }
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
        result.unwrap_or_else(|reason| Report::new(RemediationResult::Failure, reason, json!({})))
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        timer: &Claimed,
        spec: &RemediationSpec,
        job: &RemediationJob,
        id: i64,
        target: &str,
        report: &Report,
        started: Instant,
    ) -> Result<(), StoreError> {
        let payload = job.to_payload();
        let verify = spec.verify_within.map(|wait| (wait, &payload));
        self.store
            .finish_remediation(id, report.result, &report.summary, &report.detail, verify)
            .await?;
        let action = spec.action.as_str();
        let result = report.result.as_str();
        self.metrics
            .remediations
            .with_label_values(&[action, result])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[action])
            .observe(started.elapsed().as_secs_f64());
        // A step skipped or failed ends the ladder: people take over at once, told what was
        // tried.
        let escalate = !report.result.is_done();
        tracing::info!(
            incident_id = timer.incident.id, rule = %timer.rule, step = timer.step.max(1), action, target,
            episode = %timer.subject, result, summary = %report.summary, escalate, "remediation"
        );
        if escalate {
            let handover = self.store.handover(&timer.rule, &timer.subject).await?;
            self.store
                .escalate_now(timer.incident.id, Some(&handover))
                .await?;
        }
        Ok(())
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
