//! People in control: the remediation decisions with the approvals waiting
//! (`/ui/remediations`), and maintenance windows and the pause switch (`/ui/maintenance`).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    failure::Failure,
    layout::{self, csrf, see_other},
    session::{viewer, CsrfForm},
    viewer::Viewer,
};
use crate::{
    acts::WindowRequest,
    domain::{Mute, Role, Text},
    http::{error::ApiError, state::State},
    store::{console::DecisionQuery, remediations::RemediationRecord},
};

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
        .reads
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

/// Approves or rejects a request still waiting: the same act as the API's.
async fn answer(
    req: &HttpRequest,
    id: i64,
    approve: bool,
    form: &AnswerForm,
    state: &State,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(req, state).await?;
    viewer.check_csrf(form.csrf.as_deref())?;
    let note = Text::parse("note", form.note.as_deref()).map_err(ApiError::Unprocessable)?;
    state
        .acts
        .decide(&viewer.person, id, approve, note)
        .await
        .map_err(|e| Failure::act(e, state))?;
    Ok(see_other(&form.incident.map_or_else(
        || "/ui/remediations".to_owned(),
        |i| format!("/ui/incidents/{i}"),
    )))
}

/// `GET /ui/maintenance`: windows now and later, and the pause switch.
pub(super) async fn maintenance(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    let windows = state
        .reads
        .windows()
        .await
        .map_err(|e| Failure::store(e, &state))?;
    let pause = state.reads.pause().await.map_err(|e| Failure::store(e, &state))?;
    let longest = state.acts.window_limits().longest_for(&viewer.person).as_secs() / 3600;
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
                label for="hours" { "For how many hours (at most " (longest) ")" } input #hours type="number" name="hours" min="1" max=(longest) value="2" required;
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

/// `POST /ui/maintenance`: opens a window from now, through the same act (and limits) as
/// the API's.
pub(super) async fn create_window(
    req: HttpRequest,
    form: web::Form<WindowForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check_csrf(form.csrf.as_deref())?;
    let bad = |e: String| Failure::from(ApiError::Unprocessable(e));
    let matchers: Vec<String> = form
        .matchers
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let hours = form
        .hours
        .filter(|h| *h >= 1)
        .ok_or_else(|| bad("a window lasts at least an hour".into()))?;
    let mut mute = Vec::new();
    if form.mute_remediation.is_some() {
        mute.push(Mute::Remediation);
    }
    if form.mute_pages.is_some() {
        mute.push(Mute::Pages);
    }
    let now = Utc::now();
    let window = WindowRequest {
        matchers,
        starts_at: Some(now),
        ends_at: now + chrono::Duration::hours(hours.min(24 * 366)),
        mute,
        reason: Text::required("reason", &form.reason).map_err(bad)?,
    };
    state
        .acts
        .open_window(&viewer.person, window)
        .await
        .map_err(|e| Failure::act(e, &state))?;
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
    viewer.check_csrf(form.csrf.as_deref())?;
    state
        .acts
        .end_window(&viewer.person, id.into_inner())
        .await
        .map_err(|e| Failure::act(e, &state))?;
    Ok(see_other("/ui/maintenance"))
}

#[derive(Deserialize)]
pub(super) struct PauseForm {
    csrf: Option<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /ui/pause`.
pub(super) async fn set_pause(
    req: HttpRequest,
    form: web::Form<PauseForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check_csrf(form.csrf.as_deref())?;
    let reason = Text::required("reason", &form.reason)
        .map_err(|_| ApiError::Unprocessable("a pause needs a reason".into()))?;
    state
        .acts
        .pause(&viewer.person, reason, None)
        .await
        .map_err(|e| Failure::act(e, &state))?;
    Ok(see_other("/ui/maintenance"))
}

/// `POST /ui/resume`.
pub(super) async fn clear_pause(
    req: HttpRequest,
    form: web::Form<CsrfForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check_csrf(form.csrf.as_deref())?;
    state
        .acts
        .resume(&viewer.person)
        .await
        .map_err(|e| Failure::act(e, &state))?;
    Ok(see_other("/ui/maintenance"))
}
