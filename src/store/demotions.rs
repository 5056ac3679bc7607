//! Rules earn their autonomy: a step that relapses or fails `remediation.demote_after.count`
//! times within its window is demoted (it needs approval from then on, saying why) until an
//! admin promotes it, which is audited.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::{audit, database::Store, error::StoreError};
use crate::domain::{Act, Actor};

/// A step's demotion in force.
#[derive(Debug, Clone, Serialize)]
pub struct Demotion {
    pub rule: String,
    pub step: i32,
    /// For people: `demoted: 3 relapses in 24h`.
    pub reason: String,
    pub demoted_at: DateTime<Utc>,
}

/// Counts the step's relapses and failures since the window began (or its last promotion,
/// whichever is later) and demotes it when there are `$3` or more; `$5` names the window for
/// people. Steps observed (`mode: observe`) do not count: nothing was done. Returns the
/// demotion made now, if one was.
const DEMOTE: &str = "
    WITH since AS (
        SELECT greatest(now() - $4::bigint * interval '1 millisecond',
                        (SELECT max(d.promoted_at) FROM rule_demotions d WHERE d.rule = $1 AND d.step = $2)) AS t),
    bad AS (
        SELECT count(*) FILTER (WHERE r.verification = 'relapsed') AS relapses,
               count(*) FILTER (WHERE r.result = 'failure') AS failures
          FROM remediations r, since
         WHERE r.rule = $1 AND r.step = $2 AND r.mode = 'act'
           AND coalesce(r.relapsed_at, r.finished_at, r.started_at) > coalesce(since.t, '-infinity'))
    INSERT INTO rule_demotions (rule, step, reason)
    SELECT $1, $2, 'demoted: ' || concat_ws(' and ',
               CASE WHEN relapses > 0 THEN relapses || CASE WHEN relapses = 1 THEN ' relapse' ELSE ' relapses' END END,
               CASE WHEN failures > 0 THEN failures || CASE WHEN failures = 1 THEN ' failure' ELSE ' failures' END END)
           || ' in ' || $5::text
      FROM bad WHERE $3::bigint > 0 AND relapses + failures >= $3::bigint
    ON CONFLICT DO NOTHING
    RETURNING rule, step, reason, demoted_at";

const COLUMNS: &str = "rule, step, reason, demoted_at";

fn demotion_from(row: &tokio_postgres::Row) -> Demotion {
    Demotion {
        rule: row.get(0),
        step: row.get(1),
        reason: row.get(2),
        demoted_at: row.get(3),
    }
}

/// What an admin's promotion did.
#[derive(Debug)]
pub enum Promoted {
    /// Lifted: the demotion it ended.
    Lifted(Demotion),
    /// The step was not demoted.
    NotDemoted,
}

impl Store {
    /// Demotes the step if its relapses and failures within `window_ms` reach `count` (and it
    /// is not demoted already).
    pub async fn demote_if_due(
        &self,
        rule: &str,
        step: i32,
        count: u32,
        window_ms: i64,
        window: &str,
    ) -> Result<Option<Demotion>, StoreError> {
        let client = self.client().await?;
        let count = i64::from(count);
        let row = client
            .query_opt(DEMOTE, &[&rule, &step, &count, &window_ms, &window])
            .await?;
        Ok(row.as_ref().map(demotion_from))
    }

    /// The step's demotion in force, if any.
    pub async fn demotion(&self, rule: &str, step: i32) -> Result<Option<Demotion>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM rule_demotions WHERE rule = $1 AND step = $2 AND promoted_at IS NULL"
                ),
                &[&rule, &step],
            )
            .await?;
        Ok(row.as_ref().map(demotion_from))
    }

    /// Every demotion in force, by rule and step.
    pub async fn demotions(&self) -> Result<Vec<Demotion>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM rule_demotions WHERE promoted_at IS NULL ORDER BY rule, step"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(demotion_from).collect())
    }

    /// An admin lifts the step's demotion, with the audit event, in one transaction.
    pub async fn promote(
        &self,
        rule: &str,
        step: i32,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<Promoted, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE rule_demotions SET promoted_at = now(), promoted_by = $3, promote_note = $4
                      WHERE rule = $1 AND step = $2 AND promoted_at IS NULL
                     RETURNING {COLUMNS}"
                ),
                &[&rule, &step, &actor.name, &note],
            )
            .await?;
        let Some(row) = row else {
            return Ok(Promoted::NotDemoted);
        };
        let demotion = demotion_from(&row);
        let detail = json!({"rule": rule, "step": step, "note": note, "demotion": demotion.reason});
        audit::record(&tx, None, Act::Promote, actor, &detail).await?;
        tx.commit().await?;
        Ok(Promoted::Lifted(demotion))
    }
}
