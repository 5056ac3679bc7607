//! End to end with real peers: `cargo test --test e2e` (part of `scripts/test`).
//!
//! Starts Postgres, the fake Kubernetes API, a Slack and PagerDuty sink, a tiny target whose
//! metric flips, the medic binary, and Debian's real `prometheus` and `prometheus-alertmanager`
//! (Alertmanager configured with a bearer token, as docs/alertmanager-receiver.yml shows; its
//! config checked by `amtool check-config`). Then: the target's memory goes up, Prometheus'
//! rule fires, Alertmanager posts to medic, medic scales the Deployment up, posts to Slack,
//! escalates to PagerDuty after a short delay; the target recovers, the alert resolves and
//! PagerDuty gets the resolve. `promtool check metrics` reads medic's live `/metrics`.
//! Heartbeats: Prometheus' always-firing Watchdog, repeated by Alertmanager every 3s, keeps
//! medic quiet; Prometheus stopped, exactly one HeartbeatMissing page; started again, exactly
//! one resolve. Each step is asserted; a timeline is printed.

#[path = "support/eventually.rs"]
mod eventually;
#[path = "support/fake_kube/mod.rs"]
#[allow(dead_code)]
mod fake_kube;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/sink.rs"]
#[allow(dead_code)]
mod sink;

use std::{
    io::Write,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix_web::{web, App, HttpResponse, HttpServer};
use eventually::eventually;
use fake_kube::FakeKube;
use postgres::{Durability, TempPostgres};
use serde_json::Value;
use sink::{Reply, Sink};

const TOKEN: &str = "e2e-token";
/// A viewer's token, for reading the API (Alertmanager's may only post alerts).
const VIEWER_TOKEN: &str = "e2e-viewer-token";
const NS: &str = "whiteboard-production";
const WAIT: Duration = Duration::from_secs(90);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// Prints `+12.3s what happened`.
struct Timeline(Instant);

impl Timeline {
    fn step(&self, what: &str) {
        println!("  +{:>5.1}s  {what}", self.0.elapsed().as_secs_f64());
    }
}

async fn run() {
    let t = Timeline(Instant::now());
    println!("e2e: Prometheus, Alertmanager, medic, Postgres, fake Kubernetes, Slack and PagerDuty sinks");
    let dir = tempfile::tempdir().unwrap();
    let postgres = TempPostgres::start(Durability::Throwaway);
    let database_url = postgres.create_database("medic").await;
    let kube = FakeKube::start().await;
    kube.add_deployment(NS, "whiteboard-app", 2, &[("app", "whiteboard-app")]);
    let kubeconfig = kube.kubeconfig();
    let sink = Sink::start(1).await;
    sink.set_default(
        "/pagerduty",
        Reply::status(202).with_body(r#"{"status":"success"}"#),
    );
    let memory = Arc::new(AtomicU64::new(f64::to_bits(0.4)));
    let target_port = serve_target(memory.clone());
    let (medic_port, am_port, prom_port) = (free_port(), free_port(), free_port());

    let token_file = write(dir.path(), "token", TOKEN);
    let medic_config = write(dir.path(), "medic.yaml", &medic_yaml(&sink, kubeconfig.path()));
    let am_config = write(
        dir.path(),
        "alertmanager.yml",
        &alertmanager_yaml(medic_port, &token_file),
    );
    let rules = write(dir.path(), "rules.yml", RULES);
    let prom_config = write(
        dir.path(),
        "prometheus.yml",
        &prometheus_yaml(target_port, medic_port, am_port, &rules),
    );
    check("amtool", &["check-config", am_config.as_str()]);
    check("promtool", &["check", "config", prom_config.as_str()]);
    t.step("configs checked: amtool check-config, promtool check config");

    let _medic = Process(
        Command::new(env!("CARGO_BIN_EXE_medic"))
            .args(["serve", "--config", &medic_config])
            .env("MEDIC_SERVER__LISTEN", format!("127.0.0.1:{medic_port}"))
            .env("MEDIC_SERVER__AUTH__BEARER_TOKEN", TOKEN)
            .env("MEDIC_DATABASE__URL", &database_url)
            .env("MEDIC_LOG__FORMAT", "text")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start medic"),
    );
    let client = reqwest::Client::new();
    let medic = format!("http://127.0.0.1:{medic_port}");
    eventually("medic ready", WAIT, || async {
        get_status(&client, &format!("{medic}/readyz")).await == 200
    })
    .await;
    t.step("medic ready");
    let _alertmanager = Process(
        Command::new("prometheus-alertmanager")
            .args(["--config.file", &am_config, "--cluster.listen-address="])
            .arg(format!("--storage.path={}", dir.path().join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-alertmanager (apt-get install prometheus-alertmanager)"),
    );
    let start_prometheus = || {
        Process(
            Command::new("prometheus")
                .args(["--config.file", &prom_config])
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("prom").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
                // Alerts end 4 resend delays after their last evaluation: a Watchdog from a
                // stopped Prometheus ends in Alertmanager 4s later, not the default 4m.
                .arg("--rules.alert.resend-delay=1s")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start prometheus (apt-get install prometheus)"),
        )
    };
    let prometheus = start_prometheus();
    let prom = format!("http://127.0.0.1:{prom_port}");
    eventually("Prometheus scrapes medic and the target", WAIT, || async {
        let up = query(&client, &prom, "sum(up)").await;
        up == Some(2.0)
    })
    .await;
    t.step("Prometheus up, scraping medic and the target");

    let metrics = client
        .get(format!("{medic}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    check_stdin("promtool", &["check", "metrics"], &metrics);
    t.step("promtool check metrics: medic's live /metrics is clean");

    memory.store(f64::to_bits(0.97), Ordering::Relaxed);
    t.step("target: memory usage 97%");
    let opened = sink.wait_for("/slack", 1, WAIT).await;
    let text = opened[0].body["text"].as_str().unwrap_or_default().to_owned();
    assert!(text.contains("[FIRING:1] HighMemoryUsage"), "{text}");
    t.step("Slack: incident opened (Prometheus rule fired, Alertmanager posted to medic with the token)");

    eventually("the Deployment scaled up", WAIT, || async {
        kube.deployment(NS, "whiteboard-app").unwrap()["spec"]["replicas"] == 4
    })
    .await;
    t.step("Kubernetes: deployment/whiteboard-app scaled from 2 to 4 replicas");
    let reports = sink.wait_for("/slack", 2, WAIT).await;
    assert!(
        reports.iter().any(|r| r.text.contains("[REMEDIATION SUCCESS]")),
        "{reports:?}"
    );
    t.step("Slack: remediation reported");

    let pages = sink.wait_for("/pagerduty", 1, WAIT).await;
    assert_eq!(pages[0].body["event_action"], "trigger");
    let dedup_key = pages[0].body["dedup_key"].clone();
    t.step("PagerDuty: trigger after the escalation delay (still firing)");

    memory.store(f64::to_bits(0.3), Ordering::Relaxed);
    t.step("target: memory usage back to 30%");
    let pages = sink.wait_for("/pagerduty", 2, WAIT).await;
    assert_eq!(pages[1].body["event_action"], "resolve");
    assert_eq!(pages[1].body["dedup_key"], dedup_key);
    t.step("PagerDuty: resolve, same dedup key");
    let slack = sink.wait_for("/slack", 3, WAIT).await;
    assert!(
        slack
            .iter()
            .any(|r| r.text.contains("[RESOLVED] HighMemoryUsage")),
        "{slack:?}"
    );
    t.step("Slack: resolved");

    let incidents: Value = client
        .get(format!("{medic}/api/v1/incidents"))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(incidents["incidents"][0]["status"], "resolved", "{incidents}");
    t.step("medic API: the incident is resolved");

    heartbeat(&t, &sink, &client, &medic, prometheus, start_prometheus).await;
    println!("e2e: passed");
}

/// The Watchdog kept medic quiet so far; Prometheus stops: one page within Alertmanager's
/// end of the alert (4s) plus expect_every + grace (18s) and a few seconds; it starts again:
/// one resolve.
async fn heartbeat(
    t: &Timeline,
    sink: &Sink,
    client: &reqwest::Client,
    medic: &str,
    prometheus: Process,
    start_prometheus: impl Fn() -> Process,
) {
    let events = |event: &str| {
        sink.received_at("/heartbeat")
            .into_iter()
            .filter(|r| r.body["event"] == event)
            .count()
    };
    let early: Vec<Value> = sink
        .received_at("/heartbeat")
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert!(early.is_empty(), "Watchdog keeps medic quiet: {early:?}");
    let renewals = get_json(client, &format!("{medic}/api/v1/heartbeats")).await;
    assert_eq!(renewals["heartbeats"][0]["state"], "ok", "{renewals}");
    t.step("Watchdog: renewed all along, nothing sent");

    drop(prometheus);
    let stopped = Instant::now();
    t.step("Prometheus stopped");
    let paged = sink.wait_for("/heartbeat", 1, Duration::from_secs(40)).await;
    let after = stopped.elapsed();
    assert_eq!(paged[0].body["event"], "opened");
    assert_eq!(
        paged[0].body["incident"]["labels"]["alertname"],
        "HeartbeatMissing"
    );
    assert!(
        after <= Duration::from_secs(4 + 18 + 5),
        "paged {after:?} after the stop"
    );
    t.step(&format!(
        "HeartbeatMissing: paged {:.1}s after Prometheus stopped",
        after.as_secs_f64()
    ));

    let _prometheus = start_prometheus();
    t.step("Prometheus started again");
    eventually("the heartbeat's incident resolved", WAIT, || async {
        events("resolved") == 1
    })
    .await;
    t.step("HeartbeatMissing: resolved once the Watchdog came back");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        (events("opened"), events("resolved")),
        (1, 1),
        "exactly one page and one resolve"
    );
    t.step("exactly one page and one resolve");
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn medic_yaml(sink: &Sink, kubeconfig: &Path) -> String {
    format!(
        r##"
server:
  auth:
    users: [{{name: e2e, role: viewer, token: {VIEWER_TOKEN}}}]
kubernetes: {{kubeconfig: "{kubeconfig}", request_timeout: 5s}}
notifiers:
  incidents-slack: {{type: slack, url: "{slack}", channel: "#incidents"}}
  pagerduty: {{type: pagerduty, url: "{pd}", routing_key: e2e-routing-key}}
  heartbeat-hook: {{type: webhook, url: "{heartbeat}"}}
heartbeats:
  - name: watchdog
    matchers: ['alertname="Watchdog"']
    expect_every: 3s
    # Long enough for Prometheus to come up after medic (a few seconds on a busy machine):
    # a heartbeat never seen since medic started is missing after expect_every + grace.
    grace: 15s
    notify: [heartbeat-hook]
remediation:
  namespaces: {{allow: [{NS}]}}
rules:
  - name: high-memory
    matchers: ['alertname="HighMemoryUsage"']
    notify: [incidents-slack]
    remediate:
      action: scale_up
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: whiteboard-app, step: 2, max: 10}}
    escalation:
      - after: 3s
        severities: [critical]
        notify: [pagerduty]
engine: {{lease: 10s, request_timeout: 2s}}
"##,
        kubeconfig = kubeconfig.display(),
        slack = sink.url("/slack"),
        pd = sink.url("/pagerduty"),
        heartbeat = sink.url("/heartbeat"),
    )
}

fn alertmanager_yaml(medic_port: u16, token_file: &str) -> String {
    format!(
        r#"
route:
  receiver: medic
  group_by: [alertname, namespace]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    # The heartbeat: repeat_interval equal to medic's expect_every for it.
    - matchers: ['alertname="Watchdog"']
      group_by: [alertname]
      repeat_interval: 3s
receivers:
  - name: medic
    webhook_configs:
      - url: http://127.0.0.1:{medic_port}/webhook
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
"#
    )
}

const RULES: &str = r#"
groups:
  - name: whiteboard
    rules:
      - alert: HighMemoryUsage
        expr: whiteboard_memory_usage_ratio > 0.9
        labels: {severity: critical}
        annotations:
          summary: "Memory usage above 90% in {{ $labels.namespace }}"
  - name: meta
    rules:
      - alert: Watchdog
        expr: vector(1)
        labels: {severity: none}
        annotations:
          summary: "Always firing: proves the alerting pipeline works end to end"
"#;

fn prometheus_yaml(target: u16, medic: u16, am: u16, rules: &str) -> String {
    format!(
        r#"
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{rules}"]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["127.0.0.1:{am}"]}}]
scrape_configs:
  - job_name: whiteboard
    static_configs: [{{targets: ["127.0.0.1:{target}"]}}]
  - job_name: medic
    static_configs: [{{targets: ["127.0.0.1:{medic}"]}}]
"#
    )
}

/// The target whose memory usage the test flips, as Prometheus scrapes it.
fn serve_target(memory: Arc<AtomicU64>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let memory = memory.clone();
                App::new().route(
                    "/metrics",
                    web::get().to(move || {
                        let value = f64::from_bits(memory.load(Ordering::Relaxed));
                        async move {
                            HttpResponse::Ok()
                                .content_type("text/plain; version=0.0.4")
                                .body(format!(
                                    "# HELP whiteboard_memory_usage_ratio Memory used over the limit.\n\
                                 # TYPE whiteboard_memory_usage_ratio gauge\n\
                                 whiteboard_memory_usage_ratio{{namespace=\"{NS}\"}} {value}\n"
                                ))
                        }
                    }),
                )
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    port
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn check(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (apt-get install prometheus prometheus-alertmanager)"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn check_stdin(program: &str, args: &[&str], input: &str) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn get_status(client: &reqwest::Client, url: &str) -> u16 {
    client
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn query(client: &reqwest::Client, prom: &str, expr: &str) -> Option<f64> {
    let body: Value = client
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
