//! Remediation decisions: deciding under a per-target lock whether an action may run
//! (`medic_decide_remediation`, migrations/0005), recording what it did, and reading them back.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{Store, StoreError};
use crate::domain::{Action, RemediationDecision, RemediationResult};

/// What a remediation is about to do, and the limits it must respect.
#[derive(Debug, Clone)]
pub struct Intent<'a> {
    pub incident_id: i64,
    pub rule: &'a str,
    pub action: Action,
    pub target: &'a str,
    pub episode: &'a str,
    pub fingerprint: &'a str,
    pub starts_at: DateTime<Utc>,
    /// A result decided before the database was asked (`skipped_namespace`, `failure`).
    pub skip: Option<RemediationResult>,
    pub dry_run: bool,
    pub limits: Limits,
}

/// Cooldown, budgets and flapping, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub cooldown_ms: i64,
    pub per_target: (i32, i64),
    pub per_rule: (i32, i64),
    pub global: (i32, i64),
    pub flapping: (i32, i64),
    pub action_timeout_ms: i64,
}

/// What the database decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The remediation's record; none when it is busy and nothing was recorded.
    pub remediation_id: Option<i64>,
    pub decision: RemediationDecision,
    /// What was recorded for people, when the database wrote it (an interrupted action).
    pub summary: Option<String>,
}

/// A remediation as the API shows it.
#[derive(Debug, Serialize)]
pub struct RemediationRecord {
    pub id: i64,
    pub rule: String,
    pub action: String,
    pub target: String,
    pub episode: String,
    pub result: String,
    pub dry_run: bool,
    pub summary: String,
    pub detail: Value,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The arguments are named, in the order of [`Store::decide_remediation`]'s list.
const DECIDE: &str = "
    SELECT remediation_id, decision, summary FROM medic_decide_remediation(
        p_incident => $1, p_rule => $2, p_action => $3, p_target => $4, p_episode => $5,
        p_fingerprint => $6, p_starts_at => $7, p_skip => $8, p_dry_run => $9,
        p_cooldown_ms => $10,
        p_target_budget => $11, p_target_window_ms => $12,
        p_rule_budget => $13, p_rule_window_ms => $14,
        p_global_budget => $15, p_global_window_ms => $16,
        p_flap_max => $17, p_flap_window_ms => $18,
        p_action_timeout_ms => $19)";

/// Records the outcome, then tells the rule's `notify` list (except PagerDuty) about it.
const FINISH: &str = "
    WITH done AS (
        UPDATE remediations SET result = $2, summary = $3, detail = $4, finished_at = now(),
                                -- Only what may have changed something counts for cooldowns and budgets.
                                acted = acted AND $2 IN ('success', 'failure')
         WHERE id = $1
        RETURNING id, incident_id, rule, action, target, result, summary)
    INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                        subject, payload)
    SELECT DISTINCT ON (t.notifier) d.incident_id, 'remediated', d.rule, 0, t.notifier, t.channel,
           now(), now(), d.id::text,
           jsonb_build_object('action', d.action, 'target', d.target, 'result', d.result,
                              'summary', d.summary)
      FROM done d JOIN timers t ON t.incident_id = d.incident_id AND t.rule = d.rule
     WHERE t.kind = 'opened' AND t.channel <> 'pagerduty'
    ON CONFLICT DO NOTHING";

/// Brings the incident's first pending escalation step forward to now.
const ESCALATE_NOW: &str = "
    UPDATE timers t SET due_at = now(), scheduled_at = now(), updated_at = now()
     WHERE t.incident_id = $1 AND t.kind = 'escalation' AND t.state = 'pending' AND t.claim IS NULL
       AND t.scheduled_at > now()
       AND t.step = (SELECT min(e.step) FROM timers e
                      WHERE e.incident_id = $1 AND e.kind = 'escalation' AND e.state = 'pending'
                        AND e.claim IS NULL)";

impl Store {
    /// Checks the guard rails and records the decision, atomically per target.
    pub async fn decide_remediation(&self, intent: &Intent<'_>) -> Result<Decided, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(DECIDE).await?;
        let l = &intent.limits;
        let action = intent.action.as_str();
        let skip = intent.skip.map(RemediationResult::as_str);
        let row = client
            .query_one(
                &statement,
                &[
                    &intent.incident_id,
                    &intent.rule,
                    &action,
                    &intent.target,
                    &intent.episode,
                    &intent.fingerprint,
                    &intent.starts_at,
                    &skip,
                    &intent.dry_run,
                    &l.cooldown_ms,
                    &l.per_target.0,
                    &l.per_target.1,
                    &l.per_rule.0,
                    &l.per_rule.1,
                    &l.global.0,
                    &l.global.1,
                    &l.flapping.0,
                    &l.flapping.1,
                    &l.action_timeout_ms,
                ],
            )
            .await?;
        let word: &str = row.get(1);
        let decision = RemediationDecision::parse(word)
            .ok_or_else(|| anyhow::anyhow!("medic_decide_remediation returned {word:?}"))?;
        Ok(Decided {
            remediation_id: row.get(0),
            decision,
            summary: row.get(2),
        })
    }

    /// Records what the action did and schedules the report to the rule's channels.
    pub async fn finish_remediation(
        &self,
        id: i64,
        result: RemediationResult,
        summary: &str,
        detail: &Value,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(FINISH).await?;
        let result = result.as_str();
        let scheduled = client
            .execute(&statement, &[&id, &result, &summary, detail])
            .await?;
        if scheduled > 0 {
            client.batch_execute("NOTIFY medic_timers").await?;
        }
        Ok(())
    }

    /// A failed or skipped action escalates at once: the first pending step is due now.
    pub async fn escalate_now(&self, incident_id: i64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let moved = client.execute(ESCALATE_NOW, &[&incident_id]).await?;
        if moved > 0 {
            client.batch_execute("NOTIFY medic_timers").await?;
        }
        Ok(moved)
    }

    /// An incident's remediations, oldest first.
    pub async fn incident_remediations(
        &self,
        incident_id: i64,
    ) -> Result<Vec<RemediationRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, rule, action, target, episode, result, dry_run, summary, detail, started_at,
                        finished_at
                   FROM remediations WHERE incident_id = $1 ORDER BY started_at, id",
                &[&incident_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| RemediationRecord {
                id: row.get(0),
                rule: row.get(1),
                action: row.get(2),
                target: row.get(3),
                episode: row.get(4),
                result: row.get(5),
                dry_run: row.get(6),
                summary: row.get(7),
                detail: row.get(8),
                started_at: row.get(9),
                finished_at: row.get(10),
            })
            .collect())
    }
}
