//! Remediation behind its guard rails, against real Postgres: `postgres_relieve_pool` on real
//! `pg_sleep` sessions, dry runs, cooldowns, namespaces, Kubernetes being unavailable, and two
//! medic instances receiving the same alert.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    eventually, firing_alert,
    settings::{rule, settings, slack, step, Part, TestSettings, ALERTS_NAMESPACE},
    sink::Sink,
    TestApp,
};

const WAIT: Duration = Duration::from_secs(15);

/// A login role of its own (roles are cluster-wide), and sessions of it running `pg_sleep`.
struct Sessions {
    role: String,
    url: String,
}

impl Sessions {
    async fn new(app: &TestApp) -> Sessions {
        let role = format!("app_{}", std::process::id() as u64 * 1000 + rand_suffix());
        app.sql()
            .await
            .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
            .await
            .unwrap();
        let url = app
            .database_url
            .replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
        Sessions { role, url }
    }

    /// Starts a session running `pg_sleep(60)`; the handle finishes when it is terminated.
    async fn sleep(&self) -> tokio::task::JoinHandle<Result<(), String>> {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        tokio::spawn(async move {
            client
                .batch_execute("SELECT pg_sleep(60)")
                .await
                .map_err(|e| e.to_string())
        })
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `postgres_relieve_pool` of database `app` once an hour, with these parameters besides.
fn relieve_pool(params: Value) -> Part {
    let mut all = json!({"database": "app", "threshold": "300ms"});
    all.as_object_mut()
        .unwrap()
        .extend(params.as_object().unwrap().clone());
    step("postgres_relieve_pool", all).with("cooldown", "1h")
}

/// The `pool` rule relieving `database_url`'s pool, sessions of `role` only, with `pool`; and the
/// `memory` rule scaling up in a medic without Kubernetes.
fn config(sink: &Sink, database_url: &str, role: &str, pool: Part) -> TestSettings {
    settings()
        .without_kubernetes()
        .notifier("slack", slack(&sink.url("/slack")))
        .notifier("oncall", slack(&sink.url("/oncall")))
        .with(
            "remediation",
            // The test's sleeping sessions are young; production keeps the 5s minimum.
            json!({"limits": {"min_query_age": "100ms"},
                   "databases": {"app": {"url": database_url, "users": [role]}}}),
        )
        .rule(
            rule("pool")
                .matching(r#"alertname="DatabaseConnectionPoolHigh""#)
                .notify(&["slack"])
                .remediate(pool),
        )
        .rule(
            rule("memory")
                .matching(r#"alertname="HighMemoryUsage""#)
                .notify(&["slack"])
                .escalate("1h", &["oncall"])
                .remediate(
                    step(
                        "scale_up",
                        json!({"namespace": ALERTS_NAMESPACE, "deployment": "app"}),
                    )
                    .with("escalate_on_failure", true),
                ),
        )
        .with("engine", json!({"lease": "10s", "request_timeout": "2s"}))
}

/// Relieves the pool by terminating at most two sessions.
fn terminate_two() -> Part {
    relieve_pool(json!({"max_terminations": 2}))
}

/// Waits until the incident has `n` finished remediations, and returns them.
async fn remediations(app: &TestApp, id: i64, n: usize) -> Vec<Value> {
    let what = format!("{n} remediations to finish");
    eventually(&what, WAIT, || async {
        let incident = app.incident(id).await;
        let done: Vec<Value> = incident["remediations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !r["finished_at"].is_null())
            .cloned()
            .collect();
        if done.len() >= n {
            Ok(done)
        } else {
            Err(incident)
        }
    })
    .await
}

async fn active_sleeps(app: &TestApp, role: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}' AND query LIKE '%pg_sleep%' AND state = 'active'"
    ))
    .await
}

#[tokio::test]
async fn relieve_pool_terminates_the_oldest_long_queries_of_allowed_users_only() {
    let sink = Sink::start(1).await;
    let probe = TestApp::builder().spawn().await;
    let allowed = Sessions::new(&probe).await;
    let other = Sessions::new(&probe).await;
    let app = TestApp::builder()
        .settings(&config(
            &sink,
            &probe.database_url,
            &allowed.role,
            terminate_two(),
        ))
        .spawn()
        .await;
    let sleeping = [
        allowed.sleep().await,
        allowed.sleep().await,
        allowed.sleep().await,
    ];
    let bystander = other.sleep().await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    let id = app
        .post_for_incident(&firing_alert(
            "pool",
            "DatabaseConnectionPoolHigh",
            "00000000000000a1",
            json!({}),
        ))
        .await;
    let done = remediations(&app, id, 1).await;
    assert_eq!(done[0]["result"], "success", "{done:?}");
    assert_eq!(done[0]["detail"]["terminated"].as_array().unwrap().len(), 2);
    assert_eq!(
        active_sleeps(&app, &allowed.role).await,
        1,
        "max_terminations is 2"
    );
    assert_eq!(
        active_sleeps(&app, &other.role).await,
        1,
        "another user's query was terminated"
    );
    let mut terminated = 0;
    for handle in sleeping {
        if tokio::time::timeout(Duration::from_millis(500), handle)
            .await
            .is_ok()
        {
            terminated += 1;
        }
    }
    assert_eq!(terminated, 2);
    drop(bystander);

    let report = sink.wait_for("/slack", 2, WAIT).await;
    let text = report[1].body["text"].as_str().unwrap();
    assert!(
        text.contains("[REMEDIATION SUCCESS]") && text.contains("terminated 2 backends"),
        "{text}"
    );
    let counted = r#"medic_remediations_total{action="postgres_relieve_pool",result="success"}"#;
    assert_eq!(app.metric(counted).await, 1.0);
}

#[tokio::test]
async fn a_dry_run_plans_and_records_but_terminates_nothing() {
    let sink = Sink::start(1).await;
    let probe = TestApp::builder().spawn().await;
    let allowed = Sessions::new(&probe).await;
    let app = TestApp::builder()
        .settings(&config(
            &sink,
            &probe.database_url,
            &allowed.role,
            terminate_two().with("dry_run", true),
        ))
        .spawn()
        .await;
    let _sleeping = allowed.sleep().await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    let id = app
        .post_for_incident(&firing_alert(
            "dry",
            "DatabaseConnectionPoolHigh",
            "00000000000000b1",
            json!({}),
        ))
        .await;
    let done = remediations(&app, id, 1).await;
    assert_eq!(done[0]["result"], "dry_run");
    assert_eq!(done[0]["dry_run"], true);
    assert!(
        done[0]["summary"].as_str().unwrap().contains("would terminate 1"),
        "{done:?}"
    );
    assert_eq!(
        active_sleeps(&app, &allowed.role).await,
        1,
        "a dry run terminated a query"
    );
}

#[tokio::test]
async fn a_second_alert_on_the_same_target_within_the_cooldown_is_skipped() {
    let sink = Sink::start(1).await;
    let probe = TestApp::builder().spawn().await;
    let allowed = Sessions::new(&probe).await;
    let app = TestApp::builder()
        .settings(&config(
            &sink,
            &probe.database_url,
            &allowed.role,
            terminate_two(),
        ))
        .spawn()
        .await;

    let first = app
        .post_for_incident(&firing_alert(
            "a",
            "DatabaseConnectionPoolHigh",
            "00000000000000c1",
            json!({}),
        ))
        .await;
    assert_eq!(remediations(&app, first, 1).await[0]["result"], "skipped_noop");
    let _sleeping = allowed.sleep().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = app
        .post_for_incident(&firing_alert(
            "b",
            "DatabaseConnectionPoolHigh",
            "00000000000000c2",
            json!({}),
        ))
        .await;
    let second = remediations(&app, second, 1).await;
    assert_eq!(
        second[0]["result"], "success",
        "nothing was done the first time, so no cooldown"
    );

    let _again = allowed.sleep().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let third = app
        .post_for_incident(&firing_alert(
            "c",
            "DatabaseConnectionPoolHigh",
            "00000000000000c3",
            json!({}),
        ))
        .await;
    assert_eq!(
        remediations(&app, third, 1).await[0]["result"],
        "skipped_cooldown"
    );
    assert_eq!(active_sleeps(&app, &allowed.role).await, 1);
    let skipped = r#"medic_remediations_total{action="postgres_relieve_pool",result="skipped_cooldown"}"#;
    assert_eq!(app.metric(skipped).await, 1.0);
}

#[tokio::test]
async fn a_denied_namespace_is_skipped_and_unavailable_kubernetes_fails_and_escalates() {
    let sink = Sink::start(1).await;
    let probe = TestApp::builder().spawn().await;
    let app = TestApp::builder()
        .settings(&config(&sink, &probe.database_url, "nobody", terminate_two()))
        .spawn()
        .await;

    let denied = app
        .post_for_incident(&firing_alert(
            "ks",
            "HighMemoryUsage",
            "00000000000000d1",
            json!({"namespace": "kube-system"}),
        ))
        .await;
    let done = remediations(&app, denied, 1).await;
    assert_eq!(done[0]["result"], "skipped_namespace", "{done:?}");

    let failing = app
        .post_for_incident(&firing_alert(
            "prod",
            "HighMemoryUsage",
            "00000000000000d2",
            json!({"namespace": "prod"}),
        ))
        .await;
    let done = remediations(&app, failing, 1).await;
    assert_eq!(done[0]["result"], "failure");
    assert!(
        done[0]["summary"]
            .as_str()
            .unwrap()
            .contains("Kubernetes is not available"),
        "{done:?}"
    );
    // escalate_on_failure: the step due in an hour goes out now (once per incident).
    let escalated = sink.wait_for("/oncall", 2, WAIT).await;
    assert!(escalated
        .iter()
        .all(|e| e.body["text"].as_str().unwrap().contains("[ESCALATION 1]")));
}

#[tokio::test]
async fn two_medic_instances_receiving_the_same_alert_act_once() {
    let sink = Sink::start(1).await;
    let probe = TestApp::builder().spawn().await;
    let allowed = Sessions::new(&probe).await;
    let settings = config(&sink, &probe.database_url, &allowed.role, terminate_two());
    let first = TestApp::builder().settings(&settings).spawn().await;
    let second = TestApp::builder()
        .settings(&settings)
        .database(&first.database_url)
        .spawn()
        .await;
    let sleeping = [
        allowed.sleep().await,
        allowed.sleep().await,
        allowed.sleep().await,
    ];
    tokio::time::sleep(Duration::from_millis(600)).await;

    let payload = firing_alert("ha", "DatabaseConnectionPoolHigh", "00000000000000e1", json!({}));
    let (a, b) = tokio::join!(
        first.post_for_incident(&payload),
        second.post_for_incident(&payload)
    );
    assert_eq!(a, b);
    let done = remediations(&first, a, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        first.count("SELECT count(*) FROM remediations").await,
        1,
        "{done:?}"
    );
    assert_eq!(active_sleeps(&first, &allowed.role).await, 1, "acted twice");
    drop(sleeping);
}

#[tokio::test]
async fn relieve_pool_also_raises_the_pool_size_variable_up_to_its_cap() {
    use crate::helpers::fake_kube::{FakeKube, TOKEN};
    let kube = FakeKube::start().await;
    kube.add_deployment("prod", "app", 1, &[("app", "app")]);
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "DB_POOL_MAX", "value": "18"}]}]}}}});
    let response = reqwest::Client::new()
        .patch(format!(
            "{}/apis/apps/v1/namespaces/prod/deployments/app",
            kube.url()
        ))
        .bearer_auth(TOKEN)
        .header("content-type", "application/strategic-merge-patch+json")
        .body(patch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let kubeconfig = kube.kubeconfig();
    let sink = Sink::start(1).await;
    let probe = TestApp::builder().spawn().await;
    let allowed = Sessions::new(&probe).await;
    let raise = json!({"namespace": "prod", "deployment": "app", "env": "DB_POOL_MAX", "pool_step": 5, "pool_max": 20});
    let settings = config(&sink, &probe.database_url, &allowed.role, relieve_pool(raise)).with(
        "kubernetes",
        json!({"kubeconfig": kubeconfig.path().display().to_string()}),
    );
    let app = TestApp::builder().settings(&settings).spawn().await;
    let _sleeping = allowed.sleep().await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    let id = app
        .post_for_incident(&firing_alert(
            "pool-env",
            "DatabaseConnectionPoolHigh",
            "00000000000000f1",
            json!({}),
        ))
        .await;
    let done = remediations(&app, id, 1).await;
    assert_eq!(done[0]["result"], "success", "{done:?}");
    assert!(
        done[0]["summary"]
            .as_str()
            .unwrap()
            .contains("DB_POOL_MAX 18 → 20"),
        "{done:?}"
    );
    let deployment = kube.deployment("prod", "app").unwrap();
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env[0]["value"], "20", "{env}");
    assert_eq!(active_sleeps(&app, &allowed.role).await, 0);
}
