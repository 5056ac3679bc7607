//! `rollout_restart`: what `kubectl rollout restart` does, a new `restartedAt` annotation on
//! the pod template, which rolls the Deployment under its own rollout strategy.

use serde_json::json;

use super::{kube::Kube, report::Report};
use crate::domain::ActionParams;

/// The annotation kubectl sets.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

pub async fn rollout_restart(kube: &Kube, params: &ActionParams, dry_run: bool) -> Result<Report, String> {
    let (namespace, name) = (params.required("namespace")?, params.required("deployment")?);
    // Fails early, with Kubernetes' answer, if the Deployment is not there.
    kube.deployment(namespace, name)
        .await
        .map_err(|e| e.to_string())?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let detail = json!({"deployment": name, "namespace": namespace, "restarted_at": now});
    if dry_run {
        return Ok(Report::dry_run(
            format!("would restart the rollout of deployment/{name}"),
            detail,
        ));
    }
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}});
    kube.patch_deployment(namespace, name, &patch)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Report::success(
        format!("restarted the rollout of deployment/{name}"),
        detail,
    ))
}
