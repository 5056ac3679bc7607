//! `GET /metrics`: medic's registry in Prometheus' text format.

use actix_web::{web, HttpResponse};

use super::state::State;

/// Renders every metric, reading the pool and pending-timer gauges at scrape time.
pub async fn metrics(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&state.store).await)
}
