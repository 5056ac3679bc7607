//! Readers never slow intake: `cargo bench --bench bulkheads`.
//!
//! Builds a history in a durable Postgres (`BENCH_INCIDENTS`, default 30,000 incidents of 10
//! alerts and 20 deliveries each, in SQL), starts a release-built `medic serve` with default
//! settings and 32 viewers, then posts new ten-alert groups at `BENCH_RATE` (50/s) for
//! `BENCH_SECONDS` (15 s) twice: quiet, and while `BENCH_SEARCHERS` (32) viewers each run a
//! regex label search that matches nothing (`pod=~".*zz[0-9]+q.*"`: every alert is tested) in a
//! loop, as fast as answers come. It prints the webhook's latency in both runs and the
//! non-2xx count (target: none, and p99 under load at most 3× the quiet p99 or ≤ 100 ms), and
//! what the searchers got (200, 429, 503) with their latency. With `BENCH_ONE_USER=1` the
//! searchers share one user, and wait out each `Retry-After`.

#[path = "support/common.rs"]
mod common;
#[path = "support/history.rs"]
mod history;
#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{env_or, free_port, wait_ready};
use history::build_history;
use postgres::{Durability, TempPostgres};

const TOKEN: &str = "bench-token";
const SEARCH: &str = "/api/v1/incidents?filter=pod%3D~%22.%2Azz%5B0-9%5D%2Bq.%2A%22";

fn main() {
    let incidents: i64 = env_or("BENCH_INCIDENTS", 30_000);
    let rate: u64 = env_or("BENCH_RATE", 50);
    let seconds: u64 = env_or("BENCH_SECONDS", 15);
    let searchers: usize = env_or("BENCH_SEARCHERS", 32);
    let one_user = std::env::var_os("BENCH_ONE_USER").is_some();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let postgres = TempPostgres::start(Durability::Durable);
    let url = runtime.block_on(postgres.create_database("medic"));
    let port = free_port();
    let config = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(config.path(), settings(searchers)).unwrap();
    let mut medic = start_medic(&url, port, config.path());
    let base = format!("http://127.0.0.1:{port}");
    runtime.block_on(wait_ready(&base));
    let started = Instant::now();
    runtime.block_on(build_history(&url, incidents));
    println!(
        "history: {incidents} incidents, {} alerts built in {:.1} s",
        incidents * 10,
        started.elapsed().as_secs_f64()
    );
    let duration = Duration::from_secs(seconds);
    runtime.block_on(intake(&base, rate, Duration::from_secs(2), "warm-up"));
    let quiet = runtime.block_on(intake(&base, rate, duration, "quiet"));
    report("quiet", &quiet);
    let stop = Arc::new(AtomicBool::new(false));
    let tokens: Vec<String> = (0..searchers)
        .map(|k| viewer_token(if one_user { 0 } else { k }))
        .collect();
    let searches: Vec<_> = tokens
        .into_iter()
        .map(|token| runtime.spawn(search_loop(base.clone(), token, stop.clone())))
        .collect();
    // The searches fill the read pool before intake is measured.
    std::thread::sleep(Duration::from_secs(1));
    let loaded = runtime.block_on(intake(&base, rate, duration, "searched"));
    stop.store(true, Ordering::Release);
    let mut answers: BTreeMap<u16, Vec<f64>> = BTreeMap::new();
    for handle in searches {
        for (status, ms) in runtime.block_on(handle).unwrap() {
            answers.entry(status).or_default().push(ms);
        }
    }
    report(&format!("{searchers} searching"), &loaded);
    for (status, times) in &answers {
        println!(
            "searches {status}: {} ({:.1}/s), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            times.len(),
            times.len() as f64 / (seconds + 1) as f64,
            pct(times, 0.5),
            pct(times, 0.99),
            pct(times, 1.0)
        );
    }
    let (quiet_p99, loaded_p99) = (pct(&latencies(&quiet), 0.99), pct(&latencies(&loaded), 0.99));
    let failures = loaded.iter().chain(&quiet).filter(|(ok, _)| !ok).count();
    println!(
        "webhook p99 {quiet_p99:.2} ms quiet, {loaded_p99:.2} ms searched ({:.2}x); non-2xx: {failures}; target {}",
        loaded_p99 / quiet_p99,
        if failures == 0 && (loaded_p99 <= 3.0 * quiet_p99 || loaded_p99 <= 100.0) {
            "met"
        } else {
            "missed"
        }
    );
    println!(
        "medic's peak RSS: {:.1} MiB",
        peak_rss_kib(medic.id()) as f64 / 1024.0
    );
    let _ = medic.kill();
    let _ = medic.wait();
}

/// medic's settings file: the viewers, and no pruning during the run.
fn settings(viewers: usize) -> String {
    let users: Vec<String> = (0..viewers)
        .map(|k| {
            format!(
                "      - {{name: viewer-{k}, role: viewer, token: {}}}",
                viewer_token(k)
            )
        })
        .collect();
    format!(
        "server:\n  auth:\n    users:\n{}\nretention: {{interval: 1h}}\n",
        users.join("\n")
    )
}

fn viewer_token(k: usize) -> String {
    format!("bench-viewer-token-{k:04}")
}

fn start_medic(database_url: &str, port: u16, config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["serve", "--config"])
        .arg(config)
        .env_clear()
        .env("MEDIC_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("MEDIC_SERVER__AUTH__BEARER_TOKEN", TOKEN)
        .env("MEDIC_DATABASE__URL", database_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start medic")
}

/// Searches until told to stop; each answer's status and milliseconds.
async fn search_loop(base: String, token: String, stop: Arc<AtomicBool>) -> Vec<(u16, f64)> {
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    while !stop.load(Ordering::Acquire) {
        let sent = Instant::now();
        let response = client
            .get(format!("{base}{SEARCH}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        response.bytes().await.unwrap();
        answers.push((status, sent.elapsed().as_secs_f64() * 1000.0));
        if let (Some(seconds), 429) = (retry_after, status) {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
        }
    }
    answers
}

/// Posts a new ten-alert group every `1/rate` s for `duration` (open loop: latency counts from
/// when each was due); whether each got a 2xx, and its milliseconds.
async fn intake(base: &str, rate: u64, duration: Duration, run: &str) -> Vec<(bool, f64)> {
    let client = reqwest::Client::new();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut i = 0u32;
    while started.elapsed() < duration {
        let due = started + interval * i;
        tokio::time::sleep_until(due.into()).await;
        let request = client
            .post(format!("{base}/webhook"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(payload(run, i));
        tasks.spawn(async move {
            let ok = request.send().await.is_ok_and(|r| r.status().is_success());
            (ok, due.elapsed().as_secs_f64() * 1000.0)
        });
        i += 1;
    }
    let mut results = Vec::new();
    while let Some(result) = tasks.join_next().await {
        results.push(result.unwrap());
    }
    results
}

/// A new group of ten firing alerts, as Alertmanager sends it.
fn payload(run: &str, group: u32) -> String {
    let alerts: Vec<String> = (0..10)
        .map(|k| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"Load","run":"{run}","pod":"load-{group}-{k}","namespace":"bench"}},"annotations":{{"summary":"load"}},"startsAt":"2026-12-07T08:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"{:016x}"}}"#,
                u64::from(group) * 16 + k
            )
        })
        .collect();
    format!(
        r#"{{"receiver":"bench","status":"firing","alerts":[{}],"groupLabels":{{"alertname":"Load"}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"","version":"4","groupKey":"load-{run}-{group}","truncatedAlerts":0}}"#,
        alerts.join(",")
    )
}

fn report(run: &str, results: &[(bool, f64)]) {
    let times = latencies(results);
    println!(
        "webhook, {run}: {} posted, {} non-2xx, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        results.len(),
        results.iter().filter(|(ok, _)| !ok).count(),
        pct(&times, 0.5),
        pct(&times, 0.99),
        pct(&times, 1.0)
    );
}

fn latencies(results: &[(bool, f64)]) -> Vec<f64> {
    results.iter().map(|(_, ms)| *ms).collect()
}

fn pct(times: &[f64], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(0.0)
}

/// The most memory process `pid` has held (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
