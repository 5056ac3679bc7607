//! GitOps controllers that own a Kubernetes object: Argo CD and Flux mark what they manage
//! with labels and annotations, and put back any change made outside Git. A spec-changing
//! action on such an object is a fight medic would lose a minute later.

use std::{collections::BTreeMap, fmt};

/// Argo CD's label naming the Application (its default tracking method).
pub const ARGO_INSTANCE_LABEL: &str = "argocd.argoproj.io/instance";
/// Argo CD's annotation tracking method: `<application>:<group>/<kind>:<namespace>/<name>`.
pub const ARGO_TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
/// Flux's label naming the Kustomization that applied the object.
pub const FLUX_KUSTOMIZE_LABEL: &str = "kustomize.toolkit.fluxcd.io/name";
/// Flux's label naming the HelmRelease that applied the object.
pub const FLUX_HELM_LABEL: &str = "helm.toolkit.fluxcd.io/name";

/// Which controller manages an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    ArgoCd,
    /// Flux's kustomize-controller (a Kustomization).
    FluxKustomization,
    /// Flux's helm-controller (a HelmRelease).
    FluxHelmRelease,
}

impl Controller {
    /// For people: `Argo CD application`, `Flux Kustomization`, `Flux HelmRelease`.
    pub fn noun(self) -> &'static str {
        match self {
            Controller::ArgoCd => "Argo CD application",
            Controller::FluxKustomization => "Flux Kustomization",
            Controller::FluxHelmRelease => "Flux HelmRelease",
        }
    }
}

/// The GitOps controller that manages an object, and what it calls the owning application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    pub controller: Controller,
    /// The Argo CD Application, or the Flux Kustomization or HelmRelease (with its namespace
    /// when Flux labels it).
    pub application: String,
}

impl Manager {
    /// The manager `labels` and `annotations` of an object name, if any; Argo CD first.
    pub fn of(labels: &BTreeMap<String, String>, annotations: &BTreeMap<String, String>) -> Option<Self> {
        let found = |controller, application: &str| {
            Some(Manager {
                controller,
                application: application.to_owned(),
            })
        };
        if let Some(app) = labels.get(ARGO_INSTANCE_LABEL).filter(|a| !a.is_empty()) {
            return found(Controller::ArgoCd, app);
        }
        if let Some(tracking) = annotations
            .get(ARGO_TRACKING_ANNOTATION)
            .filter(|a| !a.is_empty())
        {
            return found(Controller::ArgoCd, tracking.split(':').next().unwrap_or(tracking));
        }
        for (label, controller) in [
            (FLUX_KUSTOMIZE_LABEL, Controller::FluxKustomization),
            (FLUX_HELM_LABEL, Controller::FluxHelmRelease),
        ] {
            if let Some(name) = labels.get(label).filter(|n| !n.is_empty()) {
                let namespace_label = label.replace("/name", "/namespace");
                let application = match labels.get(&namespace_label) {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name.clone(),
                };
                return found(controller, &application);
            }
        }
        None
    }
}

impl fmt::Display for Manager {
    /// `Argo CD application shop-web`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.controller.noun(), self.application)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn argo_cd_and_flux_marks_name_their_application() {
        let none = map(&[]);
        let cases = [
            (
                map(&[(ARGO_INSTANCE_LABEL, "shop")]),
                none.clone(),
                "Argo CD application shop",
            ),
            (
                none.clone(),
                map(&[(ARGO_TRACKING_ANNOTATION, "shop-web:apps/Deployment:shop/web")]),
                "Argo CD application shop-web",
            ),
            (
                map(&[
                    (FLUX_KUSTOMIZE_LABEL, "apps"),
                    ("kustomize.toolkit.fluxcd.io/namespace", "flux-system"),
                ]),
                none.clone(),
                "Flux Kustomization flux-system/apps",
            ),
            (
                map(&[(FLUX_HELM_LABEL, "web")]),
                none.clone(),
                "Flux HelmRelease web",
            ),
        ];
        for (labels, annotations, says) in cases {
            let manager = Manager::of(&labels, &annotations).expect(says);
            assert_eq!(manager.to_string(), says);
        }
    }

    #[test]
    fn an_object_without_their_marks_is_nobodys() {
        let labels = map(&[("app", "web"), ("app.kubernetes.io/managed-by", "Helm")]);
        assert_eq!(Manager::of(&labels, &map(&[])), None);
        assert_eq!(Manager::of(&map(&[(ARGO_INSTANCE_LABEL, "")]), &map(&[])), None);
    }
}
