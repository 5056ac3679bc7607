//! Timer engine precision and throughput: `cargo bench --bench timers`.
//!
//! Starts a private Postgres with durable settings (fsync and synchronous_commit on), a local
//! HTTP sink, and 1 or 3 release-built `medic serve` processes (replicas with their own pools),
//! each running the timer engine with one webhook notifier pointed at the sink. Timers are
//! written straight into the `timers` table of a fresh database, then the engines fire them.
//!
//! Scenarios, each with 1 and with 3 replicas:
//! - `rate`: `BENCH_TIMERS` timers (default 100,000) due evenly at `BENCH_RATE` per second
//!   (default 1,000).
//! - `burst`: `BENCH_BURST` timers (default 10,000) all due at the same instant.
//!
//! Lateness is the sink's arrival time minus the timer's due time (same machine clock), so it
//! includes the claim, the HTTP request and everything in between. Prints firings/s, lateness
//! p50/p99/max, drain time, duplicates (deliveries of one timer beyond the first) and losses
//! (timers never delivered). `BENCH_SCENARIOS` picks scenarios by name prefix (`rate-1`,
//! `burst-3`, ...); `BENCH_WORST=1` also prints the worst lateness per 5 s of due times.

#[path = "support/common.rs"]
mod common;
#[path = "../tests/support/postgres.rs"]
mod postgres;
#[path = "../tests/support/sink.rs"]
#[allow(dead_code)]
mod sink;

use std::{
    collections::HashMap,
    io::Write,
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use common::env_or;
use postgres::{Durability, TempPostgres};
use sink::Sink;

/// Time between writing the timers and the first one being due, so that writing 100,000 rows
/// does not count as lateness.
const LEAD: Duration = Duration::from_secs(3);
/// How long to wait for stragglers after the last timer was due.
const GRACE: Duration = Duration::from_secs(20);

struct Scenario {
    name: String,
    timers: i64,
    /// Timers due per second; 0 means all at once.
    rate: i64,
    replicas: usize,
}

fn main() {
    let timers: i64 = env_or("BENCH_TIMERS", 100_000);
    let rate: i64 = env_or("BENCH_RATE", 1_000);
    let burst: i64 = env_or("BENCH_BURST", 10_000);
    let only: String = env_or("BENCH_SCENARIOS", String::new());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let postgres = TempPostgres::start(Durability::Durable);
    let mut scenarios = Vec::new();
    for replicas in [1, 3] {
        scenarios.push(Scenario {
            name: format!("burst-{replicas}"),
            timers: burst,
            rate: 0,
            replicas,
        });
        scenarios.push(Scenario {
            name: format!("rate-{replicas}"),
            timers,
            rate,
            replicas,
        });
    }
    println!("timers: Postgres with fsync and synchronous_commit on; lateness = sink arrival - due");
    println!(
        "{:<10} {:>8} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9} {:>6} {:>6}",
        "scenario",
        "replicas",
        "timers",
        "firings/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "drain ms",
        "dups",
        "lost"
    );
    for scenario in scenarios
        .iter()
        .filter(|s| only.is_empty() || only.split(',').any(|p| s.name.starts_with(p)))
    {
        let result = runtime.block_on(run(&postgres, scenario));
        println!(
            "{:<10} {:>8} {:>9} {:>11.0} {:>9.1} {:>9.1} {:>9.1} {:>9.0} {:>6} {:>6}",
            scenario.name,
            scenario.replicas,
            scenario.timers,
            result.firings_per_second,
            result.p50_ms,
            result.p99_ms,
            result.max_ms,
            result.drain_ms,
            result.duplicates,
            result.lost
        );
    }
}

struct Outcome {
    firings_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// From the first due time to the last arrival.
    drain_ms: f64,
    duplicates: usize,
    lost: i64,
}

async fn run(postgres: &TempPostgres, scenario: &Scenario) -> Outcome {
    let url = postgres
        .create_database(&format!("bench_{}", scenario.name.replace('-', "_")))
        .await;
    let sink = Sink::start(2).await;
    let config = config_file(&sink.url("/hook"));
    // The first replica applies the migrations; the others wait for them.
    let mut replicas = vec![start_medic(&url, config.path())];
    wait_schema(&url).await;
    for _ in 1..scenario.replicas {
        replicas.push(start_medic(&url, config.path()));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let due = schedule(&url, scenario).await;
    let last_due = due.values().copied().fold(0.0, f64::max);
    let deadline = last_due + GRACE.as_secs_f64();
    while (sink.count() as i64) < scenario.timers && now_seconds() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for replica in &mut replicas {
        let _ = replica.kill();
        let _ = replica.wait();
    }
    measure(&sink, &due)
}

/// Writes the timers for one incident, due from `LEAD` from now; returns each id's due time
/// (seconds since the epoch).
async fn schedule(url: &str, scenario: &Scenario) -> HashMap<i64, f64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "INSERT INTO alert_groups (receiver, group_key, group_labels) VALUES ('bench', 'bench', '{}');
             INSERT INTO incidents (group_id, status, common_labels, common_annotations, external_url)
                  SELECT id, 'firing', '{\"alertname\": \"Bench\"}', '{}', '' FROM alert_groups;",
        )
        .await
        .unwrap();
    let spacing_us = if scenario.rate > 0 {
        1_000_000 / scenario.rate
    } else {
        0
    };
    let rows = client
        .query(
            "INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at)
             SELECT i.id, 'escalation', 'bench', g, 'sink', 'webhook', d.at, d.at
               FROM incidents i, generate_series(1, $1::bigint) g,
                    LATERAL (SELECT now() + $2::bigint * interval '1 millisecond'
                                    + (g - 1) * $3::bigint * interval '1 microsecond' AS at) d
             RETURNING id, extract(epoch FROM scheduled_at)::float8",
            &[&scenario.timers, &(LEAD.as_millis() as i64), &spacing_us],
        )
        .await
        .unwrap();
    client.batch_execute("NOTIFY medic_timers").await.unwrap();
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

fn measure(sink: &Sink, due: &HashMap<i64, f64>) -> Outcome {
    let mut deliveries: HashMap<i64, f64> = HashMap::new();
    let mut duplicates = 0;
    for request in sink.received_at("/hook") {
        let id = request.headers["idempotency-key"]
            .split('-')
            .nth(1)
            .and_then(|id| id.parse::<i64>().ok())
            .expect("delivery id medic-<timer>-<occurrence>");
        let at = request.at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        if deliveries.insert(id, at).is_some() {
            duplicates += 1;
        }
    }
    let mut lateness: Vec<f64> = deliveries
        .iter()
        .filter_map(|(id, at)| due.get(id).map(|due| (at - due) * 1000.0))
        .collect();
    lateness.sort_by(f64::total_cmp);
    if std::env::var_os("BENCH_WORST").is_some() {
        print_worst(&deliveries, due);
    }
    let percentile = |q: f64| {
        if lateness.is_empty() {
            return f64::NAN;
        }
        lateness[((lateness.len() - 1) as f64 * q).round() as usize]
    };
    let first_due = due.values().copied().fold(f64::INFINITY, f64::min);
    let last_arrival = deliveries.values().copied().fold(0.0, f64::max);
    let drain = last_arrival - first_due;
    Outcome {
        firings_per_second: deliveries.len() as f64 / drain.max(0.001),
        p50_ms: percentile(0.5),
        p99_ms: percentile(0.99),
        max_ms: lateness.last().copied().unwrap_or(f64::NAN),
        drain_ms: drain * 1000.0,
        duplicates,
        lost: due.len() as i64 - due.keys().filter(|id| deliveries.contains_key(id)).count() as i64,
    }
}

/// The worst lateness in each 5-second slice of due times, to see whether lateness comes in
/// stalls and when (`BENCH_WORST=1`).
fn print_worst(deliveries: &HashMap<i64, f64>, due: &HashMap<i64, f64>) {
    let first = due.values().copied().fold(f64::INFINITY, f64::min);
    let mut worst: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    for (id, at) in deliveries {
        if let Some(d) = due.get(id) {
            let slice = ((d - first) / 5.0) as u64 * 5;
            let entry = worst.entry(slice).or_default();
            *entry = entry.max((at - d) * 1000.0);
        }
    }
    let line: Vec<String> = worst.iter().map(|(s, ms)| format!("+{s}s:{ms:.0}")).collect();
    println!("    worst ms per 5 s of due times: {}", line.join(" "));
}

fn config_file(hook: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    writeln!(file, "notifiers:\n  sink: {{type: webhook, url: \"{hook}\"}}").unwrap();
    file
}

fn start_medic(database_url: &str, config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_medic"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env_clear()
        .env("MEDIC_SERVER__LISTEN", "127.0.0.1:0")
        .env("MEDIC_SERVER__WORKERS", "1")
        .env("MEDIC_SERVER__AUTH__BEARER_TOKEN", "bench-token")
        .env("MEDIC_DATABASE__URL", database_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start medic")
}

async fn wait_schema(url: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    for _ in 0..200 {
        let ready = client
            .query_one("SELECT to_regclass('timers') IS NOT NULL", &[])
            .await
            .map(|row| row.get::<_, bool>(0))
            .unwrap_or(false);
        if ready {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("medic never migrated the database");
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
