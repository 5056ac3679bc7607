//! The `min_healthy` floor under one eviction: the workload that keeps the pod's kind of pods
//! at a desired count, how many of its pods are Ready, and whether evicting this one leaves
//! enough.
//!
//! The workload is found through controller ownerReferences, as the garbage collector reads
//! them: the pod's ReplicaSet and that ReplicaSet's Deployment, a ReplicaSet that nothing
//! controls, or a StatefulSet. Its pods are those it controls (a Deployment through any of its
//! ReplicaSets, so that pods of an unfinished rollout count too); the selector only narrows the
//! list, so a pod of another workload that carries the same labels never props up the floor.
//! Ready means the Ready condition on a pod not being deleted, as the disruption controller
//! counts for a PodDisruptionBudget.
//!
//! A bare pod, or one whose controller is something else (a DaemonSet, a Job, a ReplicaSet of
//! an Argo Rollout), has no desired count medic can read: there is no floor under it.

use std::collections::HashSet;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, ReplicaSet, StatefulSet},
        core::v1::Pod,
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
};
use serde_json::{json, Value};

use super::pods::{is_ready, name};
use crate::{
    domain::MinHealthy,
    remediation::kube::{controller, selector_query, Kube},
};

/// The floor under one pod's eviction.
pub(super) struct Floor {
    /// The pod to evict.
    pod: String,
    /// Whether it is Ready: only then does evicting it lower the count.
    pub(super) pod_ready: bool,
    /// `deployment/web`, for people.
    workload: String,
    /// The workload's uid: a dry run adds the replacements it assumes, per workload.
    pub(super) uid: String,
    /// `spec.replicas`.
    desired: i32,
    /// How many must stay Ready.
    required: i32,
    /// How many are Ready now.
    pub(super) ready: i32,
    min_healthy: MinHealthy,
}

impl Floor {
    /// The floor under evicting `pod`, or None when no workload with a desired count owns it.
    pub(super) async fn under(
        kube: &Kube,
        namespace: &str,
        pod: &Pod,
        min_healthy: MinHealthy,
    ) -> Result<Option<Floor>, String> {
        let pod_name = name(pod);
        let context = |e: String| format!("reading the workload of {pod_name} for min_healthy: {e}");
        let Some(workload) = Workload::of(kube, namespace, pod).await.map_err(context)? else {
            tracing::info!(
                namespace, pod = %pod_name,
                "min_healthy: no Deployment, ReplicaSet or StatefulSet controls the pod; no floor"
            );
            return Ok(None);
        };
        let pods = workload.pods(kube, namespace).await.map_err(context)?;
        // As the workload's pods read now; the candidate may have been listed a while ago.
        let uid = &pod.metadata.uid;
        let pod_ready = pods
            .iter()
            .find(|p| p.metadata.uid == *uid)
            .map_or_else(|| counts_as_ready(pod), counts_as_ready);
        let ready = pods.iter().filter(|p| counts_as_ready(p)).count();
        Ok(Some(Floor {
            pod: pod_name,
            pod_ready,
            workload: format!("{}/{}", workload.kind, workload.name),
            uid: workload.uid,
            desired: workload.desired,
            required: min_healthy.required(workload.desired),
            ready: i32::try_from(ready).unwrap_or(i32::MAX),
            min_healthy,
        }))
    }

    /// Why the eviction would break the floor, if it would: fewer than `required` Ready once
    /// the pod is gone. A pod that is not Ready takes nothing away, but is still left alone
    /// while the workload is below its floor (Kubernetes' default for PodDisruptionBudgets,
    /// `unhealthyPodEvictionPolicy: IfHealthyBudget`).
    pub(super) fn refusal(&self) -> Option<String> {
        let left = self.ready - i32::from(self.pod_ready);
        if left >= self.required {
            return None;
        }
        let state = if self.pod_ready { "" } else { " (not Ready)" };
        let floor = match self.min_healthy {
            MinHealthy::Percent(_) => format!("{} ({})", self.min_healthy, self.required),
            MinHealthy::Count(_) => self.min_healthy.to_string(),
        };
        Some(format!(
            "evicting {}{state} would leave {left} of {} desired pods of {} Ready; min_healthy is {floor}",
            self.pod, self.desired, self.workload
        ))
    }

    /// For the remediation's detail.
    pub(super) fn detail(&self) -> Value {
        json!({
            "workload": self.workload, "desired": self.desired, "ready": self.ready,
            "required": self.required, "min_healthy": self.min_healthy.to_string(),
        })
    }
}

/// Ready, and not on its way out.
fn counts_as_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && is_ready(pod)
}

/// What keeps a pod's kind of pods at a desired count.
struct Workload {
    /// `deployment`, `replicaset` or `statefulset`.
    kind: &'static str,
    name: String,
    uid: String,
    /// `spec.replicas` (1 when unset, as the API server defaults it).
    desired: i32,
    selector: Option<LabelSelector>,
}

impl Workload {
    /// The pod's workload, through its controller and, for a ReplicaSet, the ReplicaSet's.
    async fn of(kube: &Kube, namespace: &str, pod: &Pod) -> Result<Option<Workload>, String> {
        let Some(owner) = controller(&pod.metadata) else {
            return Ok(None);
        };
        match owner.kind.as_str() {
            "ReplicaSet" => {
                let set = kube
                    .replica_set(namespace, &owner.name)
                    .await
                    .map_err(|e| e.to_string())?;
                same_object(owner, &set.metadata)?;
                match controller(&set.metadata) {
                    None => Ok(Some(Workload::replica_set(set))),
                    Some(owner) if owner.kind == "Deployment" => {
                        let deployment = kube
                            .deployment(namespace, &owner.name)
                            .await
                            .map_err(|e| e.to_string())?;
                        same_object(owner, &deployment.metadata)?;
                        Ok(Some(Workload::deployment(deployment)))
                    }
                    Some(_) => Ok(None),
                }
            }
            "StatefulSet" => {
                let set = kube
                    .stateful_set(namespace, &owner.name)
                    .await
                    .map_err(|e| e.to_string())?;
                same_object(owner, &set.metadata)?;
                Ok(Some(Workload::stateful_set(set)))
            }
            _ => Ok(None),
        }
    }

    fn new(kind: &'static str, metadata: ObjectMeta, replicas: Option<i32>, selector: LabelSelector) -> Self {
        Self {
            kind,
            name: metadata.name.unwrap_or_default(),
            uid: metadata.uid.unwrap_or_default(),
            desired: replicas.unwrap_or(1),
            selector: Some(selector),
        }
    }

    fn deployment(deployment: Deployment) -> Self {
        let spec = deployment.spec.unwrap_or_default();
        Self::new("deployment", deployment.metadata, spec.replicas, spec.selector)
    }

    fn replica_set(set: ReplicaSet) -> Self {
        let spec = set.spec.unwrap_or_default();
        Self::new("replicaset", set.metadata, spec.replicas, spec.selector)
    }

    fn stateful_set(set: StatefulSet) -> Self {
        let spec = set.spec.unwrap_or_default();
        Self::new("statefulset", set.metadata, spec.replicas, spec.selector)
    }

    /// The pods it controls: directly, or for a Deployment through its ReplicaSets.
    async fn pods(&self, kube: &Kube, namespace: &str) -> Result<Vec<Pod>, String> {
        let selector = self.selector.as_ref().map(selector_query).unwrap_or_default();
        let controllers: HashSet<String> = if self.kind == "deployment" {
            let sets = kube
                .replica_sets(namespace, &selector)
                .await
                .map_err(|e| e.to_string())?;
            sets.into_iter()
                .filter(|set| controller(&set.metadata).is_some_and(|c| c.uid == self.uid))
                .filter_map(|set| set.metadata.uid)
                .collect()
        } else {
            HashSet::from([self.uid.clone()])
        };
        let pods = kube.pods(namespace, &selector).await.map_err(|e| e.to_string())?;
        Ok(pods
            .into_iter()
            .filter(|pod| controller(&pod.metadata).is_some_and(|c| controllers.contains(&c.uid)))
            .collect())
    }
}

/// The owner found by name is the one referenced, not another object since given its name.
fn same_object(owner: &OwnerReference, found: &ObjectMeta) -> Result<(), String> {
    if found.uid.as_deref() == Some(owner.uid.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "{} {} was replaced since it created the pod",
            owner.kind, owner.name
        ))
    }
}
