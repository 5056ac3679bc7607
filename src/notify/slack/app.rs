//! A Slack app (`type: slack_app`): one message per incident in its channel, posted when the
//! incident opens (`chat.postMessage`) and updated in place as its state changes
//! (`chat.update`: acknowledged and by whom, remediation results, resolved), with the timeline
//! (escalations, remediation steps, requests for approval, the cluster context) as replies in
//! its thread. The
//! message carries buttons: Acknowledge and Silence 1h while it fires unacknowledged, Approve
//! and Reject on a request for approval; Slack sends the clicks to
//! `/integrations/slack/interactions`.
//!
//! The message's `ts` is recorded in Postgres as soon as Slack answers the post, before
//! anything depends on it; every later message about the incident reads it there. A post that
//! may have gone through without its answer arriving (a timeout, a 5xx, a crash) is looked
//! for in the channel's recent history by its metadata before posting again, so a retry never
//! makes a second message.
//!
//! Slack answers HTTP 200 with `ok: false` and an error word for most failures: `ratelimited`
//! and Slack's own outages are retried (HTTP 429 and `Retry-After` honoured), everything else
//! (`channel_not_found`, `not_in_channel`, `invalid_auth`, …) fails at once.

use std::time::Duration;

use reqwest::{header, Client, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{buttons::Button, context, text::escape, webhook};
use crate::notify::{
    failure::{transport_error, Failure},
    message::{elapsed_between, Message},
};
use crate::{
    domain::{TimerKind, TimerWork},
    plan::SlackApp,
    store::Store,
    telemetry,
};

/// Error words worth a retry; every other `ok: false` fails at once.
const RETRYABLE: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// How many of the channel's latest messages are searched for a post whose answer was lost.
const HISTORY: u32 = 100;

/// The metadata event every incident message carries, to be found again.
const EVENT_TYPE: &str = "medic_incident";

/// One call to Slack's Web API.
pub struct Api<'a> {
    pub client: &'a Client,
    /// The notifier's name, under which its messages are recorded.
    pub notifier: &'a str,
    pub app: &'a SlackApp,
}

impl Api<'_> {
    /// POSTs `body` as JSON to `<api_url>/<method>`; Ok is Slack's answer when it says `ok`.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, Failure> {
        let request = self.request(method)?.json(body);
        self.send(method, request).await
    }

    /// POSTs `form` form-encoded: Slack's read methods (`conversations.history`) take their
    /// arguments only this way, and ignore a JSON body.
    pub async fn call_form(&self, method: &str, form: &[(&str, &str)]) -> Result<Value, Failure> {
        let request = self.request(method)?.form(form);
        self.send(method, request).await
    }

    /// A POST to `<api_url>/<method>` with the bot token.
    fn request(&self, method: &str) -> Result<reqwest::RequestBuilder, Failure> {
        let mut url = self.app.api_url.clone();
        url.path_segments_mut()
            .map_err(|_| permanent("api_url cannot take a method".into()))?
            .pop_if_empty()
            .push(method);
        let token = self.app.bot_token.expose_secret();
        Ok(self.client.post(url).bearer_auth(token))
    }

    /// Sends one call and reads Slack's answer: `ok`, or an error worth a retry or not.
    async fn send(&self, method: &str, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        // Each call is made inside the notifier request's span: it carries the incident's trace.
        let response = telemetry::with_traceparent(request)
            .send()
            .await
            .map_err(|e| Failure {
                status: None,
                retryable: true,
                retry_after: None,
                reason: format!("{method}: {}", transport_error(&e)),
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if !status.is_success() {
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            return Err(Failure {
                status: Some(status.as_u16()),
                retryable,
                retry_after,
                reason: format!("{method}: HTTP {}", status.as_u16()),
            });
        }
        let answer: Value = response.json().await.map_err(|e| Failure {
            status: Some(status.as_u16()),
            retryable: true,
            retry_after: None,
            reason: format!("{method}: not a Slack answer: {e}"),
        })?;
        if answer["ok"].as_bool() == Some(true) {
            return Ok(answer);
        }
        let error = answer["error"].as_str().unwrap_or("no error given");
        let error: String = error.chars().take(100).collect();
        Err(Failure {
            status: Some(status.as_u16()),
            retryable: RETRYABLE.contains(&error.as_str()),
            retry_after,
            reason: format!("{method}: {error}"),
        })
    }
}

fn permanent(reason: String) -> Failure {
    Failure {
        status: None,
        retryable: false,
        retry_after: None,
        reason,
    }
}

/// Sends what the timer says: the incident's message, posted or updated, and a reply in its
/// thread for what happened.
pub async fn send(
    client: &Client,
    notifier: &str,
    app: &SlackApp,
    store: Option<&Store>,
    message: &Message<'_>,
) -> Result<u16, Failure> {
    let store = store.ok_or_else(|| permanent("a slack_app notifier needs the database".into()))?;
    let api = Api {
        client,
        notifier,
        app,
    };
    let kind = message.timer.kind();
    if matches!(
        kind,
        TimerKind::Remediation | TimerKind::Verify | TimerKind::Context
    ) {
        return Ok(200);
    }
    let (channel, ts, posted) = root(&api, store, message).await?;
    match kind {
        TimerKind::Opened if posted => {}
        TimerKind::Escalation | TimerKind::Approval => {}
        _ => update(&api, &channel, &ts, message).await?,
    }
    match kind {
        TimerKind::Opened => {}
        TimerKind::ContextReady => context_reply(&api, store, &channel, &ts, message).await?,
        _ => reply(&api, &channel, &ts, message).await?,
    }
    Ok(200)
}

/// What the cluster said, as a reply in the incident's thread.
async fn context_reply(
    api: &Api<'_>,
    store: &Store,
    channel: &str,
    ts: &str,
    message: &Message<'_>,
) -> Result<(), Failure> {
    let incident = &message.timer.incident;
    let context = store.incident_context(incident.id).await.map_err(|e| Failure {
        status: None,
        retryable: true,
        retry_after: None,
        reason: format!("reading the incident's cluster context: {e}"),
    })?;
    let Some(context) = context else {
        return Err(permanent("the incident has no cluster context".into()));
    };
    let (text, blocks) = context::reply(&context, incident.created_at);
    let body = json!({
        "channel": channel, "thread_ts": ts, "text": text, "blocks": blocks, "unfurl_links": false,
    });
    api.call("chat.postMessage", &body).await.map(|_| ())
}

/// The incident's message: as recorded, else found in the channel after a lost answer, else
/// posted now (and recorded at once). The bool says whether it was posted by this call.
async fn root(
    api: &Api<'_>,
    store: &Store,
    message: &Message<'_>,
) -> Result<(String, String, bool), Failure> {
    let incident = message.timer.incident.id;
    let notifier = api.notifier;
    let unavailable = |e: crate::store::StoreError| Failure {
        status: None,
        retryable: true,
        retry_after: None,
        reason: format!("reading the incident's Slack message: {e}"),
    };
    if let Some((channel, ts)) = store
        .slack_message(incident, notifier)
        .await
        .map_err(unavailable)?
    {
        return Ok((channel, ts, false));
    }
    let key = format!("{}:{notifier}", message.dedup_key());
    // A first attempt cannot have posted before; a later one may have, unanswered.
    if message.timer.attempt > 1 || message.timer.occurrence() > 0 {
        if let Some((channel, ts)) = find(api, &key).await {
            let (channel, ts) = store
                .record_slack_message(incident, notifier, &channel, &ts)
                .await
                .map_err(unavailable)?;
            return Ok((channel, ts, false));
        }
    }
    let body = json!({
        "channel": api.app.channel,
        "text": escape(&state_headline(message)),
        "blocks": root_blocks(message),
        "unfurl_links": false,
        "metadata": {"event_type": EVENT_TYPE, "event_payload": {"key": key, "incident_id": incident}},
    });
    let answer = api.call("chat.postMessage", &body).await?;
    let channel = answer["channel"].as_str().unwrap_or_default().to_owned();
    let ts = answer["ts"].as_str().unwrap_or_default().to_owned();
    if channel.is_empty() || ts.is_empty() {
        return Err(permanent(
            "chat.postMessage: the answer has no channel or ts".into(),
        ));
    }
    let (channel, ts) = store
        .record_slack_message(incident, notifier, &channel, &ts)
        .await
        .map_err(unavailable)?;
    Ok((channel, ts, true))
}

/// Looks for the incident's message among the channel's latest, by its metadata key. Only a
/// channel given by ID can be read back; any failure means "not found" (the post goes ahead).
async fn find(api: &Api<'_>, key: &str) -> Option<(String, String)> {
    let channel = api.app.channel.as_str();
    if !looks_like_id(channel) {
        return None;
    }
    let limit = HISTORY.to_string();
    let form = [
        ("channel", channel),
        ("limit", &limit),
        ("include_all_metadata", "true"),
    ];
    let answer = api.call_form("conversations.history", &form).await.ok()?;
    answer["messages"].as_array()?.iter().find_map(|m| {
        let ours = m["metadata"]["event_type"] == EVENT_TYPE && m["metadata"]["event_payload"]["key"] == key;
        ours.then(|| Some((channel.to_owned(), m["ts"].as_str()?.to_owned())))?
    })
}

/// `C…`, `G…` or `D…` followed by letters and digits: an ID, not a name.
fn looks_like_id(channel: &str) -> bool {
    channel.len() > 1
        && channel.starts_with(['C', 'G', 'D'])
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

async fn update(api: &Api<'_>, channel: &str, ts: &str, message: &Message<'_>) -> Result<(), Failure> {
    let body = json!({
        "channel": channel,
        "ts": ts,
        "text": escape(&state_headline(message)),
        "blocks": root_blocks(message),
    });
    api.call("chat.update", &body).await.map(|_| ())
}

/// A reply in the incident's thread; escalations are also shown in the channel.
async fn reply(api: &Api<'_>, channel: &str, ts: &str, message: &Message<'_>) -> Result<(), Failure> {
    let headline = message.headline();
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&headline)}})];
    if let TimerWork::Approval { question, .. } = &message.timer.work {
        let id = question.remediation_id;
        blocks.push(json!({"type": "actions", "elements": [
            Button::Approve(id).element(),
            Button::Reject(id).element(),
        ]}));
    }
    let body = json!({
        "channel": channel,
        "thread_ts": ts,
        "text": escape(&headline),
        "blocks": blocks,
        "reply_broadcast": message.timer.kind() == TimerKind::Escalation,
        "unfurl_links": false,
    });
    api.call("chat.postMessage", &body).await.map(|_| ())
}

/// The incident as it stands: firing, acknowledged (by whom, which way) or resolved.
fn state_headline(message: &Message<'_>) -> String {
    let incident = &message.timer.incident;
    let name = message.alertname();
    if !incident.firing {
        return format!(
            "[RESOLVED] {name} after {}",
            elapsed_between(incident.created_at, incident.resolved_at)
        );
    }
    match &incident.acknowledged {
        Some(ack) => format!("[ACKNOWLEDGED] {name} by {} via {}", ack.by, ack.via),
        None => format!("[FIRING:{}] {name}", incident.firing_alerts),
    }
}

/// The incident's message: its state, what the alert says, and the buttons that still apply.
fn root_blocks(message: &Message<'_>) -> Value {
    let incident = &message.timer.incident;
    let mut blocks = webhook::blocks(message);
    if let Some(first) = blocks.as_array_mut().and_then(|b| b.first_mut()) {
        let mut text = format!("*{}*", escape(&state_headline(message)));
        if let Some(summary) = message.summary() {
            text.push_str(&format!("\n{}", escape(summary)));
        }
        first["text"]["text"] = json!(text);
    }
    if let TimerWork::Remediated { report, .. } = &message.timer.work {
        let line = format!(
            "Last remediation: {} {}: *{}* {}",
            report.action, report.target, report.result, report.summary
        );
        if let Some(blocks) = blocks.as_array_mut() {
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(&line)}]}));
        }
    }
    if let (Some(summary), Some(blocks)) = (&message.timer.context, blocks.as_array_mut()) {
        let line = context::line(summary);
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]}));
    }
    if incident.firing && incident.acknowledged.is_none() {
        let hour = Duration::from_secs(3600);
        if let Some(blocks) = blocks.as_array_mut() {
            blocks.push(json!({"type": "actions", "elements": [
                Button::Acknowledge(incident.id).element(),
                Button::Silence(incident.id, hour).element(),
            ]}));
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_are_told_from_names() {
        assert!(looks_like_id("C024BE91L"));
        assert!(looks_like_id("G0123ABC"));
        assert!(!looks_like_id("#incidents"));
        assert!(!looks_like_id("incidents"));
        assert!(!looks_like_id("C"));
    }
}
