//! Probes: `/healthz` says the process serves; `/readyz` that the database answers and holds
//! the schema this build needs.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::State;

/// Liveness: never touches the database, so an outage does not get the pod restarted.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: the database is reachable and migrated.
pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    match state.store.is_ready().await {
        Ok(true) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Ok(false) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "not ready", "reason": "database schema is not migrated yet" })),
        Err(e) => {
            HttpResponse::ServiceUnavailable().json(json!({ "status": "not ready", "reason": e.to_string() }))
        }
    }
}
