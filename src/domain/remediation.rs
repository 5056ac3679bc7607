//! What became of a remediation: the results stored in `remediations.result` (a CHECK
//! constraint in migrations/0021 lists the same words), the mode a rule remediates in, and the
//! decisions the guard rails make.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ActionParams, AlertEpisode};
use crate::alertmanager::KV;

/// A remediation's result, as stored, counted (`medic_remediations_total{result}`) and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemediationResult {
    /// Decided to act (or to plan, in a dry run); the outcome is not recorded yet.
    Running,
    /// The action changed what it set out to change.
    Success,
    /// The action, or the attempt to decide it, failed; the summary says why.
    Failure,
    /// Planned and recorded; nothing was changed.
    DryRun,
    /// The target was acted on within its cooldown.
    SkippedCooldown,
    /// A budget (per target, per rule or global) is spent.
    SkippedBudget,
    /// The alert stopped firing before the action was decided.
    SkippedResolved,
    /// The target's namespace is not allowed.
    SkippedNamespace,
    /// A PodDisruptionBudget refused an eviction.
    SkippedPdb,
    /// The alert fired too often within the flapping window.
    SkippedFlapping,
    /// A person acknowledged the incident.
    SkippedAcknowledged,
    /// Nothing to do: at the cap, enough replicas already, no unhealthy pod.
    SkippedNoop,
    /// A parameter rendered from the alert is not a valid target (a name, a selector, a
    /// number or duration out of bounds); no request was made.
    SkippedInvalid,
    /// A step that needs a person's approval is waiting for it.
    AwaitingApproval,
    /// An admin paused remediation.
    SkippedPaused,
    /// A maintenance window muting remediation covers the alert.
    SkippedMaintenance,
    /// Nobody approved the step before its request expired.
    SkippedUnapproved,
    /// A person rejected the step.
    SkippedRejected,
    /// Evicting would leave fewer than `min_healthy` of the Deployment's desired pods Ready
    /// (a floor only for pods no PodDisruptionBudget covers).
    SkippedMinHealthy,
    /// Argo CD or Flux manages the target and would revert the change; people decide.
    SkippedGitops,
    /// A rule in `mode: observe`: every guard rail let it act, the plan is recorded, nothing
    /// was changed (and it is verified as if it had run).
    Observed,
}

impl RemediationResult {
    /// Every result, for pre-registering metric labels and the migration's CHECK constraint.
    pub const ALL: [RemediationResult; 21] = [
        RemediationResult::Running,
        RemediationResult::Success,
        RemediationResult::Failure,
        RemediationResult::DryRun,
        RemediationResult::SkippedCooldown,
        RemediationResult::SkippedBudget,
        RemediationResult::SkippedResolved,
        RemediationResult::SkippedNamespace,
        RemediationResult::SkippedPdb,
        RemediationResult::SkippedFlapping,
        RemediationResult::SkippedAcknowledged,
        RemediationResult::SkippedNoop,
        RemediationResult::SkippedInvalid,
        RemediationResult::AwaitingApproval,
        RemediationResult::SkippedPaused,
        RemediationResult::SkippedMaintenance,
        RemediationResult::SkippedUnapproved,
        RemediationResult::SkippedRejected,
        RemediationResult::SkippedMinHealthy,
        RemediationResult::SkippedGitops,
        RemediationResult::Observed,
    ];

    /// The word stored in the database and used in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RemediationResult::Running => "running",
            RemediationResult::Success => "success",
            RemediationResult::Failure => "failure",
            RemediationResult::DryRun => "dry_run",
            RemediationResult::SkippedCooldown => "skipped_cooldown",
            RemediationResult::SkippedBudget => "skipped_budget",
            RemediationResult::SkippedResolved => "skipped_resolved",
            RemediationResult::SkippedNamespace => "skipped_namespace",
            RemediationResult::SkippedPdb => "skipped_pdb",
            RemediationResult::SkippedFlapping => "skipped_flapping",
            RemediationResult::SkippedAcknowledged => "skipped_acknowledged",
            RemediationResult::SkippedNoop => "skipped_noop",
            RemediationResult::SkippedInvalid => "skipped_invalid",
            RemediationResult::AwaitingApproval => "awaiting_approval",
            RemediationResult::SkippedPaused => "skipped_paused",
            RemediationResult::SkippedMaintenance => "skipped_maintenance",
            RemediationResult::SkippedUnapproved => "skipped_unapproved",
            RemediationResult::SkippedRejected => "skipped_rejected",
            RemediationResult::SkippedMinHealthy => "skipped_min_healthy",
            RemediationResult::SkippedGitops => "skipped_gitops",
            RemediationResult::Observed => "observed",
        }
    }

    /// The result stored under `word`.
    pub fn parse(word: &str) -> Option<RemediationResult> {
        RemediationResult::ALL.into_iter().find(|r| r.as_str() == word)
    }

    /// Whether the action did what was asked (for real, or as a plan: a dry run, an observed
    /// step).
    pub fn is_done(self) -> bool {
        matches!(
            self,
            RemediationResult::Success | RemediationResult::DryRun | RemediationResult::Observed
        )
    }

    /// Whether a step with this result is verified after `verify_within`: one that acted, or
    /// one observed (what would have happened is counted as if it had).
    pub fn is_verified(self) -> bool {
        matches!(self, RemediationResult::Success | RemediationResult::Observed)
    }

    /// Why a remediation was not acted on, for people, when the guard rails decided it.
    pub fn reason(self) -> &'static str {
        match self {
            RemediationResult::SkippedCooldown => "the target was acted on within its cooldown",
            RemediationResult::SkippedBudget => "the action budget (per target, rule or global) is spent",
            RemediationResult::SkippedResolved => "the alert is no longer firing",
            RemediationResult::SkippedFlapping => "the alert fired too often in the flapping window",
            RemediationResult::SkippedAcknowledged => "the incident was acknowledged: a person has it",
            RemediationResult::SkippedNamespace => "the namespace is not allowed",
            RemediationResult::SkippedPdb => "a PodDisruptionBudget refused the eviction",
            RemediationResult::SkippedNoop => "there was nothing to do",
            RemediationResult::SkippedInvalid => "a parameter is not a valid target",
            RemediationResult::SkippedPaused => "remediation is paused",
            RemediationResult::SkippedMaintenance => "a maintenance window mutes remediation here",
            RemediationResult::SkippedUnapproved => "nobody approved it in time",
            RemediationResult::SkippedRejected => "a person rejected it",
            RemediationResult::SkippedMinHealthy => {
                "evicting would leave too few of the Deployment's pods Ready"
            }
            RemediationResult::SkippedGitops => "a GitOps controller manages the target and would revert it",
            RemediationResult::AwaitingApproval => "waiting for a person's approval",
            RemediationResult::Running
            | RemediationResult::Success
            | RemediationResult::Failure
            | RemediationResult::DryRun
            | RemediationResult::Observed => "not skipped",
        }
    }
}

impl fmt::Display for RemediationResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a step's fix held: the alert episode resolved within its `verify_within` and the
/// same alert (same rule, group and fingerprint) stayed resolved for its `hold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verification {
    /// The step has no `verify_within`, or did not succeed.
    None,
    /// Waiting for `verify_within` to pass.
    Pending,
    /// Resolved within `verify_within`; waiting for `hold` to pass without a re-fire.
    Holding,
    Fixed,
    NotFixed,
    /// Resolved, then the same alert fired again within `hold`.
    Relapsed,
}

impl Verification {
    /// Every word, for the migration's CHECK constraint.
    pub const ALL: [Verification; 6] = [
        Verification::None,
        Verification::Pending,
        Verification::Holding,
        Verification::Fixed,
        Verification::NotFixed,
        Verification::Relapsed,
    ];

    /// The word stored in `remediations.verification` and used in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::None => "none",
            Verification::Pending => "pending",
            Verification::Holding => "holding",
            Verification::Fixed => "fixed",
            Verification::NotFixed => "not_fixed",
            Verification::Relapsed => "relapsed",
        }
    }
}

/// What a step came to, for `medic_remediation_outcomes_total` and rule effectiveness: a
/// closed set, so that a rule's record reads the same everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Resolved within `verify_within` and stayed resolved for `hold`.
    Fixed,
    /// Resolved, then fired again within `hold`.
    Relapsed,
    /// Still firing after `verify_within`.
    NotFixed,
    /// The action (or deciding it) failed.
    Failed,
    /// A guard rail, a person or the handler left it undone (`skipped_*`).
    Skipped,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Fixed,
        Outcome::Relapsed,
        Outcome::NotFixed,
        Outcome::Failed,
        Outcome::Skipped,
    ];

    /// The word in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Fixed => "fixed",
            Outcome::Relapsed => "relapsed",
            Outcome::NotFixed => "not_fixed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }

    /// The outcome a recorded result settles at once (a success waits for verification).
    pub fn of_result(result: RemediationResult) -> Option<Outcome> {
        match result {
            RemediationResult::Failure => Some(Outcome::Failed),
            r if r.as_str().starts_with("skipped_") => Some(Outcome::Skipped),
            _ => None,
        }
    }

    /// The outcome a final verification settles.
    pub fn of_verification(verification: Verification) -> Option<Outcome> {
        match verification {
            Verification::Fixed => Some(Outcome::Fixed),
            Verification::NotFixed => Some(Outcome::NotFixed),
            Verification::Relapsed => Some(Outcome::Relapsed),
            Verification::None | Verification::Pending | Verification::Holding => None,
        }
    }
}

/// What a maintenance window mutes for the alerts it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mute {
    /// Remediation is `skipped_maintenance`.
    Remediation,
    /// Messages and escalations wait for the window's end.
    Pages,
}

impl Mute {
    pub const ALL: [Mute; 2] = [Mute::Remediation, Mute::Pages];

    /// The word stored in `maintenance_windows.mute` and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Mute::Remediation => "remediation",
            Mute::Pages => "pages",
        }
    }

    pub fn parse(word: &str) -> Option<Mute> {
        Mute::ALL.into_iter().find(|m| m.as_str() == word)
    }
}

/// How a rule remediates (`mode:`), stored with each of its steps (`remediations.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum RuleMode {
    /// The guard rails decide, and what they let run runs.
    #[default]
    Act,
    /// Decided with every guard rail and recorded as `observed` with its plan; nothing is
    /// changed, no budget is spent, and nobody is asked or paged early.
    Observe,
}

impl RuleMode {
    pub const ALL: [RuleMode; 2] = [RuleMode::Act, RuleMode::Observe];

    /// The word in settings, `remediations.mode`, the API and `medic explain`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleMode::Act => "act",
            RuleMode::Observe => "observe",
        }
    }

    pub fn parse(word: &str) -> Option<RuleMode> {
        RuleMode::ALL.into_iter().find(|m| m.as_str() == word)
    }
}

impl TryFrom<String> for RuleMode {
    type Error = String;
    fn try_from(word: String) -> Result<Self, String> {
        RuleMode::parse(&word).ok_or_else(|| format!("{word:?}: act or observe"))
    }
}

impl fmt::Display for RuleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the guard rails decided for one remediation (`medic_decide_remediation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemediationDecision {
    /// Act now.
    Act,
    /// Plan and record, change nothing.
    DryRun,
    /// A rule in `mode: observe` would act now: plan and record it as `observed`, change
    /// nothing.
    Observe,
    /// Another action on the target (or this one, by another replica) is running: try later.
    Busy,
    /// Already decided for this alert episode.
    Duplicate,
    /// The replica acting stopped before recording an outcome; recorded as a failure and not
    /// retried, as the action may have happened.
    Interrupted,
    /// A person must approve the step first; it waits until the request expires.
    AwaitingApproval,
    /// Not acted on, for this reason.
    Skipped(RemediationResult),
}

impl RemediationDecision {
    /// The word the database function returns for this decision.
    pub fn as_str(self) -> &'static str {
        match self {
            RemediationDecision::Act => "act",
            RemediationDecision::DryRun => "dry_run",
            RemediationDecision::Observe => "observe",
            RemediationDecision::Busy => "busy",
            RemediationDecision::Duplicate => "duplicate",
            RemediationDecision::Interrupted => "interrupted",
            RemediationDecision::AwaitingApproval => "awaiting_approval",
            RemediationDecision::Skipped(result) => result.as_str(),
        }
    }

    /// The decision the database function returned.
    pub fn parse(word: &str) -> Option<RemediationDecision> {
        Some(match word {
            "act" => RemediationDecision::Act,
            "dry_run" => RemediationDecision::DryRun,
            "observe" => RemediationDecision::Observe,
            "busy" => RemediationDecision::Busy,
            "duplicate" => RemediationDecision::Duplicate,
            "interrupted" => RemediationDecision::Interrupted,
            "awaiting_approval" => RemediationDecision::AwaitingApproval,
            other => match RemediationResult::parse(other)? {
                skip if other.starts_with("skipped_") || skip == RemediationResult::Failure => {
                    RemediationDecision::Skipped(skip)
                }
                _ => return None,
            },
        })
    }
}

/// What a remediation timer carries: the parameters rendered for the alert, or why they could
/// not be, and the alert episode it is for. Its serde form is what the timer's payload stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationJob {
    pub params: Option<ActionParams>,
    /// Why the parameters could not be rendered.
    pub error: Option<String>,
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
    pub labels: KV,
    /// For rendering the parameters of the ladder's later steps (absent from jobs written by
    /// a previous version: empty).
    #[serde(default)]
    pub annotations: KV,
}

impl RemediationJob {
    /// The job for one firing alert episode.
    pub fn new(alert: &AlertEpisode, params: Result<ActionParams, String>) -> Self {
        let (params, error) = match params {
            Ok(params) => (Some(params), None),
            Err(error) => (None, Some(error)),
        };
        Self {
            params,
            error,
            fingerprint: alert.fingerprint.as_ref().to_owned(),
            starts_at: alert.starts_at,
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
        }
    }

    /// The same alert episode with parameters rendered for another step.
    pub fn for_step(&self, params: Result<ActionParams, String>) -> Self {
        let (params, error) = match params {
            Ok(params) => (Some(params), None),
            Err(error) => (None, Some(error)),
        };
        Self {
            params,
            error,
            ..self.clone()
        }
    }

    /// The rendered parameters, or why there are none.
    pub fn params(&self) -> Result<&ActionParams, &str> {
        match (&self.params, &self.error) {
            (_, Some(error)) => Err(error),
            (Some(params), None) => Ok(params),
            (None, None) => Err("no parameters"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_result_reads_back_as_itself() {
        for result in RemediationResult::ALL {
            assert_eq!(RemediationResult::parse(result.as_str()), Some(result));
        }
        assert_eq!(RemediationResult::parse("succeeded"), None);
    }

    #[test]
    fn decisions_read_from_the_database_words() {
        use RemediationDecision::*;
        assert_eq!(RemediationDecision::parse("act"), Some(Act));
        assert_eq!(RemediationDecision::parse("busy"), Some(Busy));
        assert_eq!(
            RemediationDecision::parse("skipped_budget"),
            Some(Skipped(RemediationResult::SkippedBudget))
        );
        assert_eq!(
            RemediationDecision::parse("failure"),
            Some(Skipped(RemediationResult::Failure))
        );
        for decision in [
            Act,
            DryRun,
            Observe,
            Busy,
            Duplicate,
            Interrupted,
            Skipped(RemediationResult::SkippedCooldown),
        ] {
            assert_eq!(RemediationDecision::parse(decision.as_str()), Some(decision));
        }
        assert_eq!(RemediationDecision::parse("running"), None);
        assert_eq!(RemediationDecision::parse("success"), None);
        assert_eq!(RemediationDecision::parse("observed"), None);
        assert_eq!(RemediationDecision::parse("whatever"), None);
    }
}
