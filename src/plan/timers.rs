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
    domain::{AlertEpisode, Channel, Notification, PlannedTimer, RemediationJob, RemediationWork, TimerWork},
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
            rule: String::new(),
            channel: Channel::Context,
            after: Duration::ZERO,
            repeat: None,
            work: TimerWork::Context,
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
            rule: self.name.clone(),
            channel: Channel::Remediation,
            after: Duration::ZERO,
            repeat: None,
            work: TimerWork::Remediation(RemediationWork {
                action: remediate.action,
                step: 1,
                episode: alert.key(),
                job,
            }),
        })
    }

    fn timers(&self, severities: &[Option<&str>]) -> Vec<PlannedTimer> {
        let spec = |work, notifier: &NotifierRef, after, repeat| PlannedTimer {
            rule: self.name.clone(),
            channel: notifier.kind.channel(),
            after,
            repeat,
            work,
        };
        let announce = self.notify.iter().map(|notifier| {
            let work = TimerWork::Opened {
                notifier: notifier.name.clone(),
            };
            spec(work, notifier, Duration::ZERO, None)
        });
        let steps = self
            .steps
            .iter()
            .zip(1..)
            .filter(|(step, _)| step.applies_to(severities))
            .flat_map(|(step, number)| {
                step.notify.iter().map(move |notifier| {
                    let work = TimerWork::Escalation {
                        notifier: notifier.name.clone(),
                        step: number,
                        occurrence: 0,
                        handover: None,
                    };
                    spec(work, notifier, step.after, step.repeat)
                })
            });
        announce.chain(steps).collect()
    }
}
