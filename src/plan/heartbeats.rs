//! Heartbeats compiled: which alerts renew which heartbeat, and the notification medic records
//! when one stops. Each heartbeat's `notify` and `escalation` become a rule of its own, put
//! before the configured ones, that takes only its HeartbeatMissing alert; so the incident is
//! told, escalated, acknowledged and muted exactly as any other.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};

use super::{matchers::Matchers, rules::Rule};
use crate::{
    alertmanager::{Status, KV},
    config::{HeartbeatSettings, NotifierType, Problem},
    domain::{AlertEpisode, Fingerprint, Notification, Renewal, HEARTBEAT_LABEL, HEARTBEAT_MISSING},
};

/// The receiver HeartbeatMissing notifications are recorded under.
pub const RECEIVER: &str = "medic";

/// The configured heartbeats, in config order.
#[derive(Debug, Default)]
pub struct Heartbeats {
    list: Vec<Heartbeat>,
}

/// One heartbeat, compiled.
#[derive(Debug)]
pub struct Heartbeat {
    pub name: String,
    matchers: Matchers,
    /// One heartbeat per value of this label.
    pub per: Option<String>,
    /// `expect_every + grace`: how long without a renewal before it is missing.
    pub window: Duration,
    /// A `per` value not seen for this long is forgotten.
    pub forget_after: Duration,
    severity: String,
    runbook_url: Option<String>,
}

/// A notification split: the heartbeats its alerts renew, and what is left to record.
#[derive(Debug)]
pub struct Split {
    /// Distinct, in key order.
    pub renewals: Vec<Renewal>,
    /// The alerts no heartbeat takes, as a notification of their own; `None` when none is left.
    pub rest: Option<Notification>,
}

impl Heartbeats {
    /// Compiles the heartbeats, and the rules that tell and escalate their incidents.
    pub fn compile(
        settings: &[HeartbeatSettings],
        notifiers: &BTreeMap<String, NotifierType>,
        problems: &mut Vec<Problem>,
    ) -> (Heartbeats, Vec<Rule>) {
        let mut list = Vec::new();
        let mut rules = Vec::new();
        for (i, heartbeat) in settings.iter().enumerate() {
            let at = format!("heartbeats[{i}]");
            let matchers = Matchers::parse(&heartbeat.matchers)
                .map_err(|e| problems.push(Problem::new(format!("{at}.matchers"), e.to_string())));
            let name = Heartbeat::rule_name(&heartbeat.name);
            let rule = Rule::for_heartbeat(&at, name, heartbeat, notifiers, problems);
            if let (Ok(matchers), Some(rule)) = (matchers, rule) {
                list.push(Heartbeat::new(heartbeat, matchers));
                rules.push(rule);
            }
        }
        (Heartbeats { list }, rules)
    }

    /// Every heartbeat, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Heartbeat> {
        self.list.iter()
    }

    /// The heartbeat of this name.
    pub fn get(&self, name: &str) -> Option<&Heartbeat> {
        self.list.iter().find(|h| h.name == name)
    }

    /// Whether any heartbeat is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The heartbeat an alert with these labels renews: the first whose matchers hold.
    fn taking(&self, labels: &KV) -> Option<&Heartbeat> {
        self.list.iter().find(|h| h.matchers.matches(labels))
    }

    /// Splits a notification: firing alerts a heartbeat takes renew it; resolved ones (the
    /// heartbeat's alert ending) renew nothing and are dropped; the rest is recorded as usual.
    pub fn split(&self, notification: Notification) -> Split {
        if self.list.is_empty() {
            return Split {
                renewals: Vec::new(),
                rest: Some(notification),
            };
        }
        let mut renewals = Vec::new();
        let mut rest = Vec::new();
        for alert in notification.alerts.iter() {
            match self.taking(&alert.labels) {
                Some(heartbeat) if alert.status == Status::Firing => {
                    renewals.push(heartbeat.renewal(&alert.labels))
                }
                Some(_) => {}
                None => rest.push(alert.clone()),
            }
        }
        renewals.sort();
        renewals.dedup();
        Split {
            renewals,
            rest: remainder(notification, rest),
        }
    }
}

/// The notification with only `alerts` (all of them when nothing was taken); `None` when
/// nothing is left. Its status says resolved when every alert left has resolved, as
/// Alertmanager's would have without the heartbeat's.
fn remainder(mut notification: Notification, alerts: Vec<AlertEpisode>) -> Option<Notification> {
    if alerts.is_empty() {
        return None;
    }
    if alerts.len() < notification.alerts.len() {
        let all_resolved = alerts.iter().all(|a| a.status == Status::Resolved);
        if all_resolved && notification.truncated_alerts == 0 {
            notification.status = Status::Resolved;
        }
        notification.alerts = alerts;
    }
    Some(notification)
}

impl Heartbeat {
    fn new(settings: &HeartbeatSettings, matchers: Matchers) -> Self {
        Self {
            name: settings.name.clone(),
            matchers,
            per: settings.per.clone(),
            window: settings.window(),
            forget_after: settings.forget_after.0,
            severity: settings.severity.clone(),
            runbook_url: settings.runbook_url.clone(),
        }
    }

    /// The name of the rule that tells and escalates this heartbeat's incidents.
    pub fn rule_name(name: &str) -> String {
        format!("heartbeat/{name}")
    }

    /// The renewal an alert with these labels makes.
    fn renewal(&self, labels: &KV) -> Renewal {
        let per_value = self
            .per
            .as_ref()
            .and_then(|label| labels.get(label))
            .cloned()
            .unwrap_or_default();
        Renewal {
            name: self.name.clone(),
            per_value,
            window: self.window,
        }
    }

    /// The labels of this heartbeat's HeartbeatMissing alert for `per_value`.
    pub fn missing_labels(&self, per_value: &str) -> KV {
        let mut labels = KV::new();
        labels.insert("alertname".into(), HEARTBEAT_MISSING.into());
        labels.insert(HEARTBEAT_LABEL.into(), self.name.clone());
        labels.insert("severity".into(), self.severity.clone());
        if let Some(per) = &self.per {
            labels.insert(per.clone(), per_value.to_owned());
        }
        labels
    }

    /// The notification that opens this heartbeat's incident for `per_value`, missing since
    /// `since` (its deadline): the same on every replica, so it is one alert episode.
    pub fn missing(
        &self,
        per_value: &str,
        since: DateTime<Utc>,
        last_seen: Option<DateTime<Utc>>,
    ) -> Notification {
        let labels = self.missing_labels(per_value);
        let annotations = self.annotations(per_value, last_seen);
        let mut group_labels = KV::new();
        group_labels.insert(HEARTBEAT_LABEL.into(), self.name.clone());
        if let Some(per) = &self.per {
            group_labels.insert(per.clone(), per_value.to_owned());
        }
        let alert = AlertEpisode {
            fingerprint: fingerprint(&labels),
            starts_at: since,
            ends_at: None,
            status: Status::Firing,
            labels: labels.clone(),
            annotations: annotations.clone(),
            generator_url: String::new(),
        };
        Notification {
            receiver: RECEIVER.to_owned(),
            group_key: format!("heartbeat:{}", serde_json::json!(group_labels)),
            status: Status::Firing,
            group_labels,
            common_labels: labels,
            common_annotations: annotations,
            external_url: String::new(),
            truncated_alerts: 0,
            alerts: vec![alert],
        }
    }

    fn annotations(&self, per_value: &str, last_seen: Option<DateTime<Utc>>) -> KV {
        let which = match &self.per {
            Some(per) => format!("{} ({per}={per_value:?})", self.name),
            None => self.name.clone(),
        };
        let seen = match last_seen {
            Some(at) => format!(
                "last seen {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => "not seen since medic started".to_owned(),
        };
        let mut annotations = KV::new();
        annotations.insert(
            "summary".into(),
            format!("Heartbeat {which} stopped: the alerting pipeline may be down"),
        );
        annotations.insert(
            "description".into(),
            format!(
                "No heartbeat alert for {}s ({seen}). Prometheus or Alertmanager may be down, \
                 or the route that sends it.",
                self.window.as_secs()
            ),
        );
        if let Some(url) = &self.runbook_url {
            annotations.insert("runbook_url".into(), url.clone());
        }
        annotations
    }
}

/// A stable 64-bit FNV-1a hash of the labels, in hex, as Alertmanager's fingerprints look.
fn fingerprint(labels: &KV) -> Fingerprint {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, value) in labels {
        for byte in name.bytes().chain([0xff]).chain(value.bytes()).chain([0xfe]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    Fingerprint::from_hash(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_sixteen_hex_digits_and_differ_by_label() {
        let mut a = KV::new();
        a.insert("cluster".into(), "a".into());
        let mut b = KV::new();
        b.insert("cluster".into(), "b".into());
        assert_eq!(fingerprint(&a).as_ref().len(), 16);
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
    }
}
