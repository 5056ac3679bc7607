//! What `restart_pods` and its floor read off a pod: its name and its Ready condition.

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;

/// The pod's name, empty when it has none.
pub(super) fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Whether the pod has the Ready condition.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|(ready, _)| ready)
}

/// The Ready condition: whether it holds, and since when.
pub(super) fn ready_condition(pod: &Pod) -> Option<(bool, Option<chrono::DateTime<Utc>>)> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    let since = ready
        .last_transition_time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp_millis(t.0.as_millisecond()));
    Some((ready.status == "True", since))
}
