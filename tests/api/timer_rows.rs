//! Timers across a rolling update: rows the previous version wrote (its SQL, copied here) are
//! claimed as their work by this one, and the rows this version writes hold what the previous
//! version wrote, so that a replica not yet updated reads them as before.

use chrono::{DateTime, Utc};
use medic::{
    domain::{
        Action, ApprovalQuestion, Handover, RemediationReport, RemediationResult, TimerKind, TimerWork,
    },
    store::{remediations::VerifyStep, timers::Claimed, Store},
};
use serde_json::json;

use crate::helpers::{shared_postgres, store, unique_name};

/// A migrated database with one firing incident, announced to `slack` (done, so never
/// claimed here), and three steps of rule `r`'s ladder: one waiting for approval, one running
/// and one being verified.
async fn incident_with_remediations() -> (Store, tokio_postgres::Client) {
    let url = shared_postgres().create_database(&unique_name()).await;
    let store = store(&url);
    store.migrate().await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "INSERT INTO alert_groups (receiver, group_key, group_labels) VALUES ('r', 'g', '{}');
             INSERT INTO incidents (group_id, status, common_labels, common_annotations, external_url)
                  SELECT id, 'firing', '{}', '{}', '' FROM alert_groups;
             INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at, state)
                  SELECT id, 'opened', 'r', 0, 'slack', 'slack', now(), now(), 'done' FROM incidents;
             INSERT INTO remediations (incident_id, rule, step, action, target, episode, result, acted,
                                       dry_run, summary, plan, expires_at, verification)
                  SELECT i.id, 'r', s.step, s.action, 'deployment/shop/web', 'abc@2026-11-26T10:00:00Z',
                         s.result, s.result = 'success', false, s.summary, s.plan, s.expires_at,
                         s.verification
                    FROM incidents i,
                         (VALUES (1, 'scale_up', 'awaiting_approval', '', 'would scale 2 → 3',
                                  now() + interval '15 minutes', 'none'),
                                 (2, 'rollout_restart', 'running', '', NULL, NULL, 'none'),
                                 (3, 'restart_pods', 'success', 'restarted 1 pod', NULL, NULL, 'pending'))
                         AS s (step, action, result, summary, plan, expires_at, verification);",
        )
        .await
        .unwrap();
    (store, client)
}

/// The id of step `step`'s remediation.
async fn remediation(client: &tokio_postgres::Client, step: i32) -> i64 {
    client
        .query_one("SELECT id FROM remediations WHERE step = $1", &[&step])
        .await
        .unwrap()
        .get(0)
}

/// Claims every due timer; each must read as work.
async fn claim(store: &Store) -> Vec<Claimed> {
    let claimed = store.claim_timers(100, 7, 60_000, 0).await.unwrap();
    claimed
        .into_iter()
        .map(|timer| timer.unwrap_or_else(|u| panic!("{:?} timer not read: {}", u.kind, u.reason)))
        .collect()
}

fn only(claimed: &[Claimed], kind: TimerKind) -> Vec<&TimerWork> {
    claimed
        .iter()
        .filter(|t| t.kind() == kind)
        .map(|t| &t.work)
        .collect()
}

#[tokio::test]
async fn timers_the_previous_version_wrote_are_claimed_as_their_work() {
    let (store, client) = incident_with_remediations().await;
    // The previous version's statements: a report (FINISH), a verification's report
    // (VERIFIED), a request for approval (REQUEST), an escalation handed over with only the
    // line, and a first step numbered 0 whose job has no annotations.
    client
        .batch_execute(
            r#"INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                                   subject, payload)
               SELECT d.incident_id, 'remediated', d.rule, 0, 'slack', 'slack', now(), now(), d.id::text,
                      jsonb_build_object('action', d.action, 'target', d.target, 'result', d.result,
                                         'summary', d.summary)
                 FROM remediations d WHERE d.step = 3;
               INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                                   subject, payload)
               SELECT r.incident_id, 'remediated', r.rule, 0, 'slack', 'slack', now(), now(),
                      r.id::text || '/verify',
                      jsonb_build_object('action', r.action, 'target', r.target, 'result', 'not_fixed'::text,
                                         'summary', 'the alert still fires after verify_within')
                 FROM remediations r WHERE r.step = 3;
               INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                                   subject, payload)
               SELECT a.incident_id, 'approval', a.rule, 0, 'slack', 'slack', now(), now(), a.id::text,
                      jsonb_build_object('remediation_id', a.id, 'action', a.action, 'target', a.target,
                                         'plan', a.plan, 'expires_at', a.expires_at)
                 FROM remediations a WHERE a.step = 1;
               INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                                   payload)
               SELECT id, 'escalation', 'r', 1, 'pd', 'pagerduty', now(), now(),
                      jsonb_build_object('handover', 'automatic remediation did not fix it: scale_up (failure)')
                 FROM incidents;
               INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at,
                                   subject, payload)
               SELECT id, 'remediation', 'r', 0, 'scale_up', 'remediation', now(), now(),
                      'abc@2026-11-26T10:00:00Z',
                      '{"params": {"namespace": "shop", "deployment": "web"}, "error": null,
                        "fingerprint": "abc", "starts_at": "2026-11-26T10:00:00Z",
                        "labels": {"alertname": "HighLatency"}}'
                 FROM incidents;"#,
        )
        .await
        .unwrap();
    let (approval_id, report_id) = (remediation(&client, 1).await, remediation(&client, 3).await);
    let expires_at: DateTime<Utc> = client
        .query_one("SELECT expires_at FROM remediations WHERE step = 1", &[])
        .await
        .unwrap()
        .get(0);

    let claimed = claim(&store).await;
    assert_eq!(claimed.len(), 5);

    let report = |verification, result: &str, summary: &str| TimerWork::Remediated {
        notifier: "slack".into(),
        report: RemediationReport {
            remediation_id: report_id,
            verification,
            action: "restart_pods".into(),
            target: "deployment/shop/web".into(),
            result: result.into(),
            summary: summary.into(),
        },
    };
    let reports = only(&claimed, TimerKind::Remediated);
    assert_eq!(reports.len(), 2);
    assert!(reports.contains(&&report(false, "success", "restarted 1 pod")));
    assert!(reports.contains(&&report(
        true,
        "not_fixed",
        "the alert still fires after verify_within"
    )));
    assert_eq!(
        only(&claimed, TimerKind::Approval),
        [&TimerWork::Approval {
            notifier: "slack".into(),
            question: ApprovalQuestion {
                remediation_id: approval_id,
                action: "scale_up".into(),
                target: "deployment/shop/web".into(),
                plan: "would scale 2 → 3".into(),
                expires_at: Some(expires_at),
            },
        }]
    );
    assert_eq!(
        only(&claimed, TimerKind::Escalation),
        [&TimerWork::Escalation {
            notifier: "pd".into(),
            step: 1,
            occurrence: 0,
            handover: Some(Handover {
                text: "automatic remediation did not fix it: scale_up (failure)".into(),
                tried: None,
            }),
        }]
    );
    let [TimerWork::Remediation(work)] = only(&claimed, TimerKind::Remediation)[..] else {
        panic!("one remediation")
    };
    assert_eq!(
        (work.action, work.step, work.episode.as_str()),
        (Action::ScaleUp, 0, "abc@2026-11-26T10:00:00Z")
    );
    assert_eq!(work.job.fingerprint, "abc");
    assert!(work.job.annotations.is_empty());
}

#[tokio::test]
async fn timers_this_version_writes_hold_what_the_previous_version_wrote() {
    let (store, client) = incident_with_remediations().await;
    let (asked, running) = (remediation(&client, 1).await, remediation(&client, 2).await);

    store
        .request_approval(asked, &json!({}), "would scale 2 → 3", "waiting for approval")
        .await
        .unwrap();
    store
        .finish_remediation(
            running,
            RemediationResult::Success,
            ("restarted", &json!({})),
            None,
            None,
        )
        .await
        .unwrap();
    // Nothing recorded the episode's alert: as resolved, with no hold, the step is fixed.
    let check = VerifyStep {
        incident_id: client
            .query_one("SELECT id FROM incidents", &[])
            .await
            .unwrap()
            .get(0),
        rule: "r",
        step: 3,
        episode: "abc@2026-11-26T10:00:00Z",
        fingerprint: "abc",
        starts_at: "2026-11-26T10:00:00Z".parse().unwrap(),
        next: None,
    };
    assert!(store.verify_step(&check).await.unwrap().is_some());

    // The previous version's statements built these payloads in SQL; the rows must hold the
    // same words (the approval's time may be spelled otherwise, but is the same instant).
    let same = |sql: &str| {
        let sql = sql.to_owned();
        let client = &client;
        async move { client.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let report = same(
        "SELECT count(*) FROM timers t JOIN remediations r ON t.subject = r.id::text
          WHERE t.kind = 'remediated' AND r.step = 2
            AND t.payload = jsonb_build_object('action', r.action, 'target', r.target, 'result', r.result,
                                               'summary', r.summary)",
    );
    assert_eq!(report.await, 1);
    let verified = same(
        "SELECT count(*) FROM timers t JOIN remediations r ON t.subject = r.id::text || '/verify'
          WHERE t.kind = 'remediated' AND r.step = 3
            AND t.payload = jsonb_build_object('action', r.action, 'target', r.target, 'result', 'fixed',
                   'summary', 'the alert resolved within verify_within and stayed resolved for hold')",
    );
    assert_eq!(verified.await, 1);
    let request = same(
        "SELECT count(*) FROM timers t JOIN remediations r ON t.subject = r.id::text
          WHERE t.kind = 'approval' AND r.step = 1
            AND t.payload - 'expires_at' = jsonb_build_object('remediation_id', r.id, 'action', r.action,
                                                              'target', r.target, 'plan', r.plan)
            AND (t.payload->>'expires_at')::timestamptz = r.expires_at",
    );
    assert_eq!(request.await, 1);

    // And this version reads them back.
    let claimed = claim(&store).await;
    let kinds: Vec<TimerKind> = claimed.iter().map(Claimed::kind).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(only(&claimed, TimerKind::Remediated).iter().any(|w| matches!(w,
        TimerWork::Remediated { report, .. } if report.verification && report.result == "fixed")));
}
