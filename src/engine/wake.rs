//! Waking the engine: a LISTEN connection that turns each `NOTIFY medic_timers` into a
//! wake-up, and what an idle engine waits on.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use futures_util::StreamExt;
use tokio::sync::{watch, Notify};
use tokio_postgres::AsyncMessage;

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

/// Keeps a LISTEN connection open and turns each NOTIFY into a wake-up; reconnects forever.
pub(super) async fn listen(connector: Connector, wake: Arc<Notify>, listening: Arc<AtomicBool>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match connector.connect().await {
            Ok((client, mut connection)) => {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let statement = format!("LISTEN {CHANNEL}");
                let subscribe = client.batch_execute(&statement);
                let subscribed = tokio::select! {
                    result = subscribe => result.is_ok(),
                    _ = messages.next() => false,
                };
                if subscribed {
                    listening.store(true, Ordering::Release);
                    delay = Duration::from_millis(200);
                    // Anything scheduled while we were not listening.
                    wake.notify_one();
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "timer wake-up connection lost");
                                break;
                            }
                        }
                    }
                }
                listening.store(false, Ordering::Release);
            }
            Err(e) => {
                tracing::debug!(error = %crate::store::error_chain(&e), "timer wake-up connection failed")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
