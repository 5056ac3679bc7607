//! Group commit: notifications recorded together still succeed or fail one by one.

use crate::helpers::{notification, shared_postgres, unique_name, TestApp};

#[tokio::test]
async fn one_notification_failing_in_the_database_does_not_fail_its_batch() {
    let url = shared_postgres().create_database(&unique_name()).await;
    // One writer, so that concurrent notifications queue up and share transactions.
    let app = TestApp::builder()
        .database(&url)
        .env("MEDIC_DATABASE__WRITERS", 1)
        .env("MEDIC_DATABASE__MAX_BATCH", 30)
        .spawn()
        .await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // A real database error for one group only, raised inside the recording transaction.
    client
        .batch_execute(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.group_key = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER poison BEFORE INSERT ON alert_groups FOR EACH ROW EXECUTE FUNCTION poison();",
        )
        .await
        .unwrap();
    let t0 = "2026-11-26T15:00:00Z";
    let keys: Vec<String> = (0..40)
        .map(|i| {
            if i == 20 {
                "poison".to_owned()
            } else {
                format!("group-{i}")
            }
        })
        .collect();

    let sends = keys.iter().map(|key| {
        let payload = notification(key, "firing", &[("aa01", "firing", t0)]);
        let app = &app;
        async move { (key.clone(), app.post_webhook(&payload).await.status().as_u16()) }
    });
    let answers = futures_util::future::join_all(sends).await;

    for (key, status) in &answers {
        let expected = if key == "poison" { 500 } else { 200 };
        assert_eq!(*status, expected, "{key}");
    }
    assert_eq!(app.count("SELECT count(*) FROM incidents").await, 39);
    let batches = app.metric("medic_intake_batch_size_count").await;
    assert!(
        batches < 40.0,
        "no two notifications shared a transaction ({batches} batches)"
    );
}
