//! `POST /webhook`: parse, check and store one Alertmanager notification with the timers its
//! rules ask for. Nothing else happens on the request path; a 200 means both are committed.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, State};
use crate::{alertmanager, domain::Notification, store::incidents::Recorded};

/// Receives a notification; answers 200 only after it is committed.
pub async fn receive(
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
            tracing::warn!(outcome = "rejected", reason = %e, "notification rejected");
            return Err(e);
        }
    };
    let notification = Arc::new(notification);
    let timers = state.rules.plan(&notification);
    match state.recorder.record(notification.clone(), timers).await {
        Ok(recorded) => {
            count(&state, &notification, &recorded);
            log(&notification, &recorded);
            Ok(HttpResponse::Ok().json(json!({
                "incident_id": recorded.incident_id,
                "duplicate": recorded.duplicate,
            })))
        }
        Err(e) => {
            let e = ApiError::from_store(e, state.retry_after);
            let outcome = if matches!(e, ApiError::Unavailable { .. }) {
                "unavailable"
            } else {
                "error"
            };
            state
                .metrics
                .intake
                .notifications
                .with_label_values(&[outcome])
                .inc();
            tracing::warn!(
                outcome,
                receiver = %notification.receiver,
                group_key = %notification.group_key,
                alerts = notification.alerts.len(),
                "notification not recorded"
            );
            Err(e)
        }
    }
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
