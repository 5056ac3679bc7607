//! The Kubernetes API as the handlers use it: typed calls through kube, each counted by verb
//! and status code, with the client's automatic retries off (a PodDisruptionBudget's 429 is an
//! answer, not a reason to wait minutes) and eviction sent as Kubernetes reads it.

use std::{path::Path, time::Duration};

use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet, StatefulSet},
    autoscaling::{v1::Scale, v2::HorizontalPodAutoscaler},
    core::v1::{Event, Pod},
    policy::v1::PodDisruptionBudget,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::{
    api::{ListParams, LogParams, Patch, PatchParams},
    core::Status,
    Api, Client,
};
use prometheus::IntCounterVec;
use serde_json::{json, Value};

/// A client for the cluster, or why there is none.
#[derive(Clone)]
pub struct Kube {
    client: Client,
    /// `medic_kubernetes_requests_total{verb, code}`.
    requests: IntCounterVec,
}

/// A failed API call: the status code (0 when none came back) and what Kubernetes said.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Kubernetes API: {message} (HTTP {code}, {reason})")]
pub struct KubeError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// Causes listed in the `Status`, e.g. `DisruptionBudget`.
    pub causes: Vec<String>,
}

impl From<kube::Error> for KubeError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => KubeError {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
                causes: status
                    .details
                    .as_ref()
                    .map(|d| {
                        d.causes
                            .iter()
                            .map(|c| format!("{}: {}", c.reason, c.message))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            other => KubeError {
                code: 0,
                reason: "Unreachable".into(),
                message: other.to_string(),
                causes: Vec::new(),
            },
        }
    }
}

impl Kube {
    /// In-cluster configuration, or the `kubeconfig` file if given, or `KUBECONFIG`; each API
    /// call waits at most `request_timeout`.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        request_timeout: Duration,
        requests: IntCounterVec,
    ) -> anyhow::Result<Kube> {
        let mut config = match kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
            }
            None => kube::Config::infer().await?,
        };
        config.default_retry = false;
        config.read_timeout = Some(request_timeout);
        config.write_timeout = Some(request_timeout);
        config.connect_timeout = Some(request_timeout.min(Duration::from_secs(5)));
        Ok(Kube {
            client: Client::try_from(config)?,
            requests,
        })
    }

    fn count<T>(&self, verb: &str, result: &Result<T, kube::Error>) {
        let code = match result {
            Ok(_) => "200".to_owned(),
            Err(kube::Error::Api(status)) => status.code.to_string(),
            Err(_) => "error".to_owned(),
        };
        self.requests.with_label_values(&[verb, &code]).inc();
    }

    async fn call<T>(
        &self,
        verb: &str,
        call: impl std::future::Future<Output = kube::Result<T>>,
    ) -> Result<T, KubeError> {
        let result = call.await;
        self.count(verb, &result);
        result.map_err(KubeError::from)
    }

    pub async fn deployment(&self, namespace: &str, name: &str) -> Result<Deployment, KubeError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        self.call("get", api.get(name)).await
    }

    pub async fn scale(&self, namespace: &str, name: &str) -> Result<Scale, KubeError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        self.call("get", api.get_scale(name)).await
    }

    /// Sets replicas through the scale subresource, only if `resourceVersion` is unchanged.
    pub async fn set_replicas(
        &self,
        namespace: &str,
        name: &str,
        replicas: i32,
        resource_version: Option<String>,
    ) -> Result<Scale, KubeError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let patch =
            json!({"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": replicas}});
        self.call(
            "patch",
            api.patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await
    }

    /// A merge patch of a Deployment (rollout restart, env vars).
    pub async fn patch_deployment(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Deployment, KubeError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        self.call(
            "patch",
            api.patch(name, &PatchParams::default(), &Patch::Strategic(patch)),
        )
        .await
    }

    /// The HorizontalPodAutoscaler that targets this Deployment, if any.
    pub async fn hpa_for(
        &self,
        namespace: &str,
        deployment: &str,
    ) -> Result<Option<HorizontalPodAutoscaler>, KubeError> {
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), namespace);
        let list = self.call("list", api.list(&ListParams::default())).await?;
        Ok(list.items.into_iter().find(|hpa| {
            hpa.spec.as_ref().is_some_and(|spec| {
                spec.scale_target_ref.kind == "Deployment" && spec.scale_target_ref.name == deployment
            })
        }))
    }

    pub async fn set_hpa_min(&self, namespace: &str, name: &str, min: i32) -> Result<(), KubeError> {
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), namespace);
        let patch = json!({"spec": {"minReplicas": min}});
        self.call(
            "patch",
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await
        .map(|_| ())
    }

    pub async fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<Pod>, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = ListParams::default().labels(selector);
        Ok(self.call("list", api.list(&params)).await?.items)
    }

    pub async fn replica_set(&self, namespace: &str, name: &str) -> Result<ReplicaSet, KubeError> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), namespace);
        self.call("get", api.get(name)).await
    }

    pub async fn replica_sets(&self, namespace: &str, selector: &str) -> Result<Vec<ReplicaSet>, KubeError> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), namespace);
        let params = ListParams::default().labels(selector);
        Ok(self.call("list", api.list(&params)).await?.items)
    }

    pub async fn stateful_set(&self, namespace: &str, name: &str) -> Result<StatefulSet, KubeError> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace);
        self.call("get", api.get(name)).await
    }

    /// The namespace's PodDisruptionBudgets, for which pods one covers.
    pub async fn pod_disruption_budgets(
        &self,
        namespace: &str,
    ) -> Result<Vec<PodDisruptionBudget>, KubeError> {
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), namespace);
        Ok(self.call("list", api.list(&ListParams::default())).await?.items)
    }

    pub async fn pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        self.call("get", api.get_opt(name)).await
    }

    /// The namespace's events that `field_selector` selects (`involvedObject.name=web,...`).
    pub async fn events(&self, namespace: &str, field_selector: &str) -> Result<Vec<Event>, KubeError> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let params = ListParams::default().fields(field_selector);
        Ok(self.call("list", api.list(&params)).await?.items)
    }

    /// The last `tail_lines` lines a pod's container wrote; `previous` reads its crashed
    /// instance, as `kubectl logs --previous`.
    pub async fn pod_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
        tail_lines: i64,
    ) -> Result<String, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = LogParams {
            container: Some(container.to_owned()),
            previous,
            tail_lines: Some(tail_lines),
            ..LogParams::default()
        };
        self.call("get", api.logs(pod, &params)).await
    }

    /// Evicts a pod through the Eviction API, so PodDisruptionBudgets are honoured, with a UID
    /// precondition. Sent by hand: kube-core 5.0 writes the options as `delete_options`, a key
    /// Kubernetes ignores, which would drop the precondition.
    pub async fn evict(&self, namespace: &str, name: &str, uid: &str) -> Result<(), KubeError> {
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
            "deleteOptions": {"preconditions": {"uid": uid}},
        });
        let request = http::Request::post(format!("/api/v1/namespaces/{namespace}/pods/{name}/eviction"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default());
        let request = request.map_err(|e| KubeError {
            code: 0,
            reason: "BadRequest".into(),
            message: e.to_string(),
            causes: Vec::new(),
        })?;
        self.call("create", self.client.request::<Status>(request))
            .await
            .map(|_| ())
    }
}

/// The ownerReference marked as the object's controller.
pub fn controller(metadata: &ObjectMeta) -> Option<&OwnerReference> {
    metadata
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true))
}

/// A selector as a `labelSelector` query. Only a narrowing: control decides which pods count.
pub fn selector_query(selector: &LabelSelector) -> String {
    let labels = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(key, value)| format!("{key}={value}"));
    let expressions = selector.match_expressions.iter().flatten().map(|e| {
        let values = e.values.as_deref().unwrap_or_default().join(",");
        match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "DoesNotExist" => format!("!{}", e.key),
            _ => e.key.clone(),
        }
    });
    labels.chain(expressions).collect::<Vec<_>>().join(",")
}
