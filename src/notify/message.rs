//! What a fired timer says: the message every notifier renders, its headline, and the keys
//! that make re-sends recognisable (the incident's dedup key, the delivery id).

use crate::{
    domain::{Handover, TimerWork, TriedStep},
    store::timers::Claimed,
};

/// Everything a message is made from.
#[derive(Debug)]
pub struct Message<'a> {
    pub timer: &'a Claimed,
    /// The alert's `runbook_url` annotation, else the rule's.
    pub runbook_url: Option<&'a str>,
    /// `server.instance`, in the dedup key.
    pub instance: &'a str,
}

impl Message<'_> {
    /// Same for every message about one incident, and distinct between installations:
    /// PagerDuty's `dedup_key`, `<instance>-incident-<id>`.
    pub fn dedup_key(&self) -> String {
        dedup_key(self.instance, self.timer.incident.id)
    }

    /// Same for every attempt at one occurrence of one timer, so a receiver can drop re-sends.
    pub fn delivery_id(&self) -> String {
        format!("medic-{}-{}", self.timer.id, self.timer.occurrence())
    }

    fn label(&self, name: &str) -> Option<&str> {
        self.timer.incident.labels.get(name).map(String::as_str)
    }

    fn annotation(&self, name: &str) -> Option<&str> {
        self.timer.incident.annotations.get(name).map(String::as_str)
    }

    /// The alert's name, or the incident's number when alerts carry none.
    pub fn alertname(&self) -> String {
        self.label("alertname")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("incident {}", self.timer.incident.id))
    }

    pub fn severity(&self) -> Option<&str> {
        self.label("severity")
    }

    /// `summary`, else `description`, else `message` annotation.
    pub fn summary(&self) -> Option<&str> {
        ["summary", "description", "message"]
            .into_iter()
            .find_map(|name| self.annotation(name))
    }

    /// The description when a summary is shown above it.
    pub fn description(&self) -> Option<&str> {
        self.annotation("summary").and(self.annotation("description"))
    }

    /// What a remediation ladder tried, when it brought this escalation step forward.
    pub fn handover(&self) -> Option<&Handover> {
        match &self.timer.work {
            TimerWork::Escalation { handover, .. } => handover.as_ref(),
            _ => None,
        }
    }

    /// The steps a ladder tried, for receivers that read JSON; None when the escalation was
    /// not handed over early, or its timer was stored with only the text.
    pub fn remediation_tried(&self) -> Option<&[TriedStep]> {
        self.handover()?.tried.as_deref()
    }

    pub fn instance(&self) -> Option<&str> {
        self.label("instance").or_else(|| self.label("pod"))
    }

    /// One line saying what happened, as the headline of every message.
    pub fn headline(&self) -> String {
        let incident = &self.timer.incident;
        let name = self.alertname();
        match &self.timer.work {
            TimerWork::Opened { .. } => format!("[FIRING:{}] {name}", incident.firing_alerts),
            TimerWork::Escalation { step, occurrence, .. } if *occurrence > 0 => {
                format!("[ESCALATION {step}, reminder {occurrence}] {name} is still firing")
            }
            TimerWork::Escalation { step, .. } => {
                let headline = format!(
                    "[ESCALATION {step}] {name} is still firing after {}",
                    elapsed(incident.created_at)
                );
                // Handed over early by a remediation ladder that ran out: say what was tried.
                match self.handover() {
                    Some(handover) => format!("{headline}; {}", handover.text),
                    None => headline,
                }
            }
            TimerWork::Acknowledged { .. } => {
                let by = incident
                    .acknowledged
                    .as_ref()
                    .map_or("someone", |ack| ack.by.as_str());
                format!("[ACKNOWLEDGED] {name} by {by}")
            }
            TimerWork::Resolved { .. } => format!(
                "[RESOLVED] {name} after {}",
                elapsed_between(incident.created_at, incident.resolved_at)
            ),
            TimerWork::Approval { question, .. } => {
                let until = question.expires_at.map_or_else(
                    || "?".to_owned(),
                    |at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                );
                format!(
                    "[APPROVAL NEEDED] {name}: {} {} (remediation {}, until {until}): {}",
                    question.action, question.target, question.remediation_id, question.plan
                )
            }
            TimerWork::Context | TimerWork::ContextReady { .. } => {
                let said = self.timer.context.as_ref().and_then(|c| c.headline.as_deref());
                format!("[CONTEXT] {name}: {}", said.unwrap_or("what the cluster says"))
            }
            TimerWork::Remediated { report, .. } => format!(
                "[REMEDIATION {}] {name}: {} {}: {}",
                report.result.to_uppercase(),
                report.action,
                report.target,
                report.summary
            ),
            // Not messages: a remediation or verification sends nothing itself.
            TimerWork::Remediation(work) | TimerWork::Verify(work) => {
                format!("[REMEDIATION] {name}: {}", work.action.as_str())
            }
        }
    }
}

/// `<instance>-incident-<id>`.
pub fn dedup_key(instance: &str, incident_id: i64) -> String {
    format!("{instance}-incident-{incident_id}")
}

/// The incident a dedup key of this installation names; None for another's, or not a key.
pub fn incident_of(instance: &str, key: &str) -> Option<i64> {
    let id = key.strip_prefix(instance)?.strip_prefix("-incident-")?;
    if id.starts_with('+') {
        return None;
    }
    id.parse().ok()
}

fn elapsed(since: chrono::DateTime<chrono::Utc>) -> String {
    elapsed_between(since, None)
}

pub(crate) fn elapsed_between(
    since: chrono::DateTime<chrono::Utc>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    let seconds = (until.unwrap_or_else(chrono::Utc::now) - since)
        .num_seconds()
        .max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h{}m", s / 3600, s % 3600 / 60),
    }
}
