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
        }
    }

    /// Every kind, for pre-registering metric labels.
    pub const ALL: [TimerKind; 6] = [
        TimerKind::Opened,
        TimerKind::Escalation,
        TimerKind::Acknowledged,
        TimerKind::Resolved,
        TimerKind::Remediation,
        TimerKind::Remediated,
    ];

    /// The kind stored under `name`.
    pub fn parse(name: &str) -> Option<TimerKind> {
        TimerKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}
