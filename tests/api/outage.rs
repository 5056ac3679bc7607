//! The database goes away while medic runs: 503 with Retry-After, then recovery, no restart.

use crate::helpers::{eventually, fixture, Durability, TempPostgres, TestApp};

#[tokio::test]
async fn webhook_returns_503_while_the_database_is_down_and_recovers_when_it_returns() {
    let postgres = TempPostgres::start(Durability::Throwaway);
    let url = postgres.create_database("medic").await;
    let app = TestApp::builder().database(&url).spawn().await;
    assert_eq!(app.post_webhook_raw(fixture("firing.json")).await.status(), 200);

    postgres.stop();

    let response = app.post_webhook_raw(fixture("resolved.json")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("database"), "{body}");
    // A readiness check answers every probe for a second; then the next one sees the outage.
    let readyz = eventually(
        "/readyz to see the outage",
        std::time::Duration::from_secs(3),
        || async {
            let readyz = app.get_anonymous("/readyz").await;
            let status = readyz.status();
            (status == 503).then_some(readyz).ok_or(status)
        },
    )
    .await;
    let said = readyz.text().await.unwrap();
    assert_eq!(
        said, r#"{"status":"not ready"}"#,
        "an unauthenticated probe learns nothing of the database"
    );
    let healthz = app.get_anonymous("/healthz").await;
    assert_eq!(healthz.status(), 200, "liveness must not depend on the database");

    postgres.restart();

    let status = app.post_until_recorded(&fixture("resolved.json")).await;
    assert_eq!(status, 200, "medic did not recover after the database came back");
    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["status"], "resolved");
    assert_eq!(
        app.metric(r#"medic_notifications_total{outcome="unavailable"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn medic_starts_while_the_database_is_down_and_serves_once_it_is_up() {
    let postgres = TempPostgres::start(Durability::Throwaway);
    let url = postgres.create_database("medic").await;
    postgres.stop();

    let app = TestApp::builder().database(&url).without_waiting().spawn().await;
    let response = app.post_webhook_raw(fixture("firing.json")).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));

    postgres.restart();
    app.wait_ready().await;
    let status = app.post_until_recorded(&fixture("firing.json")).await;
    assert_eq!(status, 200);
}
