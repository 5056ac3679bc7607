//! What people do, each act one command with one door: acknowledge, approve, reject, open and
//! end a maintenance window, pause, resume, silence and end a silence, promote a demoted rule
//! step. A command takes the [`Actor`](crate::domain::Actor) a surface authenticated (the
//! API, the console, Slack, PagerDuty) and input already parsed into domain types; it checks
//! the role the act needs, validates with one set of limits, stores the change with its audit
//! event, counts it and logs it. Surfaces only authenticate and translate, so a new one cannot
//! forget a check.

mod approvals;
mod door;
mod incidents;
mod limits;
mod rules;
mod windows;

pub use approvals::Decided;
pub use door::{Acts, Refused};
pub use incidents::{Acknowledged, Silenced};
pub use limits::WindowLimits;
pub use windows::WindowRequest;
