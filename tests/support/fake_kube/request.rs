//! Requests: what a handler sees of one (the [`Call`]), resource version and delete
//! precondition checks, and the entry point that authenticates, routes and records it.

use std::collections::HashMap;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{
    lock,
    reply::{bad_request, conflict, failure, ok, Answer, Reply, MODIFIED},
    selectors::parse_selector,
    Key, Request, Shared, Store, TOKEN,
};

/// One request, as the API handlers see it.
pub(super) struct Call {
    pub(super) method: String,
    path: String,
    query: String,
    params: HashMap<String, String>,
    pub(super) content_type: String,
    authorized: bool,
    body: Value,
}

impl Call {
    fn new(req: &HttpRequest, body: &[u8]) -> Call {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let content_type = header("content-type");
        let content_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        Call {
            method: req.method().as_str().to_owned(),
            path: req.path().to_owned(),
            query: req.query_string().to_owned(),
            params: web::Query::<HashMap<String, String>>::from_query(req.query_string())
                .map(|q| q.into_inner())
                .unwrap_or_default(),
            content_type,
            authorized: header("authorization") == format!("Bearer {TOKEN}"),
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
        }
    }

    pub(super) fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or_default()
    }

    /// The delete preconditions Kubernetes reads: a DELETE's `preconditions`, or an Eviction's
    /// `deleteOptions.preconditions` (a `delete_options` key is not a field of Eviction).
    pub(super) fn preconditions(&self) -> Option<&Value> {
        let options = if self.path.ends_with("/eviction") {
            &self.body["deleteOptions"]
        } else if self.method == "DELETE" {
            &self.body
        } else {
            return None;
        };
        Some(&options["preconditions"]).filter(|p| !p.is_null())
    }

    /// Whether the request asks for a dry run, in the query or in (Eviction) DeleteOptions.
    fn dry_run(&self) -> bool {
        let all = |v: &Value| v.as_array().is_some_and(|a| a.iter().any(|x| x == "All"));
        self.param("dryRun") == "All"
            || all(&self.body["dryRun"])
            || all(&self.body["deleteOptions"]["dryRun"])
    }

    /// The body, which must be a JSON object.
    pub(super) fn object(&self) -> Result<&Value, Reply> {
        if self.body.is_object() {
            Ok(&self.body)
        } else {
            Err(bad_request("the request body must be a JSON object"))
        }
    }
}

/// 409 if `body` names a resource version other than `current`'s.
pub(super) fn check_resource_version(
    current: &Value,
    body: &Value,
    resource: &str,
    group: &str,
    name: &str,
) -> Result<(), Reply> {
    match body["metadata"]["resourceVersion"].as_str() {
        Some(rv) if current["metadata"]["resourceVersion"] != rv => {
            Err(conflict(resource, group, name, MODIFIED))
        }
        _ => Ok(()),
    }
}

/// 409 unless `obj` satisfies the delete preconditions.
pub(super) fn check_preconditions(
    obj: &Value,
    preconditions: Option<&Value>,
    name: &str,
) -> Result<(), Reply> {
    let Some(preconditions) = preconditions else {
        return Ok(());
    };
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        let actual = obj["metadata"][field].as_str().unwrap_or_default();
        if let Some(wanted) = preconditions[field].as_str().filter(|wanted| *wanted != actual) {
            let why = format!(
                "Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}"
            );
            return Err(conflict("pods", "", name, &why));
        }
    }
    Ok(())
}

/// Answers one request and records it.
pub(super) async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let call = Call::new(&req, &body);
    while shared.hang.load(std::sync::atomic::Ordering::SeqCst) {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reply = if !call.authorized {
        failure(401, "Unauthorized", "Unauthorized".to_owned(), Value::Null)
    } else if call.dry_run() {
        let mut scratch = lock(&shared.store).clone();
        scratch.serve(&call)
    } else {
        lock(&shared.store).serve(&call)
    };
    lock(&shared.requests).push(Request {
        preconditions: call.preconditions().cloned(),
        method: call.method,
        path: call.path,
        query: call.query,
        status: reply.status,
        body: call.body,
        content_type: call.content_type,
    });
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply.body {
        // Logs are plain text.
        Value::String(text) => HttpResponse::build(status).content_type("text/plain").body(text),
        body => HttpResponse::build(status)
            .content_type("application/json")
            .body(body.to_string()),
    }
}

impl Store {
    /// Answers an authenticated request, then lets the controller react to writes.
    fn serve(&mut self, call: &Call) -> Reply {
        let reply = self.route(call).unwrap_or_else(|error| error);
        if call.method != "GET" {
            self.reconcile();
        }
        reply
    }

    fn route(&mut self, call: &Call) -> Answer {
        if call.param("watch") == "true" || call.param("watch") == "1" {
            return Err(bad_request("the fake API server does not support watches"));
        }
        let path = call.path.trim_matches('/');
        let segments: Vec<&str> = path.split('/').collect();
        // As the API server does: a name or namespace that could not be a path segment is a
        // bad request; one that is not a valid name simply names nothing (404 below).
        if let Some(bad) = segments
            .iter()
            .find(|s| **s == "." || **s == ".." || s.contains('%'))
        {
            return Err(bad_request(format!(
                "invalid resource name {bad:?}: may not be '.', '..' or contain '/' or '%'"
            )));
        }
        if let Some(denied) = self.denied(call, &segments) {
            return Err(denied);
        }
        match (call.method.as_str(), segments.as_slice()) {
            ("GET", ["version"]) => version(),
            ("GET", ["api", "v1", "namespaces", ns, "events"]) => self.list_events(ns, call),
            ("GET", ["api", "v1", "namespaces", ns, "pods", name, "log"]) => self.pod_log(ns, name, call),
            ("GET", ["api", "v1", "namespaces", ns, "pods"]) => self.list_pods(ns, call),
            ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => self.get_pod(ns, name),
            ("DELETE", ["api", "v1", "namespaces", ns, "pods", name]) => self.delete_pod(ns, name, call),
            ("POST", ["api", "v1", "namespaces", ns, "pods", name, "eviction"]) => self.evict(ns, name, call),
            ("GET", ["apis", "apps", "v1", "namespaces", ns, "deployments"]) => {
                self.list_deployments(ns, call)
            }
            ("GET", ["apis", "apps", "v1", "namespaces", ns, "deployments", name]) => {
                self.get_deployment(ns, name)
            }
            ("PATCH", ["apis", "apps", "v1", "namespaces", ns, "deployments", name]) => {
                self.patch_deployment(ns, name, call)
            }
            ("GET", ["apis", "apps", "v1", "namespaces", ns, "deployments", name, "scale"]) => {
                self.get_scale(ns, name)
            }
            ("PATCH" | "PUT", ["apis", "apps", "v1", "namespaces", ns, "deployments", name, "scale"]) => {
                self.write_scale(ns, name, call)
            }
            ("GET", ["apis", "apps", "v1", "namespaces", ns, "replicasets"]) => {
                self.list_replica_sets(ns, call)
            }
            ("GET", ["apis", "apps", "v1", "namespaces", ns, "replicasets", name]) => {
                self.get_replica_set(ns, name)
            }
            ("GET", ["apis", "autoscaling", "v2", "namespaces", ns, "horizontalpodautoscalers"]) => {
                self.list_hpas(ns, call)
            }
            ("GET", ["apis", "autoscaling", "v2", "namespaces", ns, "horizontalpodautoscalers", name]) => {
                self.get_hpa(ns, name)
            }
            ("PATCH", ["apis", "autoscaling", "v2", "namespaces", ns, "horizontalpodautoscalers", name]) => {
                self.patch_hpa(ns, name, call)
            }
            ("GET", ["apis", "policy", "v1", "namespaces", ns, "poddisruptionbudgets"]) => {
                self.list_pdbs(ns, call)
            }
            ("GET", ["apis", "policy", "v1", "namespaces", ns, "poddisruptionbudgets", name]) => {
                self.get_pdb(ns, name)
            }
            _ => Err(failure(
                404,
                "NotFound",
                format!(
                    "the server could not find the requested resource ({} /{path})",
                    call.method
                ),
                json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}),
            )),
        }
    }

    /// A 403 worded as RBAC words it, when the test forbade the resource asked for.
    fn denied(&self, call: &Call, segments: &[&str]) -> Option<Reply> {
        let (resource, ns) = match segments {
            ["api", "v1", "namespaces", ns, "events", ..] => ("events", *ns),
            ["api", "v1", "namespaces", ns, "pods", _, "log"] => ("pods/log", *ns),
            ["api", "v1", "namespaces", ns, "pods", ..] => ("pods", *ns),
            ["apis", "apps", "v1", "namespaces", ns, kind, ..] => (*kind, *ns),
            _ => return None,
        };
        if !self.forbidden.contains(resource) {
            return None;
        }
        let verb = match (call.method.as_str(), segments.len()) {
            ("GET", 5) => "list",
            ("GET", _) => "get",
            (other, _) => {
                return Some(failure(
                    403,
                    "Forbidden",
                    format!("{other} is forbidden"),
                    Value::Null,
                ))
            }
        };
        let (name, sub) = resource.split_once('/').unwrap_or((resource, ""));
        let message = format!(
            "{resource} is forbidden: User \"system:serviceaccount:monitoring:medic\" cannot {verb} resource \"{name}\"{} in API group \"\" in the namespace \"{ns}\"",
            if sub.is_empty() { String::new() } else { format!(" with subresource \"{sub}\"") }
        );
        Some(failure(403, "Forbidden", message, json!({"kind": name})))
    }

    /// Objects of a namespace whose labels match the request's `labelSelector`.
    pub(super) fn select<'a>(
        objects: impl Iterator<Item = (&'a Key, &'a Value)>,
        ns: &str,
        call: &Call,
    ) -> Result<Vec<Value>, Reply> {
        let selector = parse_selector(call.param("labelSelector"))?;
        Ok(objects
            .filter(|((namespace, _), _)| namespace == ns)
            .filter(|(_, obj)| selector.iter().all(|r| r.matches(&obj["metadata"]["labels"])))
            .map(|(_, obj)| obj.clone())
            .collect())
    }
}

/// Kubernetes' build information, for `GET /version`.
fn version() -> Answer {
    ok(
        200,
        json!({
            "major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "gitCommit": "fake",
            "gitTreeState": "clean", "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5",
            "compiler": "gc", "platform": "linux/amd64",
        }),
    )
}
