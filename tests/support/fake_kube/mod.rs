//! A fake Kubernetes API server that speaks enough of the real HTTP protocol for medic's remediations.
//!
//! It serves pods (with the eviction subresource), deployments (with the scale subresource),
//! horizontal pod autoscalers and pod disruption budgets as JSON, with Kubernetes' `Status`
//! errors, bearer-token authentication, resource versions, delete preconditions, merge and
//! strategic merge patches and `dryRun=All`. A small controller (every 25 ms, and right after
//! every write) keeps each deployment at its replica count, replaces pods whose template is
//! outdated, makes new pods Ready after a per-deployment delay, raises deployments to their
//! HPA's `minReplicas` and keeps status fields current. The server runs on its own thread with
//! its own actix system, so it does not depend on the runtime of the test that started it, and
//! it stops when the [`FakeKube`] is dropped.

use std::{
    collections::{hash_map::RandomState, BTreeMap, HashMap},
    hash::BuildHasher,
    io::Write,
    net::{SocketAddr, TcpListener},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use actix_web::{dev::ServerHandle, http::StatusCode, web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// The bearer token every request must carry.
#[allow(dead_code)]
pub const TOKEN: &str = "fake-token";

/// How often the controller loop runs.
const CONTROLLER_PERIOD: Duration = Duration::from_millis(25);
/// How long a deployment's new pod takes to become Ready unless told otherwise.
const DEFAULT_READY_AFTER: Duration = Duration::from_millis(200);
/// Largest request body the server accepts.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// One request the fake API server answered.
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub struct Request {
    /// HTTP method, e.g. "PATCH".
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The raw query string ("" if none).
    pub query: String,
    /// The status code the server answered.
    pub status: u16,
    /// The request body parsed as JSON, or `Null` (empty or not JSON).
    pub body: Value,
    /// The request's Content-Type without parameters ("" if none).
    pub content_type: String,
    /// The delete preconditions the server read and enforced (from a DELETE's DeleteOptions or
    /// an Eviction's `deleteOptions`); `None` if there were none, e.g. when the client sent
    /// `delete_options`, which Kubernetes ignores.
    pub preconditions: Option<Value>,
}

/// `(namespace, name)`.
type Key = (String, String);

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_owned(), name.to_owned())
}

/// A pod with what the controller needs to know about it.
#[derive(Clone)]
struct Pod {
    json: Value,
    /// The deployment that owns it.
    owner: Option<String>,
    /// The deployment template it was created from.
    template: Value,
    born: Instant,
    /// Creation order, to delete the newest first.
    seq: u64,
    /// Created by the controller and not yet made Ready by it (nor given a status by a test).
    pending: bool,
}

/// A deployment and its fake pods' behaviour.
#[derive(Clone)]
struct Deployment {
    json: Value,
    ready_after: Duration,
    never_ready: bool,
}

/// Every object of the fake cluster.
#[derive(Clone, Default)]
struct Store {
    revision: u64,
    seq: u64,
    pods: BTreeMap<Key, Pod>,
    deployments: BTreeMap<Key, Deployment>,
    hpas: BTreeMap<Key, Value>,
    pdbs: BTreeMap<Key, Value>,
}

/// State shared by the server's workers, its controller and the [`FakeKube`].
struct Shared {
    store: Mutex<Store>,
    requests: Mutex<Vec<Request>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the cluster from the others.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Small helpers: time, randomness, metadata, labels
// ---------------------------------------------------------------------------------------------

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn now() -> String {
    timestamp(Utc::now())
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn random_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Five characters from the alphabet Kubernetes uses for generated names.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bits = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
            bits /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn labels_json(labels: &[(&str, &str)]) -> Value {
    Value::Object(labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
}

/// Whether every `matchLabels` entry is among `labels`.
fn labels_match(match_labels: &Value, labels: &Value) -> bool {
    match match_labels.as_object() {
        Some(wanted) => wanted.iter().all(|(k, v)| &labels[k.as_str()] == v),
        None => true,
    }
}

/// Sets a new resource version on `obj`.
fn touch(obj: &mut Value, revision: &mut u64) {
    *revision += 1;
    obj["metadata"]["resourceVersion"] = json!(revision.to_string());
}

/// Replaces `obj.status` (bumping the resource version) if it differs.
fn set_status(obj: &mut Value, status: Value, revision: &mut u64) {
    if obj["status"] != status {
        obj["status"] = status;
        touch(obj, revision);
    }
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|all| all.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// A pod's status: Running, with the Ready condition and one status per container.
fn pod_status(
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

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    NotExists,
}

struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &Value) -> bool {
        let value = labels[self.key.as_str()].as_str();
        let listed = value.is_some_and(|v| self.values.iter().any(|w| w == v));
        match self.op {
            Op::Eq | Op::In => listed,
            Op::NotEq | Op::NotIn => !listed,
            Op::Exists => value.is_some(),
            Op::NotExists => value.is_none(),
        }
    }
}

/// Splits a selector at the commas that are not inside parentheses.
fn split_terms(selector: &str) -> Vec<&str> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
}

fn parse_term(term: &str) -> Option<Requirement> {
    let term = term.trim();
    let requirement = |key: &str, op, values: Vec<String>| {
        let key = key.trim();
        let valid = !key.is_empty() && !key.contains(char::is_whitespace);
        valid.then(|| Requirement {
            key: key.to_owned(),
            op,
            values,
        })
    };
    if let Some(key) = term.strip_prefix('!') {
        return requirement(key, Op::NotExists, Vec::new());
    }
    if let (Some(open), true) = (term.find('('), term.ends_with(')')) {
        let values = term[open + 1..term.len() - 1]
            .split(',')
            .map(|v| v.trim().to_owned())
            .collect();
        let mut head = term[..open].split_whitespace();
        let (key, op) = (head.next()?, head.next()?);
        let op = match op {
            "in" => Op::In,
            "notin" => Op::NotIn,
            _ => return None,
        };
        if head.next().is_some() {
            return None;
        }
        return requirement(key, op, values);
    }
    let (key, op, value) = if let Some((k, v)) = term.split_once("!=") {
        (k, Op::NotEq, v)
    } else if let Some((k, v)) = term.split_once("==") {
        (k, Op::Eq, v)
    } else if let Some((k, v)) = term.split_once('=') {
        (k, Op::Eq, v)
    } else {
        return requirement(term, Op::Exists, Vec::new());
    };
    requirement(key, op, vec![value.trim().to_owned()])
}

fn parse_selector(selector: &str) -> Result<Vec<Requirement>, Reply> {
    if selector.trim().is_empty() {
        return Ok(Vec::new());
    }
    split_terms(selector)
        .into_iter()
        .map(|term| {
            parse_term(term).ok_or_else(|| {
                let message = format!("unable to parse requirement: found {term:?} in selector {selector:?}");
                failure(400, "BadRequest", message, Value::Null)
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Patches
// ---------------------------------------------------------------------------------------------

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("just made an object");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The key by which strategic merge patch merges a list field, if it does.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "env" | "volumes" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" => Some("containerPort"),
        _ => None,
    }
}

/// Strategic merge patch: a merge patch in which some lists merge by key (see [`merge_key`]),
/// `{"$patch": "delete"}` removes a list item and other `$` directives are ignored.
fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("just made an object");
    for (field, value) in patch.iter().filter(|(field, _)| !field.starts_with('$')) {
        if value.is_null() {
            target.remove(field);
            continue;
        }
        let slot = target.entry(field.clone()).or_insert(Value::Null);
        match (merge_key(field), value) {
            (Some(key), Value::Array(items)) if slot.is_array() => merge_list(slot, items, key),
            _ => strategic_merge(slot, value),
        }
    }
}

fn merge_list(list: &mut Value, items: &[Value], key: &str) {
    let list = list.as_array_mut().expect("checked by the caller");
    for item in items {
        let id = &item[key];
        let position = list
            .iter()
            .position(|existing| !id.is_null() && &existing[key] == id);
        match (position, item["$patch"] == "delete") {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut list[i], item),
            (None, false) => {
                let mut new = Value::Null;
                strategic_merge(&mut new, item);
                list.push(new);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replies and Kubernetes Status objects
// ---------------------------------------------------------------------------------------------

/// What the server answers.
struct Reply {
    status: u16,
    body: Value,
}

type Answer = Result<Reply, Reply>;

fn ok(status: u16, body: Value) -> Answer {
    Ok(Reply { status, body })
}

fn failure(code: u16, reason: &str, message: String, details: Value) -> Reply {
    let mut body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if !details.is_null() {
        body["details"] = details;
    }
    Reply { status: code, body }
}

/// A resource's name in messages, e.g. `pods` or `deployments.apps`.
fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(resource: &str, group: &str, name: &str) -> Value {
    let mut details = json!({"name": name, "kind": resource});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    details
}

fn not_found(resource: &str, group: &str, name: &str) -> Reply {
    let message = format!("{} \"{name}\" not found", qualified(resource, group));
    failure(404, "NotFound", message, details(resource, group, name))
}

fn conflict(resource: &str, group: &str, name: &str, why: &str) -> Reply {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": {why}",
        qualified(resource, group)
    );
    failure(409, "Conflict", message, details(resource, group, name))
}

fn bad_request(message: impl Into<String>) -> Reply {
    failure(400, "BadRequest", message.into(), Value::Null)
}

const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

fn list(api_version: &str, kind: &str, revision: u64, items: Vec<Value>) -> Answer {
    let metadata = json!({"resourceVersion": revision.to_string()});
    ok(
        200,
        json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "items": items}),
    )
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

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// One request, as the API handlers see it.
struct Call {
    method: String,
    path: String,
    query: String,
    params: HashMap<String, String>,
    content_type: String,
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

    fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or_default()
    }

    /// The delete preconditions Kubernetes reads: a DELETE's `preconditions`, or an Eviction's
    /// `deleteOptions.preconditions` (a `delete_options` key is not a field of Eviction).
    fn preconditions(&self) -> Option<&Value> {
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
    fn object(&self) -> Result<&Value, Reply> {
        if self.body.is_object() {
            Ok(&self.body)
        } else {
            Err(bad_request("the request body must be a JSON object"))
        }
    }

    /// The body as a patch of `current`, which it must not be stale against.
    fn patched(&self, current: &Value, resource: &str, group: &str) -> Result<Value, Reply> {
        let merge: fn(&mut Value, &Value) = match self.content_type.as_str() {
            "application/merge-patch+json" => merge_patch,
            "application/strategic-merge-patch+json" => strategic_merge,
            other => {
                let message = format!(
                    "the body of the request was in an unknown format ({other:?}) - accepted media types \
                     include: application/merge-patch+json, application/strategic-merge-patch+json"
                );
                return Err(failure(415, "UnsupportedMediaType", message, Value::Null));
            }
        };
        let patch = self.object()?;
        let name = current["metadata"]["name"].as_str().unwrap_or_default();
        check_resource_version(current, patch, resource, group, name)?;
        let mut new = current.clone();
        merge(&mut new, patch);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
        ] {
            new["metadata"][field] = current["metadata"][field].clone();
        }
        for field in ["apiVersion", "kind", "status"] {
            new[field] = current[field].clone();
        }
        Ok(new)
    }
}

/// 409 if `body` names a resource version other than `current`'s.
fn check_resource_version(
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
fn check_preconditions(obj: &Value, preconditions: Option<&Value>, name: &str) -> Result<(), Reply> {
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
async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let call = Call::new(&req, &body);
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
    HttpResponse::build(status)
        .content_type("application/json")
        .body(reply.body.to_string())
}

// ---------------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------------

impl Store {
    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    fn metadata(&mut self, namespace: &str, name: &str, labels: Value) -> Value {
        json!({
            "name": name, "namespace": namespace, "uid": random_uid(),
            "resourceVersion": self.next_revision(), "creationTimestamp": now(), "labels": labels,
            "annotations": {},
        })
    }

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
        match (call.method.as_str(), segments.as_slice()) {
            ("GET", ["version"]) => version(),
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

    /// Objects of a namespace whose labels match the request's `labelSelector`.
    fn select<'a>(
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

    fn list_pods(&self, ns: &str, call: &Call) -> Answer {
        let items = Self::select(self.pods.iter().map(|(k, p)| (k, &p.json)), ns, call)?;
        list("v1", "PodList", self.revision, items)
    }

    fn get_pod(&self, ns: &str, name: &str) -> Answer {
        let pod = self
            .pods
            .get(&key(ns, name))
            .ok_or_else(|| not_found("pods", "", name))?;
        ok(200, pod.json.clone())
    }

    fn delete_pod(&mut self, ns: &str, name: &str, call: &Call) -> Answer {
        let pod = self
            .pods
            .get(&key(ns, name))
            .ok_or_else(|| not_found("pods", "", name))?;
        check_preconditions(&pod.json, call.preconditions(), name)?;
        let mut pod = self.pods.remove(&key(ns, name)).expect("found above").json;
        touch(&mut pod, &mut self.revision);
        ok(200, pod)
    }

    fn evict(&mut self, ns: &str, name: &str, call: &Call) -> Answer {
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

    /// 429 if evicting the (Ready) `pod` would violate a disruption budget that selects it.
    fn check_budgets(&self, ns: &str, pod: &Value) -> Result<(), Reply> {
        for ((namespace, pdb_name), pdb) in &self.pdbs {
            let selector = &pdb["spec"]["selector"]["matchLabels"];
            if namespace != ns || !labels_match(selector, &pod["metadata"]["labels"]) {
                continue;
            }
            let (selected, ready) = self.count_selected(ns, selector);
            let needs = match (
                pdb["spec"]["minAvailable"].as_i64(),
                pdb["spec"]["maxUnavailable"].as_i64(),
            ) {
                (Some(min), _) if ready - 1 < min => Some(min),
                (_, Some(max)) if selected - ready + 1 > max => Some(selected - max),
                _ => None,
            };
            if let Some(needs) = needs {
                let cause = format!(
                    "The disruption budget {pdb_name} needs {needs} healthy pods and has {ready} currently"
                );
                let details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
                let message = "Cannot evict pod as it would violate the pod's disruption budget.".to_owned();
                return Err(failure(429, "TooManyRequests", message, details));
            }
        }
        Ok(())
    }

    /// How many pods of the namespace `match_labels` selects, and how many of them are Ready.
    fn count_selected(&self, ns: &str, match_labels: &Value) -> (i64, i64) {
        let selected: Vec<&Pod> = self
            .pods
            .iter()
            .filter(|((namespace, _), pod)| {
                namespace == ns && labels_match(match_labels, &pod.json["metadata"]["labels"])
            })
            .map(|(_, pod)| pod)
            .collect();
        let ready = selected.iter().filter(|pod| pod_ready(&pod.json)).count();
        (selected.len() as i64, ready as i64)
    }

    fn list_deployments(&self, ns: &str, call: &Call) -> Answer {
        let items = Self::select(self.deployments.iter().map(|(k, d)| (k, &d.json)), ns, call)?;
        list("apps/v1", "DeploymentList", self.revision, items)
    }

    fn deployment_json(&self, ns: &str, name: &str) -> Result<&Value, Reply> {
        let deployment = self.deployments.get(&key(ns, name));
        deployment
            .map(|d| &d.json)
            .ok_or_else(|| not_found("deployments", "apps", name))
    }

    fn get_deployment(&self, ns: &str, name: &str) -> Answer {
        ok(200, self.deployment_json(ns, name)?.clone())
    }

    fn patch_deployment(&mut self, ns: &str, name: &str, call: &Call) -> Answer {
        let current = self.deployment_json(ns, name)?;
        let new = call.patched(current, "deployments", "apps")?;
        self.store_deployment(ns, name, new)
    }

    /// Validates and stores a new version of a deployment, bumping its generation if its spec changed.
    fn store_deployment(&mut self, ns: &str, name: &str, mut new: Value) -> Answer {
        if new["spec"]["replicas"].as_i64().is_none_or(|n| n < 0) {
            let message = format!(
                "Deployment.apps \"{name}\" is invalid: spec.replicas: must be a non-negative integer"
            );
            return Err(failure(
                422,
                "Invalid",
                message,
                details("deployments", "apps", name),
            ));
        }
        let deployment = self
            .deployments
            .get_mut(&key(ns, name))
            .expect("checked by the caller");
        if new["spec"] != deployment.json["spec"] {
            new["metadata"]["generation"] = json!(new["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
        }
        touch(&mut new, &mut self.revision);
        deployment.json = new.clone();
        ok(200, new)
    }

    fn scale(&self, ns: &str, name: &str) -> Result<Value, Reply> {
        let deployment = self.deployment_json(ns, name)?;
        let metadata = &deployment["metadata"];
        let selector = deployment["spec"]["selector"]["matchLabels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let selector: Vec<String> = selector
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        Ok(json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {
                "name": name, "namespace": ns, "uid": metadata["uid"],
                "resourceVersion": metadata["resourceVersion"],
                "creationTimestamp": metadata["creationTimestamp"],
            },
            "spec": {"replicas": deployment["spec"]["replicas"]},
            "status": {
                "replicas": deployment["status"]["replicas"].as_i64().unwrap_or(0),
                "selector": selector.join(","),
            },
        }))
    }

    fn get_scale(&self, ns: &str, name: &str) -> Answer {
        ok(200, self.scale(ns, name)?)
    }

    /// PATCH (merge or strategic) or PUT of a deployment's scale subresource.
    fn write_scale(&mut self, ns: &str, name: &str, call: &Call) -> Answer {
        let current = self.scale(ns, name)?;
        let new = if call.method == "PUT" {
            let body = call.object()?;
            check_resource_version(&current, body, "deployments", "apps", name)?;
            body.clone()
        } else {
            call.patched(&current, "deployments", "apps")?
        };
        let mut deployment = self.deployment_json(ns, name)?.clone();
        deployment["spec"]["replicas"] = new["spec"]["replicas"].clone();
        self.store_deployment(ns, name, deployment)?;
        ok(200, self.scale(ns, name)?)
    }

    fn list_hpas(&self, ns: &str, call: &Call) -> Answer {
        let items = Self::select(self.hpas.iter(), ns, call)?;
        list(
            "autoscaling/v2",
            "HorizontalPodAutoscalerList",
            self.revision,
            items,
        )
    }

    fn get_hpa(&self, ns: &str, name: &str) -> Answer {
        let hpa = self.hpas.get(&key(ns, name));
        ok(
            200,
            hpa.ok_or_else(|| not_found("horizontalpodautoscalers", "autoscaling", name))?
                .clone(),
        )
    }

    fn patch_hpa(&mut self, ns: &str, name: &str, call: &Call) -> Answer {
        let hpa = self.hpas.get_mut(&key(ns, name));
        let hpa = hpa.ok_or_else(|| not_found("horizontalpodautoscalers", "autoscaling", name))?;
        let mut new = call.patched(hpa, "horizontalpodautoscalers", "autoscaling")?;
        if new["spec"] != hpa["spec"] {
            new["metadata"]["generation"] = json!(new["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
        }
        touch(&mut new, &mut self.revision);
        *hpa = new.clone();
        ok(200, new)
    }

    fn list_pdbs(&self, ns: &str, call: &Call) -> Answer {
        let items = Self::select(self.pdbs.iter(), ns, call)?;
        list("policy/v1", "PodDisruptionBudgetList", self.revision, items)
    }

    fn get_pdb(&self, ns: &str, name: &str) -> Answer {
        let pdb = self.pdbs.get(&key(ns, name));
        ok(
            200,
            pdb.ok_or_else(|| not_found("poddisruptionbudgets", "policy", name))?
                .clone(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The controller
// ---------------------------------------------------------------------------------------------

impl Store {
    fn reconcile(&mut self) {
        self.apply_hpa_minimums();
        let deployments: Vec<Key> = self.deployments.keys().cloned().collect();
        for deployment in &deployments {
            self.replace_outdated_pods(deployment);
            self.scale_pods(deployment);
        }
        self.promote_ready_pods();
        for deployment in &deployments {
            self.update_deployment_status(deployment);
        }
        self.update_hpa_statuses();
        self.update_pdb_statuses();
    }

    /// The pods a deployment owns, oldest first.
    fn owned_pods(&self, (ns, name): &Key) -> Vec<Key> {
        let mut owned: Vec<(&Key, &Pod)> = self
            .pods
            .iter()
            .filter(|((namespace, _), pod)| namespace == ns && pod.owner.as_ref() == Some(name))
            .collect();
        owned.sort_by_key(|(_, pod)| pod.seq);
        owned.into_iter().map(|(k, _)| k.clone()).collect()
    }

    fn apply_hpa_minimums(&mut self) {
        for ((ns, _), hpa) in &self.hpas {
            let target = &hpa["spec"]["scaleTargetRef"];
            let Some(deployment) = target["name"].as_str().filter(|_| target["kind"] == "Deployment") else {
                continue;
            };
            let Some(deployment) = self.deployments.get_mut(&key(ns, deployment)) else {
                continue;
            };
            let min = hpa["spec"]["minReplicas"].as_i64().unwrap_or(1);
            let json = &mut deployment.json;
            if json["spec"]["replicas"].as_i64().unwrap_or(0) < min {
                json["spec"]["replicas"] = json!(min);
                json["metadata"]["generation"] =
                    json!(json["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
                touch(json, &mut self.revision);
            }
        }
    }

    /// Deletes the pods created from an older template of the deployment.
    fn replace_outdated_pods(&mut self, deployment: &Key) {
        let template = &self.deployments[deployment].json["spec"]["template"];
        let outdated: Vec<Key> = self
            .owned_pods(deployment)
            .into_iter()
            .filter(|pod| &self.pods[pod].template != template)
            .collect();
        for pod in outdated {
            self.pods.remove(&pod);
            self.revision += 1;
        }
    }

    /// Creates or deletes (newest first) pods until the deployment has `spec.replicas`.
    fn scale_pods(&mut self, deployment: &Key) {
        let wanted = self.deployments[deployment].json["spec"]["replicas"]
            .as_i64()
            .unwrap_or(1)
            .max(0) as usize;
        let owned = self.owned_pods(deployment);
        for extra in owned.iter().skip(wanted) {
            self.pods.remove(extra);
            self.revision += 1;
        }
        for _ in owned.len()..wanted {
            self.create_pod(deployment);
        }
    }

    fn create_pod(&mut self, (ns, deployment): &Key) {
        let name = loop {
            let name = format!("{deployment}-{}", random_suffix());
            if !self.pods.contains_key(&key(ns, &name)) {
                break name;
            }
        };
        let owner = &self.deployments[&key(ns, deployment)].json;
        let template = owner["spec"]["template"].clone();
        let replica_set_uid = format!("rs-{}", owner["metadata"]["uid"].as_str().unwrap_or_default());
        let mut metadata = self.metadata(ns, &name, template["metadata"]["labels"].clone());
        if let Some(annotations) = template["metadata"]["annotations"].as_object() {
            metadata["annotations"] = json!(annotations);
        }
        metadata["generateName"] = json!(format!("{deployment}-"));
        metadata["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-rs"),
            "uid": replica_set_uid,
            "controller": true, "blockOwnerDeletion": true,
        }]);
        let mut spec = template["spec"].clone();
        spec["nodeName"] = json!("fake-node");
        let status = pod_status(&spec, false, 0, None, Utc::now());
        let json =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status});
        self.seq += 1;
        let pod = Pod {
            json,
            owner: Some(deployment.clone()),
            template,
            born: Instant::now(),
            seq: self.seq,
            pending: true,
        };
        self.pods.insert(key(ns, &name), pod);
    }

    /// Makes pending pods Ready once their deployment's delay has passed.
    fn promote_ready_pods(&mut self) {
        for ((ns, _), pod) in self.pods.iter_mut().filter(|(_, pod)| pod.pending) {
            let owner = pod.owner.as_deref().unwrap_or_default();
            let Some(deployment) = self.deployments.get(&key(ns, owner)) else {
                continue;
            };
            if deployment.never_ready || pod.born.elapsed() < deployment.ready_after {
                continue;
            }
            pod.pending = false;
            pod.json["status"] = pod_status(&pod.json["spec"], true, 0, None, Utc::now());
            touch(&mut pod.json, &mut self.revision);
        }
    }

    fn update_deployment_status(&mut self, deployment: &Key) {
        let owned = self.owned_pods(deployment);
        let json = &self.deployments[deployment].json;
        let ready = owned
            .iter()
            .filter(|pod| pod_ready(&self.pods[*pod].json))
            .count() as i64;
        let updated = owned
            .iter()
            .filter(|pod| self.pods[*pod].template == json["spec"]["template"])
            .count();
        let wanted = json["spec"]["replicas"].as_i64().unwrap_or(1);
        let status = json!({
            "observedGeneration": json["metadata"]["generation"], "replicas": owned.len(),
            "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready,
            "unavailableReplicas": (wanted - ready).max(0),
        });
        let json = &mut self.deployments.get_mut(deployment).expect("listed above").json;
        set_status(json, status, &mut self.revision);
    }

    fn update_hpa_statuses(&mut self) {
        for ((ns, _), hpa) in self.hpas.iter_mut() {
            let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or_default();
            let Some(deployment) = self.deployments.get(&key(ns, target)) else {
                continue;
            };
            let status = json!({
                "currentReplicas": deployment.json["status"]["replicas"],
                "desiredReplicas": deployment.json["spec"]["replicas"],
            });
            set_status(hpa, status, &mut self.revision);
        }
    }

    fn update_pdb_statuses(&mut self) {
        let keys: Vec<Key> = self.pdbs.keys().cloned().collect();
        for pdb_key in keys {
            let spec = &self.pdbs[&pdb_key]["spec"];
            let (selected, ready) = self.count_selected(&pdb_key.0, &spec["selector"]["matchLabels"]);
            let desired = match (spec["minAvailable"].as_i64(), spec["maxUnavailable"].as_i64()) {
                (Some(min), _) => min,
                (None, Some(max)) => (selected - max).max(0),
                (None, None) => 0,
            };
            let status = json!({
                "observedGeneration": self.pdbs[&pdb_key]["metadata"]["generation"],
                "expectedPods": selected, "currentHealthy": ready, "desiredHealthy": desired,
                "disruptionsAllowed": (ready - desired).max(0),
            });
            let pdb = self.pdbs.get_mut(&pdb_key).expect("listed above");
            set_status(pdb, status, &mut self.revision);
        }
    }
}

/// Runs the controller until the server's actix system stops.
async fn control(shared: Arc<Shared>) {
    loop {
        actix_web::rt::time::sleep(CONTROLLER_PERIOD).await;
        lock(&shared.store).reconcile();
    }
}

// ---------------------------------------------------------------------------------------------
// The test-facing handle
// ---------------------------------------------------------------------------------------------

/// A fake Kubernetes API server on 127.0.0.1 with a free port.
#[allow(dead_code)]
pub struct FakeKube {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: ServerHandle,
    /// Disconnects when the server thread has finished.
    finished: mpsc::Receiver<()>,
}

#[allow(dead_code)]
impl FakeKube {
    /// Starts the server and its controller on their own thread; the cluster starts empty.
    pub async fn start() -> FakeKube {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake API server to a loopback port");
        let addr = listener.local_addr().expect("the fake API server's address");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            requests: Mutex::new(Vec::new()),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let controlled = Arc::clone(&shared);
        let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
        let (finished_tx, finished) = mpsc::channel::<()>();

        std::thread::Builder::new()
            .name(format!("fake-kube-{}", addr.port()))
            .spawn(move || {
                let _finished = finished_tx;
                actix_web::rt::System::new().block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .app_data(web::PayloadConfig::new(BODY_LIMIT))
                            .default_service(web::to(handle))
                    })
                    .workers(2)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .expect("the fake API server listens")
                    .run();
                    let _ = handle_tx.send(server.handle());
                    actix_web::rt::spawn(control(controlled));
                    server.await.expect("the fake API server runs");
                });
            })
            .expect("spawn the fake API server's thread");

        let handle = handle_rx.await.expect("the fake API server started");
        FakeKube {
            addr,
            shared,
            handle,
            finished,
        }
    }

    /// http://127.0.0.1:PORT
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig (cluster server = url(), insecure http, user token TOKEN, context
    /// "fake", namespace "default") and returns the temp file (keep it alive).
    pub fn kubeconfig(&self) -> tempfile::NamedTempFile {
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake\n  user:\n    token: {TOKEN}\ncontexts:\n- name: fake\n  context:\n    \
             cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n",
            self.url()
        );
        let mut file = tempfile::Builder::new()
            .prefix("fake-kubeconfig-")
            .suffix(".yaml")
            .tempfile()
            .expect("create the kubeconfig file");
        file.write_all(config.as_bytes()).expect("write the kubeconfig");
        file.flush().expect("flush the kubeconfig");
        file
    }

    /// Locks the cluster; the caller reconciles after writing.
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.shared.store)
    }

    /// Creates a deployment whose pods carry `labels` (also its selector); the controller
    /// creates its pods (at once, not Ready yet). Its container is "app" with image "app:1".
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

    /// Every request so far, in the order they were answered: method, path, query string,
    /// status code answered, body (parsed JSON or Null), content type and preconditions seen.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        // Sending the stop command happens now; the returned future only awaits completion.
        drop(self.handle.stop(false));
        // Give the server a moment to release its port and threads, without hanging a test.
        let _ = self.finished.recv_timeout(Duration::from_secs(5));
    }
}
