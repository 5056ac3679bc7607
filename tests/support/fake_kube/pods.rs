//! Pods: their status as the fake shows it, and the endpoints, including eviction.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{
    key,
    metadata::{timestamp, touch},
    reply::{bad_request, list, not_found, ok, Answer},
    request::{check_preconditions, Call},
    Store,
};

/// Whether the pod has the Ready condition.
pub(super) fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|all| all.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// A pod's status: Running, with the Ready condition and one status per container.
pub(super) fn pod_status(
    spec: &Value,
    ready: bool,
    restarts: i32,
    waiting: Option<&str>,
    since: DateTime<Utc>,
) -> Value {
    let since = timestamp(since);
    let state = match waiting {
        Some(reason) => json!({"waiting": {"reason": reason}}),
        None => json!({"running": {"startedAt": since}}),
    };
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let mut status = json!({
                "name": c["name"], "image": c["image"], "ready": ready, "started": waiting.is_none(),
                "restartCount": restarts, "state": state,
            });
            if waiting.is_some() && restarts > 0 {
                status["lastState"] = json!({"terminated": {
                    "exitCode": 1, "reason": "Error", "startedAt": since, "finishedAt": since}});
            }
            status
        })
        .collect();
    let ready = if ready { "True" } else { "False" };
    json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": since}],
        "containerStatuses": statuses,
        "startTime": since,
    })
}

impl Store {
    pub(super) fn list_pods(&self, ns: &str, call: &Call) -> Answer {
        let items = Self::select(self.pods.iter().map(|(k, p)| (k, &p.json)), ns, call)?;
        list("v1", "PodList", self.revision, items)
    }

    pub(super) fn get_pod(&self, ns: &str, name: &str) -> Answer {
        let pod = self
            .pods
            .get(&key(ns, name))
            .ok_or_else(|| not_found("pods", "", name))?;
        ok(200, pod.json.clone())
    }

    pub(super) fn delete_pod(&mut self, ns: &str, name: &str, call: &Call) -> Answer {
        let pod = self
            .pods
            .get(&key(ns, name))
            .ok_or_else(|| not_found("pods", "", name))?;
        check_preconditions(&pod.json, call.preconditions(), name)?;
        let mut pod = self.pods.remove(&key(ns, name)).expect("found above").json;
        touch(&mut pod, &mut self.revision);
        ok(200, pod)
    }

    pub(super) fn evict(&mut self, ns: &str, name: &str, call: &Call) -> Answer {
        let eviction = call.object()?;
        if eviction["metadata"]["name"]
            .as_str()
            .is_some_and(|named| named != name)
        {
            return Err(bad_request("name in URL does not match name in Eviction object"));
        }
        let pod = self
            .pods
            .get(&key(ns, name))
            .ok_or_else(|| not_found("pods", "", name))?;
        check_preconditions(&pod.json, call.preconditions(), name)?;
        if pod_ready(&pod.json) {
            self.check_budgets(ns, &pod.json)?;
        }
        self.pods.remove(&key(ns, name));
        self.revision += 1;
        ok(
            201,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    }
}
