//! Retries, repeats and HA pairs deliver the same group again: nothing may be doubled.

use crate::helpers::{fixture, notification, shared_postgres, unique_name, TestApp};

#[tokio::test]
async fn a_repeated_delivery_creates_no_new_incident_or_alert() {
    let app = TestApp::builder().spawn().await;
    let first: serde_json::Value = app
        .post_webhook_raw(fixture("firing.json"))
        .await
        .json()
        .await
        .unwrap();

    let second: serde_json::Value = app
        .post_webhook_raw(fixture("firing.json"))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["incident_id"], first["incident_id"]);
    let incidents = app.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["deliveries"], 2);
    assert_eq!(incidents[0]["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM deliveries").await, 2);
    assert_eq!(app.metric("medic_duplicate_deliveries_total").await, 1.0);
}

#[tokio::test]
async fn concurrent_duplicates_on_one_replica_make_one_incident() {
    let app = TestApp::builder().spawn().await;
    let payload = notification("g", "firing", &[("aa01", "firing", "2026-11-26T15:00:00Z")]);

    let sends = (0..32).map(|_| app.post_webhook(&payload));
    let statuses: Vec<u16> = futures_util::future::join_all(sends)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.count("SELECT count(*) FROM incidents").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM alerts").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM deliveries").await, 32);
}

#[tokio::test]
async fn two_replicas_receiving_the_same_groups_at_once_make_one_incident_per_group() {
    let url = shared_postgres().create_database(&unique_name()).await;
    let a = TestApp::builder().database(&url).spawn().await;
    let b = TestApp::builder().database(&url).spawn().await;
    let t0 = "2026-11-26T15:00:00Z";

    let mut sends = Vec::new();
    for group in 0..20 {
        let alerts: Vec<(String, &str, &str)> = (0..5)
            .map(|i| (format!("{group:02x}{i:02x}"), "firing", t0))
            .collect();
        let alerts: Vec<(&str, &str, &str)> = alerts.iter().map(|(f, s, t)| (f.as_str(), *s, *t)).collect();
        let payload = notification(&format!("group-{group}"), "firing", &alerts);
        for app in [&a, &b, &a, &b] {
            let payload = payload.clone();
            sends.push(async move { app.post_webhook(&payload).await.status().as_u16() });
        }
    }
    let statuses = futures_util::future::join_all(sends).await;

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(a.count("SELECT count(*) FROM incidents").await, 20);
    assert_eq!(a.count("SELECT count(*) FROM alerts").await, 100);
    assert_eq!(a.count("SELECT count(*) FROM deliveries").await, 80);
    assert_eq!(
        a.count("SELECT count(*) FROM deliveries WHERE duplicate").await,
        60
    );
}

#[tokio::test]
async fn concurrent_duplicate_resolves_close_the_incident_once() {
    let url = shared_postgres().create_database(&unique_name()).await;
    let a = TestApp::builder().database(&url).spawn().await;
    let b = TestApp::builder().database(&url).spawn().await;
    a.post_webhook_raw(fixture("firing.json")).await;

    let resolved = fixture("resolved.json");
    let sends = (0..16)
        .map(|i| if i % 2 == 0 { &a } else { &b })
        .map(|app| app.post_webhook_raw(resolved.clone()));
    let statuses: Vec<u16> = futures_util::future::join_all(sends)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(a.count("SELECT count(*) FROM incidents").await, 1);
    assert_eq!(
        a.count("SELECT count(*) FROM incidents WHERE status = 'resolved'")
            .await,
        1
    );
    assert_eq!(
        a.count("SELECT count(*) FROM deliveries WHERE NOT duplicate")
            .await,
        2
    );
}
