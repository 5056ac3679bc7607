//! One incident on the virtual clock: the timers its notifications ask for (planned by the
//! same [`Rules::plan`] intake calls, at each moment alerts joined), then the messages they
//! become: announcements, escalation steps and their repeats until the incident resolves or is
//! acknowledged (brought forward by a remediation's hand-over), and the acknowledgement and
//! resolution to every notifier that heard of it.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::event::{Event, Fact};
use crate::{
    alertmanager::{Status, KV},
    domain::{AlertEpisode, Fingerprint, Notification, PlannedTimer, TimerKind},
    plan::Rules,
    store::{
        replay::{StoredAlert, StoredIncident},
        timer_work,
    },
};

/// A timer as intake would have written it: due `after` the incident opened, scheduled by
/// the notification recorded at `arrival`; `seq` is its insertion order (the table's id).
#[derive(Debug, Clone)]
pub struct Planned {
    pub seq: usize,
    pub timer: PlannedTimer,
    pub due: DateTime<Utc>,
    pub arrival: DateTime<Utc>,
}

/// The timers an incident's notifications ask for under `rules`. Intake schedules them when
/// the incident opens and when new alerts join it while it fires unacknowledged; the unique
/// key keeps one of each.
pub fn plan_incident(rules: &Rules, incident: &StoredIncident) -> Vec<Planned> {
    // Opened already resolved: medic never saw it fire, and scheduled nothing.
    if incident.resolved_at == Some(incident.created_at) {
        return Vec::new();
    }
    let mut arrivals: Vec<DateTime<Utc>> = incident.alerts.iter().map(|a| a.first_seen_at).collect();
    arrivals.sort();
    arrivals.dedup();
    let mut keys = HashSet::new();
    let mut planned = Vec::new();
    for arrival in arrivals {
        let open = arrival <= incident.created_at || live_at(incident, arrival);
        if !open {
            continue;
        }
        // Gathering cluster context is evidence, not a decision: it belongs to no rule and sends
        // nothing a person would be paged by, so replay leaves it out.
        let decisions = rules
            .plan(&notification_at(incident, arrival))
            .into_iter()
            .filter(|timer| !matches!(timer.kind(), TimerKind::Context | TimerKind::ContextReady));
        for timer in decisions {
            // The store's unique key: a timer is scheduled once per incident.
            let (notifier, subject) = timer_work::key(&timer.work);
            let key = (
                timer.kind(),
                timer.rule.clone(),
                timer.work.step(),
                notifier,
                subject,
            );
            if keys.insert(key) {
                let after = TimeDelta::from_std(timer.after).unwrap_or(TimeDelta::MAX);
                planned.push(Planned {
                    seq: planned.len(),
                    due: incident.created_at + after,
                    arrival,
                    timer,
                });
            }
        }
    }
    planned
}

/// Firing and not acknowledged at `at`.
pub fn live_at(incident: &StoredIncident, at: DateTime<Utc>) -> bool {
    incident.resolved_at.is_none_or(|r| at < r) && incident.acked_at.is_none_or(|a| at < a)
}

/// What Alertmanager's notification at `at` carried that matters to the plan: the alerts
/// then firing.
fn notification_at(incident: &StoredIncident, at: DateTime<Utc>) -> Notification {
    let alerts = incident
        .alerts
        .iter()
        .filter(|a| a.first_seen_at <= at && a.resolved_at.is_none_or(|r| r > at))
        .filter_map(episode)
        .collect();
    Notification {
        receiver: incident.receiver.clone(),
        group_key: incident.group_key.clone(),
        status: Status::Firing,
        group_labels: KV::new(),
        common_labels: KV::new(),
        common_annotations: KV::new(),
        external_url: String::new(),
        truncated_alerts: 0,
        alerts,
    }
}

/// A stored episode as intake parsed it, firing.
fn episode(alert: &StoredAlert) -> Option<AlertEpisode> {
    Some(AlertEpisode {
        fingerprint: Fingerprint::parse(alert.fingerprint.clone()).ok()?,
        starts_at: alert.starts_at,
        ends_at: alert.ends_at,
        status: Status::Firing,
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        generator_url: alert.generator_url.clone(),
    })
}

/// One escalation timer on the virtual clock.
struct Escalation<'a> {
    planned: &'a Planned,
    next: Option<DateTime<Utc>>,
    first_fired: Option<DateTime<Utc>>,
}

/// The messages of one incident up to `horizon`, with the hand-overs remediation asked for
/// (times at which the first pending escalation step is brought forward).
pub fn messages(
    incident: &StoredIncident,
    planned: &[Planned],
    handovers: &[DateTime<Utc>],
    horizon: DateTime<Utc>,
) -> Vec<Event> {
    let mut events: Vec<Event> = planned
        .iter()
        .filter(|p| p.timer.kind() == TimerKind::Opened && p.due <= horizon)
        .map(|p| message(p, p.due))
        .collect();
    let mut escalations: Vec<Escalation> = planned
        .iter()
        .filter(|p| p.timer.kind() == TimerKind::Escalation)
        .map(|planned| Escalation {
            planned,
            next: Some(planned.due),
            first_fired: None,
        })
        .collect();
    run_escalations(incident, &mut escalations, handovers, horizon, &mut events);
    for (kind, at) in [
        ("acknowledged", incident.acked_at),
        ("resolved", incident.resolved_at),
    ] {
        match at {
            Some(at) if at <= horizon && at > incident.created_at => {
                events.extend(closing(kind, at, planned, &escalations));
            }
            _ => {}
        }
    }
    events
}

/// Fires escalation occurrences in time order, applying hand-overs as they come.
fn run_escalations(
    incident: &StoredIncident,
    escalations: &mut [Escalation],
    handovers: &[DateTime<Utc>],
    horizon: DateTime<Utc>,
    events: &mut Vec<Event>,
) {
    let stop = [incident.resolved_at, incident.acked_at]
        .into_iter()
        .flatten()
        .min();
    let mut handovers = handovers.iter().copied().peekable();
    loop {
        let next = escalations
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.next.map(|at| (at, e.planned.seq, i)))
            .min();
        if let Some(&h) = handovers.peek() {
            if next.is_none_or(|(at, _, _)| h < at) {
                handovers.next();
                hand_over(escalations, h, stop);
                continue;
            }
        }
        let Some((at, _, i)) = next else { break };
        let escalation = &mut escalations[i];
        if at > horizon || stop.is_some_and(|s| s <= at) {
            escalation.next = None;
            continue;
        }
        events.push(message(escalation.planned, at));
        escalation.first_fired.get_or_insert(at);
        escalation.next = escalation.planned.timer.repeat.map(|r| {
            let repeat = TimeDelta::from_std(r).unwrap_or(TimeDelta::MAX);
            (at + repeat).max(escalation.planned.arrival)
        });
    }
}

/// The incident's first pending escalation step (the lowest step among pending timers
/// scheduled by then) is due now, if it was due later.
fn hand_over(escalations: &mut [Escalation], at: DateTime<Utc>, stop: Option<DateTime<Utc>>) {
    if stop.is_some_and(|s| s <= at) {
        return;
    }
    let pending = |e: &Escalation| e.next.is_some() && e.planned.arrival <= at;
    let Some(step) = escalations
        .iter()
        .filter(|e| pending(e))
        .map(|e| e.planned.timer.work.step())
        .min()
    else {
        return;
    };
    for e in escalations.iter_mut() {
        if pending(e) && e.planned.timer.work.step() == step && e.next.is_some_and(|n| n > at) {
            e.next = Some(at);
        }
    }
}

/// The acknowledgement or resolution, once to every notifier that heard of the incident by
/// then (announced to, or reached by an escalation), under the rule of its first timer.
fn closing<'a>(
    kind: &'a str,
    at: DateTime<Utc>,
    planned: &'a [Planned],
    escalations: &'a [Escalation],
) -> impl Iterator<Item = Event> + 'a {
    let heard = planned
        .iter()
        .filter(move |p| p.timer.kind() == TimerKind::Opened && p.arrival <= at)
        .chain(
            escalations
                .iter()
                .filter(move |e| e.first_fired.is_some_and(|f| f < at))
                .map(|e| e.planned),
        );
    let mut first: Vec<&Planned> = Vec::new();
    for p in heard {
        match first
            .iter_mut()
            .find(|f| f.timer.work.notifier() == p.timer.work.notifier())
        {
            Some(f) if p.seq < f.seq => *f = p,
            Some(_) => {}
            None => first.push(p),
        }
    }
    first.into_iter().map(move |p| Event {
        at,
        fact: Fact::Message {
            notifier: p.timer.work.notifier().unwrap_or_default().to_owned(),
            kind: kind.to_owned(),
            rule: p.timer.rule.clone(),
            step: 0,
            channel: p.timer.channel.as_str().to_owned(),
        },
    })
}

fn message(planned: &Planned, at: DateTime<Utc>) -> Event {
    Event {
        at,
        fact: Fact::Message {
            notifier: planned.timer.work.notifier().unwrap_or_default().to_owned(),
            kind: planned.timer.kind().as_str().to_owned(),
            rule: planned.timer.rule.clone(),
            step: planned.timer.work.step(),
            channel: planned.timer.channel.as_str().to_owned(),
        },
    }
}

/// The rules that took the incident's alerts (those that asked for a timer).
pub fn rules_taken(incident: &StoredIncident, planned: &[Planned]) -> Vec<Event> {
    let mut seen = HashSet::new();
    planned
        .iter()
        .filter(|p| seen.insert(p.timer.rule.as_str()))
        .map(|p| Event {
            at: incident.created_at,
            fact: Fact::Rule {
                rule: p.timer.rule.clone(),
            },
        })
        .collect()
}
