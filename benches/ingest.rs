//! Intake throughput and latency: `cargo bench --bench ingest`.
//!
//! Starts a private Postgres with durable settings (fsync and synchronous_commit on) and the
//! release-built medic binary, then drives `POST /webhook` over 64 connections with payloads
//! in the format a real Alertmanager sends (built from `tests/fixtures/alertmanager/`).
//!
//! Scenarios, each after a warm-up that is not counted:
//! - `new-N`: every notification is a new group of N alerts (a new incident and N new alerts,
//!   the most work a notification can cause), sent as fast as the connections allow: the
//!   throughput ceiling.
//! - `repeat-10`: known firing groups sent again, as Alertmanager does on `repeat_interval`,
//!   on retries and from HA pairs: the steady state of a real deployment.
//! - `repeat-1` and `watchdog-1`: known one-alert groups sent again; in `watchdog-1` the alert is
//!   a heartbeat's (`alertname="Watchdog"`, one heartbeat per `pod`, 256 of them): each
//!   notification renews its heartbeat instead of being recorded.
//! - `rate-10@R`: new 10-alert groups at a fixed R notifications/s spread over the
//!   connections (open loop). Latency is measured from when each request was due, not when it
//!   went out, so a stalled server cannot hide its queue (no coordinated omission).
//! - `sustained-10@R`: the same for `BENCH_SUSTAINED_SECONDS` (default 60), long enough for
//!   WAL, writeback and autovacuum to show in the tail.
//!
//! Prints notifications/s, alerts/s, p50/p99/max latency, errors, the WAL written per
//! notification (and how many full-page images), the CPU time per notification of medic,
//! Postgres and the load generator, and medic's peak RSS.
//! Environment: `BENCH_SECONDS` (default 10) per scenario, `BENCH_CONNECTIONS` (default 64),
//! `BENCH_RATE` (default 2000), `BENCH_POOL` (medic's pool, default 16), `BENCH_WRITERS`
//! (`database.writers`, default 4), `BENCH_SCENARIOS` (comma-separated name prefixes to run),
//! `BENCH_POSTGRES_CONF` (postgresql.conf lines to add, separated by `;`).

#[path = "support/common.rs"]
mod common;
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

use common::{cpu_seconds, env_or, free_port, wait_ready};
use postgres::{Durability, TempPostgres};

const TOKEN: &str = "bench-token";
const WARM_UP: Duration = Duration::from_secs(2);

#[derive(Clone, Copy)]
enum Load {
    /// Each connection sends again as soon as it has an answer.
    Closed,
    /// This many notifications per second in all, whatever the answers.
    Rate(u64),
}

struct Scenario {
    name: String,
    alerts: usize,
    /// Re-send a fixed set of groups instead of new ones.
    repeat: bool,
    /// The alerts are Watchdogs, which renew heartbeats.
    watchdog: bool,
    load: Load,
    /// How long to measure, if not `BENCH_SECONDS`.
    seconds: Option<u64>,
}

fn main() {
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let connections: usize = env_or("BENCH_CONNECTIONS", 64);
    let rate: u64 = env_or("BENCH_RATE", 2000);
    let sustained: u64 = env_or("BENCH_SUSTAINED_SECONDS", 60);
    let only: String = env_or("BENCH_SCENARIOS", String::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Extra postgresql.conf lines, e.g. BENCH_POSTGRES_CONF="wal_compression = lz4".
    let conf: String = env_or("BENCH_POSTGRES_CONF", String::new());
    let postgres = TempPostgres::start_with(Durability::Durable, &conf.replace(';', "\n"), &[]);
    let url = runtime.block_on(postgres.create_database("medic"));
    let port = free_port();
    let mut medic = start_medic(&url, port);
    let base = format!("http://127.0.0.1:{port}");
    runtime.block_on(wait_ready(&base));
    let template = Template::load();

    println!("ingest: {connections} connections, {seconds} s per scenario, Postgres with fsync and synchronous_commit on");
    println!(
        "{:<18} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7} {:>11} {:>9}",
        "scenario", "notif/s", "alerts/s", "p50 ms", "p99 ms", "max ms", "errors", "WAL KB/not", "FPI/not"
    );
    let scenarios = [
        Scenario {
            name: "new-1".into(),
            alerts: 1,
            repeat: false,
            watchdog: false,
            load: Load::Closed,
            seconds: None,
        },
        Scenario {
            name: "new-10".into(),
            alerts: 10,
            repeat: false,
            watchdog: false,
            load: Load::Closed,
            seconds: None,
        },
        Scenario {
            name: "repeat-10".into(),
            alerts: 10,
            repeat: true,
            watchdog: false,
            load: Load::Closed,
            seconds: None,
        },
        Scenario {
            name: "repeat-1".into(),
            alerts: 1,
            repeat: true,
            watchdog: false,
            load: Load::Closed,
            seconds: None,
        },
        Scenario {
            name: "watchdog-1".into(),
            alerts: 1,
            repeat: true,
            watchdog: true,
            load: Load::Closed,
            seconds: None,
        },
        Scenario {
            name: format!("rate-10@{rate}"),
            alerts: 10,
            repeat: false,
            watchdog: false,
            load: Load::Rate(rate),
            seconds: None,
        },
        Scenario {
            name: format!("sustained-10@{rate}"),
            alerts: 10,
            repeat: false,
            watchdog: false,
            load: Load::Rate(rate),
            seconds: Some(sustained),
        },
    ];
    let chosen = scenarios
        .iter()
        .filter(|s| only.is_empty() || only.split(',').any(|o| s.name.starts_with(o)));
    for (index, scenario) in chosen.enumerate() {
        let drive = |duration, round| Driver {
            url: format!("{base}/webhook"),
            template: template.clone(),
            run: format!("{}-{index}-{round}", std::process::id()),
            connections,
            duration,
        };
        runtime.block_on(drive(WARM_UP, "warm").run(scenario));
        let wal_before = runtime.block_on(wal(&url));
        let cpu_before = cpu(&postgres, &medic);
        let measure = Duration::from_secs(scenario.seconds.unwrap_or(seconds));
        let result = runtime.block_on(drive(measure, "measure").run(scenario));
        let wal_after = runtime.block_on(wal(&url));
        let cpu_after = cpu(&postgres, &medic);
        let sent = result.latencies_us.len().max(1) as f64;
        println!(
            "{:<18} {:>9.0} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>11.1} {:>9.2}",
            scenario.name,
            result.per_second,
            result.per_second * scenario.alerts as f64,
            result.percentile(0.50),
            result.percentile(0.99),
            result.percentile(1.0),
            result.errors,
            (wal_after.0 - wal_before.0) as f64 / 1024.0 / sent,
            (wal_after.1 - wal_before.1) as f64 / sent,
        );
        let per = |i: usize| (cpu_after[i] - cpu_before[i]) * 1e6 / sent;
        println!(
            "{:<18} CPU per notification: medic {:.0} µs, Postgres {:.0} µs, load generator {:.0} µs",
            "",
            per(0),
            per(1),
            per(2)
        );
    }
    println!(
        "medic peak RSS: {:.1} MiB",
        peak_rss_kib(medic.id()) as f64 / 1024.0
    );
    let _ = medic.kill();
    let _ = medic.wait();
}

/// One heartbeat per pod for the `watchdog` scenario; the window outlasts any run.
const SETTINGS: &str = "heartbeats:\n  - name: watchdog\n    matchers: ['alertname=\"Watchdog\"']\n    per: pod\n    expect_every: 1h\n";

fn start_medic(database_url: &str, port: u16) -> Child {
    let settings = std::env::temp_dir().join(format!("medic-bench-{}.yaml", std::process::id()));
    std::fs::write(&settings, SETTINGS).unwrap();
    Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["serve", "--config"])
        .arg(&settings)
        .env_clear()
        .env("MEDIC_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("MEDIC_SERVER__AUTH__BEARER_TOKEN", TOKEN)
        .env("MEDIC_DATABASE__URL", database_url)
        .env(
            "MEDIC_DATABASE__MAX_CONNECTIONS",
            env_or("BENCH_POOL", 16u32).to_string(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start medic")
}

/// The captured Alertmanager payload, cut into text pieces so that building one costs little.
#[derive(Clone)]
struct Template {
    head: Arc<str>,
    alert: Arc<str>,
}

impl Template {
    fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/alertmanager/firing.json"
        );
        let mut data: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut alert = data["alerts"][0].take();
        alert["labels"]["pod"] = "@POD@".into();
        alert["fingerprint"] = "@FP@".into();
        data["alerts"] = serde_json::json!(["@ALERTS@"]);
        data["groupKey"] = "@GROUP@".into();
        Self {
            head: data.to_string().into(),
            alert: alert.to_string().into(),
        }
    }

    /// One group of `alerts` alerts, keyed by `run` and `group`.
    fn payload(&self, run: &str, group: u64, alerts: usize) -> String {
        let items: Vec<String> = (0..alerts)
            .map(|i| {
                self.alert
                    .replace("@POD@", &format!("api-{group}-{i}"))
                    .replace("@FP@", &format!("{:016x}", (group << 8) | i as u64))
            })
            .collect();
        let key = format!(r#"{{}}:{{alertname=\"PodCrashLooping\", run=\"{run}\", group=\"{group}\"}}"#);
        self.head
            .replace(r#"["@ALERTS@"]"#, &format!("[{}]", items.join(",")))
            .replace("@GROUP@", &key)
    }
}

struct Driver {
    url: String,
    template: Template,
    /// Makes group keys unique per scenario and round.
    run: String,
    connections: usize,
    duration: Duration,
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

impl Driver {
    async fn run(self, scenario: &Scenario) -> Outcome {
        let sequence = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + self.duration;
        let mut tasks = Vec::new();
        for connection in 0..self.connections {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let (url, template, run) = (self.url.clone(), self.template.clone(), self.run.clone());
            let (sequence, errors) = (sequence.clone(), errors.clone());
            let (alerts, repeat, load, connections) =
                (scenario.alerts, scenario.repeat, scenario.load, self.connections);
            let watchdog = scenario.watchdog;
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                // Under a fixed rate each connection owns every `connections`-th slot.
                let interval = match load {
                    Load::Rate(rate) => Some(Duration::from_secs_f64(connections as f64 / rate as f64)),
                    Load::Closed => None,
                };
                let mut due = started
                    + interval.map_or(Duration::ZERO, |i| {
                        i.mul_f64(connection as f64 / connections as f64)
                    });
                loop {
                    // Open loop: latency counts from the slot's due time, however late it went out.
                    let sent = match interval {
                        Some(interval) => {
                            tokio::time::sleep_until(due.into()).await;
                            due += interval;
                            due - interval
                        }
                        None => Instant::now(),
                    };
                    if Instant::now() >= deadline {
                        break;
                    }
                    let n = sequence.fetch_add(1, Ordering::Relaxed);
                    let group = if repeat { n % 256 } else { n };
                    let mut body = template.payload(&run, group, alerts);
                    if watchdog {
                        body = body.replace(r#""alertname":"PodCrashLooping""#, r#""alertname":"Watchdog""#);
                    }
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
}

/// CPU seconds so far of medic, Postgres (all its processes) and this load generator: on two
/// shared cores they compete, so per-notification figures show where the time goes.
fn cpu(postgres: &TempPostgres, medic: &Child) -> [f64; 3] {
    [
        cpu_seconds(medic.id(), false),
        cpu_seconds(postgres.postmaster_pid(), true),
        cpu_seconds(std::process::id(), false),
    ]
}

/// WAL written so far: bytes and full-page images (`pg_stat_wal`).
async fn wal(url: &str) -> (i64, i64) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT wal_bytes::bigint, wal_fpi FROM pg_stat_wal", &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
