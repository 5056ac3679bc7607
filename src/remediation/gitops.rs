//! No fight with GitOps: before a spec-changing action, the target Deployment's labels and
//! annotations say whether Argo CD or Flux manages it. Then the step is `skipped_gitops` and
//! people take over, told which application owns it, unless the step says `gitops: allow`: it
//! acts, and its report warns that the controller may put the change back.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;

use super::kube::Kube;
use crate::domain::gitops::Manager;

/// What the GitOps check says about one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody manages the target (or the action changes no spec): act.
    Free,
    /// Managed, and the step does not allow it: skip, for this reason.
    Skip(String),
    /// Managed, and the step allows it: act, with this warning in the report.
    Warn(String),
    /// The Deployment could not be read, so nobody can tell: a failure with Kubernetes'
    /// answer (the handler could not have read it either).
    Unreadable(String),
}

/// The manager of a Deployment, from its metadata.
pub fn manager_of(deployment: &Deployment) -> Option<Manager> {
    let empty = BTreeMap::new();
    let meta = &deployment.metadata;
    Manager::of(
        meta.labels.as_ref().unwrap_or(&empty),
        meta.annotations.as_ref().unwrap_or(&empty),
    )
}

/// The verdict for `deployment/<namespace>/<name>` managed by `manager`.
pub fn verdict(object: &str, manager: Option<Manager>, allow: bool) -> Verdict {
    match (manager, allow) {
        (None, _) => Verdict::Free,
        (Some(manager), false) => Verdict::Skip(format!(
            "{object} is managed by {manager}, which would revert the change: left to people \
             (gitops: allow acts anyway)"
        )),
        (Some(manager), true) => Verdict::Warn(format!(
            "warning: {object} is managed by {manager}, which may revert this"
        )),
    }
}

/// Reads the Deployment and decides.
pub async fn check(kube: &Kube, namespace: &str, name: &str, allow: bool) -> Verdict {
    match kube.deployment(namespace, name).await {
        Ok(deployment) => verdict(
            &format!("deployment/{namespace}/{name}"),
            manager_of(&deployment),
            allow,
        ),
        Err(e) => Verdict::Unreadable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::gitops::Controller;

    #[test]
    fn a_managed_target_is_skipped_naming_its_application_unless_allowed() {
        let argo = || {
            Some(Manager {
                controller: Controller::ArgoCd,
                application: "shop".into(),
            })
        };
        let Verdict::Skip(why) = verdict("deployment/shop/web", argo(), false) else {
            panic!("not skipped");
        };
        assert!(why.contains("Argo CD application shop"), "{why}");
        let Verdict::Warn(warning) = verdict("deployment/shop/web", argo(), true) else {
            panic!("not warned");
        };
        assert!(warning.contains("may revert"), "{warning}");
        assert_eq!(verdict("deployment/shop/web", None, false), Verdict::Free);
    }
}
