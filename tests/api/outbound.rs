//! Calls out: medic's notifiers trust the platform's CAs plus `SSL_CERT_FILE`, as a company
//! with its own CA (or an egress proxy that re-signs) needs; and a `log` notifier writes the
//! message to medic's log, sending nothing.
//!
//! The HTTPS receiver is the recording sink behind a TLS front whose certificate a test CA
//! signs. `SSL_CERT_FILE` is per process, so that test runs medic's binary with it set.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::{
    helpers::{
        config::check_config,
        eventually, notification,
        settings::{rule, settings, webhook, TestSettings},
        sink::{Reply, Sink},
        TestApp, TOKEN,
    },
    tls::{ca, server_cert},
};

const WAIT: Duration = Duration::from_secs(15);

/// TLS on 127.0.0.1 (named `localhost` and 127.0.0.1 by a certificate CA `private-ca` signs,
/// its file `private-ca.crt` in the directory), forwarding each connection to a plain sink.
struct TlsSink {
    sink: Sink,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    accept: tokio::task::JoinHandle<()>,
}

impl TlsSink {
    async fn start() -> TlsSink {
        let dir = tempfile::tempdir().unwrap();
        ca(dir.path(), "private-ca");
        let (cert, key) = server_cert(dir.path(), "private-ca", "sink", "DNS:localhost,IP:127.0.0.1");
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(&key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let sink = Sink::start(1).await;
        let plain: SocketAddr = sink.url("").trim_start_matches("http://").parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to forward.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut upstream) = TcpStream::connect(plain).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        TlsSink {
            sink,
            addr,
            dir,
            accept,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("private-ca.crt")
    }
}

impl Drop for TlsSink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A webhook at `url` told of every incident.
fn hook(url: &str) -> TestSettings {
    let retry = json!({"initial_backoff": "200ms", "max_backoff": "1s"});
    settings()
        .notifier("hook", webhook(url))
        .rule(rule("everything").notify(&["hook"]))
        .with("engine", json!({"request_timeout": "2s", "retry": retry}))
}

/// medic's binary, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `medic serve` with `yaml` and `SSL_CERT_FILE`, over a fresh database; returns its address.
async fn serve_with_ca(yaml: &str, ca_file: &Path) -> (Process, String) {
    let (mut command, file, port) = crate::helpers::serve_command(yaml).await;
    let child = command
        .env("MEDIC_KUBERNETES__ENABLED", "false")
        .env("SSL_CERT_FILE", ca_file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let medic = Process(child);
    let address = format!("http://127.0.0.1:{port}");
    eventually("medic to become ready", WAIT, || async {
        let ready = reqwest::get(format!("{address}/readyz")).await;
        ready.is_ok_and(|r| r.status() == 200)
    })
    .await;
    // The file is read at start; it may go now.
    drop(file);
    (medic, address)
}

#[tokio::test]
async fn a_webhook_signed_by_the_ca_in_ssl_cert_file_is_delivered() {
    let receiver = TlsSink::start().await;
    let yaml = hook(&receiver.url("/hook")).yaml();
    let (_medic, address) = serve_with_ca(&yaml, &receiver.ca_file()).await;

    let posted = reqwest::Client::new()
        .post(format!("{address}/webhook"))
        .bearer_auth(TOKEN)
        .json(&notification(
            "g",
            "firing",
            &[("00000000000000aa", "firing", "2026-11-26T10:00:00Z")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);

    let received = receiver.sink.wait_for("/hook", 1, WAIT).await;
    assert_eq!(received.len(), 1, "the webhook reached the receiver over HTTPS");
}

#[tokio::test]
async fn a_webhook_signed_by_an_unknown_ca_is_refused_and_retried() {
    let receiver = TlsSink::start().await;
    receiver.sink.set_default("/hook", Reply::status(200));
    // Whatever SSL_CERT_FILE this process has (the platform's bundle, or none), it does not
    // hold the CA the sink was just given.
    let app = TestApp::builder()
        .settings(&hook(&receiver.url("/hook")))
        .spawn()
        .await;
    app.post_for_incident(&notification(
        "g",
        "firing",
        &[("00000000000000ab", "firing", "2026-11-26T10:00:00Z")],
    ))
    .await;

    let row = eventually("an attempt recorded", WAIT, || async {
        let sql = app.sql().await;
        sql.query_opt(
            "SELECT result, error FROM timer_attempts ORDER BY finished_at LIMIT 1",
            &[],
        )
        .await
        .unwrap()
    })
    .await;
    assert_eq!(
        row.get::<_, String>(0),
        "retry",
        "a certificate problem may pass: retried"
    );
    let error = row.get::<_, Option<String>>(1).unwrap_or_default();
    assert!(error.contains("certificate"), "the error says why: {error}");
    assert!(receiver.sink.received_at("/hook").is_empty());
}

#[tokio::test]
async fn a_log_notifier_records_the_message_as_sent_and_sends_nothing() {
    let app = TestApp::builder()
        .settings(
            &settings()
                .notifier("console", json!({"type": "log"}))
                .rule(rule("everything").notify(&["console"])),
        )
        .spawn()
        .await;
    let id = app
        .post_for_incident(&notification(
            "g",
            "firing",
            &[("00000000000000ac", "firing", "2026-11-26T10:00:00Z")],
        ))
        .await;

    let rows = eventually("the log notifier's timer to fire", WAIT, || async {
        let sql = app.sql().await;
        let rows = sql
            .query(
                "SELECT a.result, a.status_code, t.state, t.channel FROM timer_attempts a \
                 JOIN timers t ON t.id = a.timer_id WHERE t.incident_id = $1",
                &[&id],
            )
            .await
            .unwrap();
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    let row = &rows[0];
    assert_eq!(rows.len(), 1, "one attempt, no retry");
    assert_eq!(row.get::<_, String>(0), "sent");
    assert_eq!(
        row.get::<_, Option<i32>>(1),
        None,
        "no HTTP status: nothing was sent"
    );
    assert_eq!(row.get::<_, String>(2), "done");
    assert_eq!(row.get::<_, String>(3), "log");
}

#[test]
fn a_log_notifier_with_a_url_is_refused() {
    let file = crate::helpers::yaml_file(
        "notifiers:\n  console: {type: log, url: \"http://example.com\"}\nrules:\n  - name: everything\n    notify: [console]\n",
    );
    let (code, stdout) = check_config(file.path(), &[]);
    assert_ne!(code, Some(0));
    assert!(
        stdout.contains("notifiers.console.url: not used by a log notifier"),
        "{stdout}"
    );
}

#[tokio::test]
async fn an_unreadable_ssl_cert_file_stops_medic_at_start_saying_why() {
    let settings = hook("https://localhost:1/hook")
        .server("listen", "127.0.0.1:0")
        .without_kubernetes();
    let file = crate::helpers::yaml_file(&settings.yaml());
    let mut medic = Process(
        Command::new(env!("CARGO_BIN_EXE_medic"))
            .args(["serve", "--config"])
            .arg(file.path())
            .env_clear()
            // Nothing listens there: medic must stop before it needs the database.
            .env("MEDIC_DATABASE__URL", "postgres://127.0.0.1:1/medic")
            .env("MEDIC_SERVER__AUTH__BEARER_TOKEN", TOKEN)
            .env("SSL_CERT_FILE", "/nonexistent/company-ca.pem")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = eventually("medic to stop", WAIT, || {
        std::future::ready(medic.0.try_wait().unwrap())
    })
    .await;
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut medic.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("SSL_CERT_FILE") && stderr.contains("/nonexistent/company-ca.pem"),
        "{stderr}"
    );
}
