//! A Slack app's one message per incident: posted, updated as the incident changes, its timeline
//! in the thread; Slack's errors, a post whose answer was lost, and text that must reach Slack
//! escaped.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::setup::{acknowledged_by, app, root_posts, sent, with_slack_app, WAIT};
use crate::helpers::{
    eventually, firing_alert,
    settings::rule,
    sink::{Reply, Sink, SLACK_ROOT_TS},
    TestApp,
};

#[tokio::test]
async fn a_slack_app_keeps_one_message_per_incident_updated_with_its_timeline_in_the_thread() {
    let slack = Sink::slack_web_api().await;
    let app = app(&slack).await;
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
    assert_eq!(updates[0].body["ts"], SLACK_ROOT_TS);
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
    let replies = eventually("a thread reply", WAIT, || async {
        let replies: Vec<Value> = slack
            .received_at("/api/chat.postMessage")
            .into_iter()
            .map(|r| r.body)
            .filter(|b| b["thread_ts"] == SLACK_ROOT_TS)
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
    assert_eq!(stored, SLACK_ROOT_TS);

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
    assert_eq!(update["ts"], SLACK_ROOT_TS);
    assert!(!update["blocks"].to_string().contains("medic_ack"), "{update}");
    assert_eq!(root_posts(&slack).len(), 1, "still one message");
}

#[tokio::test]
async fn escalations_are_thread_replies_also_shown_in_the_channel() {
    let slack = Sink::slack_web_api().await;
    let settings =
        with_slack_app(&slack).rule(rule("all").notify(&["slack-app"]).escalate("1s", &["slack-app"]));
    let app = TestApp::builder().settings(&settings).spawn().await;
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
    assert_eq!(escalated["thread_ts"], SLACK_ROOT_TS);
    assert_eq!(escalated["reply_broadcast"], true);
    assert_eq!(root_posts(&slack).len(), 1, "no second message");
}

#[tokio::test]
async fn slack_errors_are_retried_or_final_as_slack_documents_them() {
    let slack = Sink::slack_web_api().await;
    slack.enqueue(
        "/api/chat.postMessage",
        vec![Reply::status(200)
            .with_header("Retry-After", "1")
            .with_body(r#"{"ok":false,"error":"ratelimited"}"#)],
    );
    let app = app(&slack).await;
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
    let posts = eventually("the post retried after a 429", WAIT, || async {
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
    let opened = eventually("the announcement to fail for good", WAIT, || async {
        let incident = app.incident(id).await;
        let opened = incident["timers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == "opened")
            .cloned()
            .unwrap();
        (opened["state"] == "failed").then_some(opened).ok_or(incident)
    })
    .await;
    assert_eq!(
        opened["attempts"].as_array().unwrap().len(),
        1,
        "not retried: {opened}"
    );
    assert!(opened["last_error"]
        .as_str()
        .unwrap()
        .contains("channel_not_found"));
}

#[tokio::test]
async fn a_post_whose_answer_was_lost_is_found_in_the_channel_not_made_twice() {
    let slack = Sink::slack_web_api().await;
    // The first post "goes through" but its answer is a 500; the channel's history has it.
    slack.enqueue("/api/chat.postMessage", vec![Reply::status(500)]);
    slack.set_default(
        "/api/conversations.history",
        Reply::status(200).with_body(
            r#"{"ok":true,"messages":[{"ts":"1700000000.000999","metadata":{"event_type":"medic_incident","event_payload":{"key":"medic-incident-1:slack-app"}}}]}"#,
        ),
    );
    let app = app(&slack).await;
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
    let stored = eventually("the message recorded", WAIT, || recorded_ts(&app, id)).await;
    assert_eq!(stored, "1700000000.000999");
    assert_eq!(root_posts(&slack).len(), 1, "the lost post only, none again");
    app.acknowledge(id, &json!({})).await;
    let updates = slack.wait_for("/api/chat.update", 1, WAIT).await;
    assert_eq!(updates[0].body["ts"], "1700000000.000999");
}

/// The message's ts medic recorded for the incident, if it has.
async fn recorded_ts(app: &TestApp, id: i64) -> Option<String> {
    app.sql()
        .await
        .query_opt("SELECT ts FROM slack_messages WHERE incident_id = $1", &[&id])
        .await
        .unwrap()
        .map(|row| row.get(0))
}

/// Every text field of a message reaches Slack escaped, so an alert cannot ping a channel or
/// render a link: the root message's `text` and blocks, its update, and its thread.
#[tokio::test]
async fn a_channel_mention_in_an_alertname_reaches_slack_escaped() {
    let slack = Sink::slack_web_api().await;
    let app = app(&slack).await;
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

#[tokio::test]
async fn an_acknowledgement_lasts_until_the_incident_resolves_and_a_refire_pages_again() {
    let slack = Sink::slack_web_api().await;
    let app = app(&slack).await;
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
    eventually("a second root message", WAIT, || async {
        root_posts(&slack).len() >= 2
    })
    .await;
}
