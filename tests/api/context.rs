//! Cluster context: a crash-looping pod's incident brings its owner chain, rollout, events,
//! restarts and last log lines (redacted) to Slack, the console, the API and PagerDuty; a
//! hanging API never delays the first message.

use std::time::{Duration, SystemTime};

use chrono::Utc;
use serde_json::{json, Value};

use crate::{
    console::{get_page, session_cookie},
    helpers::{
        eventually,
        fake_kube::FakeKube,
        firing_alert,
        settings::{pagerduty, rule, settings, slack_app},
        sink::{Sink, SLACK_ROOT_TS},
        TestApp, VIEWER,
    },
};

const NS: &str = "shop";
const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "hunter2-planted";

/// A cluster, a Slack and PagerDuty, and medic gathering context.
struct Setup {
    kube: FakeKube,
    _kubeconfig: tempfile::NamedTempFile,
    sink: Sink,
    app: TestApp,
}

async fn setup(kube: FakeKube) -> Setup {
    let kubeconfig = kube.kubeconfig();
    let sink = Sink::slack_web_api().await;
    let settings = settings()
        .kubernetes(kubeconfig.path(), "10s")
        .notifier("slack-app", slack_app(&sink.url("/api"), "s3cr3t-signing"))
        .notifier("pagerduty", pagerduty(&sink.url("/pagerduty"), "rk"))
        .rule(
            rule("crashing")
                .notify(&["slack-app"])
                .escalate("2s", &["pagerduty"]),
        );
    let app = TestApp::builder().settings(&settings).spawn().await;
    Setup {
        kube,
        _kubeconfig: kubeconfig,
        sink,
        app,
    }
}

/// Deployment `web` rolled out to revision 2 (image and env changed) five minutes ago, one of
/// its pods crash-looping with 7 restarts, its previous instance's last words holding a
/// password; a `Warning` event about it, and events that must not show.
async fn crash_looping_cluster() -> (FakeKube, String) {
    let kube = FakeKube::start().await;
    kube.add_deployment(NS, "web", 2, &[("app", "web")]);
    kube.wait_ready_pods(NS, "web", 2, WAIT).await;
    kube.set_template(NS, "web", "app:2", &[("LOG_LEVEL", "debug")]);
    let pods = kube.wait_ready_pods(NS, "web", 2, WAIT).await;
    let pod = pods[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let sets = kube.replica_sets_of(NS, "web");
    assert_eq!(sets.len(), 2, "two revisions");
    let now = Utc::now();
    let name = |set: &Value| set["metadata"]["name"].as_str().unwrap().to_owned();
    kube.set_replica_set_created(NS, &name(&sets[0]), now - chrono::Duration::days(3));
    kube.set_replica_set_created(NS, &name(&sets[1]), now - chrono::Duration::minutes(5));
    kube.set_pod_status(NS, &pod, false, 7, Some("CrashLoopBackOff"), now);
    let mut previous: Vec<String> = (1..=25).map(|i| format!("boot step {i}")).collect();
    previous.push(format!("connecting to db with password={PASSWORD}"));
    previous.push(format!("panic: {}", "x".repeat(900)));
    let previous: Vec<&str> = previous.iter().map(String::as_str).collect();
    kube.set_logs(NS, &pod, "app", &["starting again"], &previous);
    let minute = chrono::Duration::minutes(1);
    let back_off = "Back-off restarting failed container app";
    kube.add_event(
        NS,
        ("Pod", &pod),
        "Warning",
        "BackOff",
        back_off,
        12,
        now - minute,
    );
    kube.add_event(
        NS,
        ("Pod", &pod),
        "Normal",
        "Pulled",
        "Container image pulled",
        3,
        now,
    );
    kube.add_event(
        NS,
        ("Pod", &pod),
        "Warning",
        "Unhealthy",
        "old news",
        1,
        now - minute * 60,
    );
    kube.add_event(
        NS,
        ("Pod", "elsewhere"),
        "Warning",
        "BackOff",
        "another pod",
        1,
        now,
    );
    (kube, pod)
}

async fn fire(app: &TestApp, pod: &str) -> i64 {
    let labels = json!({"namespace": NS, "pod": pod, "severity": "critical"});
    app.post_for_incident(&firing_alert("g1", "PodCrashLooping", "00000000000000c1", labels))
        .await
}

/// The incident's context once gathered.
async fn context(app: &TestApp, id: i64) -> Value {
    let what = format!("the context of incident {id}");
    eventually(&what, WAIT, || async {
        let response = app.get(&format!("/api/v1/incidents/{id}/context")).await;
        if response.status() == 200 {
            return Ok(response.json::<Value>().await.unwrap());
        }
        assert_eq!(response.status(), 404, "before it is gathered");
        Err("404")
    })
    .await
}

/// Slack's bodies at `path` that `matches`, once one has arrived.
async fn slack_sent(sink: &Sink, path: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let what = format!("a message matching at {path}");
    eventually(&what, WAIT, || async {
        sink.received_at(path)
            .into_iter()
            .map(|r| r.body)
            .find(|b| matches(b))
    })
    .await
}

#[tokio::test]
async fn a_crash_looping_pods_incident_shows_its_rollout_events_restarts_and_redacted_last_words() {
    let (kube, pod) = crash_looping_cluster().await;
    let Setup { kube, sink, app, .. } = setup(kube).await;
    let id = fire(&app, &pod).await;

    let context = context(&app, id).await;
    assert_eq!(context["complete"], true, "{context:#}");
    assert_eq!(context["errors"], json!([]));
    let headline = context["headline"].as_str().unwrap();
    assert!(
        headline.starts_with("Rolled out 5 minutes before the alert (revision 2)")
            && headline.contains("image app: app:1 → app:2")
            && headline.contains("LOG_LEVEL=debug"),
        "{headline}"
    );
    let chain = context["workload"]["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert_eq!(chain[0], format!("Pod/{pod}"));
    assert!(chain[1].as_str().unwrap().starts_with("ReplicaSet/web-"));
    assert_eq!(chain[2], "Deployment/web");
    assert_eq!(context["rollout"]["revision"], "2");
    assert_eq!(context["rollout"]["desired"], 2);

    let events = context["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "only this pod's recent warnings: {events:#?}");
    assert_eq!(events[0]["reason"], "BackOff");
    assert_eq!(events[0]["count"], 12);
    assert_eq!(events[0]["object"], format!("Pod/{pod}"));

    let state = &context["pods"][0];
    assert_eq!(state["name"], pod);
    assert_eq!(
        (state["restarts"].as_i64(), state["ready"].as_bool()),
        (Some(7), Some(false))
    );
    assert_eq!(state["waiting"], "CrashLoopBackOff");
    assert_eq!(state["last_termination"]["exit_code"], 1);
    assert_eq!(state["last_termination"]["reason"], "Error");
    assert_eq!(
        context["pods"].as_array().unwrap().len(),
        1,
        "the healthy pod is left out"
    );

    let logs = &context["logs"];
    assert_eq!(
        (logs["pod"].as_str(), logs["container"].as_str()),
        (Some(pod.as_str()), Some("app"))
    );
    assert_eq!(logs["previous"], true);
    let lines = logs["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 20);
    assert_eq!(lines[18], "connecting to db with [redacted]");
    assert_eq!(lines[19].as_str().unwrap().len(), 500, "cut at max_line_bytes");
    assert!(!context.to_string().contains(PASSWORD));
    let asked = kube.requests();
    let log_read = asked
        .iter()
        .find(|r| r.path.ends_with("/log"))
        .expect("a log read");
    assert!(
        log_read.query.contains("previous=true") && log_read.query.contains("tailLines=20"),
        "{}",
        log_read.query
    );
    assert!(asked
        .iter()
        .any(|r| r.path.ends_with("/events") && r.query.contains("involvedObject.name")));

    let timeline = app.incident(id).await["timeline"].clone();
    let gathered = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "context_gathered");
    assert_eq!(
        gathered.expect("context_gathered in the timeline")["complete"],
        true
    );

    // Slack: the reply in the thread, the line on the message; never the password.
    let reply = slack_sent(&sink, "/api/chat.postMessage", |b| {
        b["thread_ts"] == SLACK_ROOT_TS
            && b["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Cluster context"))
    })
    .await;
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .contains("Rolled out 5 minutes before the alert"),
        "{reply}"
    );
    let blocks = reply["blocks"].to_string();
    assert!(
        blocks.contains("BackOff ×12")
            && blocks.contains("7 restarts")
            && blocks.contains("last exit 1 (Error)")
    );
    assert!(
        blocks.contains("connecting to db with [redacted]") && !blocks.contains(PASSWORD),
        "{blocks}"
    );
    let update = slack_sent(&sink, "/api/chat.update", |b| {
        b["blocks"].to_string().contains("Cluster context")
    })
    .await;
    assert!(update["blocks"]
        .to_string()
        .contains("Rolled out 5 minutes before the alert"));

    // The escalation page, sent after: the short form.
    let page = slack_sent(&sink, "/pagerduty", |b| b["event_action"] == "trigger").await;
    let short = &page["payload"]["custom_details"]["context"];
    assert!(
        short["headline"]
            .as_str()
            .unwrap()
            .starts_with("Rolled out 5 minutes"),
        "{short}"
    );
    assert_eq!(short["events"].as_array().unwrap().len(), 1);
    assert_eq!(short["logs"].as_array().unwrap().len(), 5);
    assert!(short["rollout"].as_str().unwrap().contains("revision 2"));

    // The console's incident page.
    let cookie = session_cookie(&app, VIEWER.2).await;
    let html = get_page(&app, &cookie, &format!("/ui/incidents/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Cluster context") && html.contains("Rolled out 5 minutes before the alert"));
    assert!(html.contains("connecting to db with [redacted]") && !html.contains(PASSWORD));
}

/// Seconds from posting the alert to Slack receiving the incident's first message.
async fn first_message_after(sink: &Sink, posted: SystemTime) -> f64 {
    let root = |b: &Value| b["thread_ts"].is_null();
    slack_sent(sink, "/api/chat.postMessage", root).await;
    let first = sink
        .received_at("/api/chat.postMessage")
        .into_iter()
        .find(|r| root(&r.body))
        .unwrap();
    first.at.duration_since(posted).unwrap_or_default().as_secs_f64()
}

#[tokio::test]
async fn a_hanging_api_never_delays_the_first_message_and_the_context_says_timeout() {
    let deadline = Duration::from_secs(3);
    let mut figures = Vec::new();
    for hang in [false, true] {
        let (kube, pod) = crash_looping_cluster().await;
        kube.hang(hang);
        let Setup {
            sink,
            app,
            kube: _kube,
            ..
        } = setup(kube).await;
        let posted = SystemTime::now();
        let id = fire(&app, &pod).await;
        let seconds = first_message_after(&sink, posted).await;
        figures.push((hang, seconds));
        if hang {
            assert!(
                seconds < deadline.as_secs_f64(),
                "the first message waited for the API: {seconds}s"
            );
            let context = context(&app, id).await;
            assert_eq!(context["complete"], false);
            assert_eq!(context["errors"][0]["kind"], "timeout", "{context:#}");
            assert!(context["errors"][0]["what"]
                .as_str()
                .unwrap()
                .contains("the owner chain"));
            assert!(app
                .metrics()
                .await
                .contains("medic_context_errors_total{kind=\"timeout\"} 1"));
        }
    }
    for (hang, seconds) in figures {
        println!(
            "first Slack message {:.3}s after the alert (API hanging: {hang})",
            seconds
        );
    }
}

#[tokio::test]
async fn a_missing_permission_is_named_in_the_errors_and_the_rest_is_kept() {
    let (kube, pod) = crash_looping_cluster().await;
    kube.forbid("events");
    kube.forbid("pods/log");
    let Setup { app, kube: _kube, .. } = setup(kube).await;
    let id = fire(&app, &pod).await;
    let context = context(&app, id).await;
    assert_eq!(context["complete"], false);
    let errors = context["errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["kind"] == "forbidden"), "{errors:#?}");
    let said = context["errors"].to_string();
    assert!(
        said.contains("lacks \\\"list events\\\"") && said.contains("lacks \\\"get pods/log\\\""),
        "{said}"
    );
    assert!(context["logs"].is_null() && context["events"] == json!([]));
    assert_eq!(context["pods"][0]["restarts"], 7, "what could be read is kept");
    assert!(context["headline"]
        .as_str()
        .unwrap()
        .starts_with("Rolled out 5 minutes"));
}
