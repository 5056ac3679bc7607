//! medic's own view of what Alertmanager sent: values that are valid once constructed.

mod notification;
mod timer;

pub use notification::{AlertEpisode, Fingerprint, InvalidNotification, Notification};
pub use timer::TimerKind;
