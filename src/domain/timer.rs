//! What a timer is for: the messages medic sends about an incident, and its remediations.
//! A timer's work ([`TimerWork`]) says it in domain words, one variant per kind; how it is
//! stored (columns whose meaning depends on the kind, and a JSON payload) is the store's
//! business alone.

use chrono::{DateTime, Utc};

use super::{Action, Handover, RemediationJob, Verification};

/// Why a timer exists; a fired timer's message depends only on this and the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// The incident opened: tell the rule's `notify` list.
    Opened,
    /// An escalation step came due while the incident still fires, unacknowledged.
    Escalation,
    /// Someone acknowledged the incident.
    Acknowledged,
    /// The incident resolved.
    Resolved,
    /// A rule's remediation for one alert episode.
    Remediation,
    /// Tell the rule's `notify` list what a remediation did.
    Remediated,
    /// A step's `verify_within` is up: did the alert resolve?
    Verify,
    /// Ask the rule's `notify` list to approve a step.
    Approval,
    /// Gather what the cluster says about the incident's workload (in a task of its own,
    /// outside the lease); once per incident.
    Context,
    /// Tell the incident's Slack apps what the cluster said (a reply in the thread).
    ContextReady,
}

impl TimerKind {
    /// The name stored in the database and used in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Opened => "opened",
            TimerKind::Escalation => "escalation",
            TimerKind::Acknowledged => "acknowledged",
            TimerKind::Resolved => "resolved",
            TimerKind::Remediation => "remediation",
            TimerKind::Remediated => "remediated",
            TimerKind::Verify => "verify",
            TimerKind::Approval => "approval",
            TimerKind::Context => "context",
            TimerKind::ContextReady => "context_ready",
        }
    }

    /// Every kind, for pre-registering metric labels.
    pub const ALL: [TimerKind; 10] = [
        TimerKind::Opened,
        TimerKind::Escalation,
        TimerKind::Acknowledged,
        TimerKind::Resolved,
        TimerKind::Remediation,
        TimerKind::Remediated,
        TimerKind::Verify,
        TimerKind::Approval,
        TimerKind::Context,
        TimerKind::ContextReady,
    ];

    /// The kind stored under `name`.
    pub fn parse(name: &str) -> Option<TimerKind> {
        TimerKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// What became of one claimed timer; the word is stored in `timer_attempts.result` (a CHECK
/// constraint in migrations/0005 lists those that are stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerOutcome {
    /// Delivered (or the remediation decided); repeats are scheduled again, the rest are done.
    Sent,
    /// Failed in a way a retry can fix: due again after this many milliseconds.
    Retry { delay_ms: i64 },
    /// Failed for good (a 4xx, an unknown notifier, a remediation that cannot be decoded).
    Failed,
    /// Retried past the horizon.
    GaveUp,
    /// Not sent: the incident resolved or was acknowledged before the step came due.
    Cancelled,
    /// Not attempted now (it waits for another send): due again after this many milliseconds.
    Requeue { delay_ms: i64 },
    /// Held by maintenance window `window` (it mutes pages): due again after this many
    /// milliseconds, when the window ends; recorded in the timeline.
    Muted { delay_ms: i64, window: i64 },
}

impl TimerOutcome {
    /// The word stored in the database and used in metrics, logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerOutcome::Sent => "sent",
            TimerOutcome::Retry { .. } => "retry",
            TimerOutcome::Failed => "failed",
            TimerOutcome::GaveUp => "gave_up",
            TimerOutcome::Cancelled => "cancelled",
            TimerOutcome::Requeue { .. } => "requeue",
            TimerOutcome::Muted { .. } => "muted",
        }
    }

    /// How long until the timer is due again, for a retry or a requeue.
    pub fn delay_ms(self) -> i64 {
        match self {
            TimerOutcome::Retry { delay_ms }
            | TimerOutcome::Requeue { delay_ms }
            | TimerOutcome::Muted { delay_ms, .. } => delay_ms,
            _ => 0,
        }
    }

    /// Whether this outcome is an attempt worth recording (and counting).
    pub fn is_attempt(self) -> bool {
        !matches!(self, TimerOutcome::Cancelled | TimerOutcome::Requeue { .. })
    }
}

/// Where a timer's work goes (`timers.channel`, CHECK `timers_channel_check`): the type of
/// the notifier a message is for, or the remediation and context gathering that send nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Slack,
    SlackApp,
    PagerDuty,
    Webhook,
    Log,
    Remediation,
    Context,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Channel::Slack,
        Channel::SlackApp,
        Channel::PagerDuty,
        Channel::Webhook,
        Channel::Log,
        Channel::Remediation,
        Channel::Context,
    ];

    /// The word stored (the notifier types as the settings spell them).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Slack => "slack",
            Channel::SlackApp => "slack_app",
            Channel::PagerDuty => "pagerduty",
            Channel::Webhook => "webhook",
            Channel::Log => "log",
            Channel::Remediation => "remediation",
            Channel::Context => "context",
        }
    }

    /// The channel stored under `word`.
    pub fn parse(word: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|channel| channel.as_str() == word)
    }
}

/// What a fired timer does, in domain words: one variant per [`TimerKind`], with what that
/// kind needs. The store writes it as a row and reads it back (`store::timer_work`); nothing
/// else knows how.
#[derive(Debug, Clone, PartialEq)]
pub enum TimerWork {
    /// Tell `notifier` the incident opened.
    Opened { notifier: String },
    /// Escalation step `step` (1 for the first) to `notifier`; `occurrence` counts its
    /// reminders (0 for the first sending). `handover` says what a remediation ladder tried,
    /// when it brought the step forward.
    Escalation {
        notifier: String,
        step: i32,
        occurrence: i32,
        handover: Option<Handover>,
    },
    /// Tell `notifier` someone acknowledged the incident.
    Acknowledged { notifier: String },
    /// Tell `notifier` the incident resolved.
    Resolved { notifier: String },
    /// Decide (and take) a step of a rule's remediation ladder for one alert episode.
    Remediation(RemediationWork),
    /// Tell `notifier` what a remediation step did, or how its verification came out.
    Remediated {
        notifier: String,
        report: RemediationReport,
    },
    /// A step's `verify_within` is up: did its alert episode resolve?
    Verify(RemediationWork),
    /// Ask `notifier` to approve a step.
    Approval {
        notifier: String,
        question: ApprovalQuestion,
    },
    /// Gather what the cluster says about the incident's workload.
    Context,
    /// Tell a Slack app what the cluster said.
    ContextReady { notifier: String },
}

impl TimerWork {
    /// The kind of timer this work is.
    pub fn kind(&self) -> TimerKind {
        match self {
            TimerWork::Opened { .. } => TimerKind::Opened,
            TimerWork::Escalation { .. } => TimerKind::Escalation,
            TimerWork::Acknowledged { .. } => TimerKind::Acknowledged,
            TimerWork::Resolved { .. } => TimerKind::Resolved,
            TimerWork::Remediation(_) => TimerKind::Remediation,
            TimerWork::Remediated { .. } => TimerKind::Remediated,
            TimerWork::Verify(_) => TimerKind::Verify,
            TimerWork::Approval { .. } => TimerKind::Approval,
            TimerWork::Context => TimerKind::Context,
            TimerWork::ContextReady { .. } => TimerKind::ContextReady,
        }
    }

    /// The notifier a message goes to; None for work that sends nothing itself (a
    /// remediation, a verification, gathering context).
    pub fn notifier(&self) -> Option<&str> {
        match self {
            TimerWork::Opened { notifier }
            | TimerWork::Escalation { notifier, .. }
            | TimerWork::Acknowledged { notifier }
            | TimerWork::Resolved { notifier }
            | TimerWork::Remediated { notifier, .. }
            | TimerWork::Approval { notifier, .. }
            | TimerWork::ContextReady { notifier } => Some(notifier),
            TimerWork::Remediation(_) | TimerWork::Verify(_) | TimerWork::Context => None,
        }
    }

    /// The escalation or remediation step (1 for the first); 0 for the other kinds.
    pub fn step(&self) -> i32 {
        match self {
            TimerWork::Escalation { step, .. } => *step,
            TimerWork::Remediation(work) | TimerWork::Verify(work) => work.step,
            _ => 0,
        }
    }

    /// Which sending of a repeating escalation this is (0 for the first); the other kinds
    /// are sent once.
    pub fn occurrence(&self) -> i32 {
        match self {
            TimerWork::Escalation { occurrence, .. } => *occurrence,
            _ => 0,
        }
    }
}

/// A remediation (or verify) timer's work: which step of the ladder, its action, the alert
/// episode it is for ([`super::AlertEpisode::key`]) and the job rendered for that episode.
#[derive(Debug, Clone, PartialEq)]
pub struct RemediationWork {
    pub action: Action,
    /// 1 for the ladder's first step (0 in timers written by a version without ladders).
    pub step: i32,
    pub episode: String,
    pub job: RemediationJob,
}

/// What a remediation step did, or how its verification came out, as the rule's channels
/// are told.
///
/// Words are kept as stored rather than as enums (like [`super::TriedStep`]): a report
/// written by a newer replica may carry an action or result this one does not know, and it
/// must still be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemediationReport {
    /// The remediation the report is about.
    pub remediation_id: i64,
    /// The report of its verification (`fixed`, `not_fixed`, `relapsed`) rather than of the
    /// step itself.
    pub verification: bool,
    /// The action, e.g. `scale_up`.
    pub action: String,
    /// What it acted on, e.g. `deployment/shop/web`.
    pub target: String,
    /// The remediation's result (`success`, `skipped_cooldown`), or the verification's word.
    pub result: String,
    /// One line for people.
    pub summary: String,
}

impl RemediationReport {
    /// The report of a step's verification: its word and what it means.
    pub fn of_verification(remediation_id: i64, action: &str, target: &str, verified: Verification) -> Self {
        let summary = match verified {
            Verification::Fixed => "the alert resolved within verify_within and stayed resolved for hold",
            Verification::Relapsed => "the alert resolved, then fired again within hold",
            _ => "the alert still fires after verify_within",
        };
        Self {
            remediation_id,
            verification: true,
            action: action.to_owned(),
            target: target.to_owned(),
            result: verified.as_str().to_owned(),
            summary: summary.to_owned(),
        }
    }
}

/// A request for approval, as the rule's channels are asked it. Words are kept as stored, as
/// in a [`RemediationReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalQuestion {
    /// The remediation waiting for the answer (the buttons name it).
    pub remediation_id: i64,
    pub action: String,
    pub target: String,
    /// What a dry run said the step would do.
    pub plan: String,
    /// Until when the request waits; None if the database did not say.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A timer a notification's rules ask for, to be scheduled with the incident it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTimer {
    /// The rule that asked for it; empty for the incident's `context` timer.
    pub rule: String,
    pub channel: Channel,
    /// From when the incident opened.
    pub after: std::time::Duration,
    /// How often an escalation step is sent again while nobody acknowledges.
    pub repeat: Option<std::time::Duration>,
    pub work: TimerWork,
}

impl PlannedTimer {
    /// The kind of timer it is.
    pub fn kind(&self) -> TimerKind {
        self.work.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_channel_reads_back_as_itself() {
        for kind in TimerKind::ALL {
            assert_eq!(TimerKind::parse(kind.as_str()), Some(kind));
        }
        for channel in Channel::ALL {
            assert_eq!(Channel::parse(channel.as_str()), Some(channel));
        }
        assert_eq!(Channel::parse("email"), None);
    }
}
