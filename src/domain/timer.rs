//! What a timer is for: the messages medic sends about an incident, and its remediations.

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

/// A timer a notification's rules ask for, to be scheduled with the incident it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTimer {
    pub kind: TimerKind,
    pub rule: String,
    /// 1-based escalation step; 0 for the announcement.
    pub step: i32,
    /// The notifier, or the action for a remediation.
    pub notifier: String,
    /// The notifier's type, or `remediation`.
    pub channel: &'static str,
    /// From when the incident opened.
    pub after: std::time::Duration,
    pub repeat: Option<std::time::Duration>,
    /// The alert episode a remediation is for ([`super::AlertEpisode::key`]); empty otherwise.
    pub subject: String,
    /// A remediation's job ([`super::RemediationJob`]).
    pub payload: Option<serde_json::Value>,
}
