//! Retention: pruning history in small batches, one replica at a time (a transaction-level
//! advisory lock per batch), so that intake and the engine never wait on it. An incident
//! keeps the count of the deliveries pruned from it.

use std::time::Duration;

use super::{database::Store, error::StoreError};

/// Arbitrary key for the pruning lock: "prune" in ASCII.
pub const PRUNE_LOCK: i64 = 0x0070_7275_6e65;

/// How long each kind of record is kept (`None`: forever), and the batch size.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub deliveries: Option<Duration>,
    pub timer_attempts: Option<Duration>,
    pub resolved_incidents: Option<Duration>,
    pub batch: i64,
}

impl Retention {
    /// Resolved incidents per statement: each takes its alerts, deliveries, timers and the
    /// rest along, so a fiftieth of the row batch.
    pub fn incident_batch(&self) -> i64 {
        (self.batch / 50).max(1)
    }
}

/// Rows removed by one round, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: i64,
    pub timer_attempts: i64,
    pub incidents: i64,
    pub alerts: i64,
    pub timers: i64,
    pub remediations: i64,
    pub audit_events: i64,
}

impl Pruned {
    /// Every table and its count, for metrics and logs.
    pub fn by_table(&self) -> [(&'static str, i64); 7] {
        [
            ("deliveries", self.deliveries),
            ("timer_attempts", self.timer_attempts),
            ("incidents", self.incidents),
            ("alerts", self.alerts),
            ("timers", self.timers),
            ("remediations", self.remediations),
            ("audit_events", self.audit_events),
        ]
    }

    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.by_table().iter().all(|(_, n)| *n == 0)
    }
}

/// Delivery rows among the oldest batch by id (ids grow with `received_at`), so that a round
/// with nothing old enough reads one batch, not the whole table. A row that is old enough but
/// lies behind a younger one (transactions commit in any order) goes once that one does.
const DELIVERIES: &str = "
    WITH gone AS (
        DELETE FROM deliveries d
         WHERE d.id IN (SELECT o.id FROM (SELECT id, received_at FROM deliveries ORDER BY id LIMIT $2) o
                         WHERE o.received_at < now() - $1::bigint * interval '1 millisecond')
        RETURNING d.incident_id),
    counted AS (SELECT incident_id, count(*) AS n FROM gone GROUP BY incident_id),
    kept AS (
        UPDATE incidents i SET pruned_deliveries = i.pruned_deliveries + c.n
          FROM counted c WHERE i.id = c.incident_id)
    SELECT coalesce(sum(n), 0)::bigint FROM counted";

const ATTEMPTS: &str = "
    WITH gone AS (
        DELETE FROM timer_attempts a
         WHERE (a.timer_id, a.occurrence, a.attempt) IN (
               SELECT timer_id, occurrence, attempt FROM timer_attempts
                WHERE finished_at < now() - $1::bigint * interval '1 millisecond'
                ORDER BY finished_at LIMIT $2)
        RETURNING 1)
    SELECT count(*) FROM gone";

/// A resolved incident goes with everything that hangs off it, in one statement (foreign
/// keys are checked at its end). The oldest first, through their own index (migrations/0014),
/// so that a round with nothing old enough reads one index entry, not the whole table.
const INCIDENTS: &str = "
    WITH doomed AS (
        SELECT id, group_id FROM incidents
         WHERE status = 'resolved' AND resolved_at < now() - $1::bigint * interval '1 millisecond'
         ORDER BY resolved_at LIMIT $2
           FOR UPDATE SKIP LOCKED),
    attempts AS (
        DELETE FROM timer_attempts a USING timers t, doomed d
         WHERE a.timer_id = t.id AND t.incident_id = d.id RETURNING 1),
    timers AS (DELETE FROM timers t USING doomed d WHERE t.incident_id = d.id RETURNING 1),
    alerts AS (
        DELETE FROM alerts a USING doomed d
         WHERE a.group_id = d.group_id AND a.incident_id = d.id RETURNING 1),
    deliveries AS (DELETE FROM deliveries x USING doomed d WHERE x.incident_id = d.id RETURNING 1),
    remediations AS (DELETE FROM remediations r USING doomed d WHERE r.incident_id = d.id RETURNING 1),
    audit AS (DELETE FROM audit_events e USING doomed d WHERE e.incident_id = d.id RETURNING 1),
    slack AS (DELETE FROM slack_messages m USING doomed d WHERE m.incident_id = d.id RETURNING 1),
    silences AS (DELETE FROM incident_silences s USING doomed d WHERE s.incident_id = d.id RETURNING 1),
    context AS (DELETE FROM incident_context c USING doomed d WHERE c.incident_id = d.id RETURNING 1),
    incidents AS (DELETE FROM incidents i USING doomed d WHERE i.id = d.id RETURNING 1)
    SELECT (SELECT count(*) FROM incidents), (SELECT count(*) FROM alerts),
           (SELECT count(*) FROM deliveries), (SELECT count(*) FROM timers),
           (SELECT count(*) FROM attempts), (SELECT count(*) FROM remediations),
           (SELECT count(*) FROM audit)";

fn millis(age: Duration) -> i64 {
    i64::try_from(age.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// One batch of each kind, if no other replica is pruning; None when one is.
    pub async fn prune(&self, retention: &Retention) -> Result<Option<Pruned>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])
            .await?
            .get(0);
        if !locked {
            return Ok(None);
        }
        let mut pruned = Pruned::default();
        if let Some(age) = retention.deliveries {
            pruned.deliveries = tx
                .query_one(DELIVERIES, &[&millis(age), &retention.batch])
                .await?
                .get(0);
        }
        if let Some(age) = retention.timer_attempts {
            pruned.timer_attempts = tx
                .query_one(ATTEMPTS, &[&millis(age), &retention.batch])
                .await?
                .get(0);
        }
        if let Some(age) = retention.resolved_incidents {
            let row = tx
                .query_one(INCIDENTS, &[&millis(age), &retention.incident_batch()])
                .await?;
            pruned.incidents = row.get(0);
            pruned.alerts = row.get(1);
            pruned.deliveries += row.get::<_, i64>(2);
            pruned.timers = row.get(3);
            pruned.timer_attempts += row.get::<_, i64>(4);
            pruned.remediations = row.get(5);
            pruned.audit_events = row.get(6);
        }
        tx.commit().await?;
        Ok(Some(pruned))
    }
}
