//! Remediation on Kubernetes, through kube, against the fake API server
//! (`tests/support/fake_kube/`) that medic reaches through a kubeconfig, as it would a cluster.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    config::{assert_problem, problems_in},
    eventually,
    fake_kube::{FakeKube, TOKEN},
    firing_alert,
    settings::{rule, settings, slack, step, ALERTS_NAMESPACE},
    sink::Sink,
    TestApp,
};

const NS: &str = "whiteboard-production";
const WAIT: Duration = Duration::from_secs(20);

struct Cluster {
    kube: FakeKube,
    _kubeconfig: tempfile::NamedTempFile,
    app: TestApp,
    sink: Sink,
}

async fn cluster(dry_run: bool, setup: impl FnOnce(&FakeKube)) -> Cluster {
    let kube = FakeKube::start().await;
    setup(&kube);
    let kubeconfig = kube.kubeconfig();
    let sink = Sink::start(1).await;
    let ns = ALERTS_NAMESPACE;
    let restart_pods = |params: Value| step("restart_pods", params);
    let settings = settings()
        .with("dry_run", dry_run)
        .kubernetes(kubeconfig.path(), "5s")
        .notifier("slack", slack(&sink.url("/slack")))
        .notifier("oncall", slack(&sink.url("/oncall")))
        .with(
            "remediation",
            json!({"namespaces": {"allow": [NS]}, "budget": {"per_target": "10/1h"}}),
        )
        .rule(
            rule("memory")
                .matching(r#"alertname="HighMemoryUsage""#)
                .notify(&["slack"])
                .remediate(
                    step(
                        "scale_up",
                        json!({"namespace": ns, "deployment": "web", "step": 2, "max": 5}),
                    )
                    .with("cooldown", "0s"),
                ),
        )
        .rule(
            rule("websockets")
                .matching(r#"alertname="WebSocketConnectionSpike""#)
                .remediate(step(
                    "scale_to",
                    json!({"namespace": ns, "deployment": "ws", "replicas": 4}),
                )),
        )
        .rule(
            rule("errors")
                .matching(r#"alertname="HighErrorRate""#)
                .remediate(restart_pods(json!({
                    "namespace": ns, "selector": "app=api", "grace_period": "1s", "max_restarts": 3,
                    "max_pods": 2, "ready_timeout": "3s",
                }))),
        )
        .rule(
            rule("crashing-pod")
                .matching(r#"alertname="PodCrashLooping""#)
                .escalate("1h", &["oncall"])
                .remediate(restart_pods(
                    json!({"namespace": ns, "pod": "{{ labels.pod }}", "ready_timeout": "3s"}),
                )),
        )
        .rule(
            rule("floor").matching(r#"alertname="PodsUnhealthy""#).remediate(
                restart_pods(json!({
                    "namespace": ns, "selector": "{{ labels.selector }}",
                    "min_healthy": "{{ labels.min_healthy }}", "ready_timeout": "3s",
                }))
                .with("cooldown", "0s"),
            ),
        )
        .rule(
            rule("slow-queries")
                .matching(r#"alertname="SlowDatabaseQueries""#)
                .remediate(step(
                    "rollout_restart",
                    json!({"namespace": ns, "deployment": "web"}),
                )),
        );
    let app = TestApp::builder().settings(&settings).spawn().await;
    Cluster {
        kube,
        _kubeconfig: kubeconfig,
        app,
        sink,
    }
}

async fn fire(app: &TestApp, alertname: &str, fingerprint: &str, mut labels: Value) -> i64 {
    labels["namespace"] = json!(NS);
    app.post_for_incident(&firing_alert(fingerprint, alertname, fingerprint, labels))
        .await
}

/// The incident's first finished remediation.
async fn outcome(app: &TestApp, id: i64) -> Value {
    eventually("a remediation to finish", Duration::from_secs(20), || async {
        let incident = app.incident(id).await;
        let done = incident["remediations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| !r["finished_at"].is_null())
            .cloned();
        done.ok_or(incident)
    })
    .await
}

/// The pods evicted, in order.
fn evicted(kube: &FakeKube) -> Vec<String> {
    kube.requests()
        .into_iter()
        .filter_map(|r| Some(r.path.strip_suffix("/eviction")?.rsplit('/').next()?.to_owned()))
        .collect()
}

fn pod_name(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap().to_owned()
}

/// Makes the pods crash-loop (not Ready, restarted 7 times).
fn crash_loop(kube: &FakeKube, pods: &[Value]) {
    for pod in pods {
        kube.set_pod_status(
            NS,
            &pod_name(pod),
            false,
            7,
            Some("CrashLoopBackOff"),
            chrono::Utc::now(),
        );
    }
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
    // Four pods, so that the two left Ready hold the default floor (min_healthy 50%).
    let c = cluster(false, |kube| kube.add_deployment(NS, "api", 4, &[("app", "api")])).await;
    let pods = c.kube.wait_ready_pods(NS, "api", 4, WAIT).await;
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

/// Eight crash-looping pods of deployment/api, and a PodDisruptionBudget allowing eight
/// disruptions that selects pods labelled `budget_selects`.
async fn eight_crash_looping_under_a_budget_for(budget_selects: &str) -> (Cluster, Vec<Value>) {
    let c = cluster(false, |kube| {
        kube.add_deployment(NS, "api", 8, &[("app", "api")]);
        kube.add_pdb(NS, "eight", &[("app", budget_selects)], None, Some(8));
    })
    .await;
    let pods = c.kube.wait_ready_pods(NS, "api", 8, WAIT).await;
    crash_loop(&c.kube, &pods);
    (c, pods)
}

#[tokio::test]
async fn pods_a_pod_disruption_budget_covers_are_restarted_as_it_allows_whatever_min_healthy_says() {
    let (c, pods) = eight_crash_looping_under_a_budget_for("api").await;
    let labels = json!({"selector": "app=api", "min_healthy": "50%"});
    let id = fire(&c.app, "PodsUnhealthy", "0000000000000711", labels).await;
    let done = outcome(&c.app, id).await;
    // None of the eight is Ready, far below min_healthy's 4: the budget alone governs them.
    assert_eq!(done["result"], "success", "{done}");
    let first: Vec<String> = pods[..3].iter().map(pod_name).collect();
    assert_eq!(evicted(&c.kube), first, "max_pods (3) of them, in order");
    let listed = c.kube.requests().into_iter().any(|r| {
        r.method == "GET" && r.path == format!("/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets")
    });
    assert!(listed, "the budgets were not read");
}

#[tokio::test]
async fn min_healthy_still_holds_pods_no_pod_disruption_budget_covers() {
    // The namespace has a budget, but it selects other pods.
    let (c, _) = eight_crash_looping_under_a_budget_for("other").await;
    let labels = json!({"selector": "app=api", "min_healthy": "50%"});
    let id = fire(&c.app, "PodsUnhealthy", "0000000000000712", labels).await;
    let done = outcome(&c.app, id).await;
    assert_eq!(done["result"], "skipped_min_healthy", "{done}");
    assert!(
        done["summary"]
            .as_str()
            .unwrap()
            .ends_with("would leave 0 of 8 desired pods of deployment/api Ready; min_healthy is 50% (4)"),
        "{done}"
    );
    assert!(evicted(&c.kube).is_empty(), "an eviction reached the API server");
}

#[tokio::test]
async fn a_pod_disruption_budget_not_min_healthy_answers_for_the_pods_it_covers() {
    let c = cluster(false, |kube| {
        kube.add_deployment(NS, "api", 4, &[("app", "api")]);
        kube.add_pdb(NS, "api-pdb", &[("app", "api")], Some(2), None);
    })
    .await;
    let pods = c.kube.wait_ready_pods(NS, "api", 4, WAIT).await;
    for pod in &pods[..2] {
        c.kube
            .set_pod_status(NS, &pod_name(pod), false, 0, None, chrono::Utc::now());
    }
    // Evicting it would leave 1 of 4 Ready, below min_healthy (2) and below the budget (2):
    // the eviction is asked, and the budget's 429 is the answer.
    let target = pod_name(&pods[2]);
    let id = fire(
        &c.app,
        "PodCrashLooping",
        "0000000000000713",
        json!({"pod": target}),
    )
    .await;
    let done = outcome(&c.app, id).await;
    assert_eq!(done["result"], "skipped_pdb", "{done}");
    assert!(done["summary"].as_str().unwrap().contains("api-pdb"), "{done}");
    assert_eq!(
        evicted(&c.kube),
        std::slice::from_ref(&target),
        "the API server was asked"
    );
    assert!(c.kube.pods(NS).iter().any(|p| pod_name(p) == target));
}

#[tokio::test]
async fn restart_pods_stops_at_the_first_replacement_that_never_becomes_ready() {
    // Four pods, so that the two left Ready hold the default floor (min_healthy 50%).
    let c = cluster(false, |kube| kube.add_deployment(NS, "api", 4, &[("app", "api")])).await;
    let pods = c.kube.wait_ready_pods(NS, "api", 4, WAIT).await;
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
async fn the_fake_deployment_controller_owns_pods_through_a_replica_set() {
    let kube = FakeKube::start().await;
    kube.add_deployment(NS, "api", 2, &[("app", "api")]);
    let pods = kube.wait_ready_pods(NS, "api", 2, WAIT).await;
    let owner = &pods[0]["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ReplicaSet");
    let set_name = owner["name"].as_str().unwrap();
    let url = format!(
        "{}/apis/apps/v1/namespaces/{NS}/replicasets/{set_name}",
        kube.url()
    );
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set: Value = response.json().await.unwrap();
    assert_eq!(set["metadata"]["uid"], owner["uid"]);
    let deployment = kube.deployment(NS, "api").unwrap();
    let set_owner = &set["metadata"]["ownerReferences"][0];
    assert_eq!(set_owner["kind"], "Deployment");
    assert_eq!(set_owner["uid"], deployment["metadata"]["uid"]);
    assert_eq!(set_owner["controller"], true);
    let hash = &set["spec"]["selector"]["matchLabels"]["pod-template-hash"];
    assert_eq!(&pods[0]["metadata"]["labels"]["pod-template-hash"], hash, "{set}");
    assert_eq!(set["status"]["readyReplicas"], 2, "{set}");
    let list = format!(
        "{}/apis/apps/v1/namespaces/{NS}/replicasets?labelSelector=app%3Dapi",
        kube.url()
    );
    let response = reqwest::Client::new()
        .get(list)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let sets: Value = response.json().await.unwrap();
    assert_eq!(sets["items"].as_array().unwrap().len(), 1, "{sets}");
}

#[tokio::test]
async fn restart_pods_may_evict_pods_that_are_not_ready_while_half_the_deployment_is() {
    let c = cluster(false, |kube| kube.add_deployment(NS, "api", 4, &[("app", "api")])).await;
    let pods = c.kube.wait_ready_pods(NS, "api", 4, WAIT).await;
    crash_loop(&c.kube, &pods[..2]);
    let id = fire(&c.app, "HighErrorRate", "0000000000000a01", json!({})).await;
    let done = outcome(&c.app, id).await;
    // Two of four Ready is the floor (50%), and evicting a pod that is not Ready takes nothing
    // from it: both sick pods go, the second once the first one's replacement is Ready.
    assert_eq!(done["result"], "success", "{done}");
    assert_eq!(evicted(&c.kube), [pod_name(&pods[0]), pod_name(&pods[1])]);
    assert_eq!(done["detail"]["min_healthy"], "50%", "{done}");
    let ready = c.kube.wait_ready_pods(NS, "api", 4, WAIT).await;
    let names: Vec<String> = ready.iter().map(pod_name).collect();
    assert!(names.contains(&pod_name(&pods[2])) && names.contains(&pod_name(&pods[3])));
}

#[tokio::test]
async fn restart_pods_refuses_an_eviction_that_would_leave_too_few_pods_ready() {
    let c = cluster(false, |kube| kube.add_deployment(NS, "api", 4, &[("app", "api")])).await;
    let pods = c.kube.wait_ready_pods(NS, "api", 4, WAIT).await;
    for pod in &pods[..2] {
        c.kube
            .set_pod_status(NS, &pod_name(pod), false, 0, None, chrono::Utc::now());
    }
    let target = pod_name(&pods[2]);
    let id = fire(
        &c.app,
        "PodCrashLooping",
        "0000000000000b01",
        json!({"pod": target}),
    )
    .await;
    let done = outcome(&c.app, id).await;
    assert_eq!(done["result"], "skipped_min_healthy", "{done}");
    let why = format!(
        "evicting {target} would leave 1 of 4 desired pods of deployment/api Ready; min_healthy is 50% (2)"
    );
    assert_eq!(done["summary"], why.as_str(), "{done}");
    assert!(evicted(&c.kube).is_empty(), "an eviction reached the API server");
    assert!(c.kube.pods(NS).iter().any(|p| pod_name(p) == target));
    let metric = r#"medic_remediations_total{action="restart_pods",result="skipped_min_healthy"}"#;
    assert_eq!(c.app.metric(metric).await, 1.0);
    // People take over at once: the escalation step due in an hour comes now, saying why.
    let paged = c.sink.wait_for("/oncall", 1, WAIT).await;
    assert!(
        paged[0]
            .text
            .contains("automatic remediation did not fix it: restart_pods (skipped_min_healthy)"),
        "{}",
        paged[0].text
    );
}

#[tokio::test]
async fn restart_pods_leaves_a_deployment_already_below_its_floor_alone() {
    let c = cluster(false, |kube| kube.add_deployment(NS, "api", 3, &[("app", "api")])).await;
    let pods = c.kube.wait_ready_pods(NS, "api", 3, WAIT).await;
    crash_loop(&c.kube, &pods[..2]);
    let id = fire(&c.app, "HighErrorRate", "0000000000000c01", json!({})).await;
    let done = outcome(&c.app, id).await;
    assert_eq!(done["result"], "skipped_min_healthy", "{done}");
    let why = format!(
        "evicting {} (not Ready) would leave 1 of 3 desired pods of deployment/api Ready; \
         min_healthy is 50% (2)",
        pod_name(&pods[0])
    );
    assert_eq!(done["summary"], why.as_str(), "{done}");
    assert!(evicted(&c.kube).is_empty());
}

#[tokio::test]
async fn an_explicit_min_healthy_as_a_percentage_or_a_count_sets_the_floor() {
    let c = cluster(false, |kube| kube.add_deployment(NS, "web", 4, &[("app", "web")])).await;
    let pods = c.kube.wait_ready_pods(NS, "web", 4, WAIT).await;
    // Ready, but restarted more often than max_restarts: evicting it takes one Ready pod away.
    let target = pod_name(&pods[0]);
    c.kube
        .set_pod_status(NS, &target, true, 7, None, chrono::Utc::now());
    let labels = |min_healthy: &str| json!({"selector": "app=web", "min_healthy": min_healthy});

    let all = fire(&c.app, "PodsUnhealthy", "0000000000000d01", labels("100%")).await;
    let done = outcome(&c.app, all).await;
    assert_eq!(done["result"], "skipped_min_healthy", "{done}");
    let why = format!(
        "evicting {target} would leave 3 of 4 desired pods of deployment/web Ready; min_healthy is 100% (4)"
    );
    assert_eq!(done["summary"], why.as_str(), "{done}");
    assert!(evicted(&c.kube).is_empty());

    let three = fire(&c.app, "PodsUnhealthy", "0000000000000d02", labels("3")).await;
    let done = outcome(&c.app, three).await;
    assert_eq!(done["result"], "success", "{done}");
    assert_eq!(done["detail"]["min_healthy"], "3", "{done}");
    assert_eq!(evicted(&c.kube), [target.as_str()]);

    let next = pod_name(&c.kube.wait_ready_pods(NS, "web", 4, WAIT).await[0]);
    c.kube
        .set_pod_status(NS, &next, true, 7, None, chrono::Utc::now());
    let four = fire(&c.app, "PodsUnhealthy", "0000000000000d03", labels("4")).await;
    let done = outcome(&c.app, four).await;
    assert_eq!(done["result"], "skipped_min_healthy", "{done}");
    assert!(
        done["summary"].as_str().unwrap().ends_with("min_healthy is 4"),
        "{done}"
    );
}

#[tokio::test]
async fn an_invalid_min_healthy_is_skipped_before_any_request() {
    let c = cluster(false, |kube| kube.add_deployment(NS, "web", 2, &[("app", "web")])).await;
    for (i, bad) in ["101%", "-1", "half", "50.5%"].into_iter().enumerate() {
        let labels = json!({"selector": "app=web", "min_healthy": bad});
        let id = fire(&c.app, "PodsUnhealthy", &format!("00000000000e000{i}"), labels).await;
        let done = outcome(&c.app, id).await;
        assert_eq!(done["result"], "skipped_invalid", "{bad}: {done}");
        assert!(
            done["summary"].as_str().unwrap().contains("min_healthy"),
            "{bad}: {done}"
        );
    }
    assert!(c.kube.requests().is_empty(), "{:?}", c.kube.requests());
}

#[test]
fn a_literal_min_healthy_out_of_range_is_a_config_problem() {
    let rule = |min_healthy: &str| {
        format!(
            "rules:\n  - name: r\n    matchers: ['alertname=\"X\"']\n    remediate: {{action: restart_pods, \
             params: {{namespace: prod, selector: app=web, min_healthy: {min_healthy}}}}}\n"
        )
    };
    let at = "rules[0].remediate.params.min_healthy";
    assert_problem(&problems_in(&rule("101%")), at, "more than 100%");
    assert_problem(&problems_in(&rule("-1")), at, "negative");
    assert_problem(&problems_in(&rule("half")), at, "neither a count");
    assert_problem(&problems_in(&rule("1.5")), at, "expected a count");
    for good in ["0%", "100%", "'75%'", "2", "'2'"] {
        let loaded = crate::helpers::config::load_yaml(&rule(good), &[]);
        assert!(loaded.is_ok(), "{good}: {:#?}", loaded.err());
    }
}

/// Two Deployments behind one selector: api (four pods, two crash-looping) and worker (three
/// pods, two crash-looping, so below its floor).
async fn two_deployments_one_selector(dry_run: bool) -> (Cluster, Vec<Value>, Vec<Value>) {
    let c = cluster(dry_run, |kube| {
        kube.add_deployment(NS, "api", 4, &[("app", "api"), ("tier", "backend")]);
        kube.add_deployment(NS, "worker", 3, &[("app", "worker"), ("tier", "backend")]);
    })
    .await;
    let api = c.kube.wait_ready_pods(NS, "api", 4, WAIT).await;
    let worker = c.kube.wait_ready_pods(NS, "worker", 3, WAIT).await;
    crash_loop(&c.kube, &api[..2]);
    crash_loop(&c.kube, &worker[..2]);
    (c, api, worker)
}

#[tokio::test]
async fn restart_pods_stopped_by_the_floor_after_some_evictions_is_a_failure_naming_them() {
    let (c, api, worker) = two_deployments_one_selector(false).await;
    let labels = json!({"selector": "tier=backend", "min_healthy": "50%"});
    let id = fire(&c.app, "PodsUnhealthy", "0000000000000f01", labels).await;
    let done = outcome(&c.app, id).await;
    assert_eq!(done["result"], "failure", "{done}");
    let why = format!(
        "evicted {}, {}, then stopped: evicting {} (not Ready) would leave 1 of 3 desired pods of \
         deployment/worker Ready; min_healthy is 50% (2)",
        pod_name(&api[0]),
        pod_name(&api[1]),
        pod_name(&worker[0])
    );
    assert_eq!(done["summary"], why.as_str(), "{done}");
    assert_eq!(evicted(&c.kube), [pod_name(&api[0]), pod_name(&api[1])]);
}

#[tokio::test]
async fn a_dry_run_says_where_min_healthy_would_stop_restart_pods() {
    let (c, api, worker) = two_deployments_one_selector(true).await;
    let labels = json!({"selector": "tier=backend", "min_healthy": "50%"});
    let id = fire(&c.app, "PodsUnhealthy", "0000000000000f02", labels).await;
    let done = outcome(&c.app, id).await;
    assert_eq!(done["result"], "dry_run", "{done}");
    let plan = format!(
        "would evict {}, {}, one at a time, then stop: evicting {} (not Ready) would leave 1 of 3 \
         desired pods of deployment/worker Ready; min_healthy is 50% (2)",
        pod_name(&api[0]),
        pod_name(&api[1]),
        pod_name(&worker[0])
    );
    assert_eq!(done["summary"], plan.as_str(), "{done}");
    assert!(evicted(&c.kube).is_empty());
}

#[tokio::test]
async fn an_unreachable_cluster_records_the_failure_and_medic_runs_on() {
    let kube = FakeKube::start().await;
    let kubeconfig = kube.kubeconfig();
    drop(kube);
    let settings = settings().kubernetes(kubeconfig.path(), "2s").rule(
        rule("memory")
            .matching(r#"alertname="HighMemoryUsage""#)
            .remediate(step(
                "scale_up",
                json!({"namespace": ALERTS_NAMESPACE, "deployment": "web"}),
            )),
    );
    let app = TestApp::builder().settings(&settings).spawn().await;
    let id = fire(&app, "HighMemoryUsage", "0000000000000901", json!({})).await;
    let done = outcome(&app, id).await;
    assert_eq!(done["result"], "failure", "{done}");
    assert!(
        done["summary"].as_str().unwrap().contains("Kubernetes API"),
        "{done}"
    );
    assert_eq!(app.get_anonymous("/readyz").await.status(), 200);
    // Two reads of the Deployment, both failing: the GitOps check before the guard rails
    // decide, and again before acting (the first could not tell who manages it).
    let metric = r#"medic_kubernetes_requests_total{code="error",verb="get"}"#;
    assert_eq!(app.metric(metric).await, 2.0);
}
