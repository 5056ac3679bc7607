//! People in control: requests for approval (`GET /api/v1/remediations`, `POST
//! /api/v1/remediations/{id}/approve` and `/reject`), maintenance windows
//! (`/api/v1/maintenance`) and the remediation pause (`/api/v1/remediation/pause`). Every
//! change is recorded with who made it, with which role, from where.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{auth::Caller, ApiError, Person, State};
use crate::{
    domain::{Mute, RemediationResult},
    plan::matchers::Matchers,
    store::{audit::Actor, control::NewWindow, remediations::Answered},
};

const MAX_TEXT: usize = 2000;
const MAX_MATCHERS: usize = 20;
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

fn person(caller: Caller, doing: &str) -> Result<Person, ApiError> {
    match caller {
        Caller::Person(person) => Ok(person),
        Caller::Alertmanager => Err(ApiError::Forbidden(format!("only a person may {doing}"))),
    }
}

fn actor(person: &Person) -> Actor<'_> {
    Actor {
        name: &person.name,
        role: person.role,
        via: person.via,
        address: &person.address,
        channel: "api",
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("expected {shape}: {e}")))
}

/// A free text a person wrote: trimmed, bounded, without NUL.
fn text(name: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.len() > MAX_TEXT {
        return Err(ApiError::Unprocessable(format!(
            "{name:?} is longer than {MAX_TEXT} bytes"
        )));
    }
    if value.contains('\0') {
        return Err(ApiError::Unprocessable("NUL characters are not accepted".into()));
    }
    Ok(Some(value.to_owned()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemediationsQuery {
    state: Option<String>,
    limit: Option<i64>,
}

/// Requests for approval and what became of them, newest first; `state` keeps one result
/// (`awaiting_approval`: those waiting for a person).
pub async fn requests(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<RemediationsQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?
        .into_inner();
    if let Some(word) = &query.state {
        if RemediationResult::parse(word).is_none() {
            return Err(ApiError::BadRequest(format!(
                "state {word:?}: a remediation result, e.g. awaiting_approval"
            )));
        }
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let requests = state
        .store
        .approval_requests(query.state.as_deref(), limit)
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    Ok(HttpResponse::Ok().json(json!({ "remediations": requests })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    note: Option<String>,
}

pub async fn approve(
    id: web::Path<i64>,
    caller: web::ReqData<Caller>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    answer(id.into_inner(), true, caller.into_inner(), &body, &state).await
}

pub async fn reject(
    id: web::Path<i64>,
    caller: web::ReqData<Caller>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    answer(id.into_inner(), false, caller.into_inner(), &body, &state).await
}

/// Approves or rejects a request still waiting; the step then runs through its guard rails
/// again (or is recorded as rejected) at once. Deciding twice, or too late, is 409.
async fn answer(
    id: i64,
    approve: bool,
    caller: Caller,
    body: &[u8],
    state: &State,
) -> Result<HttpResponse, ApiError> {
    let verb = if approve { "approve" } else { "reject" };
    let person = person(caller, verb)?;
    let request: Answer = json_body(body, "{\"note\": \"...\"}")?;
    let note = text("note", request.note.as_deref())?;
    let answered = state
        .store
        .answer_request(id, approve, &actor(&person), note.as_deref())
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    match answered {
        Answered::Unknown => Err(ApiError::NotFound(format!("no remediation {id}"))),
        Answered::NotWaiting(now) => Err(ApiError::Conflict(format!(
            "remediation {id} is not waiting for approval: it is {now}"
        ))),
        Answered::Recorded => {
            tracing::info!(remediation_id = id, by = %person.name, role = %person.role, via = person.via,
                address = %person.address, approved = approve, "remediation request answered");
            let decision = if approve { "approved" } else { "rejected" };
            Ok(HttpResponse::Ok().json(json!({
                "id": id, "decision": decision, "decided_by": person.name, "note": note,
            })))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowRequest {
    matchers: Vec<String>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: DateTime<Utc>,
    #[serde(default = "mute_everything")]
    mute: Vec<String>,
    reason: String,
}

fn mute_everything() -> Vec<String> {
    Mute::ALL.iter().map(|m| m.as_str().to_owned()).collect()
}

/// Opens a maintenance window: 201 with it. It needs at least one matcher (Alertmanager
/// syntax) and a reason; `starts_at` defaults to now and `mute` to everything.
pub async fn create_window(
    caller: web::ReqData<Caller>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let person = person(caller.into_inner(), "open a maintenance window")?;
    let shape = r#"{"matchers": ["namespace=\"shop\""], "starts_at": "...", "ends_at": "...", "mute": ["remediation", "pages"], "reason": "..."}"#;
    let request: WindowRequest = json_body(&body, shape)?;
    let bad = |e: String| ApiError::Unprocessable(e);
    if request.matchers.is_empty() {
        return Err(bad("a window needs at least one matcher".into()));
    }
    if request.matchers.len() > MAX_MATCHERS {
        return Err(bad(format!("at most {MAX_MATCHERS} matchers")));
    }
    for matcher in &request.matchers {
        if matcher.len() > MAX_TEXT {
            return Err(bad(format!("a matcher is longer than {MAX_TEXT} bytes")));
        }
        Matchers::parse(&[matcher]).map_err(|e| bad(format!("matcher {matcher:?}: {e}")))?;
    }
    let reason =
        text("reason", Some(&request.reason))?.ok_or_else(|| bad("a window needs a reason".into()))?;
    let mut mute = Vec::new();
    for word in &request.mute {
        let what = Mute::parse(word).ok_or_else(|| bad(format!("mute {word:?}: remediation or pages")))?;
        if !mute.contains(&what.as_str()) {
            mute.push(what.as_str());
        }
    }
    if mute.is_empty() {
        return Err(bad("mute at least one of remediation, pages".into()));
    }
    let now = Utc::now();
    let starts_at = request.starts_at.unwrap_or(now);
    if request.ends_at <= starts_at || request.ends_at <= now {
        return Err(bad("ends_at must be after starts_at and in the future".into()));
    }
    let window = NewWindow {
        matchers: &request.matchers,
        starts_at,
        ends_at: request.ends_at,
        mute: &mute,
        reason: &reason,
    };
    let created = state
        .store
        .create_window(&window, &actor(&person))
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    state
        .control
        .refresh(&state.store, &state.metrics.remediation)
        .await;
    tracing::info!(window_id = created.id, by = %person.name, matchers = ?created.matchers, mute = ?created.mute,
        starts_at = %created.starts_at, ends_at = %created.ends_at, reason = %created.reason, "maintenance window opened");
    Ok(HttpResponse::Created().json(created))
}

/// Windows in force now or later.
pub async fn windows(state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let windows = state
        .store
        .windows()
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    Ok(HttpResponse::Ok().json(json!({ "windows": windows })))
}

/// Ends a window now; what it held resumes within seconds.
pub async fn end_window(
    id: web::Path<i64>,
    caller: web::ReqData<Caller>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let person = person(caller.into_inner(), "end a maintenance window")?;
    let ended = state
        .store
        .end_window(id, &actor(&person))
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    let Some(window) = ended else {
        return Err(ApiError::NotFound(format!(
            "no current or future maintenance window {id}"
        )));
    };
    state
        .control
        .refresh(&state.store, &state.metrics.remediation)
        .await;
    tracing::info!(window_id = id, by = %person.name, "maintenance window ended");
    Ok(HttpResponse::Ok().json(window))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseRequest {
    reason: String,
    until: Option<DateTime<Utc>>,
}

/// Whether remediation is paused, by whom, why and until when.
pub async fn pause(state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let pause = state
        .store
        .pause()
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    Ok(HttpResponse::Ok().json(pause_body(pause.as_ref())))
}

fn pause_body(pause: Option<&crate::store::control::Pause>) -> serde_json::Value {
    match pause {
        Some(pause) => {
            let mut body = serde_json::to_value(pause).unwrap_or_default();
            body["paused"] = json!(true);
            body
        }
        None => json!({"paused": false}),
    }
}

/// Pauses every remediation in every replica (`skipped_paused`) until resumed or `until`.
pub async fn set_pause(
    caller: web::ReqData<Caller>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let person = person(caller.into_inner(), "pause remediation")?;
    let request: PauseRequest = json_body(&body, r#"{"reason": "...", "until": "..."}"#)?;
    let reason = text("reason", Some(&request.reason))?
        .ok_or_else(|| ApiError::Unprocessable("a pause needs a reason".into()))?;
    if request.until.is_some_and(|until| until <= Utc::now()) {
        return Err(ApiError::Unprocessable("until must be in the future".into()));
    }
    let pause = state
        .store
        .set_pause(&reason, request.until, &actor(&person))
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    state.metrics.remediation.paused.set(1);
    tracing::warn!(by = %person.name, reason = %reason, until = ?request.until, "remediation paused");
    Ok(HttpResponse::Ok().json(pause_body(Some(&pause))))
}

/// Resumes remediation.
pub async fn clear_pause(
    caller: web::ReqData<Caller>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let person = person(caller.into_inner(), "resume remediation")?;
    let was = state
        .store
        .clear_pause(&actor(&person))
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    state.metrics.remediation.paused.set(0);
    tracing::warn!(by = %person.name, was_paused = was, "remediation resumed");
    Ok(HttpResponse::Ok().json(json!({"paused": false, "was_paused": was})))
}
