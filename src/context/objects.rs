//! Reading Kubernetes objects into what the context says: a pod's state and its failing
//! container, a Deployment's rollout and the changes between its last two revisions, an
//! event. Pure functions of the objects, so they are tested without a cluster.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, ReplicaSet, StatefulSet},
        core::v1::{Container, ContainerStatus, Event as KubeEvent, Pod, PodTemplateSpec},
    },
    jiff::Timestamp,
};

use crate::{
    domain::{Event, PodState, Rollout, Termination},
    plan::Redactor,
    remediation::is_ready,
};

/// The annotation the Deployment controller numbers revisions with.
pub(super) const REVISION: &str = "deployment.kubernetes.io/revision";

/// The pod's phase, readiness, restarts, waiting reason and last termination.
pub(super) fn pod_state(pod: &Pod, redactor: &Redactor) -> PodState {
    let status = pod.status.clone().unwrap_or_default();
    let containers = status.container_statuses.unwrap_or_default();
    let waiting = containers
        .iter()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    PodState {
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase: status.phase.unwrap_or_else(|| "Unknown".into()),
        ready: is_ready(pod),
        restarts: containers.iter().map(|c| c.restart_count).sum(),
        waiting,
        last_termination: failing(pod).and_then(|c| termination(c, redactor)),
    }
}

/// How the container's last instance ended (or the current one, if it has).
fn termination(status: &ContainerStatus, redactor: &Redactor) -> Option<Termination> {
    let last = status.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let now = status.state.as_ref().and_then(|s| s.terminated.as_ref());
    let ended = last.or(now)?;
    Some(Termination {
        container: status.name.clone(),
        reason: ended.reason.as_deref().map(|r| redactor.clean(r)),
        exit_code: ended.exit_code,
        finished_at: ended.finished_at.as_ref().and_then(|t| at(&t.0)),
    })
}

/// The container most worth reading: the one restarted most, else one not ready, else the
/// first.
pub(super) fn failing(pod: &Pod) -> Option<&ContainerStatus> {
    let containers = pod.status.as_ref()?.container_statuses.as_ref()?;
    containers
        .iter()
        .max_by_key(|c| (c.restart_count, !c.ready))
        .or(containers.first())
}

/// Whether the container has a crashed instance to read (`kubectl logs --previous`).
pub(super) fn has_previous(status: &ContainerStatus) -> bool {
    status.restart_count > 0 && status.last_state.as_ref().is_some_and(|s| s.terminated.is_some())
}

/// Worst first: not ready, then most restarts.
pub(super) fn badness(state: &PodState) -> (bool, bool, i32) {
    (!state.healthy(), !state.ready, state.restarts)
}

/// A Deployment's rollout: counts from its status, the newest of its ReplicaSets as the
/// current revision, and what changed from the one before.
pub(super) fn deployment_rollout(
    deployment: &Deployment,
    sets: &[ReplicaSet],
    redactor: &Redactor,
) -> Rollout {
    let status = deployment.status.clone().unwrap_or_default();
    let mut sets: Vec<&ReplicaSet> = sets.iter().collect();
    sets.sort_by_key(|set| std::cmp::Reverse(revision(set)));
    let current = sets.first();
    let changes = match (current, sets.get(1)) {
        (Some(now), Some(before)) => changes(template(before), template(now), redactor),
        _ => Vec::new(),
    };
    Rollout {
        desired: deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        revision: current.map(|set| revision(set).to_string()),
        rolled_out_at: current.and_then(|set| at(&set.metadata.creation_timestamp.as_ref()?.0)),
        changes,
    }
}

/// A StatefulSet's rollout: counts and its update revision (its history is not read).
pub(super) fn stateful_set_rollout(set: &StatefulSet) -> Rollout {
    let status = set.status.clone().unwrap_or_default();
    Rollout {
        desired: set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        revision: status.update_revision,
        rolled_out_at: None,
        changes: Vec::new(),
    }
}

/// The ReplicaSet's revision number (0 when it has none).
pub(super) fn revision(set: &ReplicaSet) -> u64 {
    set.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn template(set: &ReplicaSet) -> Option<&PodTemplateSpec> {
    set.spec.as_ref()?.template.as_ref()
}

/// Image and environment changes between two pod templates, per container, as
/// `image app: app:1 → app:2` and `env app: LOG_LEVEL=info → LOG_LEVEL=debug` (redacted).
fn changes(
    before: Option<&PodTemplateSpec>,
    now: Option<&PodTemplateSpec>,
    redactor: &Redactor,
) -> Vec<String> {
    let containers = |t: Option<&PodTemplateSpec>| -> BTreeMap<String, Container> {
        let spec = t.and_then(|t| t.spec.as_ref());
        spec.map(|s| s.containers.iter().map(|c| (c.name.clone(), c.clone())).collect())
            .unwrap_or_default()
    };
    let (before, now) = (containers(before), containers(now));
    let mut lines = Vec::new();
    for (name, container) in &now {
        let old = before.get(name);
        let image = |c: Option<&Container>| c.and_then(|c| c.image.clone()).unwrap_or_else(|| "none".into());
        if old.map(|c| &c.image) != Some(&container.image) {
            lines.push(format!(
                "image {name}: {} → {}",
                image(old),
                image(Some(container))
            ));
        }
        lines.extend(env_changes(name, old, container, redactor));
    }
    lines
}

/// `env app: KEY=old → KEY=new`, `+KEY=new`, `-KEY`; values from a reference show its source.
fn env_changes(name: &str, old: Option<&Container>, now: &Container, redactor: &Redactor) -> Vec<String> {
    let vars = |c: Option<&Container>| -> BTreeMap<String, String> {
        let env = c.and_then(|c| c.env.clone()).unwrap_or_default();
        env.into_iter()
            .map(|v| {
                let value = match (v.value, v.value_from) {
                    (Some(value), _) => value,
                    (None, Some(_)) => "(from a reference)".into(),
                    (None, None) => String::new(),
                };
                (v.name, value)
            })
            .collect()
    };
    let (before, after) = (vars(old), vars(Some(now)));
    let mut lines = Vec::new();
    for (key, value) in &after {
        match before.get(key) {
            Some(was) if was == value => {}
            Some(was) => lines.push(format!("env {name}: {key}={was} → {key}={value}")),
            None => lines.push(format!("env {name}: +{key}={value}")),
        }
    }
    for key in before.keys().filter(|k| !after.contains_key(*k)) {
        lines.push(format!("env {name}: -{key}"));
    }
    lines.into_iter().map(|line| redactor.clean(&line)).collect()
}

/// A `Warning` event (others give None), with its last time, redacted.
pub(super) fn warning(event: &KubeEvent, redactor: &Redactor) -> Option<Event> {
    if event.type_.as_deref() != Some("Warning") {
        return None;
    }
    let object = &event.involved_object;
    Some(Event {
        object: format!(
            "{}/{}",
            object.kind.as_deref().unwrap_or("?"),
            object.name.as_deref().unwrap_or("?")
        ),
        reason: event.reason.clone().unwrap_or_default(),
        message: redactor.clean(event.message.as_deref().unwrap_or_default()),
        count: event.count.unwrap_or(1),
        last_at: last_seen(event)?,
    })
}

/// When the event last happened, whichever field its reporter filled.
fn last_seen(event: &KubeEvent) -> Option<DateTime<Utc>> {
    let times = [
        event.last_timestamp.as_ref().map(|t| t.0),
        event
            .series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(|t| t.0),
        event.event_time.as_ref().map(|t| t.0),
        event.first_timestamp.as_ref().map(|t| t.0),
        event.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ];
    times.iter().flatten().find_map(at)
}

/// A Kubernetes time as chrono's.
fn at(time: &Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(time.as_millisecond())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(revision: &str, image: &str, env: serde_json::Value) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": format!("web-{revision}"), "annotations": {REVISION: revision},
                         "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": "app", "image": image, "env": env}]}}},
        }))
        .unwrap()
    }

    #[test]
    fn the_newest_revision_is_current_and_its_changes_are_listed() {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3},
        }))
        .unwrap();
        let sets = [
            set(
                "1",
                "app:1",
                json!([{"name": "LOG", "value": "info"}, {"name": "OLD", "value": "x"}]),
            ),
            set(
                "2",
                "app:2",
                json!([{"name": "LOG", "value": "debug"}, {"name": "DB_PASSWORD", "value": "hunter2"}]),
            ),
        ];
        let rollout = deployment_rollout(&deployment, &sets, &Redactor::default());
        assert_eq!((rollout.desired, rollout.ready, rollout.updated), (3, 2, 3));
        assert_eq!(rollout.revision.as_deref(), Some("2"));
        assert_eq!(
            rollout.changes,
            [
                "image app: app:1 → app:2",
                "env app: +DB_PASSWORD=hunter2",
                "env app: LOG=info → LOG=debug",
                "env app: -OLD"
            ]
        );
    }
}
