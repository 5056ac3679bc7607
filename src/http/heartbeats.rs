//! `GET /api/v1/heartbeats`: every heartbeat medic watches (one per `per` value), whether it
//! arrives on time, when it was last seen, when it is due, and its incident while missing.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{error::ApiError, state::State};

/// Every heartbeat, by name and `per` value.
pub async fn list(state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let heartbeats = state
        .store
        .heartbeats()
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    Ok(HttpResponse::Ok().json(json!({ "heartbeats": heartbeats })))
}
