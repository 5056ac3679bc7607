//! The plan: settings compiled into what runs. [`compile`] reads every secret, compiles the
//! rules against the notifiers, builds the guard rails and the databases remediation may touch,
//! and runs every check that spans sections, reporting every problem at once with its key path.
//! `check-config`, `explain` and `serve` each call it once.
//!
//! Matching alerts to rules ([`rules`], [`matchers`]) and planning the timers a notification
//! asks for ([`timers`]) live here too: they are functions of the compiled rules alone.

pub mod auth;
pub mod capacity;
pub mod context;
pub mod explain;
pub mod heartbeats;
pub mod integrations;
pub mod jwt;
pub mod matchers;
pub mod remediation;
pub mod rules;
pub mod secrets;
pub mod slo;
pub mod template;
pub mod timers;

mod notifiers;

use std::collections::BTreeMap;

pub use auth::Credentials;
pub use capacity::Capacity;
pub use context::{ContextPlan, ContextTarget, Redactor};
pub use heartbeats::{Heartbeat, Heartbeats};
pub use integrations::{AlertmanagerEndpoint, Integrations, Known};
pub use notifiers::{Endpoint, NotifierEndpoint, SlackApp};
pub use remediation::{GuardRails, RemediationSpec, TargetDatabase, VerifyQuery};
pub use rules::{NotifierRef, Rule, Rules};
pub use secrets::Secret;
pub use slo::{Sli, Slo};

use crate::config::{self, Problem, Problems, Settings, Source};

/// Everything the settings say medic should run, checked.
#[derive(Debug)]
pub struct Plan {
    /// What Alertmanager must present on `/webhook` (and, for now, API callers).
    pub credentials: Credentials,
    /// Every notifier with its secrets read, by name.
    pub notifiers: BTreeMap<String, NotifierEndpoint>,
    /// The rules, in config order, after the heartbeats' own.
    pub rules: Rules,
    /// The heartbeats: alerts that must keep arriving.
    pub heartbeats: Heartbeats,
    /// What every remediation must respect.
    pub guard_rails: GuardRails,
    /// The databases `postgres_relieve_pool` may act on, by name.
    pub databases: BTreeMap<String, TargetDatabase>,
    /// Slack and PagerDuty answering back, and Alertmanager's silences.
    pub integrations: Integrations,
    /// The service level objectives, in config order.
    pub slos: Vec<Slo>,
    /// The Deployments `medic capacity` forecasts.
    pub capacity: Capacity,
    /// What medic gathers from the cluster about an incident's workload.
    pub context: ContextPlan,
    /// What is allowed but probably not meant: `check-config` prints these, `serve` logs them.
    pub warnings: Vec<Problem>,
}

/// Compiles the settings; on failure returns every problem found.
pub fn compile(settings: &Settings) -> Result<Plan, Problems> {
    let mut problems = Vec::new();
    let plan = compile_into(settings, &mut problems);
    match plan {
        Some(plan) if problems.is_empty() => Ok(plan),
        _ => Err(Problems(problems)),
    }
}

/// Loads the settings and compiles them, reporting the problems of both steps together.
pub fn load(source: &Source) -> Result<(Settings, Plan), Problems> {
    let (settings, mut problems) = config::read(source);
    let Some(settings) = settings else {
        return Err(Problems(problems));
    };
    let plan = compile_into(&settings, &mut problems);
    match plan {
        Some(plan) if problems.is_empty() => Ok((settings, plan)),
        _ => Err(Problems(problems)),
    }
}

fn compile_into(settings: &Settings, problems: &mut Vec<Problem>) -> Option<Plan> {
    let credentials = auth::credentials(&settings.server.auth, problems);
    let databases = remediation::databases(&settings.remediation, problems);
    remediation::check_databases(&settings.rules, &settings.remediation, problems);
    remediation::check_verify_queries(&settings.rules, &settings.prometheus, problems);
    let notifiers = notifiers::endpoints(&settings.notifiers, problems);
    let integrations = integrations::integrations(settings, problems);
    let slos = slo::compile(&settings.slos, problems);
    let capacity = capacity::compile(settings, problems);
    let kinds = settings
        .notifiers
        .iter()
        .map(|(name, notifier)| (name.clone(), notifier.kind))
        .collect();
    let limits = remediation::limits(&settings.remediation);
    let context = ContextPlan::compile(settings, problems);
    let (heartbeats, first) = Heartbeats::compile(&settings.heartbeats, &kinds, problems);
    let rules = Rules::compile(&settings.rules, &kinds, &limits)
        .map(|mut rules| {
            rules.prepend(first, problems);
            rules.with_context(context.enabled.then(|| context.labels.clone()))
        })
        .map_err(|found| problems.extend(found));
    Some(Plan {
        credentials: credentials?,
        notifiers,
        rules: rules.ok()?,
        heartbeats,
        guard_rails: GuardRails::new(&settings.remediation, settings.dry_run),
        databases,
        integrations,
        slos,
        capacity,
        context,
        warnings: remediation::warnings(&settings.rules, &settings.remediation),
    })
}

#[cfg(test)]
mod tests;
