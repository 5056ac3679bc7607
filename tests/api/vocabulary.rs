//! Words shared by Rust and SQL: the database accepts exactly the words the enums write.

use std::collections::BTreeSet;

use medic::domain::{
    Act, Auth, Channel, HeartbeatState, RemediationResult, RuleMode, Surface, TimerKind, TimerOutcome,
    Verification,
};

use crate::helpers::TestApp;

/// The quoted words of a CHECK constraint, e.g. `CHECK (result IN ('a', 'b'))`.
async fn allowed(app: &TestApp, constraint: &str) -> BTreeSet<String> {
    let client = app.sql().await;
    let definition: String = client
        .query_one(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1",
            &[&constraint],
        )
        .await
        .unwrap_or_else(|e| panic!("{constraint}: {e}"))
        .get(0);
    definition
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn words(words: impl IntoIterator<Item = &'static str>) -> BTreeSet<String> {
    words.into_iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn the_schema_accepts_exactly_the_results_and_kinds_medic_writes() {
    let app = TestApp::builder().spawn().await;

    let results = words(RemediationResult::ALL.map(RemediationResult::as_str));
    assert_eq!(allowed(&app, "remediations_result_known").await, results);

    let outcomes = [
        TimerOutcome::Sent,
        TimerOutcome::Retry { delay_ms: 0 },
        TimerOutcome::Failed,
        TimerOutcome::GaveUp,
        TimerOutcome::Cancelled,
        TimerOutcome::Requeue { delay_ms: 0 },
        TimerOutcome::Muted {
            delay_ms: 0,
            window: 0,
        },
    ];
    let attempts = words(
        outcomes
            .into_iter()
            .filter(|o| o.is_attempt())
            .map(TimerOutcome::as_str),
    );
    assert_eq!(allowed(&app, "timer_attempts_result_known").await, attempts);

    let verifications = words(Verification::ALL.map(Verification::as_str));
    assert_eq!(
        allowed(&app, "remediations_verification_check").await,
        verifications
    );

    let modes = words(RuleMode::ALL.map(RuleMode::as_str));
    assert_eq!(allowed(&app, "remediations_mode_check").await, modes);

    let kinds = words(TimerKind::ALL.map(TimerKind::as_str));
    assert_eq!(allowed(&app, "timers_kind_check").await, kinds);

    let auth = words(Auth::ALL.map(Auth::as_str));
    assert_eq!(allowed(&app, "audit_events_via_check").await, auth);
    let acts = words(Act::ALL.map(Act::as_str));
    assert_eq!(allowed(&app, "audit_events_action_check").await, acts);
    let surfaces = words(Surface::ALL.map(Surface::as_str));
    assert_eq!(allowed(&app, "audit_events_channel_check").await, surfaces);
    assert_eq!(allowed(&app, "incidents_acked_via_check").await, surfaces);
    let channels = words(Channel::ALL.map(Channel::as_str));
    assert_eq!(allowed(&app, "timers_channel_check").await, channels);
    let states = words(HeartbeatState::ALL.map(HeartbeatState::as_str));
    assert_eq!(allowed(&app, "heartbeats_state_check").await, states);
}

#[tokio::test]
async fn a_result_the_enum_does_not_know_is_refused_by_the_database() {
    let app = TestApp::builder().spawn().await;
    let client = app.sql().await;
    let refused = client
        .batch_execute(
            "INSERT INTO alert_groups (receiver, group_key, group_labels) VALUES ('r', 'g', '{}');
             INSERT INTO incidents (group_id, status, common_labels, common_annotations, external_url)
                  SELECT id, 'firing', '{}', '{}', '' FROM alert_groups;
             INSERT INTO remediations (incident_id, rule, action, target, episode, result, acted, dry_run)
                  SELECT id, 'r', 'scale_up', 't', 'e', 'succeeded', false, false FROM incidents;",
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)
    );
}
