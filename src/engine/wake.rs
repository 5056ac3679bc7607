//! Waking the engine: a LISTEN connection that turns each `NOTIFY medic_timers` into a
//! wake-up, and what an idle engine waits on.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::{watch, Notify};

use crate::store::{timers::CHANNEL, tls::Connector};

/// What an idle engine waits on.
pub(super) struct Idle {
    /// Notified on a NOTIFY, and after completions that moved a timer's due time.
    pub wake: Arc<Notify>,
    /// Whether the LISTEN connection is up (else NOTIFYs may be missed).
    pub listening: Arc<AtomicBool>,
    /// The slowest check for due timers while listening.
    pub safety_poll: Duration,
    pub stopped: watch::Receiver<bool>,
}

impl Idle {
    /// Stopped on request, or when the handle was dropped.
    pub fn is_stopped(&self) -> bool {
        *self.stopped.borrow() || self.stopped.has_changed().is_err()
    }

    /// The safety poll while listening, else `fast`.
    pub fn poll_interval(&self, fast: Duration) -> Duration {
        if self.listening.load(Ordering::Acquire) {
            self.safety_poll
        } else {
            fast
        }
    }

    pub async fn sleep(&mut self, wait: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.wake.notified() => {}
            _ = self.stopped.changed() => {}
        }
    }
}

/// Keeps a LISTEN connection open and turns each `NOTIFY medic_timers` into a wake-up.
pub(super) async fn listen(connector: Connector, wake: Arc<Notify>, listening: Arc<AtomicBool>) {
    crate::store::listen::listen(connector, CHANNEL, wake, listening).await
}
