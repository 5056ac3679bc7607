//! What `medic replay` reads: a period's incidents, their alert episodes, timers with the
//! occurrences that fired, remediation decisions, the maintenance windows and pauses people
//! switched, and the actions taken just before the period (for cooldowns and budgets).
//!
//! Everything is read in one `REPEATABLE READ READ ONLY` transaction, so the replay sees one
//! consistent snapshot and cannot write a row, whatever runs beside it.

use chrono::{DateTime, Utc};
use tokio_postgres::{IsolationLevel, Row, Transaction};

use super::{database::Store, error::StoreError};
use crate::alertmanager::KV;

/// The recorded history of a period, read at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The period: incidents opened at or after `from` and before `until`.
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The database's clock when the snapshot was taken: the replay's virtual clock stops here.
    pub taken_at: DateTime<Utc>,
    /// Notifications (deliveries) received in the period that are still kept.
    pub notifications: i64,
    /// The oldest delivery kept, if any: older ones were pruned (`retention.deliveries`).
    pub oldest_delivery: Option<DateTime<Utc>>,
    /// Incidents opened in the period, in the order they opened.
    pub incidents: Vec<StoredIncident>,
    /// Their timers.
    pub timers: Vec<StoredTimer>,
    /// Their remediation decisions.
    pub remediations: Vec<StoredRemediation>,
    /// Actions that counted against cooldowns and budgets before the period (`lookback`).
    pub earlier_actions: Vec<StoredRemediation>,
    /// Earlier episodes of the period's alerts (`lookback`), for flapping.
    pub earlier_fires: Vec<StoredFire>,
    /// Maintenance windows in force at some time of the period.
    pub windows: Vec<StoredWindow>,
    /// Pause and resume, in order.
    pub pauses: Vec<StoredPause>,
}

/// One incident as recorded.
#[derive(Debug, Clone)]
pub struct StoredIncident {
    pub id: i64,
    pub group_id: i64,
    pub receiver: String,
    pub group_key: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub acked_at: Option<DateTime<Utc>>,
    /// Its alert episodes, in the order first seen.
    pub alerts: Vec<StoredAlert>,
}

/// One alert episode as recorded.
#[derive(Debug, Clone)]
pub struct StoredAlert {
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub labels: KV,
    pub annotations: KV,
    pub generator_url: String,
    /// When the notification that brought it was recorded.
    pub first_seen_at: DateTime<Utc>,
    /// When it resolved (its last change, for a resolved episode: a resolved one is final).
    pub resolved_at: Option<DateTime<Utc>>,
}

/// One timer as recorded, with the occurrences that were sent (or failed for good).
#[derive(Debug, Clone)]
pub struct StoredTimer {
    pub incident_id: i64,
    pub kind: String,
    pub rule: String,
    pub step: i32,
    pub notifier: String,
    pub channel: String,
    pub scheduled_at: DateTime<Utc>,
    pub repeat_ms: Option<i64>,
    /// `pending`, `done`, `cancelled` or `failed`.
    pub state: String,
    /// A remediation's alert episode; empty for messages.
    pub subject: String,
    /// The current occurrence (repeats fired before it).
    pub occurrence: i32,
    /// Occurrences whose last attempt was final (sent, failed, gave up).
    pub fired: Vec<i32>,
}

/// One remediation decision as recorded.
#[derive(Debug, Clone)]
pub struct StoredRemediation {
    pub incident_id: i64,
    pub rule: String,
    pub step: i32,
    pub action: String,
    pub target: String,
    pub episode: String,
    pub result: String,
    pub acted: bool,
    pub verification: String,
    pub started_at: DateTime<Utc>,
}

/// One earlier firing episode of an alert of the period.
#[derive(Debug, Clone)]
pub struct StoredFire {
    pub group_id: i64,
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
}

/// A maintenance window, with the end it really had (`ended_at` if ended early).
#[derive(Debug, Clone)]
pub struct StoredWindow {
    pub id: i64,
    pub matchers: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub mute: Vec<String>,
    pub reason: String,
}

/// A pause (with its `until`) or a resume, from the audit trail.
#[derive(Debug, Clone)]
pub struct StoredPause {
    pub paused: bool,
    pub at: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

const INCIDENTS: &str = "
    SELECT i.id, i.group_id, g.receiver, g.group_key, i.created_at, i.resolved_at, i.acked_at
      FROM incidents i JOIN alert_groups g ON g.id = i.group_id
     WHERE i.created_at >= $1 AND i.created_at < $2
     ORDER BY i.created_at, i.id";

const ALERTS: &str = "
    SELECT a.incident_id, a.fingerprint, a.starts_at, a.ends_at, a.labels, a.annotations,
           a.generator_url, a.first_seen_at, CASE WHEN a.status = 'resolved' THEN a.updated_at END
      FROM incidents i JOIN alerts a ON a.group_id = i.group_id AND a.incident_id = i.id
     WHERE i.created_at >= $1 AND i.created_at < $2
     ORDER BY a.incident_id, a.first_seen_at, a.starts_at, a.fingerprint";

/// A repeat's occurrences are numbered from 0; a timer whose attempts were pruned but that
/// fired counts its occurrences so far.
const TIMERS: &str = "
    SELECT t.incident_id, t.kind, t.rule, t.step, t.notifier, t.channel, t.scheduled_at,
           (extract(epoch FROM t.repeat_every) * 1000)::bigint, t.occurrence, t.state, t.subject,
           coalesce(nullif(ARRAY(SELECT DISTINCT a.occurrence FROM timer_attempts a
                                  WHERE a.timer_id = t.id AND a.result IN ('sent', 'failed', 'gave_up')
                                  ORDER BY 1), '{}'),
                    CASE WHEN t.fired_at IS NOT NULL AND t.repeat_every IS NULL THEN ARRAY[0]
                         WHEN t.fired_at IS NOT NULL THEN ARRAY(SELECT generate_series(0, t.occurrence - 1))
                         ELSE '{}' END)
      FROM incidents i JOIN timers t ON t.incident_id = i.id
     WHERE i.created_at >= $1 AND i.created_at < $2
     ORDER BY t.incident_id, t.id";

const REMEDIATIONS: &str = "
    SELECT r.incident_id, r.rule, r.step, r.action, r.target, r.episode, r.result, r.acted,
           r.verification, r.started_at
      FROM incidents i JOIN remediations r ON r.incident_id = i.id
     WHERE i.created_at >= $1 AND i.created_at < $2
     ORDER BY r.started_at, r.id";

const EARLIER_ACTIONS: &str = "
    SELECT r.incident_id, r.rule, r.step, r.action, r.target, r.episode, r.result, r.acted,
           r.verification, r.started_at
      FROM remediations r
     WHERE r.acted AND r.started_at >= $1 AND r.started_at < $2
     ORDER BY r.started_at, r.id";

const EARLIER_FIRES: &str = "
    SELECT a.group_id, a.fingerprint, a.starts_at
      FROM alerts a JOIN incidents i ON i.id = a.incident_id
     WHERE a.group_id IN (SELECT p.group_id FROM incidents p WHERE p.created_at >= $2 AND p.created_at < $3)
       AND i.created_at < $2 AND a.starts_at >= $1";

const WINDOWS: &str = "
    SELECT w.id, w.matchers, w.starts_at, least(w.ends_at, coalesce(w.ended_at, w.ends_at)), w.mute, w.reason
      FROM maintenance_windows w
     WHERE w.starts_at < $2 AND least(w.ends_at, coalesce(w.ended_at, w.ends_at)) > $1
     ORDER BY w.id";

const PAUSES: &str = "
    SELECT e.action = 'pause', e.at, (e.detail->>'until')::timestamptz
      FROM audit_events e WHERE e.action IN ('pause', 'resume') AND e.at < $1
     ORDER BY e.at, e.id";

const DELIVERIES: &str = "
    SELECT count(*) FILTER (WHERE d.received_at >= $1 AND d.received_at < $2), min(d.received_at), now()
      FROM deliveries d";

impl Store {
    /// Reads the period's history in one read-only snapshot. `lookback` is how far before
    /// `from` actions and fires still count (the longest cooldown, budget or flapping window).
    pub async fn replay_snapshot(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        lookback: std::time::Duration,
    ) -> Result<Snapshot, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let before = from - chrono::TimeDelta::from_std(lookback).unwrap_or(chrono::TimeDelta::zero());
        let mut snapshot = Snapshot {
            from,
            until,
            ..Snapshot::default()
        };
        let row = tx.query_one(DELIVERIES, &[&from, &until]).await?;
        (
            snapshot.notifications,
            snapshot.oldest_delivery,
            snapshot.taken_at,
        ) = (row.get(0), row.get(1), row.get(2));
        snapshot.incidents = incidents(&tx, from, until).await?;
        snapshot.timers = tx
            .query(TIMERS, &[&from, &until])
            .await?
            .iter()
            .map(timer_from)
            .collect();
        snapshot.remediations = remediations(&tx, REMEDIATIONS, from, until).await?;
        snapshot.earlier_actions = remediations(&tx, EARLIER_ACTIONS, before, from).await?;
        snapshot.earlier_fires = fires(&tx, before, from, until).await?;
        snapshot.windows = tx
            .query(WINDOWS, &[&before, &snapshot.taken_at])
            .await?
            .iter()
            .map(window_from)
            .collect();
        snapshot.pauses = tx
            .query(PAUSES, &[&snapshot.taken_at])
            .await?
            .iter()
            .map(pause_from)
            .collect();
        // Read only: nothing to commit, and nothing could be.
        tx.rollback().await?;
        Ok(snapshot)
    }
}

async fn incidents(
    tx: &Transaction<'_>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<StoredIncident>, StoreError> {
    let mut incidents: Vec<StoredIncident> = tx
        .query(INCIDENTS, &[&from, &until])
        .await?
        .iter()
        .map(|row| StoredIncident {
            id: row.get(0),
            group_id: row.get(1),
            receiver: row.get(2),
            group_key: row.get(3),
            created_at: row.get(4),
            resolved_at: row.get(5),
            acked_at: row.get(6),
            alerts: Vec::new(),
        })
        .collect();
    let index: std::collections::HashMap<i64, usize> = incidents
        .iter()
        .enumerate()
        .map(|(i, incident)| (incident.id, i))
        .collect();
    for row in tx.query(ALERTS, &[&from, &until]).await? {
        let Some(&at) = index.get(&row.get::<_, i64>(0)) else {
            continue;
        };
        incidents[at].alerts.push(alert_from(&row));
    }
    Ok(incidents)
}

fn alert_from(row: &Row) -> StoredAlert {
    let kv = |value: serde_json::Value| serde_json::from_value::<KV>(value).unwrap_or_default();
    StoredAlert {
        fingerprint: row.get(1),
        starts_at: row.get(2),
        ends_at: row.get(3),
        labels: kv(row.get(4)),
        annotations: kv(row.get(5)),
        generator_url: row.get(6),
        first_seen_at: row.get(7),
        resolved_at: row.get(8),
    }
}

fn timer_from(row: &Row) -> StoredTimer {
    StoredTimer {
        incident_id: row.get(0),
        kind: row.get(1),
        rule: row.get(2),
        step: row.get(3),
        notifier: row.get(4),
        channel: row.get(5),
        scheduled_at: row.get(6),
        repeat_ms: row.get(7),
        occurrence: row.get(8),
        state: row.get(9),
        subject: row.get(10),
        fired: row.get(11),
    }
}

async fn remediations(
    tx: &Transaction<'_>,
    sql: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<StoredRemediation>, StoreError> {
    let rows = tx.query(sql, &[&from, &until]).await?;
    Ok(rows
        .iter()
        .map(|row| StoredRemediation {
            incident_id: row.get(0),
            rule: row.get(1),
            step: row.get(2),
            action: row.get(3),
            target: row.get(4),
            episode: row.get(5),
            result: row.get(6),
            acted: row.get(7),
            verification: row.get(8),
            started_at: row.get(9),
        })
        .collect())
}

async fn fires(
    tx: &Transaction<'_>,
    before: DateTime<Utc>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<StoredFire>, StoreError> {
    let rows = tx.query(EARLIER_FIRES, &[&before, &from, &until]).await?;
    Ok(rows
        .iter()
        .map(|row| StoredFire {
            group_id: row.get(0),
            fingerprint: row.get(1),
            starts_at: row.get(2),
        })
        .collect())
}

fn window_from(row: &Row) -> StoredWindow {
    StoredWindow {
        id: row.get(0),
        matchers: row.get(1),
        starts_at: row.get(2),
        ends_at: row.get(3),
        mute: row.get(4),
        reason: row.get(5),
    }
}

fn pause_from(row: &Row) -> StoredPause {
    StoredPause {
        paused: row.get(0),
        at: row.get(1),
        until: row.get(2),
    }
}
