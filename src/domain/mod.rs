//! The shared vocabulary, the ground floor every other module stands on: a checked
//! [`Notification`] made of alert episodes, timer kinds and outcomes, severities, durations as
//! people write them, the action catalogue with its parameters, and remediation results.
//! Words that are also stored in SQL are enums here with `as_str`, and a CHECK constraint in a
//! migration lists the same words.

mod action;
mod duration;
mod notification;
mod remediation;
mod severity;
mod timer;

pub use action::{param, Action, ActionParams, ParamKind, ParamSpec};
pub use duration::HumanDuration;
pub use notification::{AlertEpisode, Fingerprint, InvalidNotification, Notification};
pub use remediation::{RemediationDecision, RemediationJob, RemediationResult};
pub use severity::Severity;
pub use timer::{PlannedTimer, TimerKind, TimerOutcome};
