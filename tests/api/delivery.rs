//! Sends that fail: 5xx and 429 are retried (honouring Retry-After), 4xx is not, and every
//! attempt shows in the API and the metrics.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    eventually, notification,
    settings::{rule, settings, webhook},
    sink::{Reply, Sink},
    TestApp,
};

const WAIT: Duration = Duration::from_secs(10);

/// One webhook notifier told when the incident opens.
async fn setup(give_up_after: &str) -> (Sink, TestApp) {
    let sink = Sink::start(1).await;
    let retry = json!({"initial_backoff": "200ms", "max_backoff": "400ms", "give_up_after": give_up_after});
    let settings = settings()
        .notifier(
            "audit-hook",
            webhook(&sink.url("/hook")).with("bearer_token", "hook-secret"),
        )
        .rule(rule("everything").notify(&["audit-hook"]))
        .with(
            "engine",
            json!({"lease": "5s", "request_timeout": "2s", "retry": retry}),
        );
    let app = TestApp::builder().settings(&settings).spawn().await;
    (sink, app)
}

async fn fire(app: &TestApp) -> i64 {
    let payload = notification(
        "g",
        "firing",
        &[("00000000000000aa", "firing", "2026-11-26T10:00:00Z")],
    );
    let response = app.post_webhook(&payload).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["incident_id"].as_i64().unwrap()
}

/// Waits until the incident's only timer leaves `pending`, and returns it.
async fn settled_timer(app: &TestApp, id: i64) -> Value {
    eventually("the timer to leave pending", Duration::from_secs(10), || async {
        let incident = app.incident(id).await;
        let timer = incident["timers"][0].clone();
        if timer["state"] != "pending" {
            Ok(timer)
        } else {
            Err(incident)
        }
    })
    .await
}

#[tokio::test]
async fn a_webhook_carries_a_delivery_id_that_retries_keep() {
    let (sink, app) = setup("30s").await;
    sink.enqueue("/hook", vec![Reply::status(500), Reply::status(503)]);
    let id = fire(&app).await;

    let received = sink.wait_for("/hook", 3, WAIT).await;
    let ids: Vec<&str> = received
        .iter()
        .map(|r| r.headers["idempotency-key"].as_str())
        .collect();
    assert!(ids.iter().all(|key| *key == ids[0]), "{ids:?}");
    assert_eq!(received[0].body["delivery_id"], ids[0]);
    assert_eq!(received[0].headers["authorization"], "Bearer hook-secret");
    assert_eq!(received[0].body["event"], "opened");
    assert_eq!(received[0].body["incident"]["id"], id);

    let gap = received[2].at.duration_since(received[1].at).unwrap();
    assert!(
        gap >= Duration::from_millis(150),
        "retried after {gap:?}, not backing off"
    );
    let timer = settled_timer(&app, id).await;
    assert_eq!(timer["state"], "done");
    let results: Vec<&str> = timer["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["retry", "retry", "sent"]);
    assert_eq!(timer["attempts"][0]["status_code"], 500);
    let retried = r#"medic_notifier_attempts_total{notifier="audit-hook",result="retry",type="webhook"}"#;
    assert_eq!(app.metric(retried).await, 2.0);
}

#[tokio::test]
async fn a_429_is_retried_after_the_delay_it_asks_for() {
    let (sink, app) = setup("30s").await;
    sink.enqueue("/hook", vec![Reply::status(429).with_header("Retry-After", "2")]);
    let id = fire(&app).await;

    let received = sink.wait_for("/hook", 2, WAIT).await;
    let gap = received[1].at.duration_since(received[0].at).unwrap();
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, not Retry-After's 2s"
    );
    assert_eq!(settled_timer(&app, id).await["state"], "done");
}

#[tokio::test]
async fn a_400_is_not_retried_and_the_failure_is_visible() {
    let (sink, app) = setup("30s").await;
    sink.enqueue("/hook", vec![Reply::status(400).with_body("bad payload")]);
    let id = fire(&app).await;

    sink.wait_for("/hook", 1, WAIT).await;
    let timer = settled_timer(&app, id).await;
    assert_eq!(timer["state"], "failed");
    assert!(
        timer["last_error"]
            .as_str()
            .unwrap()
            .contains("HTTP 400: bad payload"),
        "{timer}"
    );
    sink.expect_no_more("/hook", 1, Duration::from_secs(1)).await;
    let failed = r#"medic_notifier_attempts_total{notifier="audit-hook",result="failed",type="webhook"}"#;
    assert_eq!(app.metric(failed).await, 1.0);
    let timeline = app.incident(id).await["timeline"].to_string();
    assert!(timeline.contains(r#""event":"message_failed""#), "{timeline}");
}

#[tokio::test]
async fn retries_stop_at_the_horizon() {
    let (sink, app) = setup("1s").await;
    sink.set_default("/hook", Reply::status(502));
    let id = fire(&app).await;

    let timer = settled_timer(&app, id).await;
    assert_eq!(timer["state"], "failed");
    let attempts = timer["attempts"].as_array().unwrap();
    assert_eq!(attempts.last().unwrap()["result"], "gave_up");
    assert!(attempts.len() >= 2, "{timer}");
    let seen = sink.received_at("/hook").len();
    sink.expect_no_more("/hook", seen, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_unreachable_notifier_is_retried() {
    let sink = Sink::start(1).await;
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let retry = json!({"initial_backoff": "100ms", "max_backoff": "200ms", "give_up_after": "1s"});
    let settings = settings()
        .notifier("gone", webhook(&format!("http://127.0.0.1:{port}/hook")))
        .notifier("audit-hook", webhook(&sink.url("/hook")))
        .rule(rule("everything").notify(&["gone", "audit-hook"]))
        .with(
            "engine",
            json!({"lease": "5s", "request_timeout": "1s", "retry": retry}),
        );
    let app = TestApp::builder().settings(&settings).spawn().await;
    let id = fire(&app).await;
    sink.wait_for("/hook", 1, WAIT).await;
    let what = "the unreachable notifier to be given up on";
    let gone = eventually(what, Duration::from_secs(10), || async {
        let incident = app.incident(id).await;
        let gone = incident["timers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["notifier"] == "gone")
            .cloned()
            .unwrap();
        if gone["state"] == "failed" {
            Ok(gone)
        } else {
            Err(gone)
        }
    })
    .await;
    assert!(
        gone["last_error"].as_str().unwrap().contains("connection"),
        "{gone}"
    );
    assert!(gone["attempts"].as_array().unwrap().len() >= 2);
}
