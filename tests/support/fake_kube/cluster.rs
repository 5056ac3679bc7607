//! The test-facing half of [`FakeKube`]: putting objects into the cluster and reading them back.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{
    key,
    metadata::touch,
    pods::{pod_ready, pod_status},
    Deployment, FakeKube, Pod, Store,
};

/// How long a deployment's new pod takes to become Ready unless told otherwise.
const DEFAULT_READY_AFTER: Duration = Duration::from_millis(200);

/// The labels as a JSON object.
fn labels_json(labels: &[(&str, &str)]) -> Value {
    Value::Object(labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
}

#[allow(dead_code)]
impl FakeKube {
    /// Creates a deployment whose pods carry `labels` (also its selector); the controller
    /// creates its replica set and, in it, its pods (at once, not Ready yet). Its container is
    /// "app" with image "app:1".
    pub fn add_deployment(&self, namespace: &str, name: &str, replicas: i32, labels: &[(&str, &str)]) {
        let mut store = self.store();
        assert!(
            !store.deployments.contains_key(&key(namespace, name)),
            "deployment {namespace}/{name} exists"
        );
        let labels = labels_json(labels);
        let mut metadata = store.metadata(namespace, name, labels.clone());
        metadata["generation"] = json!(1);
        let json = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
            "spec": {
                "replicas": replicas, "selector": {"matchLabels": labels},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                },
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "app:1"}]},
                },
            },
            "status": {},
        });
        let deployment = Deployment {
            json,
            ready_after: DEFAULT_READY_AFTER,
            never_ready: false,
        };
        store.deployments.insert(key(namespace, name), deployment);
        store.reconcile();
    }

    fn with_deployment(&self, namespace: &str, name: &str, change: impl FnOnce(&mut Deployment)) {
        let mut store = self.store();
        let deployment = store.deployments.get_mut(&key(namespace, name));
        change(deployment.unwrap_or_else(|| panic!("no deployment {namespace}/{name}")));
        store.reconcile();
    }

    /// Adds labels and annotations to the deployment's own metadata (not its selector or pod
    /// template), as a GitOps controller marks what it applies; a new resource version.
    pub fn mark_deployment(
        &self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) {
        let mut store = self.store();
        let mut revision = store.revision;
        let deployment = store.deployments.get_mut(&key(namespace, name));
        let deployment = deployment.unwrap_or_else(|| panic!("no deployment {namespace}/{name}"));
        let metadata = &mut deployment.json["metadata"];
        for (field, pairs) in [("labels", labels), ("annotations", annotations)] {
            for (k, v) in pairs {
                metadata[field][*k] = json!(v);
            }
        }
        touch(&mut deployment.json, &mut revision);
        store.revision = revision;
    }

    /// How long the deployment's new pods take to become Ready (default 200 ms); also applies
    /// to its pods that are not Ready yet.
    pub fn set_ready_after(&self, namespace: &str, deployment: &str, delay: Duration) {
        self.with_deployment(namespace, deployment, |d| d.ready_after = delay);
    }

    /// Whether the deployment's new pods never become Ready.
    pub fn set_never_ready(&self, namespace: &str, deployment: &str, never: bool) {
        self.with_deployment(namespace, deployment, |d| d.never_ready = never);
    }

    /// A standalone pod (not owned by a deployment) with the given readiness, restart count and
    /// optional waiting reason.
    pub fn add_pod(
        &self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        ready: bool,
        restarts: i32,
        waiting_reason: Option<&str>,
    ) {
        let mut store = self.store();
        assert!(
            !store.pods.contains_key(&key(namespace, name)),
            "pod {namespace}/{name} exists"
        );
        let metadata = store.metadata(namespace, name, labels_json(labels));
        let spec = json!({"containers": [{"name": "app", "image": "app:1"}], "nodeName": "fake-node"});
        let status = pod_status(&spec, ready, restarts, waiting_reason, Utc::now());
        let json =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status});
        store.seq += 1;
        let pod = Pod {
            json,
            owner: None,
            template: Value::Null,
            born: Instant::now(),
            seq: store.seq,
            pending: false,
        };
        store.pods.insert(key(namespace, name), pod);
        store.reconcile();
    }

    /// Changes an existing pod's status (e.g. to make a deployment's pod crash-looping or not
    /// ready since a given time). The controller no longer changes this pod's readiness.
    pub fn set_pod_status(
        &self,
        namespace: &str,
        name: &str,
        ready: bool,
        restarts: i32,
        waiting_reason: Option<&str>,
        ready_changed_at: DateTime<Utc>,
    ) {
        let mut store = self.store();
        let Store { pods, revision, .. } = &mut *store;
        let pod = pods
            .get_mut(&key(namespace, name))
            .unwrap_or_else(|| panic!("no pod {namespace}/{name}"));
        pod.pending = false;
        pod.json["status"] = pod_status(
            &pod.json["spec"],
            ready,
            restarts,
            waiting_reason,
            ready_changed_at,
        );
        touch(&mut pod.json, revision);
        store.reconcile();
    }

    /// A PodDisruptionBudget selecting pods by `labels`, with `minAvailable` or `maxUnavailable`.
    pub fn add_pdb(
        &self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        min_available: Option<i32>,
        max_unavailable: Option<i32>,
    ) {
        let mut store = self.store();
        let mut metadata = store.metadata(namespace, name, json!({}));
        metadata["generation"] = json!(1);
        let mut spec = json!({"selector": {"matchLabels": labels_json(labels)}});
        if let Some(min) = min_available {
            spec["minAvailable"] = json!(min);
        }
        if let Some(max) = max_unavailable {
            spec["maxUnavailable"] = json!(max);
        }
        let json = json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": metadata, "spec": spec, "status": {},
        });
        store.pdbs.insert(key(namespace, name), json);
        store.reconcile();
    }

    /// A HorizontalPodAutoscaler for the deployment (CPU target 80 %); the fake only enforces
    /// `minReplicas`.
    pub fn add_hpa(&self, namespace: &str, name: &str, deployment: &str, min: i32, max: i32) {
        let mut store = self.store();
        let mut metadata = store.metadata(namespace, name, json!({}));
        metadata["generation"] = json!(1);
        let target = json!({"type": "Utilization", "averageUtilization": 80});
        let metric = json!({"type": "Resource", "resource": {"name": "cpu", "target": target}});
        let json = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata,
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
                "minReplicas": min, "maxReplicas": max, "metrics": [metric],
            },
            "status": {},
        });
        store.hpas.insert(key(namespace, name), json);
        store.reconcile();
    }

    /// A new template for the deployment: its container's image and environment (a rollout:
    /// the controller makes the next revision's replica set and replaces the pods).
    pub fn set_template(&self, namespace: &str, name: &str, image: &str, env: &[(&str, &str)]) {
        self.with_deployment(namespace, name, |d| {
            let env: Vec<Value> = env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
            let container = &mut d.json["spec"]["template"]["spec"]["containers"][0];
            container["image"] = json!(image);
            container["env"] = json!(env);
            let generation = d.json["metadata"]["generation"].as_i64().unwrap_or(0);
            d.json["metadata"]["generation"] = json!(generation + 1);
        });
    }

    /// The deployment's replica sets, by revision (oldest first).
    pub fn replica_sets_of(&self, namespace: &str, deployment: &str) -> Vec<Value> {
        let store = self.store();
        let uid = &store.deployments[&key(namespace, deployment)].json["metadata"]["uid"];
        let mut sets: Vec<Value> = store
            .replica_sets
            .values()
            .filter(|s| &s["metadata"]["ownerReferences"][0]["uid"] == uid)
            .cloned()
            .collect();
        sets.sort_by_key(|s| {
            s["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                .as_str()
                .and_then(|r| r.parse::<u64>().ok())
        });
        sets
    }

    /// Sets when a replica set was created (a rollout some time ago).
    pub fn set_replica_set_created(&self, namespace: &str, name: &str, at: DateTime<Utc>) {
        let mut store = self.store();
        let Store {
            replica_sets,
            revision,
            ..
        } = &mut *store;
        let set = replica_sets
            .get_mut(&key(namespace, name))
            .unwrap_or_else(|| panic!("no replica set {namespace}/{name}"));
        set["metadata"]["creationTimestamp"] = json!(super::metadata::timestamp(at));
        touch(set, revision);
    }

    /// An event about an object, as the kubelet or a controller records it.
    #[allow(clippy::too_many_arguments)]
    pub fn add_event(
        &self,
        namespace: &str,
        (kind, name): (&str, &str),
        event_type: &str,
        reason: &str,
        message: &str,
        count: i32,
        last_at: DateTime<Utc>,
    ) {
        let mut store = self.store();
        let event_name = format!("{name}.{}", super::metadata::random_suffix());
        let mut metadata = store.metadata(namespace, &event_name, json!({}));
        metadata["creationTimestamp"] = json!(super::metadata::timestamp(last_at));
        let uid = match kind {
            "Pod" => store
                .pods
                .get(&key(namespace, name))
                .map(|p| p.json["metadata"]["uid"].clone()),
            _ => None,
        };
        let at = super::metadata::timestamp(last_at);
        store.events.push(json!({
            "apiVersion": "v1", "kind": "Event", "metadata": metadata,
            "involvedObject": {"kind": kind, "name": name, "namespace": namespace, "uid": uid},
            "reason": reason, "message": message, "type": event_type, "count": count,
            "firstTimestamp": at, "lastTimestamp": at, "source": {"component": "kubelet"},
        }));
    }

    /// What a pod's container wrote: now, and in its previous (crashed) instance.
    pub fn set_logs(&self, namespace: &str, pod: &str, container: &str, current: &[&str], previous: &[&str]) {
        let lines = |all: &[&str]| all.iter().map(|l| l.to_string()).collect();
        self.store().logs.insert(
            (namespace.to_owned(), pod.to_owned(), container.to_owned()),
            super::logs::ContainerLogs {
                current: lines(current),
                previous: lines(previous),
            },
        );
    }

    /// Answers 403 to every request for `resource` (`events`, `pods/log`, `replicasets`, ...).
    pub fn forbid(&self, resource: &str) {
        self.store().forbidden.insert(resource.to_owned());
    }

    /// While `hang`, every request waits without an answer (an API server that hangs).
    pub fn hang(&self, hang: bool) {
        self.shared.hang.store(hang, std::sync::atomic::Ordering::SeqCst);
    }

    /// The namespace's pods, sorted by name.
    pub fn pods(&self, namespace: &str) -> Vec<Value> {
        let store = self.store();
        store
            .pods
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, pod)| pod.json.clone())
            .collect()
    }

    /// The deployment as the API serves it.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Value> {
        self.store()
            .deployments
            .get(&key(namespace, name))
            .map(|d| d.json.clone())
    }

    /// The replica set as the API serves it.
    pub fn replica_set(&self, namespace: &str, name: &str) -> Option<Value> {
        self.store().replica_sets.get(&key(namespace, name)).cloned()
    }

    /// The HorizontalPodAutoscaler as the API serves it.
    pub fn hpa(&self, namespace: &str, name: &str) -> Option<Value> {
        self.store().hpas.get(&key(namespace, name)).cloned()
    }

    /// Waits (polling every 20 ms, up to `timeout`) until exactly `n` of the deployment's pods
    /// are Ready and returns those, sorted by name; panics with the pods otherwise.
    pub async fn wait_ready_pods(
        &self,
        namespace: &str,
        deployment: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let ready: Vec<Value> = {
                let store = self.store();
                let owned = store.owned_pods(&key(namespace, deployment));
                let mut ready: Vec<Value> = owned
                    .iter()
                    .map(|k| store.pods[k].json.clone())
                    .filter(pod_ready)
                    .collect();
                ready.sort_by(|a, b| {
                    a["metadata"]["name"]
                        .as_str()
                        .cmp(&b["metadata"]["name"].as_str())
                });
                ready
            };
            if ready.len() == n {
                return ready;
            }
            if Instant::now() >= deadline {
                panic!(
                    "fake kube: expected {n} Ready pods of deployment {namespace}/{deployment} \
                     within {timeout:?}, \
                     got {}; the namespace's pods:\n{}",
                    ready.len(),
                    self.describe_pods(namespace)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One line per pod of the namespace, for panic messages.
    fn describe_pods(&self, namespace: &str) -> String {
        let pods = self.pods(namespace);
        if pods.is_empty() {
            return "  (no pods)".to_owned();
        }
        pods.iter()
            .map(|pod| {
                let m = &pod["metadata"];
                let statuses = &pod["status"]["containerStatuses"];
                format!(
                    "  {} uid={} ready={} owner={} containers={}",
                    m["name"],
                    m["uid"],
                    pod_ready(pod),
                    m["ownerReferences"][0]["name"],
                    statuses
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
