//! Remediation on Kubernetes, through kube, against the fake API server
//! (`tests/support/fake_kube/`) that medic reaches through a kubeconfig, as it would a cluster.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{fake_kube::FakeKube, firing_alert, sink::Sink, TestApp};

const NS: &str = "whiteboard-production";
const WAIT: Duration = Duration::from_secs(20);

struct Cluster {
    kube: FakeKube,
    _kubeconfig: tempfile::NamedTempFile,
    app: TestApp,
    _sink: Sink,
}

async fn cluster(dry_run: bool, setup: impl FnOnce(&FakeKube)) -> Cluster {
    let kube = FakeKube::start().await;
    setup(&kube);
    let kubeconfig = kube.kubeconfig();
    let sink = Sink::start(1).await;
    let yaml = format!(
        r#"
dry_run: {dry_run}
kubernetes: {{kubeconfig: "{kubeconfig}", request_timeout: 5s}}
notifiers:
  slack: {{type: slack, url: "{slack}"}}
remediation:
  namespaces: {{allow: [{NS}]}}
  budget: {{per_target: 10/1h}}
rules:
  - name: memory
    matchers: ['alertname="HighMemoryUsage"']
    notify: [slack]
    remediate:
      action: scale_up
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: web, step: 2, max: 5}}
      cooldown: 0s
  - name: websockets
    matchers: ['alertname="WebSocketConnectionSpike"']
    remediate:
      action: scale_to
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: ws, replicas: 4}}
  - name: errors
    matchers: ['alertname="HighErrorRate"']
    remediate:
      action: restart_pods
      params:
        namespace: "{{{{ labels.namespace }}}}"
        selector: app=api
        grace_period: 1s
        max_restarts: 3
        max_pods: 2
        ready_timeout: 3s
  - name: crashing-pod
    matchers: ['alertname="PodCrashLooping"']
    remediate:
      action: restart_pods
      params: {{namespace: "{{{{ labels.namespace }}}}", pod: "{{{{ labels.pod }}}}", ready_timeout: 3s}}
  - name: slow-queries
    matchers: ['alertname="SlowDatabaseQueries"']
    remediate:
      action: rollout_restart
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: web}}
"#,
        kubeconfig = kubeconfig.path().display(),
        slack = sink.url("/slack"),
    );
    let app = TestApp::builder().config(&yaml).spawn().await;
    Cluster {
        kube,
        _kubeconfig: kubeconfig,
        app,
        _sink: sink,
    }
}

async fn fire(app: &TestApp, alertname: &str, fingerprint: &str, mut labels: Value) -> i64 {
    labels["namespace"] = json!(NS);
    app.post_for_incident(&firing_alert(fingerprint, alertname, fingerprint, labels))
        .await
}

/// The incident's first finished remediation.
async fn outcome(app: &TestApp, id: i64) -> Value {
    for _ in 0..400 {
        let incident = app.incident(id).await;
        if let Some(done) = incident["remediations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| !r["finished_at"].is_null())
        {
            return done.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no remediation finished: {}", app.incident(id).await);
}

fn replicas(kube: &FakeKube, name: &str) -> i64 {
    kube.deployment(NS, name).unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn scale_up_adds_the_step_through_the_scale_subresource_and_stops_at_the_cap() {
    let c = cluster(false, |kube| kube.add_deployment(NS, "web", 2, &[("app", "web")])).await;
    let first = fire(&c.app, "HighMemoryUsage", "0000000000000101", json!({})).await;
    let done = outcome(&c.app, first).await;
    assert_eq!(done["result"], "success", "{done}");
    assert_eq!(done["detail"]["before"], 2);
    assert_eq!(done["detail"]["after"], 4);
    assert_eq!(replicas(&c.kube, "web"), 4);
    assert!(c
        .kube
        .requests()
        .iter()
        .any(|r| r.method == "PATCH" && r.path.ends_with("/deployments/web/scale")));

    let second = fire(&c.app, "HighMemoryUsage", "0000000000000102", json!({})).await;
    assert_eq!(outcome(&c.app, second).await["result"], "success");
    assert_eq!(replicas(&c.kube, "web"), 5, "capped at max");
    let third = fire(&c.app, "HighMemoryUsage", "0000000000000103", json!({})).await;
    let at_cap = outcome(&c.app, third).await;
    assert_eq!(at_cap["result"], "skipped_noop");
    assert!(
        at_cap["summary"].as_str().unwrap().contains("at the cap"),
        "{at_cap}"
    );
    let metric = r#"medic_kubernetes_requests_total{code="200",verb="patch"}"#;
    assert_eq!(c.app.metric(metric).await, 2.0);
}

#[tokio::test]
async fn scale_up_raises_the_hpa_minimum_instead_of_fighting_it() {
    let c = cluster(false, |kube| {
        kube.add_deployment(NS, "web", 2, &[("app", "web")]);
        kube.add_hpa(NS, "web-hpa", "web", 2, 8);
    })
    .await;
    let id = fire(&c.app, "HighMemoryUsage", "0000000000000201", json!({})).await;
    let done = outcome(&c.app, id).await;
    assert_eq!(done["result"], "success", "{done}");
    assert_eq!(c.kube.hpa(NS, "web-hpa").unwrap()["spec"]["minReplicas"], 4);
    assert!(
        !c.kube
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/scale") && r.method != "GET"),
        "scaled the Deployment behind the HPA's back"
    );
}

#[tokio::test]
async fn a_dry_run_reports_the_plan_and_changes_nothing() {
    let c = cluster(true, |kube| kube.add_deployment(NS, "web", 3, &[("app", "web")])).await;
    let id = fire(&c.app, "HighMemoryUsage", "0000000000000301", json!({})).await;
    let done = outcome(&c.app, id).await;
    assert_eq!(done["result"], "dry_run");
    assert!(
        done["summary"]
            .as_str()
            .unwrap()
            .contains("would scale deployment/web from 3 to 5"),
        "{done}"
    );
    assert_eq!(replicas(&c.kube, "web"), 3);
    assert!(!c.kube.requests().iter().any(|r| r.method == "PATCH"));
}

#[tokio::test]
async fn scale_to_raises_the_websocket_servers_and_never_scales_down() {
    let c = cluster(false, |kube| {
        kube.add_deployment(NS, "ws", 2, &[("app", "ws")]);
    })
    .await;
    let id = fire(&c.app, "WebSocketConnectionSpike", "0000000000000401", json!({})).await;
    assert_eq!(outcome(&c.app, id).await["result"], "success");
    assert_eq!(replicas(&c.kube, "ws"), 4);
    c.kube.wait_ready_pods(NS, "ws", 4, WAIT).await;

    let again = fire(&c.app, "WebSocketConnectionSpike", "0000000000000402", json!({})).await;
    let done = outcome(&c.app, again).await;
    assert!(
        matches!(done["result"].as_str(), Some("skipped_noop" | "skipped_cooldown")),
        "{done}"
    );
    assert_eq!(replicas(&c.kube, "ws"), 4);
}

#[tokio::test]
async fn rollout_restart_stamps_the_template_and_the_pods_are_replaced() {
    let c = cluster(false, |kube| kube.add_deployment(NS, "web", 2, &[("app", "web")])).await;
    let before: Vec<Value> = c.kube.wait_ready_pods(NS, "web", 2, WAIT).await;
    let id = fire(&c.app, "SlowDatabaseQueries", "0000000000000501", json!({})).await;
    assert_eq!(outcome(&c.app, id).await["result"], "success");
    let deployment = c.kube.deployment(NS, "web").unwrap();
    assert!(
        deployment["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    let after = c.kube.wait_ready_pods(NS, "web", 2, WAIT).await;
    let uid = |p: &Value| p["metadata"]["uid"].as_str().unwrap().to_owned();
    assert!(
        after.iter().all(|p| !before.iter().any(|b| uid(b) == uid(p))),
        "pods were not replaced"
    );
}

#[tokio::test]
async fn restart_pods_evicts_unhealthy_pods_one_at_a_time_with_uid_preconditions() {
    let c = cluster(false, |kube| kube.add_deployment(NS, "api", 3, &[("app", "api")])).await;
    let pods = c.kube.wait_ready_pods(NS, "api", 3, WAIT).await;
    let name = |p: &Value| p["metadata"]["name"].as_str().unwrap().to_owned();
    let sick = [name(&pods[0]), name(&pods[1])];
    for pod in &sick {
        c.kube
            .set_pod_status(NS, pod, false, 7, Some("CrashLoopBackOff"), chrono::Utc::now());
    }
    let id = fire(&c.app, "HighErrorRate", "0000000000000601", json!({})).await;
    let done = outcome(&c.app, id).await;
    assert_eq!(done["result"], "success", "{done}");
    let evictions: Vec<_> = c
        .kube
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .collect();
    assert_eq!(evictions.len(), 2);
    for eviction in &evictions {
        assert!(
            eviction.body["deleteOptions"]["preconditions"]["uid"].is_string(),
            "{:?}",
            eviction.body
        );
    }
    let remaining: Vec<String> = c.kube.pods(NS).iter().map(name).collect();
    assert!(sick.iter().all(|s| !remaining.contains(s)), "{remaining:?}");
    assert!(remaining.contains(&name(&pods[2])), "a healthy pod was restarted");
}

#[tokio::test]
async fn a_pod_disruption_budget_refusal_is_a_skip_with_its_reason() {
    let c = cluster(false, |kube| {
        kube.add_deployment(NS, "api", 2, &[("app", "api")]);
        kube.add_pdb(NS, "api-pdb", &[("app", "api")], Some(2), None);
    })
    .await;
    let pods = c.kube.wait_ready_pods(NS, "api", 2, WAIT).await;
    let target = pods[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let id = fire(
        &c.app,
        "PodCrashLooping",
        "0000000000000701",
        json!({"pod": target}),
    )
    .await;
    let done = outcome(&c.app, id).await;
    assert_eq!(done["result"], "skipped_pdb", "{done}");
    assert!(done["summary"].as_str().unwrap().contains("api-pdb"), "{done}");
    assert!(c
        .kube
        .pods(NS)
        .iter()
        .any(|p| p["metadata"]["name"] == target.as_str()));
    let metric = r#"medic_remediations_total{action="restart_pods",result="skipped_pdb"}"#;
    assert_eq!(c.app.metric(metric).await, 1.0);
}

#[tokio::test]
async fn restart_pods_stops_at_the_first_replacement_that_never_becomes_ready() {
    let c = cluster(false, |kube| kube.add_deployment(NS, "api", 3, &[("app", "api")])).await;
    let pods = c.kube.wait_ready_pods(NS, "api", 3, WAIT).await;
    c.kube.set_never_ready(NS, "api", true);
    for pod in &pods[..2] {
        let name = pod["metadata"]["name"].as_str().unwrap();
        c.kube
            .set_pod_status(NS, name, false, 9, Some("CrashLoopBackOff"), chrono::Utc::now());
    }
    let id = fire(&c.app, "HighErrorRate", "0000000000000801", json!({})).await;
    let done = outcome(&c.app, id).await;
    assert_eq!(done["result"], "failure", "{done}");
    assert!(
        done["summary"]
            .as_str()
            .unwrap()
            .contains("no replacement became Ready"),
        "{done}"
    );
    let evictions = c
        .kube
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .count();
    assert_eq!(evictions, 1, "went on after a replacement failed");
}

#[tokio::test]
async fn an_unreachable_cluster_records_the_failure_and_medic_runs_on() {
    let kube = FakeKube::start().await;
    let kubeconfig = kube.kubeconfig();
    drop(kube);
    let yaml = format!(
        r#"
kubernetes: {{kubeconfig: "{}", request_timeout: 2s}}
rules:
  - name: memory
    matchers: ['alertname="HighMemoryUsage"']
    remediate:
      action: scale_up
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: web}}
"#,
        kubeconfig.path().display()
    );
    let app = TestApp::builder().config(&yaml).spawn().await;
    let id = fire(&app, "HighMemoryUsage", "0000000000000901", json!({})).await;
    let done = outcome(&app, id).await;
    assert_eq!(done["result"], "failure", "{done}");
    assert!(
        done["summary"].as_str().unwrap().contains("Kubernetes API"),
        "{done}"
    );
    assert_eq!(app.get_anonymous("/readyz").await.status(), 200);
    let metric = r#"medic_kubernetes_requests_total{code="error",verb="get"}"#;
    assert_eq!(app.metric(metric).await, 1.0);
}
