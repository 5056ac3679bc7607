//! Two-way: a Slack app's one message per incident (posted, updated, threaded) against a local
//! server answering as Slack's Web API does; its signed button clicks; PagerDuty Webhooks v3
//! back into medic; and silences in a real Alertmanager 0.25.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

use crate::helpers::{
    firing_alert, shared_postgres,
    sink::{Reply, Sink},
    unique_name, TestApp,
};

const WAIT: Duration = Duration::from_secs(15);
const SIGNING_SECRET: &str = "slack-signing-secret";
const PD_SECRET: &str = "pd-webhook-secret";
const PD_OLD_SECRET: &str = "pd-webhook-secret-old";
const ROOT_TS: &str = "1700000000.000100";

fn users() -> &'static str {
    "server:
  auth:
    users:
      - {name: alice, role: responder, token: alice-token-0123456789, slack_user_id: UALICE, pagerduty_user_id: PALICE}
      - {name: vera, role: viewer, token: vera-token-0123456789, slack_user_id: UVERA}
      - {name: ada, role: admin, token: ada-token-0123456789}
"
}

/// A local Slack Web API: every method answers `ok` (the post with a `ts`).
async fn slack() -> Sink {
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

async fn app(slack: &Sink, extra: &str, database: Option<&str>) -> TestApp {
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

fn root_posts(slack: &Sink) -> Vec<Value> {
    slack
        .received_at("/api/chat.postMessage")
        .into_iter()
        .map(|r| r.body)
        .filter(|b| b["thread_ts"].is_null())
        .collect()
}

async fn until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first body Slack received at `method` (e.g. `/api/chat.update`) that `matches`, once
/// it has arrived.
async fn sent(slack: &Sink, method: &str, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    until(what, || {
        slack
            .received_at(method)
            .into_iter()
            .map(|r| r.body)
            .find(|b| matches(b))
    })
    .await
}

#[tokio::test]
async fn a_slack_app_keeps_one_message_per_incident_updated_with_its_timeline_in_the_thread() {
    let slack = slack().await;
    let app = app(&slack, "", None).await;
    let id = app
        .post_for_incident(&firing_alert(
            "g1",
            "DiskFull",
            "00000000000000a1",
            json!({"severity": "critical"}),
        ))
        .await;

    let posted = slack.wait_for("/api/chat.postMessage", 1, WAIT).await;
    let root = &posted[0];
    assert_eq!(root.headers["authorization"], "Bearer xoxb-test");
    assert_eq!(root.body["channel"], "C0TEST");
    assert!(
        root.body["text"].as_str().unwrap().starts_with("[FIRING:1]"),
        "{}",
        root.body
    );
    assert_eq!(
        root.body["metadata"]["event_payload"]["key"],
        format!("medic-incident-{id}:slack-app")
    );
    let buttons = root.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons")["elements"]
        .clone();
    assert_eq!(buttons[0]["action_id"], "medic_ack");
    assert_eq!(buttons[0]["value"], id.to_string());
    assert_eq!(buttons[1]["action_id"], "medic_silence");
    assert_eq!(buttons[1]["value"], format!("{id}:1h"));

    // Acknowledged: the same message is updated, and the thread says so.
    let ack = app.acknowledge(id, &json!({"note": "looking"})).await;
    assert_eq!(ack.status(), 200);
    let updates = slack.wait_for("/api/chat.update", 1, WAIT).await;
    assert_eq!(updates[0].body["ts"], ROOT_TS);
    assert_eq!(updates[0].body["channel"], "C0TEST");
    let text = updates[0].body["text"].as_str().unwrap();
    assert!(
        text.contains("ACKNOWLEDGED") && text.contains("alice") && text.contains("via api"),
        "{text}"
    );
    assert!(
        !updates[0].body["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["type"] == "actions"),
        "no Acknowledge button once acknowledged"
    );
    let replies = until("a thread reply", || {
        let replies: Vec<Value> = slack
            .received_at("/api/chat.postMessage")
            .into_iter()
            .map(|r| r.body)
            .filter(|b| b["thread_ts"] == ROOT_TS)
            .collect();
        (!replies.is_empty()).then_some(replies)
    })
    .await;
    assert!(replies[0]["text"].as_str().unwrap().contains("ACKNOWLEDGED"));
    assert_eq!(root_posts(&slack).len(), 1, "one message per incident");
    let stored: String = app
        .sql()
        .await
        .query_one("SELECT ts FROM slack_messages WHERE incident_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, ROOT_TS);

    // Resolved: the same message says so, and loses its buttons for good.
    let mut resolved = firing_alert(
        "g1",
        "DiskFull",
        "00000000000000a1",
        json!({"severity": "critical"}),
    );
    resolved["status"] = json!("resolved");
    resolved["alerts"][0]["status"] = json!("resolved");
    resolved["alerts"][0]["endsAt"] = json!("2026-11-26T10:05:00Z");
    assert_eq!(app.post_for_incident(&resolved).await, id);
    let update = sent(
        &slack,
        "/api/chat.update",
        "the message updated as resolved",
        |b| b["text"].as_str().is_some_and(|t| t.starts_with("[RESOLVED]")),
    )
    .await;
    assert_eq!(update["ts"], ROOT_TS);
    assert!(!update["blocks"].to_string().contains("medic_ack"), "{update}");
    assert_eq!(root_posts(&slack).len(), 1, "still one message");
}

#[tokio::test]
async fn escalations_are_thread_replies_also_shown_in_the_channel() {
    let slack = slack().await;
    let yaml = format!(
        r#"{users}
notifiers:
  slack-app:
    type: slack_app
    bot_token: xoxb-test
    signing_secret: {SIGNING_SECRET}
    channel: C0TEST
    api_url: "{api}"
rules:
  - name: all
    notify: [slack-app]
    escalation: [{{after: 1s, notify: [slack-app]}}]
"#,
        users = users(),
        api = slack.url("/api"),
    );
    let app = TestApp::builder().without_users().config(&yaml).spawn().await;
    app.post_for_incident(&firing_alert("g13", "J", "00000000000000b4", json!({})))
        .await;
    let escalated = sent(
        &slack,
        "/api/chat.postMessage",
        "the escalation in the thread",
        |b| {
            b["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("[ESCALATION 1]"))
        },
    )
    .await;
    assert_eq!(escalated["thread_ts"], ROOT_TS);
    assert_eq!(escalated["reply_broadcast"], true);
    assert_eq!(root_posts(&slack).len(), 1, "no second message");
}

#[tokio::test]
async fn slack_errors_are_retried_or_final_as_slack_documents_them() {
    let slack = slack().await;
    slack.enqueue(
        "/api/chat.postMessage",
        vec![Reply::status(200)
            .with_header("Retry-After", "1")
            .with_body(r#"{"ok":false,"error":"ratelimited"}"#)],
    );
    let app = app(&slack, "", None).await;
    let started = Instant::now();
    app.post_for_incident(&firing_alert("g2", "A", "00000000000000a2", json!({})))
        .await;
    let posts = slack.wait_for("/api/chat.postMessage", 2, WAIT).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    assert_eq!(posts.len(), 2);

    // As Slack usually says it: HTTP 429 with Retry-After.
    slack.enqueue(
        "/api/chat.postMessage",
        vec![Reply::status(429)
            .with_header("Retry-After", "1")
            .with_body(r#"{"ok":false,"error":"ratelimited"}"#)],
    );
    let limited = app
        .post_for_incident(&firing_alert("g2b", "A2", "00000000000000c2", json!({})))
        .await;
    let posts = until("the post retried after a 429", || {
        let posts: Vec<_> = slack
            .received_at("/api/chat.postMessage")
            .into_iter()
            .filter(|r| r.body["metadata"]["event_payload"]["incident_id"] == limited)
            .collect();
        (posts.len() >= 2).then_some(posts)
    })
    .await;
    let waited = posts[1].at.duration_since(posts[0].at).unwrap();
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After honoured: {waited:?}"
    );

    slack.enqueue(
        "/api/chat.postMessage",
        vec![Reply::status(200).with_body(r#"{"ok":false,"error":"channel_not_found"}"#)],
    );
    let id = app
        .post_for_incident(&firing_alert("g3", "B", "00000000000000a3", json!({})))
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let incident = app.incident(id).await;
        let opened = incident["timers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == "opened")
            .cloned()
            .unwrap();
        if opened["state"] == "failed" {
            assert_eq!(
                opened["attempts"].as_array().unwrap().len(),
                1,
                "not retried: {opened}"
            );
            assert!(opened["last_error"]
                .as_str()
                .unwrap()
                .contains("channel_not_found"));
            break;
        }
        assert!(Instant::now() < deadline, "{incident}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_post_whose_answer_was_lost_is_found_in_the_channel_not_made_twice() {
    let slack = slack().await;
    // The first post "goes through" but its answer is a 500; the channel's history has it.
    slack.enqueue("/api/chat.postMessage", vec![Reply::status(500)]);
    slack.set_default(
        "/api/conversations.history",
        Reply::status(200).with_body(
            r#"{"ok":true,"messages":[{"ts":"1700000000.000999","metadata":{"event_type":"medic_incident","event_payload":{"key":"medic-incident-1:slack-app"}}}]}"#,
        ),
    );
    let app = app(&slack, "", None).await;
    let id = app
        .post_for_incident(&firing_alert("g4", "C", "00000000000000a4", json!({})))
        .await;
    assert_eq!(id, 1, "a fresh database");
    let history = slack.wait_for("/api/conversations.history", 1, WAIT).await;
    // Slack's read methods take form-encoded arguments only; a JSON body is ignored there.
    assert!(
        history[0].headers["content-type"].starts_with("application/x-www-form-urlencoded"),
        "{:?}",
        history[0].headers
    );
    assert_eq!(history[0].headers["authorization"], "Bearer xoxb-test");
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&history[0].text).unwrap();
    for (key, value) in [("channel", "C0TEST"), ("include_all_metadata", "true")] {
        assert!(form.contains(&(key.to_owned(), value.to_owned())), "{form:?}");
    }
    let stored = until("the message recorded", || recorded_ts(&app.database_url, id)).await;
    assert_eq!(stored, "1700000000.000999");
    assert_eq!(root_posts(&slack).len(), 1, "the lost post only, none again");
    app.acknowledge(id, &json!({})).await;
    let updates = slack.wait_for("/api/chat.update", 1, WAIT).await;
    assert_eq!(updates[0].body["ts"], "1700000000.000999");
}

/// The recorded ts, read synchronously (for `until`).
fn recorded_ts(url: &str, id: i64) -> Option<String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.ok()?;
            tokio::spawn(connection);
            client
                .query_opt("SELECT ts FROM slack_messages WHERE incident_id = $1", &[&id])
                .await
                .ok()?
                .map(|row| row.get(0))
        })
    })
    .join()
    .unwrap()
}

/// A Slack interaction: the form Slack posts, signed as Slack signs it (`at` seconds from now).
fn interaction(
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

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Waits until the metric's sample has this value (actions from Slack are done after the answer).
async fn metric_reaches(app: &TestApp, sample: &str, value: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = app.metric(sample).await;
        if now == value {
            return;
        }
        assert!(Instant::now() < deadline, "{sample} is {now}, expected {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn acknowledged_by(app: &TestApp, id: i64) -> Value {
    app.incident(id).await["acknowledgement"].clone()
}

#[tokio::test]
async fn slack_buttons_act_as_the_mapped_medic_user_and_refuse_everyone_else() {
    let slack = slack().await;
    let app = app(&slack, "", None).await;
    let id = app
        .post_for_incident(&firing_alert("g5", "D", "00000000000000a5", json!({})))
        .await;
    slack.wait_for("/api/chat.postMessage", 1, WAIT).await;
    let value = id.to_string();

    for (request, why) in [
        (
            interaction(&app, "UALICE", "medic_ack", &value, "wrong-secret", 0),
            "wrong signature",
        ),
        (
            interaction(&app, "UALICE", "medic_ack", &value, SIGNING_SECRET, -400),
            "stale timestamp",
        ),
        (
            interaction(&app, "UALICE", "medic_ack", &value, SIGNING_SECRET, 400),
            "future timestamp",
        ),
    ] {
        assert_eq!(request.send().await.unwrap().status(), 401, "{why}");
    }
    let unsigned = app
        .client
        .post(format!("{}/integrations/slack/interactions", app.address))
        .body("payload=%7B%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(acknowledged_by(&app, id).await.is_null());

    // Unknown to medic, or only a viewer: answered 200, told why, nothing changes.
    for (user, why) in [
        ("UNOBODY", "does not know your Slack user"),
        ("UVERA", "needs responder"),
    ] {
        let before = slack.received_at("/api/chat.postEphemeral").len();
        let started = Instant::now();
        let answer = interaction(&app, user, "medic_ack", &value, SIGNING_SECRET, 0)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "within Slack's 3 seconds"
        );
        let told = slack.wait_for("/api/chat.postEphemeral", before + 1, WAIT).await;
        let told = &told[before].body;
        assert_eq!(told["user"], user);
        assert!(told["text"].as_str().unwrap().contains(why), "{told}");
        assert!(acknowledged_by(&app, id).await.is_null());
    }

    let answer = interaction(&app, "UALICE", "medic_ack", &value, SIGNING_SECRET, 0)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let deadline = Instant::now() + WAIT;
    let ack = loop {
        let ack = acknowledged_by(&app, id).await;
        if !ack.is_null() {
            break ack;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ack["by"], "alice");
    assert_eq!(ack["via"], "slack");
    // Counted as any acknowledgement is: the pending escalation it stopped.
    metric_reaches(&app, "medic_timers_cancelled_total", 1.0).await;
    let incident = app.incident(id).await;
    let event = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "acknowledged")
        .cloned()
        .unwrap();
    assert_eq!(event["via"], "slack");
    assert_eq!(event["by"], "alice");
    // The message is updated to say who.
    let updates = slack.wait_for("/api/chat.update", 1, WAIT).await;
    assert!(updates[0].body["text"]
        .as_str()
        .unwrap()
        .contains("alice via slack"));
}

#[tokio::test]
async fn approve_and_reject_buttons_decide_requests_for_approval() {
    let slack = slack().await;
    let database = shared_postgres().create_database(&unique_name()).await;
    let extra = format!(
        r#"remediation:
  limits: {{min_query_age: 100ms}}
  databases:
    app: {{url: "{database}", users: [nobody_here]}}
"#
    );
    // One rule, whose step needs approval.
    let app = app_with_rule(&slack, &extra, &database).await;
    let id = app
        .post_for_incident(&firing_alert("g6", "PoolFull", "00000000000000a6", json!({})))
        .await;
    let request = until_json(&app, "/api/v1/remediations?state=awaiting_approval").await;
    assert_eq!(request["incident_id"], id);
    let rid = request["id"].to_string();
    // The request reached the thread with its buttons.
    let asked = sent(
        &slack,
        "/api/chat.postMessage",
        "the request in the thread",
        |b| b["text"].as_str().is_some_and(|t| t.contains("APPROVAL NEEDED")),
    )
    .await;
    assert_eq!(asked["thread_ts"], ROOT_TS);
    let elements = &asked["blocks"][1]["elements"];
    assert_eq!(elements[0]["action_id"], "medic_approve");
    assert_eq!(elements[0]["value"], rid);
    assert_eq!(elements[1]["action_id"], "medic_reject");

    // A viewer cannot approve; alice can.
    let before = slack.received_at("/api/chat.postEphemeral").len();
    interaction(&app, "UVERA", "medic_approve", &rid, SIGNING_SECRET, 0)
        .send()
        .await
        .unwrap();
    slack.wait_for("/api/chat.postEphemeral", before + 1, WAIT).await;
    interaction(&app, "UALICE", "medic_approve", &rid, SIGNING_SECRET, 0)
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let incident = app.incident(id).await;
        let r = &incident["remediations"][0];
        if !r["finished_at"].is_null() && r["result"] != "awaiting_approval" {
            assert_eq!(r["approval"]["decided_by"], "alice");
            assert_eq!(r["approval"]["approved"], true);
            assert_ne!(r["result"], "skipped_unapproved");
            break;
        }
        assert!(Instant::now() < deadline, "{incident}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The step's result is a reply in the thread (a verification is reported the same way);
    // the message itself shows the last remediation.
    let reports = until("the result in the thread", || {
        let reports: Vec<String> = slack
            .received_at("/api/chat.postMessage")
            .into_iter()
            .filter(|r| r.body["thread_ts"] == ROOT_TS)
            .filter_map(|r| r.body["text"].as_str().map(str::to_owned))
            .filter(|t| t.starts_with("[REMEDIATION "))
            .collect();
        (!reports.is_empty()).then_some(reports)
    })
    .await;
    assert!(reports[0].contains("postgres_relieve_pool"), "{reports:?}");
    let update = sent(
        &slack,
        "/api/chat.update",
        "the message updated with the remediation",
        |b| {
            b["blocks"]
                .to_string()
                .contains("Last remediation: postgres_relieve_pool")
        },
    )
    .await;
    assert_eq!(update["ts"], ROOT_TS);
    assert_eq!(root_posts(&slack).len(), 1, "one message per incident");
}

async fn app_with_rule(slack: &Sink, extra: &str, database: &str) -> TestApp {
    let yaml = format!(
        r#"{users}
notifiers:
  slack-app:
    type: slack_app
    bot_token: xoxb-test
    signing_secret: {SIGNING_SECRET}
    channel: C0TEST
    api_url: "{api}"
kubernetes: {{enabled: false}}
rules:
  - name: pool
    notify: [slack-app]
    remediate:
      action: postgres_relieve_pool
      params: {{database: app, threshold: 1s}}
      approval: required
{extra}"#,
        users = users(),
        api = slack.url("/api"),
    );
    TestApp::builder()
        .without_users()
        .config(&yaml)
        .database(database)
        .spawn()
        .await
}

async fn until_json(app: &TestApp, path: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let body = app.get_json(path).await;
        if let Some(first) = body["remediations"].as_array().and_then(|r| r.first()) {
            return first.clone();
        }
        assert!(Instant::now() < deadline, "{path}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A PagerDuty v3 webhook, signed with these secrets (PagerDuty lists one per secret).
fn pagerduty(app: &TestApp, event: &Value, secrets: &[&str]) -> reqwest::RequestBuilder {
    let body = event.to_string();
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(body.as_bytes());
            format!("v1={}", hex::encode(mac.finalize().into_bytes()))
        })
        .collect();
    app.client
        .post(format!("{}/integrations/pagerduty", app.address))
        .header("Content-Type", "application/json")
        .header("X-PagerDuty-Signature", signatures.join(","))
        .body(body)
}

fn pd_event(kind: &str, key: &str, agent: &str) -> Value {
    json!({"event": {
        "id": "01DEN2S6HQ6ZAYDEKRAX3CD3IU",
        "event_type": kind,
        "resource_type": "incident",
        "occurred_at": "2026-11-30T10:00:00.000Z",
        "agent": {"id": agent, "type": "user_reference", "summary": "Pat Doe"},
        "data": {"id": "PGR0VU2", "type": "incident", "incident_key": key, "status": "acknowledged"},
    }})
}

#[tokio::test]
async fn pagerduty_webhooks_acknowledge_and_stop_escalation_when_signed() {
    let slack = slack().await;
    let app = app(&slack, "", None).await;
    let first = app
        .post_for_incident(&firing_alert("g7", "E", "00000000000000a7", json!({})))
        .await;
    let second = app
        .post_for_incident(&firing_alert("g8", "F", "00000000000000a8", json!({})))
        .await;

    let ack = pd_event(
        "incident.acknowledged",
        &format!("medic-incident-{first}"),
        "PALICE",
    );
    assert_eq!(
        pagerduty(&app, &ack, &["not-the-secret"])
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let unsigned = app
        .client
        .post(format!("{}/integrations/pagerduty", app.address))
        .json(&ack)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(acknowledged_by(&app, first).await.is_null());

    // During a rotation PagerDuty signs with both secrets; any known one will do.
    let answer = pagerduty(&app, &ack, &["rotated-away", PD_OLD_SECRET])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let acked = acknowledged_by(&app, first).await;
    assert_eq!(acked["by"], "alice");
    assert_eq!(acked["via"], "pagerduty");

    // Resolved in PagerDuty, by someone medic does not know: escalation and remediation stop.
    let resolved = pd_event(
        "incident.resolved",
        &format!("medic-incident-{second}"),
        "PUNKNOWN",
    );
    assert_eq!(
        pagerduty(&app, &resolved, &[PD_SECRET])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let incident = app.incident(second).await;
    assert_eq!(incident["acknowledgement"]["by"], "Pat Doe");
    assert_eq!(incident["acknowledgement"]["note"], "resolved in PagerDuty");
    let escalation = incident["timers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "escalation")
        .cloned()
        .unwrap();
    assert_eq!(escalation["state"], "cancelled", "{incident}");
    assert!(incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "resolve_elsewhere" && e["via"] == "pagerduty"));
    assert_eq!(
        incident["status"], "firing",
        "closes only when Alertmanager says so"
    );

    // Resolved in PagerDuty after it was acknowledged there (PagerDuty's usual order): said in
    // the timeline, once, however often PagerDuty sends it.
    let resolved_first = pd_event("incident.resolved", &format!("medic-incident-{first}"), "PALICE");
    for _ in 0..2 {
        let answer = pagerduty(&app, &resolved_first, &[PD_SECRET])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let timeline = app.incident(first).await["timeline"].clone();
    let said: Vec<&Value> = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "resolve_elsewhere")
        .collect();
    assert_eq!(said.len(), 1, "{timeline}");
    assert_eq!(said[0]["by"], "alice");
    assert_eq!(said[0]["via"], "pagerduty");
    // Each acknowledgement from PagerDuty counted the escalation it stopped.
    metric_reaches(&app, "medic_timers_cancelled_total", 2.0).await;

    // Another installation's incident, or an event medic does not act on: 200, ignored.
    for event in [
        pd_event("incident.acknowledged", "other-install-incident-1", "PALICE"),
        pd_event(
            "incident.priority_updated",
            &format!("medic-incident-{first}"),
            "PALICE",
        ),
    ] {
        let answer = pagerduty(&app, &event, &[PD_SECRET]).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        assert!(body["ignored"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn dedup_keys_carry_the_installation_name() {
    let slack = slack().await;
    let app = TestApp::builder()
        .without_users()
        .config(&format!(
            "{}  instance: eu-west\nnotifiers:\n  pd: {{type: pagerduty, url: \"{}\", routing_key: rk}}\nrules:\n  - name: all\n    notify: [pd]\n",
            users(),
            slack.url("/pd")
        ))
        .spawn()
        .await;
    let id = app
        .post_for_incident(&firing_alert("g9", "G", "00000000000000a9", json!({})))
        .await;
    let sent = slack.wait_for("/pd", 1, WAIT).await;
    assert_eq!(sent[0].body["dedup_key"], format!("eu-west-incident-{id}"));
}

/// A real Alertmanager 0.25 on a free port.
struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn alertmanager() -> Alertmanager {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, "route: {receiver: none}\nreceivers: [{name: none}]\n").unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-alertmanager (apt-get install prometheus-alertmanager)");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    loop {
        let ready = reqwest::get(format!("{url}/-/ready")).await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "Alertmanager did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Alertmanager {
        child,
        url,
        _dir: dir,
    }
}

async fn am_silences(am: &Alertmanager) -> Vec<Value> {
    reqwest::get(format!("{}/api/v2/silences", am.url))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

#[tokio::test]
async fn silences_are_made_and_expired_in_alertmanager_from_the_api_and_slack() {
    let am = alertmanager().await;
    let slack = slack().await;
    let app = app(&slack, &format!("alertmanager: {{url: \"{}\"}}\n", am.url), None).await;
    let mut alert = firing_alert("g10", "Noisy", "00000000000000b1", json!({"namespace": "shop"}));
    alert["groupLabels"] = json!({"alertname": "Noisy", "namespace": "shop"});
    let id = app.post_for_incident(&alert).await;
    let path = format!("/api/v1/incidents/{id}/silence");
    let send = |token: &str, method: reqwest::Method, body: Option<Value>| {
        let mut request = app
            .client
            .request(method, format!("{}{path}", app.address))
            .bearer_auth(token.to_owned());
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };

    let refused = send(
        "vera-token-0123456789",
        reqwest::Method::POST,
        Some(json!({"duration": "1h"})),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 403);
    let bad = send(
        "alice-token-0123456789",
        reqwest::Method::POST,
        Some(json!({"duration": "forever"})),
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 422);
    let made = send(
        "alice-token-0123456789",
        reqwest::Method::POST,
        Some(json!({"duration": "2h", "note": "deploy in progress"})),
    )
    .await
    .unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    let silence_id = made["silence"]["silence_id"].as_str().unwrap().to_owned();

    let silences = am_silences(&am).await;
    let silence = silences
        .iter()
        .find(|s| s["id"] == silence_id)
        .expect("in Alertmanager");
    assert_eq!(silence["status"]["state"], "active");
    assert_eq!(silence["createdBy"], "alice");
    assert!(silence["comment"]
        .as_str()
        .unwrap()
        .contains(&format!("medic incident {id}")));
    assert!(silence["comment"]
        .as_str()
        .unwrap()
        .contains("deploy in progress"));
    let mut matchers: Vec<(String, String, bool, bool)> = silence["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["value"].as_str().unwrap().to_owned(),
                m["isRegex"].as_bool().unwrap(),
                m["isEqual"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    matchers.sort();
    assert_eq!(
        matchers,
        [
            ("alertname".to_owned(), "Noisy".to_owned(), false, true),
            ("namespace".to_owned(), "shop".to_owned(), false, true)
        ]
    );
    let incident = app.incident(id).await;
    assert!(incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "silence" && e["silence_id"] == silence_id.as_str()));

    let expired = send("alice-token-0123456789", reqwest::Method::DELETE, None)
        .await
        .unwrap();
    assert_eq!(expired.status(), 200);
    let silences = am_silences(&am).await;
    let silence = silences.iter().find(|s| s["id"] == silence_id).unwrap();
    assert_eq!(silence["status"]["state"], "expired");
    let again = send("alice-token-0123456789", reqwest::Method::DELETE, None)
        .await
        .unwrap();
    assert_eq!(again.status(), 404);

    // The Slack button does the same, as the mapped user.
    interaction(
        &app,
        "UALICE",
        "medic_silence",
        &format!("{id}:1h"),
        SIGNING_SECRET,
        0,
    )
    .send()
    .await
    .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let active: Vec<Value> = am_silences(&am)
            .await
            .into_iter()
            .filter(|s| s["status"]["state"] == "active")
            .collect();
        if let Some(silence) = active.first() {
            assert_eq!(silence["createdBy"], "alice");
            break;
        }
        assert!(Instant::now() < deadline, "no silence from the Slack button");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The silence changes nothing the message shows, so its thread says who silenced it.
    let told = sent(
        &slack,
        "/api/chat.postMessage",
        "the silence in the thread",
        |b| b["text"].as_str().is_some_and(|t| t.starts_with("Silenced")),
    )
    .await;
    assert_eq!(told["thread_ts"], ROOT_TS);
    assert_eq!(told["channel"], "C0TEST");
    let text = told["text"].as_str().unwrap();
    assert!(
        text.starts_with("Silenced in Alertmanager by alice until "),
        "{text}"
    );
}

#[tokio::test]
async fn silencing_without_an_alertmanager_says_so() {
    let slack = slack().await;
    let app = app(&slack, "", None).await;
    let id = app
        .post_for_incident(&firing_alert("g11", "H", "00000000000000b2", json!({})))
        .await;
    let answer = app
        .client
        .post(format!("{}/api/v1/incidents/{id}/silence", app.address))
        .bearer_auth("alice-token-0123456789")
        .json(&json!({"duration": "1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 409);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("alertmanager.url"),
        "{body}"
    );
}

#[tokio::test]
async fn an_acknowledgement_lasts_until_the_incident_resolves_and_a_refire_pages_again() {
    let slack = slack().await;
    let app = app(&slack, "", None).await;
    let alert = firing_alert("g12", "I", "00000000000000b3", json!({}));
    let id = app.post_for_incident(&alert).await;
    app.acknowledge(id, &json!({})).await;
    // Repeats while acknowledged change nothing.
    assert_eq!(app.post_for_incident(&alert).await, id);
    assert_eq!(acknowledged_by(&app, id).await["by"], "alice");
    let mut resolved = alert.clone();
    resolved["status"] = json!("resolved");
    resolved["alerts"][0]["status"] = json!("resolved");
    resolved["alerts"][0]["endsAt"] = json!("2026-11-26T10:05:00Z");
    app.post_for_incident(&resolved).await;
    // It fires again: a new episode, a new incident, not acknowledged, announced again.
    let mut refire = alert.clone();
    refire["alerts"][0]["startsAt"] = json!("2026-11-26T11:00:00Z");
    let again = app.post_for_incident(&refire).await;
    assert_ne!(again, id);
    assert!(acknowledged_by(&app, again).await.is_null());
    until("a second root message", || {
        (root_posts(&slack).len() >= 2).then_some(())
    })
    .await;
}

#[test]
fn slack_app_and_integration_settings_are_checked_with_their_key_paths() {
    use crate::helpers::config::{assert_problem, problems_in};
    let problems = problems_in(
        "notifiers:
  app: {type: slack_app, url: \"https://hooks.slack.com/services/x\"}
  hook: {type: slack, url: \"https://hooks.slack.com/services/y\", signing_secret: s, webhook_secret: w}
alertmanager: {url: \"ftp://am\"}
",
    );
    assert_problem(&problems, "notifiers.app.bot_token", "required");
    assert_problem(&problems, "notifiers.app.signing_secret", "required");
    assert_problem(&problems, "notifiers.app.channel", "required");
    assert_problem(&problems, "notifiers.app.url", "not used by a slack_app notifier");
    assert_problem(
        &problems,
        "notifiers.hook.signing_secret",
        "not used by a slack notifier",
    );
    assert_problem(
        &problems,
        "notifiers.hook.webhook_secret",
        "not used by a slack notifier",
    );
    assert_problem(&problems, "alertmanager.url", "http or https");

    let problems = problems_in(
        "    users:
      - {name: a, role: viewer, token: token-a-0123456789, slack_user_id: U1}
      - {name: b, role: viewer, token: token-b-0123456789, slack_user_id: U1, pagerduty_user_id: 'P 1'}
  instance: 'eu west'
",
    );
    assert_problem(&problems, "server.auth.users[1].slack_user_id", "another user's");
    assert_problem(
        &problems,
        "server.auth.users[1].pagerduty_user_id",
        "letters and digits",
    );
    assert_problem(&problems, "server.instance", "letters, digits");
}

#[test]
fn alertmanager_settings_come_from_the_environment_too() {
    let settings = crate::helpers::config::load_yaml(
        "",
        &[
            ("MEDIC_ALERTMANAGER__URL", "http://alertmanager:9093"),
            ("MEDIC_ALERTMANAGER__BEARER_TOKEN", "am-token"),
        ],
    )
    .expect("loads");
    assert_eq!(
        settings.alertmanager.url.as_deref(),
        Some("http://alertmanager:9093")
    );
    assert!(settings.alertmanager.bearer_token.is_some());
}

#[tokio::test]
async fn a_replayed_slack_click_is_refused_by_every_replica() {
    let slack = slack().await;
    let app = app(&slack, "", None).await;
    let other = self::app(&slack, "", Some(&app.database_url)).await;
    let id = app
        .post_for_incident(&firing_alert("g-replay", "R", "00000000000000c1", json!({})))
        .await;
    let click = interaction(
        &app,
        "UALICE",
        "medic_silence",
        &format!("{id}:1h"),
        SIGNING_SECRET,
        0,
    );
    let replay = click.try_clone().unwrap().build().unwrap();
    assert_eq!(click.send().await.unwrap().status(), 200);
    assert_eq!(
        app.client.execute(replay).await.unwrap().status(),
        401,
        "replayed to the same replica"
    );
    // Another signed click, sent to both replicas.
    let again = interaction(&app, "UALICE", "medic_ack", &id.to_string(), SIGNING_SECRET, 0)
        .build()
        .unwrap();
    let mut to_other = again.try_clone().unwrap();
    *to_other.url_mut() = format!("{}/integrations/slack/interactions", other.address)
        .parse()
        .unwrap();
    let first = app.client.execute(again).await.unwrap().status();
    let second = app.client.execute(to_other).await.unwrap().status();
    assert_eq!((first, second.as_u16()), (reqwest::StatusCode::OK, 401));
}

#[tokio::test]
async fn pagerduty_signature_headers_are_bounded_before_any_mac_is_computed() {
    let slack = slack().await;
    let app = app(&slack, "", None).await;
    let id = app
        .post_for_incident(&firing_alert("g-pd", "P", "00000000000000c2", json!({})))
        .await;
    let event = pd_event("incident.acknowledged", &format!("medic-incident-{id}"), "PALICE");
    let right = {
        let request = pagerduty(&app, &event, &[PD_SECRET]).build().unwrap();
        request.headers()["X-PagerDuty-Signature"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let bogus = |n: usize| (0..n).map(|i| format!("v1={:064x}", i)).collect::<Vec<_>>();
    let send = |header: String| {
        app.client
            .post(format!("{}/integrations/pagerduty", app.address))
            .header("Content-Type", "application/json")
            .header("X-PagerDuty-Signature", header)
            .body(event.to_string())
            .send()
    };
    // The right signature behind ten others is not looked at: at most ten are read.
    let eleven = [bogus(10), vec![right.clone()]].concat().join(",");
    assert_eq!(send(eleven).await.unwrap().status(), 401);
    assert_eq!(send(bogus(1000).join(",")).await.unwrap().status(), 401);
    for malformed in ["v1=abc", "v2=00", &format!("{right},v1=zz"), &format!("{right}0")] {
        assert_eq!(
            send(malformed.to_owned()).await.unwrap().status(),
            401,
            "{malformed}"
        );
    }
    assert!(acknowledged_by(&app, id).await.is_null());
    let ten = [bogus(9), vec![right]].concat().join(",");
    assert_eq!(send(ten).await.unwrap().status(), 200);
    assert_eq!(acknowledged_by(&app, id).await["by"], "alice");
}

/// Every text field of a message reaches Slack escaped, so an alert cannot ping a channel or
/// render a link: the root message's `text` and blocks, its update, and its thread.
#[tokio::test]
async fn a_channel_mention_in_an_alertname_reaches_slack_escaped() {
    let slack = slack().await;
    let app = app(&slack, "", None).await;
    let hostile = "<!channel> <https://evil.example|ack> & more";
    let mut payload = firing_alert("g-hostile", hostile, "00000000000000c3", json!({}));
    payload["groupLabels"] = json!({"alertname": hostile});
    payload["commonLabels"] = json!({"alertname": hostile});
    let id = app.post_for_incident(&payload).await;
    let root = sent(&slack, "/api/chat.postMessage", "the root message", |b| {
        b["thread_ts"].is_null()
    })
    .await;
    let escaped = "&lt;!channel&gt; &lt;https://evil.example|ack&gt; &amp; more";
    let text = root["text"].as_str().unwrap();
    assert!(text.contains(escaped), "{text}");
    let everything = root.to_string();
    assert!(
        !everything.contains("<!channel>") && !everything.contains("<https://evil"),
        "{everything}"
    );
    app.acknowledge(id, &json!({"note": "<!here> looking"})).await;
    let update = sent(&slack, "/api/chat.update", "the update", |_| true).await;
    let everything = update.to_string();
    assert!(everything.contains("&lt;!channel&gt;"), "{everything}");
    assert!(
        !everything.contains("<!channel>") && !everything.contains("<!here>"),
        "{everything}"
    );
}

/// A second silence request for an incident medic already silenced extends that silence in
/// Alertmanager to the later end instead of making another; a shorter one changes nothing.
#[tokio::test]
async fn silencing_a_silenced_incident_extends_its_silence_instead_of_making_another() {
    let am = alertmanager().await;
    let slack = slack().await;
    let app = app(&slack, &format!("alertmanager: {{url: \"{}\"}}\n", am.url), None).await;
    let mut alert = firing_alert("g-ext", "Noisy", "00000000000000c4", json!({"namespace": "shop"}));
    alert["groupLabels"] = json!({"alertname": "Noisy", "namespace": "shop"});
    let id = app.post_for_incident(&alert).await;
    let silence = |duration: &'static str| {
        app.client
            .post(format!("{}/api/v1/incidents/{id}/silence", app.address))
            .bearer_auth("alice-token-0123456789")
            .json(&json!({"duration": duration}))
            .send()
    };
    let first = silence("1h").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["extended"], false);

    let longer = silence("3h").await.unwrap();
    assert_eq!(longer.status(), 200);
    let longer: Value = longer.json().await.unwrap();
    assert_eq!(longer["extended"], true);
    let ends = |v: &Value| -> chrono::DateTime<chrono::Utc> {
        v["silence"]["ends_at"].as_str().unwrap().parse().unwrap()
    };
    assert!(ends(&longer) - ends(&first) > chrono::TimeDelta::minutes(110));

    let shorter = silence("30m").await.unwrap();
    assert_eq!(shorter.status(), 200);
    let shorter: Value = shorter.json().await.unwrap();
    assert_eq!(ends(&shorter), ends(&longer), "a shorter request changes nothing");

    let active: Vec<Value> = am_silences(&am)
        .await
        .into_iter()
        .filter(|s| s["status"]["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "one silence in Alertmanager: {active:?}");
    assert_eq!(active[0]["id"], longer["silence"]["silence_id"]);
    let in_am: chrono::DateTime<chrono::Utc> = active[0]["endsAt"].as_str().unwrap().parse().unwrap();
    assert!((in_am - ends(&longer)).abs() < chrono::TimeDelta::seconds(1));
    // The API answers the one silence the incident has in force.
    let incident = app.incident(id).await;
    let in_force = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "silence")
        .count();
    assert_eq!(in_force, 2, "made, then extended: both in the timeline");
}
