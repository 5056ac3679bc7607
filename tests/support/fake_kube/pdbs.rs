//! Pod disruption budgets (`policy/v1`): list and get, and the check that refuses an eviction.

use serde_json::{json, Value};

use super::{
    key,
    pods::pod_ready,
    reply::{failure, list, not_found, ok, Answer, Reply},
    request::Call,
    selectors::labels_match,
    Pod, Store,
};

impl Store {
    pub(super) fn list_pdbs(&self, ns: &str, call: &Call) -> Answer {
        let items = Self::select(self.pdbs.iter(), ns, call)?;
        list("policy/v1", "PodDisruptionBudgetList", self.revision, items)
    }

    pub(super) fn get_pdb(&self, ns: &str, name: &str) -> Answer {
        let pdb = self.pdbs.get(&key(ns, name));
        ok(
            200,
            pdb.ok_or_else(|| not_found("poddisruptionbudgets", "policy", name))?
                .clone(),
        )
    }

    /// 429 if evicting the (Ready) `pod` would violate a disruption budget that selects it.
    pub(super) fn check_budgets(&self, ns: &str, pod: &Value) -> Result<(), Reply> {
        for ((namespace, pdb_name), pdb) in &self.pdbs {
            let selector = &pdb["spec"]["selector"]["matchLabels"];
            if namespace != ns || !labels_match(selector, &pod["metadata"]["labels"]) {
                continue;
            }
            let (selected, ready) = self.count_selected(ns, selector);
            let needs = match (
                pdb["spec"]["minAvailable"].as_i64(),
                pdb["spec"]["maxUnavailable"].as_i64(),
            ) {
                (Some(min), _) if ready - 1 < min => Some(min),
                (_, Some(max)) if selected - ready + 1 > max => Some(selected - max),
                _ => None,
            };
            if let Some(needs) = needs {
                let cause = format!(
                    "The disruption budget {pdb_name} needs {needs} healthy pods and has {ready} currently"
                );
                let details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
                let message = "Cannot evict pod as it would violate the pod's disruption budget.".to_owned();
                return Err(failure(429, "TooManyRequests", message, details));
            }
        }
        Ok(())
    }

    /// How many pods of the namespace `match_labels` selects, and how many of them are Ready.
    pub(super) fn count_selected(&self, ns: &str, match_labels: &Value) -> (i64, i64) {
        let selected: Vec<&Pod> = self
            .pods
            .iter()
            .filter(|((namespace, _), pod)| {
                namespace == ns && labels_match(match_labels, &pod.json["metadata"]["labels"])
            })
            .map(|(_, pod)| pod)
            .collect();
        let ready = selected.iter().filter(|pod| pod_ready(&pod.json)).count();
        (selected.len() as i64, ready as i64)
    }
}
