//! The SLO report (`medic slo report`, `GET /api/v1/slo/report`): each SLO measured in
//! Prometheus at a point in time, the medic incidents that spent its error budget during the
//! report's period, and the action items they call for. The JSON field names are the SRE
//! playbook's; the README says how each number is computed.
//!
//! - `value`: `100 * good / total` over the SLO's window ending at `at`.
//! - `error_budget_remaining`: `(1 - (100 - value) / (100 - objective)) * 100`.
//! - `status`: `breached` when `value < objective`, `at_risk` when less than
//!   [`AT_RISK_BUDGET`] percent of the budget remains (or the SLI has no data), else `healthy`.
//! - `trend`: the SLI over the period against the SLI over the period before; a change
//!   within [`TREND_TOLERANCE`] of the error budget is `stable`.

use std::{collections::BTreeSet, fmt::Write as _, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{
    prometheus::Prometheus,
    rules::{good_and_total, prometheus_duration},
};
use crate::{
    plan::{Sli, Slo},
    store::{
        slo::{PeriodIncident, UnfixedRemediation},
        Store, StoreError,
    },
};

/// Less than this share of the error budget left (percent): `at_risk`.
pub const AT_RISK_BUDGET: f64 = 25.0;
/// A change of the SLI smaller than this share of the error budget (`100 - objective`
/// percentage points) between two periods is `stable`.
pub const TREND_TOLERANCE: f64 = 0.05;
/// Incidents per SLO that get a follow-up action item, the biggest spenders first.
const FOLLOW_UPS: usize = 3;
/// The shortest range asked of Prometheus for an incident (a shorter one holds no samples).
const MIN_RANGE: Duration = Duration::from_secs(60);

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("Prometheus: {0:#}")]
    Prometheus(anyhow::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `{"slo_report": ...}`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub slo_report: SloReport,
}

/// The report itself.
#[derive(Debug, Serialize)]
pub struct SloReport {
    pub period: Period,
    /// The SLOs' services, comma-separated when there are several.
    pub service: String,
    pub slos: Vec<SloEntry>,
    pub overall_reliability: Overall,
    pub action_items: Vec<ActionItem>,
}

/// The period the incidents and the trend are read over: `[start, end)`, `end` being `at`.
#[derive(Debug, Serialize)]
pub struct Period {
    pub start: String,
    pub end: String,
    /// As in `--window`: `7d`.
    pub window: String,
}

/// One SLO in the report.
#[derive(Debug, Serialize)]
pub struct SloEntry {
    pub name: String,
    pub description: String,
    /// The objective, in percent.
    pub target: f64,
    /// The unit of `threshold_ms` and `p95_ms` (latency SLOs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// The SLO's own window (`30d`).
    pub measurement_window: String,
    pub current_performance: Performance,
    /// The SLI in percent over the SLO's window, as asked of Prometheus.
    pub sli_query: String,
    pub incidents_affecting: Vec<IncidentImpact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
}

/// How the SLO does at `at`.
#[derive(Debug, Serialize)]
pub struct Performance {
    /// The SLI in percent; `null` when Prometheus has no data for it.
    pub value: Option<f64>,
    pub status: Status,
    /// Percent of the error budget left; negative once overspent.
    pub error_budget_remaining: Option<f64>,
    pub trend: Trend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Healthy,
    AtRisk,
    Breached,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Improving,
    Stable,
    Declining,
}

/// A medic incident that affected the SLO during the period.
#[derive(Debug, Serialize)]
pub struct IncidentImpact {
    pub incident_id: i64,
    /// When its firing began (RFC 3339).
    pub date: String,
    /// From its start until resolved, or until `at` while it still fires (`2h 15m`).
    pub duration: String,
    /// The SLI during the incident, in words.
    pub impact: String,
    /// The alert name and its `summary` annotation.
    pub cause: String,
    /// `1 - good / total` over the incident's span; `null` without data.
    pub error_ratio: Option<f64>,
    /// Percent of the SLO's error budget (over its window) the incident's bad events used.
    pub error_budget_spent: Option<f64>,
    pub ongoing: bool,
    /// The `owner_label`'s value on its alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// All SLOs together.
#[derive(Debug, Serialize)]
pub struct Overall {
    /// Mean of the SLOs' `error_budget_remaining`, each clipped to `[0, 100]`; `null` when no
    /// SLO could be measured.
    pub score: Option<f64>,
    /// The worst of the SLOs' statuses.
    pub status: Status,
    pub recommendation: String,
}

/// Something to do, from what medic saw.
#[derive(Debug, Serialize)]
pub struct ActionItem {
    pub priority: Priority,
    pub title: String,
    pub description: String,
    pub owner: String,
    /// `YYYY-MM-DD`: `at` plus 7 days (high), 14 (medium) or 30 (low).
    pub due_date: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    Medium,
    Low,
}

impl Priority {
    fn due(self, at: DateTime<Utc>) -> String {
        let days = match self {
            Priority::High => 7,
            Priority::Medium => 14,
            Priority::Low => 30,
        };
        (at + chrono::Duration::days(days)).format("%Y-%m-%d").to_string()
    }
}

/// Who owns an action nobody's label names.
const UNASSIGNED: &str = "unassigned";

/// Makes the report for `slos` at `at`, over the `period` before it.
pub async fn build(
    slos: &[Slo],
    prometheus: &Prometheus,
    store: &Store,
    at: DateTime<Utc>,
    period: Duration,
) -> Result<Report, ReportError> {
    let start = at - chrono::Duration::from_std(period).unwrap_or(chrono::Duration::zero());
    let incidents = store.incidents_overlapping(start, at).await?;
    let mut entries = Vec::with_capacity(slos.len());
    let mut items = Vec::new();
    for slo in slos {
        let affecting: Vec<&PeriodIncident> = incidents.iter().filter(|i| affects(slo, i)).collect();
        let ids: Vec<i64> = affecting.iter().map(|i| i.id).collect();
        let unfixed = store.unfixed_remediations(&ids).await?;
        let entry = measure(slo, prometheus, at, period, &affecting)
            .await
            .map_err(ReportError::Prometheus)?;
        items.extend(action_items(slo, &entry, &unfixed, at));
        entries.push(entry);
    }
    Ok(Report {
        slo_report: SloReport {
            period: Period {
                start: rfc3339(start),
                end: rfc3339(at),
                window: prometheus_duration(period),
            },
            service: services(slos),
            overall_reliability: overall(&entries),
            action_items: dedup(items),
            slos: entries,
        },
    })
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn services(slos: &[Slo]) -> String {
    let names: BTreeSet<&str> = slos.iter().map(|s| s.service.as_str()).collect();
    names.into_iter().collect::<Vec<_>>().join(", ")
}

/// An SLO without matchers claims no incident; otherwise any of the incident's alerts must match.
fn affects(slo: &Slo, incident: &PeriodIncident) -> bool {
    slo.incidents.iter().next().is_some() && incident.alerts.iter().any(|a| slo.incidents.matches(&a.labels))
}

/// The SLI (`good`, `total` per second) over `range` ending at `at`.
async fn sli(
    prometheus: &Prometheus,
    slo: &Slo,
    range: Duration,
    at: DateTime<Utc>,
) -> anyhow::Result<Option<(f64, f64)>> {
    let (good, total) = good_and_total(&slo.sli, range);
    let good = prometheus.value(&good, at).await?;
    let total = prometheus.value(&total, at).await?;
    Ok(match (good, total) {
        (Some(good), Some(total)) if total > 0.0 => Some((good, total)),
        _ => None,
    })
}

fn percent((good, total): (f64, f64)) -> f64 {
    100.0 * good / total
}

async fn measure(
    slo: &Slo,
    prometheus: &Prometheus,
    at: DateTime<Utc>,
    period: Duration,
    affecting: &[&PeriodIncident],
) -> anyhow::Result<SloEntry> {
    let measured = sli(prometheus, slo, slo.window, at).await?;
    let value = measured.map(percent);
    let budget = value.map(|v| budget_remaining(v, slo.objective));
    let current = sli(prometheus, slo, period, at).await?.map(percent);
    let before = at - chrono::Duration::from_std(period)?;
    let previous = sli(prometheus, slo, period, before).await?.map(percent);
    let total_events = measured.map(|(_, total)| total * slo.window.as_secs_f64());
    let mut incidents = Vec::with_capacity(affecting.len());
    for incident in affecting {
        incidents.push(impact(slo, prometheus, incident, at, total_events).await?);
    }
    let (good, total) = good_and_total(&slo.sli, slo.window);
    let (threshold_ms, p95_ms, unit) = match &slo.sli {
        Sli::Latency { histogram, threshold } => {
            let query = format!(
                "histogram_quantile(0.95, sum by (le) (rate({histogram}_bucket[{}])))",
                prometheus_duration(slo.window)
            );
            let p95 = prometheus.value(&query, at).await?.map(|s| round(s * 1000.0, 3));
            (Some(threshold.as_secs_f64() * 1000.0), p95, Some("ms"))
        }
        Sli::Ratio { .. } => (None, None, None),
    };
    Ok(SloEntry {
        name: slo.name.clone(),
        description: slo.description.clone().unwrap_or_default(),
        target: slo.objective,
        unit,
        measurement_window: prometheus_duration(slo.window),
        current_performance: Performance {
            value: value.map(|v| round(v, 4)),
            status: status(value, budget, slo.objective),
            error_budget_remaining: budget.map(|b| round(b, 2)),
            trend: trend(current, previous, slo.objective),
        },
        sli_query: format!("100 * ({}) / ({})", good.trim(), total.trim()),
        incidents_affecting: incidents,
        threshold_ms,
        p95_ms,
    })
}

/// `(1 - (100 - value) / (100 - objective)) * 100`: 100 with no bad events, 0 when the bad
/// events are exactly what the objective allows, negative beyond.
pub fn budget_remaining(value: f64, objective: f64) -> f64 {
    (1.0 - (100.0 - value) / (100.0 - objective)) * 100.0
}

/// `breached` below the objective; `at_risk` with less than [`AT_RISK_BUDGET`] left or no
/// data to tell; else `healthy`.
pub fn status(value: Option<f64>, budget: Option<f64>, objective: f64) -> Status {
    match (value, budget) {
        (Some(value), _) if value < objective => Status::Breached,
        (Some(_), Some(budget)) if budget >= AT_RISK_BUDGET => Status::Healthy,
        _ => Status::AtRisk,
    }
}

/// The SLI over this period against the one before: a change within [`TREND_TOLERANCE`] of
/// the error budget, or no data for either, is `stable`.
pub fn trend(current: Option<f64>, previous: Option<f64>, objective: f64) -> Trend {
    let (Some(current), Some(previous)) = (current, previous) else {
        return Trend::Stable;
    };
    let tolerance = TREND_TOLERANCE * (100.0 - objective);
    if current - previous > tolerance {
        Trend::Improving
    } else if previous - current > tolerance {
        Trend::Declining
    } else {
        Trend::Stable
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// The SLI over the incident's span (its start until resolved, or until `at`), measured at
/// the span's end; its bad events as a share of the budget over the SLO's window.
async fn impact(
    slo: &Slo,
    prometheus: &Prometheus,
    incident: &PeriodIncident,
    at: DateTime<Utc>,
    window_events: Option<f64>,
) -> anyhow::Result<IncidentImpact> {
    let end = incident.resolved_at.filter(|r| *r < at).unwrap_or(at);
    let span = (end - incident.started_at).to_std().unwrap_or_default();
    let range = Duration::from_secs(span.as_secs()).max(MIN_RANGE);
    let measured = sli(prometheus, slo, range, end).await?;
    let error_ratio = measured.map(|(good, total)| (1.0 - good / total).max(0.0));
    let spent = match (measured, window_events) {
        (Some((good, total)), Some(events)) if events > 0.0 => {
            let bad = (total - good).max(0.0) * range.as_secs_f64();
            Some(round(100.0 * bad / (slo.error_budget() * events), 2))
        }
        _ => None,
    };
    let (cause, owner) = cause_and_owner(slo, incident);
    Ok(IncidentImpact {
        incident_id: incident.id,
        date: rfc3339(incident.started_at),
        duration: human(span),
        impact: impact_text(slo, error_ratio, spent, span),
        cause,
        error_ratio: error_ratio.map(|r| round(r, 6)),
        error_budget_spent: spent,
        ongoing: incident.resolved_at.is_none_or(|r| r > at),
        owner,
    })
}

fn impact_text(slo: &Slo, error_ratio: Option<f64>, spent: Option<f64>, span: Duration) -> String {
    let Some(ratio) = error_ratio else {
        return format!("no SLI data during its {}", human(span));
    };
    let mut text = format!(
        "{:.3}% bad events over {} (the objective allows {:.3}%)",
        ratio * 100.0,
        human(span),
        100.0 - slo.objective
    );
    if let Some(spent) = spent {
        let _ = write!(text, "; {spent:.2}% of the error budget spent");
    }
    text
}

/// `alertname: summary` of the first alert the SLO's matchers select, and the owner label's
/// value on the first such alert that has it.
fn cause_and_owner(slo: &Slo, incident: &PeriodIncident) -> (String, Option<String>) {
    let matching: Vec<_> = incident
        .alerts
        .iter()
        .filter(|a| slo.incidents.matches(&a.labels))
        .collect();
    let cause = matching
        .first()
        .map(|a| {
            let name = a.labels.get("alertname").map_or("unnamed alert", String::as_str);
            match a.annotations.get("summary") {
                Some(summary) if !summary.is_empty() => format!("{name}: {summary}"),
                _ => name.to_owned(),
            }
        })
        .unwrap_or_default();
    let owner = slo.owner_label.as_ref().and_then(|label| {
        matching
            .iter()
            .find_map(|a| a.labels.get(label).filter(|v| !v.is_empty()).cloned())
    });
    (cause, owner)
}

/// `2h 15m`, `3d 4h`, `45s`: the two largest units.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let text: Vec<String> = parts
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".into()
    } else {
        text.join(" ")
    }
}

/// What medic saw, turned into work: a breached or at-risk SLO, the incidents that spent the
/// most of its budget, remediations that did not fix, and a declining trend.
fn action_items(
    slo: &Slo,
    entry: &SloEntry,
    unfixed: &[UnfixedRemediation],
    at: DateTime<Utc>,
) -> Vec<ActionItem> {
    let mut spenders: Vec<&IncidentImpact> = entry
        .incidents_affecting
        .iter()
        .filter(|i| i.error_budget_spent.is_some_and(|s| s > 0.0))
        .collect();
    spenders.sort_by(|a, b| {
        b.error_budget_spent
            .partial_cmp(&a.error_budget_spent)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let top_owner = spenders
        .iter()
        .chain(entry.incidents_affecting.iter().collect::<Vec<_>>().iter())
        .find_map(|i| i.owner.clone())
        .unwrap_or_else(|| UNASSIGNED.into());
    let item = |priority: Priority, title: String, description: String, owner: String| ActionItem {
        priority,
        title,
        description,
        owner,
        due_date: priority.due(at),
    };
    let mut items = Vec::new();
    let perf = &entry.current_performance;
    let value = perf.value.map_or("no data".into(), |v| format!("{v:.3}%"));
    match perf.status {
        Status::Breached => items.push(item(
            Priority::High,
            format!("Bring {} back within its objective", slo.name),
            format!(
                "{} is at {value} over {}, below its target of {}%: prioritise reliability work over risky changes until the budget recovers.",
                slo.name, entry.measurement_window, slo.objective
            ),
            top_owner.clone(),
        )),
        Status::AtRisk => items.push(item(
            Priority::Medium,
            format!("Protect the remaining error budget of {}", slo.name),
            match perf.error_budget_remaining {
                Some(b) => format!("{} has {b:.1}% of its error budget left (SLI {value}).", slo.name),
                None => format!("{} cannot be measured: Prometheus has no data for its SLI.", slo.name),
            },
            top_owner.clone(),
        )),
        Status::Healthy => {}
    }
    for incident in spenders.iter().take(FOLLOW_UPS) {
        let spent = incident.error_budget_spent.unwrap_or_default();
        let priority = if spent >= 25.0 {
            Priority::High
        } else if spent >= 5.0 {
            Priority::Medium
        } else {
            Priority::Low
        };
        items.push(item(
            priority,
            format!(
                "Follow up incident #{} ({})",
                incident.incident_id, incident.cause
            ),
            format!(
                "Incident #{} ({}, {}) spent {spent:.2}% of the error budget of {}: find and fix its cause.",
                incident.incident_id, incident.date, incident.duration, slo.name
            ),
            incident.owner.clone().unwrap_or_else(|| UNASSIGNED.into()),
        ));
    }
    for remediation in unfixed {
        let owner = entry
            .incidents_affecting
            .iter()
            .find(|i| i.incident_id == remediation.incident_id)
            .and_then(|i| i.owner.clone())
            .unwrap_or_else(|| UNASSIGNED.into());
        items.push(item(
            Priority::High,
            format!(
                "Remediation {} on {} did not fix incident #{}",
                remediation.action, remediation.target, remediation.incident_id
            ),
            format!(
                "Remediation #{} ran at {} and its verification found the problem still there: revise the rule or its action.",
                remediation.id,
                rfc3339(remediation.started_at)
            ),
            owner,
        ));
    }
    if perf.trend == Trend::Declining {
        items.push(item(
            Priority::Low,
            format!("Investigate the declining trend of {}", slo.name),
            format!(
                "{} got worse over the report's period than over the period before.",
                slo.name
            ),
            top_owner,
        ));
    }
    items
}

/// One item per title (an incident or a remediation may concern several SLOs), keeping the
/// most urgent of each; most urgent first.
fn dedup(mut items: Vec<ActionItem>) -> Vec<ActionItem> {
    items.sort_by_key(|item| item.priority);
    let mut seen = BTreeSet::new();
    items.retain(|item| seen.insert(item.title.clone()));
    items
}

fn overall(entries: &[SloEntry]) -> Overall {
    let budgets: Vec<f64> = entries
        .iter()
        .filter_map(|e| e.current_performance.error_budget_remaining)
        .map(|b| b.clamp(0.0, 100.0))
        .collect();
    let score = (!budgets.is_empty()).then(|| round(budgets.iter().sum::<f64>() / budgets.len() as f64, 2));
    let status = entries
        .iter()
        .map(|e| e.current_performance.status)
        .max()
        .unwrap_or(Status::Healthy);
    let named = |wanted: Status| {
        entries
            .iter()
            .filter(|e| e.current_performance.status == wanted)
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let recommendation = match status {
        Status::Healthy => {
            "Every SLO is within its objective with budget to spare: keep shipping at the current pace."
                .into()
        }
        Status::AtRisk => format!(
            "Error budget is running low for {}: slow down risky changes and work through the action items.",
            named(Status::AtRisk)
        ),
        Status::Breached => format!(
            "{} breached: freeze risky releases and put reliability work first until the budget recovers.",
            named(Status::Breached)
        ),
    };
    Overall {
        score,
        status,
        recommendation,
    }
}

/// The report as Markdown: a table of the SLOs, then the incidents and the action items.
pub fn markdown(report: &Report) -> String {
    let r = &report.slo_report;
    let mut out = format!(
        "# SLO report: {}\n\nPeriod: {} to {} ({})\n\n",
        r.service, r.period.start, r.period.end, r.period.window
    );
    let na = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v}{unit}"));
    out.push_str(
        "| SLO | Target | Value | Budget left | Status | Trend | Window |\n|---|---|---|---|---|---|---|\n",
    );
    for s in &r.slos {
        let p = &s.current_performance;
        let _ = writeln!(
            out,
            "| {} | {}% | {} | {} | {} | {} | {} |",
            s.name,
            s.target,
            na(p.value, "%"),
            na(p.error_budget_remaining, "%"),
            word(&p.status),
            word(&p.trend),
            s.measurement_window
        );
    }
    for s in r.slos.iter().filter(|s| s.threshold_ms.is_some()) {
        let _ = writeln!(
            out,
            "\n{}: threshold {} ms, observed p95 {}",
            s.name,
            na(s.threshold_ms, ""),
            na(s.p95_ms, " ms")
        );
    }
    let _ = writeln!(
        out,
        "\n**Overall**: {} (score {})\n\n{}\n",
        word(&r.overall_reliability.status),
        na(r.overall_reliability.score, ""),
        r.overall_reliability.recommendation
    );
    out.push_str("## Incidents affecting the SLOs\n\n| SLO | Incident | Date | Duration | Cause | Impact |\n|---|---|---|---|---|---|\n");
    for s in &r.slos {
        for i in &s.incidents_affecting {
            let _ = writeln!(
                out,
                "| {} | #{} | {} | {} | {} | {} |",
                s.name,
                i.incident_id,
                i.date,
                i.duration,
                cell(&i.cause),
                cell(&i.impact)
            );
        }
    }
    out.push_str("\n## Action items\n\n| Priority | Title | Owner | Due |\n|---|---|---|---|\n");
    for a in &r.action_items {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            word(&a.priority),
            cell(&a.title),
            cell(&a.owner),
            a.due_date
        );
    }
    out
}

/// An enum as its JSON word.
fn word<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_status_and_trend_follow_the_documented_thresholds() {
        assert!((budget_remaining(99.4, 99.0) - 40.0).abs() < 1e-9);
        assert!((budget_remaining(99.4, 99.5) + 20.0).abs() < 1e-9);
        assert_eq!(status(Some(99.4), Some(40.0), 99.0), Status::Healthy);
        assert_eq!(status(Some(99.2), Some(20.0), 99.0), Status::AtRisk);
        assert_eq!(status(Some(98.9), Some(-10.0), 99.0), Status::Breached);
        assert_eq!(status(None, None, 99.0), Status::AtRisk);
        assert_eq!(trend(Some(99.6), Some(99.2), 99.0), Trend::Improving);
        assert_eq!(trend(Some(99.2), Some(99.6), 99.0), Trend::Declining);
        assert_eq!(trend(Some(99.52), Some(99.5), 99.0), Trend::Stable);
        assert_eq!(trend(None, Some(99.5), 99.0), Trend::Stable);
    }

    #[test]
    fn durations_read_as_the_two_largest_units() {
        assert_eq!(human(Duration::from_secs(3 * 3600)), "3h");
        assert_eq!(human(Duration::from_secs(2 * 3600 + 15 * 60 + 7)), "2h 15m");
        assert_eq!(human(Duration::from_secs(86_400 + 60)), "1d");
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::ZERO), "0s");
    }
}
