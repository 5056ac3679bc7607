//! The one door every act goes through: the room surfaces hold ([`Acts`]), the role check each
//! command makes first ([`require`]), and why an act was not done ([`Refused`]).

use std::sync::Arc;

use super::limits::WindowLimits;
use crate::{
    control::Control,
    domain::{Act, Actor, Role},
    metrics::Metrics,
    plan::AlertmanagerEndpoint,
    silences::{Alertmanager, SilenceError},
    store::{Store, StoreError},
};

/// Why an act was not done. Each surface words it its own way (a status code, a page, an
/// ephemeral Slack message), but the reason is decided here.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The actor's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// No such incident, request or window.
    #[error("{0}")]
    NotFound(String),
    /// It cannot be done in the state things are in (resolved, decided already).
    #[error("{0}")]
    Conflict(String),
    /// The input breaks a limit.
    #[error("{0}")]
    Invalid(String),
    /// Alertmanager refused or could not be reached.
    #[error("Alertmanager: {0}")]
    Upstream(String),
    /// The database could not record it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Refused {
    /// The outcome label for `medic_acts_total`.
    fn outcome(&self) -> &'static str {
        match self {
            Refused::Store(_) | Refused::Upstream(_) => "failed",
            _ => "refused",
        }
    }
}

impl From<SilenceError> for Refused {
    fn from(e: SilenceError) -> Self {
        match e {
            SilenceError::NoIncident(_) | SilenceError::NoSilence(_) => Refused::NotFound(e.to_string()),
            SilenceError::NotConfigured => Refused::Conflict(e.to_string()),
            SilenceError::NoLabels(_) | SilenceError::BadDuration => Refused::Invalid(e.to_string()),
            SilenceError::Alertmanager(reason) => Refused::Upstream(reason),
            SilenceError::Store(e) => Refused::Store(e),
        }
    }
}

/// The one room for what people do; every surface holds the same one.
#[derive(Clone)]
pub struct Acts {
    pub(super) store: Store,
    pub(super) metrics: Metrics,
    /// Refreshed after a window changes here (other replicas hear of it by NOTIFY).
    pub(super) control: Arc<Control>,
    /// For silences.
    pub(super) client: reqwest::Client,
    pub(super) alertmanager: Option<AlertmanagerEndpoint>,
    pub(super) limits: WindowLimits,
}

impl Acts {
    pub fn new(
        store: Store,
        metrics: Metrics,
        control: Arc<Control>,
        client: reqwest::Client,
        alertmanager: Option<AlertmanagerEndpoint>,
        limits: WindowLimits,
    ) -> Self {
        Self {
            store,
            metrics,
            control,
            client,
            alertmanager,
            limits,
        }
    }

    /// The limits windows meet (the console's form shows them).
    pub fn window_limits(&self) -> &WindowLimits {
        &self.limits
    }

    pub(super) fn alertmanager(&self) -> Alertmanager<'_> {
        Alertmanager {
            client: &self.client,
            endpoint: self.alertmanager.as_ref(),
        }
    }

    /// Counts the act and logs a refusal; what was done is logged by the command itself with
    /// its details.
    pub(super) fn count<T>(
        &self,
        act: Act,
        actor: &Actor,
        result: &Result<T, Refused>,
        changed: impl FnOnce(&T) -> bool,
    ) {
        let outcome = match result {
            Ok(done) if changed(done) => "done",
            Ok(_) => "unchanged",
            Err(e) => e.outcome(),
        };
        self.metrics
            .acts
            .total
            .with_label_values(&[act.as_str(), actor.surface.as_str(), outcome])
            .inc();
        if let Err(e) = result {
            tracing::info!(act = act.as_str(), by = %actor.name, role = %actor.role, auth = actor.auth.as_str(),
                address = %actor.address, via = %actor.surface, outcome, reason = %e, "act refused");
        }
    }
}

/// 403 unless the actor's role is at least `needed`.
pub(super) fn require(actor: &Actor, needed: Role) -> Result<(), Refused> {
    if actor.may(needed) {
        Ok(())
    } else {
        Err(Refused::Forbidden(format!(
            "{} has the role {}; this needs {needed}",
            actor.name, actor.role
        )))
    }
}
