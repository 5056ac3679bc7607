//! Silences made, extended and expired in a real Alertmanager 0.25, from the API and from Slack's
//! button.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
};

use serde_json::{json, Value};

use super::setup::{app, interaction, sent, two_way, SIGNING_SECRET, WAIT};
use crate::helpers::sink::{Sink, SLACK_ROOT_TS};
use crate::helpers::{eventually, firing_alert, TestApp};

/// A real Alertmanager 0.25 on a free port.
struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn alertmanager() -> Alertmanager {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, "route: {receiver: none}\nreceivers: [{name: none}]\n").unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-alertmanager (apt-get install prometheus-alertmanager)");
    let url = format!("http://127.0.0.1:{port}");
    eventually("Alertmanager to start", WAIT, || async {
        let ready = reqwest::get(format!("{url}/-/ready")).await;
        ready.is_ok_and(|r| r.status() == 200)
    })
    .await;
    Alertmanager {
        child,
        url,
        _dir: dir,
    }
}

async fn am_silences(am: &Alertmanager) -> Vec<Value> {
    reqwest::get(format!("{}/api/v2/silences", am.url))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

#[tokio::test]
async fn silences_are_made_and_expired_in_alertmanager_from_the_api_and_slack() {
    let am = alertmanager().await;
    let slack = Sink::slack_web_api().await;
    let settings = two_way(&slack).with("alertmanager", json!({"url": am.url}));
    let app = TestApp::builder().settings(&settings).spawn().await;
    let mut alert = firing_alert("g10", "Noisy", "00000000000000b1", json!({"namespace": "shop"}));
    alert["groupLabels"] = json!({"alertname": "Noisy", "namespace": "shop"});
    let id = app.post_for_incident(&alert).await;
    let path = format!("/api/v1/incidents/{id}/silence");
    let send = |token: &str, method: reqwest::Method, body: Option<Value>| {
        let mut request = app
            .client
            .request(method, format!("{}{path}", app.address))
            .bearer_auth(token.to_owned());
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };

    let refused = send(
        "vera-token-0123456789",
        reqwest::Method::POST,
        Some(json!({"duration": "1h"})),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 403);
    let bad = send(
        "alice-token-0123456789",
        reqwest::Method::POST,
        Some(json!({"duration": "forever"})),
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 422);
    let made = send(
        "alice-token-0123456789",
        reqwest::Method::POST,
        Some(json!({"duration": "2h", "note": "deploy in progress"})),
    )
    .await
    .unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    let silence_id = made["silence"]["silence_id"].as_str().unwrap().to_owned();

    let silences = am_silences(&am).await;
    let silence = silences
        .iter()
        .find(|s| s["id"] == silence_id)
        .expect("in Alertmanager");
    assert_eq!(silence["status"]["state"], "active");
    assert_eq!(silence["createdBy"], "alice");
    assert!(silence["comment"]
        .as_str()
        .unwrap()
        .contains(&format!("medic incident {id}")));
    assert!(silence["comment"]
        .as_str()
        .unwrap()
        .contains("deploy in progress"));
    let mut matchers: Vec<(String, String, bool, bool)> = silence["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["value"].as_str().unwrap().to_owned(),
                m["isRegex"].as_bool().unwrap(),
                m["isEqual"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    matchers.sort();
    assert_eq!(
        matchers,
        [
            ("alertname".to_owned(), "Noisy".to_owned(), false, true),
            ("namespace".to_owned(), "shop".to_owned(), false, true)
        ]
    );
    let incident = app.incident(id).await;
    assert!(incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "silence" && e["silence_id"] == silence_id.as_str()));

    let expired = send("alice-token-0123456789", reqwest::Method::DELETE, None)
        .await
        .unwrap();
    assert_eq!(expired.status(), 200);
    let silences = am_silences(&am).await;
    let silence = silences.iter().find(|s| s["id"] == silence_id).unwrap();
    assert_eq!(silence["status"]["state"], "expired");
    let again = send("alice-token-0123456789", reqwest::Method::DELETE, None)
        .await
        .unwrap();
    assert_eq!(again.status(), 404);

    // The Slack button does the same, as the mapped user.
    interaction(
        &app,
        "UALICE",
        "medic_silence",
        &format!("{id}:1h"),
        SIGNING_SECRET,
        0,
    )
    .send()
    .await
    .unwrap();
    let silence = eventually("a silence from the Slack button", WAIT, || async {
        am_silences(&am)
            .await
            .into_iter()
            .find(|s| s["status"]["state"] == "active")
    })
    .await;
    assert_eq!(silence["createdBy"], "alice");
    // The silence changes nothing the message shows, so its thread says who silenced it.
    let told = sent(
        &slack,
        "/api/chat.postMessage",
        "the silence in the thread",
        |b| b["text"].as_str().is_some_and(|t| t.starts_with("Silenced")),
    )
    .await;
    assert_eq!(told["thread_ts"], SLACK_ROOT_TS);
    assert_eq!(told["channel"], "C0TEST");
    let text = told["text"].as_str().unwrap();
    assert!(
        text.starts_with("Silenced in Alertmanager by alice until "),
        "{text}"
    );
}

#[tokio::test]
async fn silencing_without_an_alertmanager_says_so() {
    let slack = Sink::slack_web_api().await;
    let app = app(&slack).await;
    let id = app
        .post_for_incident(&firing_alert("g11", "H", "00000000000000b2", json!({})))
        .await;
    let answer = app
        .client
        .post(format!("{}/api/v1/incidents/{id}/silence", app.address))
        .bearer_auth("alice-token-0123456789")
        .json(&json!({"duration": "1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 409);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("alertmanager.url"),
        "{body}"
    );
}

/// A second silence request for an incident medic already silenced extends that silence in
/// Alertmanager to the later end instead of making another; a shorter one changes nothing.
#[tokio::test]
async fn silencing_a_silenced_incident_extends_its_silence_instead_of_making_another() {
    let am = alertmanager().await;
    let slack = Sink::slack_web_api().await;
    let settings = two_way(&slack).with("alertmanager", json!({"url": am.url}));
    let app = TestApp::builder().settings(&settings).spawn().await;
    let mut alert = firing_alert("g-ext", "Noisy", "00000000000000c4", json!({"namespace": "shop"}));
    alert["groupLabels"] = json!({"alertname": "Noisy", "namespace": "shop"});
    let id = app.post_for_incident(&alert).await;
    let silence = |duration: &'static str| {
        app.client
            .post(format!("{}/api/v1/incidents/{id}/silence", app.address))
            .bearer_auth("alice-token-0123456789")
            .json(&json!({"duration": duration}))
            .send()
    };
    let first = silence("1h").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["extended"], false);

    let longer = silence("3h").await.unwrap();
    assert_eq!(longer.status(), 200);
    let longer: Value = longer.json().await.unwrap();
    assert_eq!(longer["extended"], true);
    let ends = |v: &Value| -> chrono::DateTime<chrono::Utc> {
        v["silence"]["ends_at"].as_str().unwrap().parse().unwrap()
    };
    assert!(ends(&longer) - ends(&first) > chrono::TimeDelta::minutes(110));

    let shorter = silence("30m").await.unwrap();
    assert_eq!(shorter.status(), 200);
    let shorter: Value = shorter.json().await.unwrap();
    assert_eq!(ends(&shorter), ends(&longer), "a shorter request changes nothing");

    let active: Vec<Value> = am_silences(&am)
        .await
        .into_iter()
        .filter(|s| s["status"]["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "one silence in Alertmanager: {active:?}");
    assert_eq!(active[0]["id"], longer["silence"]["silence_id"]);
    let in_am: chrono::DateTime<chrono::Utc> = active[0]["endsAt"].as_str().unwrap().parse().unwrap();
    assert!((in_am - ends(&longer)).abs() < chrono::TimeDelta::seconds(1));
    // The API answers the one silence the incident has in force.
    let incident = app.incident(id).await;
    let in_force = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "silence")
        .count();
    assert_eq!(in_force, 2, "made, then extended: both in the timeline");
}
