//! Escalation end to end: medic announces, escalates and resolves through local Slack and
//! PagerDuty sinks, and an acknowledgement or an early resolve stops what is pending.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    eventually, notification,
    settings::{pagerduty, rule, settings, slack, TestSettings},
    sink::{Reply, Sink},
    TestApp, OTHER_RESPONDER,
};

const FIRING_AT: &str = "2026-11-26T10:00:00Z";

/// The issue's example policy, with a delay short enough for a test, its escalation step
/// repeated every `repeat` if given.
fn policy(sink: &Sink, after: &str, repeat: Option<&str>) -> TestSettings {
    let mut escalation = json!({"after": after, "notify": ["pagerduty", "oncall-slack"]});
    if let Some(repeat) = repeat {
        escalation["repeat"] = json!(repeat);
    }
    let retry = json!({"initial_backoff": "100ms", "max_backoff": "500ms", "give_up_after": "30s"});
    settings()
        .notifier(
            "incidents-slack",
            slack(&sink.url("/slack/incidents")).with("channel", "#incidents"),
        )
        .notifier(
            "oncall-slack",
            slack(&sink.url("/slack/oncall")).with("channel", "#on-call"),
        )
        .notifier("pagerduty", pagerduty(&sink.url("/pagerduty"), "routing-key-1"))
        .rule(
            rule("high-error-rate")
                .matching(r#"alertname="HighErrorRate""#)
                .notify(&["incidents-slack"])
                .with("runbook_url", "https://runbooks.example/high-error-rate")
                .with("escalation", json!([escalation])),
        )
        .with(
            "engine",
            json!({"lease": "5s", "request_timeout": "2s", "retry": retry}),
        )
}

async fn setup(after: &str) -> (Sink, TestApp) {
    let sink = Sink::start(1).await;
    sink.set_default(
        "/pagerduty",
        Reply::status(202).with_body(r#"{"status":"success"}"#),
    );
    let app = TestApp::builder()
        .settings(&policy(&sink, after, None))
        .spawn()
        .await;
    (sink, app)
}

async fn fire(app: &TestApp, group: &str) -> i64 {
    let payload = notification(group, "firing", &[("aaaa000000000001", "firing", FIRING_AT)]);
    let response = app.post_webhook(&payload).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["incident_id"].as_i64().unwrap()
}

async fn resolve(app: &TestApp, group: &str) {
    let payload = notification(group, "resolved", &[("aaaa000000000001", "resolved", FIRING_AT)]);
    assert_eq!(app.post_webhook(&payload).await.status(), 200);
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn an_incident_is_announced_escalated_to_pagerduty_and_resolved() {
    let (sink, app) = setup("1s").await;
    let id = fire(&app, "{}:{alertname=\"HighErrorRate\"}").await;

    let opened = sink.wait_for("/slack/incidents", 1, WAIT).await;
    let body = &opened[0].body;
    assert_eq!(body["channel"], "#incidents");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("[FIRING:1] HighErrorRate"),
        "{body}"
    );
    assert_eq!(body["attachments"][0]["color"], "#E01E5A", "critical is red");
    let blocks = body["attachments"][0]["blocks"].to_string();
    assert!(
        blocks.contains("error rate above 5%"),
        "summary missing: {blocks}"
    );
    assert!(
        blocks.contains("https://runbooks.example/high-error-rate"),
        "runbook missing: {blocks}"
    );
    assert!(
        sink.received_at("/pagerduty").is_empty(),
        "paged before the delay"
    );

    let pages = sink.wait_for("/pagerduty", 1, WAIT).await;
    let page = &pages[0].body;
    assert_eq!(page["event_action"], "trigger");
    assert_eq!(page["routing_key"], "routing-key-1");
    assert_eq!(page["dedup_key"], format!("medic-incident-{id}"));
    assert_eq!(page["payload"]["severity"], "critical");
    assert_eq!(
        page["payload"]["custom_details"]["labels"]["alertname"],
        "HighErrorRate"
    );
    let escalated = sink.wait_for("/slack/oncall", 1, WAIT).await;
    assert_eq!(escalated[0].body["channel"], "#on-call");
    assert!(escalated[0].body["text"]
        .as_str()
        .unwrap()
        .contains("[ESCALATION 1]"));

    resolve(&app, "{}:{alertname=\"HighErrorRate\"}").await;
    let pages = sink.wait_for("/pagerduty", 2, WAIT).await;
    assert_eq!(pages[1].body["event_action"], "resolve");
    assert_eq!(pages[1].body["dedup_key"], format!("medic-incident-{id}"));
    let announced = sink.wait_for("/slack/incidents", 2, WAIT).await;
    assert!(announced[1].body["text"].as_str().unwrap().contains("[RESOLVED]"));
    assert_eq!(announced[1].body["attachments"][0]["color"], "#2EB67D");
    sink.wait_for("/slack/oncall", 2, WAIT).await;

    // A send reaches the sink before its attempt is recorded: wait for the sixth record.
    let sent = |incident: &serde_json::Value| {
        incident["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "message_sent")
            .count()
    };
    let incident = eventually("the sixth send recorded", WAIT, || async {
        let incident = app.incident(id).await;
        if sent(&incident) >= 6 {
            Ok(incident)
        } else {
            Err(incident)
        }
    })
    .await;
    let events: Vec<&str> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"opened"));
    assert_eq!(
        events.iter().filter(|e| **e == "message_sent").count(),
        6,
        "{events:?}"
    );
    assert!(events.contains(&"resolved"));
    let states: Vec<&str> = incident["timers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert!(states.iter().all(|s| *s == "done"), "{states:?}");
    assert_eq!(
        app.metric(r#"medic_timers_fired_total{kind="escalation"}"#).await,
        2.0
    );
    assert_eq!(app.metric("medic_timers_pending").await, 0.0);
    assert_eq!(app.metric("medic_timer_lateness_seconds_count").await, 6.0);
}

#[tokio::test]
async fn an_incident_resolved_before_the_delay_never_pages() {
    let (sink, app) = setup("2s").await;
    let id = fire(&app, "early").await;
    sink.wait_for("/slack/incidents", 1, WAIT).await;
    resolve(&app, "early").await;

    sink.wait_for("/slack/incidents", 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        sink.received_at("/pagerduty").is_empty(),
        "paged for a resolved incident"
    );
    assert!(
        sink.received_at("/slack/oncall").is_empty(),
        "escalated a resolved incident"
    );
    let incident = app.incident(id).await;
    let cancelled = incident["timers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "cancelled")
        .count();
    assert_eq!(cancelled, 2, "{incident}");
    assert_eq!(app.metric("medic_timers_cancelled_total").await, 2.0);
}

#[tokio::test]
async fn acknowledging_stops_pending_escalations_and_is_announced() {
    let (sink, app) = setup("2s").await;
    let id = fire(&app, "acked").await;
    sink.wait_for("/slack/incidents", 1, WAIT).await;

    let response = app
        .acknowledge(id, &json!({"by": "alice", "note": "looking at the LB"}))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["acknowledged"]["by"], "alice");
    assert_eq!(body["already_acknowledged"], false);
    assert_eq!(body["timers_cancelled"], 2);

    let announced = sink.wait_for("/slack/incidents", 2, WAIT).await;
    let text = announced[1].body.to_string();
    assert!(text.contains("[ACKNOWLEDGED] HighErrorRate by alice"), "{text}");
    assert!(text.contains("looking at the LB"), "{text}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        sink.received_at("/pagerduty").is_empty(),
        "paged after an acknowledgement"
    );

    let again: Value = app
        .acknowledge_as(OTHER_RESPONDER.2, id, &json!({"note": "me too"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["already_acknowledged"], true);
    assert_eq!(
        again["acknowledged"]["by"], "alice",
        "the first acknowledgement stands"
    );
    let incident = app.incident(id).await;
    assert_eq!(incident["acknowledgement"]["by"], "alice");
    assert_eq!(incident["acknowledgement"]["note"], "looking at the LB");
    assert!(incident["timeline"]
        .to_string()
        .contains(r#""event":"acknowledged""#));
}

#[tokio::test]
async fn acknowledging_after_a_page_sends_pagerduty_an_acknowledge() {
    let (sink, app) = setup("200ms").await;
    let id = fire(&app, "paged").await;
    sink.wait_for("/pagerduty", 1, WAIT).await;
    assert_eq!(app.acknowledge(id, &json!({})).await.status(), 200);
    let events = sink.wait_for("/pagerduty", 2, WAIT).await;
    assert_eq!(events[1].body["event_action"], "acknowledge");
    assert_eq!(events[1].body["dedup_key"], format!("medic-incident-{id}"));

    resolve(&app, "paged").await;
    let events = sink.wait_for("/pagerduty", 3, WAIT).await;
    assert_eq!(events[2].body["event_action"], "resolve");
}

#[tokio::test]
async fn acknowledgements_that_cannot_apply_are_refused_with_reasons() {
    let (_sink, app) = setup("1h").await;
    assert_eq!(app.acknowledge(999_999, &json!({})).await.status(), 404);
    let id = fire(&app, "refused").await;
    let not_json = app.acknowledge(id, &json!(["note"])).await;
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("note"), "{body}");
    let impostor = app.acknowledge(id, &json!({"by": "mallory"})).await;
    assert_eq!(impostor.status(), 422, "one acknowledges as oneself");
    assert_eq!(app.acknowledge(id, &json!({"by": "  "})).await.status(), 422);
    assert_eq!(
        app.acknowledge(id, &json!({"note": "x", "extra": 1}))
            .await
            .status(),
        400
    );
    let long_note = "n".repeat(2001);
    assert_eq!(
        app.acknowledge(id, &json!({"note": long_note})).await.status(),
        422
    );
    resolve(&app, "refused").await;
    let late = app.acknowledge(id, &json!({"by": "alice"})).await;
    assert_eq!(late.status(), 409);
    let unauthenticated = app
        .client
        .post(format!("{}/api/v1/incidents/{id}/ack", app.address))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn fifty_alerts_in_one_group_make_one_page_and_repeats_schedule_nothing() {
    let (sink, app) = setup("300ms").await;
    let fingerprints: Vec<String> = (0..50).map(|i| format!("{i:016x}")).collect();
    let alerts: Vec<(&str, &str, &str)> = fingerprints
        .iter()
        .map(|f| (f.as_str(), "firing", FIRING_AT))
        .collect();
    let payload = notification("storm", "firing", &alerts);
    for _ in 0..5 {
        assert_eq!(app.post_webhook(&payload).await.status(), 200);
    }
    let more = notification("storm", "firing", &[("ffff000000000001", "firing", FIRING_AT)]);
    assert_eq!(app.post_webhook(&more).await.status(), 200);

    sink.wait_for("/pagerduty", 1, WAIT).await;
    sink.expect_no_more("/pagerduty", 1, Duration::from_secs(1)).await;
    sink.expect_no_more("/slack/incidents", 1, Duration::from_millis(10))
        .await;
    assert_eq!(app.count("SELECT count(*) FROM timers").await, 3);
    assert_eq!(app.metric("medic_timers_scheduled_total").await, 3.0);
}

#[tokio::test]
async fn the_last_step_repeats_until_the_incident_resolves() {
    let sink = Sink::start(1).await;
    sink.set_default("/pagerduty", Reply::status(202));
    let app = TestApp::builder()
        .settings(&policy(&sink, "100ms", Some("400ms")))
        .spawn()
        .await;
    fire(&app, "repeating").await;
    let reminders = sink.wait_for("/slack/oncall", 3, WAIT).await;
    assert!(
        reminders[1].body["text"].as_str().unwrap().contains("reminder 1"),
        "{}",
        reminders[1].body
    );
    let gap = reminders[2].at.duration_since(reminders[1].at).unwrap();
    assert!(gap >= Duration::from_millis(350), "repeated after {gap:?}");
    let pages = sink.received_at("/pagerduty");
    let keys: std::collections::HashSet<String> =
        pages.iter().map(|p| p.body["dedup_key"].to_string()).collect();
    assert_eq!(keys.len(), 1, "every re-trigger carries the incident's dedup key");

    resolve(&app, "repeating").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = sink.received_at("/slack/oncall").len();
    sink.expect_no_more("/slack/oncall", settled, Duration::from_secs(1))
        .await;
    assert!(sink.received_at("/slack/oncall").last().unwrap().body["text"]
        .as_str()
        .unwrap()
        .contains("[RESOLVED]"));
}
