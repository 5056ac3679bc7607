//! A real Prometheus (the Debian package's, 2.42) serving history that promtool backfilled
//! from OpenMetrics text, or scraping a test's endpoint every second, for tests that check
//! figures medic reads from it.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A Prometheus serving backfilled blocks; killed when dropped.
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Backfills `openmetrics` (ending in `# EOF`) with promtool and starts Prometheus on it,
/// keeping 30 days, ready to be asked.
pub async fn backfilled(openmetrics: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("history.om");
    std::fs::write(&input, openmetrics).unwrap();
    let data = dir.path().join("data");
    run(Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data));
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "scrape_configs: []\n").unwrap();
    start(dir, &config).await
}

/// Starts Prometheus scraping `target` (`http://127.0.0.1:PORT/path`) every second, as job
/// `app`, ready to be asked.
#[allow(dead_code)]
pub async fn scraping(target: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let rest = target.strip_prefix("http://").expect("an http:// target");
    let (address, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
             scrape_configs:\n  - job_name: app\n    metrics_path: '{path}'\n    \
             static_configs: [{{targets: ['{address}']}}]\n"
        ),
    )
    .unwrap();
    start(dir, &config).await
}

async fn start(dir: tempfile::TempDir, config: &std::path::Path) -> Prometheus {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg("--storage.tsdb.retention.time=60d")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let prometheus = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    wait_ready(&prometheus.url).await;
    prometheus
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .expect("prometheus and promtool must be installed (Debian: apt-get install prometheus)");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("{url}/-/ready")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Prometheus at {url} did not become ready");
}

/// A figure medic printed (a JSON number) is `expected` within `tolerance`.
#[track_caller]
pub fn close(actual: &serde_json::Value, expected: f64, tolerance: f64) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{actual} is not a number"));
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not {expected} ± {tolerance}"
    );
}

/// `--at`'s form: RFC 3339 in whole seconds.
pub fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
