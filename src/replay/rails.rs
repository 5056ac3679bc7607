//! The guard rails against the virtual history, in `medic_decide_remediation`'s order:
//! resolved, acknowledged, paused, the checks made before the database (parameters, namespace,
//! maintenance window), flapping, cooldown, budgets, approval, dry run; for a rule in
//! `mode: observe`, no approval and `observed`, its cooldowns and budgets counting the steps
//! observed in the period as if they had acted.
//!
//! Not modelled: "one action per target at a time" (actions take no virtual time, so none is
//! ever running), whether Kubernetes was reachable (a step recorded as a `failure` that did
//! not count stays one), and steps observed before the period.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    config::Budget,
    domain::{Action, ActionParams, RemediationJob, RemediationResult, RuleMode},
    plan::{matchers::Matchers, Plan, RemediationSpec, Rule},
    store::replay::{Snapshot, StoredIncident, StoredRemediation},
};

/// What the guard rails read: the settings, the virtual actions, windows, pauses and fires.
pub struct Rails<'a> {
    plan: &'a Plan,
    /// Actions that counted (success, failure): when, on which target, by which rule.
    actions: Vec<(DateTime<Utc>, String, String)>,
    /// Steps observed in the period: they count only for observed steps' cooldowns and budgets.
    observed: Vec<(DateTime<Utc>, String, String)>,
    /// Maintenance windows muting remediation: matchers, start, end.
    windows: Vec<(Matchers, DateTime<Utc>, DateTime<Utc>)>,
    /// Pauses: from, until (exclusive).
    pauses: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Episodes by group and fingerprint: when each started and when medic first saw it.
    fires: Fires<'a>,
}

/// Alert episodes by group and fingerprint: (starts_at, first seen).
type Fires<'a> = HashMap<(i64, &'a str), Vec<(DateTime<Utc>, DateTime<Utc>)>>;

impl<'a> Rails<'a> {
    /// The rails as they stood when the period began.
    pub fn new(plan: &'a Plan, snapshot: &'a Snapshot) -> Self {
        let actions = snapshot
            .earlier_actions
            .iter()
            .map(|r| (r.started_at, r.target.clone(), r.rule.clone()))
            .collect();
        let windows = snapshot
            .windows
            .iter()
            .filter(|w| w.mute.iter().any(|m| m == "remediation"))
            .filter_map(|w| Some((Matchers::parse(&w.matchers).ok()?, w.starts_at, w.ends_at)))
            .collect();
        let mut fires: Fires = HashMap::new();
        for fire in &snapshot.earlier_fires {
            let key = (fire.group_id, fire.fingerprint.as_str());
            fires
                .entry(key)
                .or_default()
                .push((fire.starts_at, fire.starts_at));
        }
        for incident in &snapshot.incidents {
            for alert in &incident.alerts {
                let key = (incident.group_id, alert.fingerprint.as_str());
                fires
                    .entry(key)
                    .or_default()
                    .push((alert.starts_at, alert.first_seen_at));
            }
        }
        Self {
            plan,
            actions,
            observed: Vec::new(),
            windows,
            pauses: pauses(snapshot),
            fires,
        }
    }

    /// The checks medic makes before asking the database (`Runner::check`): parameters
    /// rendered and valid, namespace allowed; and, from the record, a failure decided before
    /// acting (Kubernetes unavailable). Ok carries the parameters in canonical form.
    pub fn check(
        &self,
        action: Action,
        job: &RemediationJob,
        recorded: Option<&StoredRemediation>,
    ) -> Result<ActionParams, RemediationResult> {
        let rendered = job.params().map_err(|_| RemediationResult::Failure)?;
        let params = action
            .validate(rendered, &self.plan.guard_rails.limits)
            .map_err(|_| RemediationResult::SkippedInvalid)?;
        if let Some(namespace) = params.text("namespace") {
            if !self.plan.guard_rails.namespace_allowed(namespace) {
                return Err(RemediationResult::SkippedNamespace);
            }
        }
        if recorded.is_some_and(|r| r.result == "failure" && !r.acted) {
            return Err(RemediationResult::Failure);
        }
        Ok(params)
    }

    /// `skipped_maintenance` when a window muting remediation covers the alert at `at`.
    pub fn maintenance(&self, job: &RemediationJob, at: DateTime<Utc>) -> Option<RemediationResult> {
        self.windows
            .iter()
            .any(|(matchers, from, until)| *from <= at && at < *until && matchers.matches(&job.labels))
            .then_some(RemediationResult::SkippedMaintenance)
    }

    /// The database's verdict at `at`: `Running` means act.
    #[allow(clippy::too_many_arguments)]
    pub fn verdict(
        &self,
        incident: &StoredIncident,
        job: &RemediationJob,
        rule: &Rule,
        spec: &RemediationSpec,
        target: &str,
        skip: Option<RemediationResult>,
        at: DateTime<Utc>,
    ) -> RemediationResult {
        let rails = &self.plan.guard_rails;
        if !episode_fires(incident, job, at) || incident.resolved_at.is_some_and(|r| r <= at) {
            return RemediationResult::SkippedResolved;
        }
        if incident.acked_at.is_some_and(|a| a <= at) {
            return RemediationResult::SkippedAcknowledged;
        }
        if self.pauses.iter().any(|(from, until)| *from <= at && at < *until) {
            return RemediationResult::SkippedPaused;
        }
        if let Some(skip) = skip {
            return skip;
        }
        if self.fires(incident.group_id, job, at, rails.flapping_window) > rails.flapping_max_fires as usize {
            return RemediationResult::SkippedFlapping;
        }
        let cooldown = spec.cooldown.unwrap_or(rails.cooldown);
        let observe = rule.mode == RuleMode::Observe;
        if self.count(at, cooldown, observe, |t, _| t == target) > 0 {
            return RemediationResult::SkippedCooldown;
        }
        if self.spent(at, rails.per_target, observe, |t, _| t == target)
            || self.spent(at, rails.per_rule, observe, |_, r| r == rule.name)
            || self.spent(at, rails.global, observe, |_, _| true)
        {
            return RemediationResult::SkippedBudget;
        }
        if observe {
            return RemediationResult::Observed;
        }
        if spec.approval {
            return RemediationResult::AwaitingApproval;
        }
        if spec.dry_run.unwrap_or(rails.dry_run) {
            return RemediationResult::DryRun;
        }
        RemediationResult::Running
    }

    /// Records an action that counts for cooldowns and budgets.
    pub fn acted(&mut self, at: DateTime<Utc>, target: &str, rule: &str) {
        self.actions.push((at, target.to_owned(), rule.to_owned()));
    }

    /// Records a step observed: it counts for later observed steps' cooldowns and budgets.
    pub fn observed(&mut self, at: DateTime<Utc>, target: &str, rule: &str) {
        self.observed.push((at, target.to_owned(), rule.to_owned()));
    }

    fn spent(
        &self,
        at: DateTime<Utc>,
        budget: Budget,
        observe: bool,
        counts: impl Fn(&str, &str) -> bool,
    ) -> bool {
        self.count(at, budget.window, observe, counts) >= budget.actions as usize
    }

    /// Actions after `at - window` that `counts` (target, rule), and for an observed step the
    /// steps observed too.
    fn count(
        &self,
        at: DateTime<Utc>,
        window: std::time::Duration,
        observe: bool,
        counts: impl Fn(&str, &str) -> bool,
    ) -> usize {
        let since = at - TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
        let observed = self.observed.iter().filter(|_| observe);
        self.actions
            .iter()
            .chain(observed)
            .filter(|(t, target, rule)| *t > since && counts(target, rule))
            .count()
    }

    /// Episodes of this alert medic knew at `at` that started within the flapping window.
    fn fires(
        &self,
        group: i64,
        job: &RemediationJob,
        at: DateTime<Utc>,
        window: std::time::Duration,
    ) -> usize {
        let since = at - TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
        self.fires
            .get(&(group, job.fingerprint.as_str()))
            .map_or(0, |all| {
                all.iter()
                    .filter(|(start, seen)| *start > since && *seen <= at)
                    .count()
            })
    }
}

/// The job's alert episode still fires at `at`.
fn episode_fires(incident: &StoredIncident, job: &RemediationJob, at: DateTime<Utc>) -> bool {
    incident
        .alerts
        .iter()
        .find(|a| a.fingerprint == job.fingerprint && a.starts_at == job.starts_at)
        .is_some_and(|a| a.first_seen_at <= at && a.resolved_at.is_none_or(|r| r > at))
}

/// Pause intervals from the audit trail: a pause lasts until its `until`, the next pause
/// (which replaces it) or a resume.
fn pauses(snapshot: &Snapshot) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut intervals = Vec::new();
    let mut open: Option<(DateTime<Utc>, Option<DateTime<Utc>>)> = None;
    for change in &snapshot.pauses {
        if let Some((from, until)) = open.take() {
            intervals.push((from, until.map_or(change.at, |u| u.min(change.at))));
        }
        if change.paused {
            open = Some((change.at, change.until));
        }
    }
    if let Some((from, until)) = open {
        intervals.push((from, until.unwrap_or(DateTime::<Utc>::MAX_UTC)));
    }
    intervals
}
