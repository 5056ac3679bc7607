//! The claim loop: claim as many due timers as there are free send slots, fire each in its own
//! task, and sleep when nothing is due.

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{mpsc, Semaphore},
    task::JoinSet,
};

use super::{wake::Idle, Engine};
use crate::{
    domain::{TimerKind, TimerOutcome},
    store::{
        timers::{Claimed, Completion},
        StoreError,
    },
};

/// Poll interval while the LISTEN connection is down, or after a failed claim.
pub(super) const FAST_POLL: Duration = Duration::from_secs(1);
/// How often an engine started before the schema looks again (a migration takes well under a second).
const SCHEMA_POLL: Duration = Duration::from_millis(200);
/// Pause when due timers exist but other engines hold every one of them.
const CONTENDED: Duration = Duration::from_millis(20);
/// How soon a remediation that found every remediation permit taken is tried again.
const REMEDIATIONS_BUSY_MS: i64 = 1000;

/// A timer put back unattempted, due again after `delay_ms`.
fn requeue(timer: &Claimed, delay_ms: i64) -> Completion {
    Completion {
        id: timer.id,
        claim: timer.claim,
        occurrence: timer.occurrence(),
        attempt: timer.attempt,
        started_at: chrono::Utc::now(),
        outcome: TimerOutcome::Requeue { delay_ms },
        status_code: None,
        error: None,
    }
}

impl Engine {
    /// Claims and fires until shut down; completions are recorded alongside.
    pub(super) async fn run(self, mut idle: Idle, concurrency: usize) {
        let (done, completions) = mpsc::channel(concurrency * 2);
        let recorder = self.clone().record_completions(completions, idle.wake.clone());
        let watcher = self.clone();
        let watcher = watcher.watch_heartbeats(idle.stopped.clone());
        let pulse = self.pulse.clone().map(|pulse| pulse.run(idle.stopped.clone()));
        let pulse = async move {
            if let Some(pulse) = pulse {
                pulse.await;
            }
        };
        let claimer = async move {
            self.await_schema(&mut idle).await;
            let permits = Arc::new(Semaphore::new(concurrency));
            let mut sends = JoinSet::new();
            while !idle.is_stopped() {
                self.metrics
                    .last_loop
                    .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
                while sends.try_join_next().is_some() {}
                match self.claim_and_fire(&permits, &mut sends, &done).await {
                    Ok(0) => self.idle(&mut idle).await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming timers failed");
                        idle.sleep(FAST_POLL).await;
                    }
                }
            }
            while sends.join_next().await.is_some() {}
        };
        tokio::join!(claimer, recorder, watcher, pulse);
        tracing::info!("timer engine stopped");
    }

    /// Claims as many due timers as there are free send slots and starts firing them.
    /// Until the schema is current there is nothing to claim: startup is migrating it (or
    /// waiting for whoever does) and says so in the log, so the engine waits without warning.
    async fn await_schema(&self, idle: &mut Idle) {
        while !idle.is_stopped() {
            match self.store.is_ready().await {
                Ok(true) => return,
                Ok(false) => tracing::debug!("timer engine waiting for the database schema"),
                Err(e) => tracing::debug!(error = %e, "timer engine waiting for the database"),
            }
            idle.sleep(SCHEMA_POLL).await;
        }
    }

    async fn claim_and_fire(
        &self,
        permits: &Arc<Semaphore>,
        sends: &mut JoinSet<()>,
        done: &mpsc::Sender<Completion>,
    ) -> Result<usize, StoreError> {
        let Ok(first) = permits.clone().acquire_owned().await else {
            return Ok(0);
        };
        let room = (permits.available_permits() + 1).min(self.batch);
        let claimed = self
            .store
            .claim_timers(
                room as i64,
                self.token,
                self.lease.as_millis() as i64,
                self.ahead.as_millis() as i64,
            )
            .await?;
        let count = claimed.len();
        let mut first = Some(first);
        for timer in claimed {
            let timer = match timer {
                Ok(timer) => timer,
                Err(undecodable) => {
                    let _ = done.send(self.undecodable(undecodable)).await;
                    continue;
                }
            };
            // Remediations run on permits of their own, so that a hung cluster or database
            // never holds back a page; when all are taken the timer comes back shortly.
            let permit = if timer.kind() == TimerKind::Remediation {
                match self.remediation_permits.clone().try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => {
                        let _ = done.send(requeue(&timer, REMEDIATIONS_BUSY_MS)).await;
                        continue;
                    }
                }
            } else {
                // Only this loop takes permits, so the room counted above is still there.
                match first.take() {
                    Some(permit) => permit,
                    None => match permits.clone().acquire_owned().await {
                        Ok(permit) => permit,
                        Err(_) => return Ok(count),
                    },
                }
            };
            let (engine, done) = (self.clone(), done.clone());
            sends.spawn(async move {
                let completion = engine.try_execute(timer).await;
                drop(permit);
                let _ = done.send(completion).await;
            });
        }
        Ok(count)
    }

    /// Sleeps until the next timer is due, a NOTIFY, the safety poll, or shutdown.
    async fn idle(&self, idle: &mut Idle) {
        let poll = idle.poll_interval(FAST_POLL);
        // Timers become claimable `ahead` of their due time.
        let ahead = self.ahead.as_secs_f64();
        let wait = match self.store.next_timer_due().await {
            Ok(Some(seconds)) if seconds - ahead <= 0.0 => CONTENDED,
            Ok(Some(seconds)) => Duration::from_secs_f64(seconds - ahead).min(poll),
            Ok(None) => poll,
            Err(e) => {
                tracing::warn!(error = %e, "reading the next timer failed");
                FAST_POLL
            }
        };
        idle.sleep(wait).await;
    }

    /// Claims due timers once, fires them all and records the outcomes; returns how many
    /// were claimed. The loop in [`Engine::spawn`] does the same, pipelined. Tests call this.
    pub async fn try_execute_batch(&self) -> Result<usize, StoreError> {
        let claimed = self
            .store
            .claim_timers(self.batch as i64, self.token, self.lease.as_millis() as i64, 0)
            .await?;
        let count = claimed.len();
        let completions = futures_util::future::join_all(claimed.into_iter().map(|timer| async {
            match timer {
                Ok(timer) => self.try_execute(timer).await,
                Err(undecodable) => self.undecodable(undecodable),
            }
        }))
        .await;
        self.complete(&completions).await?;
        Ok(count)
    }
}
