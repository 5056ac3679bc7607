//! Remediation: what a fired remediation timer does. Guard rails first (the alert still fires,
//! not acknowledged, not paused, no maintenance window, namespace allowed, not flapping, no
//! other action on the target running, cooldown and budgets), decided and recorded atomically
//! in Postgres; then a request for approval, if the step needs one, or the handler, in dry-run
//! or for real; then the outcome, recorded, counted, logged and reported to the rule's
//! channels.
//!
//! A rule's `remediate:` is a ladder. A step that succeeds with `verify_within` is verified
//! when that is up (a `verify` timer): if its alert episode resolved it is `holding`, and
//! `fixed` once `hold` has passed; else `not_fixed` and the next step runs, through every
//! guard rail again. The same alert firing again within `hold` (a new episode of the same
//! fingerprint, in the same group, taken by the same rule) makes the step `relapsed`, and the
//! new episode goes on from the next step, as if the step had not fixed it. A step that is skipped or fails,
//! and a last step that did not fix it, hand the incident to people: the first pending
//! escalation step is due at once, saying what was tried.
//!
//! A rule in `mode: observe` goes through the same guard rails, but a step they let act is
//! only planned (a dry run) and recorded as `observed`: nothing is changed, no budget is spent
//! (its own later steps count it, as if it had acted), nobody is asked to approve it and nobody
//! is paged early; it is verified as if it had run, and its relapses demote nothing.
//!
//! A step's `verify_query` is read from Prometheus just before it acts and when it is verified,
//! as evidence (`error ratio 7.2% → 0.4%`); a query that fails or yields other than one series
//! records why, and never holds the step up.

mod gitops;
mod kube;
mod postgres_pool;
mod report;
mod restart_pods;
mod rollout;
mod scale;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use serde_json::json;
use tracing::{field::Empty, Instrument, Span};

pub(crate) use self::restart_pods::is_ready;
pub use self::{
    kube::{controller, selector_query, Kube, KubeError},
    report::Report,
};
pub use crate::domain::target_key;
use crate::{
    control::Control,
    domain::{
        Action, ActionParams, Evidence, Mute, Reading, RemediationDecision, RemediationJob,
        RemediationResult, RemediationWork, RuleMode, Verification,
    },
    metrics::RemediationMetrics,
    plan::{GuardRails, RemediationSpec, Rules, TargetDatabase},
    slo::prometheus::Prometheus,
    store::{
        remediations::{Intent, Limits, Refired, Relapse, Verified, VerifiedStep, VerifyAfter, VerifyStep},
        timers::{Claimed, Undecodable},
        Store, StoreError,
    },
    telemetry,
};

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
    /// The timer cannot be run at all (its rule no longer remediates): a failure, with the
    /// reason, that no retry can fix.
    Rejected(String),
}

/// What the checks before the decision found: the step's parameters, a skip and its reason, a
/// GitOps warning, and whether the GitOps check must be asked again before acting (the target
/// could not be read).
type Prechecked = (
    ActionParams,
    Option<(RemediationResult, String)>,
    Option<String>,
    bool,
);

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
    /// Where steps' `verify_query` is read; None without `prometheus.url`.
    prometheus: Option<Prometheus>,
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
            prometheus: None,
        }
    }

    /// Reads steps' `verify_query` from this Prometheus.
    pub fn with_prometheus(mut self, prometheus: Option<Prometheus>) -> Self {
        self.prometheus = prometheus;
        self
    }

    /// Runs one remediation timer (`work`) to a decision; `Busy` asks the engine to come back.
    /// When traces are exported, within a span of its own in the incident's trace.
    pub async fn run(&self, timer: &Claimed, work: &RemediationWork) -> Result<Done, StoreError> {
        if !telemetry::exporting() {
            return self.decide_and_act(timer, work).await;
        }
        let action = work.action.as_str();
        let span = tracing::info_span!("remediate", otel.name = %format_args!("remediate {action}"),
            action, incident_id = timer.incident.id, rule = %timer.rule, step = work.step,
            episode = %work.episode, target = Empty, dry_run = Empty, verdict = Empty, remediation_id = Empty,
            result = Empty, summary = Empty, otel.status_code = Empty);
        let done = self.decide_and_act(timer, work).instrument(span.clone()).await;
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
    async fn decide_and_act(&self, timer: &Claimed, work: &RemediationWork) -> Result<Done, StoreError> {
        let started = Instant::now();
        let job = &work.job;
        let step = work.step.max(1);
        let rule = self.rules.get(&timer.rule);
        let mode = rule.map_or(RuleMode::Act, |rule| rule.mode);
        if step == 1 && self.relapsed(timer, work, mode).await? {
            return Ok(Done::Finished);
        }
        let Some(spec) = rule.and_then(|rule| rule.remediation_step(step)) else {
            let reason = format!("rule {:?} no longer has remediation step {step}", timer.rule);
            return Ok(self.reject(timer, work, reason));
        };
        let (params, skip, warning, recheck) = self.precheck(spec, job).await;
        let target = target_key(spec.action, &params);
        let dry_run = spec.dry_run.unwrap_or(self.guard_rails.dry_run);
        let demotion = self.store.demotion(&timer.rule, step).await?;
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let intent = Intent {
            incident_id: timer.incident.id,
            rule: &timer.rule,
            step,
            action: spec.action,
            target: &target,
            episode: &work.episode,
            fingerprint: &job.fingerprint,
            starts_at: job.starts_at,
            skip: skip.as_ref().map(|(result, _)| *result),
            dry_run,
            approval: spec.approval || demotion.is_some(),
            approval_timeout_ms: ms(self.guard_rails.approval_timeout),
            limits: self.limits(spec),
            mode,
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
                let why = demotion.map(|d| d.reason);
                self.request_approval(timer, work, spec, id, (&params, &target, why), until)
                    .await?;
                return Ok(Done::Wait(until));
            }
            RemediationDecision::Act | RemediationDecision::DryRun => {
                let evidence = match decided.decision {
                    RemediationDecision::Act => self.evidence_before(spec, job).await,
                    _ => None,
                };
                let report = self
                    .execute(spec.action, &params, dry_run, spec.gitops_allow, recheck)
                    .await;
                report.warned(warning).with_evidence(evidence)
            }
            RemediationDecision::Observe => {
                let evidence = self.evidence_before(spec, job).await;
                let approval = intent
                    .approval
                    .then(|| demotion.map_or_else(|| "approval: required".to_owned(), |d| d.reason));
                let report = self.observe(spec, (&params, &target), approval, recheck).await;
                report.warned(warning).with_evidence(evidence)
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
        self.finish(timer, (spec, mode), work, id, &target, &report, started)
            .await?;
        Ok(Done::Finished)
    }

    /// A step of a rule in `mode: observe` that every guard rail let act: what a dry run says
    /// it would do is recorded as `observed`, with the plan (action, target, parameters, and
    /// the approval it would have waited for, of which nobody is asked). A plan the handler
    /// refuses (a PodDisruptionBudget, `min_healthy`, nothing to do, a target GitOps manages,
    /// a failure) is recorded as acting would have recorded it.
    async fn observe(
        &self,
        spec: &RemediationSpec,
        (params, target): (&ActionParams, &str),
        approval: Option<String>,
        recheck: bool,
    ) -> Report {
        let plan = self
            .execute(spec.action, params, true, spec.gitops_allow, recheck)
            .await;
        if plan.result != RemediationResult::DryRun {
            return plan;
        }
        let action = spec.action.as_str();
        let summary = match &approval {
            Some(why) => format!(
                "observed: would have asked for approval ({why}), then run {action} on {target}: {}",
                plan.summary
            ),
            None => format!("observed: would have run {action} on {target}: {}", plan.summary),
        };
        let mut detail = plan.detail;
        let observed = json!({"action": action, "target": target, "params": params.0,
                              "plan": plan.summary, "approval": approval});
        match detail.as_object_mut() {
            Some(object) => {
                object.insert("observed".into(), observed);
            }
            None => detail = json!({"observed": observed}),
        }
        Report::new(RemediationResult::Observed, summary, detail)
    }

    /// The step's `verify_query` read now, before it acts; None when it has none.
    async fn evidence_before(&self, spec: &RemediationSpec, job: &RemediationJob) -> Option<Evidence> {
        let verify = spec.verify_query.as_ref()?;
        match verify.evidence(&job.labels, &job.annotations) {
            Ok(mut evidence) => {
                evidence.before = Some(self.read(&evidence.query).await);
                Some(evidence)
            }
            Err(e) => {
                // Nothing to read again when verifying: both readings say why.
                let reading = Reading::of(Utc::now(), Err(format!("the query cannot be rendered: {e}")));
                Some(Evidence {
                    query: verify.query.to_string(),
                    name: verify.name.clone(),
                    format: verify.format,
                    before: Some(reading.clone()),
                    after: Some(reading),
                })
            }
        }
    }

    /// One reading of a `verify_query`, or why there is none.
    async fn read(&self, query: &str) -> Reading {
        let at = Utc::now();
        let value = match &self.prometheus {
            Some(prometheus) => prometheus.one_series(query).await.map_err(|e| format!("{e:#}")),
            None => Err("prometheus.url is not set".to_owned()),
        };
        if let Err(reason) = &value {
            tracing::warn!(query, reason = %reason, "verify_query gave no value; recorded, the step goes on");
        }
        Reading::of(at, value)
    }

    /// A step whose turn came and needs a person: what a dry run says it would do is
    /// recorded with the request, and the rule's channels are asked.
    async fn request_approval(
        &self,
        timer: &Claimed,
        work: &RemediationWork,
        spec: &RemediationSpec,
        id: i64,
        (params, target, demoted): (&ActionParams, &str, Option<String>),
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // A plan describes; the approved step goes through the checks again before it acts.
        let mut plan = self
            .execute(spec.action, params, true, spec.gitops_allow, false)
            .await;
        // A demoted step asks for what it used to do alone, and says why.
        if let Some(why) = demoted {
            plan.summary = format!("{why}; {}", plan.summary);
        }
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
            episode = %work.episode, remediation_id = id, until = %until, plan = %plan.summary,
            "remediation awaits approval"
        );
        Ok(())
    }

    /// What is decided before the database is asked: the parameters, a skip (invalid, a
    /// namespace not allowed, Kubernetes unavailable, a maintenance window, a target GitOps
    /// manages) and a warning for the report (a managed target the step may change anyway).
    async fn precheck(&self, spec: &RemediationSpec, job: &RemediationJob) -> Prechecked {
        let params = match self.check(spec.action, job) {
            Ok(params) => params,
            Err(skip) => return (ActionParams::default(), Some(skip), None, false),
        };
        if let Some(skip) = self.maintenance(job) {
            return (params, Some(skip), None, false);
        }
        match self.gitops(spec, &params).await {
            gitops::Verdict::Free => (params, None, None, false),
            gitops::Verdict::Skip(why) => {
                (params, Some((RemediationResult::SkippedGitops, why)), None, false)
            }
            gitops::Verdict::Warn(warning) => (params, None, Some(warning), false),
            // Nobody can tell yet: the guard rails decide as for any step (budgets and
            // cooldowns count it), and the handler asks again before it changes anything.
            gitops::Verdict::Unreadable(why) => {
                tracing::debug!(reason = %why, "GitOps check deferred to the action: the target could not be read");
                (params, None, None, true)
            }
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

    /// A step's `verify_within` is up (`work`): records whether it fixed the alert and, if it
    /// did not, schedules the next step or hands the incident to people.
    pub async fn verify(&self, timer: &Claimed, work: &RemediationWork) -> Result<Done, StoreError> {
        let job = &work.job;
        let step = work.step.max(1);
        if let Some(evidence) = self
            .store
            .unread_evidence(&timer.rule, &work.episode, step)
            .await?
        {
            let after = self.read(&evidence.query).await;
            self.store
                .record_evidence_after(&timer.rule, &work.episode, step, &after)
                .await?;
        }
        let next = self.next_job(&timer.rule, step + 1, job);
        let check = VerifyStep {
            incident_id: timer.incident.id,
            rule: &timer.rule,
            step,
            episode: &work.episode,
            fingerprint: &job.fingerprint,
            starts_at: job.starts_at,
            next: next.as_ref().map(|(action, job)| (*action, job)),
        };
        let Some(VerifiedStep {
            verified,
            observed,
            evidence,
        }) = self.store.verify_step(&check).await?
        else {
            return Ok(Done::Finished);
        };
        let evidence = evidence.as_ref().map(Evidence::line);
        match verified {
            Verified::Holding(until) => {
                tracing::info!(
                    incident_id = timer.incident.id, rule = %timer.rule, step, action = work.action.as_str(),
                    episode = %work.episode, until = %until, observed, evidence,
                    "remediation holding: the alert resolved"
                );
                Ok(Done::Wait(until))
            }
            Verified::Done(verification) => {
                self.count_verification(&timer.rule, work.action.as_str(), verification, observed);
                tracing::info!(
                    incident_id = timer.incident.id, rule = %timer.rule, step, action = work.action.as_str(),
                    episode = %work.episode, verification = verification.as_str(), observed, evidence,
                    next_step = next.as_ref().map(|(action, _)| action.as_str()),
                    "remediation verified"
                );
                Ok(Done::Finished)
            }
        }
    }

    /// The action of step `step` of `rule` and the job its timer carries for `job`'s alert.
    fn next_job(&self, rule: &str, step: i32, job: &RemediationJob) -> Option<(Action, RemediationJob)> {
        let spec = self.rules.get(rule)?.remediation_step(step)?;
        let params = spec.render(&job.labels, &job.annotations);
        Some((spec.action, job.for_step(params)))
    }

    /// Demotes the step when its relapses and failures reach `remediation.demote_after`.
    async fn demote_if_due(&self, rule: &str, step: i32) -> Result<(), StoreError> {
        let rails = &self.guard_rails;
        let window_ms = i64::try_from(rails.demote_window.as_millis()).unwrap_or(i64::MAX);
        let window = crate::domain::HumanDuration(rails.demote_window).to_string();
        let demoted = self
            .store
            .demote_if_due(rule, step, rails.demote_count, window_ms, &window)
            .await?;
        if let Some(demotion) = demoted {
            tracing::warn!(rule, step, reason = %demotion.reason,
                "rule step demoted: it needs approval until an admin promotes it");
        }
        Ok(())
    }

    /// Counts a final verification; an observed step's only as what it would have come to
    /// (nothing was done: no fix of medic's to count).
    fn count_verification(&self, rule: &str, action: &str, verification: Verification, observed: bool) {
        if let Some(outcome) = crate::domain::Outcome::of_verification(verification) {
            let outcomes = match observed {
                true => &self.metrics.observed_outcomes,
                false => &self.metrics.outcomes,
            };
            outcomes
                .with_label_values(&[rule, action, outcome.as_str()])
                .inc();
        }
        if observed {
            return;
        }
        let result = verification.as_str();
        self.metrics
            .verifications
            .with_label_values(&[action, result])
            .inc();
        self.metrics
            .rule_verifications
            .with_label_values(&[rule, result])
            .inc();
    }

    /// A new episode's first step: if it undid an earlier fix of the same alert (it fired
    /// again within that step's `hold`), records the relapse and goes on from the step after,
    /// or hands the incident to people at the end of the ladder. True when it did. A step
    /// observed relapses too (what would have happened), and demotes nothing.
    async fn relapsed(
        &self,
        timer: &Claimed,
        work: &RemediationWork,
        mode: RuleMode,
    ) -> Result<bool, StoreError> {
        let job = &work.job;
        let refired = Refired {
            incident_id: timer.incident.id,
            rule: &timer.rule,
            episode: &work.episode,
            fingerprint: &job.fingerprint,
            starts_at: job.starts_at,
            mode,
        };
        let Some(relapse) = self.store.relapse(&refired).await? else {
            return Ok(false);
        };
        let next = self.next_job(&timer.rule, relapse.step + 1, job);
        if relapse.first {
            let observed = relapse.observed;
            self.count_verification(&timer.rule, &relapse.action, Verification::Relapsed, observed);
            log_relapse(timer, work, &relapse, next.as_ref().map(|(action, _)| *action));
            if !observed {
                self.demote_if_due(&timer.rule, relapse.step).await?;
            }
        }
        let next = next
            .as_ref()
            .map(|(action, job)| (relapse.step + 1, *action, job));
        self.store
            .after_relapse(
                timer.incident.id,
                &timer.rule,
                &work.episode,
                (next, relapse.observed),
            )
            .await?;
        Ok(true)
    }

    /// A timer that cannot be run: logged and counted, and a failure for the engine to record.
    fn reject(&self, timer: &Claimed, work: &RemediationWork, reason: String) -> Done {
        tracing::error!(
            timer_id = timer.id, incident_id = timer.incident.id, rule = %timer.rule,
            action = work.action.as_str(), episode = %work.episode, reason = %reason,
            "remediation cannot be run"
        );
        self.count_failure(Some(work.action));
        Done::Rejected(reason)
    }

    /// A remediation or verify timer whose row cannot be read (its job damaged, or written by
    /// another version): logged and counted as one that cannot be run; the reason, for the
    /// engine to record its failure with.
    pub fn undecodable(&self, timer: &Undecodable) -> String {
        tracing::error!(
            timer_id = timer.id, incident_id = timer.incident_id, rule = %timer.rule,
            action = timer.action.map(Action::as_str), reason = %timer.reason,
            "remediation cannot be run"
        );
        self.count_failure(timer.action);
        timer.reason.clone()
    }

    fn count_failure(&self, action: Option<Action>) {
        if let Some(action) = action {
            self.metrics
                .remediations
                .with_label_values(&[action.as_str(), RemediationResult::Failure.as_str()])
                .inc();
        }
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
        recheck_gitops: bool,
    ) -> Report {
        let deadline = self.guard_rails.limits.deadline();
        let handled = self.handle(action, params, dry_run, gitops_allow, recheck_gitops);
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
        recheck_gitops: bool,
    ) -> Report {
        let kube = self.kube.as_ref().ok();
        let deployment_spec = matches!(action, Action::ScaleUp | Action::ScaleTo | Action::RolloutRestart);
        if let (Some(kube), true, true) = (kube, deployment_spec, recheck_gitops) {
            // The check before the decision could not read the target: ask again before
            // changing it (postgres_relieve_pool asks on its own: its terminations go on).
            if let (Some(namespace), Some(name)) = (params.text("namespace"), params.text("deployment")) {
                match gitops::check(kube, namespace, name, false).await {
                    gitops::Verdict::Skip(why) => {
                        return Report::new(RemediationResult::SkippedGitops, why, json!({}))
                    }
                    gitops::Verdict::Unreadable(why) => {
                        return Report::new(RemediationResult::Failure, why, json!({}))
                    }
                    gitops::Verdict::Free | gitops::Verdict::Warn(_) => {}
                }
            }
        }
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

    /// Records the outcome, counts and logs it, and hands the incident to people when the
    /// step did not do what was asked (never early for a rule that only observes).
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        timer: &Claimed,
        (spec, mode): (&RemediationSpec, RuleMode),
        work: &RemediationWork,
        id: i64,
        target: &str,
        report: &Report,
        started: Instant,
    ) -> Result<(), StoreError> {
        let verify = spec.verify_within.map(|within| VerifyAfter {
            within,
            hold: spec.hold.unwrap_or(self.guard_rails.hold),
            job: &work.job,
        });
        self.store
            .finish_remediation(
                id,
                report.result,
                (&report.summary, &report.detail),
                report.evidence.as_ref(),
                verify,
            )
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
        let observing = mode == RuleMode::Observe;
        if let Some(outcome) = crate::domain::Outcome::of_result(report.result) {
            let outcomes = match observing {
                true => &self.metrics.observed_outcomes,
                false => &self.metrics.outcomes,
            };
            outcomes
                .with_label_values(&[&timer.rule, action, outcome.as_str()])
                .inc();
        }
        if report.result == RemediationResult::Failure && !observing {
            self.demote_if_due(&timer.rule, work.step.max(1)).await?;
        }
        // A step skipped or failed ends the ladder: people take over at once, told what was
        // tried. A rule that only observes changes nothing, the pages' schedule included.
        let escalate = !report.result.is_done() && !observing;
        tracing::info!(
            incident_id = timer.incident.id, rule = %timer.rule, step = work.step.max(1), action, target,
            episode = %work.episode, mode = mode.as_str(), result, summary = %report.summary, escalate,
            "remediation"
        );
        if escalate {
            let handover = self.store.handover(&timer.rule, &work.episode).await?;
            self.store
                .escalate_now(timer.incident.id, Some(&handover))
                .await?;
        }
        Ok(())
    }
}

/// One event for a relapse: which step's fix did not hold, and what comes next.
fn log_relapse(timer: &Claimed, work: &RemediationWork, relapse: &Relapse, next: Option<Action>) {
    tracing::info!(
        incident_id = timer.incident.id, rule = %timer.rule, step = relapse.step, action = %relapse.action,
        remediation_id = relapse.remediation_id, fixed_episode = %relapse.episode, episode = %work.episode,
        held_from = ?relapse.held_from, relapsed_at = ?relapse.relapsed_at,
        next_step = next.map(Action::as_str), "remediation relapsed: the alert fired again within hold"
    );
}
