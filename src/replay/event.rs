//! The facts replay compares, recorded or replayed alike: a rule that took an incident's
//! alerts, a message a notifier was due to get, a remediation step's decision.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One fact about an incident, at its virtual time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub fact: Fact,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Fact {
    /// A rule took some of the incident's alerts (and asked for a timer).
    Rule { rule: String },
    /// A message due to a notifier: `kind` is the timer's (`opened`, `escalation`, ...).
    Message {
        notifier: String,
        kind: String,
        rule: String,
        step: i32,
        /// The notifier's type (`pagerduty` pages); not compared apart from the notifier.
        #[serde(skip)]
        channel: String,
    },
    /// A remediation step decided: `acted`, `dry_run`, `failure` or a `skipped_*` word.
    Remediation {
        rule: String,
        step: i32,
        action: String,
        target: String,
        decision: String,
    },
}

impl Event {
    /// A message the summary counts as a page: a trigger (announcement or escalation) to a
    /// PagerDuty notifier.
    pub fn is_page(&self) -> bool {
        matches!(&self.fact, Fact::Message { kind, channel, .. }
            if channel == "pagerduty" && (kind == "opened" || kind == "escalation"))
    }

    /// A message to any notifier.
    pub fn is_message(&self) -> bool {
        matches!(self.fact, Fact::Message { .. })
    }

    /// A remediation step decided to act.
    pub fn is_action(&self) -> bool {
        matches!(&self.fact, Fact::Remediation { decision, .. } if decision == ACTED)
    }
}

/// The decision word of a step that was let act, whatever the handler then found.
pub const ACTED: &str = "acted";

/// The decision a recorded remediation row stands for. The guard rails let it act when its
/// result came from the handler (`success`, `skipped_noop`, `skipped_pdb`,
/// `skipped_min_healthy`, or a `failure` that counted); a `failure` that did not count was
/// decided before acting (parameters that cannot be rendered, Kubernetes unavailable).
pub fn decision_word(result: &str, acted: bool) -> String {
    match result {
        "running" | "success" | "skipped_noop" | "skipped_pdb" | "skipped_min_healthy" => ACTED.into(),
        "failure" if acted => ACTED.into(),
        other => other.into(),
    }
}
