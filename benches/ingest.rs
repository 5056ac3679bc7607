//! Intake throughput and latency: `cargo bench --bench ingest`.
//!
//! Starts a private Postgres with durable settings (fsync and synchronous_commit on) and the
//! release-built medic binary, then drives `POST /webhook` from 64 concurrent connections with
//! real-format Alertmanager payloads. Every notification is a new group (a new incident and
//! new alerts: the most work a notification can cause), except in the `repeat` scenario, which
//! re-sends known firing groups as Alertmanager does on `repeat_interval` and from HA pairs.
//! Prints notifications/s, alerts/s, p50/p99/max latency and medic's peak RSS.
//!
//! Environment: `BENCH_SECONDS` (default 10) per scenario, `BENCH_CONNECTIONS` (default 64),
//! `BENCH_POOL` (medic's database pool, default 16), `BENCH_SCENARIOS` (comma-separated names).

#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::{
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use postgres::{Durability, TempPostgres};

const TOKEN: &str = "bench-token";

struct Scenario {
    name: &'static str,
    alerts: usize,
    /// Re-send a fixed set of groups instead of new ones.
    repeat: bool,
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let connections: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let postgres = TempPostgres::start(Durability::Durable);
    let url = runtime.block_on(postgres.create_database("medic"));
    let port = free_port();
    let mut medic = start_medic(&url, port);
    let base = format!("http://127.0.0.1:{port}");
    runtime.block_on(wait_ready(&base));

    println!(
        "ingest: {connections} connections, {seconds} s per scenario, durable Postgres (fsync, synchronous_commit on)"
    );
    println!(
        "{:<12} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "scenario", "notif/s", "alerts/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    let scenarios = [
        Scenario {
            name: "new-1",
            alerts: 1,
            repeat: false,
        },
        Scenario {
            name: "new-10",
            alerts: 10,
            repeat: false,
        },
        Scenario {
            name: "repeat-10",
            alerts: 10,
            repeat: true,
        },
    ];
    let only = std::env::var("BENCH_SCENARIOS").unwrap_or_default();
    for scenario in scenarios
        .iter()
        .filter(|s| only.is_empty() || only.split(',').any(|o| o == s.name))
    {
        let result = runtime.block_on(drive(&base, scenario, connections, Duration::from_secs(seconds)));
        println!(
            "{:<12} {:>10.0} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            scenario.name,
            result.per_second,
            result.per_second * scenario.alerts as f64,
            result.percentile(0.50),
            result.percentile(0.99),
            result.percentile(1.0),
            result.errors
        );
    }
    println!(
        "medic peak RSS: {:.1} MiB",
        peak_rss_kib(medic.id()) as f64 / 1024.0
    );
    let _ = medic.kill();
    let _ = medic.wait();
}

fn start_medic(database_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_medic"))
        .arg("serve")
        .env_clear()
        .env("MEDIC_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("MEDIC_SERVER__AUTH__BEARER_TOKEN", TOKEN)
        .env("MEDIC_DATABASE__URL", database_url)
        .env(
            "MEDIC_DATABASE__MAX_CONNECTIONS",
            std::env::var("BENCH_POOL").unwrap_or_else(|_| "16".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start medic")
}

async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("medic did not become ready");
}

struct Outcome {
    per_second: f64,
    latencies_us: Vec<u64>,
    errors: u64,
}

impl Outcome {
    fn percentile(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        self.latencies_us[index] as f64 / 1000.0
    }
}

/// 64 connections, each sending one notification after another for `duration`.
async fn drive(base: &str, scenario: &Scenario, connections: usize, duration: Duration) -> Outcome {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/alertmanager/firing.json"
    ))
    .expect("fixture");
    let sequence = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let run = format!(
        "{:x}",
        std::process::id() as u64 * 1_000 + scenario.alerts as u64 + scenario.repeat as u64
    );
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let (url, template, sequence, errors, run) = (
            format!("{base}/webhook"),
            template.clone(),
            sequence.clone(),
            errors.clone(),
            run.clone(),
        );
        let (alerts, repeat) = (scenario.alerts, scenario.repeat);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let n = sequence.fetch_add(1, Ordering::Relaxed);
                let group = if repeat { n % 256 } else { n };
                let body = payload(&template, &run, group, alerts);
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 200 => latencies.push(sent.elapsed().as_micros() as u64),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Outcome {
        per_second: latencies_us.len() as f64 / elapsed,
        latencies_us,
        errors: errors.load(Ordering::Relaxed),
    }
}

/// The captured Alertmanager payload, as one group of `alerts` alerts with its own key.
fn payload(template: &str, run: &str, group: u64, alerts: usize) -> String {
    let mut data: serde_json::Value = serde_json::from_str(template).unwrap();
    let alert = data["alerts"][0].clone();
    let items: Vec<serde_json::Value> = (0..alerts)
        .map(|i| {
            let mut alert = alert.clone();
            alert["labels"]["pod"] = format!("api-{group}-{i}").into();
            alert["fingerprint"] = format!("{:016x}", (group << 8) | i as u64).into();
            alert
        })
        .collect();
    data["alerts"] = items.into();
    data["groupKey"] =
        format!("{{}}:{{alertname=\"PodCrashLooping\", run=\"{run}\", group=\"{group}\"}}").into();
    data.to_string()
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
