//! Horizontal pod autoscalers (`autoscaling/v2`): list, get and patch.

use serde_json::json;

use super::{
    key,
    metadata::touch,
    reply::{list, not_found, ok, Answer},
    request::Call,
    Store,
};

impl Store {
    pub(super) fn list_hpas(&self, ns: &str, call: &Call) -> Answer {
        let items = Self::select(self.hpas.iter(), ns, call)?;
        list(
            "autoscaling/v2",
            "HorizontalPodAutoscalerList",
            self.revision,
            items,
        )
    }

    pub(super) fn get_hpa(&self, ns: &str, name: &str) -> Answer {
        let hpa = self.hpas.get(&key(ns, name));
        ok(
            200,
            hpa.ok_or_else(|| not_found("horizontalpodautoscalers", "autoscaling", name))?
                .clone(),
        )
    }

    pub(super) fn patch_hpa(&mut self, ns: &str, name: &str, call: &Call) -> Answer {
        let hpa = self.hpas.get_mut(&key(ns, name));
        let hpa = hpa.ok_or_else(|| not_found("horizontalpodautoscalers", "autoscaling", name))?;
        let mut new = call.patched(hpa, "horizontalpodautoscalers", "autoscaling")?;
        if new["spec"] != hpa["spec"] {
            new["metadata"]["generation"] = json!(new["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
        }
        touch(&mut new, &mut self.revision);
        *hpa = new.clone();
        ok(200, new)
    }
}
