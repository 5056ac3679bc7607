//! What a timer is for: the four messages medic sends about an incident.

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
}

impl TimerKind {
    /// The name stored in the database and used in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Opened => "opened",
            TimerKind::Escalation => "escalation",
            TimerKind::Acknowledged => "acknowledged",
            TimerKind::Resolved => "resolved",
        }
    }

    /// Every kind, for pre-registering metric labels.
    pub const ALL: [TimerKind; 4] = [
        TimerKind::Opened,
        TimerKind::Escalation,
        TimerKind::Acknowledged,
        TimerKind::Resolved,
    ];

    /// The kind stored under `name`.
    pub fn parse(name: &str) -> Option<TimerKind> {
        TimerKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}
