//! Probes: `/healthz` says the process serves; `/readyz` that the database answers and holds
//! the schema this build needs. Both are unauthenticated, so they say no more than that: the
//! reason for "not ready" goes to the log, and a check is shared by all probes for a second,
//! so probes cannot take a pooled connection each.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::state::State;

/// Liveness: never touches the database, so an outage does not get the pod restarted; fails
/// when the timer engine has not gone round its loop for longer than `engine.stall_after`
/// (a stuck engine fires no timer, and a restart is the cure).
pub async fn healthz(state: web::Data<State>) -> HttpResponse {
    if let Some(engine) = &state.engine {
        // The engine sets the gauge each round; zero until its first.
        let last = state.metrics.timers.last_loop.get();
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let since = now - last;
        if last > 0.0 && since > engine.stall_after.as_secs_f64() {
            tracing::error!(seconds = since as u64, "the timer engine is stalled");
            return HttpResponse::ServiceUnavailable().json(json!({ "status": "engine stalled" }));
        }
    }
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: the database is reachable and migrated.
pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    if state.readiness.check(&state.store).await {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "not ready" }))
    }
}
