//! Rules compiled: which alerts each one takes (Alertmanager matchers and severities), whom it
//! tells and when, and what it remediates.
//!
//! Rules are tried in order for every firing alert; the first that matches takes it, unless it
//! says `continue`, as Alertmanager's routes do.

use std::{collections::BTreeMap, time::Duration};

use super::{matchers::Matchers, remediation::RemediationSpec};
use crate::{
    alertmanager::KV,
    config::{ContextLabels, HeartbeatSettings, NotifierType, Problem, RuleSettings, StepSettings},
    domain::{ParamLimits, RuleMode},
};

/// The checked rules, in config order.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    /// The labels that name a workload, when cluster context is gathered.
    context: Option<ContextLabels>,
}

/// One rule, compiled.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    matchers: Matchers,
    severities: Vec<String>,
    /// Told when the incident opens, is acknowledged and resolves.
    pub notify: Vec<NotifierRef>,
    pub steps: Vec<Step>,
    /// Linked when the alert carries no `runbook_url` annotation.
    pub runbook_url: Option<String>,
    continue_matching: bool,
    /// The remediation ladder: tried in turn while the alert still fires; empty when the
    /// rule only tells people.
    pub remediate: Vec<RemediationSpec>,
    /// `observe`: the ladder is decided and recorded, and changes nothing.
    pub mode: RuleMode,
}

/// One escalation step, compiled.
#[derive(Debug)]
pub struct Step {
    pub after: Duration,
    pub notify: Vec<NotifierRef>,
    severities: Vec<String>,
    pub repeat: Option<Duration>,
}

/// A notifier named by a rule, with its type (stored with the timer).
#[derive(Debug, Clone)]
pub struct NotifierRef {
    pub name: String,
    pub kind: NotifierType,
}

impl Rule {
    /// The Alertmanager matchers an alert must pass, as loaded.
    pub fn matchers(&self) -> &Matchers {
        &self.matchers
    }

    /// The severities the rule takes; empty: any.
    pub fn severities(&self) -> &[String] {
        &self.severities
    }

    /// Whether later rules are tried after this one matched (`continue: true`).
    pub fn continues(&self) -> bool {
        self.continue_matching
    }

    /// Step `step` of the remediation ladder (1 for the first; 0, from a previous version's
    /// timers, is the first too).
    pub fn remediation_step(&self, step: i32) -> Option<&RemediationSpec> {
        let index = usize::try_from(step.max(1) - 1).ok()?;
        self.remediate.get(index)
    }

    /// All matchers hold and, if the rule lists severities, the alert has one of them.
    pub fn matches(&self, labels: &KV) -> bool {
        let severity_ok = self.severities.is_empty()
            || labels.get("severity").is_some_and(|s| {
                self.severities
                    .iter()
                    .any(|wanted| wanted.eq_ignore_ascii_case(s))
            });
        severity_ok && self.matchers.matches(labels)
    }
}

impl Rule {
    /// The rule a heartbeat's incidents follow: named `name` (the heartbeat says how, as
    /// `heartbeat/<name>`), taking only its HeartbeatMissing alert, telling its `notify` and
    /// escalating as its `escalation` says.
    pub(super) fn for_heartbeat(
        at: &str,
        name: String,
        heartbeat: &HeartbeatSettings,
        notifiers: &BTreeMap<String, NotifierType>,
        problems: &mut Vec<Problem>,
    ) -> Option<Rule> {
        let start = problems.len();
        let matchers = Matchers::parse(&[
            format!("alertname={:?}", crate::domain::HEARTBEAT_MISSING),
            format!("{}={:?}", crate::domain::HEARTBEAT_LABEL, heartbeat.name),
        ]);
        let notify = notifier_refs(&format!("{at}.notify"), &heartbeat.notify, notifiers, problems);
        let steps: Vec<Step> = heartbeat
            .escalation
            .iter()
            .enumerate()
            .map(|(j, step)| compile_step(&format!("{at}.escalation[{j}]"), step, notifiers, problems))
            .collect();
        check_steps(at, &heartbeat.escalation, problems);
        if problems.len() > start {
            return None;
        }
        Some(Rule {
            name,
            matchers: matchers.ok()?,
            severities: Vec::new(),
            notify,
            steps,
            runbook_url: heartbeat.runbook_url.clone(),
            continue_matching: false,
            remediate: Vec::new(),
            mode: RuleMode::Act,
        })
    }
}

impl Step {
    /// No `severities`, or one of the alerts the rule took has one of them.
    pub(super) fn applies_to(&self, severities: &[Option<&str>]) -> bool {
        self.severities.is_empty()
            || severities
                .iter()
                .flatten()
                .any(|s| self.severities.iter().any(|w| w.eq_ignore_ascii_case(s)))
    }
}

impl Rules {
    /// Compiles the rules; every problem names the rule's key path.
    pub fn compile(
        settings: &[RuleSettings],
        notifiers: &BTreeMap<String, NotifierType>,
        limits: &ParamLimits,
    ) -> Result<Rules, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for (i, rule) in settings.iter().enumerate() {
            let at = format!("rules[{i}]");
            if rule.name.trim().is_empty() {
                problems.push(Problem::new(format!("{at}.name"), "must not be empty"));
            } else if settings[..i].iter().any(|r| r.name == rule.name) {
                problems.push(Problem::new(
                    format!("{at}.name"),
                    format!("another rule is already named {:?}", rule.name),
                ));
            }
            if let Some(rule) = compile_rule(&at, rule, notifiers, limits, &mut problems) {
                rules.push(rule);
            }
        }
        if problems.is_empty() {
            Ok(Rules { rules, context: None })
        } else {
            Err(problems)
        }
    }

    /// Plans a `context` timer with an incident whose alerts name a workload by these labels.
    pub fn with_context(mut self, labels: Option<ContextLabels>) -> Self {
        self.context = labels;
        self
    }

    /// The labels that name a workload, when cluster context is gathered.
    pub fn context_labels(&self) -> Option<&ContextLabels> {
        self.context.as_ref()
    }

    /// The rules that take an alert with these labels: the first match, and those after it
    /// while each matching rule says `continue`.
    pub fn matching<'a>(&'a self, labels: &'a KV) -> impl Iterator<Item = &'a Rule> + 'a {
        let mut stopped = false;
        self.rules.iter().filter(move |rule| {
            if stopped || !rule.matches(labels) {
                return false;
            }
            stopped = !rule.continue_matching;
            true
        })
    }

    /// Puts `first` before every configured rule (the heartbeats' rules), unless a configured
    /// rule has one of their names.
    pub(super) fn prepend(&mut self, first: Vec<Rule>, problems: &mut Vec<Problem>) {
        for rule in &first {
            if self.get(&rule.name).is_some() {
                problems.push(Problem::new(
                    "rules",
                    format!("the name {:?} is taken by a heartbeat's rule", rule.name),
                ));
            }
        }
        self.rules.splice(0..0, first);
    }

    /// Every rule, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// The rule of this name.
    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.name == name)
    }

    /// Whether any rule exists.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn compile_rule(
    at: &str,
    rule: &RuleSettings,
    notifiers: &BTreeMap<String, NotifierType>,
    limits: &ParamLimits,
    problems: &mut Vec<Problem>,
) -> Option<Rule> {
    let start = problems.len();
    let matchers = Matchers::parse(&rule.matchers)
        .map_err(|e| problems.push(Problem::new(format!("{at}.matchers"), e.to_string())))
        .ok();
    let notify = notifier_refs(&format!("{at}.notify"), &rule.notify, notifiers, problems);
    let steps: Vec<Step> = rule
        .escalation
        .iter()
        .enumerate()
        .map(|(j, step)| compile_step(&format!("{at}.escalation[{j}]"), step, notifiers, problems))
        .collect();
    check_steps(at, &rule.escalation, problems);
    let remediate: Vec<RemediationSpec> = rule
        .remediate
        .iter()
        .flat_map(|ladder| ladder.steps(&format!("{at}.remediate")))
        .filter_map(|(at, step)| RemediationSpec::compile(&at, step, limits, problems))
        .collect();
    if matches!(&rule.remediate, Some(crate::config::Ladder::Steps(steps)) if steps.is_empty()) {
        problems.push(Problem::new(
            format!("{at}.remediate"),
            "a ladder needs at least one step",
        ));
    }
    if problems.len() > start {
        return None;
    }
    Some(Rule {
        name: rule.name.clone(),
        matchers: matchers?,
        severities: rule.severities.clone(),
        notify,
        steps,
        runbook_url: rule.runbook_url.clone(),
        continue_matching: rule.continue_matching,
        remediate,
        mode: rule.mode,
    })
}

fn compile_step(
    at: &str,
    step: &StepSettings,
    notifiers: &BTreeMap<String, NotifierType>,
    problems: &mut Vec<Problem>,
) -> Step {
    if step.notify.is_empty() {
        problems.push(Problem::new(
            format!("{at}.notify"),
            "must name at least one notifier",
        ));
    }
    if step.repeat.is_some_and(|r| r.0.is_zero()) {
        problems.push(Problem::new(format!("{at}.repeat"), "must be greater than 0"));
    }
    Step {
        after: step.after.0,
        notify: notifier_refs(&format!("{at}.notify"), &step.notify, notifiers, problems),
        severities: step.severities.clone(),
        repeat: step.repeat.map(|r| r.0),
    }
}

/// Steps come in the order they fire, and only the last may repeat.
fn check_steps(at: &str, steps: &[StepSettings], problems: &mut Vec<Problem>) {
    for (j, pair) in steps.windows(2).enumerate() {
        if pair[1].after < pair[0].after {
            problems.push(Problem::new(
                format!("{at}.escalation[{}].after", j + 1),
                format!("must not be earlier than the step before ({})", pair[0].after),
            ));
        }
        if pair[0].repeat.is_some() {
            problems.push(Problem::new(
                format!("{at}.escalation[{j}].repeat"),
                "only the last step may repeat",
            ));
        }
    }
}

fn notifier_refs(
    at: &str,
    names: &[String],
    notifiers: &BTreeMap<String, NotifierType>,
    problems: &mut Vec<Problem>,
) -> Vec<NotifierRef> {
    names
        .iter()
        .enumerate()
        .filter_map(|(k, name)| match notifiers.get(name) {
            Some(kind) => Some(NotifierRef {
                name: name.clone(),
                kind: *kind,
            }),
            None => {
                problems.push(Problem::new(
                    format!("{at}[{k}]"),
                    format!("no notifier named {name:?} under notifiers"),
                ));
                None
            }
        })
        .collect()
}
