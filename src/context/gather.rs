//! Gathering one incident's context through the cluster's API, step by step, under one
//! deadline: what finished by then is kept, the step in progress and those after it are one
//! `timeout` error. Nothing is retried: a failed read is an error in the context, and the
//! steps that do not need it go on.

use std::{collections::HashSet, sync::Mutex, time::Duration};

use chrono::Utc;
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet, StatefulSet},
    core::v1::Pod,
};

use super::objects::{self, badness, has_previous, pod_state};
use crate::{
    domain::{ClusterContext, ContextError, ContextErrorKind, Logs, Workload},
    plan::{ContextPlan, ContextTarget},
    remediation::{controller, selector_query, Kube, KubeError},
};

/// Most pods described (the named one, then the worst).
const MAX_PODS: usize = 10;

/// What the owner chain led to.
#[derive(Default)]
struct Found {
    pod: Option<Pod>,
    replica_set: Option<ReplicaSet>,
    deployment: Option<Deployment>,
    stateful_set: Option<StatefulSet>,
}

/// The context being gathered, and the step under way.
struct Draft<'a> {
    kube: &'a Kube,
    plan: &'a ContextPlan,
    namespace: String,
    context: ClusterContext,
    step: &'static str,
}

/// Everything that can be read about `target` within the plan's deadline.
pub(super) async fn gather(kube: &Kube, plan: &ContextPlan, target: &ContextTarget) -> ClusterContext {
    let mut draft = Draft {
        kube,
        plan,
        namespace: target.namespace.clone(),
        context: ClusterContext::default(),
        step: "the owner chain",
    };
    if tokio::time::timeout(plan.deadline, draft.read(target))
        .await
        .is_err()
    {
        draft.timed_out();
    }
    let mut context = draft.context;
    context.gathered_at = Utc::now();
    context.complete = context.errors.is_empty();
    context
}

impl Draft<'_> {
    /// The steps in order; each keeps what it read in the context as it goes.
    async fn read(&mut self, target: &ContextTarget) {
        let found = self.chain(target).await;
        self.step = "the rollout";
        let sets = self.rollout(&found).await;
        self.step = "the pods";
        let pods = self.pods(&found, &sets).await;
        self.step = "the events";
        self.events(&found, &pods).await;
        self.step = "the logs";
        self.logs(&pods).await;
    }

    /// What the deadline cut short.
    fn timed_out(&mut self) {
        let deadline = humantime(self.plan.deadline);
        self.context.errors.push(ContextError {
            kind: ContextErrorKind::Timeout,
            what: format!("{} and what follows", self.step),
            message: format!("the cluster's API did not answer within the {deadline} deadline"),
        });
    }

    /// The object named, and its owners up to the workload.
    async fn chain(&mut self, target: &ContextTarget) -> Found {
        let mut found = Found::default();
        if let Some(pod) = &target.pod {
            match self.kube.pod(&self.namespace, pod).await {
                Ok(Some(read)) => found.pod = Some(read),
                Ok(None) => self.not_found("pods", pod),
                Err(e) => {
                    let error = self.error(&e, "get", "pods", pod);
                    self.context.errors.push(error);
                }
            }
            self.owners(&mut found).await;
        } else if let Some(name) = &target.deployment {
            found.deployment = self.get(
                self.kube.deployment(&self.namespace, name).await,
                "get",
                "deployments",
                name,
            );
        } else if let Some(name) = &target.statefulset {
            let set = self.kube.stateful_set(&self.namespace, name).await;
            found.stateful_set = self.get(set, "get", "statefulsets", name);
        }
        self.context.workload = workload(&self.namespace, &found);
        found
    }

    /// The pod's ReplicaSet and its Deployment, or its StatefulSet.
    async fn owners(&mut self, found: &mut Found) {
        let Some(owner) = found.pod.as_ref().and_then(|p| controller(&p.metadata)).cloned() else {
            return;
        };
        match owner.kind.as_str() {
            "ReplicaSet" => {
                let set = self.kube.replica_set(&self.namespace, &owner.name).await;
                found.replica_set = self.get(set, "get", "replicasets", &owner.name);
                let deployment = found
                    .replica_set
                    .as_ref()
                    .and_then(|s| controller(&s.metadata))
                    .cloned();
                if let Some(owner) = deployment.filter(|o| o.kind == "Deployment") {
                    let deployment = self.kube.deployment(&self.namespace, &owner.name).await;
                    found.deployment = self.get(deployment, "get", "deployments", &owner.name);
                }
            }
            "StatefulSet" => {
                let set = self.kube.stateful_set(&self.namespace, &owner.name).await;
                found.stateful_set = self.get(set, "get", "statefulsets", &owner.name);
            }
            _ => {}
        }
    }

    /// The rollout; for a Deployment, the ReplicaSets it controls (read once, for the pods too).
    async fn rollout(&mut self, found: &Found) -> Vec<ReplicaSet> {
        if let Some(set) = &found.stateful_set {
            self.context.rollout = Some(objects::stateful_set_rollout(set));
        }
        let Some(deployment) = &found.deployment else {
            return Vec::new();
        };
        let selector = deployment
            .spec
            .as_ref()
            .map(|s| selector_query(&s.selector))
            .unwrap_or_default();
        let listed = self.kube.replica_sets(&self.namespace, &selector).await;
        let sets: Vec<ReplicaSet> = self
            .get(listed, "list", "replicasets", "")
            .unwrap_or_default()
            .into_iter()
            .filter(|set| {
                controller(&set.metadata).is_some_and(|c| Some(&c.uid) == deployment.metadata.uid.as_ref())
            })
            .collect();
        let redactor = &self.plan.redactor;
        self.context.rollout = Some(objects::deployment_rollout(deployment, &sets, redactor));
        sets
    }

    /// The named pod and the workload's unhealthy pods, worst first.
    async fn pods(&mut self, found: &Found, sets: &[ReplicaSet]) -> Vec<Pod> {
        let (selector, owners) = match (&found.deployment, &found.stateful_set) {
            (Some(d), _) => (
                d.spec.as_ref().map(|s| selector_query(&s.selector)),
                sets.iter()
                    .filter_map(|s| s.metadata.uid.clone())
                    .collect::<HashSet<_>>(),
            ),
            (None, Some(s)) => (
                s.spec.as_ref().map(|s| selector_query(&s.selector)),
                s.metadata.uid.iter().cloned().collect(),
            ),
            (None, None) => (None, HashSet::new()),
        };
        let mut pods: Vec<Pod> = Vec::new();
        if let Some(selector) = selector {
            let listed = self.kube.pods(&self.namespace, &selector).await;
            pods = self.get(listed, "list", "pods", "").unwrap_or_default();
            pods.retain(|p| controller(&p.metadata).is_some_and(|c| owners.contains(&c.uid)));
        }
        let kept = keep(found.pod.as_ref(), pods, &self.plan.redactor);
        self.context.pods = kept.iter().map(|p| pod_state(p, &self.plan.redactor)).collect();
        kept
    }

    /// `Warning` events of the workload, its current ReplicaSet and the pods, within the
    /// window, newest first.
    async fn events(&mut self, found: &Found, pods: &[Pod]) {
        let mut objects: Vec<(&str, String)> = Vec::new();
        if let Some(w) = &self.context.workload {
            if w.kind != "Pod" {
                objects.push((kind_of(&w.kind), w.name.clone()));
            }
        }
        let current = found.replica_set.as_ref().and_then(|s| s.metadata.name.clone());
        objects.extend(current.map(|name| ("ReplicaSet", name)));
        objects.extend(
            pods.iter()
                .filter_map(|p| p.metadata.name.clone())
                .map(|n| ("Pod", n)),
        );
        let (kube, namespace) = (self.kube, &self.namespace);
        let reads = objects.iter().map(|(kind, name)| {
            let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
            async move { kube.events(namespace, &selector).await }
        });
        let results = futures_util::future::join_all(reads).await;
        let since = Utc::now() - chrono::Duration::from_std(self.plan.events_window).unwrap_or_default();
        let mut events = Vec::new();
        for (result, (_, name)) in results.into_iter().zip(&objects) {
            let listed = self.get(result, "list", "events", name).unwrap_or_default();
            events.extend(
                listed
                    .iter()
                    .filter_map(|e| objects::warning(e, &self.plan.redactor)),
            );
        }
        events.retain(|e| e.last_at >= since);
        events.sort_by_key(|e| std::cmp::Reverse(e.last_at));
        events.truncate(self.plan.events_max);
        self.context.events = events;
    }

    /// The last lines of the worst pod's failing container; its crashed instance's when it
    /// has one and `logs.previous` says so.
    async fn logs(&mut self, pods: &[Pod]) {
        let Some(pod) = pods.first().filter(|_| self.plan.log_lines > 0) else {
            return;
        };
        let Some(container) = objects::failing(pod) else {
            return;
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let previous = self.plan.previous && has_previous(container);
        let lines = i64::from(self.plan.log_lines);
        let read = self
            .kube
            .pod_log(&self.namespace, &name, &container.name, previous, lines)
            .await;
        let Some(text) = self.get(read, "get", "pods/log", &name) else {
            return;
        };
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(self.plan.log_lines as usize)..];
        let redactor = &self.plan.redactor;
        self.context.logs = Some(Logs {
            pod: name,
            container: container.name.clone(),
            previous,
            lines: tail
                .iter()
                .map(|l| redactor.line(l, self.plan.max_line_bytes))
                .collect(),
        });
    }

    /// The value, or None with the failure recorded as an error of the context.
    fn get<T>(&mut self, result: Result<T, KubeError>, verb: &str, resource: &str, name: &str) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                let error = self.error(&e, verb, resource, name);
                self.context.errors.push(error);
                None
            }
        }
    }

    /// A failed read as the context says it; a 403 names the permission (and is logged once).
    fn error(&self, e: &KubeError, verb: &str, resource: &str, name: &str) -> ContextError {
        let what = match name {
            "" => format!("{verb} {resource} in {}", self.namespace),
            name => format!("{verb} {resource} {name} in {}", self.namespace),
        };
        let kind = match e.code {
            403 => ContextErrorKind::Forbidden,
            404 => ContextErrorKind::NotFound,
            0 if e.message.contains("timed out") || e.message.contains("elapsed") => {
                ContextErrorKind::Timeout
            }
            _ => ContextErrorKind::Unavailable,
        };
        let message = if kind == ContextErrorKind::Forbidden {
            let permission = format!("{verb} {resource}");
            log_forbidden_once(&permission, &self.namespace, &e.message);
            format!(
                "medic's service account lacks {permission:?} in {}: {}",
                self.namespace, e.message
            )
        } else {
            e.message.clone()
        };
        ContextError { kind, what, message }
    }

    fn not_found(&mut self, resource: &str, name: &str) {
        self.context.errors.push(ContextError {
            kind: ContextErrorKind::NotFound,
            what: format!("get {resource} {name} in {}", self.namespace),
            message: format!("{resource} {name:?} not found"),
        });
    }
}

/// The named pod first, then the workload's other pods that are unhealthy, worst first.
fn keep(named: Option<&Pod>, pods: Vec<Pod>, redactor: &crate::plan::Redactor) -> Vec<Pod> {
    let named_uid = named.and_then(|p| p.metadata.uid.clone());
    let mut others: Vec<(Pod, (bool, bool, i32))> = pods
        .into_iter()
        .filter(|p| p.metadata.uid != named_uid || named_uid.is_none())
        .map(|p| {
            let bad = badness(&pod_state(&p, redactor));
            (p, bad)
        })
        .filter(|(_, bad)| bad.0)
        .collect();
    others.sort_by_key(|(_, bad)| std::cmp::Reverse(*bad));
    named
        .cloned()
        .into_iter()
        .chain(others.into_iter().map(|(p, _)| p))
        .take(MAX_PODS)
        .collect()
}

/// The workload the chain reached, with the chain from the pod up.
fn workload(namespace: &str, found: &Found) -> Option<Workload> {
    let name =
        |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| m.name.clone().unwrap_or_default();
    let mut chain = Vec::new();
    chain.extend(found.pod.as_ref().map(|p| ("Pod", name(&p.metadata))));
    chain.extend(
        found
            .replica_set
            .as_ref()
            .map(|s| ("ReplicaSet", name(&s.metadata))),
    );
    chain.extend(
        found
            .deployment
            .as_ref()
            .map(|d| ("Deployment", name(&d.metadata))),
    );
    chain.extend(
        found
            .stateful_set
            .as_ref()
            .map(|s| ("StatefulSet", name(&s.metadata))),
    );
    let (kind, top) = chain.last().cloned()?;
    Some(Workload {
        kind: kind.to_owned(),
        name: top,
        namespace: namespace.to_owned(),
        chain: chain.iter().map(|(k, n)| format!("{k}/{n}")).collect(),
    })
}

/// The kind as events name it.
fn kind_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "Deployment",
        "StatefulSet" => "StatefulSet",
        "ReplicaSet" => "ReplicaSet",
        _ => "Pod",
    }
}

/// `3s`, `1.5s`.
fn humantime(d: Duration) -> String {
    crate::domain::HumanDuration(d).to_string()
}

/// Logs a missing permission once per process (per verb and resource), at warn.
fn log_forbidden_once(permission: &str, namespace: &str, message: &str) {
    static LOGGED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let first = LOGGED
        .lock()
        .map(|mut seen| {
            seen.get_or_insert_with(HashSet::new)
                .insert(permission.to_owned())
        })
        .unwrap_or(false);
    if first {
        tracing::warn!(
            permission,
            namespace,
            error = message,
            "cluster context: medic may not read this; grant it (the chart does with context.enabled)"
        );
    }
}
