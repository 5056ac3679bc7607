//! Alert labels cannot bend remediation: every templated parameter of every action, given
//! hostile values, is refused before any request (`skipped_invalid`), and nothing reaches an
//! object outside the allowed namespaces. Budgets hold under concurrency across replicas.

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;

use crate::helpers::{
    alerts_with_labels, eventually,
    fake_kube::FakeKube,
    settings::{rule, settings, step},
    shared_postgres, unique_name, TestApp,
};

const WAIT: Duration = Duration::from_secs(60);

/// A rule's name, its action, and the labels that make a valid alert for it.
type Case = (&'static str, &'static str, Vec<(&'static str, &'static str)>);

/// Each rule's action and the labels that make a valid alert for it.
fn actions() -> Vec<Case> {
    vec![
        (
            "scale-up",
            "scale_up",
            vec![
                ("namespace", "prod"),
                ("deployment", "web"),
                ("step", "1"),
                ("max", "3"),
            ],
        ),
        (
            "scale-to",
            "scale_to",
            vec![("namespace", "prod"), ("deployment", "web"), ("replicas", "2")],
        ),
        (
            "rollout",
            "rollout_restart",
            vec![("namespace", "prod"), ("deployment", "web")],
        ),
        (
            "restart-pods",
            "restart_pods",
            vec![
                ("namespace", "prod"),
                ("selector", "app=web"),
                ("grace_period", "1s"),
                ("max_restarts", "3"),
                ("max_pods", "1"),
                ("ready_timeout", "3s"),
            ],
        ),
        (
            "restart-pod",
            "restart_pods",
            vec![("namespace", "prod"), ("pod", "web-1"), ("ready_timeout", "3s")],
        ),
        (
            "relieve",
            "postgres_relieve_pool",
            vec![
                ("database", "main"),
                ("threshold", "10s"),
                ("max_terminations", "1"),
                ("namespace", "prod"),
                ("deployment", "web"),
                ("env", "POOL_SIZE"),
                ("pool_step", "1"),
                ("pool_max", "5"),
            ],
        ),
    ]
}

/// Values a crafted alert might carry, by what the parameter holds.
fn hostile(param: &str) -> Vec<String> {
    let long = "x".repeat(3 * 1024);
    let names = [
        "kube-system/x",
        "prod/../kube-system",
        "a?b=c",
        "a#b",
        "%2F",
        "..",
        "a b",
        "",
        "-a",
        long.as_str(),
    ];
    let mut values: Vec<String> = names.iter().map(|v| v.to_string()).collect();
    match param {
        // 51 replicas are over the default limit; 1001 over every count's.
        "step" | "max" | "replicas" => [
            "51",
            "1001",
            "-1",
            "1e9",
            "abc",
            "",
            "0x10",
            "99999999999999999999",
        ]
        .map(str::to_owned)
        .to_vec(),
        "max_restarts" | "max_pods" | "max_terminations" | "pool_step" | "pool_max" => {
            ["1001", "-1", "1e9", "abc", "", "0x10", "99999999999999999999"]
                .map(str::to_owned)
                .to_vec()
        }
        "grace_period" | "ready_timeout" => {
            ["11m", "-5s", "1y", "", "soon", "1h"].map(str::to_owned).to_vec()
        }
        "threshold" => ["1s", "4s", "-5s", "", "never"].map(str::to_owned).to_vec(),
        // Upper case is a valid environment variable and configured name; the rest is not.
        "env" | "database" => values,
        _ => {
            values.push("UPPER".into());
            values
        }
    }
}

fn rules_yaml() -> String {
    actions()
        .into_iter()
        .map(|(rule, action, labels)| {
            let params: Vec<String> = labels
                .iter()
                .map(|(name, _)| format!("{name}: \"{{{{ labels.{name} }}}}\""))
                .collect();
            format!(
                "  - name: {rule}\n    matchers: ['rule=\"{rule}\"']\n    remediate: {{action: {action}, params: {{{}}}}}\n",
                params.join(", ")
            )
        })
        .collect()
}

/// Every remediation's result by episode, once `count` have finished.
async fn results(app: &TestApp, count: usize) -> BTreeMap<String, (String, String)> {
    let what = format!("{count} remediations to finish");
    eventually(&what, WAIT, || async {
        let rows = app
            .sql()
            .await
            .query(
                "SELECT episode, result, summary FROM remediations WHERE finished_at IS NOT NULL",
                &[],
            )
            .await
            .unwrap();
        if rows.len() >= count {
            Ok(rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect())
        } else {
            Err(format!("{} finished", rows.len()))
        }
    })
    .await
}

#[tokio::test]
async fn hostile_label_values_for_every_templated_parameter_reach_no_kubernetes_object() {
    let kube = FakeKube::start().await;
    kube.add_deployment("prod", "web", 2, &[("app", "web")]);
    let kubeconfig = kube.kubeconfig();
    let url = shared_postgres().create_database(&unique_name()).await;
    let yaml = format!(
        r#"kubernetes: {{kubeconfig: "{kubeconfig}", request_timeout: 5s}}
remediation:
  namespaces: {{allow: [prod], deny: [kube-system]}}
  budget: {{per_target: 1000/1h, per_rule: 1000/1h, global: 1000/1h}}
  flapping: {{max_fires: 1000, window: 1h}}
  cooldown: 0s
  databases:
    main: {{url: "{url}", users: [nobody]}}
rules:
{rules}"#,
        kubeconfig = kubeconfig.path().display(),
        rules = rules_yaml(),
    );
    let app = TestApp::builder().config(&yaml).database(&url).spawn().await;

    // expected result by fingerprint
    let mut expected: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    let mut next = 1;
    for (rule, _, valid) in actions() {
        let base: BTreeMap<String, String> = valid
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([
                ("rule".to_string(), rule.to_string()),
                ("alertname".into(), "Hostile".into()),
            ])
            .collect();
        let mut alerts = vec![base.clone()];
        expected.insert(
            format!("{next:016x}"),
            (rule.into(), "(valid)".into(), "acted".into()),
        );
        for (param, _) in &valid {
            let mut values = hostile(param);
            if *param == "namespace" {
                values.push("kube-system".into());
            }
            for value in values {
                let mut labels = base.clone();
                labels.insert(param.to_string(), value.clone());
                let want = if value == "kube-system" {
                    "skipped_namespace"
                } else {
                    "skipped_invalid"
                };
                expected.insert(
                    format!("{:016x}", next + alerts.len()),
                    (rule.into(), format!("{param}={:.40?}", value), want.into()),
                );
                alerts.push(labels);
            }
        }
        let payload = alerts_with_labels(rule, &alerts, next);
        next += alerts.len();
        assert_eq!(app.post_webhook(&payload).await.status(), 200, "{rule}");
    }

    let results = results(&app, expected.len()).await;
    let mut wrong = Vec::new();
    for (episode, (result, summary)) in &results {
        let fingerprint = episode.split('@').next().unwrap();
        let (rule, case, want) = &expected[fingerprint];
        let ok = match want.as_str() {
            "acted" => !result.starts_with("skipped_invalid") && result != "skipped_namespace",
            want => result == want,
        };
        if !ok {
            wrong.push(format!("{rule} {case}: {result} ({summary})"));
        }
    }
    assert!(wrong.is_empty(), "{} wrong:\n{}", wrong.len(), wrong.join("\n"));

    let requests = kube.requests();
    assert!(!requests.is_empty(), "the valid alerts acted");
    for request in &requests {
        let segments: Vec<&str> = request.path.split('/').collect();
        if let Some(at) = segments.iter().position(|s| *s == "namespaces") {
            assert_eq!(
                segments.get(at + 1),
                Some(&"prod"),
                "{} {}",
                request.method,
                request.path
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_alerts_for_fifty_targets_on_two_replicas_stay_within_the_global_budget() {
    let kube = FakeKube::start().await;
    let kubeconfig = kube.kubeconfig();
    let budget = json!({"per_target": "100/1h", "per_rule": "100/1h", "global": "3/1h"});
    let settings = settings()
        .kubernetes(kubeconfig.path(), "5s")
        .with(
            "remediation",
            json!({"namespaces": {"allow": ["prod"]}, "budget": budget}),
        )
        .rule(
            rule("scale")
                .matching(r#"alertname="HighMemoryUsage""#)
                .remediate(step(
                    "scale_up",
                    json!({"namespace": "prod", "deployment": "{{ labels.deployment }}"}),
                )),
        );
    let first = TestApp::builder().settings(&settings).spawn().await;
    let second = TestApp::builder()
        .settings(&settings)
        .database(&first.database_url)
        .spawn()
        .await;
    // Decisions are lined up: while this transaction holds the table in SHARE mode, every
    // decision can count the budget but none can record itself. Without a lock covering the
    // budget, all of them would see it untouched and act.
    let blocker = first.sql().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE remediations IN SHARE MODE")
        .await
        .unwrap();
    // Two groups of 25 alerts, one to each replica at once: each group's 25 remediation
    // timers are scheduled in one transaction and claimed together.
    let posts = [&first, &second].into_iter().enumerate().map(|(g, app)| {
        let alerts: Vec<BTreeMap<String, String>> = (0..25)
            .map(|i| {
                BTreeMap::from([
                    ("alertname".to_owned(), "HighMemoryUsage".to_owned()),
                    ("deployment".to_owned(), format!("web-{g}-{i}")),
                ])
            })
            .collect();
        let payload = alerts_with_labels(&format!("g{g}"), &alerts, 1 + g * 25);
        async move { app.post_webhook(&payload).await.status() }
    });
    for status in futures_util::future::join_all(posts).await {
        assert_eq!(status, 200);
    }
    let waiting = "SELECT count(*) FROM pg_stat_activity
                    WHERE wait_event_type = 'Lock' AND datname = current_database()";
    let started = std::time::Instant::now();
    while first.count(waiting).await < 10 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    blocker.batch_execute("COMMIT").await.unwrap();
    let results = results(&first, 50).await;
    let acted = first.count("SELECT count(*) FROM remediations WHERE acted").await;
    assert_eq!(acted, 3, "{results:#?}");
    let over_budget = results
        .values()
        .filter(|(result, _)| result == "skipped_budget")
        .count();
    assert_eq!(over_budget, 47);
}
