//! PATCH bodies: JSON merge patch, strategic merge patch, and applying either to an object.

use serde_json::{Map, Value};

use super::{
    reply::{failure, Reply},
    request::{check_resource_version, Call},
};

impl Call {
    /// The body as a patch of `current`, which it must not be stale against.
    pub(super) fn patched(&self, current: &Value, resource: &str, group: &str) -> Result<Value, Reply> {
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
