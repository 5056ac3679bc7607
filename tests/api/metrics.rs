//! `/metrics`: medic's own names, counting what happened, and clean for `promtool`.

use std::{io::Write, process::Stdio};

use crate::helpers::{fixture, TestApp};

#[tokio::test]
async fn metrics_count_requests_alerts_and_duplicates() {
    let app = TestApp::builder().spawn().await;
    app.post_webhook_raw(fixture("firing.json")).await;
    app.post_webhook_raw(fixture("firing.json")).await;
    app.post_webhook_raw(fixture("resolved.json")).await;
    app.post_webhook_raw("{").await;

    assert_eq!(
        app.metric(r#"medic_alerts_received_total{status="firing"}"#)
            .await,
        2.0
    );
    assert_eq!(
        app.metric(r#"medic_alerts_received_total{status="resolved"}"#)
            .await,
        1.0
    );
    assert_eq!(app.metric("medic_duplicate_deliveries_total").await, 1.0);
    assert_eq!(
        app.metric(r#"medic_notifications_total{outcome="recorded"}"#)
            .await,
        2.0
    );
    assert_eq!(
        app.metric(r#"medic_notifications_total{outcome="rejected"}"#)
            .await,
        1.0
    );
    assert_eq!(app.metric("medic_incidents_opened_total").await, 1.0);
    assert_eq!(app.metric("medic_incidents_resolved_total").await, 1.0);
    assert_eq!(
        app.metric(r#"medic_http_requests_total{code="200",method="POST",route="/webhook"}"#)
            .await,
        3.0
    );
    assert_eq!(
        app.metric(r#"medic_http_requests_total{code="400",method="POST",route="/webhook"}"#)
            .await,
        1.0
    );
    assert_eq!(
        app.metric(r#"medic_http_request_duration_seconds_count{method="POST",route="/webhook"}"#)
            .await,
        4.0
    );
    assert_eq!(app.metric("medic_db_pool_max_connections").await, 16.0);
    assert!(app.metric(r#"medic_db_pool_connections{state="idle"}"#).await >= 1.0);
    assert!(app.metric("process_resident_memory_bytes").await > 0.0);
}

#[tokio::test]
async fn unmatched_paths_do_not_explode_label_cardinality() {
    let app = TestApp::builder().spawn().await;
    for i in 0..3 {
        let response = app.get(&format!("/nope/{i}")).await;
        assert_eq!(response.status(), 404);
    }
    assert_eq!(
        app.metric(r#"medic_http_requests_total{code="404",method="GET",route="unmatched"}"#)
            .await,
        3.0
    );
}

#[tokio::test]
async fn promtool_finds_nothing_to_complain_about() {
    let app = TestApp::builder().spawn().await;
    app.post_webhook_raw(fixture("firing.json")).await;
    let text = app.metrics().await;

    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed for this test: apt-get install prometheus (scripts/test does it)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();

    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "promtool: {complaints}"
    );
}
