//! Hearing of changes: a connection of its own that LISTENs on one channel and turns each
//! NOTIFY into a wake-up, reconnecting for ever. The timer engine listens for due timers, every
//! replica for changes to the windows and the pause.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use super::tls::Connector;

/// Keeps a LISTEN connection open and turns each NOTIFY into a wake-up; reconnects forever.
pub async fn listen(
    connector: Connector,
    channel: &'static str,
    wake: Arc<Notify>,
    listening: Arc<AtomicBool>,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        match connector.connect().await {
            Ok((client, mut connection)) => {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let statement = format!("LISTEN {channel}");
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
                                tracing::warn!(error = %e, channel, "LISTEN connection lost");
                                break;
                            }
                        }
                    }
                }
                listening.store(false, Ordering::Release);
            }
            Err(e) => {
                tracing::debug!(error = %super::error::error_chain(&e), channel, "LISTEN connection failed")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
