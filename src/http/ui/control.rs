//! People in control: the remediation decisions with the approvals waiting
//! (`/ui/remediations`), and maintenance windows and the pause switch (`/ui/maintenance`).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    layout::{self, csrf},
    see_other,
    session::{viewer, CsrfForm, Viewer},
    ApiError, Failure,
};
use crate::{
    domain::{Mute, Role},
    http::State,
    plan::matchers::Matchers,
    store::{
        console::DecisionQuery,
        control::NewWindow,
        remediations::{Answered, RemediationRecord},
    },
};

const MAX_TEXT: usize = 2000;

/// Remediations as a table; approve and reject on those waiting, for responders.
pub(super) fn remediation_table<'a>(
    viewer: &Viewer,
    records: impl IntoIterator<Item = &'a RemediationRecord>,
    incident: Option<i64>,
) -> Markup {
    let records: Vec<&RemediationRecord> = records.into_iter().collect();
    html! {
        @if records.is_empty() { p.empty { "No remediation." } } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Started" } th scope="col" { "Rule" } th scope="col" { "Step" }
                    th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Result" }
                    th scope="col" { "Verification" } th scope="col" { "Summary" } th scope="col" { "Approval" }
                } }
                tbody { @for r in records { (remediation_row(viewer, r, incident)) } }
            } }
        }
    }
}

fn remediation_row(viewer: &Viewer, r: &RemediationRecord, incident: Option<i64>) -> Markup {
    let waiting = r.result == "awaiting_approval"
        && r.approval
            .as_ref()
            .is_some_and(|a| a.approved.is_none() && a.expires_at.is_none_or(|e| e > Utc::now()));
    html! {
        tr {
            td { (layout::time(&r.started_at)) }
            td { (r.rule) } td { (r.step) } td { (r.action) } td { code { (r.target) } }
            td { (r.result.replace('_', " ")) @if r.dry_run { " (dry run)" } }
            td { (r.verification.replace('_', " ")) }
            td { (r.summary) }
            td {
                @if let Some(approval) = &r.approval {
                    @if let Some(plan) = &approval.plan { details { summary { "Plan" } pre { (plan) } } }
                    @match (approval.approved, &approval.decided_by) {
                        (Some(true), Some(by)) => { "approved by " (by) }
                        (Some(false), Some(by)) => { "rejected by " (by) }
                        _ => {
                            @if waiting && viewer.may(Role::Responder) { (answer_forms(viewer, r.id, incident)) }
                            @else if waiting { "waiting" } @else { "expired" }
                        }
                    }
                }
            }
        }
    }
}

fn answer_forms(viewer: &Viewer, id: i64, incident: Option<i64>) -> Markup {
    html! {
        @for (verb, label) in [("approve", "Approve"), ("reject", "Reject")] {
            form.inline method="post" action=(format!("/ui/remediations/{id}/{verb}")) {
                (csrf(viewer))
                @if let Some(incident) = incident { input type="hidden" name="incident" value=(incident); }
                button type="submit" class=(verb) { (label) }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DecisionFilter {
    #[serde(default)]
    rule: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

/// A `datetime-local` field's value, read as UTC (the page says so).
fn utc(field: &str, value: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M")
        .map(|t| Some(t.and_utc()))
        .map_err(|_| ApiError::BadRequest(format!("{field} {value:?}: a time like 2026-11-30T10:00")))
}

fn some(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// `GET /ui/remediations`: every decision, waiting approvals first.
pub(super) async fn remediations(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    let filter = web::Query::<DecisionFilter>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?
        .into_inner();
    let query = DecisionQuery {
        rule: some(&filter.rule),
        action: some(&filter.action),
        result: some(&filter.result),
        since: utc("since", &filter.since)?,
        until: utc("until", &filter.until)?,
        limit: 200,
    };
    let decisions = state
        .store
        .decisions(&query)
        .await
        .map_err(|e| Failure::store(e, &state))?;
    let body = html! {
        h1 { "Remediations" }
        form.filters method="get" action="/ui/remediations" role="search" {
            label for="rule" { "Rule" } input #rule name="rule" value=(filter.rule);
            label for="action" { "Action" } input #action name="action" value=(filter.action);
            label for="result" { "Result" } input #result name="result" value=(filter.result) placeholder="awaiting_approval";
            label for="since" { "From (UTC)" } input #since type="datetime-local" name="since" value=(filter.since);
            label for="until" { "To (UTC)" } input #until type="datetime-local" name="until" value=(filter.until);
            button type="submit" { "Apply" }
        }
        (remediation_table(&viewer, decisions.iter().map(|d| &d.record), None))
        @if !decisions.is_empty() {
            h2 { "Incidents" }
            p { @for d in &decisions { a href=(format!("/ui/incidents/{}", d.incident_id)) { "#" (d.incident_id) } " " } }
        }
    };
    Ok(layout::page(Some(&viewer), "Remediations", body))
}

#[derive(Deserialize)]
pub(super) struct AnswerForm {
    csrf: Option<String>,
    incident: Option<i64>,
    note: Option<String>,
}

pub(super) async fn approve(
    req: HttpRequest,
    id: web::Path<i64>,
    form: web::Form<AnswerForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    answer(&req, id.into_inner(), true, &form, &state).await
}

pub(super) async fn reject(
    req: HttpRequest,
    id: web::Path<i64>,
    form: web::Form<AnswerForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    answer(&req, id.into_inner(), false, &form, &state).await
}

/// Approves or rejects a request still waiting, as the API does.
async fn answer(
    req: &HttpRequest,
    id: i64,
    approve: bool,
    form: &AnswerForm,
    state: &State,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(req, state).await?;
    viewer.check(form.csrf.as_deref(), Role::Responder)?;
    let note = text(form.note.as_deref())?;
    let answered = state
        .store
        .answer_request(id, approve, &viewer.actor(), note.as_deref())
        .await
        .map_err(|e| Failure::store(e, state))?;
    match answered {
        Answered::Unknown => Err(ApiError::NotFound(format!("no remediation {id}")).into()),
        Answered::NotWaiting(now) => Err(ApiError::Conflict(format!(
            "remediation {id} is not waiting for approval: it is {now}"
        ))
        .into()),
        Answered::Recorded => {
            tracing::info!(remediation_id = id, by = %viewer.person.name, role = %viewer.person.role,
                channel = "console", approved = approve, "remediation request answered");
            Ok(see_other(&form.incident.map_or_else(
                || "/ui/remediations".to_owned(),
                |i| format!("/ui/incidents/{i}"),
            )))
        }
    }
}

/// Free text a person wrote: trimmed, bounded, without NUL.
fn text(value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.len() > MAX_TEXT || value.contains('\0') {
        return Err(ApiError::Unprocessable(format!(
            "text must be under {MAX_TEXT} bytes, without NUL"
        )));
    }
    Ok(Some(value.to_owned()))
}

/// `GET /ui/maintenance`: windows now and later, and the pause switch.
pub(super) async fn maintenance(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    let windows = state
        .store
        .windows()
        .await
        .map_err(|e| Failure::store(e, &state))?;
    let pause = state.store.pause().await.map_err(|e| Failure::store(e, &state))?;
    let body = html! {
        h1 { "Maintenance" }
        h2 { "Remediation pause" }
        @if let Some(pause) = &pause {
            p.paused role="status" { "Paused by " (pause.paused_by) " since " (layout::time(&pause.paused_at)) ": " q { (pause.reason) }
                @if let Some(until) = &pause.until { " until " (layout::time(until)) } }
            @if viewer.may(Role::Admin) {
                form method="post" action="/ui/resume" { (csrf(&viewer)) button type="submit" { "Resume remediation" } }
            }
        } @else {
            p { "Remediation runs." }
            @if viewer.may(Role::Admin) {
                form method="post" action="/ui/pause" {
                    (csrf(&viewer))
                    label for="pause-reason" { "Reason" } input #pause-reason name="reason" required maxlength="2000";
                    button type="submit" class="reject" { "Pause all remediation" }
                }
            }
        }
        h2 { "Windows" }
        @if windows.is_empty() { p.empty { "No maintenance window now or later." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Matchers" } th scope="col" { "From" } th scope="col" { "To" }
                    th scope="col" { "Mutes" } th scope="col" { "Reason" } th scope="col" { "By" } th scope="col" { "" } } }
                tbody { @for w in &windows { tr {
                    td { @for m in &w.matchers { code { (m) } " " } }
                    td { (layout::time(&w.starts_at)) } td { (layout::time(&w.ends_at)) }
                    td { (w.mute.join(", ")) } td { (w.reason) } td { (w.created_by) }
                    td { @if viewer.may(Role::Responder) {
                        form.inline method="post" action=(format!("/ui/maintenance/{}/end", w.id)) {
                            (csrf(&viewer)) button type="submit" { "End now" } }
                    } }
                } } }
            } }
        }
        @if viewer.may(Role::Responder) {
            h2 { "Open a window" }
            form.stack method="post" action="/ui/maintenance" {
                (csrf(&viewer))
                label for="matchers" { "Matchers (one per line, Alertmanager syntax)" }
                textarea #matchers name="matchers" rows="3" required placeholder=r#"namespace="shop""# {}
                label for="hours" { "For how many hours" } input #hours type="number" name="hours" min="1" max="168" value="2" required;
                fieldset { legend { "Mute" }
                    label { input type="checkbox" name="mute_remediation" value="on" checked; " remediation" }
                    label { input type="checkbox" name="mute_pages" value="on" checked; " pages" } }
                label for="reason" { "Reason" } input #reason name="reason" required maxlength="2000";
                button type="submit" { "Open window" }
            }
        }
    };
    Ok(layout::page(Some(&viewer), "Maintenance", body))
}

#[derive(Deserialize)]
pub(super) struct WindowForm {
    csrf: Option<String>,
    #[serde(default)]
    matchers: String,
    hours: Option<i64>,
    mute_remediation: Option<String>,
    mute_pages: Option<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /ui/maintenance`: opens a window from now, checked as the API checks it.
pub(super) async fn create_window(
    req: HttpRequest,
    form: web::Form<WindowForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check(form.csrf.as_deref(), Role::Responder)?;
    let bad = |e: String| Failure::from(ApiError::Unprocessable(e));
    let matchers: Vec<String> = form
        .matchers
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if matchers.is_empty() || matchers.len() > 20 {
        return Err(bad("between 1 and 20 matchers".into()));
    }
    for matcher in &matchers {
        if matcher.len() > MAX_TEXT {
            return Err(bad(format!("a matcher is longer than {MAX_TEXT} bytes")));
        }
        Matchers::parse(&[matcher]).map_err(|e| bad(format!("matcher {matcher:?}: {e}")))?;
    }
    let reason = text(Some(&form.reason))?.ok_or_else(|| bad("a window needs a reason".into()))?;
    let hours = form
        .hours
        .filter(|h| (1..=168).contains(h))
        .ok_or_else(|| bad("between 1 and 168 hours".into()))?;
    let mut mute = Vec::new();
    if form.mute_remediation.is_some() {
        mute.push(Mute::Remediation.as_str());
    }
    if form.mute_pages.is_some() {
        mute.push(Mute::Pages.as_str());
    }
    if mute.is_empty() {
        return Err(bad("mute at least one of remediation, pages".into()));
    }
    let now = Utc::now();
    let window = NewWindow {
        matchers: &matchers,
        starts_at: now,
        ends_at: now + chrono::Duration::hours(hours),
        mute: &mute,
        reason: &reason,
    };
    let created = state
        .store
        .create_window(&window, &viewer.actor())
        .await
        .map_err(|e| Failure::store(e, &state))?;
    state
        .control
        .refresh(&state.store, &state.metrics.remediation)
        .await;
    tracing::info!(window_id = created.id, by = %viewer.person.name, channel = "console", "maintenance window opened");
    Ok(see_other("/ui/maintenance"))
}

/// `POST /ui/maintenance/{id}/end`.
pub(super) async fn end_window(
    req: HttpRequest,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check(form.csrf.as_deref(), Role::Responder)?;
    let id = id.into_inner();
    let ended = state
        .store
        .end_window(id, &viewer.actor())
        .await
        .map_err(|e| Failure::store(e, &state))?;
    if ended.is_none() {
        return Err(ApiError::NotFound(format!("no current or future maintenance window {id}")).into());
    }
    state
        .control
        .refresh(&state.store, &state.metrics.remediation)
        .await;
    tracing::info!(window_id = id, by = %viewer.person.name, channel = "console", "maintenance window ended");
    Ok(see_other("/ui/maintenance"))
}

#[derive(Deserialize)]
pub(super) struct PauseForm {
    csrf: Option<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /ui/pause` (admin).
pub(super) async fn set_pause(
    req: HttpRequest,
    form: web::Form<PauseForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check(form.csrf.as_deref(), Role::Admin)?;
    let reason =
        text(Some(&form.reason))?.ok_or_else(|| ApiError::Unprocessable("a pause needs a reason".into()))?;
    state
        .store
        .set_pause(&reason, None, &viewer.actor())
        .await
        .map_err(|e| Failure::store(e, &state))?;
    state.metrics.remediation.paused.set(1);
    tracing::warn!(by = %viewer.person.name, reason = %reason, channel = "console", "remediation paused");
    Ok(see_other("/ui/maintenance"))
}

/// `POST /ui/resume` (admin).
pub(super) async fn clear_pause(
    req: HttpRequest,
    form: web::Form<CsrfForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check(form.csrf.as_deref(), Role::Admin)?;
    state
        .store
        .clear_pause(&viewer.actor())
        .await
        .map_err(|e| Failure::store(e, &state))?;
    state.metrics.remediation.paused.set(0);
    tracing::warn!(by = %viewer.person.name, channel = "console", "remediation resumed");
    Ok(see_other("/ui/maintenance"))
}
