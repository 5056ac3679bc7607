//! Telling people: what a fired timer says, and delivering it to Slack, PagerDuty or a webhook.
//!
//! Each integration builds its request and decides, as Alertmanager's notifiers do, whether a
//! failure is worth a retry. Every message carries the incident's dedup key (PagerDuty
//! collapses re-sent triggers into one incident) and a delivery id stable across retries.
//! When traces are exported, each request is a client span in its incident's trace, and
//! carries that span's W3C `traceparent`.

mod failure;
mod log;
mod message;
pub mod pagerduty;
pub mod slack;
mod webhook;

use std::{collections::BTreeMap, time::Duration};

use tracing::{field::Empty, Instrument, Span};

use self::failure::{classify, transport_error};
pub use self::{
    failure::Failure,
    message::{dedup_key, incident_of, Message},
};
use crate::{
    config::NotifierType,
    outbound,
    plan::{Endpoint, NotifierEndpoint, SlackApp},
    store::Store,
    telemetry,
};

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

    /// The Slack apps, each with its notifier's name, for the interactions they receive.
    pub fn slack_apps(&self) -> impl Iterator<Item = (&str, &SlackApp)> {
        self.endpoints.values().filter_map(|e| match &e.endpoint {
            Endpoint::SlackApp(app) => Some((e.name.as_str(), app)),
            _ => None,
        })
    }

    /// The type of the named notifier, if configured.
    pub fn kind(&self, name: &str) -> Option<NotifierType> {
        self.endpoints.get(name).map(|t| t.endpoint.kind())
    }

    /// Delivers one message; Ok carries the HTTP status (none for a `log` notifier).
    pub async fn send(&self, notifier: &str, message: &Message<'_>) -> Result<Option<u16>, Failure> {
        let Some(NotifierEndpoint { name, endpoint }) = self.endpoints.get(notifier) else {
            return Err(Failure {
                status: None,
                retryable: false,
                retry_after: None,
                reason: format!("no notifier named {notifier:?} is configured"),
            });
        };
        let span = match (endpoint, telemetry::exporting()) {
            (Endpoint::Log, _) | (_, false) => Span::none(),
            (_, true) => request_span(notifier, endpoint.kind(), message),
        };
        let client = &self.client;
        let request = match endpoint {
            Endpoint::Log => {
                log::write(name, message);
                return Ok(None);
            }
            Endpoint::SlackApp(app) => {
                let sent = slack::app::send(client, name, app, self.store.as_ref(), message);
                let result = sent.instrument(span.clone()).await;
                record_result(&span, &result);
                return result.map(Some);
            }
            Endpoint::Slack {
                webhook_url,
                channel,
                username,
            } => {
                let (channel, username) = (channel.as_deref(), username.as_deref());
                slack::webhook::request(client, webhook_url.clone(), channel, username, message)
            }
            Endpoint::PagerDuty { routing_key, url } => {
                pagerduty::events::request(client, url.clone(), routing_key, message)
            }
            Endpoint::Webhook { url, bearer_token } => {
                webhook::request(client, url.clone(), bearer_token.as_ref(), message)
            }
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
