//! Timer planning: which timers a notification asks for. For each rule that takes one of its
//! firing alerts, the announcement to its `notify` list and the escalation steps that apply;
//! for each firing alert episode a rule remediates, one remediation timer. An incident gets
//! each of its rules' timers once, however many alerts matched (the store's unique key). When
//! cluster context is gathered and a firing alert names a workload, one `context` timer.

use std::time::Duration;

use super::{
    context::ContextTarget,
    rules::{NotifierRef, Rule, Rules},
};
use crate::{
    alertmanager::Status,
    domain::{AlertEpisode, Notification, PlannedTimer, RemediationJob, TimerKind},
};

impl Rules {
    /// The timers a notification asks for: for each rule taking one of its firing alerts, its
    /// announcement and the escalation steps that apply to the severities of the alerts it took.
    pub fn plan(&self, notification: &Notification) -> Vec<PlannedTimer> {
        let mut taken: Vec<(&Rule, Vec<Option<&str>>)> = Vec::new();
        let mut remediations = Vec::new();
        for alert in notification.alerts.iter().filter(|a| a.status == Status::Firing) {
            let severity = alert.labels.get("severity").map(String::as_str);
            for rule in self.matching(&alert.labels) {
                remediations.extend(rule.remediation(alert));
                match taken.iter_mut().find(|(r, _)| std::ptr::eq(*r, rule)) {
                    Some((_, severities)) if !severities.contains(&severity) => severities.push(severity),
                    Some(_) => {}
                    None => taken.push((rule, vec![severity])),
                }
            }
        }
        let context = (!taken.is_empty())
            .then(|| self.context_timer(notification))
            .flatten();
        taken
            .into_iter()
            .flat_map(|(rule, severities)| rule.timers(&severities))
            .chain(remediations)
            .chain(context)
            .collect()
    }

    /// One `context` timer per incident (no rule, so every notification plans the same one),
    /// due at once, when a firing alert names a workload.
    fn context_timer(&self, notification: &Notification) -> Option<PlannedTimer> {
        let labels = self.context_labels()?;
        notification
            .alerts
            .iter()
            .filter(|a| a.status == Status::Firing)
            .find_map(|a| ContextTarget::of(&a.labels, labels))?;
        Some(PlannedTimer {
            kind: TimerKind::Context,
            rule: String::new(),
            step: 0,
            notifier: "context".into(),
            channel: "context",
            after: Duration::ZERO,
            repeat: None,
            subject: String::new(),
            payload: None,
        })
    }
}

impl Rule {
    /// The remediation timer for one firing alert episode, for the ladder's first step: due
    /// at once, keyed by the episode so that it runs once however often the alert is
    /// delivered. Later steps are scheduled when the one before is not enough.
    fn remediation(&self, alert: &AlertEpisode) -> Option<PlannedTimer> {
        let remediate = self.remediate.first()?;
        let params = remediate.render(&alert.labels, &alert.annotations);
        let job = RemediationJob::new(alert, params);
        Some(PlannedTimer {
            kind: TimerKind::Remediation,
            rule: self.name.clone(),
            step: 1,
            notifier: remediate.action.as_str().to_owned(),
            channel: "remediation",
            after: Duration::ZERO,
            repeat: None,
            subject: alert.key(),
            payload: Some(job.to_payload()),
        })
    }

    fn timers(&self, severities: &[Option<&str>]) -> Vec<PlannedTimer> {
        let spec = |kind, step, notifier: &NotifierRef, after, repeat| PlannedTimer {
            kind,
            rule: self.name.clone(),
            step,
            notifier: notifier.name.clone(),
            channel: notifier.kind.as_str(),
            after,
            repeat,
            subject: String::new(),
            payload: None,
        };
        let announce = self
            .notify
            .iter()
            .map(|notifier| spec(TimerKind::Opened, 0, notifier, Duration::ZERO, None));
        let steps = self
            .steps
            .iter()
            .zip(1..)
            .filter(|(step, _)| step.applies_to(severities))
            .flat_map(|(step, number)| {
                step.notify.iter().map(move |notifier| {
                    spec(TimerKind::Escalation, number, notifier, step.after, step.repeat)
                })
            });
        announce.chain(steps).collect()
    }
}
