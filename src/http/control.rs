//! People in control: requests for approval (`GET /api/v1/remediations`, `POST
//! /api/v1/remediations/{id}/approve` and `/reject`), maintenance windows
//! (`/api/v1/maintenance`) and the remediation pause (`/api/v1/remediation/pause`). Every
//! change is recorded with who made it, with which role, from where.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{auth::Caller, error::ApiError, state::State};
use crate::{
    acts::WindowRequest,
    domain::{Actor, Mute, RemediationResult, Text},
};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

/// The person calling; Alertmanager's credential never reaches these routes (their `Need`
/// refuses it), but a handler does not rely on that alone.
pub(super) fn person(caller: Caller, doing: &str) -> Result<Actor, ApiError> {
    match caller {
        Caller::Person(person) => Ok(person),
        Caller::Alertmanager => Err(ApiError::Forbidden(format!("only a person may {doing}"))),
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

/// Free text a person wrote, as the acts take it.
pub(super) fn text(name: &str, value: Option<&str>) -> Result<Option<Text>, ApiError> {
    Text::parse(name, value).map_err(ApiError::Unprocessable)
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
        .reads
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
    let said = note.as_ref().map(|n| n.as_ref().to_owned());
    state
        .acts
        .decide(&person, id, approve, note)
        .await
        .map_err(|e| ApiError::from_act(e, state.retry_after))?;
    let decision = if approve { "approved" } else { "rejected" };
    Ok(HttpResponse::Ok().json(json!({
        "id": id, "decision": decision, "decided_by": person.name, "note": said,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowBody {
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
/// syntax) and a reason; `starts_at` defaults to now and `mute` to everything. The limits are
/// the acts' (`maintenance:` in the settings).
pub async fn create_window(
    caller: web::ReqData<Caller>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let person = person(caller.into_inner(), "open a maintenance window")?;
    let shape = r#"{"matchers": ["namespace=\"shop\""], "starts_at": "...", "ends_at": "...", "mute": ["remediation", "pages"], "reason": "..."}"#;
    let request: WindowBody = json_body(&body, shape)?;
    let mut mute = Vec::new();
    for word in &request.mute {
        let what = Mute::parse(word)
            .ok_or_else(|| ApiError::Unprocessable(format!("mute {word:?}: remediation or pages")))?;
        mute.push(what);
    }
    let window = WindowRequest {
        matchers: request.matchers,
        starts_at: request.starts_at,
        ends_at: request.ends_at,
        mute,
        reason: Text::required("reason", &request.reason).map_err(ApiError::Unprocessable)?,
    };
    let created = state
        .acts
        .open_window(&person, window)
        .await
        .map_err(|e| ApiError::from_act(e, state.retry_after))?;
    Ok(HttpResponse::Created().json(created))
}

/// Windows in force now or later.
pub async fn windows(state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let windows = state
        .reads
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
    let person = person(caller.into_inner(), "end a maintenance window")?;
    let window = state
        .acts
        .end_window(&person, id.into_inner())
        .await
        .map_err(|e| ApiError::from_act(e, state.retry_after))?;
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
        .reads
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
    let reason = Text::required("reason", &request.reason)
        .map_err(|_| ApiError::Unprocessable("a pause needs a reason".into()))?;
    let pause = state
        .acts
        .pause(&person, reason, request.until)
        .await
        .map_err(|e| ApiError::from_act(e, state.retry_after))?;
    Ok(HttpResponse::Ok().json(pause_body(Some(&pause))))
}

/// Resumes remediation.
pub async fn clear_pause(
    caller: web::ReqData<Caller>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let person = person(caller.into_inner(), "resume remediation")?;
    let was = state
        .acts
        .resume(&person)
        .await
        .map_err(|e| ApiError::from_act(e, state.retry_after))?;
    Ok(HttpResponse::Ok().json(json!({"paused": false, "was_paused": was})))
}
