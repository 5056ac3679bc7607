//! `TestApp::builder()...spawn()`: medic on a free port over a fresh database, and a client for
//! its endpoints.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    },
    time::Duration,
};

use medic::{
    config::{Settings, Source},
    plan::Plan,
    startup::{Application, Hooks},
};
use serde_json::Value;

#[path = "../support/config.rs"]
pub mod config;
#[path = "../support/eventually.rs"]
mod eventually;
#[path = "../support/fake_kube/mod.rs"]
#[allow(dead_code)]
pub mod fake_kube;
#[path = "../support/postgres.rs"]
mod postgres;
#[path = "../support/prometheus.rs"]
pub mod prometheus;
#[path = "../support/settings.rs"]
pub mod settings;
#[path = "../support/sink.rs"]
#[allow(dead_code)]
pub mod sink;

pub use eventually::eventually;
pub use postgres::{Durability, TempPostgres};

/// Alertmanager's token: `POST /webhook` only.
pub const TOKEN: &str = "test-token-0123456789";
/// The API's users in every test medic unless told otherwise: name, role, token.
pub const VIEWER: (&str, &str, &str) = ("vera", "viewer", "vera-token-0123456789");
pub const RESPONDER: (&str, &str, &str) = ("alice", "responder", "alice-token-0123456789");
pub const OTHER_RESPONDER: (&str, &str, &str) = ("bob", "responder", "bob-token-0123456789");
pub const ADMIN: (&str, &str, &str) = ("ada", "admin", "ada-token-0123456789");

/// The `server.auth.users` block of [`VIEWER`], [`RESPONDER`], [`OTHER_RESPONDER`], [`ADMIN`].
pub fn users_yaml() -> String {
    let users: Vec<String> = [VIEWER, RESPONDER, OTHER_RESPONDER, ADMIN]
        .iter()
        .map(|(name, role, token)| format!("      - {{name: {name}, role: {role}, token: {token}}}"))
        .collect();
    format!("server:\n  auth:\n    users:\n{}\n", users.join("\n"))
}

/// One cluster for the whole test binary; each test gets its own database in it.
pub fn shared_postgres() -> &'static TempPostgres {
    static POSTGRES: OnceLock<TempPostgres> = OnceLock::new();
    POSTGRES.get_or_init(TempPostgres::shared_or_start)
}

/// A database name unique in this run.
pub fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "medic_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running medic.
pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub client: reqwest::Client,
    pub handle: actix_web::dev::ServerHandle,
}

/// The environment a test medic reads its settings from, before a test's own changes.
pub fn test_env(database_url: &str) -> HashMap<String, String> {
    HashMap::from([
        ("MEDIC_SERVER__LISTEN".into(), "127.0.0.1:0".into()),
        ("MEDIC_SERVER__WORKERS".into(), "2".into()),
        ("MEDIC_SERVER__SHUTDOWN_TIMEOUT_SECONDS".into(), "1".into()),
        ("MEDIC_SERVER__AUTH__BEARER_TOKEN".into(), TOKEN.into()),
        ("MEDIC_DATABASE__URL".into(), database_url.into()),
        ("MEDIC_DATABASE__CONNECT_TIMEOUT_SECONDS".into(), "1".into()),
        ("MEDIC_DATABASE__ACQUIRE_TIMEOUT_SECONDS".into(), "1".into()),
        ("MEDIC_DATABASE__RETRY_AFTER_SECONDS".into(), "7".into()),
        ("MEDIC_LOG__FORMAT".into(), "text".into()),
    ])
}

/// How a test starts medic, the only way it does: over a fresh database in the shared cluster
/// unless given one, with [`test_env`] changed by the test, and an optional YAML file.
#[derive(Default)]
pub struct TestAppBuilder {
    database_url: Option<String>,
    yaml: Option<String>,
    env: Vec<(String, Option<String>)>,
    no_wait: bool,
    no_users: bool,
    fault: Option<medic::engine::Fault>,
}

impl TestApp {
    /// Starts describing a test medic; [`TestAppBuilder::spawn`] starts it.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }
}

impl TestAppBuilder {
    /// Settings from this YAML document (environment variables still override it).
    pub fn config(mut self, yaml: &str) -> Self {
        self.yaml = Some(yaml.to_owned());
        self
    }

    /// Settings built by [`settings::settings`], without the test users if they name their own.
    pub fn settings(mut self, settings: &settings::TestSettings) -> Self {
        self.no_users |= settings.has_server();
        self.config(&settings.yaml())
    }

    /// Sets one `MEDIC_*` variable.
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_owned(), Some(value.to_string())));
        self
    }

    /// Unsets one of [`test_env`]'s variables.
    pub fn without_env(mut self, key: &str) -> Self {
        self.env.push((key.to_owned(), None));
        self
    }

    /// Uses this database (shared with another medic, or in a cluster the test controls).
    pub fn database(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    /// Awaits `fault` with each timer before it fires (a panic, a hang).
    pub fn fault(mut self, fault: medic::engine::Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Without the API's test users (a test that configures `server:` itself).
    pub fn without_users(mut self) -> Self {
        self.no_users = true;
        self
    }

    /// The settings file: the test's YAML, with the test users unless told otherwise.
    fn settings_file(&self) -> Option<tempfile::NamedTempFile> {
        let yaml = self.yaml.clone().unwrap_or_default();
        if self.no_users {
            return self.yaml.as_deref().map(yaml_file);
        }
        assert!(
            !yaml.lines().any(|line| line.starts_with("server:")),
            "a test YAML with its own server: section needs .without_users()"
        );
        Some(yaml_file(&format!("{}{yaml}", users_yaml())))
    }

    /// Returns as soon as medic listens, without waiting for the database.
    pub fn without_waiting(mut self) -> Self {
        self.no_wait = true;
        self
    }

    /// The environment medic will read.
    pub fn environment(&self, database_url: &str) -> HashMap<String, String> {
        let mut env = test_env(database_url);
        for (key, value) in &self.env {
            match value {
                Some(value) => env.insert(key.clone(), value.clone()),
                None => env.remove(key),
            };
        }
        env
    }

    /// The settings and plan medic would start with, over a fresh database unless given one.
    pub async fn load(&self) -> (Settings, Plan) {
        let (settings, plan, _) = self.prepare().await;
        (settings, plan)
    }

    async fn prepare(&self) -> (Settings, Plan, String) {
        let database_url = match &self.database_url {
            Some(url) => url.clone(),
            None => shared_postgres().create_database(&unique_name()).await,
        };
        let env = self.environment(&database_url);
        let file = self.settings_file();
        let source = Source {
            file: file.as_ref().map(|f| f.path().to_owned()),
            env,
        };
        let (settings, plan) = medic::plan::load(&source).unwrap_or_else(|e| panic!("test config: {e}"));
        (settings, plan, database_url)
    }

    /// Starts medic on a free port; waits until it is ready unless told not to.
    pub async fn spawn(self) -> TestApp {
        let (settings, plan, database_url) = self.prepare().await;
        // Logs only on request (TEST_LOG=1): they go to stdout, past the test harness' capture.
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = medic::telemetry::init(settings.log.format, None);
        }
        let hooks = Hooks {
            fault: self.fault.clone(),
        };
        let app = Application::build_with(settings, plan, hooks)
            .await
            .expect("build medic");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let app = TestApp {
            address,
            database_url,
            client,
            handle,
        };
        if !self.no_wait {
            app.wait_ready().await;
        }
        app
    }
}

/// A store (medic's pool) over `url`, as another replica would have.
pub fn store(url: &str) -> medic::store::Store {
    let settings = medic::config::DatabaseSettings {
        url: secrecy::SecretString::from(url.to_owned()),
        ..medic::config::DatabaseSettings::default()
    };
    medic::store::Store::new(&settings).unwrap()
}

/// A YAML settings file that lasts as long as the returned handle.
pub fn yaml_file(yaml: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::io::Write::write_all(&mut file, yaml.as_bytes()).unwrap();
    file
}

/// `medic serve` as a process of its own over a fresh database, to spawn: the settings `yaml`
/// plus a free port to listen on, the database's URL and [`TOKEN`] as the webhook's token, and
/// none of this process's variables. Also returns the settings file (keep it until medic has
/// read it) and the port.
pub async fn serve_command(yaml: &str) -> (std::process::Command, tempfile::NamedTempFile, u16) {
    let (settings, _) = TestApp::builder().config(yaml).load().await;
    let url = secrecy::ExposeSecret::expose_secret(&settings.database.url).to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = yaml_file(&format!("{yaml}server:\n  listen: 127.0.0.1:{port}\n"));
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_medic"));
    command
        .args(["serve", "--config"])
        .arg(file.path())
        .env_clear()
        .env("MEDIC_DATABASE__URL", url)
        .env("MEDIC_SERVER__AUTH__BEARER_TOKEN", TOKEN);
    (command, file, port)
}

/// The payloads a real Alertmanager sent, in `tests/fixtures/alertmanager/`.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/alertmanager/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A notification in Alertmanager's format, built from parts.
pub fn notification(group_key: &str, status: &str, alerts: &[(&str, &str, &str)]) -> Value {
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|(fingerprint, status, starts_at)| {
            serde_json::json!({
                "status": status,
                "labels": {"alertname": "HighErrorRate", "fp": fingerprint, "severity": "critical"},
                "annotations": {"summary": "error rate above 5%"},
                "startsAt": starts_at,
                "endsAt": if *status == "firing" { "0001-01-01T00:00:00Z" } else { "2026-11-26T16:00:00.5Z" },
                "generatorURL": "http://prometheus.local/graph",
                "fingerprint": fingerprint,
            })
        })
        .collect();
    serde_json::json!({
        "receiver": "medic",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0
    })
}

/// A firing notification of group `group` with one alert per label set, fingerprints counting
/// up from `first`.
pub fn alerts_with_labels<L: serde::Serialize>(group: &str, label_sets: &[L], first: usize) -> Value {
    let mut payload = notification(group, "firing", &[]);
    payload["alerts"] = label_sets
        .iter()
        .enumerate()
        .map(|(i, labels)| {
            serde_json::json!({
                "status": "firing", "labels": labels, "annotations": {},
                "startsAt": "2026-11-30T07:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "", "fingerprint": format!("{:016x}", first + i),
            })
        })
        .collect();
    payload
}

/// One firing alert named `alertname`, with these labels besides, in group `group`.
pub fn firing_alert(group: &str, alertname: &str, fingerprint: &str, labels: Value) -> Value {
    let mut payload = notification(
        group,
        "firing",
        &[(fingerprint, "firing", "2026-11-26T10:00:00Z")],
    );
    let mut all = serde_json::json!({"alertname": alertname});
    for (k, v) in labels.as_object().expect("labels object") {
        all[k] = v.clone();
    }
    payload["alerts"][0]["labels"] = all;
    payload
}

impl TestApp {
    /// Posts a notification that must be recorded; returns its incident's id.
    pub async fn post_for_incident(&self, payload: &Value) -> i64 {
        let response = self.post_webhook(payload).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("JSON body");
        body["incident_id"].as_i64().expect("incident_id")
    }

    pub async fn wait_ready(&self) {
        let what = format!("medic at {} to become ready", self.address);
        eventually(&what, Duration::from_secs(10), || async {
            let response = self.client.get(format!("{}/readyz", self.address)).send().await;
            response
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
                .and_then(ok_200)
        })
        .await;
    }

    /// `POST /webhook` with this content type and no credentials: the test adds what it needs.
    pub fn webhook(&self, content_type: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/webhook", self.address))
            .header("content-type", content_type)
    }

    /// Posts raw bytes to `/webhook` with the right token and content type.
    pub async fn post_webhook_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.webhook("application/json")
            .bearer_auth(TOKEN)
            .body(body)
            .send()
            .await
            .expect("POST /webhook")
    }

    /// Posts until medic answers 200 (it is recovering), for at most ten seconds.
    pub async fn post_until_recorded(&self, body: &str) -> u16 {
        eventually(
            "medic to record the notification",
            Duration::from_secs(10),
            || async {
                let status = self.post_webhook_raw(body.to_owned()).await.status().as_u16();
                ok_200(status).map(|()| status)
            },
        )
        .await
    }

    pub async fn post_webhook(&self, payload: &Value) -> reqwest::Response {
        self.post_webhook_raw(payload.to_string()).await
    }

    /// A GET without credentials.
    pub async fn get_anonymous(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("GET")
    }

    /// A GET as the viewer: reading needs no more.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(VIEWER.2)
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON body")
    }

    /// Every incident, newest first.
    pub async fn incidents(&self) -> Vec<Value> {
        let body = self.get_json("/api/v1/incidents?limit=500").await;
        body["incidents"].as_array().expect("incidents array").clone()
    }

    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// The value of one sample in `/metrics`, e.g. `medic_duplicate_deliveries_total`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
            .map(|value| value.trim().parse().expect("number"))
            .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
    }

    /// Waits until one sample in `/metrics` reads `value`: what medic counts after it answered.
    pub async fn metric_becomes(&self, sample: &str, value: f64, within: Duration) {
        let what = format!("{sample} to become {value}");
        eventually(&what, within, || async {
            let now = self.metric(sample).await;
            (now == value).then_some(()).ok_or(now)
        })
        .await;
    }

    /// Counts rows with SQL, straight from the database.
    pub async fn count(&self, sql: &str) -> i64 {
        self.sql().await.query_one(sql, &[]).await.expect(sql).get(0)
    }

    /// A connection of its own to medic's database.
    pub async fn sql(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
    }

    /// `POST /api/v1/incidents/{id}/ack` with this JSON body.
    /// Acknowledges as [`RESPONDER`] (alice).
    pub async fn acknowledge(&self, id: i64, body: &Value) -> reqwest::Response {
        self.acknowledge_as(RESPONDER.2, id, body).await
    }

    /// Acknowledges with this bearer token.
    pub async fn acknowledge_as(&self, token: &str, id: i64, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v1/incidents/{id}/ack", self.address))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST ack")
    }

    /// One incident, with its timers and timeline.
    pub async fn incident(&self, id: i64) -> Value {
        self.get_json(&format!("/api/v1/incidents/{id}")).await
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// A status code as a look for [`eventually`]: found when it is 200, else the code seen.
pub fn ok_200(status: u16) -> Result<(), String> {
    if status == 200 {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}
