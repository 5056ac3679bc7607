//! What people have switched, as this replica sees it: the maintenance windows in force now or
//! later, read from Postgres and compiled when they change (a change through any replica is a
//! `NOTIFY medic_control`, so it holds in all of them within a second; a slow safety poll
//! covers a lost connection, and a fast one the time without it), and the pause switch for the
//! gauge. The pause itself is checked by the database when each remediation is decided, so it
//! holds everywhere at once.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use chrono::{DateTime, Utc};

use crate::{
    alertmanager::KV,
    domain::Mute,
    metrics::RemediationMetrics,
    plan::matchers::Matchers,
    store::{control::Window, Store, StoreError},
};

/// How often the windows and the pause are read again without a LISTEN connection.
const REFRESH: Duration = Duration::from_secs(1);
/// How often they are read again while listening: a NOTIFY lost between a reconnection and
/// the next LISTEN, or a pause that ended at its `until`, shows within this.
const SAFETY_POLL: Duration = Duration::from_secs(30);
/// The channel the migration's triggers notify.
const CHANNEL: &str = "medic_control";

/// A window, compiled for matching.
#[derive(Debug)]
pub struct ActiveWindow {
    pub id: i64,
    matchers: Matchers,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    mute: Vec<Mute>,
    pub reason: String,
}

impl ActiveWindow {
    /// The window as stored; None if its matchers no longer parse (they were checked when it
    /// was made).
    pub fn compile(window: &Window) -> Option<Self> {
        Some(Self {
            id: window.id,
            matchers: Matchers::parse(&window.matchers).ok()?,
            starts_at: window.starts_at,
            ends_at: window.ends_at,
            mute: window.mute.iter().filter_map(|m| Mute::parse(m)).collect(),
            reason: window.reason.clone(),
        })
    }

    fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }
}

/// The windows this replica knows of.
#[derive(Debug, Default)]
pub struct Control {
    windows: RwLock<Vec<Arc<ActiveWindow>>>,
}

impl Control {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Reads the windows and the pause again; on a database error the last known state stays.
    pub async fn refresh(&self, store: &Store, metrics: &RemediationMetrics) {
        match store.windows().await {
            Ok(windows) => {
                let compiled: Vec<Arc<ActiveWindow>> = windows
                    .iter()
                    .filter_map(ActiveWindow::compile)
                    .map(Arc::new)
                    .collect();
                let now = Utc::now();
                metrics
                    .windows_active
                    .set(compiled.iter().filter(|w| w.in_force(now)).count() as i64);
                *self.windows.write().unwrap_or_else(|e| e.into_inner()) = compiled;
            }
            // While the database is away or not migrated yet, /readyz and the engine say so.
            Err(StoreError::Unavailable(e)) => {
                tracing::debug!(error = %e, "reading maintenance windows failed; keeping the last known")
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading maintenance windows failed; keeping the last known")
            }
        }
        match store.pause().await {
            Ok(pause) => metrics.paused.set(i64::from(pause.is_some())),
            Err(StoreError::Unavailable(e)) => {
                tracing::debug!(error = %e, "reading the remediation pause failed")
            }
            Err(e) => tracing::warn!(error = %e, "reading the remediation pause failed"),
        }
    }

    /// Refreshes when told of a change, and by the safety poll, forever; the gauge of windows
    /// in force follows the clock every second without reading anything.
    pub async fn run(self: Arc<Self>, store: Store, metrics: RemediationMetrics) {
        let wake = Arc::new(Notify::new());
        let listening = Arc::new(AtomicBool::new(false));
        let _listener = AbortOnDrop(tokio::spawn(crate::store::listen::listen(
            store.connector(),
            CHANNEL,
            wake.clone(),
            listening.clone(),
        )));
        loop {
            self.refresh(&store, &metrics).await;
            let read = Instant::now();
            loop {
                let told = tokio::select! {
                    _ = wake.notified() => true,
                    _ = tokio::time::sleep(REFRESH) => false,
                };
                let poll = if listening.load(Ordering::Acquire) {
                    SAFETY_POLL
                } else {
                    REFRESH
                };
                if told || read.elapsed() >= poll {
                    break;
                }
                self.count_in_force(&metrics);
            }
        }
    }

    fn count_in_force(&self, metrics: &RemediationMetrics) {
        let now = Utc::now();
        let windows = self.windows.read().unwrap_or_else(|e| e.into_inner());
        metrics
            .windows_active
            .set(windows.iter().filter(|w| w.in_force(now)).count() as i64);
    }

    /// Whether any window in force mutes `what` (for anything).
    pub fn any(&self, what: Mute) -> bool {
        let now = Utc::now();
        self.windows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|w| w.in_force(now) && w.mute.contains(&what))
    }

    /// The window in force that mutes `what` for one of these label sets (the one ending
    /// last, if several do).
    pub fn covering<'a>(
        &self,
        what: Mute,
        label_sets: impl IntoIterator<Item = &'a KV>,
    ) -> Option<Arc<ActiveWindow>> {
        let now = Utc::now();
        let windows = self.windows.read().unwrap_or_else(|e| e.into_inner());
        let muting: Vec<&Arc<ActiveWindow>> = windows
            .iter()
            .filter(|w| w.in_force(now) && w.mute.contains(&what))
            .collect();
        if muting.is_empty() {
            return None;
        }
        let sets: Vec<&KV> = label_sets.into_iter().collect();
        muting
            .into_iter()
            .filter(|w| sets.iter().any(|labels| w.matchers.matches(labels)))
            .max_by_key(|w| w.ends_at)
            .cloned()
    }
}

/// Stops the LISTEN task with the loop that started it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
