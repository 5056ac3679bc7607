//! What a remediation ladder tried before it handed an incident to people early: one line for
//! headlines, and each step (action, target, result) for receivers that read structure.
//!
//! The store keeps it in the escalation timer's payload (`store::timer_work`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The line's opening words, before what each step did.
const NOT_FIXED: &str = "automatic remediation did not fix it";

/// One step of the ladder as it was recorded in `remediations`.
///
/// Words are kept as stored rather than as enums: a payload written by a newer replica may
/// carry a result this one does not know, and its page must still say what was tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriedStep {
    /// The action, e.g. `restart_pods`.
    pub action: String,
    /// What it acted on, e.g. `deployment/shop/web`.
    pub target: String,
    /// The remediation's result, e.g. `success` or `skipped_min_healthy`.
    pub result: String,
    /// `fixed`, `not_fixed`, `pending` or `none` (not verified).
    #[serde(default = "unverified")]
    pub verification: String,
    /// What people need beyond the words: the application a GitOps controller manages the
    /// target for (`skipped_gitops`), when a relapsed fix held and when it fired again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn unverified() -> String {
    "none".into()
}

impl fmt::Display for TriedStep {
    /// `restart_pods (success, not fixed)`, `scale_up (skipped_cooldown)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verified = match self.verification.as_str() {
            "fixed" => ", fixed",
            "not_fixed" => ", not fixed",
            "relapsed" => ", relapsed",
            _ => "",
        };
        let note = self.note.as_ref().map(|n| format!(": {n}")).unwrap_or_default();
        write!(f, "{} ({}{verified}{note})", self.action, self.result)
    }
}

/// Why an escalation came early, and what was tried first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// For people: `automatic remediation did not fix it: restart_pods (success, not fixed)`.
    pub text: String,
    /// Each step, in ladder order; None for a timer stored by a version that kept only the
    /// text (what it tried is then known only as words).
    pub tried: Option<Vec<TriedStep>>,
}

impl Handover {
    /// The handover after `tried`, in ladder order.
    pub fn new(tried: Vec<TriedStep>) -> Self {
        let steps: Vec<String> = tried.iter().map(TriedStep::to_string).collect();
        Self {
            text: format!("{NOT_FIXED}: {}", steps.join(", ")),
            tried: Some(tried),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(action: &str, result: &str, verification: &str) -> TriedStep {
        TriedStep {
            action: action.into(),
            target: format!("deployment/shop/{action}"),
            result: result.into(),
            verification: verification.into(),
            note: None,
        }
    }

    #[test]
    fn the_text_says_each_step_and_whether_it_held() {
        let handover = Handover::new(vec![
            step("scale_up", "success", "not_fixed"),
            step("rollout_restart", "skipped_cooldown", "none"),
        ]);
        assert_eq!(
            handover.text,
            "automatic remediation did not fix it: scale_up (success, not fixed), \
             rollout_restart (skipped_cooldown)"
        );
    }
}
