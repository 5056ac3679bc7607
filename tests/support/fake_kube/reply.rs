//! Replies: the status code and JSON body answered, and Kubernetes' `Status` errors.

use serde_json::{json, Value};

/// What the server answers.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Value,
}

pub(super) type Answer = Result<Reply, Reply>;

pub(super) fn ok(status: u16, body: Value) -> Answer {
    Ok(Reply { status, body })
}

pub(super) fn failure(code: u16, reason: &str, message: String, details: Value) -> Reply {
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

pub(super) fn details(resource: &str, group: &str, name: &str) -> Value {
    let mut details = json!({"name": name, "kind": resource});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    details
}

pub(super) fn not_found(resource: &str, group: &str, name: &str) -> Reply {
    let message = format!("{} \"{name}\" not found", qualified(resource, group));
    failure(404, "NotFound", message, details(resource, group, name))
}

pub(super) fn conflict(resource: &str, group: &str, name: &str, why: &str) -> Reply {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": {why}",
        qualified(resource, group)
    );
    failure(409, "Conflict", message, details(resource, group, name))
}

pub(super) fn bad_request(message: impl Into<String>) -> Reply {
    failure(400, "BadRequest", message.into(), Value::Null)
}

pub(super) const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

pub(super) fn list(api_version: &str, kind: &str, revision: u64, items: Vec<Value>) -> Answer {
    let metadata = json!({"resourceVersion": revision.to_string()});
    ok(
        200,
        json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "items": items}),
    )
}
