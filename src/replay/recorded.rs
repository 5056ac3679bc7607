//! What medic recorded about each incident, as [`Event`]s: the rules its timers name, every
//! occurrence of a message that was sent (or failed for good: a decision, whatever the
//! delivery did) at its due time, and every remediation decision.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::event::{decision_word, Event, Fact};
use crate::store::replay::{Snapshot, StoredTimer};

/// Timer kinds that are messages to a notifier.
pub const MESSAGE_KINDS: [&str; 6] = [
    "opened",
    "escalation",
    "acknowledged",
    "resolved",
    "remediated",
    "approval",
];
/// Timer kinds whose rule took the incident's alerts.
const RULE_KINDS: [&str; 3] = ["opened", "escalation", "remediation"];

/// The recorded events of every incident of the snapshot, by incident id.
pub fn recorded(snapshot: &Snapshot) -> BTreeMap<i64, Vec<Event>> {
    let created: BTreeMap<i64, DateTime<Utc>> =
        snapshot.incidents.iter().map(|i| (i.id, i.created_at)).collect();
    let mut events: BTreeMap<i64, Vec<Event>> = created.keys().map(|id| (*id, Vec::new())).collect();
    let mut rules: BTreeSet<(i64, &str)> = BTreeSet::new();
    for timer in &snapshot.timers {
        let Some(list) = events.get_mut(&timer.incident_id) else {
            continue;
        };
        if RULE_KINDS.contains(&timer.kind.as_str()) && rules.insert((timer.incident_id, &timer.rule)) {
            let at = created[&timer.incident_id];
            list.push(Event {
                at,
                fact: Fact::Rule {
                    rule: timer.rule.clone(),
                },
            });
        }
        if MESSAGE_KINDS.contains(&timer.kind.as_str()) {
            list.extend(messages(timer));
        }
    }
    for r in &snapshot.remediations {
        if let Some(list) = events.get_mut(&r.incident_id) {
            list.push(Event {
                at: r.started_at,
                fact: Fact::Remediation {
                    rule: r.rule.clone(),
                    step: r.step,
                    action: r.action.clone(),
                    target: r.target.clone(),
                    decision: decision_word(&r.result, r.acted),
                },
            });
        }
    }
    events.values_mut().for_each(|list| list.sort_by_key(|e| e.at));
    events
}

/// Each fired occurrence of a timer at its due time: a repeat's occurrences are `repeat`
/// apart, counted back from the current one.
fn messages(timer: &StoredTimer) -> impl Iterator<Item = Event> + '_ {
    let repeat = TimeDelta::milliseconds(timer.repeat_ms.unwrap_or(0));
    timer.fired.iter().map(move |&occurrence| Event {
        at: timer.scheduled_at - repeat * (timer.occurrence - occurrence),
        fact: Fact::Message {
            notifier: timer.notifier.clone(),
            kind: timer.kind.clone(),
            rule: timer.rule.clone(),
            step: timer.step,
            channel: timer.channel.clone(),
        },
    })
}
