//! `context:`: what medic gathers from the cluster about an incident's workload when it opens
//! (owner chain, rollout, `Warning` events, pod states, last log lines), within a deadline, and
//! what it redacts from it.

use std::time::Duration;

use serde::Deserialize;

use super::problem::Problem;
use crate::domain::HumanDuration;

/// The default `redact` patterns: `key=value` secrets, AWS access key ids, JWTs.
pub const DEFAULT_REDACT: [&str; 3] = [
    r"(?i)(password|passwd|secret|token|api[_-]?key)\s*[=:]\s*\S+",
    "AKIA[0-9A-Z]{16}",
    r"eyJ[\w-]+\.[\w-]+\.[\w-]+",
];

/// `context:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextSettings {
    /// Unset: on. Never without `kubernetes.enabled`.
    pub enabled: Option<bool>,
    /// All gathering for one incident; then whatever is ready is kept.
    pub deadline: HumanDuration,
    /// Which alert labels name what.
    pub labels: ContextLabels,
    pub events: ContextEvents,
    pub logs: ContextLogs,
    /// Regular expressions whose matches become `[redacted]` in logs, events and changes.
    pub redact: Vec<String>,
}

/// The alert labels that name the namespace, pod and workload.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextLabels {
    pub namespace: String,
    pub pod: String,
    pub deployment: String,
    pub statefulset: String,
}

/// `context.events`: how far back and how many `Warning` events.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextEvents {
    pub window: HumanDuration,
    pub max: usize,
}

/// `context.logs`: the last lines of the worst pod's failing container.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextLogs {
    pub lines: u32,
    pub max_line_bytes: usize,
    /// Read the crashed instance, as `kubectl logs --previous`.
    pub previous: bool,
}

impl Default for ContextSettings {
    fn default() -> Self {
        Self {
            enabled: None,
            deadline: HumanDuration(Duration::from_secs(3)),
            labels: ContextLabels::default(),
            events: ContextEvents::default(),
            logs: ContextLogs::default(),
            redact: DEFAULT_REDACT.iter().map(|p| (*p).to_owned()).collect(),
        }
    }
}

impl Default for ContextLabels {
    fn default() -> Self {
        Self {
            namespace: "namespace".into(),
            pod: "pod".into(),
            deployment: "deployment".into(),
            statefulset: "statefulset".into(),
        }
    }
}

impl Default for ContextEvents {
    fn default() -> Self {
        Self {
            window: HumanDuration(Duration::from_secs(15 * 60)),
            max: 10,
        }
    }
}

impl Default for ContextLogs {
    fn default() -> Self {
        Self {
            lines: 20,
            max_line_bytes: 500,
            previous: true,
        }
    }
}

impl ContextSettings {
    /// Ranges; the patterns are compiled (and checked) by the plan.
    pub fn check(&self, problems: &mut Vec<Problem>) {
        let deadline = self.deadline.0;
        if deadline < Duration::from_millis(100) || deadline > Duration::from_secs(60) {
            problems.push(Problem::new("context.deadline", "must be between 100ms and 60s"));
        }
        if !(1..=100).contains(&self.events.max) {
            problems.push(Problem::new("context.events.max", "must be between 1 and 100"));
        }
        if self.logs.lines > 1000 {
            problems.push(Problem::new("context.logs.lines", "must be at most 1000"));
        }
        if !(40..=10_000).contains(&self.logs.max_line_bytes) {
            problems.push(Problem::new(
                "context.logs.max_line_bytes",
                "must be between 40 and 10000",
            ));
        }
    }
}
