//! Traces: medic as a process (`medic serve`, configured by the standard `OTEL_*` variables)
//! exports OTLP protobuf to a receiver in the test, over HTTP (the test's HTTP sink, decoding
//! with the opentelemetry-proto crate) or over gRPC (a tonic server with opentelemetry-proto's
//! TraceService stub); each test runs over both. One alert's whole path is one trace: the webhook, its recording,
//! the timers it scheduled, the timer fired later by the engine, and the page sent, which
//! carries the trace in `traceparent`; JSON log lines carry its `trace_id`. Spans still queued
//! at SIGTERM are flushed before medic exits.
//!
//! A process rather than an in-process medic: a process has one global tracing subscriber, and
//! this test binary's belongs to no single test.

use std::{
    collections::HashMap,
    io::BufRead,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    common::v1::{any_value::Value as Any, KeyValue},
    trace::v1::Span,
};
use prost::Message as _;
use serde_json::{json, Value};
use tonic::transport::{
    server::{ServerTlsConfig, TcpIncoming},
    Identity, Server,
};

use crate::helpers::{
    eventually, notification,
    settings::{pagerduty, rule, settings, slack_app, step},
    sink::{Reply, Sink},
    TOKEN,
};

const WAIT: Duration = Duration::from_secs(20);

/// Sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`, percent-encoded) and checked on
/// arrival: an HTTP header, or gRPC metadata.
const COLLECTOR_KEY: (&str, &str, &str) = ("x-collector-key", "s3cr%3Dt", "s3cr=t");

/// Sent with every export too, from `telemetry.otlp.headers` in the file: the SDK reads the
/// variable above by itself, this one only medic passes on.
const TEAM_HEADER: (&str, &str) = ("x-medic-team", "sre");

/// What the test's collector received in one export: its headers (or gRPC metadata) by
/// lowercase name, and the decoded request.
#[derive(Clone)]
struct Export {
    headers: HashMap<String, String>,
    request: ExportTraceServiceRequest,
}

/// The test's OTLP collector, over either transport.
enum Collector {
    /// OTLP/HTTP: the HTTP sink, which keeps each request's body.
    Http(Sink),
    /// OTLP/gRPC: a tonic server at `address`, keeping what its TraceService received; over
    /// TLS when `certificates` holds the CA that signed its certificate.
    Grpc {
        address: String,
        received: Received,
        certificates: Option<tempfile::TempDir>,
    },
}

/// The CA that signs the TLS collector's certificate, in its `certificates` directory.
const CA: &str = "otlp-ca";

/// The gRPC collector's TraceService: keeps each export with its metadata, answers success.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Export>>>);

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let (metadata, _, request) = request.into_parts();
        let headers = metadata
            .into_headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_owned()))
            .collect();
        self.0.lock().unwrap().push(Export { headers, request });
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    async fn http() -> Collector {
        Collector::Http(Sink::start(1).await)
    }

    /// A tonic server on a free port of the loopback, in plaintext (h2c).
    async fn grpc() -> Collector {
        Collector::serve_grpc(None).await
    }

    /// The same over TLS, with a certificate for 127.0.0.1 signed by a CA made here, which
    /// medic trusts as a platform root (`SSL_CERT_FILE`).
    async fn grpc_tls() -> Collector {
        let dir = tempfile::tempdir().unwrap();
        crate::tls::ca(dir.path(), CA);
        let (cert, key) = crate::tls::server_cert(dir.path(), CA, "collector", "IP:127.0.0.1");
        Collector::serve_grpc(Some((dir, Identity::from_pem(cert, key)))).await
    }

    /// Serves the TraceService until the test ends.
    async fn serve_grpc(tls: Option<(tempfile::TempDir, Identity)>) -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let address = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (server, certificates) = match tls {
            Some((dir, identity)) => {
                let tls = ServerTlsConfig::new().identity(identity);
                (Server::builder().tls_config(tls).unwrap(), Some(dir))
            }
            None => (Server::builder(), None),
        };
        let received = Received::default();
        let service = TraceServiceServer::new(received.clone());
        tokio::spawn(server.serve_with_incoming(service, TcpIncoming::from(listener)));
        Collector::Grpc {
            address,
            received,
            certificates,
        }
    }

    /// The variables that point medic at this collector: its base URL (over gRPC, the
    /// collector's address), the protocol, and a header.
    fn env(&self) -> Vec<(&'static str, String)> {
        let (name, encoded, _) = COLLECTOR_KEY;
        let mut env = vec![("OTEL_EXPORTER_OTLP_HEADERS", format!("{name}={encoded}"))];
        match self {
            Collector::Http(sink) => env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", sink.url(""))),
            Collector::Grpc {
                address,
                certificates,
                ..
            } => {
                env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", address.clone()));
                env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()));
                if let Some(dir) = certificates {
                    let ca = dir.path().join(format!("{CA}.crt"));
                    env.push(("SSL_CERT_FILE", ca.display().to_string()));
                }
            }
        }
        env
    }

    /// Every export received so far, each checked for its transport's content type and the
    /// header medic was given.
    fn exports(&self) -> Vec<Export> {
        let exports: Vec<Export> = match self {
            Collector::Http(sink) => sink
                .received_at("/v1/traces")
                .into_iter()
                .map(|request| {
                    assert_eq!(request.headers["content-type"], "application/x-protobuf");
                    let decoded = ExportTraceServiceRequest::decode(request.bytes.as_slice());
                    Export {
                        headers: request.headers,
                        request: decoded.expect("OTLP protobuf"),
                    }
                })
                .collect(),
            Collector::Grpc { received, .. } => {
                let exports = received.0.lock().unwrap().clone();
                for export in &exports {
                    assert_eq!(export.headers["content-type"], "application/grpc");
                }
                exports
            }
        };
        let (name, _, decoded) = COLLECTOR_KEY;
        for export in &exports {
            let team = export.headers.get(TEAM_HEADER.0).map(String::as_str);
            assert_eq!(team, Some(TEAM_HEADER.1), "{:?}", export.headers);
            assert_eq!(
                export.headers.get(name).map(String::as_str),
                Some(decoded),
                "{:?}",
                export.headers
            );
        }
        exports
    }
}

/// medic as a process, with its stdout's lines; killed if the test ends first.
struct Medic {
    child: Child,
    address: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Medic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Medic {
    /// Starts `medic serve` over a fresh database, paging through `pager`, exporting traces to
    /// `collector` with the batch delay given; returns once it is ready.
    async fn start(pager: &Sink, collector: &Collector, batch_delay_ms: u64) -> Medic {
        // The Slack Web API under /slack/api/: every method answers ok, the post with a ts.
        pager.set_default(
            "/slack/api/",
            Reply::status(200).with_body(r#"{"ok":true,"messages":[]}"#),
        );
        pager.set_default(
            "/slack/api/chat.postMessage",
            Reply::status(200).with_body(r#"{"ok":true,"channel":"C0TEST","ts":"1700000000.000100"}"#),
        );
        let (team, name) = TEAM_HEADER;
        let yaml = settings()
            .notifier("pagerduty", pagerduty(&pager.url("/pagerduty"), "rk-1"))
            .notifier("slack-app", slack_app(&pager.url("/slack/api"), "s3cret-s3cret"))
            .rule(rule("page").notify(&["pagerduty", "slack-app"]).remediate(step(
                "scale_up",
                json!({"namespace": "prod", "deployment": "app"}),
            )))
            .without_kubernetes()
            .with("engine", json!({"lease": "10s", "request_timeout": "5s"}))
            .with("telemetry", json!({"otlp": {"headers": {team: name}}}))
            .yaml();
        let (mut command, file, port) = crate::helpers::serve_command(&yaml).await;
        let mut child = command
            .env("MEDIC_LOG__FORMAT", "json")
            .envs(collector.env())
            .env("OTEL_SERVICE_NAME", "medic-under-test")
            .env("OTEL_BSP_SCHEDULE_DELAY", batch_delay_ms.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let medic = Medic {
            child,
            address: format!("http://127.0.0.1:{port}"),
            lines,
        };
        let client = reqwest::Client::new();
        eventually("medic to become ready", WAIT, || async {
            let ready = client.get(format!("{}/readyz", medic.address)).send().await;
            ready.is_ok_and(|r| r.status() == 200)
        })
        .await;
        drop(file);
        medic
    }

    /// Posts one firing notification; returns the incident's id.
    async fn fire(&self, group: &str) -> i64 {
        let payload = notification(
            group,
            "firing",
            &[("00000000000000aa", "firing", "2026-11-26T10:00:00Z")],
        );
        let response = reqwest::Client::new()
            .post(format!("{}/webhook", self.address))
            .bearer_auth(TOKEN)
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["incident_id"].as_i64().unwrap()
    }

    /// SIGTERM, and the exit status within the wait.
    async fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        eventually("medic to stop", WAIT, || {
            std::future::ready(self.child.try_wait().unwrap())
        })
        .await
    }
}

/// Every span the collector received, with its resource's `service.name`.
fn spans(collector: &Collector) -> Vec<(String, Span)> {
    let mut spans = Vec::new();
    for export in collector.exports() {
        for resource in export.request.resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                spans.extend(scope.spans.into_iter().map(|span| (service.clone(), span)));
            }
        }
    }
    spans
}

/// An attribute's value as text.
fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match value {
        Any::StringValue(s) => s.clone(),
        Any::IntValue(i) => i.to_string(),
        Any::BoolValue(b) => b.to_string(),
        Any::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

/// Waits until the collector holds spans of trace `trace_id` with every name in `names`.
/// The trace once it holds a span of each of `names` and the span `span_id` with its parent.
async fn wait_for_trace(
    collector: &Collector,
    trace_id: &[u8],
    names: &[&str],
    span_id: &[u8],
) -> Vec<(String, Span)> {
    eventually("the whole trace", WAIT, || async {
        let trace: Vec<(String, Span)> = spans(collector)
            .into_iter()
            .filter(|(_, span)| span.trace_id == trace_id)
            .collect();
        let has = |id: &[u8]| trace.iter().any(|(_, span)| span.span_id == id);
        let with_parent = trace
            .iter()
            .find(|(_, span)| span.span_id == span_id)
            .is_some_and(|(_, span)| has(&span.parent_span_id));
        if with_parent
            && names
                .iter()
                .all(|name| trace.iter().any(|(_, span)| span.name == *name))
        {
            return Ok(trace);
        }
        let seen: Vec<&str> = trace.iter().map(|(_, span)| span.name.as_str()).collect();
        Err(format!("{seen:?}"))
    })
    .await
}

/// `00-<trace id>-<span id>-<flags>` as bytes.
fn parse_traceparent(header: &str) -> (Vec<u8>, Vec<u8>) {
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts.len(), 4, "{header}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[3], "01", "sampled");
    (hex::decode(parts[1]).unwrap(), hex::decode(parts[2]).unwrap())
}

fn named<'a>(trace: &'a [(String, Span)], name: &str) -> &'a Span {
    &trace.iter().find(|(_, span)| span.name == name).unwrap().1
}

#[tokio::test]
async fn one_trace_follows_an_alert_from_the_webhook_to_the_page() {
    one_trace_from_the_webhook_to_the_page(Collector::http().await).await;
}

#[tokio::test]
async fn over_grpc_one_trace_follows_an_alert_from_the_webhook_to_the_page() {
    one_trace_from_the_webhook_to_the_page(Collector::grpc().await).await;
}

#[tokio::test]
async fn over_grpc_with_tls_one_trace_follows_an_alert_from_the_webhook_to_the_page() {
    one_trace_from_the_webhook_to_the_page(Collector::grpc_tls().await).await;
}

#[tokio::test]
async fn spans_still_queued_at_sigterm_are_flushed_before_medic_exits() {
    spans_still_queued_at_sigterm_are_flushed(Collector::http().await).await;
}

#[tokio::test]
async fn over_grpc_spans_still_queued_at_sigterm_are_flushed_before_medic_exits() {
    spans_still_queued_at_sigterm_are_flushed(Collector::grpc().await).await;
}

async fn one_trace_from_the_webhook_to_the_page(collector: Collector) {
    let pager = Sink::start(1).await;
    pager.set_default(
        "/pagerduty",
        Reply::status(202).with_body(r#"{"status":"success"}"#),
    );
    let mut medic = Medic::start(&pager, &collector, 200).await;

    let incident = medic.fire("{}:{alertname=\"HighErrorRate\"}").await;
    let page = pager.wait_for("/pagerduty", 1, WAIT).await;
    let traceparent = page[0]
        .headers
        .get("traceparent")
        .expect("the page carries traceparent");
    let (trace_id, page_parent) = parse_traceparent(traceparent);
    // The Slack Web API's call carries the same trace, from its own request span.
    let posted = pager.wait_for("/slack/api/chat.postMessage", 1, WAIT).await;
    let (slack_trace, slack_parent) = parse_traceparent(
        posted[0]
            .headers
            .get("traceparent")
            .expect("chat.postMessage carries traceparent"),
    );
    assert_eq!(slack_trace, trace_id, "one trace for both notifiers");

    let trace = wait_for_trace(
        &collector,
        &trace_id,
        &[
            "POST /webhook",
            "record notification",
            "schedule timers",
            "fire opened timer",
            "fire remediation timer",
            "remediate scale_up",
            "POST pagerduty",
        ],
        &slack_parent,
    )
    .await;
    assert!(trace.iter().all(|(service, _)| service == "medic-under-test"));
    let by_id = |id: &[u8]| &trace.iter().find(|(_, span)| span.span_id == id).unwrap().1;
    let webhook = named(&trace, "POST /webhook");
    let record = named(&trace, "record notification");
    let schedule = named(&trace, "schedule timers");
    let remediate = named(&trace, "remediate scale_up");
    // The page's traceparent names its request's span, fired by the opened timer, which joins
    // the trace the webhook began; so does the remediation.
    let request = by_id(&page_parent);
    assert_eq!(request.name, "POST pagerduty");
    let fired = by_id(&request.parent_span_id);
    assert_eq!(fired.name, "fire opened timer");
    assert!(webhook.parent_span_id.is_empty(), "the webhook is the root");
    assert_eq!(record.parent_span_id, webhook.span_id);
    assert_eq!(schedule.parent_span_id, record.span_id);
    assert_eq!(
        fired.parent_span_id, webhook.span_id,
        "the fired timer joins the incident's trace"
    );
    assert_eq!(by_id(&remediate.parent_span_id).name, "fire remediation timer");
    assert_eq!(by_id(&remediate.parent_span_id).parent_span_id, webhook.span_id);
    assert!(fired.start_time_unix_nano >= record.start_time_unix_nano);

    let incident = incident.to_string();
    assert_eq!(
        attribute(&webhook.attributes, "incident_id").as_ref(),
        Some(&incident)
    );
    assert_eq!(
        attribute(&webhook.attributes, "receiver").as_deref(),
        Some("medic")
    );
    assert_eq!(
        attribute(&webhook.attributes, "group_key").as_deref(),
        Some("{}:{alertname=\"HighErrorRate\"}")
    );
    assert_eq!(
        attribute(&webhook.attributes, "outcome").as_deref(),
        Some("recorded")
    );
    assert_eq!(
        attribute(&webhook.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(&record.attributes, "new_incident").as_deref(),
        Some("true")
    );
    assert_eq!(attribute(&schedule.attributes, "scheduled").as_deref(), Some("3"));
    let slack_request = by_id(&slack_parent);
    assert_eq!(slack_request.name, "POST slack_app");
    // The incident's Slack message is posted by whichever of its timers fires first: the opened
    // one, or (on a loaded machine) the remediation's report, which then replies under it.
    let slack_timer = by_id(&slack_request.parent_span_id);
    assert!(
        ["fire opened timer", "fire remediated timer"].contains(&slack_timer.name.as_str()),
        "{}",
        slack_timer.name
    );
    assert_eq!(
        slack_timer.parent_span_id, webhook.span_id,
        "it joins the incident's trace"
    );
    assert_eq!(
        attribute(&fired.attributes, "incident_id").as_ref(),
        Some(&incident)
    );
    assert_eq!(attribute(&fired.attributes, "result").as_deref(), Some("sent"));
    assert_eq!(
        attribute(&request.attributes, "http.response.status_code").as_deref(),
        Some("202")
    );
    assert_eq!(attribute(&request.attributes, "attempt").as_deref(), Some("1"));
    assert_eq!(
        attribute(&request.attributes, "notifier").as_deref(),
        Some("pagerduty")
    );

    // The log lines of the request and of the page say which trace they belong to.
    let trace_hex = hex::encode(&trace_id);
    let logged: Vec<Value> = medic
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &Value| line["trace_id"] == trace_hex.as_str())
        .collect();
    let messages: Vec<&str> = logged.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(messages.contains(&"notification received"), "{messages:?}");
    assert!(messages.contains(&"message delivery"), "{messages:?}");

    assert!(medic.stop().await.success());
}

async fn spans_still_queued_at_sigterm_are_flushed(collector: Collector) {
    let pager = Sink::start(1).await;
    pager.set_default(
        "/pagerduty",
        Reply::status(202).with_body(r#"{"status":"success"}"#),
    );
    // A batch delay far longer than the test: only the shutdown's flush can send them.
    let mut medic = Medic::start(&pager, &collector, 600_000).await;
    let incident = medic.fire("{}:{alertname=\"Flush\"}").await;
    pager.wait_for("/pagerduty", 1, WAIT).await;
    assert!(collector.exports().is_empty(), "exported before the delay");

    assert!(medic.stop().await.success());
    let webhooks: Vec<Span> = spans(&collector)
        .into_iter()
        .map(|(_, span)| span)
        .filter(|span| span.name == "POST /webhook")
        .collect();
    assert_eq!(webhooks.len(), 1);
    assert_eq!(
        attribute(&webhooks[0].attributes, "incident_id"),
        Some(incident.to_string())
    );
    let names: HashMap<String, usize> =
        spans(&collector)
            .into_iter()
            .fold(HashMap::new(), |mut names, (_, s)| {
                *names.entry(s.name).or_default() += 1;
                names
            });
    let pages = pager.received_at("/pagerduty").len();
    assert_eq!(names.get("POST pagerduty"), Some(&pages), "{names:?}");
}
