//! `GET /api/v1/incidents`, `GET /api/v1/incidents/{id}` (with its timeline), its cluster
//! context (`GET /api/v1/incidents/{id}/context`) and `POST /api/v1/incidents/{id}/ack`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    auth::Caller,
    control::{person, text},
    error::ApiError,
    state::State,
};
use crate::{
    alertmanager::Status,
    domain::HumanDuration,
    plan::matchers::{Matchers, Op},
    store::{
        incidents::{Incident, LabelFilter, LabelTest, Page, MAX_FILTERS},
        StoreError,
    },
};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// Bytes a regex of a `filter` may have (as a maintenance window's matcher): Postgres compiles
/// each one, and its cost grows with its length.
const MAX_REGEX_BYTES: usize = 1000;

/// Query string of the list endpoint; `filter` may repeat.
#[derive(Debug, Default)]
struct ListQuery {
    status: Option<Status>,
    /// Cursor: the `next_before` of the previous page.
    before: Option<i64>,
    limit: Option<i64>,
    filters: Vec<LabelFilter>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    acknowledged: Option<bool>,
}

impl ListQuery {
    /// Every parameter checked; the first problem is the 400's reason.
    fn parse(query: &str) -> Result<ListQuery, ApiError> {
        let bad = |e: String| ApiError::BadRequest(e);
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query).map_err(|e| bad(e.to_string()))?;
        let mut parsed = ListQuery::default();
        for (key, value) in pairs.into_inner() {
            match key.as_str() {
                "status" => {
                    let status = serde_json::from_value(Value::String(value.clone()));
                    parsed.status =
                        Some(status.map_err(|_| bad(format!("status {value:?}: firing or resolved")))?);
                }
                "before" => {
                    parsed.before = Some(
                        value
                            .parse()
                            .map_err(|_| bad(format!("before {value:?}: an id")))?,
                    )
                }
                "limit" => {
                    parsed.limit = Some(
                        value
                            .parse()
                            .map_err(|_| bad(format!("limit {value:?}: a number")))?,
                    )
                }
                "since" | "until" => {
                    let at = DateTime::parse_from_rfc3339(&value)
                        .map_err(|e| bad(format!("{key} {value:?}: not an RFC 3339 time: {e}")))?
                        .with_timezone(&Utc);
                    *(if key == "since" {
                        &mut parsed.since
                    } else {
                        &mut parsed.until
                    }) = Some(at);
                }
                "filter" => parsed.filters.extend(filters(&value)?),
                "acknowledged" => {
                    parsed.acknowledged = Some(
                        value
                            .parse()
                            .map_err(|_| bad(format!("acknowledged {value:?}: true or false")))?,
                    )
                }
                other => return Err(bad(format!("unknown query parameter {other:?}"))),
            }
        }
        if parsed.filters.len() > MAX_FILTERS {
            return Err(bad(format!("at most {MAX_FILTERS} matchers in all filters")));
        }
        Ok(parsed)
    }
}

/// One `filter`: Alertmanager matchers (`alertname="X"`, `!=`, `=~`, `!~`), as its API takes them;
/// at most [`MAX_FILTERS`] of them, regexes at most [`MAX_REGEX_BYTES`] long.
pub(super) fn filters(text: &str) -> Result<Vec<LabelFilter>, ApiError> {
    let bad = |e: String| ApiError::BadRequest(format!("filter: {e}"));
    let matchers = Matchers::parse(&[text]).map_err(|e| bad(e.to_string()))?;
    if matchers.iter().count() > MAX_FILTERS {
        return Err(bad(format!("at most {MAX_FILTERS} matchers")));
    }
    matchers
        .iter()
        .map(|m| {
            let value = m.value().to_owned();
            let regex = matches!(m.op(), Op::Regex | Op::NotRegex);
            if regex && value.len() > MAX_REGEX_BYTES {
                return Err(bad(format!(
                    "the regex of {:?} is longer than {MAX_REGEX_BYTES} bytes",
                    m.name()
                )));
            }
            let test = match m.op() {
                Op::Equal => LabelTest::Equal(value),
                Op::NotEqual => LabelTest::NotEqual(value),
                Op::Regex => LabelTest::Regex(value),
                Op::NotRegex => LabelTest::NotRegex(value),
            };
            Ok(LabelFilter {
                label: m.name().to_owned(),
                test,
            })
        })
        .collect()
}

/// A search that failed: one cancelled at its deadline says which filter made it too
/// expensive (the regexes, when there are any: they are what cannot use the index).
pub(super) fn search_failed(e: StoreError, filters: &[LabelFilter], retry_after: u64) -> ApiError {
    if !matches!(e, StoreError::TooExpensive) || filters.is_empty() {
        return ApiError::from_store(e, retry_after);
    }
    let regexes: Vec<&LabelFilter> = filters
        .iter()
        .filter(|f| matches!(f.test, LabelTest::Regex(_) | LabelTest::NotRegex(_)))
        .collect();
    let blamed: Vec<String> = if regexes.is_empty() {
        filters.iter().map(matcher_text).collect()
    } else {
        regexes.into_iter().map(matcher_text).collect()
    };
    ApiError::TooExpensive(format!(
        "the label search was too expensive: {} ran past the deadline for reads and was cancelled; \
         narrow it with an equality (e.g. alertname=\"...\") or a shorter time range",
        blamed.join(", ")
    ))
}

/// A filter as its matcher is written.
fn matcher_text(filter: &LabelFilter) -> String {
    let (op, value) = match &filter.test {
        LabelTest::Equal(v) => ("=", v),
        LabelTest::NotEqual(v) => ("!=", v),
        LabelTest::Regex(v) => ("=~", v),
        LabelTest::NotRegex(v) => ("!~", v),
    };
    format!("{}{op}{value:?}", filter.label)
}

/// Incidents newest first, `limit` at a time; `next_before` is the cursor for the next page.
/// `filter` (repeatable) keeps incidents one of whose alerts passes them all; `since` and
/// `until` bound when they opened; `acknowledged=true|false` keeps those someone took, or not.
pub async fn list(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let query = ListQuery::parse(req.query_string())?;
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
        filters: query.filters,
        since: query.since,
        until: query.until,
        acknowledged: query.acknowledged,
    };
    let filters = page.filters.clone();
    let incidents = state
        .reads
        .list_incidents(page)
        .await
        .map_err(|e| search_failed(e, &filters, state.retry_after))?;
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
        .reads
        .incident(id)
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?
    {
        Some(incident) => {
            let timeline = timeline(&incident);
            let mut body = serde_json::to_value(&incident).map_err(|e| ApiError::Internal(e.into()))?;
            body["timeline"] = json!(timeline);
            Ok(HttpResponse::Ok().json(body))
        }
        None => Err(ApiError::NotFound(format!("no incident {id}"))),
    }
}

/// What happened to an incident, in order: opened, each message attempt, cancelled and
/// pending timers, remediations, what people did (who, with which role, from where), the
/// cluster context gathered, the resolution.
pub(super) fn timeline(incident: &Incident) -> Vec<Value> {
    let mut events = vec![(incident.created_at, json!({"event": "opened"}))];
    // The context timer's own attempt says nothing a person needs: `context_gathered` does.
    for timer in incident.timers.iter().flatten().filter(|t| t.kind != "context") {
        let about =
            json!({"kind": timer.kind, "rule": timer.rule, "step": timer.step, "notifier": timer.notifier});
        for attempt in &timer.attempts {
            let mut event = about.clone();
            event["event"] = json!(format!("message_{}", attempt.result));
            event["attempt"] = json!(attempt.attempt);
            event["repeat"] = json!(attempt.occurrence);
            event["status_code"] = json!(attempt.status_code);
            event["error"] = json!(attempt.error);
            events.push((attempt.finished_at, event));
        }
        let (at, name) = match (timer.state.as_str(), timer.next_attempt_at) {
            ("cancelled", _) => (timer.updated_at, "timer_cancelled"),
            ("pending", Some(at)) => (at, "timer_pending"),
            _ => continue,
        };
        let mut event = about;
        event["event"] = json!(name);
        events.push((at, event));
    }
    for r in incident.remediations.iter().flatten() {
        let mut event = json!({"event": "remediation", "rule": r.rule, "step": r.step, "action": r.action,
                           "target": r.target, "result": r.result, "dry_run": r.dry_run, "summary": r.summary,
                           "verification": r.verification});
        if let Some(at) = r.relapsed_at {
            event["held_from"] = json!(r.held_from);
            event["relapsed_at"] = json!(at);
        }
        if r.mode != "act" {
            event["mode"] = json!(r.mode);
        }
        if let Some(evidence) = &r.evidence {
            event["evidence"] = json!(evidence.summary);
        }
        events.push((r.finished_at.unwrap_or(r.started_at), event));
    }
    for done in incident.audit.iter().flatten() {
        let event = match done.action.as_str() {
            "acknowledge" => "acknowledged",
            "approve" => "approved",
            "reject" => "rejected",
            other => other,
        };
        let mut event = json!({"event": event, "by": done.actor, "role": done.role, "via": done.channel,
                               "auth": done.via, "from": done.address, "note": done.detail["note"]});
        if let Some(silence) = done.detail.get("silence_id") {
            event["silence_id"] = silence.clone();
        }
        if let Some(issuer) = &done.issuer {
            event["issuer"] = json!(issuer);
        }
        events.push((done.at, event));
    }
    if let Some(mark) = &incident.context {
        let event = json!({"event": "context_gathered", "complete": mark.complete, "errors": mark.errors});
        events.push((mark.gathered_at, event));
    }
    if let Some(at) = incident.resolved_at {
        events.push((at, json!({"event": "resolved"})));
    }
    events.sort_by_key(|(at, _)| *at);
    events
        .into_iter()
        .map(|(at, mut event)| {
            event["at"] = json!(at);
            event
        })
        .collect()
}

/// The incident's cluster context (`GET /api/v1/incidents/{id}/context`): 404 when the
/// incident does not exist or nothing was gathered (yet).
pub async fn context(id: web::Path<i64>, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let context = state
        .store
        .incident_context(id)
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    match context {
        Some(context) => Ok(HttpResponse::Ok().json(context)),
        None => Err(ApiError::NotFound(format!(
            "no cluster context for incident {id}"
        ))),
    }
}

/// Body of `POST /api/v1/incidents/{id}/ack`: who acknowledges is the authenticated caller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Accepted when it names the caller (older clients send it), refused otherwise.
    by: Option<String>,
    note: Option<String>,
}

/// Acknowledges a firing incident: pending escalations stop, and everyone told of the incident
/// (PagerDuty included) hears who took it. Acknowledging again changes nothing.
pub async fn acknowledge(
    id: web::Path<i64>,
    caller: web::ReqData<Caller>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let person = person(caller.into_inner(), "acknowledge")?;
    let request: AckRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("expected {{\"note\": \"...\"}}: {e}")))?;
    if let Some(by) = request.by.as_deref().map(str::trim) {
        if by != person.name {
            return Err(ApiError::Unprocessable(format!(
                "\"by\" is {by:?}, but the caller is {:?}: one acknowledges as oneself",
                person.name
            )));
        }
    }
    let note = text("note", request.note.as_deref())?;
    let done = state
        .acts
        .acknowledge(&person, id, note)
        .await
        .map_err(|e| ApiError::from_act(e, state.retry_after))?;
    Ok(HttpResponse::Ok().json(json!({
        "incident_id": id,
        "acknowledged": done.ack,
        "already_acknowledged": !done.newly,
        "timers_cancelled": done.timers_cancelled,
    })))
}

/// Body of `POST /api/v1/incidents/{id}/silence`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceRequest {
    duration: String,
    note: Option<String>,
}

/// Silences the incident's alerts in Alertmanager for `duration`: 201 with the silence, or 200
/// with the silence medic already holds for it, extended to the later end.
pub async fn silence(
    id: web::Path<i64>,
    caller: web::ReqData<Caller>,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let person = person(caller.into_inner(), "silence")?;
    let request: SilenceRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"duration\": \"1h\", \"note\": \"...\"}}: {e}"
        ))
    })?;
    let duration = HumanDuration::parse(&request.duration).map_err(ApiError::Unprocessable)?;
    let note = text("note", request.note.as_deref())?;
    let done = state
        .acts
        .silence(&person, id, duration.0, note)
        .await
        .map_err(|e| ApiError::from_act(e, state.retry_after))?;
    let mut answer = if done.extended {
        HttpResponse::Ok()
    } else {
        HttpResponse::Created()
    };
    Ok(answer.json(json!({"incident_id": id, "silence": done.record, "extended": done.extended})))
}

/// Expires the incident's silence in force.
pub async fn unsilence(
    id: web::Path<i64>,
    caller: web::ReqData<Caller>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let person = person(caller.into_inner(), "expire a silence")?;
    let record = state
        .acts
        .end_silence(&person, id)
        .await
        .map_err(|e| ApiError::from_act(e, state.retry_after))?;
    Ok(HttpResponse::Ok().json(json!({"incident_id": id, "silence": record})))
}
