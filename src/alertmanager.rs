//! Alertmanager's webhook payload (version 4), as Alertmanager 0.25+ sends it.
//!
//! Names mirror Alertmanager's own (`Data`, `Alert`, `groupKey`). Unknown fields are ignored,
//! since newer versions add some (`notification_reason`, `routeLabels`).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Deserializer};

/// The only payload version medic understands.
pub const SUPPORTED_VERSION: &str = "4";

/// Label or annotation names to values.
pub type KV = BTreeMap<String, String>;

/// One webhook notification: a group of alerts sent to one receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Data {
    pub version: String,
    pub receiver: String,
    pub status: Status,
    pub alerts: Vec<Alert>,
    pub group_key: String,
    #[serde(default)]
    pub group_labels: KV,
    #[serde(default)]
    pub common_labels: KV,
    #[serde(default)]
    pub common_annotations: KV,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    /// Alerts left out because of the receiver's `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
}

/// One alert as Alertmanager reports it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: Status,
    pub labels: KV,
    #[serde(default)]
    pub annotations: KV,
    pub starts_at: DateTime<Utc>,
    /// `None` for Go's zero time (`0001-01-01T00:00:00Z`), which firing alerts carry.
    #[serde(default, deserialize_with = "go_time")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// `firing` or `resolved`, for a group or an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// Go's `time.Time{}` marshals as year 1; it means "not set".
fn go_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(Option::<DateTime<Utc>>::deserialize(deserializer)?.filter(|t| t.year() > 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert_json(ends_at: &str) -> String {
        format!(
            r#"{{"status":"firing","labels":{{"alertname":"A"}},"annotations":{{}},
            "startsAt":"2026-11-26T15:53:17.755987228Z","endsAt":"{ends_at}",
            "generatorURL":"","fingerprint":"edac2885b0ec6500","extra":1}}"#
        )
    }

    #[test]
    fn go_zero_time_means_no_end() {
        let alert: Alert = serde_json::from_str(&alert_json("0001-01-01T00:00:00Z")).unwrap();
        assert_eq!(alert.ends_at, None);
    }

    #[test]
    fn any_fractional_precision_is_accepted() {
        for ends_at in [
            "2026-11-26T15:53:19Z",
            "2026-11-26T15:53:19.7Z",
            "2026-11-26T15:53:19.123456789Z",
        ] {
            let alert: Alert = serde_json::from_str(&alert_json(ends_at)).unwrap();
            assert_eq!(
                alert.ends_at.unwrap().to_rfc3339().get(..19),
                Some("2026-11-26T15:53:19")
            );
        }
        let alert: Alert = serde_json::from_str(&alert_json("2026-11-26T16:53:19.76+01:00")).unwrap();
        assert_eq!(alert.ends_at.unwrap().timestamp_subsec_millis(), 760);
    }
}
