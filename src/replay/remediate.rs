//! Remediation on the virtual clock: every step of every ladder, across all incidents in time
//! order (cooldowns and budgets are shared), decided by the guard rails against the virtual
//! history in the order `medic_decide_remediation` checks them. Nothing is run: a step let act
//! has the outcome recorded for it if it ran, else `success` (`observed` in `mode: observe`);
//! its verification is `fixed` if its alert episode resolved within `verify_within` (what the
//! verifier reads), else `not_fixed`. A step skipped or failed, and a ladder that ran out, hand
//! the incident over (never a rule that only observes).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};

use super::{
    event::{decision_word, Event, Fact, ACTED},
    rails::Rails,
    report::ENGINE_LAG,
    simulate::Planned,
};
use crate::{
    domain::{ActionParams, RemediationJob, RemediationResult, RuleMode, TimerWork},
    plan::{Plan, RemediationSpec, Rule},
    remediation::target_key,
    store::replay::{Snapshot, StoredIncident, StoredRemediation},
};

/// What remediation did to each incident: its decisions and reports, and its hand-overs.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub events: HashMap<i64, Vec<Event>>,
    pub handovers: HashMap<i64, Vec<DateTime<Utc>>>,
}

/// A step due, or a step's verification due.
#[derive(Clone)]
struct Work {
    incident: usize,
    rule: String,
    step: i32,
    episode: String,
    job: RemediationJob,
    verify: bool,
}

/// The virtual remediation history of the period.
pub struct Remediator<'a> {
    plan: &'a Plan,
    incidents: &'a [StoredIncident],
    rails: Rails<'a>,
    recorded: HashMap<(&'a str, &'a str, i32), &'a StoredRemediation>,
    /// Steps whose timer was cancelled (the incident closed) before the engine decided them.
    undecided: HashSet<(&'a str, &'a str, i32)>,
    queue: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
    work: Vec<Work>,
    outcomes: Outcomes,
}

impl<'a> Remediator<'a> {
    /// Ready to replay `snapshot`'s remediations under `plan`.
    pub fn new(plan: &'a Plan, snapshot: &'a Snapshot) -> Self {
        let recorded: HashMap<_, _> = snapshot
            .remediations
            .iter()
            .map(|r| ((r.rule.as_str(), r.episode.as_str(), r.step), r))
            .collect();
        let undecided = snapshot
            .timers
            .iter()
            .filter(|t| t.kind == "remediation" && t.state == "cancelled")
            .map(|t| (t.rule.as_str(), t.subject.as_str(), t.step.max(1)))
            .filter(|key| !recorded.contains_key(key))
            .collect();
        Self {
            plan,
            incidents: &snapshot.incidents,
            rails: Rails::new(plan, snapshot),
            recorded,
            undecided,
            queue: BinaryHeap::new(),
            work: Vec::new(),
            outcomes: Outcomes::default(),
        }
    }

    /// Queues the first step of each remediation timer an incident's notifications asked for:
    /// the engine decides it as soon as the notification is recorded.
    pub fn schedule(&mut self, incident: usize, planned: &[Planned]) {
        for p in planned {
            let TimerWork::Remediation(planned) = &p.timer.work else {
                continue;
            };
            let work = Work {
                incident,
                rule: p.timer.rule.clone(),
                step: 1,
                episode: planned.episode.clone(),
                job: planned.job.clone(),
                verify: false,
            };
            self.push(p.due.max(p.arrival), work);
        }
    }

    /// Queues work due at `at`. A step is decided when the engine decided it, where that was
    /// recorded (moments later): the order of decisions on one target, and an acknowledgement
    /// in between, must come out as they did. A step the engine had not decided when the
    /// incident closed (it waited on a busy target) is never decided.
    fn push(&mut self, at: DateTime<Utc>, work: Work) {
        let key = (work.rule.as_str(), work.episode.as_str(), work.step);
        if !work.verify && self.undecided.contains(&key) {
            return;
        }
        let at = match work.verify {
            true => at,
            false => self
                .recorded
                .get(&(work.rule.as_str(), work.episode.as_str(), work.step))
                .filter(|r| r.started_at >= at && r.started_at - at <= ENGINE_LAG)
                .map_or(at, |r| r.started_at),
        };
        self.queue.push(Reverse((at, self.work.len())));
        self.work.push(work);
    }

    /// Decides everything queued, in time order, up to `horizon`.
    pub fn run(mut self, horizon: DateTime<Utc>) -> Outcomes {
        while let Some(Reverse((at, index))) = self.queue.pop() {
            if at > horizon {
                break;
            }
            let work = &self.work[index];
            let Some(rule) = self.plan.rules.get(&work.rule) else {
                continue;
            };
            if work.verify {
                self.verify(rule, index, at);
            } else if let Some(spec) = rule.remediation_step(work.step) {
                self.decide(rule, spec, index, at);
            }
        }
        self.outcomes
    }

    /// One step's decision, its report and what follows from it.
    fn decide(&mut self, rule: &Rule, spec: &RemediationSpec, index: usize, at: DateTime<Utc>) {
        let work = self.work[index].clone();
        let incident = &self.incidents[work.incident];
        let recorded = self
            .recorded
            .get(&(work.rule.as_str(), work.episode.as_str(), work.step))
            .copied();
        let (params, skip) = match self.rails.check(spec.action, &work.job, recorded) {
            Ok(params) => {
                let skip = self.rails.maintenance(&work.job, at);
                (params, skip)
            }
            Err(skip) => (ActionParams::default(), Some(skip)),
        };
        let target = target_key(spec.action, &params);
        let verdict = self
            .rails
            .verdict(incident, &work.job, rule, spec, &target, skip, at);
        let (result, at) = match verdict {
            RemediationResult::AwaitingApproval => self.approval(rule, index, recorded, at),
            RemediationResult::Running => (outcome(recorded), at),
            RemediationResult::Observed => (observed(recorded), at),
            other => (other, at),
        };
        let acted = matches!(result, RemediationResult::Success | RemediationResult::Failure)
            && matches!(
                verdict,
                RemediationResult::Running | RemediationResult::AwaitingApproval
            );
        let decision = match verdict {
            RemediationResult::Running => ACTED.to_owned(),
            _ => decision_word(result.as_str(), acted),
        };
        if acted {
            self.rails.acted(at, &target, &work.rule);
        }
        if result == RemediationResult::Observed {
            self.rails.observed(at, &target, &work.rule);
        }
        let incident_id = incident.id;
        let fact = Fact::Remediation {
            rule: rule.name.clone(),
            step: work.step,
            action: spec.action.as_str().to_owned(),
            target,
            decision,
        };
        let event = Event { at, fact };
        self.outcomes.events.entry(incident_id).or_default().push(event);
        self.reports(incident_id, rule, at);
        self.follow((rule, spec), index, result, at);
    }

    /// A step let act but needing a person: the request goes to the rule's channels; its
    /// answer is the one recorded for it, else it expires (or closes with the incident).
    fn approval(
        &mut self,
        rule: &Rule,
        index: usize,
        recorded: Option<&StoredRemediation>,
        at: DateTime<Utc>,
    ) -> (RemediationResult, DateTime<Utc>) {
        let incident = &self.incidents[self.work[index].incident];
        self.reports_of_kind(incident.id, rule, at, "approval");
        if let Some(r) = recorded.filter(|r| r.result != "awaiting_approval") {
            let result = RemediationResult::parse(&r.result).unwrap_or(RemediationResult::SkippedUnapproved);
            return (result, r.started_at.max(at));
        }
        let expiry = at + delta(self.plan.guard_rails.approval_timeout);
        // A request still open when the incident closes is closed with it.
        [
            (incident.resolved_at, RemediationResult::SkippedResolved),
            (incident.acked_at, RemediationResult::SkippedAcknowledged),
        ]
        .into_iter()
        .filter_map(|(closed, result)| closed.filter(|c| *c < expiry).map(|c| (result, c)))
        .min_by_key(|(_, closed)| *closed)
        .unwrap_or((RemediationResult::SkippedUnapproved, expiry))
    }

    /// After a decision: a success (or a step observed) with `verify_within` is verified then;
    /// anything that did not do what was asked hands the incident over, unless the rule only
    /// observes.
    fn follow(
        &mut self,
        (rule, spec): (&Rule, &RemediationSpec),
        index: usize,
        result: RemediationResult,
        at: DateTime<Utc>,
    ) {
        if !result.is_done() {
            if rule.mode == RuleMode::Act {
                let incident = self.incidents[self.work[index].incident].id;
                self.outcomes.handovers.entry(incident).or_default().push(at);
            }
            return;
        }
        if let (true, Some(wait)) = (result.is_verified(), spec.verify_within) {
            let work = &self.work[index];
            let verify = Work {
                incident: work.incident,
                rule: work.rule.clone(),
                step: work.step,
                episode: work.episode.clone(),
                job: work.job.clone(),
                verify: true,
            };
            self.push(at + delta(wait), verify);
        }
    }

    /// `verify_within` is up: fixed if the episode resolved; else the next step, or people.
    fn verify(&mut self, rule: &Rule, index: usize, at: DateTime<Utc>) {
        let work = self.work[index].clone();
        let incident = &self.incidents[work.incident];
        let resolved = incident
            .alerts
            .iter()
            .find(|a| a.fingerprint == work.job.fingerprint && a.starts_at == work.job.starts_at)
            .is_none_or(|a| a.resolved_at.is_some_and(|r| r <= at));
        let incident_id = incident.id;
        self.reports(incident_id, rule, at);
        if resolved {
            return;
        }
        let step = work.step + 1;
        match rule.remediation_step(step) {
            Some(next) => {
                let job = work
                    .job
                    .for_step(next.render(&work.job.labels, &work.job.annotations));
                let next = Work {
                    incident: work.incident,
                    rule: work.rule.clone(),
                    step,
                    episode: work.episode.clone(),
                    job,
                    verify: false,
                };
                self.push(at, next);
            }
            None if rule.mode == RuleMode::Observe => {}
            None => self.outcomes.handovers.entry(incident_id).or_default().push(at),
        }
    }

    fn reports(&mut self, incident_id: i64, rule: &Rule, at: DateTime<Utc>) {
        self.reports_of_kind(incident_id, rule, at, "remediated");
    }

    /// A report (or a request) to the rule's `notify` list, PagerDuty excepted.
    fn reports_of_kind(&mut self, incident_id: i64, rule: &Rule, at: DateTime<Utc>, kind: &str) {
        let events = self.outcomes.events.entry(incident_id).or_default();
        let mut told: Vec<&str> = Vec::new();
        for notifier in rule.notify.iter().filter(|n| n.kind.as_str() != "pagerduty") {
            if told.contains(&notifier.name.as_str()) {
                continue;
            }
            told.push(&notifier.name);
            events.push(Event {
                at,
                fact: Fact::Message {
                    notifier: notifier.name.clone(),
                    kind: kind.to_owned(),
                    rule: rule.name.clone(),
                    step: 0,
                    channel: notifier.kind.as_str().to_owned(),
                },
            });
        }
    }
}

/// What an action let act did: the outcome recorded for it if it ran, else `success`.
fn outcome(recorded: Option<&StoredRemediation>) -> RemediationResult {
    recorded
        .filter(|r| decision_word(&r.result, r.acted) == ACTED && r.result != "running")
        .and_then(|r| RemediationResult::parse(&r.result))
        .unwrap_or(RemediationResult::Success)
}

/// What a step observed came to: the handler's refusal recorded for it (nothing to do, a
/// PodDisruptionBudget, `min_healthy`, GitOps, a failure), else `observed`.
fn observed(recorded: Option<&StoredRemediation>) -> RemediationResult {
    use RemediationResult::*;
    recorded
        .and_then(|r| RemediationResult::parse(&r.result))
        .filter(|r| {
            matches!(
                r,
                SkippedNoop | SkippedPdb | SkippedMinHealthy | SkippedGitops | Failure
            )
        })
        .unwrap_or(Observed)
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}
