//! Rules earning their autonomy: `GET /api/v1/rules/effectiveness?window=30d` (what each
//! step did and came to) and `POST /api/v1/rules/{rule}/steps/{step}/promote` (an admin
//! lifts a demotion).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{
    auth::Caller,
    control::{person, text},
    error::ApiError,
    state::State,
};
use crate::domain::HumanDuration;

/// The window when `window` is not given.
const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 86_400);
/// The longest window: remediations older than a year are pruned anyway.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectivenessQuery {
    /// `30d`, `24h`; 30 days when absent.
    window: Option<String>,
}

/// The window asked for: 400 when it does not read as a duration or is out of bounds.
fn window(query: &EffectivenessQuery) -> Result<Duration, ApiError> {
    let Some(text) = &query.window else {
        return Ok(DEFAULT_WINDOW);
    };
    let window = HumanDuration::parse(text)
        .map_err(|e| ApiError::BadRequest(format!("window {text:?}: {e}")))?
        .0;
    if window.is_zero() || window > MAX_WINDOW {
        return Err(ApiError::BadRequest(format!(
            "window {text:?}: must be between 1s and 366d"
        )));
    }
    Ok(window)
}

/// `{"rules": [...]}`: each rule step's record over the window.
pub async fn effectiveness(
    state: web::Data<State>,
    query: web::Query<EffectivenessQuery>,
) -> Result<HttpResponse, ApiError> {
    let window = window(&query)?;
    let ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let rules = state
        .store
        .effectiveness(ms)
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    Ok(HttpResponse::Ok().json(json!({"window": HumanDuration(window).to_string(), "rules": rules})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteRequest {
    note: Option<String>,
}

/// Lifts a step's demotion: 200 with what was lifted, 409 when it is not demoted.
pub async fn promote(
    path: web::Path<(String, i32)>,
    caller: web::ReqData<Caller>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let (rule, step) = path.into_inner();
    let person = person(caller.into_inner(), "promote")?;
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    let request: PromoteRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("expected {{\"note\": \"...\"}}: {e}")))?;
    let note = text("note", request.note.as_deref())?;
    let lifted = state
        .acts
        .promote(&person, &rule, step, note)
        .await
        .map_err(|e| ApiError::from_act(e, state.retry_after))?;
    Ok(HttpResponse::Ok().json(json!({
        "rule": rule, "step": step, "promoted_by": person.name, "lifted": lifted.reason,
    })))
}
