//! Slack's buttons: signed clicks acting as the mapped medic user, approving and rejecting
//! requests for approval, and a click replayed to any replica refused.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::setup::{
    acknowledged_by, app, interaction, root_posts, sent, two_way, with_slack_app, SIGNING_SECRET, WAIT,
};
use crate::helpers::sink::{Sink, SLACK_ROOT_TS};
use crate::helpers::{
    eventually, firing_alert,
    settings::{rule, step},
    shared_postgres, unique_name, TestApp,
};

#[tokio::test]
async fn slack_buttons_act_as_the_mapped_medic_user_and_refuse_everyone_else() {
    let slack = Sink::slack_web_api().await;
    let app = app(&slack).await;
    let id = app
        .post_for_incident(&firing_alert("g5", "D", "00000000000000a5", json!({})))
        .await;
    slack.wait_for("/api/chat.postMessage", 1, WAIT).await;
    let value = id.to_string();

    for (request, why) in [
        (
            interaction(&app, "UALICE", "medic_ack", &value, "wrong-secret", 0),
            "wrong signature",
        ),
        (
            interaction(&app, "UALICE", "medic_ack", &value, SIGNING_SECRET, -400),
            "stale timestamp",
        ),
        (
            interaction(&app, "UALICE", "medic_ack", &value, SIGNING_SECRET, 400),
            "future timestamp",
        ),
    ] {
        assert_eq!(request.send().await.unwrap().status(), 401, "{why}");
    }
    let unsigned = app
        .client
        .post(format!("{}/integrations/slack/interactions", app.address))
        .body("payload=%7B%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(acknowledged_by(&app, id).await.is_null());

    // Unknown to medic, or only a viewer: answered 200, told why, nothing changes.
    for (user, why) in [
        ("UNOBODY", "does not know your Slack user"),
        ("UVERA", "needs responder"),
    ] {
        let before = slack.received_at("/api/chat.postEphemeral").len();
        let started = Instant::now();
        let answer = interaction(&app, user, "medic_ack", &value, SIGNING_SECRET, 0)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "within Slack's 3 seconds"
        );
        let told = slack.wait_for("/api/chat.postEphemeral", before + 1, WAIT).await;
        let told = &told[before].body;
        assert_eq!(told["user"], user);
        assert!(told["text"].as_str().unwrap().contains(why), "{told}");
        assert!(acknowledged_by(&app, id).await.is_null());
    }

    let answer = interaction(&app, "UALICE", "medic_ack", &value, SIGNING_SECRET, 0)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let ack = eventually("the acknowledgement from Slack", WAIT, || async {
        let ack = acknowledged_by(&app, id).await;
        (!ack.is_null()).then_some(ack)
    })
    .await;
    assert_eq!(ack["by"], "alice");
    assert_eq!(ack["via"], "slack");
    // Counted as any acknowledgement is: the pending escalation it stopped.
    app.metric_becomes("medic_timers_cancelled_total", 1.0, WAIT)
        .await;
    let incident = app.incident(id).await;
    let event = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "acknowledged")
        .cloned()
        .unwrap();
    assert_eq!(event["via"], "slack");
    assert_eq!(event["by"], "alice");
    // The message is updated to say who.
    let updates = slack.wait_for("/api/chat.update", 1, WAIT).await;
    assert!(updates[0].body["text"]
        .as_str()
        .unwrap()
        .contains("alice via slack"));
}

#[tokio::test]
async fn approve_and_reject_buttons_decide_requests_for_approval() {
    let slack = Sink::slack_web_api().await;
    let database = shared_postgres().create_database(&unique_name()).await;
    let remediation = json!({
        "limits": {"min_query_age": "100ms"},
        "databases": {"app": {"url": database, "users": ["nobody_here"]}},
    });
    // One rule, whose step needs approval.
    let settings = with_slack_app(&slack)
        .without_kubernetes()
        .rule(
            rule("pool").notify(&["slack-app"]).remediate(
                step(
                    "postgres_relieve_pool",
                    json!({"database": "app", "threshold": "1s"}),
                )
                .with("approval", "required"),
            ),
        )
        .with("remediation", remediation);
    let app = TestApp::builder()
        .settings(&settings)
        .database(&database)
        .spawn()
        .await;
    let id = app
        .post_for_incident(&firing_alert("g6", "PoolFull", "00000000000000a6", json!({})))
        .await;
    let request = first_awaiting_approval(&app).await;
    assert_eq!(request["incident_id"], id);
    let rid = request["id"].to_string();
    // The request reached the thread with its buttons.
    let asked = sent(
        &slack,
        "/api/chat.postMessage",
        "the request in the thread",
        |b| b["text"].as_str().is_some_and(|t| t.contains("APPROVAL NEEDED")),
    )
    .await;
    assert_eq!(asked["thread_ts"], SLACK_ROOT_TS);
    let elements = &asked["blocks"][1]["elements"];
    assert_eq!(elements[0]["action_id"], "medic_approve");
    assert_eq!(elements[0]["value"], rid);
    assert_eq!(elements[1]["action_id"], "medic_reject");

    // A viewer cannot approve; alice can.
    let before = slack.received_at("/api/chat.postEphemeral").len();
    interaction(&app, "UVERA", "medic_approve", &rid, SIGNING_SECRET, 0)
        .send()
        .await
        .unwrap();
    slack.wait_for("/api/chat.postEphemeral", before + 1, WAIT).await;
    interaction(&app, "UALICE", "medic_approve", &rid, SIGNING_SECRET, 0)
        .send()
        .await
        .unwrap();
    let r = eventually("the approved step to finish", WAIT, || async {
        let incident = app.incident(id).await;
        let r = incident["remediations"][0].clone();
        let decided = !r["finished_at"].is_null() && r["result"] != "awaiting_approval";
        decided.then_some(r).ok_or(incident)
    })
    .await;
    assert_eq!(r["approval"]["decided_by"], "alice");
    assert_eq!(r["approval"]["approved"], true);
    assert_ne!(r["result"], "skipped_unapproved");
    // The step's result is a reply in the thread (a verification is reported the same way);
    // the message itself shows the last remediation.
    let reports = eventually("the result in the thread", WAIT, || async {
        let reports: Vec<String> = slack
            .received_at("/api/chat.postMessage")
            .into_iter()
            .filter(|r| r.body["thread_ts"] == SLACK_ROOT_TS)
            .filter_map(|r| r.body["text"].as_str().map(str::to_owned))
            .filter(|t| t.starts_with("[REMEDIATION "))
            .collect();
        (!reports.is_empty()).then_some(reports)
    })
    .await;
    assert!(reports[0].contains("postgres_relieve_pool"), "{reports:?}");
    let update = sent(
        &slack,
        "/api/chat.update",
        "the message updated with the remediation",
        |b| {
            b["blocks"]
                .to_string()
                .contains("Last remediation: postgres_relieve_pool")
        },
    )
    .await;
    assert_eq!(update["ts"], SLACK_ROOT_TS);
    assert_eq!(root_posts(&slack).len(), 1, "one message per incident");
}

/// The first request for approval, once there is one.
async fn first_awaiting_approval(app: &TestApp) -> Value {
    eventually("a request for approval", WAIT, || async {
        let body = app.get_json("/api/v1/remediations?state=awaiting_approval").await;
        body["remediations"].get(0).cloned().ok_or(body)
    })
    .await
}

#[tokio::test]
async fn a_replayed_slack_click_is_refused_by_every_replica() {
    let slack = Sink::slack_web_api().await;
    let app = app(&slack).await;
    let other = TestApp::builder()
        .settings(&two_way(&slack))
        .database(&app.database_url)
        .spawn()
        .await;
    let id = app
        .post_for_incident(&firing_alert("g-replay", "R", "00000000000000c1", json!({})))
        .await;
    let click = interaction(
        &app,
        "UALICE",
        "medic_silence",
        &format!("{id}:1h"),
        SIGNING_SECRET,
        0,
    );
    let replay = click.try_clone().unwrap().build().unwrap();
    assert_eq!(click.send().await.unwrap().status(), 200);
    assert_eq!(
        app.client.execute(replay).await.unwrap().status(),
        401,
        "replayed to the same replica"
    );
    // Another signed click, sent to both replicas.
    let again = interaction(&app, "UALICE", "medic_ack", &id.to_string(), SIGNING_SECRET, 0)
        .build()
        .unwrap();
    let mut to_other = again.try_clone().unwrap();
    *to_other.url_mut() = format!("{}/integrations/slack/interactions", other.address)
        .parse()
        .unwrap();
    let first = app.client.execute(again).await.unwrap().status();
    let second = app.client.execute(to_other).await.unwrap().status();
    assert_eq!((first, second.as_u16()), (reqwest::StatusCode::OK, 401));
}
