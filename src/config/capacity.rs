//! Settings for the capacity forecast: `capacity:`, the Deployments to forecast and how their
//! usage is read from the Prometheus of `prometheus:`, with the checks each entry needs alone.

use std::time::Duration;

use serde::Deserialize;

use super::{problem::Problem, slo::check_brackets};
use crate::domain::HumanDuration;

/// Filled with the entry's `namespace` in its queries.
pub const NAMESPACE_PLACEHOLDER: &str = "$namespace";
/// Filled with the entry's `name` (the Deployment's) in its queries.
pub const DEPLOYMENT_PLACEHOLDER: &str = "$deployment";

/// Prometheus refuses a range query of more points than this (`query_range`'s own limit).
pub const MAX_POINTS: u64 = 11_000;
const DAY: Duration = Duration::from_secs(86_400);

/// `capacity:`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapacitySettings {
    /// How much history the forecast is fitted on: 7 to 30 days.
    pub history: HumanDuration,
    /// The spacing of the history's points and of the forecast's; a whole divisor of a day.
    pub step: HumanDuration,
    /// The utilisation, in percent, that the replicas needed keep the peak under.
    pub target_utilisation: f64,
    pub deployments: Vec<DeploymentSettings>,
}

impl Default for CapacitySettings {
    fn default() -> Self {
        Self {
            history: HumanDuration(14 * DAY),
            step: HumanDuration(Duration::from_secs(3600)),
            target_utilisation: 70.0,
            deployments: Vec::new(),
        }
    }
}

/// One entry of `capacity.deployments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSettings {
    pub namespace: String,
    /// The Deployment's name.
    pub name: String,
    /// PromQL for the usage of all the Deployment's pods together, in `unit`; `$namespace` and
    /// `$deployment` are filled in. When it yields several series (one per pod), they are added.
    pub usage: String,
    /// What one pod can take, in `unit` (CPU cores, memory bytes, connections...).
    pub capacity_per_pod: f64,
    /// The label of `usage` and `capacity_per_pod`: `cores`, `bytes`, `connections`...
    pub unit: String,
    /// Overrides `capacity.target_utilisation` for this Deployment.
    #[serde(default)]
    pub target_utilisation: Option<f64>,
    /// The current replicas; when unset, kube-state-metrics' `kube_deployment_spec_replicas`.
    #[serde(default)]
    pub replicas: Option<u32>,
    /// The HorizontalPodAutoscaler that scales it, whose min and max kube-state-metrics exports.
    #[serde(default)]
    pub hpa: Option<String>,
}

impl CapacitySettings {
    pub(super) fn check(&self, problems: &mut Vec<Problem>) {
        let (history, step) = (self.history.0, self.step.0);
        if history < 7 * DAY || history > 30 * DAY {
            problems.push(Problem::new("capacity.history", "must be between 7d and 30d"));
        }
        if step < Duration::from_secs(60) || step.subsec_nanos() != 0 || DAY.as_secs() % step.as_secs() != 0 {
            problems.push(Problem::new(
                "capacity.step",
                "must be a whole number of minutes that divides a day (e.g. 5m, 15m, 1h)",
            ));
        } else if history.as_secs() / step.as_secs() > MAX_POINTS {
            problems.push(Problem::new(
                "capacity.step",
                format!("gives more than {MAX_POINTS} points over capacity.history: Prometheus refuses that"),
            ));
        }
        check_target("capacity.target_utilisation", self.target_utilisation, problems);
        for (i, deployment) in self.deployments.iter().enumerate() {
            let at = format!("capacity.deployments[{i}]");
            deployment.check(&at, problems);
            let same = |other: &DeploymentSettings| {
                other.namespace == deployment.namespace && other.name == deployment.name
            };
            if self.deployments[..i].iter().any(same) {
                problems.push(Problem::new(
                    format!("{at}.name"),
                    format!("{}/{} is listed twice", deployment.namespace, deployment.name),
                ));
            }
        }
    }
}

impl DeploymentSettings {
    fn check(&self, at: &str, problems: &mut Vec<Problem>) {
        if !is_dns_label(&self.namespace, 63) {
            problems.push(Problem::new(
                format!("{at}.namespace"),
                not_a_name(&self.namespace),
            ));
        }
        if !is_dns_label(&self.name, 253) {
            problems.push(Problem::new(format!("{at}.name"), not_a_name(&self.name)));
        }
        if let Err(message) = check_brackets(&self.usage) {
            problems.push(Problem::new(format!("{at}.usage"), message));
        }
        if !(self.capacity_per_pod.is_finite() && self.capacity_per_pod > 0.0) {
            problems.push(Problem::new(
                format!("{at}.capacity_per_pod"),
                "must be a number greater than 0 (what one pod can take, in `unit`)",
            ));
        }
        if self.unit.trim().is_empty() {
            problems.push(Problem::new(
                format!("{at}.unit"),
                "must name the unit (cores, bytes, connections...)",
            ));
        }
        if let Some(target) = self.target_utilisation {
            check_target(&format!("{at}.target_utilisation"), target, problems);
        }
        if self.replicas == Some(0) {
            problems.push(Problem::new(format!("{at}.replicas"), "must be at least 1"));
        }
        if let Some(hpa) = &self.hpa {
            if !is_dns_label(hpa, 253) {
                problems.push(Problem::new(format!("{at}.hpa"), not_a_name(hpa)));
            }
        }
    }
}

fn check_target(at: &str, target: f64, problems: &mut Vec<Problem>) {
    if !(target > 0.0 && target <= 100.0) {
        problems.push(Problem::new(
            at,
            "must be a percentage above 0 and at most 100 (e.g. 70)",
        ));
    }
}

/// A Kubernetes name (lower case letters, digits, '-' and '.'), so that it can stand inside a
/// PromQL string without quoting.
fn is_dns_label(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn not_a_name(name: &str) -> String {
    format!("{name:?} is not a Kubernetes name (lower case letters, digits, '-' and '.')")
}
