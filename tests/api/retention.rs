//! Retention: old deliveries, attempts and resolved incidents are pruned in small batches, one
//! replica at a time, and an incident's delivery count stays right.

use std::time::Duration;

use medic::{
    metrics::Metrics,
    store::retention::{Retention, PRUNE_LOCK},
};
use serde_json::Value;

use crate::helpers::{
    notification,
    settings::{rule, settings, webhook},
    sink::Sink,
    store, TestApp,
};

const DAY: Duration = Duration::from_secs(86_400);

fn retention(batch: i64) -> Retention {
    Retention {
        deliveries: Some(30 * DAY),
        timer_attempts: Some(90 * DAY),
        resolved_incidents: Some(400 * DAY),
        batch,
    }
}

#[tokio::test]
async fn old_history_is_pruned_in_batches_and_counts_stay_right() {
    let sink = Sink::start(1).await;
    let settings = settings()
        .notifier("hook", webhook(&sink.url("/hook")))
        .rule(rule("all").notify(&["hook"]));
    let app = TestApp::builder().settings(&settings).spawn().await;
    let t = "2026-11-26T15:00:00Z";
    // A firing incident delivered 5 times, an old resolved one, and a recent resolved one.
    let firing = notification("firing", "firing", &[("00000000000000a1", "firing", t)]);
    let live = app.post_for_incident(&firing).await;
    for _ in 0..4 {
        app.post_for_incident(&firing).await;
    }
    let old = app
        .post_for_incident(&notification(
            "old",
            "firing",
            &[("00000000000000b1", "firing", t)],
        ))
        .await;
    app.post_for_incident(&notification(
        "old",
        "resolved",
        &[("00000000000000b1", "resolved", t)],
    ))
    .await;
    let recent = app
        .post_for_incident(&notification(
            "recent",
            "firing",
            &[("00000000000000c1", "firing", t)],
        ))
        .await;
    app.post_for_incident(&notification(
        "recent",
        "resolved",
        &[("00000000000000c1", "resolved", t)],
    ))
    .await;
    sink.wait_for("/hook", 5, Duration::from_secs(15)).await; // opened x3, resolved x2
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Value = app.incident(live).await;
    assert_eq!(before["deliveries"], 5);

    let db = app.sql().await;
    db.batch_execute(&format!(
        "UPDATE deliveries SET received_at = now() - interval '40 days' WHERE incident_id = {live};
         UPDATE timer_attempts SET finished_at = now() - interval '100 days'
          WHERE timer_id IN (SELECT id FROM timers WHERE incident_id = {live});
         UPDATE incidents SET resolved_at = now() - interval '401 days' WHERE id = {old};"
    ))
    .await
    .unwrap();

    let store = store(&app.database_url);
    let metrics = Metrics::new().unwrap();
    let pruned = medic::retention::round(&store, &retention(2), &metrics.retention).await;
    assert_eq!(
        pruned.deliveries,
        5 + 2,
        "the live incident's five, and the old incident's two"
    );
    assert!(pruned.timer_attempts >= 2, "{pruned:?}");
    assert_eq!(pruned.incidents, 1);
    assert_eq!(pruned.alerts, 1);
    assert_eq!(
        metrics.retention.pruned.with_label_values(&["incidents"]).get(),
        1
    );

    let after: Value = app.incident(live).await;
    assert_eq!(after["deliveries"], 5, "the count survives its rows");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM deliveries WHERE incident_id = {live}"
        ))
        .await,
        0
    );
    assert_eq!(app.get(&format!("/api/v1/incidents/{old}")).await.status(), 404);
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM timers WHERE incident_id = {old}"))
            .await,
        0
    );
    assert_eq!(
        app.get(&format!("/api/v1/incidents/{recent}")).await.status(),
        200,
        "kept"
    );
    assert_eq!(app.incident(recent).await["deliveries"], 2);
    let again = medic::retention::round(&store, &retention(2), &metrics.retention).await;
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn only_one_replica_prunes_at_a_time() {
    let app = TestApp::builder().spawn().await;
    let store = store(&app.database_url);
    let mut db = app.sql().await;
    let tx = db.transaction().await.unwrap();
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PRUNE_LOCK])
        .await
        .unwrap();
    assert_eq!(
        store.prune(&retention(10)).await.unwrap(),
        None,
        "another replica holds the lock"
    );
    tx.rollback().await.unwrap();
    assert!(store.prune(&retention(10)).await.unwrap().is_some());
}
