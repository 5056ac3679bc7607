//! Logs and traces. Logs: `tracing` events as JSON lines (or human text), filtered by
//! `RUST_LOG`. Traces: when `telemetry.otlp` names a collector, medic's spans are exported with
//! OpenTelemetry (OTLP protobuf over HTTP or gRPC) by a batch exporter, and JSON log lines carry the
//! `trace_id` of the span they happened in. Without an endpoint no OpenTelemetry layer is
//! installed and every span is disabled where it is written: the request path pays nothing.
//!
//! The trace context crosses processes as W3C `traceparent`: it is read from the webhook
//! request (Alertmanager sends one when it traces), kept with a new incident in Postgres, taken
//! up again by whichever replica fires the incident's timers, and sent on every notifier
//! request.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::Context as _;
use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_http::{Bytes, HttpClient, HttpError};
use opentelemetry_otlp::{
    tonic_types::{metadata::MetadataMap, transport::ClientTlsConfig},
    SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
    Resource,
};
use secrecy::ExposeSecret;
use tracing::{Level, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    filter::{filter_fn, FilterExt, Targets},
    fmt::{self, format::Writer, FmtContext, FormatEvent, FormatFields},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
    EnvFilter, Layer,
};

use crate::{
    config::{LogFormat, OtlpProtocol, OtlpSettings},
    outbound,
};

/// Set once an OpenTelemetry layer is installed; everything here is a no-op until then.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The W3C header that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// What must outlive the process's work: the trace exporter, flushed by [`Telemetry::shutdown`].
#[must_use = "spans still queued are lost unless shutdown() is called"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still queued and stops the exporter (within its timeout). Runs on a
    /// blocking thread: the export itself needs the runtime's workers.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match flushed {
            Ok(Ok(())) => tracing::info!("traces flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "traces could not all be flushed"),
            Err(e) => tracing::warn!(error = %e, "flushing traces failed"),
        }
    }
}

/// Whether spans are exported (an OpenTelemetry layer is installed).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Installs the global subscriber: logs always, and the OpenTelemetry layer when `otlp` has an
/// endpoint. `RUST_LOG` overrides the logs' default `info` level; it does not touch traces,
/// which record medic's own spans at `info`. Must run inside the Tokio runtime (the exporter
/// sends on it).
pub fn init(format: LogFormat, otlp: Option<&OtlpSettings>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // Logs are events only: spans exist for traces, and a log line stays what it was.
    let logs = filter.and(filter_fn(|metadata| metadata.is_event()));
    let log_layer = match format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stdout)
            .map_event_format(WithTraceId)
            .with_filter(logs)
            .boxed(),
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stdout)
            .with_ansi(colour)
            .with_filter(logs)
            .boxed(),
    };
    let (trace_layer, provider) = match otlp.filter(|o| o.enabled()) {
        Some(otlp) => {
            let provider = tracer_provider(otlp)?;
            let tracer = provider.tracer("medic");
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(Targets::new().with_target("medic", Level::INFO));
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    let installed = tracing_subscriber::registry()
        .with(log_layer)
        .with(trace_layer)
        .try_init();
    // A subscriber may already be installed (tests start several apps); keep the first.
    if installed.is_ok() && provider.is_some() {
        EXPORTING.store(true, Ordering::Relaxed);
        if let Some(url) = otlp.and_then(OtlpSettings::url) {
            tracing::info!(endpoint = %url, "exporting traces");
        }
    }
    Ok(Telemetry { provider })
}

/// The SDK's provider: parent-based ratio sampling, a batch exporter (its delay and sizes from
/// `OTEL_BSP_*`, default 5 s) sending OTLP protobuf over HTTP or gRPC.
fn tracer_provider(otlp: &OtlpSettings) -> anyhow::Result<SdkTracerProvider> {
    let url = otlp.url().context("telemetry.otlp: no endpoint")?;
    let headers = otlp
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.expose_secret().to_owned()));
    let exporter = match otlp.protocol() {
        OtlpProtocol::HttpProtobuf => http_exporter(otlp, url, headers.collect())?,
        OtlpProtocol::Grpc => grpc_exporter(otlp, url, headers)?,
    };
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(otlp.sample_ratio())));
    let resource = Resource::builder()
        .with_service_name(otlp.service_name().to_owned())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}

/// OTLP/HTTP protobuf, posted by medic's own HTTP client.
fn http_exporter(
    otlp: &OtlpSettings,
    url: String,
    headers: HashMap<String, String>,
) -> anyhow::Result<SpanExporter> {
    let client = Exporter {
        // The platform's CAs and SSL_CERT_FILE, as for every call out (a collector behind the
        // company's own CA is common).
        client: outbound::client_builder()?
            .timeout(otlp.timeout.0)
            .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
            .build()?,
        runtime: tokio::runtime::Handle::try_current().context("traces need the Tokio runtime")?,
    };
    SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .with_headers(headers)
        .with_timeout(otlp.timeout.0)
        .build()
        .context("building the OTLP/HTTP exporter")
}

/// OTLP over gRPC (tonic): the headers go as request metadata; an `https://` collector is
/// reached over TLS (rustls with ring) trusting the Mozilla roots and the platform's. The
/// channel connects when the first batch leaves, and reconnects after a collector restart.
fn grpc_exporter(
    otlp: &OtlpSettings,
    url: String,
    headers: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<SpanExporter> {
    let mut metadata = http::HeaderMap::new();
    for (name, value) in headers {
        // Checked with the settings (`check-config`): a bad one never gets this far.
        let name = http::HeaderName::from_bytes(name.as_bytes()).context("an OTLP header name")?;
        metadata.insert(
            name,
            http::HeaderValue::from_str(&value).context("an OTLP header value")?,
        );
    }
    let https = url.starts_with("https://");
    let builder = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(url)
        .with_metadata(MetadataMap::from_headers(metadata))
        .with_timeout(otlp.timeout.0);
    let builder = if https {
        builder.with_tls_config(grpc_tls())
    } else {
        builder
    };
    // The channel's worker is spawned here: this must run on the Tokio runtime.
    tokio::runtime::Handle::try_current().context("traces need the Tokio runtime")?;
    builder.build().context("building the OTLP/gRPC exporter")
}

/// TLS for a gRPC collector: the Mozilla roots (as medic's HTTP clients trust), and the
/// platform's too when it has any (a private CA installed in the image). tonic refuses an
/// empty platform store outright, so it is only asked for one that holds certificates.
fn grpc_tls() -> ClientTlsConfig {
    let tls = ClientTlsConfig::new().with_webpki_roots();
    if rustls_native_certs::load_native_certs().certs.is_empty() {
        tls
    } else {
        tls.with_native_roots()
    }
}

/// The exporter's HTTP client: medic's reqwest, run on the Tokio runtime. The SDK's batch
/// processor works on a thread of its own and awaits the answer there.
#[derive(Debug)]
struct Exporter {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

type Answer = Result<http::Response<Bytes>, HttpError>;

impl HttpClient for Exporter {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: http::Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Answer> + Send + 'async_trait>>
    where
        Self: 'async_trait,
        'life0: 'async_trait,
    {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            let mut answer = http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            Ok::<_, HttpError>(answer.body(response.bytes().await?)?)
        });
        Box::pin(async move { sent.await.map_err(|e| Box::new(e) as HttpError)? })
    }
}

/// The W3C `traceparent` of `span`, to keep or send; None when not exporting.
pub fn traceparent(span: &Span) -> Option<String> {
    if !exporting() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the span a `traceparent` names (an incoming request's, or the one
/// an incident kept); a missing or malformed one leaves `span` a root. Call before entering.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|_| exporting()) else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Adds `traceparent` for `span` to an outgoing request's headers.
pub fn inject(span: &Span, headers: &mut http::HeaderMap) {
    if let Some(value) = traceparent(span).and_then(|v| http::HeaderValue::from_str(&v).ok()) {
        headers.insert(TRACEPARENT, value);
    }
}

/// `request` carrying the current span's `traceparent` (when traces are exported), for calls
/// out that do not go through [`inject`]'s caller: the Slack Web API's.
pub fn with_traceparent(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match traceparent(&Span::current()) {
        Some(value) => request.header(TRACEPARENT, value),
        None => request,
    }
}

/// The JSON event format, with `"trace_id"` first when the event happened inside an exported
/// span, so a log line leads to its trace.
struct WithTraceId<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let trace_id = exporting()
            .then(|| Span::current().context().span().span_context().clone())
            .filter(|context| context.is_valid())
            .map(|context| context.trace_id());
        let Some(trace_id) = trace_id else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"trace_id\":\"{trace_id}\",{rest}"),
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_exporter_spans_carry_no_trace_context() {
        // No OpenTelemetry layer in this test binary: nothing is kept, sent or continued.
        let span = tracing::info_span!("webhook");
        assert_eq!(traceparent(&span), None);
        let mut headers = http::HeaderMap::new();
        inject(&span, &mut headers);
        assert!(headers.is_empty());
        continue_trace(
            &span,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        assert_eq!(traceparent(&span), None);
    }
}
