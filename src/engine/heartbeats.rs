//! Watching heartbeats: every replica's engine takes heartbeats whose deadline passed and
//! opens their HeartbeatMissing incidents, exactly once across replicas (the store locks each
//! row with `SKIP LOCKED` in the transaction that opens it). The incident's announcement and
//! escalation are ordinary timers, planned by the heartbeat's rule, so the claim loop sends
//! them as it sends any other.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{heartbeat_watch::Watch, Engine};
use crate::{
    domain::{Notification, PlannedTimer},
    plan::Heartbeats,
    store::{
        heartbeats::{Due, Missed, Watched},
        StoreError,
    },
};

/// The sleep after a failed look.
const POLL: Duration = Duration::from_secs(1);
/// The longest sleep between looks, whatever the windows.
const LONGEST: Duration = Duration::from_secs(30);
/// When the next deadline has passed but another engine holds that heartbeat.
const CONTENDED: Duration = Duration::from_millis(200);
/// Heartbeats opened per transaction.
const BATCH: i64 = 50;
/// How often forgotten `per` values are looked for.
const FORGET_EVERY: Duration = Duration::from_secs(60);

impl Engine {
    /// Watches the heartbeats until `stopped`: arms them once, then opens the incidents of
    /// those that go missing and forgets old `per` values.
    pub(super) async fn watch_heartbeats(&self, mut stopped: watch::Receiver<bool>) {
        let Some(watch) = self.heartbeats.clone() else {
            return;
        };
        let mut armed = false;
        let mut forgot = Instant::now();
        while !*stopped.borrow() && stopped.has_changed().is_ok() {
            let wait = match self.heartbeat_round(&watch, &mut armed, &mut forgot).await {
                Ok(wait) => wait,
                Err(e @ StoreError::Unavailable(_)) => {
                    tracing::debug!(error = %e, "watching heartbeats waits for the database");
                    POLL
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "watching heartbeats failed; trying again");
                    POLL
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => {}
            }
        }
    }

    /// One look: arm (once), open what is missing, forget (now and then); returns how long to
    /// sleep before the next look.
    async fn heartbeat_round(
        &self,
        watch: &Watch,
        armed: &mut bool,
        forgot: &mut Instant,
    ) -> Result<Duration, StoreError> {
        let watched = watched(&watch.heartbeats);
        if !*armed {
            self.store.arm_heartbeats(&watched).await?;
            *armed = true;
        }
        let names: Vec<&str> = watched.iter().map(|w| w.name).collect();
        let missed = self
            .store
            .open_missing_heartbeats(&names, BATCH, |due| self.missing(&watch.heartbeats, due))
            .await?;
        for missed in &missed {
            watch.metrics.missed.inc();
            log_missing(missed);
        }
        if missed.len() as i64 == BATCH {
            return Ok(Duration::ZERO);
        }
        if forgot.elapsed() >= FORGET_EVERY {
            let forgotten = self.store.forget_heartbeats(&watched).await?;
            if forgotten > 0 {
                tracing::info!(forgotten, "heartbeats not seen for their forget_after forgotten");
            }
            *forgot = Instant::now();
        }
        // Deadlines only move later, except a heartbeat first seen since this look: it is due
        // no sooner than the shortest window from now, so sleeping that long misses nothing.
        let longest = watch.heartbeats.iter().map(|h| h.window).min().unwrap_or(LONGEST);
        let longest = longest.clamp(POLL, LONGEST);
        Ok(match self.store.next_heartbeat_due(&names).await? {
            Some(seconds) if seconds <= 0.0 => CONTENDED,
            Some(seconds) => Duration::from_secs_f64(seconds).min(longest),
            None => longest,
        })
    }

    /// The notification that opens a missing heartbeat's incident, and the timers its rule
    /// asks for (planned as for any notification); None for a heartbeat no longer configured.
    fn missing(&self, heartbeats: &Heartbeats, due: &Due) -> Option<(Notification, Vec<PlannedTimer>)> {
        let heartbeat = heartbeats.get(&due.name)?;
        let notification = heartbeat.missing(&due.per_value, due.due_at, due.last_seen_at);
        let timers = self.rules.plan(&notification);
        Some((notification, timers))
    }
}

/// The configured heartbeats, as the store takes them.
fn watched(heartbeats: &Heartbeats) -> Vec<Watched<'_>> {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    heartbeats
        .iter()
        .map(|h| Watched {
            name: &h.name,
            per: h.per.is_some(),
            window_ms: ms(h.window),
            forget_after_ms: ms(h.forget_after),
        })
        .collect()
}

fn log_missing(missed: &Missed) {
    tracing::warn!(
        heartbeat = %missed.due.name,
        per_value = %missed.due.per_value,
        incident_id = missed.incident_id,
        due_at = %missed.due.due_at,
        last_seen_at = ?missed.due.last_seen_at,
        "heartbeat missing: incident opened"
    );
}
