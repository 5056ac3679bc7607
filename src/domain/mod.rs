//! medic's own view of what Alertmanager sent: values that are valid once constructed.

mod notification;

pub use notification::{AlertEpisode, Fingerprint, InvalidNotification, Notification};
