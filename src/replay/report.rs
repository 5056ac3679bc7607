//! The comparison: per incident, the recorded and the replayed facts that have no partner on
//! the other side, the summary counts, and the report as JSON or text.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;

use super::event::{Event, Fact};

/// How far apart a recorded and a replayed fact may be in time and still be the same: the
/// engine decides a remediation, and hands an incident over, moments after the notification
/// that caused it was recorded; due times fixed by the settings match to the microsecond.
pub const TOLERANCE: TimeDelta = TimeDelta::seconds(5);

/// How long after its due time a recorded remediation decision is still taken as the
/// engine's decision of that work, and how far apart a recorded and a replayed decision may
/// be: the engine decides when a replica is free, which under load (or behind a queue of due
/// timers) is seconds after the notification, not moments. What a decision says is compared
/// exactly; only its time gets this room.
pub const ENGINE_LAG: TimeDelta = TimeDelta::seconds(60);

/// What the replay found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Notifications received in the period (deliveries still kept).
    pub notifications: i64,
    pub incidents: usize,
    /// Incidents whose decisions differ.
    pub changed: usize,
    pub summary: Summary,
    pub differences: Vec<Difference>,
    /// What the reader must know about the replay's limits (pruned history).
    pub warnings: Vec<String>,
}

/// Counts over the whole period.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub messages: Counts,
    pub pages: Counts,
    pub remediations: Counts,
}

/// One count, recorded and replayed.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub recorded: usize,
    pub replayed: usize,
}

/// One incident whose decisions differ: the facts of each side the other lacks.
#[derive(Debug, Serialize)]
pub struct Difference {
    pub incident_id: i64,
    pub group_key: String,
    pub alertname: String,
    pub recorded: Vec<Event>,
    pub replayed: Vec<Event>,
}

impl Summary {
    /// Adds one incident's facts.
    pub fn add(&mut self, recorded: &[Event], replayed: &[Event]) {
        let count = |events: &[Event], test: fn(&Event) -> bool| events.iter().filter(|e| test(e)).count();
        self.messages.recorded += count(recorded, Event::is_message);
        self.messages.replayed += count(replayed, Event::is_message);
        self.pages.recorded += count(recorded, Event::is_page);
        self.pages.replayed += count(replayed, Event::is_page);
        self.remediations.recorded += count(recorded, Event::is_action);
        self.remediations.replayed += count(replayed, Event::is_action);
    }
}

/// The facts of each side without a partner on the other: the same fact within
/// [`TOLERANCE`] ([`ENGINE_LAG`] for a remediation decision and its report or request for
/// approval). Both come back in time order.
pub fn unmatched(mut recorded: Vec<Event>, mut replayed: Vec<Event>) -> (Vec<Event>, Vec<Event>) {
    recorded.sort_by_key(|e| e.at);
    replayed.sort_by_key(|e| e.at);
    let mut taken = vec![false; recorded.len()];
    let mut left = Vec::new();
    for event in replayed {
        let partner = recorded.iter().enumerate().position(|(i, r)| {
            !taken[i] && r.fact == event.fact && (r.at - event.at).abs() <= room(&event.fact)
        });
        match partner {
            Some(i) => taken[i] = true,
            None => left.push(event),
        }
    }
    let recorded = recorded
        .into_iter()
        .zip(taken)
        .filter(|(_, taken)| !taken)
        .map(|(e, _)| e)
        .collect();
    (recorded, left)
}

/// How far apart in time two equal facts may be and still be one.
fn room(fact: &Fact) -> TimeDelta {
    match fact {
        Fact::Remediation { .. } => ENGINE_LAG,
        // What a decision tells people is due when the decision was made.
        Fact::Message { kind, .. } if kind == "remediated" || kind == "approval" => ENGINE_LAG,
        Fact::Rule { .. } | Fact::Message { .. } => TOLERANCE,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        writeln!(f, "replay {} .. {}", time(&self.from), time(&self.until))?;
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        writeln!(
            f,
            "{} notifications, {} incidents, {} changed",
            self.notifications, self.incidents, self.changed
        )?;
        let s = &self.summary;
        for (name, c) in [
            ("messages", &s.messages),
            ("pages", &s.pages),
            ("remediations", &s.remediations),
        ] {
            writeln!(
                f,
                "  {name:<13} recorded {:>6}  replayed {:>6}",
                c.recorded, c.replayed
            )?;
        }
        if !self.differences.is_empty() {
            writeln!(f, "\n(- only in what medic did, + only in the replay)")?;
        }
        for d in &self.differences {
            writeln!(
                f,
                "\nincident {} {} ({})",
                d.incident_id, d.alertname, d.group_key
            )?;
            for (sign, events) in [("-", &d.recorded), ("+", &d.replayed)] {
                for e in events.iter() {
                    writeln!(f, "  {sign} {} {}", time(&e.at), describe(&e.fact))?;
                }
            }
        }
        Ok(())
    }
}

/// One fact in a line.
fn describe(fact: &Fact) -> String {
    match fact {
        Fact::Rule { rule } => format!("rule {rule} takes it"),
        Fact::Message {
            notifier,
            kind,
            rule,
            step,
            ..
        } => {
            format!("message {kind} to {notifier} (rule {rule}, step {step})")
        }
        Fact::Remediation {
            rule,
            step,
            action,
            target,
            decision,
        } => {
            format!("remediation {action} on {target}: {decision} (rule {rule}, step {step})")
        }
    }
}
