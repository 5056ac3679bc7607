//! Probes: `/healthz` says the process serves; `/readyz` that the database answers and holds
//! the schema this build needs. Both are unauthenticated, so they say no more than that: the
//! reason for "not ready" goes to the log, and a check is shared by all probes for a second,
//! so probes cannot take a pooled connection each.

use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use serde_json::json;
use tokio::sync::Mutex;

use super::State;
use crate::store::Store;

/// How long one readiness check answers every probe.
const FRESH: Duration = Duration::from_secs(1);

/// The last readiness check and when it was made.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    /// Ready or not: the last check if fresh, else a new one (one at a time).
    pub async fn check(&self, store: &Store) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ready)) = *last {
            if at.elapsed() < FRESH {
                return ready;
            }
        }
        let ready = match store.is_ready().await {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!("not ready: the database schema is not migrated yet");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "not ready: the database does not answer");
                false
            }
        };
        *last = Some((Instant::now(), ready));
        ready
    }
}

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
