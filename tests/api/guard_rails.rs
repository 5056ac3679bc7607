//! The guard rails as Postgres decides them (`medic_decide_remediation`), shared by every
//! replica: budgets, flapping, one action per target, resolved and acknowledged alerts, and a
//! replica that died during an action.

use chrono::{DateTime, Utc};
use medic::{
    domain::{Action, RemediationDecision, RemediationResult, RuleMode},
    store::{
        remediations::{Intent, Limits},
        Store,
    },
};
use serde_json::json;

use crate::helpers::{notification, store, TestApp};

const HOUR_MS: i64 = 3_600_000;
const STARTS: &str = "2026-11-26T10:00:00Z";

fn limits() -> Limits {
    Limits {
        cooldown_ms: 0,
        per_target: (100, HOUR_MS),
        per_rule: (100, HOUR_MS),
        global: (100, HOUR_MS),
        flapping: (100, HOUR_MS),
        action_timeout_ms: HOUR_MS,
    }
}

/// A firing incident with one alert per fingerprint; returns its id.
async fn incident(app: &TestApp, group: &str, fingerprints: &[&str]) -> i64 {
    let alerts: Vec<(&str, &str, &str)> = fingerprints.iter().map(|f| (*f, "firing", STARTS)).collect();
    let response = app.post_webhook(&notification(group, "firing", &alerts)).await;
    response.json::<serde_json::Value>().await.unwrap()["incident_id"]
        .as_i64()
        .unwrap()
}

fn intent<'a>(
    incident_id: i64,
    target: &'a str,
    episode: &'a str,
    fingerprint: &'a str,
    limits: Limits,
) -> Intent<'a> {
    let starts_at: DateTime<Utc> = STARTS.parse().unwrap();
    Intent {
        incident_id,
        rule: "r",
        step: 1,
        action: Action::ScaleUp,
        target,
        episode,
        fingerprint,
        starts_at,
        skip: None,
        dry_run: false,
        approval: false,
        approval_timeout_ms: 900_000,
        limits,
        mode: RuleMode::Act,
    }
}

async fn decide(store: &Store, intent: &Intent<'_>) -> &'static str {
    store.decide_remediation(intent).await.unwrap().decision.as_str()
}

/// Decides, and if allowed, records the action as done.
async fn act(store: &Store, intent: &Intent<'_>) -> &'static str {
    let decision = store.decide_remediation(intent).await.unwrap();
    if decision.decision == RemediationDecision::Act {
        let id = decision.remediation_id.unwrap();
        store
            .finish_remediation(id, RemediationResult::Success, ("done", &json!({})), None, None)
            .await
            .unwrap();
    }
    decision.decision.as_str()
}

#[tokio::test]
async fn budgets_per_target_and_global_stop_further_actions() {
    let app = TestApp::builder().spawn().await;
    let store = store(&app.database_url);
    let id = incident(
        &app,
        "g",
        &[
            "00000000000000f1",
            "00000000000000f2",
            "00000000000000f3",
            "00000000000000f4",
        ],
    )
    .await;
    let budget = Limits {
        per_target: (2, HOUR_MS),
        global: (3, HOUR_MS),
        ..limits()
    };
    let a = intent(id, "deployment/ns/a", "e1", "00000000000000f1", budget);
    let a2 = intent(id, "deployment/ns/a", "e2", "00000000000000f2", budget);
    let a3 = intent(id, "deployment/ns/a", "e3", "00000000000000f3", budget);
    let b = intent(id, "deployment/ns/b", "e4", "00000000000000f4", budget);
    assert_eq!(act(&store, &a).await, "act");
    assert_eq!(act(&store, &a2).await, "act");
    assert_eq!(
        act(&store, &a3).await,
        "skipped_budget",
        "the target's budget is spent"
    );
    assert_eq!(act(&store, &b).await, "act", "another target has its own budget");
    let c = intent(id, "deployment/ns/c", "e5", "00000000000000f4", budget);
    assert_eq!(
        act(&store, &c).await,
        "skipped_budget",
        "the global budget is spent"
    );
}

#[tokio::test]
async fn a_replica_that_died_during_an_action_leaves_it_failed_not_repeated() {
    let app = TestApp::builder().spawn().await;
    let store = store(&app.database_url);
    let id = incident(&app, "g", &["00000000000000e1"]).await;
    let action = intent(id, "deployment/ns/a", "e1", "00000000000000e1", limits());
    assert_eq!(decide(&store, &action).await, "act");
    // Its timer's lease ran out while it still acts: the next replica waits.
    assert_eq!(decide(&store, &action).await, "busy");
    // The replica died before recording the outcome, and the action's time is up.
    let timed_out = Limits {
        action_timeout_ms: 0,
        ..limits()
    };
    let action = intent(id, "deployment/ns/a", "e1", "00000000000000e1", timed_out);
    assert_eq!(decide(&store, &action).await, "interrupted");
    assert_eq!(decide(&store, &action).await, "duplicate");
    let result: String = app
        .sql()
        .await
        .query_one("SELECT result FROM remediations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(result, "failure");
}

#[tokio::test]
async fn one_action_per_target_runs_at_a_time_and_each_episode_is_decided_once() {
    let app = TestApp::builder().spawn().await;
    let store = store(&app.database_url);
    let id = incident(&app, "g", &["00000000000000a1", "00000000000000a2"]).await;
    let first = intent(id, "deployment/ns/a", "e1", "00000000000000a1", limits());
    let second = intent(id, "deployment/ns/a", "e2", "00000000000000a2", limits());

    let started = store.decide_remediation(&first).await.unwrap();
    assert_eq!(started.decision, RemediationDecision::Act);
    assert_eq!(
        decide(&store, &second).await,
        "busy",
        "two actions on one target at once"
    );
    store
        .finish_remediation(
            started.remediation_id.unwrap(),
            RemediationResult::Success,
            ("done", &json!({})),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        decide(&store, &first).await,
        "duplicate",
        "an episode acted on twice"
    );
    assert_eq!(decide(&store, &second).await, "act");
}

#[tokio::test]
async fn flapping_resolved_and_acknowledged_alerts_are_not_acted_on() {
    let app = TestApp::builder().spawn().await;
    let store = store(&app.database_url);
    let id = incident(&app, "g", &["00000000000000b1"]).await;
    let flapping = Limits {
        flapping: (0, HOUR_MS),
        ..limits()
    };
    let starts_now = chrono::Utc::now().to_rfc3339();
    let response = app
        .post_webhook(&notification(
            "f",
            "firing",
            &[("00000000000000b9", "firing", &starts_now)],
        ))
        .await;
    let flapping_incident = response.json::<serde_json::Value>().await.unwrap()["incident_id"]
        .as_i64()
        .unwrap();
    let mut flap = intent(flapping_incident, "t/f", "f1", "00000000000000b9", flapping);
    flap.starts_at = starts_now.parse().unwrap();
    assert_eq!(decide(&store, &flap).await, "skipped_flapping");

    let unknown_episode = intent(id, "t/x", "x1", "00000000000000ff", limits());
    assert_eq!(decide(&store, &unknown_episode).await, "skipped_resolved");

    let acked = app.acknowledge(id, &json!({"by": "alice"})).await;
    assert_eq!(acked.status(), 200);
    let after_ack = intent(id, "t/a", "a1", "00000000000000b1", limits());
    assert_eq!(decide(&store, &after_ack).await, "skipped_acknowledged");

    let resolved = notification("g", "resolved", &[("00000000000000b1", "resolved", STARTS)]);
    assert_eq!(app.post_webhook(&resolved).await.status(), 200);
    let after_resolve = intent(id, "t/r", "r1", "00000000000000b1", limits());
    assert_eq!(decide(&store, &after_resolve).await, "skipped_resolved");
}

#[tokio::test]
async fn a_cooldown_counts_only_actions_that_may_have_changed_something() {
    let app = TestApp::builder().spawn().await;
    let store = store(&app.database_url);
    let id = incident(
        &app,
        "g",
        &["00000000000000c1", "00000000000000c2", "00000000000000c3"],
    )
    .await;
    let cooling = Limits {
        cooldown_ms: HOUR_MS,
        ..limits()
    };
    let first = intent(id, "t", "e1", "00000000000000c1", cooling);
    let noop = store.decide_remediation(&first).await.unwrap();
    store
        .finish_remediation(
            noop.remediation_id.unwrap(),
            RemediationResult::SkippedNoop,
            ("at the cap", &json!({})),
            None,
            None,
        )
        .await
        .unwrap();
    let second = intent(id, "t", "e2", "00000000000000c2", cooling);
    let acted = store.decide_remediation(&second).await.unwrap();
    assert_eq!(
        acted.decision,
        RemediationDecision::Act,
        "a no-op started the cooldown"
    );
    store
        .finish_remediation(
            acted.remediation_id.unwrap(),
            RemediationResult::Success,
            ("scaled", &json!({})),
            None,
            None,
        )
        .await
        .unwrap();
    let third = intent(id, "t", "e3", "00000000000000c3", cooling);
    assert_eq!(decide(&store, &third).await, "skipped_cooldown");
}
