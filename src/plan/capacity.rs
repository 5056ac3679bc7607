//! The capacity forecast's settings compiled: each Deployment's queries with `$namespace` and
//! `$deployment` filled in, its target as a fraction, and where its replicas come from.

use std::time::Duration;

use crate::config::{
    self, CapacitySettings, DeploymentSettings, Problem, Problems, Settings, Source, DEPLOYMENT_PLACEHOLDER,
    NAMESPACE_PLACEHOLDER,
};

/// What `medic capacity` forecasts, and over which history.
#[derive(Debug, Clone)]
pub struct Capacity {
    /// 7 to 30 days.
    pub history: Duration,
    /// A whole number of minutes dividing a day.
    pub step: Duration,
    pub deployments: Vec<Deployment>,
}

/// One Deployment to forecast.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub namespace: String,
    pub name: String,
    /// The usage of all its pods together, placeholders filled in.
    pub usage: String,
    /// What one pod can take, in `unit`.
    pub capacity_per_pod: f64,
    pub unit: String,
    /// The utilisation the peak is to stay under, as a fraction (0.7).
    pub target: f64,
    pub replicas: ReplicasSource,
    /// The HorizontalPodAutoscaler's name, when one scales it.
    pub hpa: Option<String>,
}

/// Where the current replica count comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicasSource {
    /// Written in the settings.
    Fixed(u32),
    /// A query yielding one number (kube-state-metrics' `kube_deployment_spec_replicas`).
    Query(String),
}

impl Deployment {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The HPA's `(min, max)` replica queries, from kube-state-metrics.
    pub fn hpa_queries(&self) -> Option<(String, String)> {
        let hpa = self.hpa.as_ref()?;
        let query = |metric: &str| {
            format!(
                r#"{metric}{{namespace="{}",horizontalpodautoscaler="{hpa}"}}"#,
                self.namespace
            )
        };
        Some((
            query("kube_horizontalpodautoscaler_spec_min_replicas"),
            query("kube_horizontalpodautoscaler_spec_max_replicas"),
        ))
    }
}

/// Compiles `capacity:`; a Deployment to forecast needs `prometheus.url`.
pub fn compile(settings: &Settings, problems: &mut Vec<Problem>) -> Capacity {
    let capacity = &settings.capacity;
    if !capacity.deployments.is_empty() && settings.prometheus.url.is_none() {
        problems.push(Problem::new(
            "prometheus.url",
            "must be set: capacity.deployments are forecast from the history in Prometheus",
        ));
    }
    Capacity {
        history: capacity.history.0,
        step: capacity.step.0,
        deployments: capacity
            .deployments
            .iter()
            .map(|deployment| compile_one(capacity, deployment))
            .collect(),
    }
}

fn compile_one(capacity: &CapacitySettings, settings: &DeploymentSettings) -> Deployment {
    let fill = |query: &str| {
        query
            .replace(NAMESPACE_PLACEHOLDER, &settings.namespace)
            .replace(DEPLOYMENT_PLACEHOLDER, &settings.name)
    };
    let replicas = match settings.replicas {
        Some(replicas) => ReplicasSource::Fixed(replicas),
        None => ReplicasSource::Query(fill(
            r#"kube_deployment_spec_replicas{namespace="$namespace",deployment="$deployment"}"#,
        )),
    };
    Deployment {
        namespace: settings.namespace.clone(),
        name: settings.name.clone(),
        usage: fill(&settings.usage),
        capacity_per_pod: settings.capacity_per_pod,
        unit: settings.unit.clone(),
        target: settings.target_utilisation.unwrap_or(capacity.target_utilisation) / 100.0,
        replicas,
        hpa: settings.hpa.clone(),
    }
}

/// Loads the settings and compiles `capacity:` alone, as `medic slo rules` does its SLOs: only
/// problems in `capacity:` and `prometheus:` (or a file that cannot be read) stop it.
pub fn load(source: &Source) -> Result<(Capacity, Settings), Problems> {
    let (settings, problems) = config::read(source);
    let Some(settings) = settings else {
        return Err(Problems(problems));
    };
    let mut problems: Vec<Problem> = problems.into_iter().filter(concerns_capacity).collect();
    let capacity = compile(&settings, &mut problems);
    if problems.is_empty() {
        Ok((capacity, settings))
    } else {
        Err(Problems(problems))
    }
}

fn concerns_capacity(problem: &Problem) -> bool {
    let path = problem.path.as_str();
    path.starts_with("capacity") || path.starts_with("prometheus")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn compiled(yaml: &str) -> Result<Capacity, Vec<Problem>> {
        let (settings, mut problems) = config::read_yaml(Some(yaml), &HashMap::new());
        let capacity = compile(&settings.expect("parses"), &mut problems);
        if problems.is_empty() {
            Ok(capacity)
        } else {
            Err(problems)
        }
    }

    #[test]
    fn placeholders_are_filled_and_replicas_come_from_kube_state_metrics_by_default() {
        let capacity = compiled(
            r#"
prometheus: {url: "http://prometheus:9090"}
capacity:
  deployments:
    - namespace: web
      name: api
      usage: sum(rate(cpu{namespace="$namespace", pod=~"$deployment-.*"}[5m]))
      capacity_per_pod: 0.5
      unit: cores
      hpa: api-hpa
"#,
        )
        .unwrap();
        assert_eq!(capacity.history, Duration::from_secs(14 * 86_400));
        assert_eq!(capacity.step, Duration::from_secs(3600));
        let api = &capacity.deployments[0];
        assert_eq!(api.usage, r#"sum(rate(cpu{namespace="web", pod=~"api-.*"}[5m]))"#);
        assert_eq!(api.target, 0.7);
        assert_eq!(
            api.replicas,
            ReplicasSource::Query(
                r#"kube_deployment_spec_replicas{namespace="web",deployment="api"}"#.into()
            )
        );
        let (min, _) = api.hpa_queries().unwrap();
        assert_eq!(
            min,
            r#"kube_horizontalpodautoscaler_spec_min_replicas{namespace="web",horizontalpodautoscaler="api-hpa"}"#
        );
    }

    #[test]
    fn every_problem_is_reported_at_its_key_path() {
        let problems = compiled(
            r#"
capacity:
  history: 3d
  step: 7m
  target_utilisation: 120
  deployments:
    - {namespace: Web, name: api, usage: "sum(x", capacity_per_pod: 0, unit: "", replicas: 0}
    - {namespace: web, name: api, usage: x, capacity_per_pod: 1, unit: cores}
    - {namespace: web, name: api, usage: x, capacity_per_pod: 1, unit: cores}
"#,
        )
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "capacity.history",
                "capacity.step",
                "capacity.target_utilisation",
                "capacity.deployments[0].namespace",
                "capacity.deployments[0].usage",
                "capacity.deployments[0].capacity_per_pod",
                "capacity.deployments[0].unit",
                "capacity.deployments[0].replicas",
                "capacity.deployments[2].name",
                "prometheus.url",
            ],
            "{problems:#?}"
        );
    }
}
