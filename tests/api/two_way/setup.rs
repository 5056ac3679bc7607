//! What the two-way tests share: a local Slack Web API, a medic with a Slack app and PagerDuty
//! notifiers and users mapped to Slack and PagerDuty, signed Slack clicks, and waiting for what
//! medic does after it answered.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

use crate::helpers::{
    eventually,
    settings::{pagerduty, rule, settings, slack_app, TestSettings},
    sink::{Sink, SLACK_ROOT_TS},
    TestApp,
};

pub(super) const WAIT: Duration = Duration::from_secs(15);
pub(super) const SIGNING_SECRET: &str = "slack-signing-secret";
pub(super) const PD_SECRET: &str = "pd-webhook-secret";
pub(super) const PD_OLD_SECRET: &str = "pd-webhook-secret-old";

/// The users: alice (responder) and vera (viewer) known to Slack, alice to PagerDuty too; ada
/// (admin) to neither.
pub(super) fn users() -> Value {
    json!([
        {"name": "alice", "role": "responder", "token": "alice-token-0123456789",
         "slack_user_id": "UALICE", "pagerduty_user_id": "PALICE"},
        {"name": "vera", "role": "viewer", "token": "vera-token-0123456789", "slack_user_id": "UVERA"},
        {"name": "ada", "role": "admin", "token": "ada-token-0123456789"},
    ])
}

/// The [`users`] and a Slack app whose Web API is `slack`: what every two-way medic has.
pub(super) fn with_slack_app(slack: &Sink) -> TestSettings {
    let app = slack_app(&slack.url("/api"), SIGNING_SECRET);
    settings().users(users()).notifier("slack-app", app)
}

/// A medic with the Slack app, two PagerDuty integrations whose webhooks it trusts (the second
/// as if its secret were being rotated), and one rule telling the Slack app, escalating in an
/// hour.
pub(super) fn two_way(slack: &Sink) -> TestSettings {
    let pd = slack.url("/pagerduty");
    let retry = json!({"initial_backoff": "100ms", "max_backoff": "2s", "give_up_after": "30s"});
    with_slack_app(slack)
        .notifier(
            "pagerduty",
            pagerduty(&pd, "rk").with("webhook_secret", PD_SECRET),
        )
        .notifier(
            "pagerduty-old",
            pagerduty(&pd, "rk2").with("webhook_secret", PD_OLD_SECRET),
        )
        .rule(rule("all").notify(&["slack-app"]).escalate("1h", &["slack-app"]))
        .with("engine", json!({"request_timeout": "2s", "retry": retry}))
}

/// A medic with the [`two_way`] settings.
pub(super) async fn app(slack: &Sink) -> TestApp {
    TestApp::builder().settings(&two_way(slack)).spawn().await
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
        "container": {"channel_id": "C0TEST", "message_ts": SLACK_ROOT_TS},
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
