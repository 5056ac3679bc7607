//! The incidents (`/ui/`, with the fragment `/ui/incidents` it refreshes itself from) and one
//! incident (`/ui/incidents/{id}`) with its cluster context, alerts, timeline and the buttons
//! people act with.

use std::{collections::HashMap, time::Duration};

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::{
    failure::Failure,
    layout::{self, csrf, see_other},
    session::viewer,
    viewer::Viewer,
};
use crate::{
    alertmanager::Status,
    domain::{ClusterContext, Role, Text},
    http::{
        error::ApiError,
        incidents::{filters, search_failed, timeline},
        state::State,
    },
    store::{
        console::RemediationState,
        incidents::{Incident, Page},
    },
};

const PAGE_SIZE: i64 = 50;
/// How often the list asks for itself again.
const REFRESH: &str = "every 5s";

/// The list's query: a tab, a filter of Alertmanager matchers, a time range and the cursor.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    tab: Tab,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    range: Range,
    before: Option<i64>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Tab {
    #[default]
    Firing,
    Acknowledged,
    Resolved,
}

impl Tab {
    const ALL: [Tab; 3] = [Tab::Firing, Tab::Acknowledged, Tab::Resolved];

    fn as_str(self) -> &'static str {
        match self {
            Tab::Firing => "firing",
            Tab::Acknowledged => "acknowledged",
            Tab::Resolved => "resolved",
        }
    }

    /// Firing is split by whether someone took it; resolved shows both.
    fn acknowledged(self) -> Option<bool> {
        match self {
            Tab::Firing => Some(false),
            Tab::Acknowledged => Some(true),
            Tab::Resolved => None,
        }
    }
}

/// Opened within the last ...
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Range {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
    #[default]
    #[serde(rename = "all")]
    All,
}

impl Range {
    const ALL: [(Range, &'static str, &'static str); 5] = [
        (Range::Hour, "1h", "last hour"),
        (Range::Day, "24h", "last 24 hours"),
        (Range::Week, "7d", "last 7 days"),
        (Range::Month, "30d", "last 30 days"),
        (Range::All, "all", "any time"),
    ];

    fn hours(self) -> Option<i64> {
        match self {
            Range::Hour => Some(1),
            Range::Day => Some(24),
            Range::Week => Some(24 * 7),
            Range::Month => Some(24 * 30),
            Range::All => None,
        }
    }

    fn as_str(self) -> &'static str {
        Range::ALL
            .iter()
            .find(|(r, _, _)| *r == self)
            .map_or("all", |(_, word, _)| word)
    }
}

impl ListQuery {
    /// The query string of this list, with another cursor.
    fn href(&self, path: &str, tab: Tab, before: Option<i64>) -> String {
        let mut pairs = vec![("tab", tab.as_str().to_owned())];
        if !self.filter.is_empty() {
            pairs.push(("filter", self.filter.clone()));
        }
        if self.range != Range::All {
            pairs.push(("range", self.range.as_str().to_owned()));
        }
        if let Some(before) = before {
            pairs.push(("before", before.to_string()));
        }
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    }
}

/// One page of the list, with each incident's latest remediation.
struct Listed {
    incidents: Vec<Incident>,
    remediation: HashMap<i64, RemediationState>,
    next_before: Option<i64>,
}

async fn load(query: &ListQuery, state: &State) -> Result<Listed, Failure> {
    let filter = query.filter.trim();
    let page = Page {
        status: Some(if query.tab == Tab::Resolved {
            Status::Resolved
        } else {
            Status::Firing
        }),
        before: query.before,
        limit: PAGE_SIZE,
        filters: if filter.is_empty() {
            Vec::new()
        } else {
            filters(filter)?
        },
        since: query
            .range
            .hours()
            .map(|h| Utc::now() - chrono::Duration::hours(h)),
        until: None,
        acknowledged: query.tab.acknowledged(),
    };
    let filters = page.filters.clone();
    let incidents = state
        .reads
        .list_incidents(page)
        .await
        .map_err(|e| Failure::Api(search_failed(e, &filters, state.retry_after)))?;
    let next_before = (incidents.len() as i64 == PAGE_SIZE)
        .then(|| incidents.last().map(|i| i.id))
        .flatten();
    let ids: Vec<i64> = incidents.iter().map(|i| i.id).collect();
    let remediation = state
        .reads
        .remediation_states(&ids)
        .await
        .map_err(|e| Failure::store(e, state))?;
    Ok(Listed {
        incidents,
        remediation: remediation.into_iter().collect(),
        next_before,
    })
}

/// `GET /ui/`: the incidents.
pub(super) async fn list(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?
        .into_inner();
    let (listed, problem) = match load(&query, &state).await {
        Ok(listed) => (Some(listed), None),
        Err(Failure::Api(ApiError::BadRequest(problem))) => (None, Some(problem)),
        Err(e) => return Err(e),
    };
    let body = html! {
        h1 { "Incidents" }
        nav.tabs aria-label="Incident state" {
            @for tab in Tab::ALL {
                a href=(query.href("/ui/", tab, None)) aria-current=[(tab == query.tab).then_some("page")] { (tab.as_str()) }
            }
        }
        form.filters method="get" action="/ui/" role="search" {
            input type="hidden" name="tab" value=(query.tab.as_str());
            label for="filter" { "Filter (Alertmanager matchers)" }
            input #filter type="search" name="filter" value=(query.filter) placeholder=r#"severity="critical", namespace=~"shop.*""#;
            label for="range" { "Opened" }
            select #range name="range" {
                @for (range, word, text) in Range::ALL {
                    option value=(word) selected[range == query.range] { (text) }
                }
            }
            button type="submit" { "Apply" }
            @if let Some(problem) = &problem { p.problem role="alert" { (problem) } }
        }
        @if let Some(listed) = &listed { (rows_markup(&query, listed)) }
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(layout::respond(status, Some(&viewer), "Incidents", body))
}

/// `GET /ui/incidents`: the list's table alone, which the page polls for.
pub(super) async fn rows(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?
        .into_inner();
    let listed = load(&query, &state).await?;
    Ok(layout::html_response(
        StatusCode::OK,
        Some(&viewer),
        rows_markup(&query, &listed),
    ))
}

fn rows_markup(query: &ListQuery, listed: &Listed) -> Markup {
    // Only the first page refreshes: a later one would shift under the reader.
    let poll = query
        .before
        .is_none()
        .then(|| query.href("/ui/incidents", query.tab, None));
    html! {
        section #incidents aria-live="polite" hx-get=[&poll] hx-trigger=[poll.as_ref().map(|_| REFRESH)] hx-swap="outerHTML" {
            @if listed.incidents.is_empty() {
                p.empty { "No " (query.tab.as_str()) " incidents here." }
            } @else {
                div.scroll {
                    table.incidents {
                        caption.visually-hidden { (query.tab.as_str()) " incidents" }
                        thead { tr {
                            th scope="col" { "Severity" } th scope="col" { "Alert" } th scope="col" { "Group" }
                            th scope="col" { "Summary" } th scope="col" { "Age" } th scope="col" { "Acknowledged" }
                            th scope="col" { "Remediation" }
                        } }
                        tbody {
                            @for incident in &listed.incidents { (row(incident, listed.remediation.get(&incident.id))) }
                        }
                    }
                }
            }
            @if let Some(before) = listed.next_before {
                p.paging { a href=(query.href("/ui/", query.tab, Some(before))) { "Older incidents →" } }
            }
            @if query.before.is_some() {
                p.paging { a href=(query.href("/ui/", query.tab, None)) { "← Newest" } }
            }
        }
    }
}

/// A label of the incident: the common labels first, then its first alert's.
fn label<'a>(incident: &'a Incident, name: &str) -> Option<&'a str> {
    incident
        .common_labels
        .get(name)
        .or_else(|| incident.alerts.first().and_then(|a| a.labels.get(name)))
        .and_then(Value::as_str)
}

fn summary(incident: &Incident) -> Option<&str> {
    ["summary", "description", "message"].iter().find_map(|key| {
        incident
            .common_annotations
            .get(key)
            .or_else(|| incident.alerts.first().and_then(|a| a.annotations.get(key)))
            .and_then(Value::as_str)
    })
}

/// What remediation is doing: acting, awaiting approval, fixed, not fixed, or its result.
fn remediation_word(state: &RemediationState) -> String {
    if state.waiting {
        return "awaiting approval".into();
    }
    match (state.result.as_str(), state.verification.as_str()) {
        (_, "fixed") => "fixed".into(),
        (_, "not_fixed") => "not fixed".into(),
        ("running", _) | (_, "pending") => "acting".into(),
        (result, _) => result.replace('_', " "),
    }
}

fn row(incident: &Incident, remediation: Option<&RemediationState>) -> Markup {
    let href = format!("/ui/incidents/{}", incident.id);
    let name = label(incident, "alertname").unwrap_or("(no alertname)");
    html! {
        tr {
            td { (layout::severity(label(incident, "severity"))) }
            td { a href=(href) { (name) } }
            td { (layout::labels(&incident.group_labels)) }
            td { (summary(incident).unwrap_or("")) }
            td { (layout::age(&incident.created_at)) }
            td {
                @if let Some(ack) = &incident.acknowledgement { (ack.by) } @else { span.muted { "no" } }
            }
            td { @if let Some(state) = remediation { (remediation_word(state)) } @else { span.muted { "none" } } }
        }
    }
}

/// `GET /ui/incidents/{id}`.
pub(super) async fn show(
    req: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    let id = id.into_inner();
    let incident = state
        .reads
        .incident(id)
        .await
        .map_err(|e| Failure::store(e, &state))?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    let name = label(&incident, "alertname")
        .unwrap_or("(no alertname)")
        .to_owned();
    let context = state
        .store
        .incident_context(id)
        .await
        .map_err(|e| Failure::store(e, &state))?;
    let title = format!("Incident {id}: {name}");
    let body = html! {
        p.crumbs { a href="/ui/" { "← Incidents" } }
        h1 { (layout::severity(label(&incident, "severity"))) " " (name) " " span.muted { "#" (id) } }
        (overview(&incident))
        @if viewer.may(Role::Responder) && incident.status == "firing" { (actions(&viewer, &incident, state.integrations.alertmanager.is_some())) }
        @if let Some(context) = &context { (context_markup(context, incident.created_at)) }
        h2 { "Alerts" }
        @for alert in &incident.alerts { (alert_markup(&incident, alert)) }
        h2 { "Remediations" }
        (super::control::remediation_table(&viewer, incident.remediations.iter().flatten(), Some(id)))
        h2 { "Timeline" }
        (timeline_markup(&timeline(&incident)))
    };
    Ok(layout::page(Some(&viewer), &title, body))
}

fn overview(incident: &Incident) -> Markup {
    html! {
        dl.overview {
            dt { "State" } dd { (incident.status) }
            dt { "Opened" } dd { (layout::time(&incident.created_at)) }
            @if let Some(at) = &incident.resolved_at { dt { "Resolved" } dd { (layout::time(at)) } }
            dt { "Acknowledged" }
            dd {
                @if let Some(ack) = &incident.acknowledgement {
                    (ack.by) " via " (ack.via) ", " (layout::time(&ack.at))
                    @if let Some(note) = &ack.note { ": " q { (note) } }
                } @else { "no" }
            }
            dt { "Group" } dd { (layout::labels(&incident.group_labels)) }
            dt { "Summary" } dd { (summary(incident).unwrap_or("")) }
            @if !incident.external_url.is_empty() {
                dt { "Alertmanager" } dd { (layout::link(&incident.external_url, &incident.external_url)) }
            }
        }
    }
}

/// Acknowledge (until someone has), and Silence 1h when medic knows Alertmanager's API.
fn actions(viewer: &Viewer, incident: &Incident, can_silence: bool) -> Markup {
    let id = incident.id;
    if incident.acknowledgement.is_some() && !can_silence {
        return html! {};
    }
    html! {
        section.actions aria-labelledby="actions-h" {
            h2 #actions-h { "Act" }
            @if incident.acknowledgement.is_none() {
                form method="post" action=(format!("/ui/incidents/{id}/ack")) {
                    (csrf(viewer))
                    label for="note" { "Note (optional)" }
                    input #note type="text" name="note" maxlength="2000";
                    button type="submit" { "Acknowledge" }
                }
            }
            @if can_silence {
                form method="post" action=(format!("/ui/incidents/{id}/silence")) {
                    (csrf(viewer))
                    button type="submit" { "Silence 1h" }
                }
            }
        }
    }
}

fn alert_markup(incident: &Incident, alert: &crate::store::incidents::AlertRecord) -> Markup {
    let runbook = alert.annotations.get("runbook_url").and_then(Value::as_str);
    html! {
        article.alert {
            h3 {
                (alert.labels.get("alertname").and_then(Value::as_str).unwrap_or("(no alertname)"))
                " " span.muted { (alert.status) ", since " (layout::time(&alert.starts_at)) }
            }
            h4 { "Labels" } (layout::labels(&alert.labels))
            h4 { "Annotations" } (layout::labels(&alert.annotations))
            p.links {
                @if let Some(runbook) = runbook { (layout::link(runbook, "Runbook")) " " }
                @if !alert.generator_url.is_empty() { (layout::link(&alert.generator_url, "Source")) " " }
                @if !incident.external_url.is_empty() {
                    (layout::link(&format!("{}/#/alerts", incident.external_url.trim_end_matches('/')), "Alertmanager"))
                }
            }
        }
    }
}

/// What the cluster said about the incident's workload, the headline first, then the last
/// log lines.
fn context_markup(context: &ClusterContext, opened_at: chrono::DateTime<Utc>) -> Markup {
    html! {
        section.context aria-labelledby="context-h" {
            h2 #context-h { "Cluster context" }
            p.muted {
                "Gathered " (layout::time(&context.gathered_at))
                @if !context.complete { " (incomplete)" }
            }
            ul {
                @for line in context.lines(opened_at) { li { (line) } }
            }
            @if let Some(logs) = &context.logs {
                h3 {
                    "Last lines of " (logs.pod) "/" (logs.container)
                    @if logs.previous { " (previous instance)" }
                }
                pre { (logs.lines.join("\n")) }
            }
        }
    }
}

fn timeline_markup(events: &[Value]) -> Markup {
    html! {
        ol.timeline {
            @for event in events {
                li {
                    @if let Some(at) = event.get("at").and_then(|at| serde_json::from_value(at.clone()).ok()) {
                        (layout::time(&at)) " "
                    }
                    strong { (event["event"].as_str().unwrap_or("event").replace('_', " ")) }
                    @if let Some(map) = event.as_object() {
                        span.detail {
                            @for (key, value) in map.iter().filter(|(k, v)| !v.is_null() && *k != "at" && *k != "event") {
                                span.k { (key.replace('_', " ")) } ": " span.v { (value.as_str().map_or_else(|| value.to_string(), str::to_owned)) } "; "
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The acknowledgement form.
#[derive(Deserialize)]
pub(super) struct AckForm {
    csrf: Option<String>,
    note: Option<String>,
}

/// `POST /ui/incidents/{id}/ack`: the same act as the API's, recorded as from the console.
pub(super) async fn acknowledge(
    req: HttpRequest,
    id: web::Path<i64>,
    form: web::Form<AckForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check_csrf(form.csrf.as_deref())?;
    let id = id.into_inner();
    let note = Text::parse("note", form.note.as_deref()).map_err(ApiError::Unprocessable)?;
    state
        .acts
        .acknowledge(&viewer.person, id, note)
        .await
        .map_err(|e| Failure::act(e, &state))?;
    Ok(see_other(&format!("/ui/incidents/{id}")))
}

/// `POST /ui/incidents/{id}/silence`: silences its alerts in Alertmanager for an hour (or
/// extends medic's silence in force to an hour from now).
pub(super) async fn silence(
    req: HttpRequest,
    id: web::Path<i64>,
    form: web::Form<super::session::CsrfForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check_csrf(form.csrf.as_deref())?;
    let id = id.into_inner();
    state
        .acts
        .silence(&viewer.person, id, Duration::from_secs(3600), None)
        .await
        .map_err(|e| Failure::act(e, &state))?;
    Ok(see_other(&format!("/ui/incidents/{id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(result: &str, verification: &str, waiting: bool) -> RemediationState {
        RemediationState {
            result: result.into(),
            verification: verification.into(),
            waiting,
        }
    }

    #[test]
    fn the_remediation_column_says_acting_awaiting_approval_fixed_or_not_fixed() {
        assert_eq!(remediation_word(&state("running", "none", false)), "acting");
        assert_eq!(remediation_word(&state("success", "pending", false)), "acting");
        assert_eq!(
            remediation_word(&state("awaiting_approval", "none", true)),
            "awaiting approval"
        );
        assert_eq!(remediation_word(&state("success", "fixed", false)), "fixed");
        assert_eq!(
            remediation_word(&state("success", "not_fixed", false)),
            "not fixed"
        );
        assert_eq!(
            remediation_word(&state("skipped_cooldown", "none", false)),
            "skipped cooldown"
        );
    }

    #[test]
    fn links_of_the_list_keep_its_filter_and_range() {
        let query = ListQuery {
            tab: Tab::Firing,
            filter: r#"alertname="A b""#.into(),
            range: Range::Day,
            before: Some(9),
        };
        assert_eq!(
            query.href("/ui/", Tab::Resolved, Some(3)),
            "/ui/?tab=resolved&filter=alertname%3D%22A+b%22&range=24h&before=3"
        );
    }
}
