//! Replay: what a settings file would have done with a period's recorded notifications.
//!
//! The period's incidents, alert episodes, acknowledgements, windows and pauses are read in one
//! read-only snapshot ([`crate::store::replay`]); grouping into incidents is Alertmanager's
//! and does not depend on the settings, so it is taken as recorded. On a virtual clock, each
//! moment alerts joined an incident is planned again by the new rules ([`simulate`]: the
//! same [`crate::plan::Rules::plan`] intake calls), escalation steps fire at their due times
//! until the incident resolves or is acknowledged, and remediation steps are decided by the
//! guard rails against the virtual history ([`remediate`], [`rails`]), without running
//! anything. The result is compared with what was recorded ([`recorded`]), per incident
//! ([`report`]). Nothing is written and nothing is sent.

pub mod event;
pub mod rails;
pub mod recorded;
pub mod remediate;
pub mod report;
pub mod simulate;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use self::{
    remediate::Remediator,
    report::{unmatched, Difference, Report, Summary},
    simulate::{messages, plan_incident, rules_taken, Planned},
};
use crate::{
    plan::Plan,
    store::{replay::Snapshot, Store, StoreError},
};

/// Replays the period `from..until` under `plan`, reading the store in one read-only snapshot.
pub async fn run(
    store: &Store,
    plan: &Plan,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let snapshot = store.replay_snapshot(from, until, lookback(plan)).await?;
    Ok(replay(plan, &snapshot))
}

/// How far before the period actions and fires still count: the longest cooldown, budget
/// window or flapping window.
pub fn lookback(plan: &Plan) -> Duration {
    let rails = &plan.guard_rails;
    let cooldowns = plan
        .rules
        .iter()
        .flat_map(|rule| rule.remediate.iter().filter_map(|spec| spec.cooldown));
    [
        rails.cooldown,
        rails.per_target.window,
        rails.per_rule.window,
        rails.global.window,
        rails.flapping_window,
    ]
    .into_iter()
    .chain(cooldowns)
    .max()
    .unwrap_or_default()
}

/// Replays a snapshot under `plan` and compares it with what was recorded.
pub fn replay(plan: &Plan, snapshot: &Snapshot) -> Report {
    let horizon = snapshot.taken_at;
    let planned: Vec<Vec<Planned>> = snapshot
        .incidents
        .iter()
        .map(|incident| plan_incident(&plan.rules, incident))
        .collect();
    let mut remediator = Remediator::new(plan, snapshot);
    for (index, timers) in planned.iter().enumerate() {
        remediator.schedule(index, timers);
    }
    let mut outcomes = remediator.run(horizon);
    let mut recorded = recorded::recorded(snapshot);
    let mut summary = Summary::default();
    let mut differences = Vec::new();
    for (incident, timers) in snapshot.incidents.iter().zip(&planned) {
        let mut handovers = outcomes.handovers.remove(&incident.id).unwrap_or_default();
        handovers.sort();
        let mut replayed = rules_taken(incident, timers);
        replayed.extend(messages(incident, timers, &handovers, horizon));
        replayed.extend(outcomes.events.remove(&incident.id).unwrap_or_default());
        let before = recorded.remove(&incident.id).unwrap_or_default();
        summary.add(&before, &replayed);
        let (before, after) = unmatched(before, replayed);
        if before.is_empty() && after.is_empty() {
            continue;
        }
        differences.push(Difference {
            incident_id: incident.id,
            group_key: incident.group_key.clone(),
            alertname: alertname(incident),
            recorded: before,
            replayed: after,
        });
    }
    Report {
        from: snapshot.from,
        until: snapshot.until,
        notifications: snapshot.notifications,
        incidents: snapshot.incidents.len(),
        changed: differences.len(),
        summary,
        differences,
        warnings: warnings(snapshot),
    }
}

fn alertname(incident: &crate::store::replay::StoredIncident) -> String {
    incident
        .alerts
        .iter()
        .find_map(|a| a.labels.get("alertname").cloned())
        .unwrap_or_default()
}

/// The period reaches back past what `retention.deliveries` keeps.
fn warnings(snapshot: &Snapshot) -> Vec<String> {
    match snapshot.oldest_delivery {
        Some(oldest) if oldest > snapshot.from => vec![format!(
            "deliveries before {} were pruned (retention.deliveries): the notification count covers \
             what is left; incidents and their alerts are replayed as far as they are kept",
            oldest.to_rfc3339_opts(SecondsFormat::Secs, true)
        )],
        _ => Vec::new(),
    }
}
