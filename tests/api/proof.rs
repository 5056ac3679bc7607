//! Prove it helped, over real HTTP and Postgres with the fake Kubernetes API server: medic does
//! not fight Argo CD or Flux over a Deployment they manage.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{fake_kube::FakeKube, firing_alert, sink::Sink, TestApp};

const NS: &str = "shop";
const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    kube: FakeKube,
    _kubeconfig: tempfile::NamedTempFile,
    app: TestApp,
    sink: Sink,
}

/// Every rule escalates to `oncall` after an hour, so that only a handover pages within a
/// test's wait.
async fn setup(deployments: &[&str]) -> Setup {
    let kube = FakeKube::start().await;
    for name in deployments {
        kube.add_deployment(NS, name, 1, &[("app", name)]);
    }
    let kubeconfig = kube.kubeconfig();
    let sink = Sink::start(1).await;
    let yaml = format!(
        r#"
dry_run: false
kubernetes: {{kubeconfig: "{kubeconfig}", request_timeout: 5s}}
notifiers:
  slack: {{type: slack, url: "{slack}"}}
  oncall: {{type: slack, url: "{oncall}"}}
remediation:
  namespaces: {{allow: [{NS}]}}
  budget: {{per_target: 100/1h, per_rule: 100/1h, global: 100/1h}}
  flapping: {{max_fires: 100, window: 1h}}
rules:
  - name: scale
    matchers: ['alertname="Busy"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    remediate:
      action: scale_up
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: "{{{{ labels.deployment }}}}", step: 1, max: 10}}
      cooldown: 0s
  - name: scale-anyway
    matchers: ['alertname="BusyAnyway"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    remediate:
      action: scale_up
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: "{{{{ labels.deployment }}}}", step: 1, max: 10}}
      cooldown: 0s
      gitops: allow
  - name: restart
    matchers: ['alertname="Stale"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    remediate:
      action: rollout_restart
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: "{{{{ labels.deployment }}}}"}}
      cooldown: 0s
engine: {{request_timeout: 2s}}
"#,
        kubeconfig = kubeconfig.path().display(),
        slack = sink.url("/slack"),
        oncall = sink.url("/oncall"),
    );
    let app = TestApp::builder().config(&yaml).spawn().await;
    Setup {
        kube,
        _kubeconfig: kubeconfig,
        app,
        sink,
    }
}

fn alert(alertname: &str, fingerprint: &str, deployment: &str) -> Value {
    let labels = json!({"namespace": NS, "deployment": deployment});
    firing_alert(fingerprint, alertname, fingerprint, labels)
}

async fn fire(app: &TestApp, alertname: &str, fingerprint: &str, deployment: &str) -> i64 {
    app.post_for_incident(&alert(alertname, fingerprint, deployment))
        .await
}

/// Polls the incident until `done` holds for its remediations; returns them.
async fn remediations_until(app: &TestApp, id: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let incident = app.incident(id).await;
        let remediations = incident["remediations"].as_array().unwrap().clone();
        if done(&remediations) {
            return remediations;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {incident}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn first_finished(app: &TestApp, id: i64) -> Value {
    let done = remediations_until(app, id, |r| {
        r.first().is_some_and(|r| !r["finished_at"].is_null())
    })
    .await;
    done[0].clone()
}

fn replicas(kube: &FakeKube, name: &str) -> i64 {
    kube.deployment(NS, name).unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

fn patched(kube: &FakeKube, name: &str) -> bool {
    kube.requests()
        .iter()
        .any(|r| r.method == "PATCH" && r.path.contains(&format!("/deployments/{name}")))
}

#[tokio::test]
async fn a_deployment_argo_cd_manages_is_skipped_naming_the_application_and_people_take_over() {
    let s = setup(&["web"]).await;
    s.kube
        .mark_deployment(NS, "web", &[("argocd.argoproj.io/instance", "shop-web")], &[]);
    let id = fire(&s.app, "Busy", "00000000000000a1", "web").await;

    let done = first_finished(&s.app, id).await;
    assert_eq!(done["result"], "skipped_gitops", "{done}");
    let summary = done["summary"].as_str().unwrap();
    assert!(summary.contains("Argo CD application shop-web"), "{summary}");
    assert_eq!(replicas(&s.kube, "web"), 1);
    assert!(!patched(&s.kube, "web"), "nothing changed");

    let paged = s.sink.wait_for("/oncall", 1, WAIT).await;
    assert!(
        paged[0].text.contains(
            "scale_up (skipped_gitops: deployment/shop/web is managed by Argo CD application shop-web"
        ),
        "{}",
        paged[0].text
    );
    assert_eq!(
        s.app
            .metric("medic_remediations_total{action=\"scale_up\",result=\"skipped_gitops\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn argo_cds_tracking_annotation_and_flux_labels_mark_a_managed_deployment_too() {
    let s = setup(&["api", "worker", "cron"]).await;
    let tracking = (
        "argocd.argoproj.io/tracking-id",
        "shop-api:apps/Deployment:shop/api",
    );
    s.kube.mark_deployment(NS, "api", &[], &[tracking]);
    let kustomization = [
        ("kustomize.toolkit.fluxcd.io/name", "apps"),
        ("kustomize.toolkit.fluxcd.io/namespace", "flux-system"),
    ];
    s.kube.mark_deployment(NS, "worker", &kustomization, &[]);
    s.kube
        .mark_deployment(NS, "cron", &[("helm.toolkit.fluxcd.io/name", "cron")], &[]);

    for (alertname, fingerprint, deployment, says) in [
        ("Busy", "00000000000000a2", "api", "Argo CD application shop-api"),
        (
            "Stale",
            "00000000000000a3",
            "worker",
            "Flux Kustomization flux-system/apps",
        ),
        ("Stale", "00000000000000a4", "cron", "Flux HelmRelease cron"),
    ] {
        let id = fire(&s.app, alertname, fingerprint, deployment).await;
        let done = first_finished(&s.app, id).await;
        assert_eq!(done["result"], "skipped_gitops", "{done}");
        assert!(done["summary"].as_str().unwrap().contains(says), "{done}");
        assert!(!patched(&s.kube, deployment), "{deployment} changed");
    }
}

#[tokio::test]
async fn gitops_allow_acts_on_a_managed_deployment_and_warns_it_may_be_reverted() {
    let s = setup(&["web"]).await;
    s.kube
        .mark_deployment(NS, "web", &[("argocd.argoproj.io/instance", "shop-web")], &[]);
    let id = fire(&s.app, "BusyAnyway", "00000000000000a5", "web").await;

    let done = first_finished(&s.app, id).await;
    assert_eq!(done["result"], "success", "{done}");
    let summary = done["summary"].as_str().unwrap();
    assert!(
        summary.contains("scaled deployment/web from 1 to 2")
            && summary.contains("Argo CD application shop-web, which may revert this"),
        "{summary}"
    );
    assert_eq!(replicas(&s.kube, "web"), 2);
    let incident = s.app.incident(id).await;
    let timeline = incident["timeline"].to_string();
    assert!(timeline.contains("which may revert this"), "{timeline}");
    // The rule's channel hears the warning with the outcome.
    let heard = s.sink.wait_for("/slack", 2, WAIT).await;
    assert!(
        heard.iter().any(|m| m.text.contains("which may revert this")),
        "{heard:?}"
    );
}

#[tokio::test]
async fn an_unmanaged_deployment_is_acted_on_as_before() {
    let s = setup(&["web"]).await;
    let id = fire(&s.app, "Busy", "00000000000000a6", "web").await;
    let done = first_finished(&s.app, id).await;
    assert_eq!(done["result"], "success", "{done}");
    assert_eq!(replicas(&s.kube, "web"), 2);
}
