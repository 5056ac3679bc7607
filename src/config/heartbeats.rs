//! Heartbeats: alerts that must keep arriving (Prometheus' `Watchdog`), and medic's own pulse
//! sent outward to a dead man's switch.

use std::time::Duration;

use serde::Deserialize;

use super::{escalation::StepSettings, problem::Problem};
use crate::domain::HumanDuration;

/// One entry of `heartbeats:`: alerts that renew it, how often they must, whom to tell.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatSettings {
    pub name: String,
    /// Alertmanager matchers, as rules use; all must hold.
    pub matchers: Vec<String>,
    /// One heartbeat per value of this label (a missing label counts as "").
    pub per: Option<String>,
    /// Alertmanager's `repeat_interval` for the heartbeat's route.
    pub expect_every: HumanDuration,
    /// Slack beyond `expect_every` before it is missing (default: `expect_every`).
    pub grace: Option<HumanDuration>,
    /// A `per` value not seen for this long is forgotten (default 7d).
    #[serde(default = "default_forget_after")]
    pub forget_after: HumanDuration,
    /// The `severity` of the HeartbeatMissing incident (default `critical`).
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Told when it goes missing, is acknowledged, and comes back.
    #[serde(default)]
    pub notify: Vec<String>,
    /// As a rule's escalation, while missing and unacknowledged.
    #[serde(default)]
    pub escalation: Vec<StepSettings>,
    /// Linked in messages about the missing heartbeat.
    pub runbook_url: Option<String>,
}

fn default_forget_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(7 * 86_400))
}

fn default_severity() -> String {
    "critical".to_owned()
}

impl HeartbeatSettings {
    /// How long without a renewal before it is missing: `expect_every + grace`.
    pub fn window(&self) -> Duration {
        self.expect_every.0 + self.grace.unwrap_or(self.expect_every).0
    }
}

/// How `heartbeat_out` calls its URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PingMethod {
    #[default]
    Get,
    Post,
}

/// `heartbeat_out:`: medic's own pulse, sent to an external dead man's switch (a
/// Healthchecks-style ping URL) while this replica's engine loop is healthy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatOutSettings {
    /// The ping URL; it may hold the check's secret, so it is never logged.
    pub url: secrecy::SecretString,
    #[serde(default = "default_every")]
    pub every: HumanDuration,
    #[serde(default)]
    pub method: PingMethod,
}

fn default_every() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// Problems the types cannot rule out.
pub fn check(
    heartbeats: &[HeartbeatSettings],
    out: Option<&HeartbeatOutSettings>,
    problems: &mut Vec<Problem>,
) {
    for (i, heartbeat) in heartbeats.iter().enumerate() {
        let at = format!("heartbeats[{i}]");
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
        if heartbeat.name.is_empty() || !heartbeat.name.chars().all(allowed) {
            problems.push(Problem::new(
                format!("{at}.name"),
                "must be letters, digits, '_', '.' or '-'",
            ));
        } else if heartbeats[..i].iter().any(|h| h.name == heartbeat.name) {
            problems.push(Problem::new(
                format!("{at}.name"),
                format!("another heartbeat is already named {:?}", heartbeat.name),
            ));
        }
        if heartbeat.matchers.is_empty() {
            problems.push(Problem::new(
                format!("{at}.matchers"),
                "must hold at least one matcher",
            ));
        }
        if heartbeat.expect_every.0 < Duration::from_secs(1) {
            problems.push(Problem::new(format!("{at}.expect_every"), "must be at least 1s"));
        }
        if heartbeat.per.as_deref().is_some_and(|p| p.trim().is_empty()) {
            problems.push(Problem::new(format!("{at}.per"), "must name a label"));
        }
        if heartbeat.forget_after.0 <= heartbeat.window() {
            problems.push(Problem::new(
                format!("{at}.forget_after"),
                "must be longer than expect_every + grace",
            ));
        }
    }
    if let Some(out) = out {
        if out.every.0 < Duration::from_secs(1) {
            problems.push(Problem::new("heartbeat_out.every", "must be at least 1s"));
        }
    }
}
