//! The HTTP surface: routes, shared state, and the middleware around them.

mod auth;
mod control;
mod error;
mod health;
mod incidents;
mod integrations;
mod metrics;
mod slo;
mod ui;
mod webhook;

use std::{sync::Arc, time::Instant};

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::{from_fn, Next},
    web, Error,
};

pub use auth::{Authenticator, Caller, Person};
pub use error::ApiError;
pub use health::Readiness;

use crate::{
    control::Control,
    intake::Recorder,
    metrics::Metrics,
    notify::Notifiers,
    plan::{GuardRails, Integrations, Rules, Slo},
    silences::Alertmanager,
    slo::prometheus::Prometheus,
    store::Store,
};

/// What every handler may need.
pub struct State {
    /// The database.
    pub store: Store,
    /// Records webhook notifications, several to a transaction under load.
    pub recorder: Recorder,
    /// Decide which timers a notification schedules.
    pub rules: Arc<Rules>,
    /// What remediation must respect: the console's explain box says how a step would meet it.
    pub guard_rails: Arc<GuardRails>,
    /// Where handlers count what they do.
    pub metrics: Metrics,
    /// Maintenance windows and the pause as this replica sees them (refreshed after a change
    /// made here).
    pub control: Arc<Control>,
    /// The notifiers (Slack apps answer their users through them) and their HTTP client.
    pub notifiers: Notifiers,
    /// Who is who in Slack and PagerDuty, their secrets, and Alertmanager.
    pub integrations: Integrations,
    /// Largest accepted webhook body, in bytes.
    pub body_limit: usize,
    /// Seconds in `Retry-After` when the database is unreachable.
    pub retry_after: u64,
    /// The last readiness check, shared by probes for about a second.
    pub readiness: Readiness,
    /// How `/healthz` tells a stalled engine, when this process runs one.
    pub engine: Option<EngineHealth>,
    /// The SLOs `GET /api/v1/slo/report` measures.
    pub slos: Arc<Vec<Slo>>,
    /// Where it measures them; `None` without `prometheus.url`.
    pub prometheus: Option<Prometheus>,
}

/// How `/healthz` tells a stalled engine: by `medic_engine_last_loop_timestamp_seconds`.
pub struct EngineHealth {
    /// Longer than this since the claim loop last went round: unhealthy.
    pub stall_after: std::time::Duration,
}

impl State {
    /// Alertmanager's API, for silences.
    pub fn alertmanager(&self) -> Alertmanager<'_> {
        Alertmanager {
            client: self.notifiers.client(),
            endpoint: self.integrations.alertmanager.as_ref(),
        }
    }
}

/// Registers every route on an app that has `State` and `Authenticator` as app data.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()),
    )
    .app_data(web::PathConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(metrics::metrics))
    // Authenticated by their signatures, not by medic's credentials.
    .route(
        "/integrations/slack/interactions",
        web::post().to(integrations::slack_interactions),
    )
    .route("/integrations/pagerduty", web::post().to(integrations::pagerduty))
    // The console authenticates by its session cookie or the proxy, page by page.
    .service(web::scope("/ui").configure(ui::routes))
    .service(
        web::scope("")
            .wrap(from_fn(auth::require))
            .route("/webhook", web::post().to(webhook::receive))
            .route("/api/v1/incidents", web::get().to(incidents::list))
            .route("/api/v1/incidents/{id}", web::get().to(incidents::get))
            .route(
                "/api/v1/incidents/{id}/ack",
                web::post().to(incidents::acknowledge),
            )
            .route(
                "/api/v1/incidents/{id}/silence",
                web::post().to(incidents::silence),
            )
            .route(
                "/api/v1/incidents/{id}/silence",
                web::delete().to(incidents::unsilence),
            )
            .route("/api/v1/slo/report", web::get().to(slo::report))
            .route("/api/v1/remediations", web::get().to(control::requests))
            .route(
                "/api/v1/remediations/{id}/approve",
                web::post().to(control::approve),
            )
            .route(
                "/api/v1/remediations/{id}/reject",
                web::post().to(control::reject),
            )
            .route("/api/v1/maintenance", web::post().to(control::create_window))
            .route("/api/v1/maintenance", web::get().to(control::windows))
            .route("/api/v1/maintenance/{id}", web::delete().to(control::end_window))
            .route("/api/v1/remediation/pause", web::get().to(control::pause))
            .route("/api/v1/remediation/pause", web::put().to(control::set_pause))
            .route(
                "/api/v1/remediation/pause",
                web::delete().to(control::clear_pause),
            ),
    )
    .default_service(web::to(|| async {
        Err::<actix_web::HttpResponse, _>(ApiError::NotFound("no such route".into()))
    }));
}

/// Counts every request by route pattern and status, whether a handler answered or an error did.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    // Label values come from closed sets: whatever a caller sends cannot add series.
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let metrics = req
        .app_data::<web::Data<State>>()
        .map(|state| state.metrics.http.clone());
    let result = next.call(req).await;
    let code = match &result {
        Ok(response) => response.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    if let Some(metrics) = metrics {
        metrics.observe(&route, method, code, started);
    }
    result
}

/// The method as a metric label: one of the methods HTTP defines, else `other`.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}
