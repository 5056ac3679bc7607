//! People in control: maintenance windows (what they mute, for which alerts, until when) and
//! the remediation pause switch, each change recorded with the audit trail. Timers a window
//! holds carry its id (`timers.held_by`), so ending it early releases them at once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::domain::Act;

use super::{
    audit::{self, Actor},
    database::Store,
    error::StoreError,
};

/// A maintenance window as stored and shown.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub id: i64,
    /// Alertmanager matchers; an alert is covered when all hold.
    pub matchers: Vec<String>,
    pub starts_at: DateTime<Utc>,
    /// When it ends: as planned, or when someone ended it early.
    pub ends_at: DateTime<Utc>,
    /// `remediation`, `pages`.
    pub mute: Vec<String>,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
}

/// A window to create.
#[derive(Debug, Clone)]
pub struct NewWindow<'a> {
    pub matchers: &'a [String],
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub mute: &'a [&'a str],
    pub reason: &'a str,
}

/// The pause switch, when on.
#[derive(Debug, Clone, Serialize)]
pub struct Pause {
    pub paused_by: String,
    pub role: String,
    pub reason: String,
    /// None: until someone resumes.
    pub until: Option<DateTime<Utc>>,
    pub paused_at: DateTime<Utc>,
}

const WINDOW_COLUMNS: &str = "id, matchers, starts_at, coalesce(ended_at, ends_at), mute, reason, created_by,
                              created_at, ended_by";

fn window_from(row: &tokio_postgres::Row) -> Window {
    Window {
        id: row.get(0),
        matchers: row.get(1),
        starts_at: row.get(2),
        ends_at: row.get(3),
        mute: row.get(4),
        reason: row.get(5),
        created_by: row.get(6),
        created_at: row.get(7),
        ended_by: row.get(8),
    }
}

impl Store {
    /// Records a window, unless `max_windows` are in force or scheduled already (None then).
    /// The count and the insert are one transaction behind a lock of their own, so replicas
    /// opening windows at the same moment cannot pass the limit together.
    pub async fn create_window(
        &self,
        window: &NewWindow<'_>,
        actor: &Actor,
        max_windows: i64,
    ) -> Result<Option<Window>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('medic_maintenance_windows'))",
            &[],
        )
        .await?;
        let current: i64 = tx
            .query_one(
                "SELECT count(*) FROM maintenance_windows WHERE coalesce(ended_at, ends_at) > now()",
                &[],
            )
            .await?
            .get(0);
        if current >= max_windows {
            return Ok(None);
        }
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO maintenance_windows (matchers, starts_at, ends_at, mute, reason, created_by)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {WINDOW_COLUMNS}"
                ),
                &[
                    &window.matchers,
                    &window.starts_at,
                    &window.ends_at,
                    &window.mute,
                    &window.reason,
                    &actor.name,
                ],
            )
            .await?;
        let created = window_from(&row);
        let detail = json!({"window_id": created.id, "matchers": created.matchers, "reason": created.reason});
        audit::record(&tx, None, Act::MaintenanceStart, actor, &detail).await?;
        tx.commit().await?;
        Ok(Some(created))
    }

    /// Windows in force now or later, soonest first.
    pub async fn windows(&self) -> Result<Vec<Window>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {WINDOW_COLUMNS} FROM maintenance_windows
                      WHERE coalesce(ended_at, ends_at) > now() ORDER BY starts_at, id"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(window_from).collect())
    }

    /// Ends a window now, if it has not ended, and releases what it held: each held message
    /// is due as long after now as it was after the window's planned end (at once, or an
    /// escalation step's delay). None if there is no such window in force or ahead.
    pub async fn end_window(&self, id: i64, actor: &Actor) -> Result<Option<Window>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let planned: Option<DateTime<Utc>> = tx
            .query_opt(
                "SELECT ends_at FROM maintenance_windows
                  WHERE id = $1 AND coalesce(ended_at, ends_at) > now() FOR UPDATE",
                &[&id],
            )
            .await?
            .map(|row| row.get(0));
        let Some(planned) = planned else {
            return Ok(None);
        };
        let row = tx
            .query_one(
                &format!(
                    "UPDATE maintenance_windows SET ended_at = greatest(now(), starts_at + interval '1 millisecond'),
                                                    ended_by = $2
                      WHERE id = $1 RETURNING {WINDOW_COLUMNS}"
                ),
                &[&id, &actor.name],
            )
            .await?;
        tx.execute(
            "UPDATE timers SET due_at = now() + greatest(due_at - $2, interval '0'),
                               scheduled_at = now() + greatest(due_at - $2, interval '0'),
                               held_by = NULL, updated_at = now()
              WHERE held_by = $1 AND state = 'pending'",
            &[&id, &planned],
        )
        .await?;
        audit::record(&tx, None, Act::MaintenanceEnd, actor, &json!({"window_id": id})).await?;
        tx.batch_execute("NOTIFY medic_timers").await?;
        tx.commit().await?;
        Ok(Some(window_from(&row)))
    }

    /// Holds an incident's escalation policy for window `window` until `until`: every
    /// pending escalation step not yet taken is due its delay after the window's end, as if
    /// the incident had opened then.
    pub async fn hold_escalations(
        &self,
        incident_id: i64,
        window: i64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE timers t
                    SET due_at = $3 + (t.scheduled_at - i.created_at), scheduled_at = $3 + (t.scheduled_at - i.created_at),
                        held_by = $2, updated_at = now()
                   FROM incidents i
                  WHERE t.incident_id = $1 AND i.id = t.incident_id AND t.kind = 'escalation'
                    AND t.state = 'pending' AND t.claim IS NULL AND t.occurrence = 0
                    AND t.due_at < $3 + (t.scheduled_at - i.created_at)",
                &[&incident_id, &window, &until],
            )
            .await?;
        Ok(())
    }

    /// The labels of an incident's alerts, for matching it against windows.
    pub async fn incident_label_sets(
        &self,
        incident_id: i64,
    ) -> Result<Vec<crate::alertmanager::KV>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT a.labels FROM alerts a JOIN incidents i ON i.group_id = a.group_id AND a.incident_id = i.id
                  WHERE i.id = $1",
                &[&incident_id],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let labels: serde_json::Value = row.get(0);
                serde_json::from_value(labels).map_err(|e| StoreError::Other(e.into()))
            })
            .collect()
    }

    /// The pause switch, if it is on.
    pub async fn pause(&self) -> Result<Option<Pause>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT paused_by, role, reason, until, paused_at FROM remediation_pause
                  WHERE until IS NULL OR until > now()",
                &[],
            )
            .await?;
        Ok(row.map(|row| Pause {
            paused_by: row.get(0),
            role: row.get(1),
            reason: row.get(2),
            until: row.get(3),
            paused_at: row.get(4),
        }))
    }

    /// Turns the pause switch on (or changes its reason and end).
    pub async fn set_pause(
        &self,
        reason: &str,
        until: Option<DateTime<Utc>>,
        actor: &Actor,
    ) -> Result<Pause, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "INSERT INTO remediation_pause (paused_by, role, reason, until) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (only_row) DO UPDATE
                    SET paused_by = EXCLUDED.paused_by, role = EXCLUDED.role, reason = EXCLUDED.reason,
                        until = EXCLUDED.until, paused_at = now()
                 RETURNING paused_by, role, reason, until, paused_at",
                &[&actor.name, &actor.role.as_str(), &reason, &until],
            )
            .await?;
        audit::record(
            &tx,
            None,
            Act::Pause,
            actor,
            &json!({"reason": reason, "until": until}),
        )
        .await?;
        tx.commit().await?;
        Ok(Pause {
            paused_by: row.get(0),
            role: row.get(1),
            reason: row.get(2),
            until: row.get(3),
            paused_at: row.get(4),
        })
    }

    /// Turns the pause switch off; whether it was on.
    pub async fn clear_pause(&self, actor: &Actor) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let removed = tx.execute("DELETE FROM remediation_pause", &[]).await?;
        if removed > 0 {
            audit::record(&tx, None, Act::Resume, actor, &json!({})).await?;
        }
        tx.commit().await?;
        Ok(removed > 0)
    }
}
