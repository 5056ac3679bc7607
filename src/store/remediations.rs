//! Remediation decisions: deciding under a per-target lock whether a step may run
//! (`medic_decide_remediation`, migrations/0007), recording what it did, verifying it,
//! requests for approval and their answers, and reading them back.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;

use super::{
    audit::{self, Actor},
    Store, StoreError,
};
use crate::domain::{Act, Action, Handover, RemediationDecision, RemediationResult, TriedStep, Verification};

/// What a remediation is about to do, and the limits it must respect.
#[derive(Debug, Clone)]
pub struct Intent<'a> {
    pub incident_id: i64,
    pub rule: &'a str,
    /// The step of the rule's ladder, 1 for the first.
    pub step: i32,
    pub action: Action,
    pub target: &'a str,
    pub episode: &'a str,
    pub fingerprint: &'a str,
    pub starts_at: DateTime<Utc>,
    /// A result decided before the database was asked (`skipped_namespace`, `failure`).
    pub skip: Option<RemediationResult>,
    pub dry_run: bool,
    /// A person must approve the step; until then it waits at most `approval_timeout_ms`.
    pub approval: bool,
    pub approval_timeout_ms: i64,
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
    /// Until when a request for approval waits.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A step whose `verify_within` is up: which, for which alert episode, and what comes next.
#[derive(Debug, Clone)]
pub struct VerifyStep<'a> {
    pub incident_id: i64,
    pub rule: &'a str,
    pub step: i32,
    pub episode: &'a str,
    pub fingerprint: &'a str,
    pub starts_at: DateTime<Utc>,
    /// The next step's action and the job its timer carries; None at the end of the ladder.
    pub next: Option<(Action, &'a Value)>,
}

/// A remediation as the API shows it.
#[derive(Debug, Serialize)]
pub struct RemediationRecord {
    pub id: i64,
    pub rule: String,
    /// The step of the rule's ladder, 1 for the first.
    pub step: i32,
    pub action: String,
    pub target: String,
    pub episode: String,
    pub result: String,
    pub dry_run: bool,
    pub summary: String,
    pub detail: Value,
    /// `fixed`, `not_fixed`, `pending`, or `none` (the step has no `verify_within`).
    pub verification: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// For a step that needed approval: who decided, when, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRecord>,
}

/// A step's request for approval and its answer.
#[derive(Debug, Serialize)]
pub struct ApprovalRecord {
    pub requested_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// What a dry run said the step would do.
    pub plan: Option<String>,
    /// None until someone decides.
    pub approved: Option<bool>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

/// A request for approval, as `GET /api/v1/remediations` lists it.
#[derive(Debug, Serialize)]
pub struct ApprovalRequest {
    pub id: i64,
    pub incident_id: i64,
    pub rule: String,
    pub step: i32,
    pub action: String,
    pub params: Value,
    pub target: String,
    pub plan: Option<String>,
    pub state: String,
    pub requested_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// What a person's answer to a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// Recorded; the step runs (through its guard rails) or is recorded as rejected now.
    Recorded,
    /// No such remediation.
    Unknown,
    /// Not (or no longer) waiting for an answer: its state.
    NotWaiting(String),
}

/// The arguments are named, in the order of [`Store::decide_remediation`]'s list.
const DECIDE: &str = "
    SELECT remediation_id, decision, summary, expires_at FROM medic_decide_remediation(
        p_incident => $1, p_rule => $2, p_action => $3, p_target => $4, p_episode => $5,
        p_fingerprint => $6, p_starts_at => $7, p_skip => $8, p_dry_run => $9,
        p_cooldown_ms => $10,
        p_target_budget => $11, p_target_window_ms => $12,
        p_rule_budget => $13, p_rule_window_ms => $14,
        p_global_budget => $15, p_global_window_ms => $16,
        p_flap_max => $17, p_flap_window_ms => $18,
        p_action_timeout_ms => $19, p_step => $20, p_approval => $21,
        p_approval_timeout_ms => $22)";

/// Records the outcome; a success with `verify_within` ($5, milliseconds) is verified then
/// (a `verify` timer carrying the job, $6). Tells the rule's `notify` list (except
/// PagerDuty) what happened. Returns how many timers it scheduled.
const FINISH: &str = "
    WITH done AS (
        UPDATE remediations SET result = $2, summary = $3, detail = $4, finished_at = now(),
                                -- Only what may have changed something counts for cooldowns and budgets.
                                acted = acted AND $2 IN ('success', 'failure'),
                                verification = CASE WHEN $2 = 'success' AND $5::bigint IS NOT NULL
                                                    THEN 'pending' ELSE 'none' END
         WHERE id = $1
        RETURNING id, incident_id, rule, step, action, target, episode, result, summary, verification),
    verify AS (
        INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                            subject, payload)
        SELECT d.incident_id, 'verify', d.rule, d.step, d.action, 'remediation',
               now() + $5 * interval '1 millisecond', now() + $5 * interval '1 millisecond',
               d.episode, $6
          FROM done d WHERE d.verification = 'pending'
        ON CONFLICT DO NOTHING RETURNING 1),
    reports AS (
        INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                            subject, payload)
        SELECT DISTINCT ON (t.notifier) d.incident_id, 'remediated', d.rule, 0, t.notifier, t.channel,
               now(), now(), d.id::text,
               jsonb_build_object('action', d.action, 'target', d.target, 'result', d.result,
                                  'summary', d.summary)
          FROM done d JOIN timers t ON t.incident_id = d.incident_id AND t.rule = d.rule
         WHERE t.kind = 'opened' AND t.channel <> 'pagerduty'
        ON CONFLICT DO NOTHING RETURNING 1)
    SELECT (SELECT count(*) FROM verify) + (SELECT count(*) FROM reports)";

/// Records what a request for approval shows (the parameters and the dry run's plan) and asks
/// the rule's `notify` list (except PagerDuty) to decide.
const REQUEST: &str = "
    WITH asked AS (
        UPDATE remediations SET params = $2, plan = $3, summary = $4
         WHERE id = $1 AND result = 'awaiting_approval'
        RETURNING id, incident_id, rule, action, target, expires_at)
    INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                        subject, payload)
    SELECT DISTINCT ON (t.notifier) a.incident_id, 'approval', a.rule, 0, t.notifier, t.channel,
           now(), now(), a.id::text,
           jsonb_build_object('remediation_id', a.id, 'action', a.action, 'target', a.target,
                              'plan', $3::text, 'expires_at', a.expires_at)
      FROM asked a JOIN timers t ON t.incident_id = a.incident_id AND t.rule = a.rule
     WHERE t.kind = 'opened' AND t.channel <> 'pagerduty'
    ON CONFLICT DO NOTHING";

/// Tells the rule's `notify` list (except PagerDuty) how a step's verification came out: a
/// report like the step's own, its subject `<id>/verify`.
const VERIFIED: &str = "
    INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                        subject, payload)
    SELECT DISTINCT ON (t.notifier) r.incident_id, 'remediated', r.rule, 0, t.notifier, t.channel,
           now(), now(), r.id::text || '/verify',
           jsonb_build_object('action', r.action, 'target', r.target, 'result', $4::text,
                              'summary', CASE $4::text WHEN 'fixed' THEN 'the alert resolved within verify_within'
                                         ELSE 'the alert still fires after verify_within' END)
      FROM remediations r JOIN timers t ON t.incident_id = r.incident_id AND t.rule = r.rule
     WHERE r.rule = $1 AND r.episode = $2 AND r.step = $3
       AND t.kind = 'opened' AND t.channel <> 'pagerduty'
    ON CONFLICT DO NOTHING";

/// What each step of a rule's ladder did for one alert episode, in order.
const TRIED: &str = "
    SELECT r.action, r.target, r.result, r.verification,
           CASE WHEN r.result = 'skipped_gitops' THEN r.summary END
      FROM remediations r WHERE r.rule = $1 AND r.episode = $2 ORDER BY r.step";

/// Brings the incident's first pending escalation step forward to now, with what medic tried
/// ($2, [`Handover::to_payload`], when it says) for its message.
const ESCALATE_NOW: &str = "
    UPDATE timers t SET due_at = now(), scheduled_at = now(), updated_at = now(),
                        payload = CASE WHEN $2::jsonb IS NULL THEN t.payload
                                       ELSE coalesce(t.payload, '{}') || $2::jsonb END
     WHERE t.incident_id = $1 AND t.kind = 'escalation' AND t.state = 'pending' AND t.claim IS NULL
       AND t.scheduled_at > now()
       AND t.step = (SELECT min(e.step) FROM timers e
                      WHERE e.incident_id = $1 AND e.kind = 'escalation' AND e.state = 'pending'
                        AND e.claim IS NULL)";

/// What the steps of a rule's ladder did for an alert episode (by itself, or inside the
/// transaction that verifies the last step).
async fn handover(client: &impl GenericClient, rule: &str, episode: &str) -> Result<Handover, StoreError> {
    let rows = client.query(TRIED, &[&rule, &episode]).await?;
    let tried = rows
        .iter()
        .map(|row| TriedStep {
            action: row.get(0),
            target: row.get(1),
            result: row.get(2),
            verification: row.get(3),
            note: row.get(4),
        })
        .collect();
    Ok(Handover::new(tried))
}

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
                    &intent.step,
                    &intent.approval,
                    &intent.approval_timeout_ms,
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
            expires_at: row.get(3),
        })
    }

    /// Records what the action did and schedules the report to the rule's channels; a
    /// success is verified after `verify` (the wait, and the job the `verify` timer carries).
    pub async fn finish_remediation(
        &self,
        id: i64,
        result: RemediationResult,
        summary: &str,
        detail: &Value,
        verify: Option<(Duration, &Value)>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(FINISH).await?;
        let result = result.as_str();
        let verify_ms = verify.map(|(wait, _)| i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        let job = verify.map(|(_, job)| job);
        let scheduled: i64 = client
            .query_one(&statement, &[&id, &result, &summary, detail, &verify_ms, &job])
            .await?
            .get(0);
        if scheduled > 0 {
            client.batch_execute("NOTIFY medic_timers").await?;
        }
        Ok(())
    }

    /// Records a request for approval (the parameters, and the plan a dry run made) and asks
    /// the rule's channels to decide.
    pub async fn request_approval(
        &self,
        id: i64,
        params: &Value,
        plan: &str,
        summary: &str,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(REQUEST).await?;
        let asked = client
            .execute(&statement, &[&id, params, &plan, &summary])
            .await?;
        if asked > 0 {
            client.batch_execute("NOTIFY medic_timers").await?;
        }
        Ok(())
    }

    /// What the steps of a rule's ladder did for an alert episode, as people are told.
    pub async fn handover(&self, rule: &str, episode: &str) -> Result<Handover, StoreError> {
        let client = self.client().await?;
        handover(&client, rule, episode).await
    }

    /// Hands the incident to people now: its first pending escalation step is due at once,
    /// saying what medic tried when `handover` does.
    pub async fn escalate_now(
        &self,
        incident_id: i64,
        handover: Option<&Handover>,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let handover = handover.map(Handover::to_payload);
        let moved = client.execute(ESCALATE_NOW, &[&incident_id, &handover]).await?;
        if moved > 0 {
            client.batch_execute("NOTIFY medic_timers").await?;
        }
        Ok(moved)
    }

    /// Verifies a step whose wait is over, in one transaction: `fixed` if its alert episode
    /// resolved, else `not_fixed`, and then the next step is scheduled (`next`: its action and
    /// the job its timer carries) or, at the end of the ladder, the incident is handed to
    /// people with what was tried. None if the step was verified already (a re-run).
    pub async fn verify_step(&self, check: &VerifyStep<'_>) -> Result<Option<Verification>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let resolved: bool = tx
            .query_one(
                "SELECT coalesce((SELECT a.status <> 'firing' FROM alerts a JOIN incidents i ON i.group_id = a.group_id
                                   WHERE i.id = $1 AND a.fingerprint = $2 AND a.starts_at = $3), true)",
                &[&check.incident_id, &check.fingerprint, &check.starts_at],
            )
            .await?
            .get(0);
        let verification = if resolved {
            Verification::Fixed
        } else {
            Verification::NotFixed
        };
        let updated = tx
            .execute(
                "UPDATE remediations SET verification = $4
                  WHERE rule = $1 AND episode = $2 AND step = $3 AND verification = 'pending'",
                &[&check.rule, &check.episode, &check.step, &verification.as_str()],
            )
            .await?;
        if updated == 0 {
            return Ok(None);
        }
        // The rule's channels (except PagerDuty) hear whether it held.
        tx.execute(
            VERIFIED,
            &[&check.rule, &check.episode, &check.step, &verification.as_str()],
        )
        .await?;
        tx.batch_execute("NOTIFY medic_timers").await?;
        if verification == Verification::NotFixed {
            match check.next {
                Some((action, job)) => {
                    tx.execute(
                        "INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at,
                                             due_at, subject, payload)
                         VALUES ($1, 'remediation', $2, $3, $4, 'remediation', now(), now(), $5, $6)
                         ON CONFLICT DO NOTHING",
                        &[
                            &check.incident_id,
                            &check.rule,
                            &(check.step + 1),
                            &action.as_str(),
                            &check.episode,
                            job,
                        ],
                    )
                    .await?;
                }
                None => {
                    let handover = handover(&tx, check.rule, check.episode).await?.to_payload();
                    tx.execute(ESCALATE_NOW, &[&check.incident_id, &handover]).await?;
                }
            }
            tx.batch_execute("NOTIFY medic_timers").await?;
        }
        tx.commit().await?;
        Ok(Some(verification))
    }

    /// Requests for approval and what became of them, newest first: those in `state` (a
    /// result, e.g. `awaiting_approval`), or every step that needed approval.
    pub async fn approval_requests(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, incident_id, rule, step, action, params, target, plan, result, requested_at,
                        expires_at, decided_by, decided_at
                   FROM remediations
                  WHERE requested_at IS NOT NULL AND ($1::text IS NULL OR result = $1)
                  ORDER BY requested_at DESC, id DESC LIMIT $2",
                &[&state, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| ApprovalRequest {
                id: row.get(0),
                incident_id: row.get(1),
                rule: row.get(2),
                step: row.get(3),
                action: row.get(4),
                params: row.get(5),
                target: row.get(6),
                plan: row.get(7),
                state: row.get(8),
                requested_at: row.get(9),
                expires_at: row.get(10),
                decided_by: row.get(11),
                decided_at: row.get(12),
            })
            .collect())
    }

    /// A person approves (or rejects) a request that is still waiting and has not expired;
    /// recorded with the audit trail, and the step's timer is woken to act on it at once.
    pub async fn answer_request(
        &self,
        id: i64,
        approve: bool,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<Answered, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "UPDATE remediations SET approved = $2, decided_by = $3, decided_role = $4, decided_at = now(),
                                         decision_note = $5
                  WHERE id = $1 AND result = 'awaiting_approval' AND approved IS NULL AND expires_at > now()
                 RETURNING incident_id, rule, episode, step",
                &[&id, &approve, &actor.name, &actor.role.as_str(), &note],
            )
            .await?;
        let Some(row) = row else {
            let state = tx
                .query_opt(
                    "SELECT CASE WHEN result = 'awaiting_approval' AND approved IS NOT NULL
                                 THEN CASE WHEN approved THEN 'approved' ELSE 'rejected' END
                                 WHEN result = 'awaiting_approval' THEN 'expired'
                                 ELSE result END
                       FROM remediations WHERE id = $1",
                    &[&id],
                )
                .await?;
            return Ok(state.map_or(Answered::Unknown, |row| Answered::NotWaiting(row.get(0))));
        };
        let (incident_id, rule, episode, step): (i64, String, String, i32) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        // The first step's timer may come from a previous version, numbered 0.
        tx.execute(
            "UPDATE timers SET due_at = now(), updated_at = now()
              WHERE incident_id = $1 AND kind = 'remediation' AND rule = $2 AND subject = $3
                AND step IN ($4, CASE WHEN $4 = 1 THEN 0 END) AND state = 'pending'",
            &[&incident_id, &rule, &episode, &step],
        )
        .await?;
        let action = if approve { Act::Approve } else { Act::Reject };
        let detail = serde_json::json!({"remediation_id": id, "note": note});
        audit::record(&tx, Some(incident_id), action, actor, &detail).await?;
        tx.batch_execute("NOTIFY medic_timers").await?;
        tx.commit().await?;
        Ok(Answered::Recorded)
    }

    /// An incident's remediations, oldest first.
    pub async fn incident_remediations(
        &self,
        incident_id: i64,
    ) -> Result<Vec<RemediationRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {REMEDIATION_COLUMNS} FROM remediations WHERE incident_id = $1
                      ORDER BY coalesce(requested_at, started_at), id"
                ),
                &[&incident_id],
            )
            .await?;
        Ok(rows.iter().map(remediation_from).collect())
    }
}

/// The columns every remediation query selects, in `remediation_from`'s order.
pub(super) const REMEDIATION_COLUMNS: &str =
    "id, rule, step, action, target, episode, result, dry_run, summary, detail,
        verification, started_at, finished_at, requested_at, expires_at, plan, approved,
        decided_by, decided_at, decision_note";

/// A remediation read with [`REMEDIATION_COLUMNS`] first.
pub(super) fn remediation_from(row: &tokio_postgres::Row) -> RemediationRecord {
    RemediationRecord {
        id: row.get(0),
        rule: row.get(1),
        step: row.get(2),
        action: row.get(3),
        target: row.get(4),
        episode: row.get(5),
        result: row.get(6),
        dry_run: row.get(7),
        summary: row.get(8),
        detail: row.get(9),
        verification: row.get(10),
        started_at: row.get(11),
        finished_at: row.get(12),
        approval: row
            .get::<_, Option<DateTime<Utc>>>(13)
            .map(|requested_at| ApprovalRecord {
                requested_at,
                expires_at: row.get(14),
                plan: row.get(15),
                approved: row.get(16),
                decided_by: row.get(17),
                decided_at: row.get(18),
                note: row.get(19),
            }),
    }
}
