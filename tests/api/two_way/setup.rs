//! What the two-way tests share: a local Slack Web API, a medic with a Slack app and PagerDuty
//! notifiers and users mapped to Slack and PagerDuty, signed Slack clicks, and waiting for what
//! medic does after it answered.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

use crate::helpers::{
    eventually,
    sink::{Reply, Sink},
    TestApp,
};

pub(super) const WAIT: Duration = Duration::from_secs(15);
pub(super) const SIGNING_SECRET: &str = "slack-signing-secret";
pub(super) const PD_SECRET: &str = "pd-webhook-secret";
pub(super) const PD_OLD_SECRET: &str = "pd-webhook-secret-old";
pub(super) const ROOT_TS: &str = "1700000000.000100";

pub(super) fn users() -> &'static str {
    "server:
  auth:
    users:
      - {name: alice, role: responder, token: alice-token-0123456789, slack_user_id: UALICE, pagerduty_user_id: PALICE}
      - {name: vera, role: viewer, token: vera-token-0123456789, slack_user_id: UVERA}
      - {name: ada, role: admin, token: ada-token-0123456789}
"
}

/// A local Slack Web API: every method answers `ok` (the post with a `ts`).
pub(super) async fn slack() -> Sink {
    let sink = Sink::start(1).await;
    sink.set_default(
        "/api/chat.postMessage",
        Reply::status(200).with_body(&format!(r#"{{"ok":true,"channel":"C0TEST","ts":"{ROOT_TS}"}}"#)),
    );
    sink.set_default(
        "/api/",
        Reply::status(200).with_body(r#"{"ok":true,"messages":[]}"#),
    );
    sink
}

pub(super) async fn app(slack: &Sink, extra: &str, database: Option<&str>) -> TestApp {
    let yaml = format!(
        r#"{users}
notifiers:
  slack-app:
    type: slack_app
    bot_token: xoxb-test
    signing_secret: {SIGNING_SECRET}
    channel: C0TEST
    api_url: "{api}"
  pagerduty:
    type: pagerduty
    url: "{pd}"
    routing_key: rk
    webhook_secret: {PD_SECRET}
  pagerduty-old:
    type: pagerduty
    url: "{pd}"
    routing_key: rk2
    webhook_secret: {PD_OLD_SECRET}
rules:
  - name: all
    notify: [slack-app]
    escalation: [{{after: 1h, notify: [slack-app]}}]
engine: {{request_timeout: 2s, retry: {{initial_backoff: 100ms, max_backoff: 2s, give_up_after: 30s}}}}
{extra}"#,
        users = users(),
        api = slack.url("/api"),
        pd = slack.url("/pagerduty"),
    );
    let mut builder = TestApp::builder().without_users().config(&yaml);
    if let Some(url) = database {
        builder = builder.database(url);
    }
    builder.spawn().await
}

pub(super) fn root_posts(slack: &Sink) -> Vec<Value> {
    slack
        .received_at("/api/chat.postMessage")
        .into_iter()
        .map(|r| r.body)
        .filter(|b| b["thread_ts"].is_null())
        .collect()
}

/// The first body Slack received at `method` (e.g. `/api/chat.update`) that `matches`, once
/// it has arrived.
pub(super) async fn sent(slack: &Sink, method: &str, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    eventually(what, WAIT, || async {
        slack
            .received_at(method)
            .into_iter()
            .map(|r| r.body)
            .find(|b| matches(b))
    })
    .await
}

/// A Slack interaction: the form Slack posts, signed as Slack signs it (`at` seconds from now).
pub(super) fn interaction(
    app: &TestApp,
    user: &str,
    action_id: &str,
    value: &str,
    secret: &str,
    at: i64,
) -> reqwest::RequestBuilder {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": "C0TEST"},
        "container": {"channel_id": "C0TEST", "message_ts": ROOT_TS},
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
    });
    let body = format!("payload={}", urlencode(&payload.to_string()));
    let timestamp = (chrono::Utc::now().timestamp() + at).to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    app.client
        .post(format!("{}/integrations/slack/interactions", app.address))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", timestamp)
        .header("X-Slack-Signature", signature)
        .body(body)
}

pub(super) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub(super) async fn acknowledged_by(app: &TestApp, id: i64) -> Value {
    app.incident(id).await["acknowledgement"].clone()
}
