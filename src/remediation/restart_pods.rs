//! `restart_pods`: evict unhealthy pods one at a time through the Eviction API (so
//! PodDisruptionBudgets hold), each with a UID precondition, waiting for a replacement to be
//! Ready before the next, and stopping at the first that does not come up.
//!
//! Unhealthy: waiting in CrashLoopBackOff, restarted more than `max_restarts` times, or not
//! Ready for longer than `grace_period`. A pod named by the `pod` parameter is restarted
//! whatever its state: the alert named it.
//!
//! `min_healthy` (default 50%) stands in for the PodDisruptionBudget many Deployments lack,
//! and only there ([`crate::domain::FLOOR_RULE`]): a pod a budget covers (`budgets`) is governed by the budget
//! alone. For any other pod, before each eviction, the first too, the pod's workload must keep
//! at least that share (or count) of its desired pods Ready once the pod is gone (`floor` says
//! which workload and which pods count). Evicting a pod that is not Ready takes nothing away,
//! but such a pod is still left alone while its workload is below the floor, as a
//! PodDisruptionBudget does by default: a workload that is mostly down is seldom brought up by
//! restarts, and may be kept down by them.
//! Stopped by the floor before its first eviction, a run is `skipped_min_healthy`; after some,
//! it stops there and is a `failure` naming what it evicted, as when a replacement never comes
//! up (a PodDisruptionBudget's refusal reads the same way). A dry run plans by the same floor,
//! assuming each replacement comes up Ready, and says where it would stop. Deployments (through
//! their ReplicaSets), ReplicaSets of their own and StatefulSets have a floor, from
//! `spec.replicas`; a bare pod, or one of any other controller (DaemonSet, Job, …), has none.

mod budgets;
mod floor;
mod pods;

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

pub(crate) use self::pods::is_ready;
use self::{
    budgets::Budgets,
    floor::Floor,
    pods::{name, ready_condition},
};
use super::{kube::Kube, report::Report};
use crate::domain::{ActionParams, MinHealthy, RemediationResult, DEFAULT_MAX_PODS, DEFAULT_READY_TIMEOUT};

const POLL: Duration = Duration::from_millis(250);

pub async fn restart_pods(kube: &Kube, params: &ActionParams, dry_run: bool) -> Result<Report, String> {
    let namespace = params.required("namespace")?;
    let grace = params.duration("grace_period", Duration::from_secs(300))?;
    let max_restarts = params.integer("max_restarts", 5)?;
    let max_pods = usize::try_from(params.integer("max_pods", DEFAULT_MAX_PODS)?.max(1)).unwrap_or(1);
    let ready_timeout = params.duration("ready_timeout", DEFAULT_READY_TIMEOUT)?;
    let min_healthy = params.min_healthy()?;
    let candidates = match params.text("pod") {
        Some(name) => kube
            .pod(namespace, name)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect(),
        None => {
            let selector = params.required("selector")?;
            let pods = kube.pods(namespace, selector).await.map_err(|e| e.to_string())?;
            pods.into_iter()
                .filter(|pod| unhealthy(pod, grace, max_restarts))
                .collect::<Vec<_>>()
        }
    };
    let chosen: Vec<&Pod> = candidates.iter().take(max_pods).collect();
    if chosen.is_empty() {
        return Ok(Report::noop("no unhealthy pod to restart".into()));
    }
    let rule = FloorRule {
        min_healthy,
        budgets: Budgets::of(kube, namespace).await?,
    };
    if dry_run {
        return plan(kube, namespace, &chosen, &rule).await;
    }
    let mut restarted = Vec::new();
    for pod in chosen {
        let report = restart_one(kube, namespace, pod, &rule, ready_timeout, &restarted).await?;
        if let Some(report) = report {
            return Ok(report);
        }
        restarted.push(name(pod));
    }
    let detail = json!({
        "namespace": namespace, "restarted": restarted, "min_healthy": min_healthy.to_string(),
    });
    Ok(Report::success(
        format!(
            "evicted {} and each replacement became Ready",
            restarted.join(", ")
        ),
        detail,
    ))
}

/// What holds a run's evictions back besides the Eviction API: `min_healthy`, for the pods no
/// budget covers.
struct FloorRule {
    min_healthy: MinHealthy,
    budgets: Budgets,
}

impl FloorRule {
    /// The floor under evicting `pod`: None when a budget covers it, or no workload with a
    /// desired count owns it.
    async fn under(&self, kube: &Kube, namespace: &str, pod: &Pod) -> Result<Option<Floor>, String> {
        if let Some(budget) = self.budgets.covering(pod) {
            tracing::info!(
                namespace, pod = %name(pod), budget,
                "min_healthy: a PodDisruptionBudget covers the pod and governs it alone; no floor"
            );
            return Ok(None);
        }
        Floor::under(kube, namespace, pod, self.min_healthy).await
    }
}

/// The plan: the pods a run would evict, one at a time, and where `min_healthy` would stop it.
/// Each replacement is assumed to become Ready (a run whose replacement does not stops there
/// anyway), so a pod that was not Ready adds one to its workload's count for the next.
async fn plan(kube: &Kube, namespace: &str, chosen: &[&Pod], rule: &FloorRule) -> Result<Report, String> {
    let mut planned = Vec::new();
    let mut replaced: HashMap<String, i32> = HashMap::new();
    for pod in chosen {
        if let Some(mut floor) = rule.under(kube, namespace, pod).await? {
            floor.ready += replaced.get(&floor.uid).copied().unwrap_or(0);
            if let Some(reason) = floor.refusal() {
                let detail = json!({
                    "namespace": namespace, "pods": planned, "stops_at": name(pod), "floor": floor.detail(),
                });
                if planned.is_empty() {
                    return Ok(Report::new(RemediationResult::SkippedMinHealthy, reason, detail));
                }
                let summary = format!(
                    "would evict {}, one at a time, then stop: {reason}",
                    planned.join(", ")
                );
                return Ok(Report::dry_run(summary, detail));
            }
            if !floor.pod_ready {
                *replaced.entry(floor.uid).or_default() += 1;
            }
        }
        planned.push(name(pod));
    }
    let detail = json!({"namespace": namespace, "pods": planned});
    Ok(Report::dry_run(
        format!("would evict {}, one at a time", planned.join(", ")),
        detail,
    ))
}

/// Evicts one pod, if the floor allows, and waits for its replacement; a report when the run
/// must stop here.
async fn restart_one(
    kube: &Kube,
    namespace: &str,
    pod: &Pod,
    rule: &FloorRule,
    ready_timeout: Duration,
    done: &[String],
) -> Result<Option<Report>, String> {
    if let Some(report) = below_floor(kube, namespace, pod, rule, done).await? {
        return Ok(Some(report));
    }
    let pod_name = name(pod);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let selector = selector_of(pod);
    let before: HashSet<String> = match &selector {
        Some(selector) => kube
            .pods(namespace, selector)
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect(),
        None => HashSet::new(),
    };
    match kube.evict(namespace, &pod_name, &uid).await {
        Ok(()) => {}
        Err(e) if e.code == 429 => {
            let reason = format!(
                "the PodDisruptionBudget refused to evict {pod_name}: {}",
                e.causes.join("; ")
            );
            let detail = json!({"pod": pod_name, "restarted": done, "causes": e.causes});
            return Ok(Some(stopped(done, RemediationResult::SkippedPdb, reason, detail)));
        }
        Err(e) if e.code == 404 => return Ok(None),
        Err(e) => return Err(format!("evicting {pod_name}: {e}")),
    }
    let Some(selector) = selector else {
        return Ok(None);
    };
    if wait_replacement(kube, namespace, &selector, &before, ready_timeout).await? {
        return Ok(None);
    }
    let detail =
        json!({"pod": pod_name, "restarted": done, "ready_timeout_seconds": ready_timeout.as_secs()});
    Ok(Some(Report::new(
        RemediationResult::Failure,
        format!("evicted {pod_name} but no replacement became Ready within {ready_timeout:?}; stopped there"),
        detail,
    )))
}

/// The report that stops the run before `pod`, if evicting it would break the floor.
async fn below_floor(
    kube: &Kube,
    namespace: &str,
    pod: &Pod,
    rule: &FloorRule,
    done: &[String],
) -> Result<Option<Report>, String> {
    let Some(floor) = rule.under(kube, namespace, pod).await? else {
        return Ok(None);
    };
    Ok(floor.refusal().map(|reason| {
        let detail = json!({"pod": name(pod), "restarted": done, "floor": floor.detail()});
        stopped(done, RemediationResult::SkippedMinHealthy, reason, detail)
    }))
}

/// A run stopped before evicting a pod, for `reason`: skipped when it has evicted nothing;
/// after some evictions a failure that names them, as it acted (and counts for cooldowns and
/// budgets) but did not finish.
fn stopped(done: &[String], skip: RemediationResult, reason: String, detail: Value) -> Report {
    if done.is_empty() {
        return Report::new(skip, reason, detail);
    }
    let summary = format!("evicted {}, then stopped: {reason}", done.join(", "));
    Report::new(RemediationResult::Failure, summary, detail)
}

/// Polls until a pod that did not exist before the eviction is Ready.
async fn wait_replacement(
    kube: &Kube,
    namespace: &str,
    selector: &str,
    before: &HashSet<String>,
    timeout: Duration,
) -> Result<bool, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        let pods = kube.pods(namespace, selector).await.map_err(|e| e.to_string())?;
        let replaced = pods
            .iter()
            .any(|p| p.metadata.uid.as_ref().is_some_and(|uid| !before.contains(uid)) && is_ready(p));
        if replaced {
            return Ok(true);
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(false)
}

/// The pod's own labels as a selector: its replacement from the same template carries them.
fn selector_of(pod: &Pod) -> Option<String> {
    let labels = pod.metadata.labels.as_ref().filter(|l| !l.is_empty())?;
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Crash-looping, restarted too often, or not Ready for longer than the grace period.
pub fn unhealthy(pod: &Pod, grace: Duration, max_restarts: i64) -> bool {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let crash_looping = statuses.iter().any(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
            == Some("CrashLoopBackOff")
    });
    let restarts = statuses.iter().any(|c| i64::from(c.restart_count) > max_restarts);
    let not_ready_too_long = match ready_condition(pod) {
        Some((false, Some(since))) => (Utc::now() - since).to_std().is_ok_and(|d| d > grace),
        _ => false,
    };
    crash_looping || restarts || not_ready_too_long
}
