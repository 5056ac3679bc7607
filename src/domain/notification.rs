//! A notification checked and normalised: what the store records.

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};

use crate::alertmanager::{self, Status, KV};

/// Longest `receiver` and `groupKey` accepted: they are indexed as they are, and Postgres'
/// btree entries stop at about 2.7 kB. Alertmanager's group keys are far shorter.
pub const MAX_KEY_BYTES: usize = 1024;

/// Alertmanager's identity of an alert: a hash of its label set, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Alertmanager writes 16 hex digits; anything hex up to 64 digits is accepted.
    pub fn parse(value: String) -> Result<Self, String> {
        let hex = !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
        if hex {
            Ok(Self(value))
        } else {
            Err(format!("fingerprint {value:?} is not a hexadecimal hash"))
        }
    }
}

impl Fingerprint {
    /// A 64-bit hash written as Alertmanager writes its fingerprints: 16 hex digits.
    pub fn from_hash(hash: u64) -> Self {
        Self(format!("{hash:016x}"))
    }
}

impl AsRef<str> for Fingerprint {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// One firing episode of one alert: its fingerprint and when it started.
#[derive(Debug, Clone)]
pub struct AlertEpisode {
    pub fingerprint: Fingerprint,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub status: Status,
    pub labels: KV,
    pub annotations: KV,
    pub generator_url: String,
}

/// A webhook notification that medic accepts.
#[derive(Debug, Clone)]
pub struct Notification {
    pub receiver: String,
    pub group_key: String,
    /// `resolved` only when every alert of the group, truncated ones included, has resolved.
    pub status: Status,
    pub group_labels: KV,
    pub common_labels: KV,
    pub common_annotations: KV,
    pub external_url: String,
    pub truncated_alerts: u64,
    /// Distinct episodes; a repeated one keeps its last occurrence.
    pub alerts: Vec<AlertEpisode>,
}

/// Why a well-formed JSON document is not a notification medic can take.
#[derive(Debug, thiserror::Error)]
pub enum InvalidNotification {
    #[error("unsupported payload version {0:?}; medic understands version \"4\"")]
    UnsupportedVersion(String),
    #[error("{0}")]
    Invalid(String),
}

impl Notification {
    /// Checks a decoded payload.
    pub fn parse(data: alertmanager::Data) -> Result<Self, InvalidNotification> {
        if data.version != alertmanager::SUPPORTED_VERSION {
            return Err(InvalidNotification::UnsupportedVersion(data.version));
        }
        let invalid = |message: &str| Err(InvalidNotification::Invalid(message.to_owned()));
        if data.receiver.is_empty() {
            return invalid("receiver must not be empty");
        }
        if data.group_key.is_empty() {
            return invalid("groupKey must not be empty");
        }
        if data.alerts.is_empty() {
            return invalid("alerts must not be empty");
        }
        // Indexed as they are: longer ones could never be stored, so they are refused now.
        for (name, value) in [("receiver", &data.receiver), ("groupKey", &data.group_key)] {
            if value.len() > MAX_KEY_BYTES {
                return Err(InvalidNotification::Invalid(format!(
                    "{name} is {} bytes; at most {MAX_KEY_BYTES} are accepted",
                    value.len()
                )));
            }
        }
        let top = [&data.group_labels, &data.common_labels, &data.common_annotations];
        if has_nul([&data.receiver, &data.group_key, &data.external_url], top) {
            return invalid("a string contains a NUL character, which Postgres cannot store");
        }
        // Alertmanager says "resolved" only when every alert of the group has resolved.
        if data.status == Status::Resolved && data.alerts.iter().any(|a| a.status == Status::Firing) {
            return invalid("status is resolved, but an alert of the group is firing");
        }
        // A repeated episode keeps its last occurrence, in that place: linear in the size.
        let mut slots: Vec<Option<AlertEpisode>> = Vec::with_capacity(data.alerts.len());
        let mut seen: HashMap<(Fingerprint, DateTime<Utc>), usize> =
            HashMap::with_capacity(data.alerts.len());
        for (index, alert) in data.alerts.into_iter().enumerate() {
            let episode = AlertEpisode::parse(alert)
                .map_err(|e| InvalidNotification::Invalid(format!("alerts[{index}]: {e}")))?;
            let key = (episode.fingerprint.clone(), episode.starts_at);
            if let Some(earlier) = seen.insert(key, slots.len()) {
                slots[earlier] = None;
            }
            slots.push(Some(episode));
        }
        let alerts: Vec<AlertEpisode> = slots.into_iter().flatten().collect();
        Ok(Self {
            receiver: data.receiver,
            group_key: data.group_key,
            status: data.status,
            group_labels: data.group_labels,
            common_labels: data.common_labels,
            common_annotations: data.common_annotations,
            external_url: data.external_url,
            truncated_alerts: data.truncated_alerts,
            alerts,
        })
    }

    /// How many of the alerts carried are firing.
    pub fn firing_count(&self) -> usize {
        self.alerts.iter().filter(|a| a.status == Status::Firing).count()
    }
}

impl AlertEpisode {
    /// `fingerprint@startsAt`: names this episode in timers and remediations, so that it is
    /// acted on once however often it is delivered.
    pub fn key(&self) -> String {
        format!(
            "{}@{}",
            self.fingerprint.as_ref(),
            self.starts_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    }

    fn parse(alert: alertmanager::Alert) -> Result<Self, String> {
        let fingerprint = Fingerprint::parse(alert.fingerprint)?;
        if alert.labels.is_empty() {
            return Err("labels must not be empty".into());
        }
        if has_nul([&alert.generator_url], [&alert.labels, &alert.annotations]) {
            return Err("a string contains a NUL character, which Postgres cannot store".into());
        }
        Ok(Self {
            fingerprint,
            // Postgres keeps microseconds; the episode key must compare equal there and here.
            starts_at: alert.starts_at.trunc_subsecs(6),
            ends_at: alert.ends_at,
            status: alert.status,
            labels: alert.labels,
            annotations: alert.annotations,
            generator_url: alert.generator_url,
        })
    }
}

/// Postgres' text and jsonb cannot hold U+0000; such a payload could never be stored.
fn has_nul<const S: usize, const M: usize>(strings: [&String; S], maps: [&KV; M]) -> bool {
    let nul = |s: &String| s.contains('\0');
    strings.into_iter().any(nul) || maps.into_iter().flatten().any(|(k, v)| nul(k) || nul(v))
}
