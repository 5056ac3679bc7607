//! Readers never slow intake: reads have a pool of their own with its own deadline, each caller
//! a share of them, and searches cost what their narrowest filter lets them. (That windows and
//! the pause reach other replicas on a NOTIFY, with no per-second work, is
//! `doors::a_window_opened_through_one_replica_holds_in_another_within_a_second`.)

use std::time::{Duration, Instant};

use medic::{
    config::DatabaseSettings,
    domain::HumanDuration,
    store::{
        incidents::{LabelFilter, LabelTest, Page},
        Store,
    },
};
use serde_json::{json, Value};

use crate::helpers::{alerts_with_labels, eventually, TestApp, RESPONDER, VIEWER};

/// A transaction holding `table` locked against everyone, so that a read of it waits.
async fn lock(app: &TestApp, table: &str) -> tokio_postgres::Client {
    let db = app.sql().await;
    db.batch_execute(&format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .await
        .unwrap();
    db
}

/// Waits until `n` connections of the read pool wait for a lock.
async fn readers_waiting(app: &TestApp, n: i64) {
    let db = app.sql().await;
    let what = format!("{n} readers to wait for the lock");
    eventually(&what, Duration::from_secs(5), || async {
        let waiting: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'medic-read'
                    AND wait_event_type = 'Lock' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (waiting >= n).then_some(()).ok_or(waiting)
    })
    .await;
}

/// A GET as `token`, in the background.
fn get_as(app: &TestApp, token: &str, path: &str) -> tokio::task::JoinHandle<reqwest::Response> {
    let request = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(token);
    tokio::spawn(async move { request.send().await.expect("GET") })
}

async fn an_incident(app: &TestApp, group: &str, labels: Value) -> i64 {
    app.post_for_incident(&alerts_with_labels(group, &[labels], 0x5000 + group.len()))
        .await
}

#[tokio::test]
async fn intake_answers_while_every_read_connection_is_held() {
    let app = TestApp::builder()
        .env("MEDIC_DATABASE__READ_CONNECTIONS", 1)
        .env("MEDIC_DATABASE__READ_ACQUIRE_TIMEOUT", "300ms")
        .spawn()
        .await;
    let id = an_incident(&app, "held", json!({"alertname": "Disk"})).await;
    let held = lock(&app, "timer_attempts").await;
    let reader = get_as(&app, VIEWER.2, &format!("/api/v1/incidents/{id}"));
    readers_waiting(&app, 1).await;

    let started = Instant::now();
    let busy = app.get("/api/v1/incidents").await;
    assert_eq!(busy.status(), 503, "the read pool is full");
    assert_eq!(busy.headers()["retry-after"], "1");
    let started_intake = Instant::now();
    let new = an_incident(&app, "during", json!({"alertname": "Other"})).await;
    assert!(new > id);
    assert!(
        started_intake.elapsed() < Duration::from_millis(500),
        "intake took {:?} while reads were stuck",
        started_intake.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    held.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(reader.await.unwrap().status(), 200);
    assert_eq!(app.incidents().await.len(), 2);
}

#[tokio::test]
async fn a_search_past_its_deadline_is_cancelled_with_503_naming_its_filter() {
    let app = TestApp::builder()
        .env("MEDIC_DATABASE__READ_STATEMENT_TIMEOUT", "500ms")
        .spawn()
        .await;
    an_incident(&app, "slow", json!({"alertname": "Disk", "pod": "a"})).await;
    let held = lock(&app, "alerts").await;

    let started = Instant::now();
    let response = app
        .get("/api/v1/incidents?filter=alertname%3D%22Disk%22%2Cpod%3D~%22a.%2A%22")
        .await;
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("too expensive"), "{error}");
    assert!(error.contains(r#"pod=~"a.*""#), "the regex is named: {error}");
    assert!(
        !error.contains(r#"alertname="Disk""#),
        "the equality is not blamed: the index serves it: {error}"
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "cancelled at its deadline, not later: {took:?}"
    );
    held.batch_execute("ROLLBACK").await.unwrap();
    let again = app.get("/api/v1/incidents?filter=pod%3D~%22a.%2A%22").await;
    assert_eq!(again.status(), 200, "the lock gone, the same search answers");
}

#[tokio::test]
async fn a_user_past_their_share_of_reads_gets_429_and_others_do_not() {
    let app = TestApp::builder()
        .env("MEDIC_DATABASE__READ_CONNECTIONS", 8)
        .env("MEDIC_DATABASE__READ_ACQUIRE_TIMEOUT", "5s")
        .spawn()
        .await;
    let id = an_incident(&app, "shared", json!({"alertname": "Disk"})).await;
    let held = lock(&app, "timer_attempts").await;
    let path = format!("/api/v1/incidents/{id}");
    // The default share: four reads in flight.
    let readers: Vec<_> = (0..4).map(|_| get_as(&app, VIEWER.2, &path)).collect();
    readers_waiting(&app, 4).await;

    let fifth = app.get("/api/v1/incidents").await;
    assert_eq!(fifth.status(), 429);
    assert_eq!(fifth.headers()["retry-after"], "1");
    let other = get_as(&app, RESPONDER.2, &path);
    readers_waiting(&app, 5).await;
    let webhook = app
        .post_webhook(&alerts_with_labels("am", &[json!({"alertname": "X"})], 0x7000))
        .await;
    assert_eq!(webhook.status(), 200, "Alertmanager's credential is not limited");

    held.batch_execute("ROLLBACK").await.unwrap();
    for reader in readers {
        assert_eq!(reader.await.unwrap().status(), 200);
    }
    assert_eq!(
        other.await.unwrap().status(),
        200,
        "another user has a share of their own"
    );
    assert_eq!(
        app.get("/api/v1/incidents").await.status(),
        200,
        "the share is back"
    );
}

#[tokio::test]
async fn filters_of_more_than_20_matchers_or_regexes_over_1000_bytes_are_refused() {
    let app = TestApp::builder().spawn().await;
    let many: Vec<String> = (0..21).map(|k| format!("l{k}%3D%22v%22")).collect();
    let response = app
        .get(&format!("/api/v1/incidents?filter={}", many.join("%2C")))
        .await;
    assert_eq!(response.status(), 400);
    let long = format!("pod%3D~%22{}%22", "a".repeat(1001));
    assert_eq!(
        app.get(&format!("/api/v1/incidents?filter={long}"))
            .await
            .status(),
        400
    );
    let fits = format!("pod%3D~%22{}%22", "a".repeat(1000));
    assert_eq!(
        app.get(&format!("/api/v1/incidents?filter={fits}"))
            .await
            .status(),
        200
    );
}

/// medic's own store over the test's database, reading through a single read connection.
fn one_reader(app: &TestApp) -> Store {
    Store::new(&DatabaseSettings {
        url: secrecy::SecretString::from(app.database_url.clone()),
        read_connections: 1,
        read_statement_timeout: HumanDuration(Duration::from_secs(30)),
        ..DatabaseSettings::default()
    })
    .unwrap()
}

fn filter(label: &str, test: LabelTest) -> LabelFilter {
    LabelFilter {
        label: label.into(),
        test,
    }
}

fn page(filters: Vec<LabelFilter>) -> Page {
    Page {
        limit: 50,
        filters,
        ..Page::default()
    }
}

/// Search number `n`'s filters: `n` written in base 4 over the operators, one matcher per
/// digit; every `n` is a shape of its own.
fn shape(n: usize) -> Vec<LabelFilter> {
    let (mut n, mut filters, mut k) = (n + 1, Vec::new(), 0);
    while n > 0 {
        let value = "v".to_owned();
        let test = match n % 4 {
            0 => LabelTest::Equal(value),
            1 => LabelTest::NotEqual(value),
            2 => LabelTest::Regex("v.*".into()),
            _ => LabelTest::NotRegex(value),
        };
        filters.push(filter(&format!("l{k}"), test));
        n /= 4;
        k += 1;
    }
    filters
}

/// Memory a process holds of its own (`RssAnon`), in bytes.
fn private_memory(pid: &str) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: i64 = status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test]
async fn ten_thousand_distinct_filter_shapes_leave_memory_flat() {
    let app = TestApp::builder().spawn().await;
    an_incident(&app, "a", json!({"alertname": "Disk", "l0": "v", "l1": "w"})).await;
    let reads = one_reader(&app).reads();
    for n in 0..200 {
        reads.list_incidents(page(shape(n))).await.unwrap();
    }
    let backend: i32 = app
        .sql()
        .await
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'medic-read'
                AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    const LIMIT: i64 = 32 << 20;
    // The backend is this test's alone; medic's memory is the test process's, shared with the
    // tests running beside it, whose growth can land in any one pass. A leak per shape grows in
    // every pass of new shapes: so a pass over the limit is measured once more, with new shapes.
    let mut passes = Vec::new();
    for pass in 0..2 {
        let (postgres_before, medic_before) = (private_memory(&backend.to_string()), private_memory("self"));
        for n in 200 + pass * 10_000..10_200 + pass * 10_000 {
            reads.list_incidents(page(shape(n))).await.unwrap();
        }
        let postgres_grew = private_memory(&backend.to_string()) - postgres_before;
        let medic_grew = private_memory("self") - medic_before;
        passes.push((postgres_grew, medic_grew));
        if postgres_grew < LIMIT && medic_grew < LIMIT {
            return;
        }
    }
    panic!("memory grew over {LIMIT} bytes in both passes of 10,000 new shapes (Postgres' backend, medic): {passes:?}");
}

/// The plan node under `plan` that runs as a subplan, if any.
fn subplan(plan: &Value) -> Option<&Value> {
    if plan["Parent Relationship"] == "SubPlan" {
        return Some(plan);
    }
    plan["Plans"].as_array()?.iter().find_map(subplan)
}

/// How often the alerts of an incident were tested for a search.
async fn alert_tests(reads: &Store, filters: Vec<LabelFilter>) -> i64 {
    let explained = reads.explain_search(page(filters)).await.unwrap();
    let plan = &explained[0]["Plan"];
    let tests = subplan(plan).unwrap_or_else(|| panic!("the alerts are tested in a subplan: {plan:#}"));
    tests["Actual Loops"].as_i64().unwrap()
}

#[tokio::test]
async fn a_regex_is_tried_only_on_incidents_the_index_narrowed() {
    let app = TestApp::builder().spawn().await;
    for k in 0..30 {
        let team = if k % 10 == 0 { "db" } else { "web" };
        an_incident(
            &app,
            &format!("g{k}"),
            json!({"alertname": "Disk", "team": team, "pod": format!("pod-{k}")}),
        )
        .await;
    }
    let reads = one_reader(&app).reads();
    let regex = || filter("pod", LabelTest::Regex(".*zz[0-9]+q.*".into()));
    assert_eq!(
        alert_tests(&reads, vec![regex()]).await,
        30,
        "alone, the regex is tried on every incident"
    );
    let narrowed = alert_tests(
        &reads,
        vec![regex(), filter("team", LabelTest::Equal("db".into()))],
    )
    .await;
    assert_eq!(narrowed, 3, "with team=\"db\", only on its three incidents");
}
