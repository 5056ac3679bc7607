//! A year of history at full speed: `cargo bench --bench history`.
//!
//! Builds a history in a durable Postgres (in SQL, not through HTTP; prints how long it took):
//! `BENCH_INCIDENTS` incidents (default 1,000,000), 10 alerts and 20 deliveries each, 1% still
//! firing, one incident in a thousand carrying the label `needle="yes"`. Then a release-built
//! `medic serve` answers, over HTTP, `BENCH_QUERIES` (default 200) of each: the newest page,
//! a page 10,000 pages deep by cursor, one incident's detail, a `filter` on the 0.1% label,
//! and `status=firing`; it prints p50/p99 (target: p99 ≤ 50 ms each); then the console's
//! incidents page and an incident page with 200 timeline events (target: p99 ≤ 30 ms). Then it
//! times a pruning round with nothing old enough (what each replica does every `interval` once
//! caught up). Last, it prunes 10% of the history (the oldest tenth of the incidents made old)
//! while posting 1,000 notifications/s, and prints intake's p99 before and during the prune
//! (target: during ≤ 1.2 × before).

#[path = "support/common.rs"]
mod common;
#[path = "support/history.rs"]
mod history;
#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{env_or, free_port, wait_ready};
use history::{build_history, sql};
use medic::{
    config::DatabaseSettings,
    store::{retention::Retention, Store},
};
use postgres::{Durability, TempPostgres};
use secrecy::SecretString;

const TOKEN: &str = "bench-token";
const API_TOKEN: &str = "bench-api-token";
const PAGE: i64 = 50;

fn main() {
    let incidents: i64 = env_or("BENCH_INCIDENTS", 1_000_000);
    let queries: usize = env_or("BENCH_QUERIES", 200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let postgres = TempPostgres::start(Durability::Durable);
    let url = runtime.block_on(postgres.create_database("medic"));
    let port = free_port();
    let config = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(
        config.path(),
        format!("server:\n  auth:\n    users: [{{name: bench, role: viewer, token: {API_TOKEN}}}]\nretention: {{interval: 1h}}\n"),
    )
    .unwrap();
    let mut medic = start_medic(&url, port, config.path());
    let base = format!("http://127.0.0.1:{port}");
    runtime.block_on(wait_ready(&base));

    let started = Instant::now();
    runtime.block_on(build_history(&url, incidents));
    println!(
        "history: {incidents} incidents, {} alerts, {} deliveries built in {:.1} s",
        incidents * 10,
        incidents * 20,
        started.elapsed().as_secs_f64()
    );
    let newest = runtime.block_on(max_id(&url));
    let deep = newest - 10_000 * PAGE;
    let one = newest / 2;
    println!("{:<28} {:>8} {:>8} {:>8}", "query", "p50 ms", "p99 ms", "max ms");
    for (name, path) in [
        (
            "newest page".to_owned(),
            format!("/api/v1/incidents?limit={PAGE}"),
        ),
        (
            "page 10,000 deep".to_owned(),
            format!("/api/v1/incidents?limit={PAGE}&before={deep}"),
        ),
        ("one incident".to_owned(), format!("/api/v1/incidents/{one}")),
        (
            "filter on 0.1% label".to_owned(),
            format!("/api/v1/incidents?limit={PAGE}&filter=needle%3D%22yes%22"),
        ),
        (
            "status=firing".to_owned(),
            format!("/api/v1/incidents?limit={PAGE}&status=firing"),
        ),
    ] {
        let times = runtime.block_on(time_gets(&base, &path, queries));
        println!(
            "{name:<28} {:>8.2} {:>8.2} {:>8.2}",
            pct(&times, 0.5),
            pct(&times, 0.99),
            pct(&times, 1.0)
        );
    }

    // The console: the incidents page, and an incident page with 200 timeline events, as a
    // signed-in viewer sees them (server time: the response read whole).
    let cookie = runtime.block_on(sign_in(&base));
    let busy = runtime.block_on(busy_incident(&url, one));
    for (name, path) in [
        ("console: incidents".to_owned(), "/ui/".to_owned()),
        (
            "console: 200-event incident".to_owned(),
            format!("/ui/incidents/{busy}"),
        ),
    ] {
        let times = runtime.block_on(time_pages(&base, &path, &cookie, queries));
        println!(
            "{name:<28} {:>8.2} {:>8.2} {:>8.2}",
            pct(&times, 0.5),
            pct(&times, 0.99),
            pct(&times, 1.0)
        );
    }

    let store = Store::new(&DatabaseSettings {
        url: SecretString::from(url.clone()),
        ..DatabaseSettings::default()
    })
    .unwrap();
    // What every replica's pruner does each `interval` once caught up: nothing is old enough.
    let keep_all = Some(Duration::from_secs(400 * 86_400));
    let idle = Retention {
        deliveries: keep_all,
        timer_attempts: keep_all,
        resolved_incidents: keep_all,
        batch: 1000,
    };
    let metrics = medic::metrics::Metrics::new().unwrap();
    let times: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let pruned = runtime.block_on(medic::retention::round(&store, &idle, &metrics.retention));
            assert!(pruned.is_empty(), "{pruned:?}");
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    println!(
        "a pruning round with nothing old enough: p50 {:.2} ms, max {:.2} ms (5 rounds)",
        pct(&times, 0.5),
        pct(&times, 1.0)
    );

    let before = runtime.block_on(intake_at(&base, 1000, Duration::from_secs(10), "before"));
    runtime.block_on(age_tenth(&url));
    // Resolved incidents only, kept as long as above: the oldest tenth is now past it.
    let retention = Retention {
        deliveries: None,
        timer_attempts: None,
        ..idle
    };
    let pruned = metrics.retention.pruned.clone();
    let started = Instant::now();
    let prune = runtime.spawn(async move {
        // The pruner medic runs: batches with a pause between them, until caught up (at this
        // scale, long after the measurement: it is stopped then).
        medic::retention::round(&store, &retention, &metrics.retention).await;
    });
    let during = runtime.block_on(intake_at(&base, 1000, Duration::from_secs(10), "during"));
    let took = started.elapsed();
    prune.abort();
    let incidents = pruned.with_label_values(&["incidents"]).get();
    let alerts = pruned.with_label_values(&["alerts"]).get();
    let deliveries = pruned.with_label_values(&["deliveries"]).get();
    println!(
        "intake at 1000/s: p99 {:.2} ms before, {:.2} ms while pruning ({:.2}x)",
        pct(&before, 0.99),
        pct(&during, 0.99),
        pct(&during, 0.99) / pct(&before, 0.99),
    );
    println!(
        "pruned meanwhile: {incidents} incidents, {alerts} alerts, {deliveries} deliveries in {:.1} s ({:.0} incidents/s)",
        took.as_secs_f64(),
        incidents as f64 / took.as_secs_f64()
    );
    let _ = medic.kill();
    let _ = medic.wait();
}

fn start_medic(database_url: &str, port: u16, config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["serve", "--config"])
        .arg(config)
        .env_clear()
        .env("MEDIC_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("MEDIC_SERVER__AUTH__BEARER_TOKEN", TOKEN)
        .env("MEDIC_DATABASE__URL", database_url)
        .env("MEDIC_ENGINE__ENABLED", "false")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start medic")
}

async fn max_id(url: &str) -> i64 {
    sql(url)
        .await
        .query_one("SELECT max(id) FROM incidents", &[])
        .await
        .unwrap()
        .get(0)
}

/// Milliseconds each of `n` sequential GETs took.
async fn time_gets(base: &str, path: &str, n: usize) -> Vec<f64> {
    time_requests(base, path, ("authorization", format!("Bearer {API_TOKEN}")), n).await
}

/// Milliseconds each of `n` sequential GETs of `path` with this credential header took.
async fn time_requests(base: &str, path: &str, credential: (&str, String), n: usize) -> Vec<f64> {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client
            .get(format!("{base}{path}"))
            .header(credential.0, &credential.1)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.bytes().await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times
}

/// A session cookie for the bench's viewer.
async fn sign_in(base: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(format!("{base}/ui/login"))
        .form(&[("token", API_TOKEN)])
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("medic_session="))
        .expect("a session cookie");
    cookie.split(';').next().unwrap().to_owned()
}

/// Gives incident `id` a timeline of about 200 events (a message sent 199 times, as a
/// reminder repeated for days would), and returns it.
async fn busy_incident(url: &str, id: i64) -> i64 {
    sql(url)
        .await
        .batch_execute(&format!(
            "WITH t AS (
                 INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at, state)
                 VALUES ({id}, 'escalation', 'bench', 1, 'oncall', 'slack', now(), now(), 'done') RETURNING id)
             INSERT INTO timer_attempts (timer_id, occurrence, attempt, started_at, finished_at, result, status_code)
             SELECT t.id, k, 1, now() - k * interval '1 minute', now() - k * interval '1 minute', 'sent', 200
               FROM t, generate_series(1, 199) k"
        ))
        .await
        .unwrap();
    id
}

/// Milliseconds each of `n` sequential console page loads took, as the signed-in viewer.
async fn time_pages(base: &str, path: &str, cookie: &str, n: usize) -> Vec<f64> {
    time_requests(base, path, ("cookie", cookie.to_owned()), n).await
}

/// The oldest tenth of the incidents: opened 501 days ago, the resolved ones resolved 500
/// days ago (ids still growing with the time incidents open).
async fn age_tenth(url: &str) {
    sql(url)
        .await
        .batch_execute(
            "UPDATE incidents SET created_at = now() - interval '501 days' + id * interval '1 millisecond',
                                  resolved_at = CASE WHEN status = 'resolved' THEN now() - interval '500 days' END
              WHERE id <= (SELECT max(id) / 10 FROM incidents)",
        )
        .await
        .unwrap();
}

/// Posts one-alert notifications of new groups at `rate` per second for `duration`; the
/// latency of each, in milliseconds.
async fn intake_at(base: &str, rate: u64, duration: Duration, run: &str) -> Vec<f64> {
    let client = reqwest::Client::new();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut i = 0u64;
    while started.elapsed() < duration {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, url) = (client.clone(), format!("{base}/webhook"));
        let body = format!(
            r#"{{"receiver":"bench","status":"firing","alerts":[{{"status":"firing","labels":{{"alertname":"Load","run":"{run}"}},"annotations":{{}},"startsAt":"2026-11-30T08:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"{i:016x}"}}],"groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"","version":"4","groupKey":"load-{run}-{i}","truncatedAlerts":0}}"#
        );
        tasks.spawn(async move {
            let sent = Instant::now();
            let response = client
                .post(url)
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let ok = response.is_ok_and(|r| r.status() == 200);
            (ok, sent.elapsed().as_secs_f64() * 1000.0)
        });
        i += 1;
    }
    let mut times = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (ok, ms) = result.unwrap();
        assert!(ok, "a notification was not recorded");
        times.push(ms);
    }
    times
}

fn pct(times: &[f64], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(0.0)
}
