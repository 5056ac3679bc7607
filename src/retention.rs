//! Retention: every replica runs a pruner; one at a time prunes (see `store::retention`), in
//! small batches, resting between them four times as long as each took, until it has caught
//! up, then waits for the next round. `medic_pruned_rows_total{table}` counts what went.

use std::time::Duration;

use crate::{
    config::RetentionSettings,
    metrics::RetentionMetrics,
    store::{
        retention::{Pruned, Retention},
        Store,
    },
};

/// Least pause between two batches of one round.
const BETWEEN_BATCHES: Duration = Duration::from_millis(200);

/// After each batch the pruner rests this many times as long as the batch took, so that it
/// works at most a fifth of the time and never crowds out intake on a busy server (history
/// accrues far slower than even this prunes it).
const REST_PER_WORK: u32 = 4;

/// What `retention:` asks for, as the store takes it.
pub fn retention(settings: &RetentionSettings) -> Retention {
    let keep = |age: Duration| (!age.is_zero()).then_some(age);
    Retention {
        deliveries: keep(settings.deliveries.0),
        timer_attempts: keep(settings.timer_attempts.0),
        resolved_incidents: keep(settings.resolved_incidents.0),
        batch: settings.batch,
    }
}

/// Prunes every `interval`, forever.
pub async fn run(store: Store, settings: RetentionSettings, metrics: RetentionMetrics) {
    let retention = retention(&settings);
    loop {
        tokio::time::sleep(settings.interval.0).await;
        round(&store, &retention, &metrics).await;
    }
}

/// Batches until caught up, another replica prunes, or the database fails.
pub async fn round(store: &Store, retention: &Retention, metrics: &RetentionMetrics) -> Pruned {
    let mut total = Pruned::default();
    loop {
        let started = std::time::Instant::now();
        match store.prune(retention).await {
            Ok(Some(pruned)) => {
                for (table, rows) in pruned.by_table() {
                    metrics
                        .pruned
                        .with_label_values(&[table])
                        .inc_by(rows.max(0) as u64);
                }
                add(&mut total, &pruned);
                let full = pruned.deliveries >= retention.batch
                    || pruned.timer_attempts >= retention.batch
                    || pruned.incidents >= retention.incident_batch();
                if !full {
                    break;
                }
                tokio::time::sleep(BETWEEN_BATCHES.max(started.elapsed() * REST_PER_WORK)).await;
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "pruning history failed; trying again next round");
                break;
            }
        }
    }
    if !total.is_empty() {
        tracing::info!(
            deliveries = total.deliveries,
            timer_attempts = total.timer_attempts,
            incidents = total.incidents,
            alerts = total.alerts,
            "history pruned"
        );
    }
    total
}

fn add(total: &mut Pruned, more: &Pruned) {
    total.deliveries += more.deliveries;
    total.timer_attempts += more.timer_attempts;
    total.incidents += more.incidents;
    total.alerts += more.alerts;
    total.timers += more.timers;
    total.remediations += more.remediations;
    total.audit_events += more.audit_events;
}
