//! The rules as loaded (`/ui/rules`): each rule's matchers, whom it tells and when, and its
//! remediation ladder (a demoted step says so, and why; a rule in `mode: observe` too); what
//! each step did, or observed would have done, over 30 days (the store query `GET
//! /api/v1/rules/effectiveness` reads); and the explain box, which shows what `medic explain`
//! prints for a pasted payload or set of labels.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    failure::Failure,
    layout::{self, csrf, see_other},
    session::viewer,
    viewer::Viewer,
};
use crate::{
    domain::{HumanDuration, Role, RuleMode, Text},
    http::{error::ApiError, state::State},
    plan::explain::{self, Explanation, Run, StepExplained, StepOutcome},
    plan::{GuardRails, Rule},
    store::{demotions::Demotion, effectiveness::StepRecord},
};

/// The window the page's effectiveness table covers (the API's default).
const WINDOW_MS: i64 = 30 * 86_400_000;

/// What the page shows of the rules' records: their effectiveness and demotions in force.
struct Record {
    steps: Vec<StepRecord>,
    demotions: Vec<Demotion>,
}

async fn record(state: &State) -> Result<Record, Failure> {
    let steps = state
        .store
        .effectiveness(WINDOW_MS)
        .await
        .map_err(|e| Failure::store(e, state))?;
    let demotions = state
        .store
        .demotions()
        .await
        .map_err(|e| Failure::store(e, state))?;
    Ok(Record { steps, demotions })
}

/// Largest payload the explain box takes: Alertmanager's default body limit of medic's webhook.
pub(super) const EXPLAIN_LIMIT: usize = 1024 * 1024;

/// `GET /ui/rules`: the rules as loaded, in order, and an empty explain box.
pub(super) async fn rules(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    let record = record(&state).await?;
    let body = page(&viewer, &state, &record, "", None);
    Ok(layout::page(Some(&viewer), "Rules", body))
}

#[derive(Deserialize)]
pub(super) struct ExplainForm {
    csrf: Option<String>,
    #[serde(default)]
    payload: String,
}

/// `POST /ui/rules`: the same page with the explain box's answer. A POST, though it changes
/// nothing: a webhook payload is too long for a URL and would land in access logs and the
/// browser's history. Any role may ask; a payload that is neither a notification nor labels
/// is a 422 page saying why, with the text kept in the box to mend.
pub(super) async fn explain(
    req: HttpRequest,
    form: web::Form<ExplainForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check_csrf(form.csrf.as_deref())?;
    let answer =
        explain::notification(&form.payload).map(|n| explain::explain(&state.rules, &state.guard_rails, &n));
    let status = match &answer {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let record = record(&state).await?;
    let body = page(&viewer, &state, &record, &form.payload, Some(&answer));
    Ok(layout::respond(status, Some(&viewer), "Rules", body))
}

fn page(
    viewer: &Viewer,
    state: &State,
    record: &Record,
    payload: &str,
    answer: Option<&Result<Explanation, String>>,
) -> Markup {
    html! {
        h1 { "Rules" }
        section.explain aria-labelledby="explain-title" {
            h2 #explain-title { "Explain" }
            p.muted { "Paste an Alertmanager webhook payload, or the labels of one alert ("
                code { r#"alertname="HighErrorRate", namespace="shop""# } " or a JSON object): "
                "see which rule takes it, which action with which parameters, and which timers. Nothing runs." }
            form.explain method="post" action="/ui/rules" {
                (csrf(viewer))
                label for="payload" { "Payload or labels" }
                textarea #payload name="payload" rows="8" required spellcheck="false" { (payload) }
                button type="submit" { "Explain" }
            }
            @match answer {
                Some(Ok(explanation)) => (answer_markup(explanation)),
                Some(Err(problem)) => p.problem #explain-error role="alert" { "Cannot explain this: " (problem) },
                None => {},
            }
        }
        (effectiveness_markup(&record.steps))
        h2 { "Loaded rules" }
        @if state.rules.is_empty() { p.empty { "No rules are loaded." } }
        @for rule in state.rules.iter() { (rule_markup(viewer, rule, &state.guard_rails, &record.demotions)) }
    }
}

/// What each rule step did and came to over the window, as the API says it.
fn effectiveness_markup(steps: &[StepRecord]) -> Markup {
    let rate = |r: Option<f64>| r.map_or("–".to_owned(), |r| format!("{:.0}%", r * 100.0));
    let secs = |s: Option<f64>| s.map_or("–".to_owned(), |s| format!("{s:.0}s"));
    html! {
        section.effectiveness aria-labelledby="effectiveness-title" {
            h2 #effectiveness-title { "Effectiveness " span.muted { "(30 days)" } }
            @if steps.is_empty() { p.empty { "No remediation in the window." } } @else {
                div.scroll { table #effectiveness {
                    thead { tr { @for h in ["Rule", "Step", "Action", "Mode", "Acted", "Fixed", "Relapsed", "Not fixed",
                        "Failed", "Skipped", "Fix rate", "Median time to resolve", "Demoted"] { th scope="col" { (h) } } } }
                    tbody { @for s in steps { tr data-rule=(s.rule) data-step=(s.step) data-mode=(s.mode) {
                        td { (s.rule) } td { (s.step) } td { code { (s.action) } }
                        td.mode { @if s.mode == RuleMode::Observe.as_str() { "observed" } @else { "acted" } }
                        td.acted { (s.acted) }
                        td.fixed { (s.fixed) } td.relapsed { (s.relapsed) } td.not-fixed { (s.not_fixed) }
                        td.failed { (s.failed) } td.skipped { (s.skipped) } td.fix-rate { (rate(s.fix_rate)) }
                        td { (secs(s.median_time_to_resolve_seconds)) }
                        td.demoted { @if s.demoted { "demoted" } @else { "no" } }
                    } } }
                } }
            }
        }
    }
}

fn rule_markup(viewer: &Viewer, rule: &Rule, rails: &GuardRails, demotions: &[Demotion]) -> Markup {
    let demoted = |step: usize| {
        demotions
            .iter()
            .find(|d| d.rule == rule.name && usize::try_from(d.step).is_ok_and(|s| s == step))
    };
    html! {
        article.rule {
            h3 { (rule.name) }
            dl.overview {
                dt { "Matchers" }
                dd.matchers {
                    @for m in rule.matchers().iter() { code { (m) } " " }
                    @if rule.matchers().is_empty() { "every alert" }
                }
                @if !rule.severities().is_empty() { dt { "Severities" } dd { (rule.severities().join(", ")) } }
                dt { "Then" } dd { @if rule.continues() { "later rules are tried too" } @else { "no later rule is tried" } }
                dt { "Tells" } dd { @for n in &rule.notify { code { (n.name) } " " } @if rule.notify.is_empty() { "nobody" } }
                dt { "Escalation" }
                dd { @if rule.steps.is_empty() { "none" } ol { @for step in &rule.steps { li {
                    "after " (HumanDuration(step.after)) ": " @for n in &step.notify { code { (n.name) } " " }
                    @if let Some(r) = step.repeat { "(repeating every " (HumanDuration(r)) ")" }
                } } } }
                @if rule.mode == RuleMode::Observe && !rule.remediate.is_empty() {
                    dt { "Mode" } dd.mode { strong { "observe" } ": decided and recorded as observed, nothing is changed" }
                }
                dt { "Remediation" }
                dd { @if rule.remediate.is_empty() { "none" } ol.ladder { @for (n, spec) in (1..).zip(&rule.remediate) { li {
                    code { (spec.action.as_str()) }
                    @if let Some(d) = demoted(n) {
                        " " strong.demoted { (d.reason) ", needs approval until an admin promotes it" }
                        @if viewer.may(Role::Admin) {
                            form.inline.promote method="post" action=(format!("/ui/rules/{}/steps/{n}/promote", rule.name)) {
                                (csrf(viewer)) button type="submit" { "Promote" }
                            }
                        }
                    }
                    ul.labels { @for (name, value) in spec.params() {
                        li { span.k { (name) ": " } span.v { (value.to_string()) } }
                    } }
                    @if spec.approval { "needs approval" } @else { "no approval" }
                    @if spec.gitops_allow { ", gitops: allow" }
                    @if let Some(v) = spec.verify_within { ", verify within " (HumanDuration(v)) }
                    @if let Some(q) = &spec.verify_query { ", verify_query " code { (q.query.to_string()) } }
                    ", cooldown " (HumanDuration(spec.cooldown.unwrap_or(rails.cooldown)))
                    @if spec.dry_run.unwrap_or(rails.dry_run) { ", dry run" }
                } } } }
                @if let Some(url) = &rule.runbook_url { dt { "Runbook" } dd { (layout::link(url, url)) } }
            }
        }
    }
}

fn answer_markup(e: &Explanation) -> Markup {
    html! {
        section.answer #explanation aria-labelledby="answer-title" {
            h3 #answer-title { "Group " code { (e.group_key) } " (" (e.status.as_str()) "), "
                (e.alerts.len()) @if e.alerts.len() == 1 { " alert" } @else { " alerts" } }
            @for alert in &e.alerts {
                article.alert {
                    h4 { (alert.name) " " span.muted { "[" (alert.status.as_str()) "] " (alert.key) } }
                    @if alert.status != crate::alertmanager::Status::Firing {
                        p { "Resolved: no rule acts on it." }
                    } @else if alert.rules.is_empty() { p.empty { "No rule matches." } }
                    @for taken in &alert.rules {
                        p { "Rule " strong.rule-name { (taken.rule) }
                            @if taken.mode == RuleMode::Observe { " " span.mode { "(mode: observe: nothing is changed, each step is recorded as observed)" } } }
                        @if taken.steps.is_empty() { p { "No remediation." } }
                        @else { ol.ladder { @for step in &taken.steps { li { (step_markup(step)) } } } }
                    }
                }
            }
            h4 { "Timers" span.muted { " (if this notification opens the incident or adds these alerts)" } }
            @if e.timers.is_empty() { p.empty { "None." } } @else {
                div.scroll { table.timers {
                    thead { tr { th scope="col" { "After" } th scope="col" { "What" } th scope="col" { "Notifier or action" }
                        th scope="col" { "Rule" } th scope="col" { "Repeats" } } }
                    tbody { @for t in &e.timers { tr {
                        td { "+" (HumanDuration(t.after)) } td { (t.what) } td { code { (t.notifier) } } td { (t.rule) }
                        td { @if let Some(r) = t.repeat { "every " (HumanDuration(r)) } @else { "no" } }
                    } } }
                } }
            }
        }
    }
}

fn step_markup(step: &StepExplained) -> Markup {
    html! {
        "Step " (step.number) ": " code { (step.action) }
        @match &step.outcome {
            StepOutcome::Runs(run) => { " on " code { (run.target) } (run_markup(run)) }
            StepOutcome::Invalid { params, reason } => {
                " would be skipped as invalid: " span.problem { (reason) }
                dl.overview { dt { "Parameters" } dd { code { (params) } } }
            }
            StepOutcome::Fails { reason } => { " would fail: " span.problem { (reason) } }
        }
    }
}

fn run_markup(run: &Run) -> Markup {
    let yes = |b: bool| if b { "yes" } else { "no" };
    html! {
        dl.overview {
            dt { "Parameters" } dd { code { (run.params) } }
            dt { "Dry run" } dd { (yes(run.dry_run)) }
            dt { "Namespace allowed" } dd { (yes(run.namespace_allowed)) }
            dt { "Cooldown" } dd { (HumanDuration(run.cooldown)) }
            dt { "Verify within" } dd { @if let Some(v) = run.verify_within { (HumanDuration(v)) } @else { "not verified" } }
            dt { "Approval" } dd { @if run.approval { "needed before it acts" } @else { "not needed" } }
            @if let Some(q) = &run.verify_query { dt { "Verify query" } dd { code { (q) } } }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct PromoteForm {
    csrf: Option<String>,
    note: Option<String>,
}

/// `POST /ui/rules/{rule}/steps/{step}/promote`: the same act as the API's (admin only).
pub(super) async fn promote(
    req: HttpRequest,
    path: web::Path<(String, i32)>,
    form: web::Form<PromoteForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check_csrf(form.csrf.as_deref())?;
    let (rule, step) = path.into_inner();
    let note = Text::parse("note", form.note.as_deref()).map_err(ApiError::Unprocessable)?;
    state
        .acts
        .promote(&viewer.person, &rule, step, note)
        .await
        .map_err(|e| Failure::act(e, &state))?;
    Ok(see_other("/ui/rules"))
}
