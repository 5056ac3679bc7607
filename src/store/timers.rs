//! Timers: claiming due ones under a lease, recording what their sends did, acknowledgements,
//! and reading an incident's timeline.
//!
//! A claim is one statement: due rows are locked with `FOR UPDATE SKIP LOCKED` (so concurrent
//! engines take disjoint sets) and stamped with the engine's token and a `lease_until`. If the
//! engine dies, the timer can be taken again once the lease ends. `lease_until` is not
//! indexed, so a claim is a HOT update: under load the due-time index changes only when a
//! timer completes. A completion applies only while the token still matches, so an engine that
//! lost its lease cannot overwrite what the new holder did.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{types::Json, Row};

use super::{
    audit::{self, Actor},
    timer_work::{self, TimerRow},
    Store, StoreError,
};
use crate::{
    alertmanager::KV,
    domain::{Act, Action, ContextSummary, Surface, TimerKind, TimerOutcome, TimerWork},
};

/// Channel engines LISTEN on; scheduling a timer NOTIFYs it so sleeping engines wake early.
pub const CHANNEL: &str = "medic_timers";

/// A timer this engine now holds, with what its message needs to say.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    /// The engine's lease token; the completion must present it.
    pub claim: i64,
    /// The rule that asked for it (empty for a `context` timer).
    pub rule: String,
    /// What it does, read from the row once ([`timer_work`](super::timer_work)).
    pub work: TimerWork,
    /// 1 for the first attempt at this occurrence.
    pub attempt: i32,
    pub scheduled_at: DateTime<Utc>,
    /// Seconds between `scheduled_at` and the claim, by the database's clock (negative for a
    /// timer claimed ahead of time).
    pub lateness: f64,
    /// Seconds from the claim until the timer is due (positive when claimed ahead of time).
    pub due_in: f64,
    /// An acknowledge or resolve that must wait: a message about the same incident to the same
    /// notifier is being sent right now, and PagerDuty must see the trigger first.
    pub behind_inflight: bool,
    pub incident: IncidentView,
    /// The W3C trace context the incident kept when it opened, which its later work joins.
    pub traceparent: Option<String>,
    /// The short form of the incident's cluster context, once gathered.
    pub context: Option<ContextSummary>,
}

impl Claimed {
    /// The kind of timer.
    pub fn kind(&self) -> TimerKind {
        self.work.kind()
    }

    /// The escalation or remediation step (0 for other kinds).
    pub fn step(&self) -> i32 {
        self.work.step()
    }

    /// Which sending of a repeating escalation this is; attempts are counted per occurrence.
    pub fn occurrence(&self) -> i32 {
        self.work.occurrence()
    }
}

/// A claimed timer whose row cannot be read as work (damaged, or written by a version that
/// stored it otherwise): recorded as failed with the reason, never fired as made-up work.
#[derive(Debug, Clone)]
pub struct Undecodable {
    pub id: i64,
    pub claim: i64,
    pub kind: TimerKind,
    pub rule: String,
    pub incident_id: i64,
    pub occurrence: i32,
    pub attempt: i32,
    /// A remediation's or verification's action, when the row names one this build knows.
    pub action: Option<Action>,
    pub reason: String,
}

/// The incident as a message describes it.
#[derive(Debug, Clone)]
pub struct IncidentView {
    pub id: i64,
    pub firing: bool,
    pub acknowledged: Option<Acknowledgement>,
    /// The incident's common labels over those of its first alert (so `instance` and
    /// `severity` are there even when alerts differ).
    pub labels: KV,
    pub annotations: KV,
    pub external_url: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub firing_alerts: i64,
    pub alerts: i64,
}

/// Who acknowledged an incident, when, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Acknowledgement {
    pub by: String,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
    /// The way it came.
    pub via: Surface,
}

/// What became of one claimed timer.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: i64,
    pub claim: i64,
    pub occurrence: i32,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub outcome: TimerOutcome,
    pub status_code: Option<i32>,
    pub error: Option<String>,
}

const CLAIM: &str = "
    WITH due AS (
        SELECT t.id FROM timers t
         WHERE t.state = 'pending' AND t.due_at <= now() + $4::bigint * interval '1 millisecond'
           AND (t.lease_until IS NULL OR t.lease_until <= now())
           -- Kinds a newer replica may have written are left to it.
           AND t.kind = ANY($5::text[])
         ORDER BY t.due_at
         LIMIT $1
           FOR UPDATE SKIP LOCKED),
    claimed AS (
        UPDATE timers t
           SET claim = $2, attempts = t.attempts + 1, updated_at = now(),
               lease_until = now() + $3::bigint * interval '1 millisecond'
          FROM due WHERE t.id = due.id
        RETURNING t.*)
    SELECT c.id, c.kind, c.rule, c.step, c.notifier, c.occurrence, c.attempts, c.scheduled_at,
           extract(epoch FROM clock_timestamp() - c.scheduled_at)::float8,
           extract(epoch FROM c.due_at - clock_timestamp())::float8,
           c.kind IN ('acknowledged', 'resolved') AND EXISTS (
               SELECT 1 FROM timers e
                WHERE e.incident_id = c.incident_id AND e.notifier = c.notifier
                  AND e.kind IN ('opened', 'escalation') AND e.state = 'pending'
                  AND e.claim IS NOT NULL AND e.claim <> $2),
           i.id, i.status = 'firing', i.acked_by, i.ack_note, i.acked_at,
           coalesce(f.labels, '{}') || i.common_labels,
           coalesce(f.annotations, '{}') || i.common_annotations,
           i.external_url, i.created_at, i.resolved_at, n.firing, n.total, c.subject, c.payload,
           i.acked_via, i.traceparent,
           (SELECT x.summary FROM incident_context x WHERE x.incident_id = c.incident_id)
      FROM claimed c
      JOIN incidents i ON i.id = c.incident_id
      LEFT JOIN LATERAL (
          SELECT a.labels, a.annotations FROM alerts a
           WHERE a.group_id = i.group_id AND a.incident_id = i.id
           ORDER BY a.starts_at, a.fingerprint LIMIT 1) f ON true
      CROSS JOIN LATERAL (
          SELECT count(*) FILTER (WHERE a.status = 'firing') AS firing, count(*) AS total
            FROM alerts a WHERE a.group_id = i.group_id AND a.incident_id = i.id) n";

const COMPLETE: &str = "
    -- A window that holds a message may have been ended early since the engine looked: the
    -- message is then due that much sooner. Locked, so that ending it either waits for this
    -- statement (and releases the message by its held_by) or is seen by it.
    WITH windows AS (
        SELECT w.id, w.ends_at - coalesce(w.ended_at, w.ends_at) AS early
          FROM maintenance_windows w WHERE w.id = ANY($10::bigint[])
           FOR SHARE),
    u AS (
        SELECT u.*, (u.outcome = 'sent' AND t.kind = 'escalation' AND t.repeat_every IS NOT NULL
                     AND i.status = 'firing' AND i.acked_at IS NULL) AS again,
               greatest(now(), now() + u.delay_ms * interval '1 millisecond'
                                     - coalesce(w.early, interval '0')) AS released_at
          FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $10::bigint[])
               AS u (id, claim, outcome, delay_ms, error, held_by)
          JOIN timers t ON t.id = u.id
          JOIN incidents i ON i.id = t.incident_id
          LEFT JOIN windows w ON w.id = u.held_by),
    attempts AS (
        INSERT INTO timer_attempts (timer_id, occurrence, attempt, started_at, result, status_code, error)
        SELECT a.* FROM unnest($1::bigint[], $6::integer[], $7::integer[], $8::timestamptz[],
                               $3::text[], $9::integer[], $5::text[])
                        AS a (id, occurrence, attempt, started_at, result, status_code, error)
         WHERE a.result NOT IN ('cancelled', 'requeue')
        ON CONFLICT DO NOTHING),
    updated AS (
        UPDATE timers t SET
            state = CASE WHEN u.again OR u.outcome IN ('retry', 'requeue', 'muted') THEN 'pending'
                         WHEN u.outcome = 'sent' THEN 'done'
                         WHEN u.outcome = 'cancelled' THEN 'cancelled'
                         ELSE 'failed' END,
            -- A held message is meant for the window's end: lateness and the retry horizon
            -- count from there.
            scheduled_at = CASE WHEN u.again THEN greatest(t.scheduled_at + t.repeat_every, now())
                                WHEN u.outcome = 'muted' THEN u.released_at
                                ELSE t.scheduled_at END,
            due_at = CASE WHEN u.again THEN greatest(t.scheduled_at + t.repeat_every, now())
                          WHEN u.outcome = 'muted' THEN u.released_at
                          WHEN u.outcome IN ('retry', 'requeue')
                               THEN now() + u.delay_ms * interval '1 millisecond'
                          ELSE t.due_at END,
            held_by = CASE WHEN u.outcome = 'muted' THEN u.held_by ELSE t.held_by END,
            occurrence = t.occurrence + CASE WHEN u.again THEN 1 ELSE 0 END,
            attempts = CASE WHEN u.again THEN 0
                            WHEN u.outcome = 'requeue' THEN t.attempts - 1
                            ELSE t.attempts END,
            claim = NULL,
            lease_until = NULL,
            fired_at = CASE WHEN u.outcome = 'sent' THEN now() ELSE t.fired_at END,
            last_error = CASE WHEN u.outcome = 'requeue' THEN t.last_error ELSE u.error END,
            updated_at = now()
          FROM u
         WHERE t.id = u.id AND t.claim = u.claim
        RETURNING t.id)
    SELECT id FROM updated";

/// The earliest of: a free timer of a known kind coming due, or a held one whose lease runs out.
const NEXT_DUE: &str = "
    SELECT extract(epoch FROM least(
               (SELECT min(due_at) FROM timers
                 WHERE state = 'pending' AND (lease_until IS NULL OR lease_until <= now())
                   AND kind = ANY($1::text[])),
               (SELECT min(lease_until) FROM timers
                 WHERE state = 'pending' AND due_at <= now() AND lease_until > now()
                   AND kind = ANY($1::text[])))
           - clock_timestamp())::float8";

/// The kinds this build knows how to fire, as stored; made once, passed to every claim.
fn known_kinds() -> &'static [&'static str] {
    static KINDS: std::sync::LazyLock<Vec<&'static str>> =
        std::sync::LazyLock::new(|| TimerKind::ALL.iter().map(|kind| kind.as_str()).collect());
    &KINDS
}

impl Store {
    /// Claims up to `limit` timers due within `ahead_ms` for `lease_ms` under `token`, most
    /// overdue first, each read as its work once (or as [`Undecodable`]). Only kinds this
    /// build knows are claimed: a timer written by a newer replica during a rolling update
    /// waits for one that knows it.
    pub async fn claim_timers(
        &self,
        limit: i64,
        token: i64,
        lease_ms: i64,
        ahead_ms: i64,
    ) -> Result<Vec<Result<Claimed, Undecodable>>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(CLAIM).await?;
        // A claim need not wait for its WAL to reach disk: if Postgres crashes and forgets
        // it, the timer is simply still pending and fires then. Pipelined: one round trip.
        let kinds = known_kinds();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&limit, &token, &lease_ms, &ahead_ms, &kinds];
        let (begin, rows, commit) = tokio::join!(
            client.batch_execute("BEGIN; SET LOCAL synchronous_commit = off"),
            client.query(&statement, &params),
            client.batch_execute("COMMIT"),
        );
        begin?;
        let rows = rows?;
        commit?;
        Ok(rows.iter().filter_map(|row| claimed_from(row, token)).collect())
    }

    /// Records what became of claimed timers, with their attempts; returns the ids whose
    /// lease was still this engine's (the others were taken over and are left alone).
    pub async fn complete_timers(&self, completions: &[Completion]) -> Result<Vec<i64>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(COMPLETE).await?;
        let column = |f: fn(&Completion) -> i64| completions.iter().map(f).collect::<Vec<i64>>();
        let ids = column(|c| c.id);
        let claims = column(|c| c.claim);
        let delays = column(|c| c.outcome.delay_ms());
        let outcomes: Vec<&str> = completions.iter().map(|c| c.outcome.as_str()).collect();
        let errors: Vec<Option<&str>> = completions.iter().map(|c| c.error.as_deref()).collect();
        let occurrences: Vec<i32> = completions.iter().map(|c| c.occurrence).collect();
        let attempts: Vec<i32> = completions.iter().map(|c| c.attempt).collect();
        let started: Vec<DateTime<Utc>> = completions.iter().map(|c| c.started_at).collect();
        let codes: Vec<Option<i32>> = completions.iter().map(|c| c.status_code).collect();
        let held: Vec<Option<i64>> = completions
            .iter()
            .map(|c| match c.outcome {
                TimerOutcome::Muted { window, .. } => Some(window),
                _ => None,
            })
            .collect();
        let rows = client
            .query(
                &statement,
                &[
                    &ids,
                    &claims,
                    &outcomes,
                    &delays,
                    &errors,
                    &occurrences,
                    &attempts,
                    &started,
                    &codes,
                    &held,
                ],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Seconds until the earliest pending timer is due (negative if overdue); None if none is.
    pub async fn next_timer_due(&self) -> Result<Option<f64>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(NEXT_DUE).await?;
        Ok(client.query_one(&statement, &[&known_kinds()]).await?.get(0))
    }

    /// Reclaims the index entries that fired timers leave behind. Every completion takes a
    /// timer out of the due-time index, so under sustained load the index fills with dead
    /// entries that each claim must step over until autovacuum (at most once a minute per
    /// database) gets to them. Skipped if another replica is vacuuming already.
    pub async fn vacuum_timers(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        // Vacuum may run past the session's statement limit; the limit returns after it.
        // (Three statements: VACUUM cannot run in the implicit transaction of a batch.)
        client.batch_execute("SET statement_timeout = 0").await?;
        let vacuumed = client
            .batch_execute("VACUUM (SKIP_LOCKED, TRUNCATE false) timers")
            .await;
        client.batch_execute("RESET statement_timeout").await?;
        vacuumed?;
        Ok(())
    }

    /// Timers waiting to fire (leased ones included), for the gauge.
    pub async fn pending_timers(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT count(*) FROM timers WHERE state = 'pending'", &[])
            .await?;
        Ok(row.get(0))
    }
}

/// The way an acknowledgement came, as stored (none in incidents acknowledged before it was
/// recorded: the API's).
pub(super) fn surface(word: Option<&str>) -> Surface {
    word.and_then(Surface::parse).unwrap_or(Surface::Api)
}

fn claimed_from(row: &Row, claim: i64) -> Option<Result<Claimed, Undecodable>> {
    let acknowledged = row.get::<_, Option<String>>(13).map(|by| Acknowledgement {
        by,
        note: row.get(14),
        at: row.get(15),
        via: surface(row.get(25)),
    });
    let kind = TimerKind::parse(row.get(1))?;
    let stored = TimerRow {
        kind,
        step: row.get(3),
        notifier: row.get(4),
        subject: row.get(23),
        occurrence: row.get(5),
        payload: row.get(24),
    };
    let action = timer_work::action_of(kind, &stored.notifier);
    let work = match timer_work::decode(stored) {
        Ok(work) => work,
        Err(reason) => {
            return Some(Err(Undecodable {
                id: row.get(0),
                claim,
                kind,
                rule: row.get(2),
                incident_id: row.get(11),
                occurrence: row.get(5),
                attempt: row.get(6),
                action,
                reason,
            }))
        }
    };
    Some(Ok(Claimed {
        id: row.get(0),
        claim,
        rule: row.get(2),
        work,
        attempt: row.get(6),
        scheduled_at: row.get(7),
        lateness: row.get(8),
        due_in: row.get(9),
        behind_inflight: row.get(10),
        incident: IncidentView {
            id: row.get(11),
            firing: row.get(12),
            acknowledged,
            labels: row.get::<_, Json<KV>>(16).0,
            annotations: row.get::<_, Json<KV>>(17).0,
            external_url: row.get(18),
            created_at: row.get(19),
            resolved_at: row.get(20),
            firing_alerts: row.get(21),
            alerts: row.get(22),
        },
        traceparent: row.get(26),
        context: row
            .try_get::<_, Option<Json<ContextSummary>>>(27)
            .ok()
            .flatten()
            .map(|Json(summary)| summary),
    }))
}

/// What acknowledging did.
#[derive(Debug)]
pub enum AckResult {
    NotFound,
    /// Resolved incidents are not acknowledged.
    Resolved,
    Acknowledged {
        ack: Acknowledgement,
        /// False when it was acknowledged before: nothing changed.
        newly: bool,
        /// Pending escalations stopped.
        cancelled: i32,
        /// Announcements scheduled.
        scheduled: i32,
    },
}

impl Store {
    /// Acknowledges a firing incident: records who and why (in the audit trail too, as `act`),
    /// stops its pending escalations and schedules the announcement, all in one transaction.
    /// Acknowledging twice changes nothing, and records nothing. `resolve_elsewhere` (PagerDuty
    /// said it is resolved) stops escalating and acting as an acknowledgement does, until
    /// Alertmanager says it resolved.
    pub async fn acknowledge(
        &self,
        incident: i64,
        actor: &Actor,
        note: Option<&str>,
        action: Act,
    ) -> Result<AckResult, StoreError> {
        let by = actor.name.as_str();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT status, acked_by, ack_note, acked_at, acked_via FROM incidents
                  WHERE id = $1 FOR UPDATE",
                &[&incident],
            )
            .await?
        else {
            return Ok(AckResult::NotFound);
        };
        if let Some(by) = row.get::<_, Option<String>>(1) {
            // PagerDuty's resolution of an incident acknowledged before changes nothing more
            // (escalation and remediation stopped then), but the timeline says it, once.
            if action != Act::Acknowledge && row.get::<_, &str>(0) == "firing" {
                let said = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM audit_events WHERE incident_id = $1 AND action = $2)",
                        &[&incident, &action.as_str()],
                    )
                    .await?;
                if !said.get::<_, bool>(0) {
                    let detail = serde_json::json!({ "note": note });
                    audit::record(&tx, Some(incident), action, actor, &detail).await?;
                    tx.commit().await?;
                }
            }
            let ack = Acknowledgement {
                by,
                note: row.get(2),
                at: row.get(3),
                via: surface(row.get(4)),
            };
            return Ok(AckResult::Acknowledged {
                ack,
                newly: false,
                cancelled: 0,
                scheduled: 0,
            });
        }
        if row.get::<_, &str>(0) != "firing" {
            return Ok(AckResult::Resolved);
        }
        let at: DateTime<Utc> = tx
            .query_one(
                "UPDATE incidents SET acked_at = now(), acked_by = $2, ack_note = $3, acked_via = $4,
                                      updated_at = now()
                  WHERE id = $1 RETURNING acked_at",
                &[&incident, &by, &note, &actor.surface.as_str()],
            )
            .await?
            .get(0);
        let closed = tx
            .query_one(
                "SELECT cancelled, scheduled FROM medic_close_timers($1, 'acknowledged')",
                &[&incident],
            )
            .await?;
        audit::record(
            &tx,
            Some(incident),
            action,
            actor,
            &serde_json::json!({ "note": note }),
        )
        .await?;
        tx.commit().await?;
        Ok(AckResult::Acknowledged {
            ack: Acknowledgement {
                by: by.to_owned(),
                note: note.map(str::to_owned),
                at,
                via: actor.surface,
            },
            newly: true,
            cancelled: closed.get(0),
            scheduled: closed.get(1),
        })
    }
}

/// One timer as the API shows it.
#[derive(Debug, Serialize)]
pub struct TimerRecord {
    pub id: i64,
    pub kind: String,
    pub rule: String,
    pub step: i32,
    pub notifier: String,
    pub channel: String,
    pub state: String,
    pub scheduled_at: DateTime<Utc>,
    /// When an engine will next try (pending timers only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub repeats: i32,
    pub fired_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub attempts: Vec<AttemptRecord>,
}

/// One attempt to deliver a timer's message.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct AttemptRecord {
    pub occurrence: i32,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub result: String,
    pub status_code: Option<i32>,
    pub error: Option<String>,
}

const SELECT_TIMERS: &str = "
    SELECT t.id, t.kind, t.rule, t.step, t.notifier, t.channel, t.state, t.scheduled_at,
           CASE WHEN t.state = 'pending' THEN t.due_at END, t.occurrence, t.fired_at, t.last_error,
           t.updated_at,
           coalesce((SELECT json_agg(json_build_object(
                         'occurrence', a.occurrence, 'attempt', a.attempt, 'started_at', a.started_at,
                         'finished_at', a.finished_at, 'result', a.result,
                         'status_code', a.status_code, 'error', a.error)
                       ORDER BY a.occurrence, a.attempt)
                       FROM timer_attempts a WHERE a.timer_id = t.id), '[]')
      FROM timers t WHERE t.incident_id = $1
     ORDER BY t.scheduled_at, t.id";

impl Store {
    /// An incident's timers with every attempt, in the order they were due.
    pub async fn incident_timers(&self, incident: i64) -> Result<Vec<TimerRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(SELECT_TIMERS).await?;
        let rows = client.query(&statement, &[&incident]).await?;
        Ok(rows.iter().map(timer_from).collect())
    }
}

fn timer_from(row: &Row) -> TimerRecord {
    TimerRecord {
        id: row.get(0),
        kind: row.get(1),
        rule: row.get(2),
        step: row.get(3),
        notifier: row.get(4),
        channel: row.get(5),
        state: row.get(6),
        scheduled_at: row.get(7),
        next_attempt_at: row.get(8),
        repeats: row.get(9),
        fired_at: row.get(10),
        last_error: row.get(11),
        updated_at: row.get(12),
        attempts: serde_json::from_value(row.get(13)).unwrap_or_default(),
    }
}
