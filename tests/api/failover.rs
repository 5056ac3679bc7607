//! Postgres failover: a primary with a synchronous streaming standby, medic on a multi-host
//! URL with `target_session_attrs=read-write`, notifications posted all along. The primary
//! stops, the standby is promoted: medic answers 503 (with Retry-After), never 500, while no
//! primary is reachable, then records on the new primary without a restart, its engine and
//! LISTEN reconnect, and every notification that got a 200 is there.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::helpers::{
    eventually, notification,
    settings::{rule, settings, webhook},
    sink::Sink,
    Durability, TempPostgres, TestApp,
};

/// Posts one notification of a new group every 50 ms until told to stop; the group keys
/// that were answered 200, and every status seen.
async fn post_continuously(app: Arc<TestApp>, stop: Arc<Mutex<bool>>) -> (Vec<String>, Vec<u16>) {
    let (mut recorded, mut statuses) = (Vec::new(), Vec::new());
    for i in 0.. {
        if *stop.lock().unwrap() {
            break;
        }
        let group = format!("failover-{i}");
        let payload = notification(
            &group,
            "firing",
            &[(&format!("{:016x}", i + 1), "firing", "2026-11-30T08:00:00Z")],
        );
        let response = app.post_webhook(&payload).await;
        let status = response.status().as_u16();
        if status == 503 {
            assert!(
                response.headers().contains_key("retry-after"),
                "503 without Retry-After"
            );
        }
        statuses.push(status);
        if status == 200 {
            recorded.push(group);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (recorded, statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_promoted_standby_takes_over_and_every_acknowledged_notification_is_there() {
    let primary = TempPostgres::start_with(
        Durability::Throwaway,
        "synchronous_commit = on\nwal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n",
        &[],
    );
    primary.create_database("medic").await;
    let standby = primary.standby();
    // Only now: with it set before the standby exists, every commit would wait forever.
    primary.reconfigure("synchronous_standby_names = '*'\n");
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/medic?target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    let sink = Sink::start(1).await;
    let settings = settings()
        .notifier("hook", webhook(&sink.url("/hook")))
        .rule(rule("all").notify(&["hook"]));
    let app = Arc::new(
        TestApp::builder()
            .settings(&settings)
            .database(&url)
            .spawn()
            .await,
    );

    let stop = Arc::new(Mutex::new(false));
    let posting = tokio::spawn(post_continuously(app.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    primary.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    standby.promote();
    // Recorded on the new primary, and its engine sends what that schedules.
    let before = sink.received_at("/hook").len();
    let what = "medic to resume on the new primary";
    eventually(what, Duration::from_secs(30), || async {
        let seen = app.count("SELECT count(*) FROM alert_groups").await;
        sink.received_at("/hook").len() > before + 3 && seen > 0
    })
    .await;
    *stop.lock().unwrap() = true;
    let (recorded, statuses) = posting.await.unwrap();

    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&503), "no outage was seen: {statuses:?}");
    let after = statuses.iter().rposition(|s| *s == 503).unwrap();
    assert!(statuses[after..].contains(&200), "no 200 after the outage");
    let (client, connection) = tokio_postgres::connect(&standby.url("medic"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let stored: Vec<String> = client
        .query("SELECT group_key FROM alert_groups", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let listening = "SELECT count(*) FROM pg_stat_activity
                      WHERE application_name = 'medic' AND query = 'LISTEN medic_timers'";
    eventually(
        "the engine's LISTEN to reconnect",
        Duration::from_secs(15),
        || async { client.query_one(listening, &[]).await.unwrap().get::<_, i64>(0) > 0 },
    )
    .await;
    let lost: Vec<&String> = recorded.iter().filter(|g| !stored.contains(g)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged notifications lost: {lost:?}",
        lost.len(),
        recorded.len()
    );
}
