//! Pod logs (`pods/{name}/log`): plain text, with `container`, `previous` and `tailLines` as
//! the kubelet serves them through the API server.

use serde_json::Value;

use super::{
    key,
    reply::{bad_request, not_found, ok, Answer},
    request::Call,
    Store,
};

/// What a container wrote: its current instance, and the one before (if it crashed).
#[derive(Clone, Default)]
pub(super) struct ContainerLogs {
    pub(super) current: Vec<String>,
    pub(super) previous: Vec<String>,
}

impl Store {
    pub(super) fn pod_log(&self, ns: &str, name: &str, call: &Call) -> Answer {
        let pod = self
            .pods
            .get(&key(ns, name))
            .ok_or_else(|| not_found("pods", "", name))?;
        let containers: Vec<&str> = pod.json["spec"]["containers"]
            .as_array()
            .map(|all| all.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        let container = match (call.param("container"), containers.as_slice()) {
            ("", [only]) => *only,
            ("", _) => {
                return Err(bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                )))
            }
            (named, _) if containers.contains(&named) => named,
            (named, _) => {
                return Err(bad_request(format!(
                    "container {named} is not valid for pod {name}"
                )))
            }
        };
        let logs = self
            .logs
            .get(&(ns.to_owned(), name.to_owned(), container.to_owned()))
            .cloned()
            .unwrap_or_default();
        let lines = if matches!(call.param("previous"), "true" | "1") {
            if !crashed_before(&pod.json, container) {
                return Err(bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{name}\" not found"
                )));
            }
            logs.previous
        } else {
            logs.current
        };
        let tail = call.param("tailLines").parse::<usize>().unwrap_or(lines.len());
        let text: String = lines[lines.len().saturating_sub(tail)..]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        ok(200, Value::String(text))
    }
}

/// Whether the container has a terminated instance before the current one.
fn crashed_before(pod: &Value, container: &str) -> bool {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["name"] == container && !c["lastState"]["terminated"].is_null())
}
