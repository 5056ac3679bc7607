//! Cluster context: what the cluster says about the thing that is failing, brought to the
//! person an incident wakes. When an incident opens and its alerts name a pod or workload
//! (`context.labels`), a `context` timer fires with the announcement; its engine hands the
//! incident to the [`Gatherer`], which reads, in a task of its own (never in the request,
//! never under the timer's lease, so the page is never late for it) and within
//! `context.deadline`: the owner chain and rollout, `Warning` events, the pods' states and the
//! last log lines of the worst one, every text redacted. The result is stored once per incident
//! ([`Store::save_context`]), with a reply timer for each Slack app that announced it.
//!
//! A replica that dies mid-gathering loses that incident's context: it is evidence, not a
//! page, and gathering it again minutes later would say something else.

mod gather;
mod objects;

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, Utc};

use crate::{
    metrics::ContextMetrics,
    plan::{ContextPlan, ContextTarget},
    remediation::Kube,
    store::Store,
};

/// Gathers and stores incidents' cluster context.
pub struct Gatherer {
    /// The cluster.
    kube: Kube,
    /// Deadline, labels, limits and redaction.
    plan: ContextPlan,
    /// Where the incident's alerts are read and the context is kept.
    store: Store,
    /// `medic_context_gather_seconds`, `medic_context_errors_total{kind}`.
    metrics: ContextMetrics,
}

impl Gatherer {
    /// A gatherer over this cluster.
    pub fn new(kube: Kube, plan: ContextPlan, store: Store, metrics: ContextMetrics) -> Self {
        Self {
            kube,
            plan,
            store,
            metrics,
        }
    }

    /// Starts gathering the incident's context in a task of its own, and returns at once.
    pub fn start(self: &Arc<Self>, incident: i64, opened_at: DateTime<Utc>) {
        let gatherer = Arc::clone(self);
        tokio::spawn(async move { gatherer.run(incident, opened_at).await });
    }

    /// Finds what the alerts name, gathers, and stores the context.
    async fn run(&self, incident: i64, opened_at: DateTime<Utc>) {
        let labels = match self.store.incident_label_sets(incident).await {
            Ok(labels) => labels,
            Err(e) => {
                tracing::warn!(incident_id = incident, error = %e, "cluster context: the alerts could not be read");
                return;
            }
        };
        let Some(target) = labels
            .iter()
            .find_map(|l| ContextTarget::of(l, &self.plan.labels))
        else {
            tracing::info!(
                incident_id = incident,
                "cluster context: no alert names a pod or workload"
            );
            return;
        };
        let started = Instant::now();
        let mut context = gather::gather(&self.kube, &self.plan, &target).await;
        context.decide_headline(opened_at);
        let seconds = started.elapsed().as_secs_f64();
        self.metrics
            .observe(seconds, context.errors.iter().map(|e| e.kind));
        let summary = context.summary(opened_at);
        match self.store.save_context(incident, &context, &summary).await {
            Ok(replies) => tracing::info!(incident_id = incident, namespace = %target.namespace,
                complete = context.complete, errors = context.errors.len(), seconds, replies,
                "cluster context gathered"),
            Err(e) => {
                tracing::warn!(incident_id = incident, error = %e, "cluster context could not be stored")
            }
        }
    }
}
