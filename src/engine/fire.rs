//! Firing one claimed timer: what it does is a small function of its kind. A remediation runs
//! behind its guard rails, and a verification checks its effect; a context timer starts the
//! gathering in a task of its own; a stale escalation is
//! cancelled; a message about an incident a maintenance window covers (muting pages) is held
//! until the window ends; an acknowledge or resolve waits for a trigger in flight; every
//! other message is sent, and a failure retried under the backoff.
//!
//! When traces are exported, each firing is a span in the trace its incident kept (the
//! request that opened it), whichever replica claims the timer.

use std::{
    panic::AssertUnwindSafe,
    time::{Duration, Instant},
};

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::FutureExt;
use tracing::{field::Empty, Instrument, Span};

use super::{retry::random_fraction, Engine};
use crate::{
    domain::{Mute, RemediationWork, TimerKind, TimerOutcome, TimerWork},
    notify::Message,
    remediation::Done,
    store::timers::{Claimed, Completion, Undecodable},
    telemetry,
};

/// How long an acknowledge or resolve waits for a trigger being sent to the same notifier.
const INFLIGHT_WAIT_MS: i64 = 250;
/// How soon a remediation waiting for another action on its target tries again.
const BUSY_RETRY_MS: i64 = 1000;

impl Engine {
    /// Fires one claimed timer and says what became of it. A panic in its work is a failed
    /// attempt with the reason, retried under the backoff until the horizon like any other
    /// failure, never a timer silently taken again after every lease. Tests call this through
    /// [`Engine::try_execute_batch`].
    pub async fn try_execute(&self, timer: Claimed) -> Completion {
        if !telemetry::exporting() {
            return self.try_fire(timer).await;
        }
        let span = span(&timer);
        let completion = self.try_fire(timer).instrument(span.clone()).await;
        span.record("result", completion.outcome.as_str());
        if let Some(error) = &completion.error {
            span.record("error.message", error.as_str());
        }
        if matches!(completion.outcome, TimerOutcome::Failed | TimerOutcome::GaveUp) {
            span.record("otel.status_code", "ERROR");
        }
        completion
    }

    /// A claimed timer whose row could not be read as work: a failure with the reason, which
    /// no retry can fix (a remediation's is counted and logged by the runner, as one it
    /// cannot run).
    pub(super) fn undecodable(&self, timer: Undecodable) -> Completion {
        let remediation = matches!(timer.kind, TimerKind::Remediation | TimerKind::Verify);
        let error = match (&self.remediations, remediation) {
            (None, true) => "this replica runs no remediation".to_owned(),
            (Some(runner), true) => runner.undecodable(&timer),
            (_, false) => {
                tracing::error!(timer_id = timer.id, incident_id = timer.incident_id, kind = timer.kind.as_str(),
                    rule = %timer.rule, reason = %timer.reason, "timer cannot be read; recorded as failed");
                timer.reason
            }
        };
        Completion {
            id: timer.id,
            claim: timer.claim,
            occurrence: timer.occurrence,
            attempt: timer.attempt,
            started_at: Utc::now(),
            outcome: TimerOutcome::Failed,
            status_code: None,
            error: Some(error),
        }
    }

    /// [`Engine::try_execute`], within the firing's span.
    async fn try_fire(&self, timer: Claimed) -> Completion {
        let (id, claim, occurrence, attempt) = (timer.id, timer.claim, timer.occurrence(), timer.attempt);
        let waited = Duration::from_secs_f64(timer.lateness.max(0.0));
        let started_at = Utc::now();
        match AssertUnwindSafe(self.fire(timer)).catch_unwind().await {
            Ok(completion) => completion,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let outcome = self
                    .backoff
                    .after_failure(attempt, waited, None, random_fraction());
                self.metrics.panics.inc();
                tracing::error!(timer_id = id, attempt, panic = %what, result = outcome.as_str(),
                    "firing a timer panicked; recorded as a failed attempt");
                Completion {
                    id,
                    claim,
                    occurrence,
                    attempt,
                    started_at,
                    outcome,
                    status_code: None,
                    error: Some(format!("panicked: {what}")),
                }
            }
        }
    }

    /// Decides whether a claimed timer still applies, fires it, and says what became of it.
    async fn fire(&self, mut timer: Claimed) -> Completion {
        if let Some(fault) = &self.fault {
            fault(&timer).await;
        }
        // Claimed ahead of time: wait for the moment it is due.
        if timer.due_in > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(timer.due_in)).await;
            timer.lateness += timer.due_in;
        }
        if timer.attempt == 1 {
            self.metrics.lateness.observe(timer.lateness.max(0.0));
        }
        let started_at = Utc::now();
        let completion = |outcome, status_code, error| Completion {
            id: timer.id,
            claim: timer.claim,
            occurrence: timer.occurrence(),
            attempt: timer.attempt,
            started_at,
            outcome,
            status_code,
            error,
        };
        let notifier = match &timer.work {
            TimerWork::Context => {
                let (outcome, error) = self.gather(&timer);
                return completion(outcome, None, error);
            }
            TimerWork::Remediation(work) | TimerWork::Verify(work) => {
                let (outcome, error) = self.remediate(&timer, work).await;
                return completion(outcome, None, error);
            }
            TimerWork::Opened { notifier }
            | TimerWork::Escalation { notifier, .. }
            | TimerWork::Acknowledged { notifier }
            | TimerWork::Resolved { notifier }
            | TimerWork::Remediated { notifier, .. }
            | TimerWork::Approval { notifier, .. }
            | TimerWork::ContextReady { notifier } => notifier.as_str(),
        };
        if is_stale(&timer) {
            self.metrics.cancelled.inc();
            tracing::info!(
                timer_id = timer.id,
                incident_id = timer.incident.id,
                "escalation dropped: the incident resolved or was acknowledged"
            );
            return completion(TimerOutcome::Cancelled, None, None);
        }
        if let Some((outcome, why)) = self.held(&timer).await {
            tracing::info!(timer_id = timer.id, incident_id = timer.incident.id, kind = timer.kind().as_str(),
                notifier, reason = %why, "message muted");
            return completion(outcome, None, Some(why));
        }
        if timer.behind_inflight {
            let delay_ms = INFLIGHT_WAIT_MS;
            return completion(TimerOutcome::Requeue { delay_ms }, None, None);
        }
        let (outcome, code, error) = self.deliver(&timer, notifier).await;
        let completion = completion(outcome, code, error);
        self.report(&timer, notifier, &completion);
        completion
    }

    /// A message a maintenance window muting pages holds: due again when the window ends (an
    /// escalation step its delay after that, as if the incident opened then, and the
    /// incident's later steps with it), with why. None when no window covers the incident.
    async fn held(&self, timer: &Claimed) -> Option<(TimerOutcome, String)> {
        // A request for approval is a question, not a page: held, it could only expire.
        if timer.kind() == TimerKind::Approval || !self.control.any(Mute::Pages) {
            return None;
        }
        // If the alerts cannot be read, the message goes out: nothing broken stays silent.
        let label_sets = self.store.incident_label_sets(timer.incident.id).await.ok()?;
        let window = self.control.covering(Mute::Pages, &label_sets)?;
        let until: DateTime<Utc> = if timer.kind() == TimerKind::Escalation && timer.occurrence() == 0 {
            window.ends_at + (timer.scheduled_at - timer.incident.created_at).max(chrono::TimeDelta::zero())
        } else {
            window.ends_at
        };
        if timer.kind() == TimerKind::Escalation {
            if let Err(e) = self
                .store
                .hold_escalations(timer.incident.id, window.id, window.ends_at)
                .await
            {
                tracing::warn!(incident_id = timer.incident.id, error = %e, "holding later escalation steps failed");
            }
        }
        let delay_ms = (until - Utc::now()).num_milliseconds().max(0);
        let why = format!(
            "muted: held by maintenance window {} ({}) until {}",
            window.id,
            window.reason,
            until.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        Some((
            TimerOutcome::Muted {
                delay_ms,
                window: window.id,
            },
            why,
        ))
    }

    /// Hands the incident to the context gatherer, which works in a task of its own: the
    /// timer is done at once, its lease never held while the cluster is read.
    fn gather(&self, timer: &Claimed) -> (TimerOutcome, Option<String>) {
        match &self.context {
            Some(gatherer) => {
                gatherer.start(timer.incident.id, timer.incident.created_at);
                (TimerOutcome::Sent, None)
            }
            None => (
                TimerOutcome::Failed,
                Some("this replica gathers no cluster context".into()),
            ),
        }
    }

    /// Runs a remediation (or verifies one) behind its guard rails; the decision is recorded
    /// by the runner.
    async fn remediate(&self, timer: &Claimed, work: &RemediationWork) -> (TimerOutcome, Option<String>) {
        let Some(runner) = &self.remediations else {
            return (
                TimerOutcome::Failed,
                Some("this replica runs no remediation".into()),
            );
        };
        let done = match timer.work {
            TimerWork::Verify(_) => runner.verify(timer, work).await,
            _ => runner.run(timer, work).await,
        };
        match done {
            Ok(Done::Finished) => (TimerOutcome::Sent, None),
            Ok(Done::Wait(until)) => (
                TimerOutcome::Requeue {
                    delay_ms: (until - Utc::now()).num_milliseconds().max(0),
                },
                None,
            ),
            Ok(Done::Busy) => (
                TimerOutcome::Requeue {
                    delay_ms: BUSY_RETRY_MS,
                },
                None,
            ),
            Ok(Done::Rejected(reason)) => (TimerOutcome::Failed, Some(reason)),
            Err(e) => {
                // The database failed the bookkeeping: retried under the backoff, like a send.
                let waited = Duration::from_secs_f64(timer.lateness.max(0.0));
                let outcome = self
                    .backoff
                    .after_failure(timer.attempt, waited, None, random_fraction());
                tracing::warn!(timer_id = timer.id, error = %e, result = outcome.as_str(),
                    "remediation could not be decided");
                (outcome, Some(e.to_string()))
            }
        }
    }

    /// Sends the timer's message to `notifier`; a failure is retried, given up or final.
    async fn deliver(&self, timer: &Claimed, notifier: &str) -> (TimerOutcome, Option<i32>, Option<String>) {
        let runbook_url = timer
            .incident
            .annotations
            .get("runbook_url")
            .map(String::as_str)
            .or_else(|| self.rules.get(&timer.rule).and_then(|r| r.runbook_url.as_deref()));
        let message = Message {
            timer,
            runbook_url,
            instance: self.notifiers.instance(),
        };
        let started = Instant::now();
        let result = self.notifiers.send(notifier, &message).await;
        self.metrics
            .send_duration
            .with_label_values(&[self.notifier_type(notifier)])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(code) => (TimerOutcome::Sent, code.map(i32::from), None),
            Err(failure) if !failure.retryable => (
                TimerOutcome::Failed,
                failure.status.map(i32::from),
                Some(failure.reason),
            ),
            Err(failure) => {
                let waited = Duration::from_secs_f64(timer.lateness.max(0.0));
                let outcome =
                    self.backoff
                        .after_failure(timer.attempt, waited, failure.retry_after, random_fraction());
                (outcome, failure.status.map(i32::from), Some(failure.reason))
            }
        }
    }

    /// The type of a notifier, for metric labels.
    fn notifier_type(&self, notifier: &str) -> &'static str {
        self.notifiers.kind(notifier).map_or("unknown", |k| k.as_str())
    }

    /// One log event and the metrics for each send.
    fn report(&self, timer: &Claimed, notifier: &str, c: &Completion) {
        if !c.outcome.is_attempt() {
            return;
        }
        let result = c.outcome.as_str();
        self.metrics
            .attempts
            .with_label_values(&[notifier, self.notifier_type(notifier), result])
            .inc();
        if c.outcome == TimerOutcome::Sent {
            self.metrics
                .fired
                .with_label_values(&[timer.kind().as_str()])
                .inc();
        }
        let event = tracing::field::display(timer.kind().as_str());
        let step = timer.step();
        if matches!(c.outcome, TimerOutcome::Sent | TimerOutcome::Retry { .. }) {
            tracing::info!(timer_id = timer.id, incident_id = timer.incident.id, kind = event, rule = %timer.rule,
                step, notifier, attempt = timer.attempt, result,
                status_code = c.status_code, error = c.error.as_deref(), lateness_seconds = timer.lateness,
                "message delivery");
        } else {
            tracing::error!(timer_id = timer.id, incident_id = timer.incident.id, kind = event, rule = %timer.rule,
                step, notifier, attempt = timer.attempt, result,
                status_code = c.status_code, error = c.error.as_deref(), "message not delivered");
        }
    }
}

/// The span of one firing, a child of the span its incident kept.
fn span(timer: &Claimed) -> Span {
    let kind = timer.kind().as_str();
    let span = tracing::info_span!("fire timer", otel.name = %format_args!("fire {kind} timer"),
        timer.id = timer.id, timer.kind = kind, incident_id = timer.incident.id,
        rule = %timer.rule, step = timer.step(), notifier = timer.work.notifier(), occurrence = timer.occurrence(),
        attempt = timer.attempt, lateness_seconds = timer.lateness, result = Empty, error.message = Empty,
        otel.status_code = Empty);
    telemetry::continue_trace(&span, timer.traceparent.as_deref());
    span
}

/// An escalation whose incident resolved or was acknowledged behind the timer's back.
fn is_stale(timer: &Claimed) -> bool {
    let incident = &timer.incident;
    match timer.work {
        TimerWork::Escalation { .. } => !incident.firing || incident.acknowledged.is_some(),
        // A request for approval about an incident that resolved: nothing to decide.
        TimerWork::Approval { .. } => !incident.firing,
        // An announcement a maintenance window held past the incident's resolution.
        TimerWork::Opened { .. } => incident
            .resolved_at
            .is_some_and(|resolved| !incident.firing && timer.scheduled_at > resolved),
        _ => false,
    }
}
