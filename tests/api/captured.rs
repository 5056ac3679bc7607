//! Sequences a real Alertmanager 0.25 sent (tests/fixtures/alertmanager/README.md), replayed.

use crate::helpers::{fixture, TestApp};

#[tokio::test]
async fn ten_alerts_firing_then_resolving_are_one_incident_opened_then_closed() {
    let app = TestApp::builder().spawn().await;

    assert_eq!(
        app.post_webhook_raw(fixture("firing-ten.json")).await.status(),
        200
    );
    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["status"], "firing");
    assert_eq!(incidents[0]["receiver"], "medic-basic");
    assert_eq!(incidents[0]["alerts"].as_array().unwrap().len(), 10);

    assert_eq!(
        app.post_webhook_raw(fixture("resolved-ten.json")).await.status(),
        200
    );
    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["status"], "resolved");
    assert!(incidents[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status"] == "resolved"));
    assert!(incidents[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["ends_at"].is_string()));
}

#[tokio::test]
async fn a_real_refire_after_resolve_opens_a_second_incident() {
    let app = TestApp::builder().spawn().await;

    for name in [
        "refire-prev-firing.json",
        "refire-prev-resolved.json",
        "refire.json",
    ] {
        assert_eq!(app.post_webhook_raw(fixture(name)).await.status(), 200, "{name}");
    }

    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 2);
    assert_eq!(incidents[0]["status"], "firing");
    assert_eq!(incidents[1]["status"], "resolved");
    assert_eq!(
        incidents[0]["alerts"][0]["fingerprint"],
        incidents[1]["alerts"][0]["fingerprint"]
    );
    assert_ne!(
        incidents[0]["alerts"][0]["starts_at"],
        incidents[1]["alerts"][0]["starts_at"]
    );
}

#[tokio::test]
async fn a_real_partial_resolve_keeps_the_incident_firing() {
    let app = TestApp::builder().spawn().await;

    app.post_webhook_raw(fixture("partial-resolve.json")).await;

    let incident = &app.incidents().await[0];
    assert_eq!(incident["status"], "firing");
    let mut statuses: Vec<&str> = incident["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["firing", "resolved"]);
}

#[tokio::test]
async fn a_real_truncated_notification_keeps_its_count() {
    let app = TestApp::builder().spawn().await;

    app.post_webhook_raw(fixture("truncated.json")).await;

    let incident = &app.incidents().await[0];
    assert_eq!(incident["truncated_alerts"], 2);
    assert_eq!(incident["alerts"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn go_escaped_annotations_from_a_real_alertmanager_read_back_unescaped() {
    let app = TestApp::builder().spawn().await;

    app.post_webhook_raw(fixture("firing-one.json")).await;

    let incident = &app.incidents().await[0];
    let annotations = incident["alerts"][0]["annotations"].to_string();
    assert!(
        annotations.contains('<') && annotations.contains('>') && annotations.contains('&'),
        "{annotations}"
    );
    assert!(incident["alerts"][0]["ends_at"].is_null());
}
