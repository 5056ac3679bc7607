//! What the cluster says about the thing an incident is about, gathered once when it opens:
//! the workload and its owner chain, the rollout, `Warning` events, the pods' states and the
//! last log lines of the worst one. Stored as JSON, served by the API, shown in Slack and the
//! console; a short form rides on later pages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A rollout that finished this long before the incident opened is said first.
const RECENT_ROLLOUT_SECONDS: i64 = 3600;
/// Events in the short form a page carries.
const SHORT_EVENTS: usize = 3;
/// Log lines in the short form a page carries.
const SHORT_LOG_LINES: usize = 5;

/// Why part of the context is missing: `errors[].kind` and `medic_context_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextErrorKind {
    /// The deadline passed before this part was read.
    Timeout,
    /// medic's service account may not read it (RBAC).
    Forbidden,
    /// The object is gone (or never was).
    NotFound,
    /// Anything else: the API answered an error, or could not be reached.
    Unavailable,
}

impl ContextErrorKind {
    /// Every kind, for pre-registering metric labels.
    pub const ALL: [ContextErrorKind; 4] = [
        ContextErrorKind::Timeout,
        ContextErrorKind::Forbidden,
        ContextErrorKind::NotFound,
        ContextErrorKind::Unavailable,
    ];

    /// The word in the JSON and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ContextErrorKind::Timeout => "timeout",
            ContextErrorKind::Forbidden => "forbidden",
            ContextErrorKind::NotFound => "not_found",
            ContextErrorKind::Unavailable => "unavailable",
        }
    }
}

/// Everything gathered for one incident (`GET /api/v1/incidents/{id}/context`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterContext {
    pub gathered_at: DateTime<Utc>,
    /// False when something could not be read (see `errors`).
    pub complete: bool,
    /// The line said first: a recent rollout, else the worst pod's state.
    pub headline: Option<String>,
    pub workload: Option<Workload>,
    pub rollout: Option<Rollout>,
    /// Newest first.
    pub events: Vec<Event>,
    /// The named pod, then the unhealthy ones.
    pub pods: Vec<PodState>,
    pub logs: Option<Logs>,
    pub errors: Vec<ContextError>,
}

/// The workload the alert names, and the owner chain that led to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// `Deployment`, `StatefulSet`, `ReplicaSet` or `Pod`.
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// From the pod up, e.g. `["Pod/web-7d9-x2", "ReplicaSet/web-7d9", "Deployment/web"]`.
    pub chain: Vec<String>,
}

/// How the workload's rollout stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    /// `deployment.kubernetes.io/revision`, or a StatefulSet's `updateRevision`.
    pub revision: Option<String>,
    /// When the current revision was created.
    pub rolled_out_at: Option<DateTime<Utc>>,
    /// Image and environment changes from the revision before, e.g. `image app: app:1 → app:2`.
    pub changes: Vec<String>,
}

/// One `Warning` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `Pod/web-7d9-x2`.
    pub object: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    pub last_at: DateTime<Utc>,
}

/// One pod's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodState {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    /// Why a container waits, e.g. `CrashLoopBackOff`.
    pub waiting: Option<String>,
    pub last_termination: Option<Termination>,
}

/// How a container's last instance ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Termination {
    pub container: String,
    pub reason: Option<String>,
    pub exit_code: i32,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The last lines of the worst pod's failing container, redacted and cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logs {
    pub pod: String,
    pub container: String,
    /// Read from the crashed instance (`kubectl logs --previous`).
    pub previous: bool,
    pub lines: Vec<String>,
}

/// A part that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextError {
    pub kind: ContextErrorKind,
    /// What was being read, e.g. `list events in prod`.
    pub what: String,
    pub message: String,
}

/// The short form a page carries (PagerDuty's `custom_details.context`) and the Slack
/// message's context line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextSummary {
    pub headline: Option<String>,
    /// e.g. `revision 2, rolled out 5 minutes before the alert`.
    pub rollout: Option<String>,
    pub events: Vec<String>,
    pub logs: Vec<String>,
    pub complete: bool,
}

impl ClusterContext {
    /// Sets the headline: a rollout within the hour before `opened_at` first (the most common
    /// cause), else the worst pod's state.
    pub fn decide_headline(&mut self, opened_at: DateTime<Utc>) {
        self.headline = self
            .recent_rollout(opened_at)
            .or_else(|| self.pods.first().filter(|p| !p.healthy()).map(PodState::line));
    }

    /// "Rolled out N minutes before the alert", when it did within the hour.
    fn recent_rollout(&self, opened_at: DateTime<Utc>) -> Option<String> {
        let rollout = self.rollout.as_ref()?;
        let before = (opened_at - rollout.rolled_out_at?).num_seconds();
        if !(0..=RECENT_ROLLOUT_SECONDS).contains(&before) {
            return None;
        }
        let mut line = format!("Rolled out {} before the alert", minutes(before));
        if let Some(revision) = &rollout.revision {
            line.push_str(&format!(" (revision {revision})"));
        }
        if !rollout.changes.is_empty() {
            line.push_str(&format!(": {}", rollout.changes.join("; ")));
        }
        Some(line)
    }

    /// The short form: headline, rollout age, top 3 events, last 5 log lines.
    pub fn summary(&self, opened_at: DateTime<Utc>) -> ContextSummary {
        let logs = self.logs.as_ref().map(|l| l.lines.as_slice()).unwrap_or_default();
        ContextSummary {
            headline: self.headline.clone(),
            rollout: self.rollout.as_ref().map(|r| r.line(opened_at)),
            events: self.events.iter().take(SHORT_EVENTS).map(Event::line).collect(),
            logs: logs[logs.len().saturating_sub(SHORT_LOG_LINES)..].to_vec(),
            complete: self.complete,
        }
    }

    /// Plain lines for people, the headline first: what a Slack reply and the console say.
    pub fn lines(&self, opened_at: DateTime<Utc>) -> Vec<String> {
        let mut lines: Vec<String> = self.headline.iter().cloned().collect();
        if let Some(workload) = &self.workload {
            lines.push(format!("Workload: {}", workload.chain.join(" → ")));
        }
        if let Some(rollout) = &self.rollout {
            lines.push(format!("Rollout: {}", rollout.line(opened_at)));
        }
        lines.extend(self.pods.iter().map(|p| format!("Pod {}", p.line())));
        lines.extend(self.events.iter().map(|e| format!("Event {}", e.line())));
        lines.extend(self.errors.iter().map(ContextError::line));
        lines
    }
}

impl Rollout {
    /// `2/3 ready, 3 updated, revision 2, rolled out 5 minutes before the alert`.
    pub fn line(&self, opened_at: DateTime<Utc>) -> String {
        let mut line = format!("{}/{} ready, {} updated", self.ready, self.desired, self.updated);
        if let Some(revision) = &self.revision {
            line.push_str(&format!(", revision {revision}"));
        }
        if let Some(at) = self.rolled_out_at {
            let seconds = (opened_at - at).num_seconds();
            let when = if seconds >= 0 {
                format!("{} before the alert", minutes(seconds))
            } else {
                format!("{} after the alert", minutes(-seconds))
            };
            line.push_str(&format!(", rolled out {when}"));
        }
        line
    }
}

impl Event {
    /// `BackOff ×12 (Pod/web-x2): Back-off restarting failed container`.
    pub fn line(&self) -> String {
        format!(
            "{} ×{} ({}): {}",
            self.reason, self.count, self.object, self.message
        )
    }
}

impl PodState {
    /// Running and Ready, never restarted.
    pub fn healthy(&self) -> bool {
        self.ready && self.restarts == 0 && self.waiting.is_none()
    }

    /// `web-x2: Running, not ready, CrashLoopBackOff, 7 restarts, last exit 1 (Error)`.
    pub fn line(&self) -> String {
        let mut parts = vec![self.phase.clone()];
        parts.push(if self.ready { "ready" } else { "not ready" }.to_owned());
        parts.extend(self.waiting.clone());
        parts.push(format!("{} restarts", self.restarts));
        if let Some(t) = &self.last_termination {
            let reason = t.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            parts.push(format!("last exit {}{reason}", t.exit_code));
        }
        format!("{}: {}", self.name, parts.join(", "))
    }
}

impl ContextError {
    /// `Missing (timeout): list events in prod: …`.
    pub fn line(&self) -> String {
        format!(
            "Missing ({}): {}: {}",
            self.kind.as_str(),
            self.what,
            self.message
        )
    }
}

/// `1 minute`, `5 minutes`, `2 hours`.
fn minutes(seconds: i64) -> String {
    let m = seconds / 60;
    match m {
        0 => "under a minute".to_owned(),
        1 => "1 minute".to_owned(),
        m if m < 120 => format!("{m} minutes"),
        m => format!("{} hours", m / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(rolled_minutes_ago: i64, opened: DateTime<Utc>) -> ClusterContext {
        ClusterContext {
            rollout: Some(Rollout {
                desired: 3,
                ready: 2,
                updated: 3,
                revision: Some("2".into()),
                rolled_out_at: Some(opened - chrono::TimeDelta::minutes(rolled_minutes_ago)),
                changes: vec!["image app: app:1 → app:2".into()],
            }),
            pods: vec![PodState {
                name: "web-x".into(),
                phase: "Running".into(),
                restarts: 4,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_rollout_within_the_hour_before_the_alert_is_said_first() {
        let opened = Utc::now();
        let mut recent = context(5, opened);
        recent.decide_headline(opened);
        assert_eq!(
            recent.headline.as_deref(),
            Some("Rolled out 5 minutes before the alert (revision 2): image app: app:1 → app:2")
        );
        let mut old = context(90, opened);
        old.decide_headline(opened);
        assert_eq!(
            old.headline.as_deref(),
            Some("web-x: Running, not ready, 4 restarts")
        );
    }

    #[test]
    fn the_short_form_keeps_three_events_and_five_log_lines() {
        let opened = Utc::now();
        let mut context = context(5, opened);
        context.events = (0..5)
            .map(|i| Event {
                object: "Pod/web-x".into(),
                reason: format!("R{i}"),
                message: "m".into(),
                count: 1,
                last_at: opened,
            })
            .collect();
        context.logs = Some(Logs {
            pod: "web-x".into(),
            container: "app".into(),
            previous: true,
            lines: (0..8).map(|i| format!("line {i}")).collect(),
        });
        let short = context.summary(opened);
        assert_eq!(short.events.len(), 3);
        assert_eq!(short.events[0], "R0 ×1 (Pod/web-x): m");
        assert_eq!(short.logs, ["line 3", "line 4", "line 5", "line 6", "line 7"]);
        assert!(short
            .rollout
            .unwrap()
            .ends_with("rolled out 5 minutes before the alert"));
    }
}
