//! People in control, over real HTTP and Postgres with the fake Kubernetes API server:
//! remediation ladders and verification, approval, the pause switch, and maintenance windows.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{
    eventually,
    fake_kube::FakeKube,
    firing_alert,
    settings::{rollout_restart, rule, scale_up, settings, slack, Part},
    sink::Sink,
    TestApp, ADMIN, OTHER_RESPONDER, RESPONDER, VIEWER,
};

const NS: &str = "shop";
const WAIT: Duration = Duration::from_secs(20);
/// `remediation.approval.timeout` in these tests.
const APPROVAL_TIMEOUT: Duration = Duration::from_secs(5);

struct Setup {
    kube: FakeKube,
    _kubeconfig: tempfile::NamedTempFile,
    app: TestApp,
    sink: Sink,
    /// The settings, for a second replica over the same database.
    yaml: String,
}

async fn setup(deployments: &[&str]) -> Setup {
    let kube = FakeKube::start().await;
    for name in deployments {
        kube.add_deployment(NS, name, 1, &[("app", name)]);
    }
    let kubeconfig = kube.kubeconfig();
    let sink = Sink::start(1).await;
    let approval = format!("{}s", APPROVAL_TIMEOUT.as_secs());
    let checked = |step: Part| step.with("cooldown", "0s").with("verify_within", "1s");
    let yaml = settings()
        .with("dry_run", false)
        .kubernetes(kubeconfig.path(), "5s")
        .notifier("slack", slack(&sink.url("/slack")))
        .notifier("oncall", slack(&sink.url("/oncall")))
        .with(
            "remediation",
            json!({"namespaces": {"allow": [NS]}, "budget": {"per_target": "10/1h"},
                   "approval": {"timeout": approval}, "hold": "1s"}),
        )
        .rule(
            rule("ladder")
                .matching(r#"alertname="MemoryLeak""#)
                .notify(&["slack"])
                .escalate("1h", &["oncall"])
                .ladder([checked(scale_up(1, 10)), checked(rollout_restart())]),
        )
        .rule(
            rule("careful")
                .matching(r#"alertname="HighMemoryUsage""#)
                .notify(&["slack"])
                .escalate("1h", &["oncall"])
                .remediate(scale_up(2, 5).with("cooldown", "0s").with("approval", "required")),
        )
        .rule(
            rule("slow")
                .matching(r#"alertname="Slow""#)
                .notify(&["slack"])
                .escalate("1s", &["oncall"]),
        )
        .with("engine", json!({"request_timeout": "2s"}))
        .yaml();
    let app = TestApp::builder().config(&yaml).spawn().await;
    Setup {
        kube,
        _kubeconfig: kubeconfig,
        app,
        sink,
        yaml,
    }
}

async fn fire(app: &TestApp, alertname: &str, fingerprint: &str, deployment: &str) -> i64 {
    let labels = json!({"namespace": NS, "deployment": deployment});
    app.post_for_incident(&firing_alert(fingerprint, alertname, fingerprint, labels))
        .await
}

async fn resolve(app: &TestApp, alertname: &str, fingerprint: &str, deployment: &str) {
    let labels = json!({"namespace": NS, "deployment": deployment});
    let mut payload = firing_alert(fingerprint, alertname, fingerprint, labels);
    payload["status"] = json!("resolved");
    payload["alerts"][0]["status"] = json!("resolved");
    payload["alerts"][0]["endsAt"] = json!("2026-11-26T10:05:00Z");
    app.post_for_incident(&payload).await;
}

/// Polls the incident until `done` holds for its remediations; returns them.
async fn remediations_until(app: &TestApp, id: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    eventually("the remediations to get there", WAIT, || async {
        let incident = app.incident(id).await;
        let remediations = incident["remediations"].as_array().unwrap().clone();
        done(&remediations).then_some(remediations).ok_or(incident)
    })
    .await
}

fn replicas(kube: &FakeKube, name: &str) -> i64 {
    kube.deployment(NS, name).unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

fn texts(received: &[crate::helpers::sink::Received]) -> Vec<String> {
    received.iter().map(|r| r.text.clone()).collect()
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_ladder_climbs_while_the_alert_fires_and_hands_over_saying_what_it_tried() {
    let s = setup(&["web"]).await;
    let id = fire(&s.app, "MemoryLeak", "00000000000000c1", "web").await;

    let done = remediations_until(&s.app, id, |r| {
        r.len() == 2 && r.iter().all(|r| r["verification"] == "not_fixed")
    })
    .await;
    assert_eq!(done[0]["step"], 1);
    assert_eq!(done[0]["action"], "scale_up");
    assert_eq!(done[0]["result"], "success");
    assert_eq!(done[1]["step"], 2);
    assert_eq!(done[1]["action"], "rollout_restart");
    assert_eq!(done[1]["result"], "success");
    assert_eq!(replicas(&s.kube, "web"), 2, "step 1 scaled once");
    let incident = s.app.incident(id).await;
    let steps: Vec<(i64, &str)> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "remediation")
        .map(|e| (e["step"].as_i64().unwrap(), e["verification"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [(1, "not_fixed"), (2, "not_fixed")], "{incident}");

    // The ladder ran out: the first escalation step (due in an hour) comes now, saying so.
    let paged = s.sink.wait_for("/oncall", 1, WAIT).await;
    assert!(
        paged[0].text.contains(
            "automatic remediation did not fix it: scale_up (success, not fixed), rollout_restart (success, not fixed)"
        ),
        "{}",
        paged[0].text
    );
    // The rule's channel heard each verification.
    eventually("two verifications in the rule's channel", WAIT, || async {
        let heard = texts(&s.sink.received_at("/slack"));
        let not_fixed = heard.iter().filter(|t| t.contains("[REMEDIATION NOT_FIXED]"));
        (not_fixed.count() >= 2).then_some(()).ok_or(format!("{heard:?}"))
    })
    .await;
    for (action, n) in [("scale_up", 1.0), ("rollout_restart", 1.0)] {
        assert_eq!(
            s.app
                .metric(&format!(
                    "medic_remediation_verifications_total{{action=\"{action}\",result=\"not_fixed\"}}"
                ))
                .await,
            n
        );
    }
    assert_eq!(
        s.app
            .metric("medic_remediation_rule_verifications_total{result=\"not_fixed\",rule=\"ladder\"}")
            .await,
        2.0
    );
}

#[tokio::test]
async fn a_step_is_fixed_when_its_alert_resolves_in_time_and_the_ladder_stops() {
    let s = setup(&["cache"]).await;
    let id = fire(&s.app, "MemoryLeak", "00000000000000c2", "cache").await;
    remediations_until(&s.app, id, |r| r.len() == 1 && r[0]["verification"] == "pending").await;
    resolve(&s.app, "MemoryLeak", "00000000000000c2", "cache").await;

    let done = remediations_until(&s.app, id, |r| r[0]["verification"] == "fixed").await;
    assert_eq!(done.len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let incident = s.app.incident(id).await;
    assert_eq!(
        incident["remediations"].as_array().unwrap().len(),
        1,
        "no second step after a fix: {incident}"
    );
    assert!(s.sink.received_at("/oncall").is_empty(), "nobody paged");
    assert!(
        !s.kube
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.path.ends_with("/deployments/cache")),
        "no rollout restart"
    );
    assert_eq!(
        s.app
            .metric("medic_remediation_verifications_total{action=\"scale_up\",result=\"fixed\"}")
            .await,
        1.0
    );
}

/// Waits for a request for approval on the incident; returns it as the list shows it.
async fn awaiting(app: &TestApp, incident_id: i64) -> Value {
    eventually("a request for approval", WAIT, || async {
        let body = app.get_json("/api/v1/remediations?state=awaiting_approval").await;
        let found = body["remediations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["incident_id"] == incident_id)
            .cloned();
        found.ok_or(body)
    })
    .await
}

#[tokio::test]
async fn a_step_that_needs_approval_waits_and_acts_once_approved_through_its_guard_rails() {
    let s = setup(&["api"]).await;
    let id = fire(&s.app, "HighMemoryUsage", "00000000000000d1", "api").await;
    let request = awaiting(&s.app, id).await;
    for field in [
        "id",
        "incident_id",
        "rule",
        "action",
        "params",
        "target",
        "plan",
        "requested_at",
        "expires_at",
    ] {
        assert!(!request[field].is_null(), "{field} missing: {request}");
    }
    assert_eq!(request["rule"], "careful");
    assert_eq!(request["action"], "scale_up");
    assert_eq!(request["target"], "deployment/shop/api");
    assert_eq!(request["params"]["deployment"], "api");
    assert!(
        request["plan"].as_str().unwrap().contains("would scale"),
        "{request}"
    );
    assert_eq!(replicas(&s.kube, "api"), 1, "nothing done before approval");
    // The rule's channel is asked.
    let asked = s.sink.wait_for("/slack", 2, WAIT).await;
    assert!(
        texts(&asked).iter().any(|t| t.contains("APPROVAL NEEDED")),
        "{:?}",
        texts(&asked)
    );

    let rid = request["id"].as_i64().unwrap();
    let path = format!("/api/v1/remediations/{rid}/approve");
    let refused = send(&s.app, reqwest::Method::POST, VIEWER.2, &path, Some(json!({}))).await;
    assert_eq!(refused.status(), 403);
    let approved = send(
        &s.app,
        reqwest::Method::POST,
        RESPONDER.2,
        &path,
        Some(json!({"note": "go"})),
    )
    .await;
    assert_eq!(approved.status(), 200);
    let again = send(
        &s.app,
        reqwest::Method::POST,
        OTHER_RESPONDER.2,
        &path,
        Some(json!({})),
    )
    .await;
    assert_eq!(again.status(), 409, "deciding twice");

    let done = remediations_until(&s.app, id, |r| r[0]["result"] == "success").await;
    assert_eq!(replicas(&s.kube, "api"), 3);
    assert_eq!(done[0]["approval"]["approved"], true);
    assert_eq!(done[0]["approval"]["decided_by"], RESPONDER.0);
    assert_eq!(done[0]["approval"]["note"], "go");
    assert_eq!(done[0]["verification"], "none", "the step has no verify_within");
    let incident = s.app.incident(id).await;
    assert!(
        incident["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "approved" && e["by"] == RESPONDER.0 && e["note"] == "go"),
        "{incident}"
    );
    assert!(
        incident["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "approve" && a["actor"] == RESPONDER.0),
        "{incident}"
    );
    let waiting = s
        .app
        .get_json("/api/v1/remediations?state=awaiting_approval")
        .await;
    assert!(
        waiting["remediations"].as_array().unwrap().is_empty(),
        "{waiting}"
    );
}

#[tokio::test]
async fn a_rejected_step_is_skipped_and_people_take_over() {
    let s = setup(&["api"]).await;
    let id = fire(&s.app, "HighMemoryUsage", "00000000000000d2", "api").await;
    let request = awaiting(&s.app, id).await;
    let path = format!("/api/v1/remediations/{}/reject", request["id"]);
    let rejected = send(
        &s.app,
        reqwest::Method::POST,
        OTHER_RESPONDER.2,
        &path,
        Some(json!({"note": "not now"})),
    )
    .await;
    assert_eq!(rejected.status(), 200);

    let done = remediations_until(&s.app, id, |r| r[0]["result"] == "skipped_rejected").await;
    assert_eq!(done[0]["approval"]["decided_by"], OTHER_RESPONDER.0);
    assert_eq!(replicas(&s.kube, "api"), 1);
    let paged = s.sink.wait_for("/oncall", 1, WAIT).await;
    assert!(
        paged[0]
            .text
            .contains("automatic remediation did not fix it: scale_up (skipped_rejected)"),
        "{}",
        paged[0].text
    );
}

#[tokio::test]
async fn an_unanswered_request_expires_on_time_and_escalates() {
    let s = setup(&["api"]).await;
    let id = fire(&s.app, "HighMemoryUsage", "00000000000000d3", "api").await;
    let request = awaiting(&s.app, id).await;
    let expires: chrono::DateTime<chrono::Utc> = request["expires_at"].as_str().unwrap().parse().unwrap();
    let requested: chrono::DateTime<chrono::Utc> = request["requested_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        (expires - requested).num_seconds(),
        APPROVAL_TIMEOUT.as_secs() as i64
    );

    // The decision commits before the outcome (and its finish time) is recorded.
    let done = remediations_until(&s.app, id, |r| {
        r[0]["result"] == "skipped_unapproved" && r[0]["finished_at"].is_string()
    })
    .await;
    let finished: chrono::DateTime<chrono::Utc> = done[0]["finished_at"].as_str().unwrap().parse().unwrap();
    assert!(
        finished >= expires,
        "not before it expired: finished {finished}, expired {expires}"
    );
    // On time: the engine wakes for the expiry itself, not at its next safety poll (30 s); the
    // margin covers a loaded CI machine.
    assert!(
        finished - expires < chrono::TimeDelta::seconds(5),
        "on time: finished {finished}, expired {expires}"
    );
    s.sink.wait_for("/oncall", 1, WAIT).await;
    let late = send(
        &s.app,
        reqwest::Method::POST,
        RESPONDER.2,
        &format!("/api/v1/remediations/{}/approve", request["id"]),
        Some(json!({})),
    )
    .await;
    assert_eq!(late.status(), 409);
    assert_eq!(replicas(&s.kube, "api"), 1);
}

/// A group whose incident fires on after its alert needing approval resolves: that alert
/// (`HighMemoryUsage` on `deployment`) and another no rule acts on.
fn two_alerts(fingerprint: &str, other: &str, deployment: &str) -> Value {
    let labels = json!({"namespace": NS, "deployment": deployment});
    let mut payload = firing_alert(fingerprint, "HighMemoryUsage", fingerprint, labels);
    let mut unrelated = payload["alerts"][0].clone();
    unrelated["fingerprint"] = json!(other);
    unrelated["labels"] = json!({"alertname": "Unrelated", "namespace": NS});
    payload["alerts"].as_array_mut().unwrap().push(unrelated);
    payload
}

#[tokio::test]
async fn an_approval_given_after_the_alert_resolved_checks_again_and_does_not_act() {
    let s = setup(&["api"]).await;
    let mut payload = two_alerts("00000000000000d4", "00000000000000d5", "api");
    let id = s.app.post_for_incident(&payload).await;
    let request = awaiting(&s.app, id).await;
    // The alert the step is for resolves; the incident fires on, so the request stays open.
    payload["alerts"][0]["status"] = json!("resolved");
    payload["alerts"][0]["endsAt"] = json!("2026-11-26T10:05:00Z");
    s.app.post_for_incident(&payload).await;
    assert_eq!(s.app.incident(id).await["status"], "firing");

    let path = format!("/api/v1/remediations/{}/approve", request["id"]);
    let approved = send(&s.app, reqwest::Method::POST, RESPONDER.2, &path, Some(json!({}))).await;
    assert_eq!(approved.status(), 200);
    let done = remediations_until(&s.app, id, |r| {
        !r[0]["finished_at"].is_null() && r[0]["result"] != "awaiting_approval"
    })
    .await;
    assert_eq!(done[0]["result"], "skipped_resolved", "{}", done[0]);
    assert_eq!(done[0]["approval"]["approved"], true);
    assert_eq!(replicas(&s.kube, "api"), 1, "nothing scaled");
    assert!(
        !s.kube.requests().iter().any(|r| r.method == "PATCH"),
        "no change reached the API server"
    );
}

#[tokio::test]
async fn a_request_on_an_incident_that_resolves_is_closed_and_cannot_be_approved() {
    let s = setup(&["api"]).await;
    let id = fire(&s.app, "HighMemoryUsage", "00000000000000d6", "api").await;
    let request = awaiting(&s.app, id).await;
    resolve(&s.app, "HighMemoryUsage", "00000000000000d6", "api").await;

    let done = remediations_until(&s.app, id, |r| r[0]["result"] == "skipped_resolved").await;
    assert!(done[0]["approval"]["approved"].is_null(), "{}", done[0]);
    let path = format!("/api/v1/remediations/{}/approve", request["id"]);
    let late = send(&s.app, reqwest::Method::POST, RESPONDER.2, &path, Some(json!({}))).await;
    assert_eq!(late.status(), 409);
    assert_eq!(replicas(&s.kube, "api"), 1);
}

#[tokio::test]
async fn a_pause_through_one_replica_holds_in_the_other_until_resumed_there() {
    let s = setup(&["web", "api", "cache"]).await;
    let other = TestApp::builder()
        .config(&s.yaml)
        .database(&s.app.database_url)
        .spawn()
        .await;
    let pause = "/api/v1/remediation/pause";
    let past = json!({"reason": "x", "until": "2000-01-01T00:00:00Z"});
    let refused = send(&s.app, reqwest::Method::PUT, ADMIN.2, pause, Some(past)).await;
    assert_eq!(refused.status(), 422, "an end in the past");
    let until = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    let body = json!({"reason": "deploy freeze", "until": until});
    let paused = send(&s.app, reqwest::Method::PUT, ADMIN.2, pause, Some(body)).await;
    assert_eq!(paused.status(), 200);

    // The other replica sees it at once, and its gauge follows within its refresh.
    let state = other.get_json(pause).await;
    assert_eq!(state["paused"], true);
    assert_eq!(state["paused_by"], ADMIN.0);
    assert_eq!(state["reason"], "deploy freeze");
    let shown: chrono::DateTime<chrono::Utc> = state["until"].as_str().unwrap().parse().unwrap();
    assert!(
        (shown - until).abs() < chrono::TimeDelta::milliseconds(1),
        "{state}"
    );
    other
        .metric_becomes("medic_remediation_paused", 1.0, Duration::from_secs(5))
        .await;

    // Alerts through either replica: every decision, whichever engine takes it, is paused.
    let first = fire(&s.app, "MemoryLeak", "00000000000000e3", "web").await;
    let second = fire(&other, "MemoryLeak", "00000000000000e4", "api").await;
    for id in [first, second] {
        let done = remediations_until(&s.app, id, |r| !r.is_empty() && !r[0]["finished_at"].is_null()).await;
        assert_eq!(done[0]["result"], "skipped_paused", "{}", done[0]);
    }
    assert_eq!(replicas(&s.kube, "web"), 1);
    assert_eq!(replicas(&s.kube, "api"), 1);

    // Resumed through the other replica: the first sees it, and acts again.
    let resumed = send(&other, reqwest::Method::DELETE, ADMIN.2, pause, None).await;
    assert_eq!(resumed.status(), 200);
    assert_eq!(s.app.get_json(pause).await["paused"], false);
    s.app
        .metric_becomes("medic_remediation_paused", 0.0, Duration::from_secs(5))
        .await;
    let id = fire(&s.app, "MemoryLeak", "00000000000000e5", "cache").await;
    let done = remediations_until(&s.app, id, |r| !r.is_empty() && !r[0]["finished_at"].is_null()).await;
    assert_eq!(done[0]["result"], "success");
    assert_eq!(replicas(&s.kube, "cache"), 2);
}

#[tokio::test]
async fn the_pause_switch_stops_every_remediation_until_an_admin_resumes() {
    let s = setup(&["web", "api"]).await;
    let pause = "/api/v1/remediation/pause";
    let body = json!({"reason": "incident 42: hands off"});
    let refused = send(
        &s.app,
        reqwest::Method::PUT,
        RESPONDER.2,
        pause,
        Some(body.clone()),
    )
    .await;
    assert_eq!(refused.status(), 403, "pausing needs an admin");
    let paused = send(&s.app, reqwest::Method::PUT, ADMIN.2, pause, Some(body)).await;
    assert_eq!(paused.status(), 200);
    let state = s.app.get_json(pause).await;
    assert_eq!(state["paused"], true);
    assert_eq!(state["paused_by"], ADMIN.0);
    assert_eq!(state["reason"], "incident 42: hands off");
    assert_eq!(s.app.metric("medic_remediation_paused").await, 1.0);

    let id = fire(&s.app, "MemoryLeak", "00000000000000e1", "web").await;
    let done = remediations_until(&s.app, id, |r| r.len() == 1 && !r[0]["finished_at"].is_null()).await;
    assert_eq!(done[0]["result"], "skipped_paused");
    assert_eq!(replicas(&s.kube, "web"), 1);

    let resumed = send(&s.app, reqwest::Method::DELETE, ADMIN.2, pause, None).await;
    assert_eq!(resumed.status(), 200);
    assert_eq!(s.app.get_json(pause).await["paused"], false);
    assert_eq!(s.app.metric("medic_remediation_paused").await, 0.0);
    let id = fire(&s.app, "MemoryLeak", "00000000000000e2", "api").await;
    let done = remediations_until(&s.app, id, |r| !r.is_empty() && !r[0]["finished_at"].is_null()).await;
    assert_eq!(done[0]["result"], "success");
}

#[tokio::test]
async fn a_maintenance_window_skips_remediation_and_holds_pages_until_it_ends() {
    let s = setup(&["held"]).await;
    let windows = "/api/v1/maintenance";
    let ends_at = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    let window = json!({"matchers": ["deployment=\"held\""], "ends_at": ends_at, "mute": ["remediation", "pages"], "reason": "deploy 4.2"});
    for (bad, status) in [
        (json!({"matchers": [], "ends_at": ends_at, "reason": "x"}), 422),
        (
            json!({"matchers": ["a=\"b\""], "ends_at": ends_at, "reason": " "}),
            422,
        ),
        (
            json!({"matchers": ["a=~\"(\""], "ends_at": ends_at, "reason": "x"}),
            422,
        ),
        (
            json!({"matchers": ["a=\"b\""], "ends_at": ends_at, "reason": "x", "mute": ["everything"]}),
            422,
        ),
        (
            json!({"matchers": ["a=\"b\""], "ends_at": "2000-01-01T00:00:00Z", "reason": "x"}),
            422,
        ),
        (json!({"matchers": ["a=\"b\""], "ends_at": ends_at}), 400),
    ] {
        let response = send(
            &s.app,
            reqwest::Method::POST,
            RESPONDER.2,
            windows,
            Some(bad.clone()),
        )
        .await;
        assert_eq!(response.status(), status, "{bad}");
    }
    let refused = send(
        &s.app,
        reqwest::Method::POST,
        VIEWER.2,
        windows,
        Some(window.clone()),
    )
    .await;
    assert_eq!(refused.status(), 403);
    let created = send(&s.app, reqwest::Method::POST, RESPONDER.2, windows, Some(window)).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let window_id = created["id"].as_i64().unwrap();
    assert_eq!(created["reason"], "deploy 4.2");
    // A window ahead is listed too, after the one in force, and holds nothing yet.
    let later = json!({"matchers": ["deployment=\"later\""], "starts_at": ends_at,
                       "ends_at": ends_at + chrono::TimeDelta::hours(1), "reason": "next deploy"});
    let later = send(&s.app, reqwest::Method::POST, RESPONDER.2, windows, Some(later)).await;
    assert_eq!(later.status(), 201);
    let later_id = later.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let listed = s.app.get_json(windows).await;
    let ids: Vec<i64> = listed["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [window_id, later_id], "{listed}");

    let id = fire(&s.app, "MemoryLeak", "00000000000000f1", "held").await;
    let done = remediations_until(&s.app, id, |r| !r.is_empty() && !r[0]["finished_at"].is_null()).await;
    assert_eq!(done[0]["result"], "skipped_maintenance");
    assert!(
        done[0]["summary"].as_str().unwrap().contains("deploy 4.2"),
        "{}",
        done[0]
    );
    assert_eq!(replicas(&s.kube, "held"), 1);

    // Pages are held, and the timeline says so.
    s.sink.expect_no_more("/slack", 0, Duration::from_secs(2)).await;
    let incident = s.app.incident(id).await;
    assert!(
        incident["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "message_muted"),
        "{incident}"
    );

    // Ending the window early: what it held goes out within seconds.
    let ended = send(
        &s.app,
        reqwest::Method::DELETE,
        RESPONDER.2,
        &format!("{windows}/{window_id}"),
        None,
    )
    .await;
    assert_eq!(ended.status(), 200);
    let started = Instant::now();
    s.sink.wait_for("/slack", 1, Duration::from_secs(5)).await;
    s.sink.wait_for("/oncall", 1, Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let listed = s.app.get_json(windows).await;
    assert_eq!(listed["windows"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        listed["windows"][0]["id"], later_id,
        "only the window ahead is left"
    );
    let again = send(
        &s.app,
        reqwest::Method::DELETE,
        RESPONDER.2,
        &format!("{windows}/{window_id}"),
        None,
    )
    .await;
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn a_window_muting_only_remediation_still_pages_people() {
    let s = setup(&["quiet"]).await;
    let ends_at = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    let window = json!({"matchers": ["deployment=\"quiet\""], "ends_at": ends_at, "mute": ["remediation"], "reason": "hands off"});
    let created = send(
        &s.app,
        reqwest::Method::POST,
        RESPONDER.2,
        "/api/v1/maintenance",
        Some(window),
    )
    .await;
    assert_eq!(created.status(), 201);
    assert_eq!(
        created.json::<Value>().await.unwrap()["mute"],
        json!(["remediation"])
    );
    let id = fire(&s.app, "MemoryLeak", "00000000000000f4", "quiet").await;
    let done = remediations_until(&s.app, id, |r| !r.is_empty() && !r[0]["finished_at"].is_null()).await;
    assert_eq!(done[0]["result"], "skipped_maintenance");
    assert_eq!(replicas(&s.kube, "quiet"), 1);
    // The announcement goes out, and the skipped step hands over to on-call at once.
    s.sink.wait_for("/slack", 1, WAIT).await;
    let paged = s.sink.wait_for("/oncall", 1, WAIT).await;
    assert!(
        paged[0]
            .text
            .contains("automatic remediation did not fix it: scale_up (skipped_maintenance)"),
        "{}",
        paged[0].text
    );
    let incident = s.app.incident(id).await;
    assert!(
        !incident["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "message_muted"),
        "{incident}"
    );
}

#[tokio::test]
async fn when_a_window_ends_the_escalation_policy_runs_from_its_end() {
    let s = setup(&[]).await;
    let ends_at = chrono::Utc::now() + chrono::TimeDelta::seconds(3);
    let window = json!({"matchers": ["alertname=\"Slow\""], "ends_at": ends_at, "mute": ["pages"], "reason": "migration"});
    let created = send(
        &s.app,
        reqwest::Method::POST,
        RESPONDER.2,
        "/api/v1/maintenance",
        Some(window),
    )
    .await;
    assert_eq!(created.status(), 201);
    fire(&s.app, "Slow", "00000000000000f2", "-").await;

    let told = s.sink.wait_for("/slack", 1, WAIT).await;
    let paged = s.sink.wait_for("/oncall", 1, WAIT).await;
    let at = |r: &crate::helpers::sink::Received| chrono::DateTime::<chrono::Utc>::from(r.at);
    let end = ends_at;
    assert!(
        at(&told[0]) >= end,
        "the announcement waited for the window's end"
    );
    assert!(
        at(&paged[0]) >= end + chrono::TimeDelta::milliseconds(900),
        "the 1s escalation step counted from the window's end: paged at {}, window ended {end}",
        at(&paged[0])
    );
}

/// An engine decided to hold a message just before someone ended the window (its view of the
/// windows is up to a second old): recording the hold must not park the message until the
/// window's planned end.
#[tokio::test]
async fn a_message_held_by_a_window_that_just_ended_is_released_at_once() {
    let app = TestApp::builder().spawn().await;
    let id = app
        .post_for_incident(&firing_alert("g-race", "Race", "00000000000000f3", json!({})))
        .await;
    let store = crate::helpers::store(&app.database_url);
    let actor = medic::domain::Actor {
        name: "alice".into(),
        role: medic::domain::Role::Responder,
        auth: medic::domain::Auth::Token,
        address: "127.0.0.1".into(),
        surface: medic::domain::Surface::Api,
        issuer: None,
    };
    let ends_at = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    let matchers = vec!["alertname=\"Race\"".to_owned()];
    let window = store
        .create_window(
            &medic::store::control::NewWindow {
                matchers: &matchers,
                starts_at: chrono::Utc::now(),
                ends_at,
                mute: &["pages"],
                reason: "race",
            },
            &actor,
            100,
        )
        .await
        .unwrap()
        .expect("room for a window");
    let timer: i64 = app
        .sql()
        .await
        .query_one(
            "INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at)
             VALUES ($1, 'opened', 'r', 0, 'n', 'slack', now(), now()) RETURNING id",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    let claimed = store.claim_timers(10, 42, 60_000, 0).await.unwrap();
    let mine = claimed
        .into_iter()
        .flatten()
        .find(|t| t.id == timer)
        .expect("claimed");

    // The window ends between the engine's decision to hold and the record of it.
    store.end_window(window.id, &actor).await.unwrap().expect("ended");
    let completion = medic::store::timers::Completion {
        id: mine.id,
        claim: mine.claim,
        occurrence: mine.occurrence(),
        attempt: mine.attempt,
        started_at: chrono::Utc::now(),
        outcome: medic::domain::TimerOutcome::Muted {
            delay_ms: (ends_at - chrono::Utc::now()).num_milliseconds(),
            window: window.id,
        },
        status_code: None,
        error: Some("muted".into()),
    };
    assert_eq!(store.complete_timers(&[completion]).await.unwrap(), [timer]);
    // The app's own engine may already have fired it (it is due at once); else it is still
    // pending, due now rather than at the window's planned end an hour away.
    let row = app
        .sql()
        .await
        .query_one(
            "SELECT state, extract(epoch FROM due_at - now())::float8 FROM timers WHERE id = $1",
            &[&timer],
        )
        .await
        .unwrap();
    let (state, due_in): (String, f64) = (row.get(0), row.get(1));
    assert!(
        state != "pending" || due_in < 5.0,
        "released at once, not at the planned end: {state}, due in {due_in} s"
    );
}
