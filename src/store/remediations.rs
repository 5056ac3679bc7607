//! Remediation decisions: deciding under a per-target lock whether a step may run
//! (`medic_decide_remediation`, migrations/0021), recording what it did and the evidence its
//! `verify_query` read, verifying it, requests for approval and their answers, and reading
//! them back.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;

use super::{
    audit::{self, Actor},
    database::Store,
    error::StoreError,
    timer_work,
};
use crate::domain::{
    Act, Action, ApprovalQuestion, Evidence, Handover, Reading, RemediationDecision, RemediationJob,
    RemediationReport, RemediationResult, RemediationWork, RuleMode, TimerWork, TriedStep, Verification,
};

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
    /// The rule's mode: `observe` decides with every guard rail, asks nobody and acts not.
    pub mode: RuleMode,
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
    pub next: Option<(Action, &'a RemediationJob)>,
}

/// How a verification came out, and about which step.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedStep {
    pub verified: Verified,
    /// The step was observed (`mode: observe`): nothing was done.
    pub observed: bool,
    pub evidence: Option<Evidence>,
}

/// How a successful step is verified: after `within`, and held for `hold` once its alert
/// resolved; `job` is what the `verify` timer carries.
#[derive(Debug, Clone, Copy)]
pub struct VerifyAfter<'a> {
    pub within: Duration,
    pub hold: Duration,
    pub job: &'a RemediationJob,
}

/// A step's evidence as the API shows it: what was read, and the line people read.
#[derive(Debug, Serialize)]
pub struct EvidenceRecord {
    #[serde(flatten)]
    pub evidence: Evidence,
    /// `error ratio 7.2% → 0.4%`.
    pub summary: String,
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
    /// `act`, or `observe`: the rule only watched, nothing was changed.
    pub mode: String,
    pub summary: String,
    pub detail: Value,
    /// Its `verify_query`'s values before acting and when verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceRecord>,
    /// `fixed`, `not_fixed`, `pending`, `holding`, `relapsed`, or `none` (the step has no
    /// `verify_within`).
    pub verification: String,
    /// Since when its alert stayed resolved (`holding`, `fixed` after a hold, `relapsed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_from: Option<DateTime<Utc>>,
    /// Until when it must stay resolved to be `fixed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_until: Option<DateTime<Utc>>,
    /// When the same alert fired again (`relapsed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relapsed_at: Option<DateTime<Utc>>,
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
        p_approval_timeout_ms => $22, p_observe => $23)";

/// Records the outcome and the evidence read before acting ($8); a success (or an observed
/// step) with `verify_within` ($5, milliseconds) is verified then (a `verify` timer carrying
/// the job, $6), and must then hold for $7 milliseconds. Tells the rule's `notify` list
/// (except PagerDuty) what happened (the report's subject and payload, $9 and $10). Returns
/// how many timers it scheduled.
const FINISH: &str = "
    WITH done AS (
        UPDATE remediations SET result = $2, summary = $3, detail = $4, finished_at = now(),
                                -- Only what may have changed something counts for cooldowns and budgets.
                                acted = acted AND $2 IN ('success', 'failure'),
                                verification = CASE WHEN $2 IN ('success', 'observed') AND $5::bigint IS NOT NULL
                                                    THEN 'pending' ELSE 'none' END,
                                hold_ms = CASE WHEN $2 IN ('success', 'observed') AND $5::bigint IS NOT NULL
                                               THEN $7::bigint END,
                                evidence = coalesce($8::jsonb, evidence)
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
               now(), now(), $9::text, $10::jsonb
          FROM done d JOIN timers t ON t.incident_id = d.incident_id AND t.rule = d.rule
         WHERE t.kind = 'opened' AND t.channel <> 'pagerduty'
        ON CONFLICT DO NOTHING RETURNING 1)
    SELECT (SELECT count(*) FROM verify) + (SELECT count(*) FROM reports)";

/// Records what a request for approval shows (the parameters and the dry run's plan) and asks
/// the rule's `notify` list (except PagerDuty) to decide (the question's subject and payload,
/// $5 and $6).
const REQUEST: &str = "
    WITH asked AS (
        UPDATE remediations SET params = $2, plan = $3, summary = $4
         WHERE id = $1 AND result = 'awaiting_approval'
        RETURNING id, incident_id, rule, action, target, expires_at)
    INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                        subject, payload)
    SELECT DISTINCT ON (t.notifier) a.incident_id, 'approval', a.rule, 0, t.notifier, t.channel,
           now(), now(), $5::text, $6::jsonb
      FROM asked a JOIN timers t ON t.incident_id = a.incident_id AND t.rule = a.rule
     WHERE t.kind = 'opened' AND t.channel <> 'pagerduty'
    ON CONFLICT DO NOTHING";

/// Tells the rule's `notify` list (except PagerDuty) how a step's verification came out: a
/// report like the step's own (its subject and payload, $4 and $5).
const VERIFIED: &str = "
    INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                        subject, payload)
    SELECT DISTINCT ON (t.notifier) r.incident_id, 'remediated', r.rule, 0, t.notifier, t.channel,
           now(), now(), $4::text, $5::jsonb
      FROM remediations r JOIN timers t ON t.incident_id = r.incident_id AND t.rule = r.rule
     WHERE r.rule = $1 AND r.episode = $2 AND r.step = $3
       AND t.kind = 'opened' AND t.channel <> 'pagerduty'
    ON CONFLICT DO NOTHING";

/// What each step of a rule's ladder did for one alert episode, in order, after the step of
/// an earlier episode of the same alert whose fix this episode's firing undid (`relapsed`).
const TRIED: &str = "
    SELECT r.action, r.target, r.result, r.verification,
           CASE WHEN r.result = 'skipped_gitops' THEN r.summary
                WHEN r.verification = 'relapsed' THEN
                     'fixed at ' || to_char(r.held_from AT TIME ZONE 'UTC', 'HH24:MI:SS')
                     || ', fired again at ' || to_char(r.relapsed_at AT TIME ZONE 'UTC', 'HH24:MI:SS') || ' UTC'
           END
      FROM remediations r WHERE r.rule = $1 AND (r.episode = $2 OR r.relapsed_by = $2)
     ORDER BY r.episode = $2, r.step";

/// A step's verification, hold and its alert episode's state, locked for verifying; whether it
/// was observed, and its evidence.
const STEP_STATE: &str = "
    SELECT r.verification, r.hold_ms, r.hold_until, now(),
           (SELECT a.status <> 'firing' FROM alerts a JOIN incidents i ON i.group_id = a.group_id
             WHERE i.id = $4 AND a.fingerprint = $5 AND a.starts_at = $6),
           (SELECT least(a.updated_at, now()) FROM alerts a JOIN incidents i ON i.group_id = a.group_id
             WHERE i.id = $4 AND a.fingerprint = $5 AND a.starts_at = $6),
           r.result = 'observed', r.evidence
      FROM remediations r WHERE r.rule = $1 AND r.episode = $2 AND r.step = $3 FOR UPDATE";

/// The same alert fired again: a new episode ($5, first recorded by medic at its
/// `first_seen_at`) of the fingerprint $3 in the same group as incident $1's, under rule $2. A
/// step of an earlier episode decided in the rule's mode now ($6), whose alert resolved, still
/// being verified or held, and whose hold had not run out when the new episode came, is
/// `relapsed`. (A step observed does not relapse into a ladder that acts, nor the reverse.)
const RELAPSE: &str = "
    WITH new AS (
        SELECT a.group_id, a.first_seen_at FROM alerts a JOIN incidents i ON i.group_id = a.group_id
         WHERE i.id = $1 AND a.fingerprint = $3 AND a.starts_at = $4),
    old AS (
        SELECT r.id, coalesce(r.held_from, least(a.updated_at, now())) AS held_from
          FROM new, remediations r
          JOIN incidents i ON i.id = r.incident_id
          JOIN alerts a ON a.group_id = i.group_id AND a.fingerprint = $3
                       AND a.starts_at = split_part(r.episode, '@', 2)::timestamptz
         WHERE r.rule = $2 AND i.group_id = new.group_id AND r.episode <> $5 AND r.mode = $6
           AND split_part(r.episode, '@', 1) = $3
           AND r.verification IN ('pending', 'holding') AND r.hold_ms > 0 AND a.status = 'resolved'
           AND new.first_seen_at <= coalesce(r.held_from, a.updated_at) + r.hold_ms * interval '1 millisecond'
         ORDER BY r.started_at DESC LIMIT 1
           FOR UPDATE OF r)
    UPDATE remediations r
       SET verification = 'relapsed', held_from = old.held_from, relapsed_at = new.first_seen_at,
           relapsed_by = $5, relapsed_incident = $1
      FROM old, new WHERE r.id = old.id
    RETURNING r.id, r.step, r.action, r.episode, r.held_from, r.relapsed_at, r.mode, r.evidence";

/// A relapse recorded already for this episode (the timer ran again).
const RELAPSED_BEFORE: &str = "
    SELECT r.id, r.step, r.action, r.episode, r.held_from, r.relapsed_at, r.mode, r.evidence
      FROM remediations r WHERE r.rule = $1 AND r.relapsed_by = $2 AND r.mode = $3";

/// Schedules a step of the ladder for an alert episode, due now.
const NEXT_STEP: &str = "
    INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at, subject,
                        payload)
    VALUES ($1, 'remediation', $2, $3, $4, 'remediation', now(), now(), $5, $6)
    ON CONFLICT DO NOTHING";

/// Brings the incident's first pending escalation step forward to now, with what medic tried
/// ($2, [`timer_work::handover_payload`], when it says) for its message.
const ESCALATE_NOW: &str = "
    UPDATE timers t SET due_at = now(), scheduled_at = now(), updated_at = now(),
                        payload = CASE WHEN $2::jsonb IS NULL THEN t.payload
                                       ELSE coalesce(t.payload, '{}') || $2::jsonb END
     WHERE t.incident_id = $1 AND t.kind = 'escalation' AND t.state = 'pending' AND t.claim IS NULL
       AND t.scheduled_at > now()
       AND t.step = (SELECT min(e.step) FROM timers e
                      WHERE e.incident_id = $1 AND e.kind = 'escalation' AND e.state = 'pending'
                        AND e.claim IS NULL)";

/// A ladder not fixed yet goes on: the `next` step (its number, action and job) is scheduled
/// for the episode, or at the end of the ladder the incident is handed to people, unless the
/// ladder only observes (`observed`: people hear of the incident on its own schedule).
async fn go_on(
    tx: &deadpool_postgres::Transaction<'_>,
    incident_id: i64,
    rule: &str,
    episode: &str,
    next: Option<(i32, Action, &RemediationJob)>,
    observed: bool,
) -> Result<(), StoreError> {
    match next {
        Some((step, action, job)) => {
            let work = TimerWork::Remediation(RemediationWork {
                action,
                step,
                episode: episode.to_owned(),
                job: job.clone(),
            });
            let row = timer_work::encode(&work);
            tx.execute(
                NEXT_STEP,
                &[
                    &incident_id,
                    &rule,
                    &row.step,
                    &row.notifier,
                    &row.subject,
                    &row.payload,
                ],
            )
            .await?;
        }
        None if observed => {}
        None => {
            let handover = timer_work::handover_payload(&handover(tx, rule, episode).await?);
            tx.execute(ESCALATE_NOW, &[&incident_id, &handover]).await?;
        }
    }
    Ok(())
}

/// A remediation's action and target, and until when its request for approval waits: what
/// the reports and requests about it say.
async fn words(
    client: &impl GenericClient,
    id: i64,
) -> Result<(String, String, Option<DateTime<Utc>>), StoreError> {
    let row = client
        .query_opt(
            "SELECT action, target, expires_at FROM remediations WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map_or_else(
        || (String::new(), String::new(), None),
        |row| (row.get(0), row.get(1), row.get(2)),
    ))
}

/// Tells the rule's channels how step `step` of `episode`'s ladder was verified.
async fn tell_verification(
    tx: &deadpool_postgres::Transaction<'_>,
    (rule, episode, step): (&str, &str, i32),
    verified: Verification,
    evidence: Option<&str>,
) -> Result<(), StoreError> {
    let row = tx
        .query_opt(
            "SELECT id, action, target, result = 'observed' FROM remediations
              WHERE rule = $1 AND episode = $2 AND step = $3",
            &[&rule, &episode, &step],
        )
        .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let mut report = RemediationReport::of_verification(row.get(0), row.get(1), row.get(2), verified);
    // A rule that only observes did nothing: its report must not read as if it had.
    if row.get::<_, bool>(3) {
        report.summary = format!("observed, nothing was done: {}", report.summary);
    }
    if let Some(line) = evidence {
        report.summary = format!("{}; {line}", report.summary);
    }
    let (subject, payload) = (
        timer_work::report_subject(&report),
        timer_work::report_payload(&report),
    );
    tx.execute(VERIFIED, &[&rule, &episode, &step, &subject, &payload])
        .await?;
    Ok(())
}

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

/// Where a verification goes from the step's state: on to `holding` until a time, or to a
/// final word; None when it is decided already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Resolved within `verify_within`; the same alert must stay resolved until then.
    Holding(DateTime<Utc>),
    /// `fixed`, `not_fixed` (or `relapsed`, recorded when the alert fired again).
    Done(Verification),
}

/// The step's state as [`STEP_STATE`] reads it.
struct StepState {
    verification: String,
    hold_ms: Option<i64>,
    hold_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    /// None when the episode is not recorded (counted as resolved, as before holds).
    resolved: Option<bool>,
    resolved_at: Option<DateTime<Utc>>,
    observed: bool,
    evidence: Option<Evidence>,
}

impl StepState {
    /// What verifying the step now decides.
    fn next(&self) -> Option<Verified> {
        let hold = |from: DateTime<Utc>| from + chrono::TimeDelta::milliseconds(self.hold_ms.unwrap_or(0));
        let until = match self.verification.as_str() {
            "pending" if !self.resolved.unwrap_or(true) => {
                return Some(Verified::Done(Verification::NotFixed))
            }
            "pending" => hold(self.resolved_at.unwrap_or(self.now)),
            "holding" => self.hold_until.unwrap_or(self.now),
            _ => return None,
        };
        Some(if until > self.now {
            Verified::Holding(until)
        } else {
            Verified::Done(Verification::Fixed)
        })
    }
}

/// A new firing episode of an alert, looked at for undoing an earlier fix.
#[derive(Debug, Clone)]
pub struct Refired<'a> {
    pub incident_id: i64,
    pub rule: &'a str,
    /// The new episode's key.
    pub episode: &'a str,
    pub fingerprint: &'a str,
    pub starts_at: DateTime<Utc>,
    /// The rule's mode now: only a step decided in it relapses.
    pub mode: RuleMode,
}

/// A step whose fix did not hold: the same alert fired again within its `hold`.
#[derive(Debug, Clone)]
pub struct Relapse {
    pub remediation_id: i64,
    pub step: i32,
    pub action: String,
    /// The earlier episode the step had fixed.
    pub episode: String,
    /// When its alert resolved, and when the same alert fired again.
    pub held_from: Option<DateTime<Utc>>,
    pub relapsed_at: Option<DateTime<Utc>>,
    /// Recorded now (false: recorded by an earlier run of the same timer).
    pub first: bool,
    /// The step was observed (`mode: observe`): nothing had been done.
    pub observed: bool,
    pub evidence: Option<Evidence>,
}

fn relapse_from(row: &tokio_postgres::Row, first: bool) -> Relapse {
    Relapse {
        remediation_id: row.get(0),
        step: row.get(1),
        action: row.get(2),
        episode: row.get(3),
        held_from: row.get(4),
        relapsed_at: row.get(5),
        first,
        observed: row.get::<_, &str>(6) == RuleMode::Observe.as_str(),
        evidence: evidence_from(row.get(7)),
    }
}

/// Evidence as stored; what cannot be read as evidence (damaged by hand) is left out.
fn evidence_from(value: Option<Value>) -> Option<Evidence> {
    serde_json::from_value(value?).ok()
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
                    &(intent.mode == RuleMode::Observe),
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

    /// Records what the action did (and the evidence read before it) and schedules the report
    /// to the rule's channels; a success, or an observed step, is verified as `verify` says.
    pub async fn finish_remediation(
        &self,
        id: i64,
        result: RemediationResult,
        (summary, detail): (&str, &Value),
        evidence: Option<&Evidence>,
        verify: Option<VerifyAfter<'_>>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(FINISH).await?;
        let result = result.as_str();
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let verify_ms = verify.as_ref().map(|v| ms(v.within));
        let hold_ms = verify.as_ref().map(|v| ms(v.hold));
        let job = verify.as_ref().map(|v| timer_work::job_payload(v.job));
        let evidence = evidence.and_then(|e| serde_json::to_value(e).ok());
        let (action, target, _) = words(&client, id).await?;
        let report = RemediationReport {
            remediation_id: id,
            verification: false,
            action,
            target,
            result: result.to_owned(),
            summary: summary.to_owned(),
        };
        let (subject, payload) = (
            timer_work::report_subject(&report),
            timer_work::report_payload(&report),
        );
        let scheduled: i64 = client
            .query_one(
                &statement,
                &[
                    &id, &result, &summary, detail, &verify_ms, &job, &hold_ms, &evidence, &subject, &payload,
                ],
            )
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
        let (action, target, expires_at) = words(&client, id).await?;
        let question = ApprovalQuestion {
            remediation_id: id,
            action,
            target,
            plan: plan.to_owned(),
            expires_at,
        };
        let (subject, payload) = (
            question.remediation_id.to_string(),
            timer_work::approval_payload(&question),
        );
        let asked = client
            .execute(&statement, &[&id, params, &plan, &summary, &subject, &payload])
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
        let handover = handover.map(timer_work::handover_payload);
        let moved = client.execute(ESCALATE_NOW, &[&incident_id, &handover]).await?;
        if moved > 0 {
            client.batch_execute("NOTIFY medic_timers").await?;
        }
        Ok(moved)
    }

    /// Verifies a step whose wait is over, in one transaction: `not_fixed` if its alert
    /// episode still fires (then the next step is scheduled, `next`: its action and the job its
    /// timer carries, or at the end of the ladder the incident is handed to people with what was
    /// tried, unless the step was observed); if it resolved, `holding` until its `hold` has
    /// passed since, then `fixed`. None if the step was verified already (a re-run) or relapsed
    /// meanwhile.
    pub async fn verify_step(&self, check: &VerifyStep<'_>) -> Result<Option<VerifiedStep>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &check.rule,
            &check.episode,
            &check.step,
            &check.incident_id,
            &check.fingerprint,
            &check.starts_at,
        ];
        let Some(row) = tx.query_opt(STEP_STATE, &args).await? else {
            return Ok(None);
        };
        let state = StepState {
            verification: row.get(0),
            hold_ms: row.get(1),
            hold_until: row.get(2),
            now: row.get(3),
            resolved: row.get(4),
            resolved_at: row.get(5),
            observed: row.get(6),
            evidence: evidence_from(row.get(7)),
        };
        let verified = match state.next() {
            None => return Ok(None),
            Some(Verified::Holding(until)) => {
                tx.execute(
                    "UPDATE remediations SET verification = 'holding', held_from = coalesce(held_from, $4),
                                             hold_until = $5
                      WHERE rule = $1 AND episode = $2 AND step = $3",
                    &[
                        &check.rule,
                        &check.episode,
                        &check.step,
                        &state.resolved_at.unwrap_or(state.now),
                        &until,
                    ],
                )
                .await?;
                Verified::Holding(until)
            }
            Some(Verified::Done(verification)) => {
                self.conclude(&tx, check, verification, &state).await?;
                Verified::Done(verification)
            }
        };
        tx.commit().await?;
        Ok(Some(VerifiedStep {
            verified,
            observed: state.observed,
            evidence: state.evidence,
        }))
    }

    /// Records a step's final verification, tells the rule's channels (with its evidence),
    /// and after `not_fixed` goes on: the next step, or people.
    async fn conclude(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        check: &VerifyStep<'_>,
        verification: Verification,
        state: &StepState,
    ) -> Result<(), StoreError> {
        let word = verification.as_str();
        tx.execute(
            "UPDATE remediations SET verification = $4
              WHERE rule = $1 AND episode = $2 AND step = $3 AND verification IN ('pending', 'holding')",
            &[&check.rule, &check.episode, &check.step, &word],
        )
        .await?;
        // The rule's channels (except PagerDuty) hear whether it held.
        let line = state.evidence.as_ref().map(Evidence::line);
        tell_verification(
            tx,
            (check.rule, check.episode, check.step),
            verification,
            line.as_deref(),
        )
        .await?;
        if verification == Verification::NotFixed {
            let next = check.next.map(|(action, job)| (check.step + 1, action, job));
            go_on(
                tx,
                check.incident_id,
                check.rule,
                check.episode,
                next,
                state.observed,
            )
            .await?;
        }
        tx.batch_execute("NOTIFY medic_timers").await?;
        Ok(())
    }

    /// A step's evidence still waiting for its second reading (its `verify_query` is read
    /// again when the step is verified); None when it has none, or has it already.
    pub async fn unread_evidence(
        &self,
        rule: &str,
        episode: &str,
        step: i32,
    ) -> Result<Option<Evidence>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT evidence FROM remediations
                  WHERE rule = $1 AND episode = $2 AND step = $3 AND verification = 'pending'
                    AND evidence IS NOT NULL AND NOT evidence ? 'after'",
                &[&rule, &episode, &step],
            )
            .await?;
        Ok(row.and_then(|row| evidence_from(row.get(0))))
    }

    /// Records the reading taken when the step was verified (once).
    pub async fn record_evidence_after(
        &self,
        rule: &str,
        episode: &str,
        step: i32,
        after: &Reading,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let after = serde_json::to_value(after).map_err(anyhow::Error::from)?;
        client
            .execute(
                "UPDATE remediations SET evidence = jsonb_set(evidence, '{after}', $4)
                  WHERE rule = $1 AND episode = $2 AND step = $3
                    AND evidence IS NOT NULL AND NOT evidence ? 'after'",
                &[&rule, &episode, &step, &after],
            )
            .await?;
        Ok(())
    }

    /// Looks for a step of an earlier episode of the same alert whose fix this new episode
    /// undid, and records it `relapsed` (telling the rule's channels); also finds one recorded
    /// by an earlier run of the same timer.
    pub async fn relapse(&self, refired: &Refired<'_>) -> Result<Option<Relapse>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mode = refired.mode.as_str();
        if let Some(row) = tx
            .query_opt(RELAPSED_BEFORE, &[&refired.rule, &refired.episode, &mode])
            .await?
        {
            return Ok(Some(relapse_from(&row, false)));
        }
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &refired.incident_id,
            &refired.rule,
            &refired.fingerprint,
            &refired.starts_at,
            &refired.episode,
            &mode,
        ];
        let Some(row) = tx.query_opt(RELAPSE, &args).await? else {
            return Ok(None);
        };
        let relapse = relapse_from(&row, true);
        let relapsed = Verification::Relapsed;
        let line = relapse.evidence.as_ref().map(Evidence::line);
        tell_verification(
            &tx,
            (refired.rule, &relapse.episode, relapse.step),
            relapsed,
            line.as_deref(),
        )
        .await?;
        tx.batch_execute("NOTIFY medic_timers").await?;
        tx.commit().await?;
        Ok(Some(relapse))
    }

    /// After a relapse the new episode goes on as if the step had not fixed it: `next` (the
    /// step after it, its action and job) is scheduled, or people take over, told what held
    /// and when it fired again (not after an observed step: nothing had been done).
    pub async fn after_relapse(
        &self,
        incident_id: i64,
        rule: &str,
        episode: &str,
        (next, observed): (Option<(i32, Action, &RemediationJob)>, bool),
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        go_on(&tx, incident_id, rule, episode, next, observed).await?;
        tx.batch_execute("NOTIFY medic_timers").await?;
        tx.commit().await?;
        Ok(())
    }

    /// Requests for approval and what became of them, newest first: those in `state` (a
    /// result, e.g. `awaiting_approval`), or every step that needed approval. A request still
    /// being prepared (its dry run not yet stored) is not listed: nobody has been asked yet.
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
                    -- Listed once asked: the dry run's plan and the parameters are stored in
                    -- the same statement that asks people (REQUEST), moments after the decision.
                    AND (result <> 'awaiting_approval' OR plan IS NOT NULL)
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
                    "SELECT {REMEDIATION_COLUMNS} FROM remediations
                      WHERE incident_id = $1 OR relapsed_incident = $1
                      ORDER BY coalesce(requested_at, started_at), id"
                ),
                &[&incident_id],
            )
            .await?;
        Ok(rows.iter().map(remediation_from).collect())
    }
}

/// How many columns [`REMEDIATION_COLUMNS`] holds: a query's own columns come after them.
pub(super) const REMEDIATION_COLUMN_COUNT: usize = 25;

/// The columns every remediation query selects, in `remediation_from`'s order.
pub(super) const REMEDIATION_COLUMNS: &str =
    "id, rule, step, action, target, episode, result, dry_run, summary, detail,
        verification, started_at, finished_at, requested_at, expires_at, plan, approved,
        decided_by, decided_at, decision_note, held_from, hold_until, relapsed_at, mode, evidence";

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
        mode: row.get(23),
        summary: row.get(8),
        detail: row.get(9),
        evidence: evidence_from(row.get(24)).map(|evidence| EvidenceRecord {
            summary: evidence.line(),
            evidence,
        }),
        verification: row.get(10),
        held_from: row.get(20),
        hold_until: row.get(21),
        relapsed_at: row.get(22),
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

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn the_column_count_matches_the_list() {
        assert_eq!(REMEDIATION_COLUMNS.split(',').count(), REMEDIATION_COLUMN_COUNT);
    }

    fn state(verification: &str, resolved: Option<bool>, hold_s: i64, resolved_ago_s: i64) -> StepState {
        let now = Utc::now();
        StepState {
            verification: verification.into(),
            hold_ms: Some(hold_s * 1000),
            hold_until: Some(now + TimeDelta::seconds(hold_s - resolved_ago_s)),
            now,
            resolved,
            resolved_at: Some(now - TimeDelta::seconds(resolved_ago_s)),
            observed: false,
            evidence: None,
        }
    }

    #[test]
    fn a_resolved_step_holds_until_its_hold_has_passed_since_the_resolution() {
        let fixed = Some(Verified::Done(Verification::Fixed));
        let not_fixed = Some(Verified::Done(Verification::NotFixed));
        assert_eq!(state("pending", Some(false), 600, 0).next(), not_fixed);
        assert!(matches!(
            state("pending", Some(true), 600, 60).next(),
            Some(Verified::Holding(_))
        ));
        assert_eq!(state("pending", Some(true), 600, 601).next(), fixed);
        assert_eq!(state("pending", Some(true), 0, 0).next(), fixed);
        assert!(matches!(
            state("holding", Some(true), 600, 60).next(),
            Some(Verified::Holding(_))
        ));
        assert_eq!(state("holding", Some(true), 600, 700).next(), fixed);
        assert_eq!(state("relapsed", Some(true), 600, 60).next(), None);
        assert_eq!(state("fixed", Some(true), 600, 700).next(), None);
    }
}
