//! What the integrations keep: the one Slack message of each incident and slack_app
//! notifier, the Slack requests already taken (so a replay is refused by every replica), and
//! the Alertmanager silences made for incidents.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::Act;

use super::{
    audit::{self, Actor},
    database::Store,
    error::StoreError,
};

/// A silence made for an incident, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SilenceRecord {
    pub silence_id: String,
    pub created_by: String,
    pub ends_at: DateTime<Utc>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expired_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The channel and `ts` of an incident's message from this notifier, if it was posted.
    pub async fn slack_message(
        &self,
        incident_id: i64,
        notifier: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT channel, ts FROM slack_messages WHERE incident_id = $1 AND notifier = $2",
                &[&incident_id, &notifier],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    /// Records an incident's message; if one was recorded first (another replica's post), that
    /// one stands and is returned.
    pub async fn record_slack_message(
        &self,
        incident_id: i64,
        notifier: &str,
        channel: &str,
        ts: &str,
    ) -> Result<(String, String), StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "WITH added AS (
                     INSERT INTO slack_messages (incident_id, notifier, channel, ts) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING RETURNING channel, ts)
                 SELECT channel, ts FROM added
                 UNION ALL
                 SELECT channel, ts FROM slack_messages WHERE incident_id = $1 AND notifier = $2
                 LIMIT 1",
                &[&incident_id, &notifier, &channel, &ts],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// The labels a silence for the incident matches: its group's labels, else (a group of
    /// everything) the labels its alerts share.
    pub async fn silence_labels(
        &self,
        incident_id: i64,
    ) -> Result<Option<crate::alertmanager::KV>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT CASE WHEN g.group_labels = '{}' THEN i.common_labels ELSE g.group_labels END
                   FROM incidents i JOIN alert_groups g ON g.id = i.group_id WHERE i.id = $1",
                &[&incident_id],
            )
            .await?;
        row.map(|row| {
            let labels: serde_json::Value = row.get(0);
            serde_json::from_value(labels).map_err(|e| StoreError::Other(e.into()))
        })
        .transpose()
    }

    /// The incident's silences, newest first.
    pub async fn silences(&self, incident_id: i64) -> Result<Vec<SilenceRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT silence_id, created_by, ends_at, note, created_at, expired_at FROM incident_silences
                  WHERE incident_id = $1 ORDER BY created_at DESC",
                &[&incident_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| SilenceRecord {
                silence_id: row.get(0),
                created_by: row.get(1),
                ends_at: row.get(2),
                note: row.get(3),
                created_at: row.get(4),
                expired_at: row.get(5),
            })
            .collect())
    }

    /// Records a silence made for the incident, with the audit trail. `replaces`: the silence
    /// this one extends, which ends now if Alertmanager gave the extension a new id (the same
    /// id only moves its end).
    pub async fn record_silence(
        &self,
        incident_id: i64,
        silence_id: &str,
        ends_at: DateTime<Utc>,
        note: Option<&str>,
        actor: &Actor,
        replaces: Option<&str>,
    ) -> Result<SilenceRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(old) = replaces.filter(|old| *old != silence_id) {
            tx.execute(
                "UPDATE incident_silences SET expired_at = now()
                  WHERE incident_id = $1 AND silence_id = $2 AND expired_at IS NULL",
                &[&incident_id, &old],
            )
            .await?;
        }
        let row = tx
            .query_one(
                "INSERT INTO incident_silences (incident_id, silence_id, created_by, ends_at, note)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (incident_id, silence_id) DO UPDATE SET ends_at = EXCLUDED.ends_at
                 RETURNING created_at, created_by, note, ends_at",
                &[&incident_id, &silence_id, &actor.name, &ends_at, &note],
            )
            .await?;
        let detail = serde_json::json!({"silence_id": silence_id, "ends_at": ends_at, "note": note,
                                        "extends": replaces});
        audit::record(&tx, Some(incident_id), Act::Silence, actor, &detail).await?;
        tx.commit().await?;
        Ok(SilenceRecord {
            silence_id: silence_id.to_owned(),
            created_by: row.get(1),
            ends_at: row.get(3),
            note: row.get(2),
            created_at: row.get(0),
            expired_at: None,
        })
    }

    /// Records that a silence was expired, with the audit trail.
    pub async fn expire_silence(
        &self,
        incident_id: i64,
        silence_id: &str,
        actor: &Actor,
    ) -> Result<SilenceRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "UPDATE incident_silences SET expired_at = now()
                  WHERE incident_id = $1 AND silence_id = $2
                 RETURNING created_by, ends_at, note, created_at, expired_at",
                &[&incident_id, &silence_id],
            )
            .await?;
        let detail = serde_json::json!({"silence_id": silence_id});
        audit::record(&tx, Some(incident_id), Act::Unsilence, actor, &detail).await?;
        tx.commit().await?;
        Ok(SilenceRecord {
            silence_id: silence_id.to_owned(),
            created_by: row.get(0),
            ends_at: row.get(1),
            note: row.get(2),
            created_at: row.get(3),
            expired_at: row.get(4),
        })
    }

    /// Remembers a Slack request's signature for `window`; false if it was taken already
    /// (a replay). Entries older than the window go at the same time.
    pub async fn first_slack_request(
        &self,
        signature_hash: &[u8],
        window: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let window = window.as_secs_f64();
        client
            .execute(
                "DELETE FROM slack_requests_seen WHERE seen_at < now() - make_interval(secs => $1)",
                &[&window],
            )
            .await?;
        let added = client
            .execute(
                "INSERT INTO slack_requests_seen (signature) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&signature_hash],
            )
            .await?;
        Ok(added == 1)
    }
}
