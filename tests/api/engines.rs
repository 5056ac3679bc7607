//! Several engines (separate pools, as separate replicas), a killed engine, a restarted
//! database: every timer fires, none twice.

use std::{collections::BTreeMap, collections::HashMap, sync::Arc, time::Duration};

use medic::{
    config::{DatabaseSettings, EngineSettings},
    domain::HumanDuration,
    engine::Engine,
    metrics::Metrics,
    notify::Notifiers,
    plan::{Endpoint, NotifierEndpoint, Rules},
    store::Store,
};
use secrecy::SecretString;

use crate::helpers::{
    notification,
    settings::{pagerduty, rule, settings},
    shared_postgres,
    sink::{Reply, Sink},
    unique_name, Durability, TempPostgres, TestApp,
};

const WAIT: Duration = Duration::from_secs(30);

async fn store(url: &str) -> Store {
    let settings = DatabaseSettings {
        url: SecretString::from(url.to_owned()),
        max_connections: 4,
        connect_timeout_seconds: 1,
        acquire_timeout_seconds: 1,
        ..DatabaseSettings::default()
    };
    let store = Store::new(&settings).unwrap();
    store.migrate().await.unwrap();
    store
}

fn engine_settings(lease: Duration, request_timeout: Duration) -> EngineSettings {
    EngineSettings {
        lease: HumanDuration(lease),
        request_timeout: HumanDuration(request_timeout),
        batch: 64,
        concurrency: 32,
        ..EngineSettings::default()
    }
}

/// One webhook notifier, `sink`, posting to the sink's `/hook`.
fn notifiers(sink: &Sink, settings: &EngineSettings) -> Notifiers {
    let endpoint = NotifierEndpoint {
        name: "sink".into(),
        endpoint: Endpoint::Webhook {
            url: reqwest::Url::parse(&sink.url("/hook")).unwrap(),
            bearer_token: None,
        },
    };
    Notifiers::new(
        BTreeMap::from([("sink".to_owned(), endpoint)]),
        settings.request_timeout.0,
    )
    .unwrap()
}

/// An engine over `store` (not started), sending every timer to the sink's `/hook`.
fn engine_over(store: Store, sink: &Sink, settings: &EngineSettings, metrics: &Metrics) -> Engine {
    Engine::new(
        store,
        notifiers(sink, settings),
        Arc::new(Rules::default()),
        settings,
        metrics.timers.clone(),
    )
}

/// An engine with its own pool, started, sending every timer to the sink's `/hook`.
async fn engine(url: &str, sink: &Sink, settings: &EngineSettings) -> medic::engine::EngineHandle {
    let engine = engine_over(store(url).await, sink, settings, &Metrics::new().unwrap());
    engine.spawn(settings.concurrency, Duration::from_secs(30))
}

/// An open incident and `count` escalation timers for it, due over `spread_ms` from now.
async fn schedule(url: &str, count: i32, spread_ms: i32) {
    sql(url)
        .await
        .batch_execute(&format!(
            "INSERT INTO alert_groups (receiver, group_key, group_labels) VALUES ('r', 'g', '{{}}');
             INSERT INTO incidents (group_id, status, common_labels, common_annotations, external_url)
                  SELECT id, 'firing', '{{}}', '{{}}', '' FROM alert_groups;
             INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at)
                  SELECT i.id, 'escalation', 'test', g, 'sink', 'webhook', d, d
                    FROM incidents i, generate_series(1, {count}) g,
                         LATERAL (SELECT now() + (g % {spread_ms}) * interval '1 millisecond' AS d) due;
             NOTIFY medic_timers;"
        ))
        .await
        .unwrap();
}

/// A plain connection to the test's database.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn count(url: &str, query: &str) -> i64 {
    sql(url).await.query_one(query, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_engines_fire_thousands_of_timers_each_exactly_once() {
    let url = shared_postgres().create_database(&unique_name()).await;
    let sink = Sink::start(2).await;
    let settings = engine_settings(Duration::from_secs(30), Duration::from_secs(5));
    let mut engines = Vec::new();
    for _ in 0..3 {
        engines.push(engine(&url, &sink, &settings).await);
    }
    schedule(&url, 3000, 2000).await;

    let received = sink.wait_for("/hook", 3000, WAIT).await;
    sink.expect_no_more("/hook", 3000, Duration::from_millis(500))
        .await;
    let mut per_delivery: HashMap<String, usize> = HashMap::new();
    for request in &received {
        *per_delivery
            .entry(request.headers["idempotency-key"].clone())
            .or_default() += 1;
    }
    assert_eq!(per_delivery.len(), 3000, "some timers never fired");
    assert!(per_delivery.values().all(|n| *n == 1), "some timers fired twice");
    for engine in engines {
        engine.stop().await;
    }
    assert_eq!(
        count(&url, "SELECT count(*) FROM timers WHERE state = 'done'").await,
        3000
    );
    assert_eq!(
        count(&url, "SELECT count(*) FROM timer_attempts WHERE result = 'sent'").await,
        3000
    );
}

#[tokio::test]
async fn a_timer_whose_engine_dies_mid_send_is_sent_by_another_after_the_lease() {
    let url = shared_postgres().create_database(&unique_name()).await;
    let sink = Sink::start(2).await;
    sink.enqueue(
        "/hook",
        vec![Reply::status(200).with_delay(Duration::from_secs(5))],
    );
    let settings = engine_settings(Duration::from_millis(1500), Duration::from_secs(1));
    let doomed = engine(&url, &sink, &settings).await;
    schedule(&url, 1, 1).await;

    let first = sink.wait_for("/hook", 1, WAIT).await;
    doomed.kill();
    let survivor = engine(&url, &sink, &settings).await;

    let both = sink.wait_for("/hook", 2, WAIT).await;
    let taken_over_after = both[1].at.duration_since(first[0].at).unwrap();
    assert!(
        taken_over_after >= Duration::from_millis(1000),
        "taken over after {taken_over_after:?}, before the lease ended"
    );
    assert_eq!(
        both[0].headers["idempotency-key"],
        both[1].headers["idempotency-key"]
    );
    assert_eq!(both[0].body["dedup_key"], both[1].body["dedup_key"]);
    sink.expect_no_more("/hook", 2, Duration::from_millis(500)).await;
    survivor.stop().await;
    assert_eq!(
        count(&url, "SELECT count(*) FROM timers WHERE state = 'done'").await,
        1
    );
    assert_eq!(
        count(
            &url,
            "SELECT max(attempt)::bigint FROM timer_attempts WHERE result = 'sent'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn an_escalation_due_while_postgres_restarts_fires_once_it_is_back() {
    let postgres = TempPostgres::start(Durability::Throwaway);
    let url = postgres.create_database("medic").await;
    let sink = Sink::start(1).await;
    sink.set_default("/pagerduty", Reply::status(202));
    let settings = settings()
        .notifier("pagerduty", pagerduty(&sink.url("/pagerduty"), "rk"))
        .rule(rule("page").escalate("2s", &["pagerduty"]))
        .with(
            "engine",
            serde_json::json!({"lease": "5s", "request_timeout": "2s"}),
        );
    let app = TestApp::builder()
        .settings(&settings)
        .database(&url)
        .spawn()
        .await;
    let payload = notification(
        "g",
        "firing",
        &[("00000000000000bb", "firing", "2026-11-26T10:00:00Z")],
    );
    assert_eq!(app.post_webhook(&payload).await.status(), 200);

    postgres.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        sink.received_at("/pagerduty").is_empty(),
        "paged while the database was down?"
    );
    postgres.restart();

    let pages = sink.wait_for("/pagerduty", 1, WAIT).await;
    assert_eq!(pages[0].body["event_action"], "trigger");
    sink.expect_no_more("/pagerduty", 1, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_escalation_whose_incident_resolved_meanwhile_is_cancelled_not_sent() {
    let url = shared_postgres().create_database(&unique_name()).await;
    let sink = Sink::start(1).await;
    let settings = engine_settings(Duration::from_secs(30), Duration::from_secs(5));
    let engine = Engine::new(
        store(&url).await,
        notifiers(&sink, &settings),
        Arc::new(Rules::default()),
        &settings,
        Metrics::new().unwrap().timers,
    );
    schedule(&url, 2, 1).await;
    // Resolved behind the timers' back, as if the resolve raced their claim.
    sql(&url)
        .await
        .batch_execute("UPDATE incidents SET status = 'resolved', resolved_at = now()")
        .await
        .unwrap();

    assert_eq!(engine.try_execute_batch().await.unwrap(), 2);
    assert_eq!(
        engine.try_execute_batch().await.unwrap(),
        0,
        "cancelled timers came due again"
    );
    assert!(
        sink.received().is_empty(),
        "sent an escalation for a resolved incident"
    );
    assert_eq!(
        count(&url, "SELECT count(*) FROM timers WHERE state = 'cancelled'").await,
        2
    );
    assert_eq!(count(&url, "SELECT count(*) FROM timer_attempts").await, 0);
}

/// A rolling update: a newer replica writes a timer of a kind this build does not know. This
/// engine must leave it to the newer one (never claim it, so it is not dropped and re-claimed
/// after every lease) while it fires the timers it knows.
#[tokio::test]
async fn a_timer_of_a_kind_this_build_does_not_know_is_never_claimed() {
    let url = shared_postgres().create_database(&unique_name()).await;
    let sink = Sink::start(1).await;
    let settings = engine_settings(Duration::from_secs(30), Duration::from_secs(5));
    let store = store(&url).await;
    schedule(&url, 1, 1).await;
    sql(&url)
        .await
        .batch_execute(
            "ALTER TABLE timers DROP CONSTRAINT timers_kind_check;
             INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at)
                  SELECT id, 'from_the_future', 'test', 0, 'sink', 'webhook', now(), now() FROM incidents;",
        )
        .await
        .unwrap();
    let engine = engine_over(store.clone(), &sink, &settings, &Metrics::new().unwrap());

    assert_eq!(
        engine.try_execute_batch().await.unwrap(),
        1,
        "the escalation is claimed"
    );
    assert_eq!(
        engine.try_execute_batch().await.unwrap(),
        0,
        "the unknown kind is not"
    );
    sink.wait_for("/hook", 1, WAIT).await;
    let untouched = "SELECT count(*) FROM timers
                      WHERE kind = 'from_the_future' AND state = 'pending' AND attempts = 0
                        AND claim IS NULL AND lease_until IS NULL";
    assert_eq!(count(&url, untouched).await, 1);
    assert_eq!(
        store.next_timer_due().await.unwrap(),
        None,
        "an idle engine does not wake up for a timer it will not claim"
    );
}

/// A remediation timer whose job cannot be read (damaged, or written by another version) is a
/// failure recorded with the reason, never an action on a made-up alert episode.
#[tokio::test]
async fn a_remediation_that_cannot_be_decoded_is_a_recorded_failure() {
    let url = shared_postgres().create_database(&unique_name()).await;
    let sink = Sink::start(1).await;
    let settings = engine_settings(Duration::from_secs(30), Duration::from_secs(5));
    let store = store(&url).await;
    schedule(&url, 0, 1).await;
    sql(&url)
        .await
        .batch_execute(
            r#"INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                                   subject, payload)
                    SELECT id, 'remediation', 'r', 0, 'scale_up', 'remediation', now(), now(),
                           'abc@2026-11-26T10:00:00.000000Z', '{"params": {"namespace": 7}}'
                      FROM incidents;"#,
        )
        .await
        .unwrap();
    let metrics = Metrics::new().unwrap();
    let runner = medic::remediation::Runner::new(
        store.clone(),
        Arc::new(Rules::default()),
        medic::plan::GuardRails::new(&Default::default(), false),
        Err("no cluster in this test".into()),
        BTreeMap::new(),
        medic::control::Control::new(),
        metrics.remediation.clone(),
    );
    let engine = engine_over(store.clone(), &sink, &settings, &metrics).with_remediations(Arc::new(runner));

    assert_eq!(engine.try_execute_batch().await.unwrap(), 1);
    let failed = "SELECT count(*) FROM timers
                   WHERE kind = 'remediation' AND state = 'failed'
                     AND last_error LIKE 'undecodable remediation job: %'";
    assert_eq!(count(&url, failed).await, 1);
    let attempts = "SELECT count(*) FROM timer_attempts a JOIN timers t ON t.id = a.timer_id
                     WHERE t.kind = 'remediation' AND a.result = 'failed'";
    assert_eq!(count(&url, attempts).await, 1);
    assert_eq!(
        count(&url, "SELECT count(*) FROM remediations").await,
        0,
        "nothing was decided"
    );
    let counted = metrics
        .remediation
        .remediations
        .with_label_values(&["scale_up", "failure"])
        .get();
    assert_eq!(counted, 1);
    assert_eq!(engine.try_execute_batch().await.unwrap(), 0, "not claimed again");
}
