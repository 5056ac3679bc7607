//! `POST /webhook`: parse, check and store one Alertmanager notification with the timers its
//! rules ask for. Nothing else happens on the request path; a 200 means both are committed.
//! Alerts a heartbeat takes (Watchdog) renew it, in the same transaction, and are not recorded.
//! When traces are exported, the request is the root of its notification's trace (or a child
//! of Alertmanager's, if it sent a `traceparent`).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;
use tracing::{field::Empty, Instrument, Span};

use super::{error::ApiError, state::State};
use crate::{
    alertmanager,
    domain::{Notification, Renewal},
    intake::Taken,
    store::{heartbeats::Returned, incidents::Recorded, StoreError},
    telemetry,
};

/// Receives a notification; answers 200 only after it is committed.
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    if !telemetry::exporting() {
        return record(req, payload, state).await;
    }
    let span = tracing::info_span!(
        "POST /webhook",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/webhook",
        receiver = Empty,
        group_key = Empty,
        alerts = Empty,
        incident_id = Empty,
        outcome = Empty,
        http.response.status_code = Empty,
        otel.status_code = Empty
    );
    let parent = req
        .headers()
        .get(telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    telemetry::continue_trace(&span, parent);
    let result = record(req, payload, state).instrument(span.clone()).await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(e) => e.status_code(),
    };
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    result
}

/// Parses, checks and records one notification.
async fn record(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let notification = match parse(&req, payload, state.body_limit).await {
        Ok(notification) => notification,
        Err(e) => {
            state
                .metrics
                .intake
                .notifications
                .with_label_values(&["rejected"])
                .inc();
            Span::current().record("outcome", "rejected");
            tracing::warn!(outcome = "rejected", reason = %e, "notification rejected");
            return Err(e);
        }
    };
    let span = Span::current();
    span.record("receiver", notification.receiver.as_str());
    span.record("group_key", notification.group_key.as_str());
    span.record("alerts", notification.alerts.len());
    let crate::plan::heartbeats::Split { renewals, rest } = state.heartbeats.split(notification);
    renewed(&state, &renewals);
    let Some(notification) = rest.map(Arc::new) else {
        return renew_only(&state, renewals).await;
    };
    let timers = state.rules.plan(&notification);
    match state
        .recorder
        .record(Some(notification.clone()), timers, renewals)
        .await
    {
        Ok(Taken { recorded: None, .. }) => Err(ApiError::Internal(anyhow::anyhow!(
            "a notification was stored without its recording"
        ))),
        Ok(Taken {
            recorded: Some(recorded),
            returned,
        }) => {
            came_back(&returned);
            span.record("incident_id", recorded.incident_id);
            span.record(
                "outcome",
                if recorded.duplicate {
                    "duplicate"
                } else {
                    "recorded"
                },
            );
            count(&state, &notification, &recorded);
            log(&notification, &recorded);
            Ok(HttpResponse::Ok().json(json!({
                "incident_id": recorded.incident_id,
                "duplicate": recorded.duplicate,
            })))
        }
        Err(e) => Err(failed(&state, e, &notification.receiver, &notification.group_key)),
    }
}

/// Stores a notification that carried only heartbeat alerts: their renewals.
async fn renew_only(state: &State, renewals: Vec<Renewal>) -> Result<HttpResponse, ApiError> {
    let count = renewals.len();
    match state.recorder.record(None, Vec::new(), renewals).await {
        Ok(taken) => {
            came_back(&taken.returned);
            Span::current().record("outcome", "heartbeat");
            state
                .metrics
                .intake
                .notifications
                .with_label_values(&["heartbeat"])
                .inc();
            Ok(HttpResponse::Ok().json(json!({
                "incident_id": null,
                "duplicate": false,
                "heartbeats": count,
            })))
        }
        Err(e) => Err(failed(state, e, "", "")),
    }
}

/// Counts renewals by heartbeat name (never by `per` value).
fn renewed(state: &State, renewals: &[Renewal]) {
    for renewal in renewals {
        state
            .metrics
            .heartbeats
            .renewals
            .with_label_values(&[renewal.name.as_str()])
            .inc();
    }
}

/// One log line per heartbeat that came back (its incident resolved with this renewal).
fn came_back(returned: &[Returned]) {
    for r in returned {
        tracing::info!(heartbeat = %r.name, per_value = %r.per_value, incident_id = r.incident_id,
            "heartbeat came back: its incident resolved");
    }
}

/// A notification that could not be stored: counted, logged, and the error to answer with.
fn failed(state: &State, e: StoreError, receiver: &str, group_key: &str) -> ApiError {
    let e = ApiError::from_store(e, state.retry_after);
    let outcome = if matches!(e, ApiError::Unavailable { .. }) {
        "unavailable"
    } else {
        "error"
    };
    Span::current().record("outcome", outcome);
    state
        .metrics
        .intake
        .notifications
        .with_label_values(&[outcome])
        .inc();
    tracing::warn!(outcome, receiver, group_key, "notification not recorded");
    e
}

/// Content type, size limit, JSON, version and shape, in that order.
async fn parse(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<Notification, ApiError> {
    super::error::require_json(req.headers())?;
    let body = match payload.to_bytes_limited(limit).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Err(ApiError::BadRequest(format!("reading the body failed: {e}"))),
        Err(_) => return Err(ApiError::PayloadTooLarge { limit }),
    };
    let data: alertmanager::Data = serde_json::from_slice(&body).map_err(|e| json_error(&body, e))?;
    Notification::parse(data).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

/// Syntax errors are 400; well-formed JSON that is not a notification is 422, and a payload of
/// another version is named as such rather than by its first unexpected field.
fn json_error(body: &[u8], e: serde_json::Error) -> ApiError {
    if !e.is_data() {
        return ApiError::MalformedJson {
            message: e.to_string(),
            line: e.line(),
            column: e.column(),
        };
    }
    #[derive(Deserialize)]
    struct Version {
        version: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Version>(body)
        .ok()
        .and_then(|v| v.version)
    {
        Some(serde_json::Value::String(v)) if v == alertmanager::SUPPORTED_VERSION => {
            ApiError::Unprocessable(format!("not an Alertmanager notification: {e}"))
        }
        Some(other) => ApiError::Unprocessable(format!(
            "unsupported payload version {other}; medic understands version \"{}\"",
            alertmanager::SUPPORTED_VERSION
        )),
        None => ApiError::Unprocessable(format!("not an Alertmanager notification: {e}")),
    }
}

fn count(state: &State, n: &Notification, recorded: &Recorded) {
    let intake = &state.metrics.intake;
    let outcome = if recorded.duplicate {
        "duplicate"
    } else {
        "recorded"
    };
    intake.notifications.with_label_values(&[outcome]).inc();
    let firing = n.firing_count() as u64;
    intake.alerts.with_label_values(&["firing"]).inc_by(firing);
    intake
        .alerts
        .with_label_values(&["resolved"])
        .inc_by(n.alerts.len() as u64 - firing);
    if recorded.duplicate {
        intake.duplicates.inc();
    }
    if recorded.new_incident {
        intake.incidents_opened.inc();
    }
    if recorded.incident_resolved {
        intake.incidents_resolved.inc();
    }
    let timers = &state.metrics.timers;
    timers.scheduled.inc_by(u64::from(recorded.timers_scheduled));
    timers.cancelled.inc_by(u64::from(recorded.timers_cancelled));
}

fn log(n: &Notification, recorded: &Recorded) {
    tracing::info!(
        outcome = if recorded.duplicate { "duplicate" } else { "recorded" },
        receiver = %n.receiver,
        group_key = %n.group_key,
        status = n.status.as_str(),
        alerts = n.alerts.len(),
        truncated_alerts = n.truncated_alerts,
        incident_id = recorded.incident_id,
        new_incident = recorded.new_incident,
        new_alerts = recorded.new_alerts,
        resolved_alerts = recorded.resolved_alerts,
        incident_resolved = recorded.incident_resolved,
        timers_scheduled = recorded.timers_scheduled,
        timers_cancelled = recorded.timers_cancelled,
        "notification received"
    );
}
