//! Which pods a PodDisruptionBudget covers. Those are governed by their budget alone (the
//! Eviction API enforces it, and its 429 is `skipped_pdb`); `min_healthy` stands in only for
//! workloads that no budget covers.
//!
//! A budget covers the pods of its namespace that its selector selects, as the disruption
//! controller reads it in `policy/v1`: a null selector selects nothing, an empty one every pod.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{core::v1::Pod, policy::v1::PodDisruptionBudget},
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement},
};

use crate::remediation::kube::Kube;

/// The namespace's budgets, as they stood when the run began.
pub(super) struct Budgets {
    /// Each budget's name and selector.
    selectors: Vec<(String, LabelSelector)>,
}

impl Budgets {
    /// Lists the namespace's budgets. Forbidden (RBAC without `poddisruptionbudgets list`) or
    /// unknown (no `policy/v1`), it is as if there were none, so `min_healthy` holds every
    /// pod, as before budgets were read: stricter, never looser.
    pub(super) async fn of(kube: &Kube, namespace: &str) -> Result<Budgets, String> {
        let budgets = match kube.pod_disruption_budgets(namespace).await {
            Ok(budgets) => budgets,
            Err(e) if e.code == 403 || e.code == 404 => {
                tracing::warn!(
                    namespace, error = %e,
                    "cannot list PodDisruptionBudgets: min_healthy applies to every pod"
                );
                Vec::new()
            }
            Err(e) => return Err(format!("listing PodDisruptionBudgets in {namespace}: {e}")),
        };
        Ok(Budgets {
            selectors: budgets.into_iter().filter_map(selector).collect(),
        })
    }

    /// The name of a budget that covers `pod`, if any does.
    pub(super) fn covering(&self, pod: &Pod) -> Option<&str> {
        let empty = BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        self.selectors
            .iter()
            .find(|(_, selector)| selects(selector, labels))
            .map(|(name, _)| name.as_str())
    }
}

/// The budget's name and selector; None for a budget without one (it selects nothing).
fn selector(budget: PodDisruptionBudget) -> Option<(String, LabelSelector)> {
    let selector = budget.spec?.selector?;
    Some((budget.metadata.name.unwrap_or_default(), selector))
}

/// Whether `selector` selects a pod with `labels`: every label and every expression holds.
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    by_label
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|requirement| holds(requirement, labels))
}

/// One `matchExpressions` term; an operator the API server would not have accepted holds for
/// no pod.
fn holds(requirement: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&requirement.key);
    let values = requirement.values.as_deref().unwrap_or_default();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn match_labels_select_pods_carrying_all_of_them() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("app", "api"), ("tier", "web")])),
            match_expressions: None,
        };
        assert!(selects(
            &selector,
            &labels(&[("app", "api"), ("tier", "web"), ("x", "y")])
        ));
        assert!(!selects(&selector, &labels(&[("app", "api")])));
        assert!(!selects(&selector, &labels(&[("app", "api"), ("tier", "db")])));
    }

    #[test]
    fn expressions_read_as_the_api_server_reads_them() {
        let pod = labels(&[("app", "api"), ("track", "stable")]);
        let one = |e: LabelSelectorRequirement| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![e]),
        };
        assert!(selects(&one(expression("app", "In", &["api", "web"])), &pod));
        assert!(!selects(&one(expression("app", "In", &["web"])), &pod));
        assert!(selects(&one(expression("track", "NotIn", &["canary"])), &pod));
        assert!(selects(&one(expression("missing", "NotIn", &["x"])), &pod));
        assert!(!selects(&one(expression("track", "NotIn", &["stable"])), &pod));
        assert!(selects(&one(expression("app", "Exists", &[])), &pod));
        assert!(!selects(&one(expression("app", "DoesNotExist", &[])), &pod));
        assert!(!selects(&one(expression("app", "Matches", &["api"])), &pod));
    }

    #[test]
    fn an_empty_selector_selects_every_pod_and_none_selects_none() {
        assert!(selects(&LabelSelector::default(), &labels(&[("app", "api")])));
        let without = PodDisruptionBudget {
            spec: Some(Default::default()),
            ..Default::default()
        };
        assert!(selector(without).is_none());
    }
}
