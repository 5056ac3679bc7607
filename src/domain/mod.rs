//! The shared vocabulary, the ground floor every other module stands on: a checked
//! [`Notification`] made of alert episodes, timer kinds and outcomes, severities, durations as
//! people write them, the action catalogue with its parameters and their checks (Kubernetes
//! names and selectors), remediation results and what a ladder tried before handing over,
//! roles, the evidence a step's `verify_query` read, and the cluster context gathered for an incident.
//! Words that are also stored in SQL are enums here with `as_str`, and a CHECK constraint in a
//! migration lists the same words.

mod action;
mod actor;
mod context;
mod duration;
mod evidence;
pub mod gitops;
mod handover;
mod heartbeat;
pub mod kubernetes;
mod notification;
mod remediation;
mod role;
mod severity;
mod timer;

pub use action::{
    param, target_key, Action, ActionParams, Cap, Check, MinHealthy, ParamKind, ParamLimits, ParamSpec,
    DEFAULT_MAX_PODS, DEFAULT_READY_TIMEOUT, FLOOR_RULE,
};
pub use actor::{Act, Actor, Auth, Surface, Text};
pub use context::{
    ClusterContext, ContextError, ContextErrorKind, ContextSummary, Event, Logs, PodState, Rollout,
    Termination, Workload,
};
pub use duration::HumanDuration;
pub use evidence::{Evidence, Reading, ValueFormat};
pub use handover::{Handover, TriedStep};
pub use heartbeat::{HeartbeatState, Renewal, HEARTBEAT_LABEL, HEARTBEAT_MISSING};
pub use notification::{AlertEpisode, Fingerprint, InvalidNotification, Notification};
pub use remediation::{
    Mute, Outcome, RemediationDecision, RemediationJob, RemediationResult, RuleMode, Verification,
};
pub use role::Role;
pub use severity::Severity;
pub use timer::{
    ApprovalQuestion, Channel, PlannedTimer, RemediationReport, RemediationWork, TimerKind, TimerOutcome,
    TimerWork,
};
