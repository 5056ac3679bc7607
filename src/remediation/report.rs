//! What a remediation handler did: its result, a line for people, its detail, and the evidence
//! read before acting. Every handler returns one; the runner records it.

use serde_json::{json, Value};

use crate::domain::{Evidence, RemediationResult};

/// What a handler did.
#[derive(Debug, Clone)]
pub struct Report {
    /// `Success`, `Failure`, `DryRun`, `SkippedPdb`, `SkippedMinHealthy` or `SkippedNoop`
    /// from a handler; any result from the guard rails.
    pub result: RemediationResult,
    /// One line for people: before and after.
    pub summary: String,
    pub detail: Value,
    /// What the step's `verify_query` read before it acted.
    pub evidence: Option<Evidence>,
}

impl Report {
    pub fn new(result: RemediationResult, summary: String, detail: Value) -> Self {
        Self {
            result,
            summary,
            detail,
            evidence: None,
        }
    }
    pub fn success(summary: String, detail: Value) -> Self {
        Self::new(RemediationResult::Success, summary, detail)
    }
    pub fn dry_run(summary: String, detail: Value) -> Self {
        Self::new(RemediationResult::DryRun, summary, detail)
    }
    /// Nothing to do: at the cap, already enough replicas, no unhealthy pod.
    pub fn noop(summary: String) -> Self {
        Self::new(RemediationResult::SkippedNoop, summary, json!({}))
    }

    /// The report with a warning (a GitOps controller may revert it) in its summary and its
    /// detail, when the action did something or planned to.
    pub(super) fn warned(mut self, warning: Option<String>) -> Self {
        let Some(warning) = warning.filter(|_| self.result.is_done()) else {
            return self;
        };
        self.summary = format!("{}; {warning}", self.summary);
        if let Some(detail) = self.detail.as_object_mut() {
            detail.insert("gitops_warning".into(), Value::String(warning));
        }
        self
    }

    /// The report with the evidence read before acting, its value in the summary.
    pub(super) fn with_evidence(mut self, evidence: Option<Evidence>) -> Self {
        if let Some(evidence) = &evidence {
            self.summary = format!("{}; {}", self.summary, evidence.line());
        }
        self.evidence = evidence;
        self
    }
}
