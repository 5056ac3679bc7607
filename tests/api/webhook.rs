//! Recording notifications: incidents, alert episodes, resolve and re-fire.

use crate::helpers::{fixture, notification, TestApp};

#[tokio::test]
async fn a_real_alertmanager_firing_notification_opens_an_incident() {
    let app = TestApp::builder().spawn().await;

    let response = app.post_webhook_raw(fixture("firing.json")).await;

    assert_eq!(response.status(), 200);
    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 1);
    let incident = &incidents[0];
    assert_eq!(incident["status"], "firing");
    assert_eq!(incident["receiver"], "hook-ok");
    assert_eq!(incident["group_key"], "{}:{alertname=\"PodCrashLooping\"}");
    assert_eq!(incident["deliveries"], 1);
    assert!(incident["resolved_at"].is_null());
    let alert = &incident["alerts"][0];
    assert_eq!(alert["fingerprint"], "edac2885b0ec6500");
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["starts_at"], "2026-11-26T15:53:17.755987Z");
    assert!(alert["ends_at"].is_null(), "Go's zero endsAt must read as no end");
    assert_eq!(alert["labels"]["pod"], "api-7d9f");
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "https://example.invalid/runbook"
    );
}

#[tokio::test]
async fn the_resolved_notification_closes_the_incident() {
    let app = TestApp::builder().spawn().await;
    app.post_webhook_raw(fixture("firing.json")).await;

    let response = app.post_webhook_raw(fixture("resolved.json")).await;

    assert_eq!(response.status(), 200);
    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 1, "resolving must not open another incident");
    assert_eq!(incidents[0]["status"], "resolved");
    assert!(incidents[0]["resolved_at"].is_string());
    assert_eq!(incidents[0]["deliveries"], 2);
    assert_eq!(incidents[0]["alerts"][0]["status"], "resolved");
    assert_eq!(incidents[0]["alerts"][0]["ends_at"], "2026-11-26T15:53:19.760Z");
}

#[tokio::test]
async fn an_incident_stays_firing_until_every_alert_has_resolved() {
    let app = TestApp::builder().spawn().await;
    let t0 = "2026-11-26T15:00:00Z";
    app.post_webhook(&notification(
        "g",
        "firing",
        &[("aa01", "firing", t0), ("aa02", "firing", t0)],
    ))
    .await;

    app.post_webhook(&notification(
        "g",
        "firing",
        &[("aa01", "resolved", t0), ("aa02", "firing", t0)],
    ))
    .await;
    let incidents = app.incidents().await;
    assert_eq!(incidents[0]["status"], "firing");
    let statuses: Vec<&str> = incidents[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["resolved", "firing"]);

    app.post_webhook(&notification("g", "resolved", &[("aa02", "resolved", t0)]))
        .await;
    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["status"], "resolved");
}

#[tokio::test]
async fn an_alert_that_fires_again_with_a_new_starts_at_is_a_new_incident() {
    let app = TestApp::builder().spawn().await;
    let first = "2026-11-26T15:00:00.123456789Z";
    let second = "2026-11-26T15:30:00.1Z";
    app.post_webhook(&notification("g", "firing", &[("aa01", "firing", first)]))
        .await;
    app.post_webhook(&notification("g", "resolved", &[("aa01", "resolved", first)]))
        .await;

    app.post_webhook(&notification("g", "firing", &[("aa01", "firing", second)]))
        .await;

    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 2);
    assert_eq!(incidents[0]["status"], "firing");
    assert_eq!(incidents[0]["alerts"][0]["starts_at"], "2026-11-26T15:30:00.100Z");
    assert_eq!(incidents[1]["status"], "resolved");
    assert_eq!(
        incidents[1]["alerts"][0]["starts_at"],
        "2026-11-26T15:00:00.123456Z"
    );
}

#[tokio::test]
async fn new_alerts_joining_a_firing_group_join_its_incident() {
    let app = TestApp::builder().spawn().await;
    let t0 = "2026-11-26T15:00:00Z";
    app.post_webhook(&notification("g", "firing", &[("aa01", "firing", t0)]))
        .await;

    app.post_webhook(&notification(
        "g",
        "firing",
        &[("aa01", "firing", t0), ("bb02", "firing", t0)],
    ))
    .await;

    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["alerts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn groups_and_receivers_are_separate_incidents() {
    let app = TestApp::builder().spawn().await;
    let t0 = "2026-11-26T15:00:00Z";
    app.post_webhook(&notification("g1", "firing", &[("aa01", "firing", t0)]))
        .await;
    app.post_webhook(&notification("g2", "firing", &[("aa01", "firing", t0)]))
        .await;
    let mut other_receiver = notification("g1", "firing", &[("aa01", "firing", t0)]);
    other_receiver["receiver"] = "pager".into();
    app.post_webhook(&other_receiver).await;

    assert_eq!(app.incidents().await.len(), 3);
}

#[tokio::test]
async fn a_resolved_notification_for_an_unknown_group_is_recorded_as_a_resolved_incident() {
    let app = TestApp::builder().spawn().await;

    let response = app.post_webhook_raw(fixture("resolved.json")).await;

    assert_eq!(response.status(), 200);
    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["status"], "resolved");
}

#[tokio::test]
async fn a_late_firing_retry_does_not_reopen_a_resolved_incident() {
    let app = TestApp::builder().spawn().await;
    app.post_webhook_raw(fixture("firing.json")).await;
    app.post_webhook_raw(fixture("resolved.json")).await;

    let response = app.post_webhook_raw(fixture("firing.json")).await;

    assert_eq!(response.status(), 200);
    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["status"], "resolved");
    assert_eq!(incidents[0]["alerts"][0]["status"], "resolved");
    assert_eq!(incidents[0]["deliveries"], 3);
}
