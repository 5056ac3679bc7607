//! What an engine holds to watch heartbeats: the configured heartbeats and where it counts what
//! it finds. Its own file so that the engine can hold it and `heartbeats` can use the engine.

use std::sync::Arc;

use crate::{metrics::HeartbeatMetrics, plan::Heartbeats};

/// The heartbeats an engine watches, and where it counts what it finds.
#[derive(Clone)]
pub(super) struct Watch {
    /// The heartbeats whose deadlines are watched.
    pub heartbeats: Arc<Heartbeats>,
    /// Where what the watch finds is counted.
    pub metrics: HeartbeatMetrics,
}
