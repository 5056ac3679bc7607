//! Heartbeats in domain words: a renewal, and the state a heartbeat is in.

use std::time::Duration;

/// The label naming the missing heartbeat in its incident's alert.
pub const HEARTBEAT_LABEL: &str = "heartbeat";
/// The `alertname` of the incident medic opens when a heartbeat stops.
pub const HEARTBEAT_MISSING: &str = "HeartbeatMissing";

/// A heartbeat alert arrived: heartbeat `name` for `per_value` is due again `window` from now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Renewal {
    pub name: String,
    /// The value of the heartbeat's `per` label; "" without `per` or when the label is missing.
    pub per_value: String,
    /// `expect_every + grace`.
    pub window: Duration,
}

/// Whether a heartbeat arrives on time; stored in `heartbeats.state` (a CHECK constraint in
/// migrations/0018 lists the same words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatState {
    /// Renewed within its window (or not yet due since medic started watching it).
    Ok,
    /// Not renewed in time: its HeartbeatMissing incident is open.
    Missing,
}

impl HeartbeatState {
    /// Every state, for pre-registering metric labels.
    pub const ALL: [HeartbeatState; 2] = [HeartbeatState::Ok, HeartbeatState::Missing];

    /// The word stored in the database and used in the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            HeartbeatState::Ok => "ok",
            HeartbeatState::Missing => "missing",
        }
    }

    /// The state stored under `word`.
    pub fn parse(word: &str) -> Option<HeartbeatState> {
        HeartbeatState::ALL.into_iter().find(|s| s.as_str() == word)
    }
}
