//! Telling people: what a fired timer says, and delivering it to Slack, PagerDuty or a webhook.
//!
//! Each integration builds its request and decides, as Alertmanager's notifiers do, whether a
//! failure is worth a retry. Every message carries the incident's dedup key (PagerDuty
//! collapses re-sent triggers into one incident) and a delivery id stable across retries.
//! When traces are exported, each request is a client span in its incident's trace, and
//! carries that span's W3C `traceparent`.

mod log;
pub mod pagerduty;
pub mod slack;
mod webhook;

use std::{collections::BTreeMap, time::Duration};

use reqwest::{header, Response, StatusCode};
use tracing::{field::Empty, Instrument, Span};

use crate::{
    config::NotifierType,
    domain::{Handover, TimerWork, TriedStep},
    outbound,
    plan::NotifierEndpoint,
    store::{timers::Claimed, Store},
    telemetry,
};

/// Everything a message is made from.
#[derive(Debug)]
pub struct Message<'a> {
    pub timer: &'a Claimed,
    /// The alert's `runbook_url` annotation, else the rule's.
    pub runbook_url: Option<&'a str>,
    /// `server.instance`, in the dedup key.
    pub instance: &'a str,
}

impl Message<'_> {
    /// Same for every message about one incident, and distinct between installations:
    /// PagerDuty's `dedup_key`, `<instance>-incident-<id>`.
    pub fn dedup_key(&self) -> String {
        dedup_key(self.instance, self.timer.incident.id)
    }

    /// Same for every attempt at one occurrence of one timer, so a receiver can drop re-sends.
    pub fn delivery_id(&self) -> String {
        format!("medic-{}-{}", self.timer.id, self.timer.occurrence())
    }

    fn label(&self, name: &str) -> Option<&str> {
        self.timer.incident.labels.get(name).map(String::as_str)
    }

    fn annotation(&self, name: &str) -> Option<&str> {
        self.timer.incident.annotations.get(name).map(String::as_str)
    }

    /// The alert's name, or the incident's number when alerts carry none.
    pub fn alertname(&self) -> String {
        self.label("alertname")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("incident {}", self.timer.incident.id))
    }

    pub fn severity(&self) -> Option<&str> {
        self.label("severity")
    }

    /// `summary`, else `description`, else `message` annotation.
    pub fn summary(&self) -> Option<&str> {
        ["summary", "description", "message"]
            .into_iter()
            .find_map(|name| self.annotation(name))
    }

    /// The description when a summary is shown above it.
    pub fn description(&self) -> Option<&str> {
        self.annotation("summary").and(self.annotation("description"))
    }

    /// What a remediation ladder tried, when it brought this escalation step forward.
    pub fn handover(&self) -> Option<&Handover> {
        match &self.timer.work {
            TimerWork::Escalation { handover, .. } => handover.as_ref(),
            _ => None,
        }
    }

    /// The steps a ladder tried, for receivers that read JSON; None when the escalation was
    /// not handed over early, or its timer was stored with only the text.
    pub fn remediation_tried(&self) -> Option<&[TriedStep]> {
        self.handover()?.tried.as_deref()
    }

    pub fn instance(&self) -> Option<&str> {
        self.label("instance").or_else(|| self.label("pod"))
    }

    /// One line saying what happened, as the headline of every message.
    pub fn headline(&self) -> String {
        let incident = &self.timer.incident;
        let name = self.alertname();
        match &self.timer.work {
            TimerWork::Opened { .. } => format!("[FIRING:{}] {name}", incident.firing_alerts),
            TimerWork::Escalation { step, occurrence, .. } if *occurrence > 0 => {
                format!("[ESCALATION {step}, reminder {occurrence}] {name} is still firing")
            }
            TimerWork::Escalation { step, .. } => {
                let headline = format!(
                    "[ESCALATION {step}] {name} is still firing after {}",
                    elapsed(incident.created_at)
                );
                // Handed over early by a remediation ladder that ran out: say what was tried.
                match self.handover() {
                    Some(handover) => format!("{headline}; {}", handover.text),
                    None => headline,
                }
            }
            TimerWork::Acknowledged { .. } => {
                let by = incident
                    .acknowledged
                    .as_ref()
                    .map_or("someone", |ack| ack.by.as_str());
                format!("[ACKNOWLEDGED] {name} by {by}")
            }
            TimerWork::Resolved { .. } => format!(
                "[RESOLVED] {name} after {}",
                elapsed_between(incident.created_at, incident.resolved_at)
            ),
            TimerWork::Approval { question, .. } => {
                let until = question.expires_at.map_or_else(
                    || "?".to_owned(),
                    |at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                );
                format!(
                    "[APPROVAL NEEDED] {name}: {} {} (remediation {}, until {until}): {}",
                    question.action, question.target, question.remediation_id, question.plan
                )
            }
            TimerWork::Context | TimerWork::ContextReady { .. } => {
                let said = self.timer.context.as_ref().and_then(|c| c.headline.as_deref());
                format!("[CONTEXT] {name}: {}", said.unwrap_or("what the cluster says"))
            }
            TimerWork::Remediated { report, .. } => format!(
                "[REMEDIATION {}] {name}: {} {}: {}",
                report.result.to_uppercase(),
                report.action,
                report.target,
                report.summary
            ),
            // Not messages: a remediation or verification sends nothing itself.
            TimerWork::Remediation(work) | TimerWork::Verify(work) => {
                format!("[REMEDIATION] {name}: {}", work.action.as_str())
            }
        }
    }
}

/// `<instance>-incident-<id>`.
pub fn dedup_key(instance: &str, incident_id: i64) -> String {
    format!("{instance}-incident-{incident_id}")
}

/// The incident a dedup key of this installation names; None for another's, or not a key.
pub fn incident_of(instance: &str, key: &str) -> Option<i64> {
    let id = key.strip_prefix(instance)?.strip_prefix("-incident-")?;
    if id.starts_with('+') {
        return None;
    }
    id.parse().ok()
}

fn elapsed(since: chrono::DateTime<chrono::Utc>) -> String {
    elapsed_between(since, None)
}

fn elapsed_between(
    since: chrono::DateTime<chrono::Utc>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    let seconds = (until.unwrap_or_else(chrono::Utc::now) - since)
        .num_seconds()
        .max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h{}m", s / 3600, s % 3600 / 60),
    }
}

/// Why a send did not succeed, and whether trying again can help.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: Option<u16>,
    pub retryable: bool,
    /// From a 429 or 503's `Retry-After`.
    pub retry_after: Option<Duration>,
    pub reason: String,
}

/// The configured notifiers and one HTTP client for all of them.
#[derive(Clone)]
pub struct Notifiers {
    client: reqwest::Client,
    endpoints: BTreeMap<String, NotifierEndpoint>,
    /// Where a Slack app's messages are recorded.
    store: Option<Store>,
    instance: String,
}

impl Notifiers {
    /// One pooled client, with a timeout per request, trusting the platform's CAs and
    /// `SSL_CERT_FILE` ([`outbound`]).
    pub fn new(endpoints: BTreeMap<String, NotifierEndpoint>, timeout: Duration) -> anyhow::Result<Self> {
        let client = outbound::client_builder()?
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
            // A notifier that redirects is misconfigured (or hijacked): fail, saying where to.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            endpoints,
            store: None,
            instance: "medic".into(),
        })
    }

    /// Where Slack apps record their messages, and this installation's name.
    pub fn with_store(mut self, store: Store, instance: &str) -> Self {
        self.store = Some(store);
        self.instance = instance.to_owned();
        self
    }

    /// `server.instance`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The client every notifier shares.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The Slack apps, for the interactions they receive.
    pub fn slack_apps(&self) -> impl Iterator<Item = &NotifierEndpoint> {
        self.endpoints
            .values()
            .filter(|e| e.kind == NotifierType::SlackApp)
    }

    /// The type of the named notifier, if configured.
    pub fn kind(&self, name: &str) -> Option<NotifierType> {
        self.endpoints.get(name).map(|t| t.kind)
    }

    /// Delivers one message; Ok carries the HTTP status (none for a `log` notifier).
    pub async fn send(&self, notifier: &str, message: &Message<'_>) -> Result<Option<u16>, Failure> {
        let Some(endpoint) = self.endpoints.get(notifier) else {
            return Err(Failure {
                status: None,
                retryable: false,
                retry_after: None,
                reason: format!("no notifier named {notifier:?} is configured"),
            });
        };
        if endpoint.kind == NotifierType::Log {
            log::write(endpoint, message);
            return Ok(None);
        }
        let span = match telemetry::exporting() {
            true => request_span(notifier, endpoint.kind, message),
            false => Span::none(),
        };
        let url = match (endpoint.kind, &endpoint.url) {
            (NotifierType::SlackApp, _) => {
                let sent = slack::app::send(&self.client, endpoint, self.store.as_ref(), message);
                let result = sent.instrument(span.clone()).await;
                record_result(&span, &result);
                return result.map(Some);
            }
            (_, Some(url)) => url.clone(),
            // The plan gives every notifier that sends a URL.
            (kind, None) => {
                return Err(Failure {
                    status: None,
                    retryable: false,
                    retry_after: None,
                    reason: format!("a {} notifier without a URL", kind.as_str()),
                })
            }
        };
        let request = match endpoint.kind {
            NotifierType::Slack => slack::webhook::request(&self.client, url, endpoint, message),
            NotifierType::Pagerduty => pagerduty::events::request(&self.client, url, endpoint, message),
            _ => webhook::request(&self.client, url, endpoint, message),
        };
        let result = self.execute(request, &span).instrument(span.clone()).await;
        record_result(&span, &result);
        result.map(Some)
    }

    /// Sends one request (with the span's `traceparent`) and classifies the answer.
    async fn execute(&self, request: reqwest::RequestBuilder, span: &Span) -> Result<u16, Failure> {
        let sent = match request.build() {
            Ok(mut request) => {
                if !span.is_disabled() {
                    span.record("server.address", request.url().host_str().unwrap_or_default());
                    telemetry::inject(span, request.headers_mut());
                }
                self.client.execute(request).await
            }
            Err(e) => Err(e),
        };
        match sent {
            Ok(response) => classify(response).await,
            Err(e) => Err(Failure {
                status: None,
                retryable: true,
                retry_after: None,
                // Without the URL: for Slack it is the credential.
                reason: transport_error(&e),
            }),
        }
    }
}

/// The client span of one request to a notifier (never its URL: for Slack it is the
/// credential).
fn request_span(notifier: &str, kind: NotifierType, message: &Message<'_>) -> Span {
    let timer = message.timer;
    tracing::info_span!("notifier request", otel.name = %format_args!("POST {}", kind.as_str()),
        otel.kind = "client", http.request.method = "POST", server.address = Empty, notifier,
        notifier.type = kind.as_str(), incident_id = timer.incident.id, timer.kind = timer.kind().as_str(),
        attempt = timer.attempt, http.response.status_code = Empty, retryable = Empty,
        error.message = Empty, otel.status_code = Empty)
}

/// What a request's span says it came to.
fn record_result(span: &Span, result: &Result<u16, Failure>) {
    match result {
        Ok(status) => {
            span.record("http.response.status_code", status);
        }
        Err(failure) => {
            if let Some(status) = failure.status {
                span.record("http.response.status_code", status);
            }
            span.record("retryable", failure.retryable);
            span.record("error.message", failure.reason.as_str());
            span.record("otel.status_code", "ERROR");
        }
    }
}

fn transport_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {detail}")
    }
}

/// 2xx succeeded; 429, 408 and 5xx are worth a retry (honouring `Retry-After`); other 4xx
/// will fail the same way again.
async fn classify(response: Response) -> Result<u16, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    if status.is_redirection() {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)");
        let location: String = location.chars().take(300).collect();
        return Err(Failure {
            status: Some(status.as_u16()),
            retryable: false,
            retry_after: None,
            reason: format!(
                "HTTP {}: redirected to {location}; notifiers are not followed",
                status.as_u16()
            ),
        });
    }
    let retry_after = retry_after(&response);
    let retryable = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    Err(Failure {
        status: Some(status.as_u16()),
        retryable,
        retry_after,
        reason: format!("HTTP {}: {}", status.as_u16(), body.trim()),
    })
}

/// `Retry-After` in seconds (the HTTP date form is read as "soon": one second).
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    match value.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => httpdate_seconds(value).map(Duration::from_secs),
    }
}

fn httpdate_seconds(value: &str) -> Option<u64> {
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let seconds = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(seconds.max(1) as u64)
}
