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
    assert_eq!(
        app.metric(r#"medic_db_pool_max_connections{pool="main"}"#).await,
        16.0
    );
    assert_eq!(
        app.metric(r#"medic_db_pool_max_connections{pool="read"}"#).await,
        4.0
    );
    assert!(
        app.metric(r#"medic_db_pool_connections{pool="main",state="idle"}"#)
            .await
            >= 1.0
    );
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

/// Unauthenticated callers choose methods and paths; metric labels must not follow them.
#[tokio::test]
async fn a_thousand_requests_with_made_up_methods_and_paths_add_no_series() {
    let app = TestApp::builder().spawn().await;
    let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FOOBAR", "PURGE", "X1", "MKCOL",
    ];
    let paths = [
        "/",
        "/webhook",
        "/api/v1/incidents/x",
        "/api/v2",
        "/a/b/c",
        "/metrics/x",
        "/%2e%2e/etc",
    ];
    let send = |i: u64| {
        // A small deterministic generator: the same pools every run.
        let x = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33;
        let method = reqwest::Method::from_bytes(methods[(x % 10) as usize].as_bytes()).unwrap();
        let path = format!("{}/{}", paths[(x / 10 % 7) as usize], x % 1000);
        app.client
            .request(method, format!("{}{path}", app.address))
            .send()
    };
    let series = |text: String| text.lines().filter(|l| l.starts_with("medic_http_")).count();
    // Every method and path shape once, so every label combination they can reach exists.
    for method in methods {
        for path in paths {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let _ = app
                .client
                .request(method, format!("{}{path}/0", app.address))
                .send()
                .await;
        }
    }
    app.metrics().await; // a scrape counts itself from the next one on
    let before = series(app.metrics().await);
    for chunk in (0..1000u64).collect::<Vec<_>>().chunks(50) {
        futures_util::future::join_all(chunk.iter().map(|i| send(*i))).await;
    }
    let after = app.metrics().await;
    assert_eq!(series(after.clone()), before, "{after}");
    assert!(
        after.contains(r#"method="other""#),
        "made-up methods are counted as other"
    );
    assert!(!after.contains("FOOBAR"));
}
