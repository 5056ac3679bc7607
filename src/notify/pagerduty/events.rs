//! PagerDuty Events API v2: trigger, acknowledge and resolve, all under the incident's
//! `dedup_key`, so that re-sent triggers (retries, repeats, a crash) stay one PagerDuty incident.
//!
//! PagerDuty answers 202 when it accepts an event, 400 for an invalid one (not worth a retry),
//! 429 when rate limited and 5xx when it has trouble.

use reqwest::{Client, RequestBuilder, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::domain::{Severity, TimerKind};
use crate::notify::message::Message;

/// PagerDuty's limit on `payload.summary`.
const SUMMARY_LIMIT: usize = 1024;

/// The POST for one event.
pub fn request(
    client: &Client,
    url: Url,
    routing_key: &SecretString,
    message: &Message<'_>,
) -> RequestBuilder {
    client.post(url).json(&body(routing_key, message))
}

fn body(routing_key: &SecretString, message: &Message<'_>) -> Value {
    let routing_key = routing_key.expose_secret();
    let action = match message.timer.kind() {
        TimerKind::Opened | TimerKind::Escalation => "trigger",
        TimerKind::Acknowledged => "acknowledge",
        // Remediation reports, requests for approval and cluster context are not scheduled
        // for PagerDuty.
        TimerKind::Resolved
        | TimerKind::Remediation
        | TimerKind::Remediated
        | TimerKind::Verify
        | TimerKind::Approval
        | TimerKind::Context
        | TimerKind::ContextReady => "resolve",
    };
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": message.dedup_key(),
    });
    if action == "trigger" {
        body["payload"] = payload(message);
        body["client"] = json!("medic");
        let incident = &message.timer.incident;
        if !incident.external_url.is_empty() {
            body["client_url"] = json!(incident.external_url);
        }
        if let Some(runbook) = message.runbook_url {
            body["links"] = json!([{"href": runbook, "text": "Runbook"}]);
        }
    }
    body
}

fn payload(message: &Message<'_>) -> Value {
    let incident = &message.timer.incident;
    let mut payload = json!({
        "summary": summary(message),
        "source": message.instance().unwrap_or("medic"),
        "severity": severity(message.severity()),
        "class": message.alertname(),
        "component": incident.labels.get("job"),
        "group": incident.labels.get("namespace"),
        "custom_details": {
            "labels": incident.labels,
            "annotations": incident.annotations,
            "firing_alerts": incident.firing_alerts,
            "medic_incident": incident.id,
            "rule": message.timer.rule,
            "escalation_step": message.timer.step(),
        },
    });
    if let Some(tried) = message.remediation_tried() {
        payload["custom_details"]["remediation_tried"] = json!(tried);
    }
    // Once gathered: the rollout's age, the top events, the last log lines.
    if let Some(context) = &message.timer.context {
        payload["custom_details"]["context"] = json!(context);
    }
    payload
}

/// The alert, then what a remediation ladder tried when it handed over early; a long alert
/// summary is cut so that what was tried still fits PagerDuty's limit.
fn summary(message: &Message<'_>) -> String {
    let mut alert = message.alertname();
    if let Some(text) = message.summary() {
        alert = format!("{alert}: {text}");
    }
    let tried = message
        .handover()
        .map(|handover| format!("; {}", handover.text))
        .unwrap_or_default();
    let room = SUMMARY_LIMIT
        .saturating_sub(tried.chars().count())
        .max(SUMMARY_LIMIT / 2);
    let summary: String = alert.chars().take(room).chain(tried.chars()).collect();
    summary.chars().take(SUMMARY_LIMIT).collect()
}

/// PagerDuty knows critical, error, warning and info; an alert without a known severity is
/// an error, as in Alertmanager's PagerDuty integration.
fn severity(severity: Option<&str>) -> &'static str {
    match Severity::from_label(severity) {
        Severity::Critical => "critical",
        Severity::Error | Severity::Unknown => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}
