//! Slack incoming webhooks: an attachment coloured by severity, with Block Kit inside.
//!
//! Slack's incoming webhooks take no idempotency key: a send repeated after a crash can post
//! twice. Slack answers 200 on success, 4xx for a bad request or a revoked hook (not worth a
//! retry), 429 with `Retry-After` when rate limited.

use reqwest::{Client, RequestBuilder, Url};
use serde_json::{json, Value};

use super::text::escape;
use crate::domain::{Severity, TimerKind, TimerWork};
use crate::notify::message::Message;

/// The POST for one message.
pub fn request(
    client: &Client,
    url: Url,
    channel: Option<&str>,
    username: Option<&str>,
    message: &Message<'_>,
) -> RequestBuilder {
    client.post(url).json(&body(channel, username, message))
}

fn body(channel: Option<&str>, username: Option<&str>, message: &Message<'_>) -> Value {
    let headline = message.headline();
    let mut body = json!({
        "text": escape(&headline),
        "attachments": [{
            "color": colour(message),
            "fallback": escape(&headline),
            "blocks": blocks(message),
        }],
    });
    if let Some(channel) = channel {
        body["channel"] = json!(channel);
    }
    if let Some(username) = username {
        body["username"] = json!(username);
    }
    body
}

/// Red for critical, orange for errors, yellow for warnings, blue for the rest; green once
/// resolved, grey once acknowledged.
fn colour(message: &Message<'_>) -> &'static str {
    match &message.timer.work {
        TimerWork::Resolved { .. } => "#2EB67D",
        TimerWork::Acknowledged { .. } => "#9E9E9E",
        TimerWork::Remediated { report, .. } => match report.result.as_str() {
            "success" => "#2EB67D",
            "failure" => "#E01E5A",
            _ => "#9E9E9E",
        },
        _ => match Severity::from_label(message.severity()) {
            Severity::Critical => "#E01E5A",
            Severity::Error => "#F2711C",
            Severity::Warning => "#ECB22E",
            Severity::Info | Severity::Unknown => "#36C5F0",
        },
    }
}

pub fn blocks(message: &Message<'_>) -> Value {
    let incident = &message.timer.incident;
    let mut text = format!("*{}*", escape(&message.headline()));
    if let Some(summary) = message.summary() {
        text.push_str(&format!("\n{}", escape(summary)));
    }
    if let Some(description) = message.description() {
        text.push_str(&format!("\n_{}_", escape(description)));
    }
    if let (TimerKind::Acknowledged, Some(ack)) = (message.timer.kind(), &incident.acknowledged) {
        if let Some(note) = &ack.note {
            text.push_str(&format!("\n> {}", escape(note)));
        }
    }
    let mut fields = vec![field("Severity", message.severity().unwrap_or("none"))];
    if let Some(instance) = message.instance() {
        fields.push(field("Instance", instance));
    }
    fields.push(field(
        "Alerts",
        &format!("{} firing of {}", incident.firing_alerts, incident.alerts),
    ));
    let mut context = format!(
        "medic incident #{} · rule {}",
        incident.id,
        escape(&message.timer.rule)
    );
    if let Some(runbook) = message.runbook_url {
        context.push_str(&format!(" · <{}|Runbook>", escape(runbook)));
    }
    if !incident.external_url.is_empty() {
        context.push_str(&format!(" · <{}|Alertmanager>", escape(&incident.external_url)));
    }
    json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "fields": fields},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ])
}

fn field(name: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", escape(value))})
}
