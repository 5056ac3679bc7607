//! The HTTP surface: routes, shared state, and the middleware around them.

mod auth;
mod control;
mod error;
mod health;
mod heartbeats;
mod incidents;
mod integrations;
mod jwks;
mod jwt;
mod limits;
mod metrics;
mod rules;
mod slo;
mod state;
mod ui;
mod webhook;

use std::time::Instant;

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::{from_fn, Next},
    web, Error,
};

pub use auth::{Authenticator, Caller, Need};
pub use error::ApiError;
pub use limits::ReadLimits;
pub use state::{EngineHealth, Readiness, State};

use crate::domain::Role;

/// Registers every route on an app that has `State` and `Authenticator` as app data. Each
/// route of the API and the webhook declares what it needs of its caller ([`Need`]) here, and
/// only that route checks it.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::http::Method;
    use Role::{Admin, Responder, Viewer};
    let viewer = Need::Role(Viewer);
    let responder = Need::Role(Responder);
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
    // The console authenticates by its session cookie or the proxy, page by page; each act
    // checks its role.
    .service(web::scope("/ui").configure(ui::routes))
    .service(route(
        "/webhook",
        Method::POST,
        Need::Alertmanager,
        webhook::receive,
    ))
    .service(route("/api/v1/incidents", Method::GET, viewer, incidents::list))
    .service(route(
        "/api/v1/incidents/{id}",
        Method::GET,
        viewer,
        incidents::get,
    ))
    .service(route(
        "/api/v1/incidents/{id}/context",
        Method::GET,
        viewer,
        incidents::context,
    ))
    .service(route(
        "/api/v1/incidents/{id}/ack",
        Method::POST,
        responder,
        incidents::acknowledge,
    ))
    .service(route(
        "/api/v1/incidents/{id}/silence",
        Method::POST,
        responder,
        incidents::silence,
    ))
    .service(route(
        "/api/v1/incidents/{id}/silence",
        Method::DELETE,
        responder,
        incidents::unsilence,
    ))
    .service(route("/api/v1/slo/report", Method::GET, viewer, slo::report))
    .service(route("/api/v1/heartbeats", Method::GET, viewer, heartbeats::list))
    .service(route(
        "/api/v1/rules/effectiveness",
        Method::GET,
        viewer,
        rules::effectiveness,
    ))
    .service(route(
        "/api/v1/rules/{rule}/steps/{step}/promote",
        Method::POST,
        Need::Role(Admin),
        rules::promote,
    ))
    .service(route(
        "/api/v1/remediations",
        Method::GET,
        viewer,
        control::requests,
    ))
    .service(route(
        "/api/v1/remediations/{id}/approve",
        Method::POST,
        responder,
        control::approve,
    ))
    .service(route(
        "/api/v1/remediations/{id}/reject",
        Method::POST,
        responder,
        control::reject,
    ))
    .service(route(
        "/api/v1/maintenance",
        Method::POST,
        responder,
        control::create_window,
    ))
    .service(route(
        "/api/v1/maintenance",
        Method::GET,
        viewer,
        control::windows,
    ))
    .service(route(
        "/api/v1/maintenance/{id}",
        Method::DELETE,
        responder,
        control::end_window,
    ))
    .service(route(
        "/api/v1/remediation/pause",
        Method::GET,
        viewer,
        control::pause,
    ))
    .service(route(
        "/api/v1/remediation/pause",
        Method::PUT,
        Need::Role(Admin),
        control::set_pause,
    ))
    .service(route(
        "/api/v1/remediation/pause",
        Method::DELETE,
        Need::Role(Admin),
        control::clear_pause,
    ))
    .default_service(web::to(|| async {
        Err::<actix_web::HttpResponse, _>(ApiError::NotFound("no such route".into()))
    }));
}

/// One route for one method, with what it needs of its caller checked by middleware that runs
/// only when the router chose this route.
fn route<F, Args>(
    path: &str,
    method: actix_web::http::Method,
    need: Need,
    handler: F,
) -> impl actix_web::dev::HttpServiceFactory
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .guard(actix_web::guard::Method(method.clone()))
        .wrap(from_fn(limits::api_reads))
        // Wrapped last, so it runs first: the limit counts the caller it identified.
        .wrap(from_fn(move |req, next| auth::require(need, req, next)))
        .route(web::method(method).to(handler))
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
