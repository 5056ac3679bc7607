//! Events (`v1`): list, with `fieldSelector` on `involvedObject.*`, `type` and `reason` as the
//! API server supports them (other fields are a 400, as there).

use serde_json::Value;

use super::{
    reply::{bad_request, list, Answer, Reply},
    request::Call,
    Store,
};

/// The fields Kubernetes lets one select events by.
const FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.name",
    "metadata.namespace",
];

/// One term of a field selector: the field, the value, and whether it must differ.
struct Term {
    path: Vec<String>,
    value: String,
    negated: bool,
}

fn parse(selector: &str) -> Result<Vec<Term>, Reply> {
    selector
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|term| {
            let (field, value, negated) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, false)
            } else {
                return Err(bad_request(format!(
                    "invalid selector: '{selector}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if !FIELDS.contains(&field) {
                return Err(bad_request(format!("field label not supported: {field}")));
            }
            Ok(Term {
                path: field.split('.').map(str::to_owned).collect(),
                value: value.trim().to_owned(),
                negated,
            })
        })
        .collect()
}

impl Term {
    fn matches(&self, event: &Value) -> bool {
        let mut at = event;
        for part in &self.path {
            at = &at[part.as_str()];
        }
        // `source` selects by the reporting component, as the API server's field set does.
        let actual = match (self.path[0].as_str(), at) {
            ("source", v) => v["component"].as_str().unwrap_or_default(),
            (_, v) => v.as_str().unwrap_or_default(),
        };
        (actual == self.value) != self.negated
    }
}

impl Store {
    pub(super) fn list_events(&self, ns: &str, call: &Call) -> Answer {
        let terms = parse(call.param("fieldSelector"))?;
        let items = self
            .events
            .iter()
            .filter(|e| e["metadata"]["namespace"] == ns)
            .filter(|e| terms.iter().all(|t| t.matches(e)))
            .cloned()
            .collect();
        list("v1", "EventList", self.revision, items)
    }
}
