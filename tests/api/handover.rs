//! A remediation ladder that hands over early says what it tried on every channel: Slack's
//! headline, PagerDuty's summary and `custom_details.remediation_tried`, and the webhook's
//! `remediation_tried`, over real HTTP and Postgres with the fake Kubernetes API server.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    fake_kube::FakeKube,
    firing_alert,
    settings::{pagerduty, rollout_restart, rule, scale_up, settings, slack, webhook, Part},
    sink::{Received, Reply, Sink},
    TestApp,
};

const NS: &str = "shop";
const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    _kube: FakeKube,
    _kubeconfig: tempfile::NamedTempFile,
    app: TestApp,
    sink: Sink,
}

/// Escalation (due in an hour) goes to PagerDuty, a webhook and Slack, so that only a
/// handover brings it within a test's wait.
async fn setup() -> Setup {
    let kube = FakeKube::start().await;
    kube.add_deployment(NS, "web", 1, &[("app", "web")]);
    let kubeconfig = kube.kubeconfig();
    let sink = Sink::start(1).await;
    sink.set_default(
        "/pagerduty",
        Reply::status(202).with_body(r#"{"status":"success"}"#),
    );
    let checked = |step: Part| step.with("cooldown", "0s").with("verify_within", "1s");
    let settings = settings()
        .with("dry_run", false)
        .kubernetes(kubeconfig.path(), "5s")
        .notifier("slack", slack(&sink.url("/slack")))
        .notifier("pagerduty", pagerduty(&sink.url("/pagerduty"), "routing-key-1"))
        .notifier("hook", webhook(&sink.url("/hook")))
        .with(
            "remediation",
            json!({"namespaces": {"allow": [NS]}, "budget": {"per_target": "10/1h"}}),
        )
        .rule(
            rule("ladder")
                .matching(r#"alertname="MemoryLeak""#)
                .escalate("1h", &["pagerduty", "hook", "slack"])
                .ladder([checked(scale_up(1, 10)), checked(rollout_restart())]),
        )
        .rule(
            rule("plain")
                .matching(r#"alertname="Slow""#)
                .escalate("1h", &["pagerduty", "hook"]),
        )
        .with("engine", json!({"request_timeout": "2s"}));
    let app = TestApp::builder().settings(&settings).spawn().await;
    Setup {
        _kube: kube,
        _kubeconfig: kubeconfig,
        app,
        sink,
    }
}

async fn fire(app: &TestApp, alertname: &str, fingerprint: &str, deployment: &str) -> i64 {
    let labels = json!({"namespace": NS, "deployment": deployment});
    let mut payload = firing_alert(fingerprint, alertname, fingerprint, labels);
    payload["commonLabels"]["alertname"] = json!(alertname);
    payload["alerts"][0]["annotations"] = json!({"summary": "memory grows without bound"});
    app.post_for_incident(&payload).await
}

/// The one message that reached `path`.
async fn the_one(sink: &Sink, path: &str) -> Received {
    let received = sink.wait_for(path, 1, WAIT).await;
    assert_eq!(received.len(), 1, "{received:?}");
    received[0].clone()
}

fn step(action: &str, target: &str, result: &str, verification: &str) -> Value {
    json!({"action": action, "target": target, "result": result, "verification": verification})
}

#[tokio::test]
async fn a_ladder_that_ran_out_tells_pagerduty_and_the_webhook_each_step_it_tried() {
    let s = setup().await;
    fire(&s.app, "MemoryLeak", "00000000000000d1", "web").await;

    let page = the_one(&s.sink, "/pagerduty").await.body;
    let target = "deployment/shop/web";
    let tried = json!([
        step("scale_up", target, "success", "not_fixed"),
        step("rollout_restart", target, "success", "not_fixed"),
    ]);
    assert_eq!(page["event_action"], "trigger", "{page}");
    assert_eq!(
        page["payload"]["custom_details"]["remediation_tried"], tried,
        "{page}"
    );
    let said = "automatic remediation did not fix it: scale_up (success, not fixed), \
                rollout_restart (success, not fixed)";
    let summary = page["payload"]["summary"].as_str().unwrap();
    assert_eq!(
        summary,
        format!("MemoryLeak: memory grows without bound; {said}"),
        "{page}"
    );

    let hook = the_one(&s.sink, "/hook").await.body;
    assert_eq!(hook["event"], "escalation", "{hook}");
    assert_eq!(hook["remediation_tried"], tried, "{hook}");
    // Slack keeps its headline.
    let slack = the_one(&s.sink, "/slack").await.text;
    assert!(
        slack.contains("[ESCALATION 1]") && slack.contains(said),
        "{slack}"
    );
}

#[tokio::test]
async fn a_step_that_failed_at_once_is_what_pagerduty_and_the_webhook_hear_was_tried() {
    let s = setup().await;
    // No such Deployment: the first step fails and people take over at once.
    fire(&s.app, "MemoryLeak", "00000000000000d2", "gone").await;

    let tried = json!([step("scale_up", "deployment/shop/gone", "failure", "none")]);
    let page = the_one(&s.sink, "/pagerduty").await.body;
    assert_eq!(
        page["payload"]["custom_details"]["remediation_tried"], tried,
        "{page}"
    );
    let summary = page["payload"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("MemoryLeak: memory grows without bound; "),
        "{summary}"
    );
    assert!(
        summary.ends_with("automatic remediation did not fix it: scale_up (failure)"),
        "{summary}"
    );
    let hook = the_one(&s.sink, "/hook").await.body;
    assert_eq!(hook["remediation_tried"], tried, "{hook}");
}

#[tokio::test]
async fn an_escalation_not_handed_over_carries_no_remediation_tried() {
    let s = setup().await;
    let id = fire(&s.app, "Slow", "00000000000000d3", "web").await;
    s.app
        .sql()
        .await
        .execute(
            "UPDATE timers SET due_at = now() WHERE incident_id = $1 AND kind = 'escalation'",
            &[&id],
        )
        .await
        .unwrap();
    s.app
        .sql()
        .await
        .batch_execute("NOTIFY medic_timers")
        .await
        .unwrap();

    let page = the_one(&s.sink, "/pagerduty").await.body;
    assert_eq!(
        page["payload"]["summary"], "Slow: memory grows without bound",
        "{page}"
    );
    assert!(
        page["payload"]["custom_details"]
            .get("remediation_tried")
            .is_none(),
        "{page}"
    );
    let hook = the_one(&s.sink, "/hook").await.body;
    assert!(hook.get("remediation_tried").is_none(), "{hook}");
}

#[tokio::test]
async fn a_handover_stored_with_only_its_text_still_says_what_was_tried() {
    let s = setup().await;
    let id = fire(&s.app, "Slow", "00000000000000d4", "web").await;
    // As a previous version wrote it: the text alone.
    let said = "automatic remediation did not fix it: restart_pods (skipped_pdb)";
    s.app
        .sql()
        .await
        .execute(
            "UPDATE timers SET due_at = now(), payload = jsonb_build_object('handover', $2::text)
              WHERE incident_id = $1 AND kind = 'escalation'",
            &[&id, &said],
        )
        .await
        .unwrap();
    s.app
        .sql()
        .await
        .batch_execute("NOTIFY medic_timers")
        .await
        .unwrap();

    let page = the_one(&s.sink, "/pagerduty").await.body;
    assert_eq!(
        page["payload"]["summary"],
        format!("Slow: memory grows without bound; {said}").as_str(),
        "{page}"
    );
    // The steps are not known: no list is better than a made-up one.
    assert!(
        page["payload"]["custom_details"]
            .get("remediation_tried")
            .is_none(),
        "{page}"
    );
    let hook = the_one(&s.sink, "/hook").await.body;
    assert!(hook["headline"].as_str().unwrap().ends_with(said), "{hook}");
    assert!(hook.get("remediation_tried").is_none(), "{hook}");
}
