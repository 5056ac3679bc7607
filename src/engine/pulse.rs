//! medic's own pulse, outward: while this replica's claim loop goes round, call an external
//! dead man's switch (`heartbeat_out.url`, a Healthchecks-style ping URL) every
//! `heartbeat_out.every`, so that something outside notices when all of medic is down. A
//! failed call is logged and counted, never retried: the next beat is the retry.

use std::time::Duration;

use prometheus::{Gauge, IntCounterVec};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::config::{HeartbeatOutSettings, PingMethod};

/// What the pulse needs: where to call, and how to tell that the engine is healthy.
pub struct Pulse {
    pub settings: HeartbeatOutSettings,
    pub client: reqwest::Client,
    /// `medic_engine_last_loop_timestamp_seconds`: the claim loop sets it each round.
    pub last_loop: Gauge,
    /// Longer than this since the loop went round: unhealthy, no ping.
    pub stall_after: Duration,
    /// `medic_heartbeat_out_pings_total{result}`.
    pub pings: IntCounterVec,
}

impl Pulse {
    /// Beats until `stopped`.
    pub(super) async fn run(self: std::sync::Arc<Self>, mut stopped: watch::Receiver<bool>) {
        // The first beat one period after start: the claim loop has gone round by then.
        let period = self.settings.every.0;
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*stopped.borrow() && stopped.has_changed().is_ok() {
            tokio::select! {
                _ = every.tick() => self.beat().await,
                _ = stopped.changed() => {}
            }
        }
    }

    /// One beat: a call if the engine is healthy, counted either way.
    async fn beat(&self) {
        if !self.healthy() {
            self.pings.with_label_values(&["skipped"]).inc();
            tracing::warn!("heartbeat_out skipped: the timer engine has stalled");
            return;
        }
        let url = self.settings.url.expose_secret();
        let request = match self.settings.method {
            PingMethod::Get => self.client.get(url),
            PingMethod::Post => self.client.post(url),
        };
        match request.send().await.and_then(|r| r.error_for_status()) {
            Ok(_) => {
                self.pings.with_label_values(&["ok"]).inc();
            }
            Err(e) => {
                self.pings.with_label_values(&["failed"]).inc();
                // The URL may carry a secret: the error without it.
                tracing::warn!(error = %e.without_url(), "heartbeat_out call failed");
            }
        }
    }

    fn healthy(&self) -> bool {
        let last = self.last_loop.get();
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        last > 0.0 && now - last <= self.stall_after.as_secs_f64()
    }
}
