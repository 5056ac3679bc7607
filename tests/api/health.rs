//! Probes, migrations at startup, and graceful shutdown.

use crate::helpers::{fixture, shared_postgres, unique_name, TestApp};

#[tokio::test]
async fn healthz_and_readyz_answer_200_when_the_database_is_migrated() {
    let app = TestApp::builder().spawn().await;
    for path in ["/healthz", "/readyz"] {
        let response = app.get_anonymous(path).await;
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn replicas_starting_together_apply_each_migration_once() {
    let url = shared_postgres().create_database(&unique_name()).await;

    let apps = futures_util::future::join_all(
        (0..4).map(|_| TestApp::builder().database(&url).without_waiting().spawn()),
    )
    .await;
    for app in &apps {
        app.wait_ready().await;
    }

    let applied: Vec<i32> = apps[0]
        .sql()
        .await
        .query_one(
            "SELECT array_agg(version ORDER BY version) FROM medic_schema_migrations",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, medic::store::migrations::versions());
    for app in &apps {
        assert_eq!(app.post_webhook_raw(fixture("firing.json")).await.status(), 200);
    }
}

#[tokio::test]
async fn readyz_is_503_when_the_schema_is_not_migrated() {
    let app = TestApp::builder()
        .env("MEDIC_DATABASE__MIGRATE_ON_START", false)
        .without_waiting()
        .spawn()
        .await;

    let readyz = app.get_anonymous("/readyz").await;
    assert_eq!(readyz.status(), 503);
    let webhook = app.post_webhook_raw(fixture("firing.json")).await;
    assert_eq!(webhook.status(), 503);
    assert_eq!(webhook.headers()["retry-after"], "7");

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["migrate"])
        .env_clear()
        .env("MEDIC_DATABASE__URL", &app.database_url)
        .env("MEDIC_SERVER__AUTH__BEARER_TOKEN", "t")
        .status()
        .unwrap();
    assert!(status.success());
    app.wait_ready().await;
    let status = app.post_until_recorded(&fixture("firing.json")).await;
    assert_eq!(
        status, 200,
        "medic did not take notifications after `medic migrate`"
    );
}

#[tokio::test]
async fn shutdown_lets_the_in_flight_request_finish_and_stops_accepting() {
    use futures_util::StreamExt as _;
    let app = TestApp::builder().spawn().await;
    let payload = fixture("firing.json").into_bytes();
    let (first, second) = payload.split_at(payload.len() / 2);
    // The body arrives in two halves 300 ms apart, so the request is in flight for a while.
    let chunks = futures_util::stream::iter([first.to_vec(), second.to_vec()]).then(|chunk| async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Ok::<_, std::io::Error>(chunk)
    });
    let request = app
        .webhook("application/json")
        .bearer_auth(crate::helpers::TOKEN)
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;

    app.stop().await;

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM deliveries").await, 1);
    let fresh = reqwest::Client::new();
    assert!(
        fresh
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .is_err(),
        "still accepting"
    );
}
