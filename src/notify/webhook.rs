//! Generic webhooks: a JSON document about the incident, with a delivery id in the body and
//! the `Idempotency-Key` header (stable across retries), and an optional bearer token.

use reqwest::{Client, RequestBuilder, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::message::Message;

/// The POST for one delivery.
pub fn request(
    client: &Client,
    url: Url,
    bearer_token: Option<&SecretString>,
    message: &Message<'_>,
) -> RequestBuilder {
    let delivery_id = message.delivery_id();
    let mut request = client
        .post(url)
        .header("Idempotency-Key", &delivery_id)
        .json(&body(message, &delivery_id));
    if let Some(token) = bearer_token {
        request = request.bearer_auth(token.expose_secret());
    }
    request
}

fn body(message: &Message<'_>, delivery_id: &str) -> Value {
    let timer = message.timer;
    let incident = &timer.incident;
    let mut body = json!({
        "version": "1",
        "delivery_id": delivery_id,
        "dedup_key": message.dedup_key(),
        "event": timer.kind().as_str(),
        "headline": message.headline(),
        "rule": timer.rule,
        "step": timer.step(),
        "occurrence": timer.occurrence(),
        "runbook_url": message.runbook_url,
        "incident": {
            "id": incident.id,
            "status": if incident.firing { "firing" } else { "resolved" },
            "acknowledged": incident.acknowledged,
            "labels": incident.labels,
            "annotations": incident.annotations,
            "firing_alerts": incident.firing_alerts,
            "alerts": incident.alerts,
            "external_url": incident.external_url,
            "created_at": incident.created_at,
            "resolved_at": incident.resolved_at,
        },
    });
    // An escalation a remediation ladder brought forward: each step it tried.
    if let Some(tried) = message.remediation_tried() {
        body["remediation_tried"] = json!(tried);
    }
    body
}
