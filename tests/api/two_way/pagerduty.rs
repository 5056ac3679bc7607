//! PagerDuty Webhooks v3 back into medic: signed events that acknowledge and resolve, bounded
//! signature headers, and the dedup keys medic sends.

use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

use super::setup::{acknowledged_by, app, users, PD_OLD_SECRET, PD_SECRET, WAIT};
use crate::helpers::sink::Sink;
use crate::helpers::{
    firing_alert,
    settings::{self, rule, settings},
    TestApp,
};

/// A PagerDuty v3 webhook, signed with these secrets (PagerDuty lists one per secret).
fn pagerduty(app: &TestApp, event: &Value, secrets: &[&str]) -> reqwest::RequestBuilder {
    let body = event.to_string();
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(body.as_bytes());
            format!("v1={}", hex::encode(mac.finalize().into_bytes()))
        })
        .collect();
    app.client
        .post(format!("{}/integrations/pagerduty", app.address))
        .header("Content-Type", "application/json")
        .header("X-PagerDuty-Signature", signatures.join(","))
        .body(body)
}

fn pd_event(kind: &str, key: &str, agent: &str) -> Value {
    json!({"event": {
        "id": "01DEN2S6HQ6ZAYDEKRAX3CD3IU",
        "event_type": kind,
        "resource_type": "incident",
        "occurred_at": "2026-11-30T10:00:00.000Z",
        "agent": {"id": agent, "type": "user_reference", "summary": "Pat Doe"},
        "data": {"id": "PGR0VU2", "type": "incident", "incident_key": key, "status": "acknowledged"},
    }})
}

#[tokio::test]
async fn pagerduty_webhooks_acknowledge_and_stop_escalation_when_signed() {
    let slack = Sink::slack_web_api().await;
    let app = app(&slack).await;
    let first = app
        .post_for_incident(&firing_alert("g7", "E", "00000000000000a7", json!({})))
        .await;
    let second = app
        .post_for_incident(&firing_alert("g8", "F", "00000000000000a8", json!({})))
        .await;

    let ack = pd_event(
        "incident.acknowledged",
        &format!("medic-incident-{first}"),
        "PALICE",
    );
    assert_eq!(
        pagerduty(&app, &ack, &["not-the-secret"])
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let unsigned = app
        .client
        .post(format!("{}/integrations/pagerduty", app.address))
        .json(&ack)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(acknowledged_by(&app, first).await.is_null());

    // During a rotation PagerDuty signs with both secrets; any known one will do.
    let answer = pagerduty(&app, &ack, &["rotated-away", PD_OLD_SECRET])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let acked = acknowledged_by(&app, first).await;
    assert_eq!(acked["by"], "alice");
    assert_eq!(acked["via"], "pagerduty");

    // Resolved in PagerDuty, by someone medic does not know: escalation and remediation stop.
    let resolved = pd_event(
        "incident.resolved",
        &format!("medic-incident-{second}"),
        "PUNKNOWN",
    );
    assert_eq!(
        pagerduty(&app, &resolved, &[PD_SECRET])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let incident = app.incident(second).await;
    assert_eq!(incident["acknowledgement"]["by"], "Pat Doe");
    assert_eq!(incident["acknowledgement"]["note"], "resolved in PagerDuty");
    let escalation = incident["timers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "escalation")
        .cloned()
        .unwrap();
    assert_eq!(escalation["state"], "cancelled", "{incident}");
    assert!(incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "resolve_elsewhere" && e["via"] == "pagerduty"));
    assert_eq!(
        incident["status"], "firing",
        "closes only when Alertmanager says so"
    );

    // Resolved in PagerDuty after it was acknowledged there (PagerDuty's usual order): said in
    // the timeline, once, however often PagerDuty sends it.
    let resolved_first = pd_event("incident.resolved", &format!("medic-incident-{first}"), "PALICE");
    for _ in 0..2 {
        let answer = pagerduty(&app, &resolved_first, &[PD_SECRET])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let timeline = app.incident(first).await["timeline"].clone();
    let said: Vec<&Value> = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "resolve_elsewhere")
        .collect();
    assert_eq!(said.len(), 1, "{timeline}");
    assert_eq!(said[0]["by"], "alice");
    assert_eq!(said[0]["via"], "pagerduty");
    // Each acknowledgement from PagerDuty counted the escalation it stopped.
    app.metric_becomes("medic_timers_cancelled_total", 2.0, WAIT)
        .await;

    // Another installation's incident, or an event medic does not act on: 200, ignored.
    for event in [
        pd_event("incident.acknowledged", "other-install-incident-1", "PALICE"),
        pd_event(
            "incident.priority_updated",
            &format!("medic-incident-{first}"),
            "PALICE",
        ),
    ] {
        let answer = pagerduty(&app, &event, &[PD_SECRET]).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        assert!(body["ignored"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn dedup_keys_carry_the_installation_name() {
    let slack = Sink::slack_web_api().await;
    let settings = settings()
        .users(users())
        .server("instance", "eu-west")
        .notifier("pd", settings::pagerduty(&slack.url("/pd"), "rk"))
        .rule(rule("all").notify(&["pd"]));
    let app = TestApp::builder().settings(&settings).spawn().await;
    let id = app
        .post_for_incident(&firing_alert("g9", "G", "00000000000000a9", json!({})))
        .await;
    let sent = slack.wait_for("/pd", 1, WAIT).await;
    assert_eq!(sent[0].body["dedup_key"], format!("eu-west-incident-{id}"));
}

#[tokio::test]
async fn pagerduty_signature_headers_are_bounded_before_any_mac_is_computed() {
    let slack = Sink::slack_web_api().await;
    let app = app(&slack).await;
    let id = app
        .post_for_incident(&firing_alert("g-pd", "P", "00000000000000c2", json!({})))
        .await;
    let event = pd_event("incident.acknowledged", &format!("medic-incident-{id}"), "PALICE");
    let right = {
        let request = pagerduty(&app, &event, &[PD_SECRET]).build().unwrap();
        request.headers()["X-PagerDuty-Signature"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let bogus = |n: usize| (0..n).map(|i| format!("v1={:064x}", i)).collect::<Vec<_>>();
    let send = |header: String| {
        app.client
            .post(format!("{}/integrations/pagerduty", app.address))
            .header("Content-Type", "application/json")
            .header("X-PagerDuty-Signature", header)
            .body(event.to_string())
            .send()
    };
    // The right signature behind ten others is not looked at: at most ten are read.
    let eleven = [bogus(10), vec![right.clone()]].concat().join(",");
    assert_eq!(send(eleven).await.unwrap().status(), 401);
    assert_eq!(send(bogus(1000).join(",")).await.unwrap().status(), 401);
    for malformed in ["v1=abc", "v2=00", &format!("{right},v1=zz"), &format!("{right}0")] {
        assert_eq!(
            send(malformed.to_owned()).await.unwrap().status(),
            401,
            "{malformed}"
        );
    }
    assert!(acknowledged_by(&app, id).await.is_null());
    let ten = [bogus(9), vec![right]].concat().join(",");
    assert_eq!(send(ten).await.unwrap().status(), 200);
    assert_eq!(acknowledged_by(&app, id).await["by"], "alice");
}
