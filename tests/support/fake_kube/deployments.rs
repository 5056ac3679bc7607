//! Deployments: the endpoints, and the scale subresource that writes their replica count.

use serde_json::{json, Value};

use super::{
    key,
    metadata::touch,
    reply::{details, failure, list, not_found, ok, Answer, Reply},
    request::{check_resource_version, Call},
    Store,
};

impl Store {
    pub(super) fn list_deployments(&self, ns: &str, call: &Call) -> Answer {
        let items = Self::select(self.deployments.iter().map(|(k, d)| (k, &d.json)), ns, call)?;
        list("apps/v1", "DeploymentList", self.revision, items)
    }

    fn deployment_json(&self, ns: &str, name: &str) -> Result<&Value, Reply> {
        let deployment = self.deployments.get(&key(ns, name));
        deployment
            .map(|d| &d.json)
            .ok_or_else(|| not_found("deployments", "apps", name))
    }

    pub(super) fn get_deployment(&self, ns: &str, name: &str) -> Answer {
        ok(200, self.deployment_json(ns, name)?.clone())
    }

    pub(super) fn patch_deployment(&mut self, ns: &str, name: &str, call: &Call) -> Answer {
        let current = self.deployment_json(ns, name)?;
        let new = call.patched(current, "deployments", "apps")?;
        self.store_deployment(ns, name, new)
    }

    /// Validates and stores a new version of a deployment, bumping its generation if its spec changed.
    fn store_deployment(&mut self, ns: &str, name: &str, mut new: Value) -> Answer {
        if new["spec"]["replicas"].as_i64().is_none_or(|n| n < 0) {
            let message = format!(
                "Deployment.apps \"{name}\" is invalid: spec.replicas: must be a non-negative integer"
            );
            return Err(failure(
                422,
                "Invalid",
                message,
                details("deployments", "apps", name),
            ));
        }
        let deployment = self
            .deployments
            .get_mut(&key(ns, name))
            .expect("checked by the caller");
        if new["spec"] != deployment.json["spec"] {
            new["metadata"]["generation"] = json!(new["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
        }
        touch(&mut new, &mut self.revision);
        deployment.json = new.clone();
        ok(200, new)
    }

    /// The deployment's scale subresource (`autoscaling/v1` Scale).
    fn scale(&self, ns: &str, name: &str) -> Result<Value, Reply> {
        let deployment = self.deployment_json(ns, name)?;
        let metadata = &deployment["metadata"];
        let selector = deployment["spec"]["selector"]["matchLabels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let selector: Vec<String> = selector
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        Ok(json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {
                "name": name, "namespace": ns, "uid": metadata["uid"],
                "resourceVersion": metadata["resourceVersion"],
                "creationTimestamp": metadata["creationTimestamp"],
            },
            "spec": {"replicas": deployment["spec"]["replicas"]},
            "status": {
                "replicas": deployment["status"]["replicas"].as_i64().unwrap_or(0),
                "selector": selector.join(","),
            },
        }))
    }

    pub(super) fn get_scale(&self, ns: &str, name: &str) -> Answer {
        ok(200, self.scale(ns, name)?)
    }

    /// PATCH (merge or strategic) or PUT of a deployment's scale subresource.
    pub(super) fn write_scale(&mut self, ns: &str, name: &str, call: &Call) -> Answer {
        let current = self.scale(ns, name)?;
        let new = if call.method == "PUT" {
            let body = call.object()?;
            check_resource_version(&current, body, "deployments", "apps", name)?;
            body.clone()
        } else {
            call.patched(&current, "deployments", "apps")?
        };
        let mut deployment = self.deployment_json(ns, name)?.clone();
        deployment["spec"]["replicas"] = new["spec"]["replicas"].clone();
        self.store_deployment(ns, name, deployment)?;
        ok(200, self.scale(ns, name)?)
    }
}
