//! `GET /api/v1/incidents` and `GET /api/v1/incidents/{id}`: the read side of the store.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, State};
use crate::{alertmanager::Status, store::incidents::Page};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// Query string of the list endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<Status>,
    /// Cursor: the `next_before` of the previous page.
    before: Option<i64>,
    limit: Option<i64>,
}

/// Incidents newest first, `limit` at a time; `next_before` is the cursor for the next page.
pub async fn list(query: web::Query<ListQuery>, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let page = Page {
        status: query.status,
        before: query.before,
        limit,
    };
    let incidents = state
        .store
        .list_incidents(page)
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    let next_before = if incidents.len() as i64 == limit {
        incidents.last().map(|i| i.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(json!({ "incidents": incidents, "next_before": next_before })))
}

/// One incident with its alerts.
pub async fn get(id: web::Path<i64>, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match state
        .store
        .incident(id)
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?
    {
        Some(incident) => Ok(HttpResponse::Ok().json(incident)),
        None => Err(ApiError::NotFound(format!("no incident {id}"))),
    }
}
