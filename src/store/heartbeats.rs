//! Heartbeats: renewals (in intake's transaction), the deadlines every replica's engine
//! watches, and reading them back. A heartbeat's row is its own deadline (migrations/0018).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;

pub use super::renewals::Returned;
use super::{
    database::Store,
    error::StoreError,
    incidents::{record_in, Entry},
};
use crate::domain::{HeartbeatState, Notification, PlannedTimer};

/// Heartbeats due and not yet missing, locked by the one engine that opens their incidents.
const CLAIM_DUE: &str = "
    SELECT name, per_value, due_at, last_seen_at
      FROM heartbeats
     WHERE state = 'ok' AND due_at <= now() AND name = ANY($1::text[])
     ORDER BY due_at
     LIMIT $2
       FOR UPDATE SKIP LOCKED";

const MARK_MISSING: &str = "
    UPDATE heartbeats SET state = 'missing', incident_id = $3, missing_since = due_at
     WHERE name = $1 AND per_value = $2";

/// A heartbeat whose deadline passed, as the engine found it.
#[derive(Debug, Clone)]
pub struct Due {
    pub name: String,
    pub per_value: String,
    /// Its deadline: when it went missing.
    pub due_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// A heartbeat found missing and the incident opened for it.
#[derive(Debug, Clone)]
pub struct Missed {
    pub due: Due,
    pub incident_id: i64,
}

/// One heartbeat as the API and the console show it.
#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatRecord {
    pub name: String,
    pub per_value: String,
    pub state: &'static str,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub due_at: DateTime<Utc>,
    pub incident_id: Option<i64>,
}

/// What a configured heartbeat needs from the store: its name and timings, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Watched<'a> {
    pub name: &'a str,
    /// Whether it has `per:` (then it is watched only from its first renewal).
    pub per: bool,
    pub window_ms: i64,
    pub forget_after_ms: i64,
}

/// How overdue a heartbeat must be at startup to count as one nobody was watching (every
/// replica was down at its deadline): an engine that runs takes a due heartbeat within a
/// second or two.
const UNWATCHED_MS: i64 = 10_000;

impl Store {
    /// Prepares the configured heartbeats when this replica starts: one without `per:` that
    /// has no row yet is watched from now (so a Prometheus that never came up is noticed);
    /// one overdue for longer than any running engine would leave it was due while every
    /// replica was down, and gets a window from now for its alerts to arrive again.
    pub async fn arm_heartbeats(&self, watched: &[Watched<'_>]) -> Result<(), StoreError> {
        let client = self.client().await?;
        let names: Vec<&str> = watched.iter().map(|w| w.name).collect();
        let windows: Vec<i64> = watched.iter().map(|w| w.window_ms).collect();
        let per: Vec<bool> = watched.iter().map(|w| w.per).collect();
        client
            .execute(
                "INSERT INTO heartbeats (name, per_value, due_at, window_ms)
                 SELECT w.name, '', now() + w.window_ms * interval '1 millisecond', w.window_ms
                   FROM unnest($1::text[], $2::bigint[], $3::bool[]) AS w (name, window_ms, per)
                  WHERE NOT w.per
                 ON CONFLICT DO NOTHING",
                &[&names, &windows, &per],
            )
            .await?;
        client
            .execute(
                "UPDATE heartbeats h SET due_at = now() + w.window_ms * interval '1 millisecond'
                   FROM unnest($1::text[], $2::bigint[]) AS w (name, window_ms)
                  WHERE h.name = w.name AND h.state = 'ok'
                    AND h.due_at < now() - $3::bigint * interval '1 millisecond'",
                &[&names, &windows, &UNWATCHED_MS],
            )
            .await?;
        Ok(())
    }

    /// Takes up to `limit` due heartbeats of these names and, in one transaction per call,
    /// records the notification `open` makes for each (opening its incident and scheduling
    /// its timers, as intake would) and marks it missing. Rows another engine holds are
    /// skipped, so exactly one engine opens each incident; if this one dies first, the row
    /// is still due for the next.
    pub async fn open_missing_heartbeats(
        &self,
        names: &[&str],
        limit: i64,
        open: impl Fn(&Due) -> Option<(Notification, Vec<PlannedTimer>)>,
    ) -> Result<Vec<Missed>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let claim = tx.prepare_cached(CLAIM_DUE).await?;
        let due: Vec<Due> = tx
            .query(&claim, &[&names, &limit])
            .await?
            .iter()
            .map(due_from)
            .collect();
        let mut missed = Vec::with_capacity(due.len());
        for due in due {
            let Some((notification, timers)) = open(&due) else {
                continue;
            };
            let entry = Entry {
                notification: &notification,
                timers: &timers,
                traceparent: None,
            };
            let recorded = record_in(&tx, entry).await?;
            tx.execute(MARK_MISSING, &[&due.name, &due.per_value, &recorded.incident_id])
                .await?;
            missed.push(Missed {
                due,
                incident_id: recorded.incident_id,
            });
        }
        tx.commit().await?;
        Ok(missed)
    }

    /// Forgets the `per` values of these heartbeats not seen for their `forget_after`; the
    /// incident of one still missing is closed quietly (resolved, nobody told). Returns how
    /// many were forgotten.
    pub async fn forget_heartbeats(&self, watched: &[Watched<'_>]) -> Result<u64, StoreError> {
        let per: Vec<&Watched> = watched.iter().filter(|w| w.per).collect();
        if per.is_empty() {
            return Ok(0);
        }
        let names: Vec<&str> = per.iter().map(|w| w.name).collect();
        let after: Vec<i64> = per.iter().map(|w| w.forget_after_ms).collect();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let gone = tx
            .query(
                "DELETE FROM heartbeats h
                  USING unnest($1::text[], $2::bigint[]) AS f (name, after_ms)
                  WHERE h.name = f.name
                    AND coalesce(h.last_seen_at, h.due_at) < now() - f.after_ms * interval '1 millisecond'
                 RETURNING h.incident_id",
                &[&names, &after],
            )
            .await?;
        for incident in gone.iter().filter_map(|row| row.get::<_, Option<i64>>(0)) {
            tx.execute("SELECT medic_resolve_heartbeat_incident($1)", &[&incident])
                .await?;
            tx.execute(
                "UPDATE timers SET state = 'cancelled', updated_at = now()
                  WHERE incident_id = $1 AND kind = 'resolved' AND state = 'pending' AND claim IS NULL",
                &[&incident],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(gone.len() as u64)
    }

    /// Seconds until the next heartbeat of these names is due (negative: overdue); None when
    /// none is watched.
    pub async fn next_heartbeat_due(&self, names: &[&str]) -> Result<Option<f64>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT extract(epoch FROM min(due_at) - clock_timestamp())::float8
                   FROM heartbeats WHERE state = 'ok' AND name = ANY($1::text[])",
            )
            .await?;
        Ok(client.query_one(&statement, &[&names]).await?.get(0))
    }

    /// Every heartbeat, by name and `per` value.
    pub async fn heartbeats(&self) -> Result<Vec<HeartbeatRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, per_value, state, last_seen_at, due_at, incident_id
                   FROM heartbeats ORDER BY name, per_value",
                &[],
            )
            .await?;
        rows.iter().map(record_from).collect()
    }

    /// How many heartbeats are in each state.
    pub async fn heartbeat_counts(&self) -> Result<Vec<(HeartbeatState, i64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT state, count(*) FROM heartbeats GROUP BY state", &[])
            .await?;
        rows.iter()
            .map(|row| Ok((state(row.get(0))?, row.get(1))))
            .collect()
    }
}

fn due_from(row: &Row) -> Due {
    Due {
        name: row.get(0),
        per_value: row.get(1),
        due_at: row.get(2),
        last_seen_at: row.get(3),
    }
}

fn state(word: &str) -> Result<HeartbeatState, StoreError> {
    HeartbeatState::parse(word)
        .ok_or_else(|| StoreError::Other(anyhow::anyhow!("unknown heartbeat state {word:?}")))
}

fn record_from(row: &Row) -> Result<HeartbeatRecord, StoreError> {
    Ok(HeartbeatRecord {
        name: row.get(0),
        per_value: row.get(1),
        state: state(row.get(2))?.as_str(),
        last_seen_at: row.get(3),
        due_at: row.get(4),
        incident_id: row.get(5),
    })
}
