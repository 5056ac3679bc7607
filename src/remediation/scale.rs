//! `scale_up` (replicas + step, capped; through the HPA's `minReplicas` when one targets the
//! Deployment) and `scale_to` (at least N replicas; never scales down).

use serde_json::json;

use super::{kube::Kube, report::Report};
use crate::domain::ActionParams;

/// Replicas + `step` (default 2), at most `max` (default 10).
pub async fn scale_up(kube: &Kube, params: &ActionParams, dry_run: bool) -> Result<Report, String> {
    let (namespace, name) = (params.required("namespace")?, params.required("deployment")?);
    let step = params.integer("step", 2)?;
    let max = params.integer("max", 10)?;
    let current = current_replicas(kube, namespace, name).await?;
    let wanted = (current + step).min(max);
    if wanted <= current {
        return Ok(Report::noop(format!(
            "deployment/{name} already has {current} replicas, at the cap of {max}: nothing done"
        )));
    }
    raise(kube, namespace, name, current, wanted, dry_run).await
}

/// At least `replicas`; a Deployment that has as many or more is left alone.
pub async fn scale_to(kube: &Kube, params: &ActionParams, dry_run: bool) -> Result<Report, String> {
    let (namespace, name) = (params.required("namespace")?, params.required("deployment")?);
    let wanted = params.integer("replicas", 0)?;
    let current = current_replicas(kube, namespace, name).await?;
    if wanted <= current {
        return Ok(Report::noop(format!(
            "deployment/{name} already has {current} replicas (wanted {wanted}): never scaled down"
        )));
    }
    raise(kube, namespace, name, current, wanted, dry_run).await
}

async fn current_replicas(kube: &Kube, namespace: &str, name: &str) -> Result<i64, String> {
    let scale = kube.scale(namespace, name).await.map_err(|e| e.to_string())?;
    Ok(i64::from(scale.spec.and_then(|s| s.replicas).unwrap_or(0)))
}

/// Raises the replicas, or the HPA's `minReplicas` so as not to fight it.
async fn raise(
    kube: &Kube,
    namespace: &str,
    name: &str,
    current: i64,
    wanted: i64,
    dry_run: bool,
) -> Result<Report, String> {
    let wanted = i32::try_from(wanted).map_err(|_| format!("{wanted} replicas is out of range"))?;
    let hpa = kube.hpa_for(namespace, name).await.map_err(|e| e.to_string())?;
    let detail = json!({"deployment": name, "namespace": namespace, "before": current, "after": wanted});
    if let Some(hpa) = hpa {
        let hpa_name = hpa.metadata.name.clone().unwrap_or_default();
        let spec = hpa.spec.unwrap_or_default();
        let before = spec.min_replicas.unwrap_or(1);
        let after = wanted.min(spec.max_replicas).max(before);
        let what = format!(
            "HPA {hpa_name} minReplicas {before} → {after} (deployment/{name} has {current} replicas)"
        );
        let detail =
            json!({"hpa": hpa_name, "min_before": before, "min_after": after, "replicas_before": current});
        if dry_run {
            return Ok(Report::dry_run(format!("would raise {what}"), detail));
        }
        kube.set_hpa_min(namespace, &hpa_name, after)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(Report::success(format!("raised {what}"), detail));
    }
    let what = format!("deployment/{name} from {current} to {wanted} replicas");
    if dry_run {
        return Ok(Report::dry_run(format!("would scale {what}"), detail));
    }
    kube.set_replicas(namespace, name, wanted, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Report::success(format!("scaled {what}"), detail))
}
