//! Heartbeats: Watchdog alerts renew a heartbeat and open nothing; a heartbeat that stops opens
//! one HeartbeatMissing incident (notify, escalation, console, API) and its return resolves it;
//! per-cluster heartbeats; several replicas, one killed with SIGKILL during the silence, page
//! once; medic's own pulse outward. Windows are a second or two, so each test takes seconds.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::{
    console::{get_page, session_cookie},
    helpers::{
        eventually, firing_alert, notification, ok_200, serve_command,
        settings::{rule, settings, webhook, TestSettings},
        sink::Sink,
        TestApp, TOKEN, VIEWER,
    },
};

/// Webhooks `hook` (told of every incident) and `pager`, and the Watchdog heartbeat expected
/// every second, missing after two, paging at once: per value of the label `per` if given.
fn watching(sink: &Sink, per: Option<&str>) -> TestSettings {
    settings()
        .notifier("hook", webhook(&sink.url("/hook")))
        .notifier("pager", webhook(&sink.url("/pager")))
        .rule(rule("all").notify(&["hook"]))
        .with("heartbeats", json!([watchdog_heartbeat(per, "1s", "0s")]))
}

/// The Watchdog heartbeat, expected every `every` with a second's grace, telling `hook` and
/// paging `pager` `after` it went missing.
fn watchdog_heartbeat(per: Option<&str>, every: &str, after: &str) -> Value {
    let mut heartbeat = json!({
        "name": "watchdog", "matchers": ["alertname=\"Watchdog\""], "expect_every": every,
        "grace": "1s", "forget_after": "1h", "notify": ["hook"],
        "escalation": [{"after": after, "notify": ["pager"]}],
    });
    if let Some(per) = per {
        heartbeat["per"] = json!(per);
    }
    heartbeat
}

/// Alertmanager's Watchdog notification, for `cluster` if given.
fn watchdog(cluster: Option<&str>) -> Value {
    let labels = match cluster {
        Some(c) => json!({"cluster": c, "severity": "none"}),
        None => json!({"severity": "none"}),
    };
    let group = format!(
        "{{}}:{{alertname=\"Watchdog\", cluster=\"{}\"}}",
        cluster.unwrap_or("")
    );
    let fingerprint = format!(
        "{:016x}",
        0xdead_0000_u64 + cluster.map_or(0, |c| c.len() as u64 + c.as_bytes()[0] as u64)
    );
    firing_alert(&group, "Watchdog", &fingerprint, labels)
}

/// Posts a Watchdog notification every 300 ms while `on` holds; each must be answered 200.
fn keep_renewing(
    app: Arc<TestApp>,
    cluster: Option<&'static str>,
    on: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while on.load(Ordering::Acquire) {
            let response = app.post_webhook(&watchdog(cluster)).await;
            assert_eq!(response.status(), 200);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

/// The webhook messages of this event (`opened`, `resolved`) received at `path`.
fn events(sink: &Sink, path: &str, event: &str) -> Vec<Value> {
    sink.received_at(path)
        .into_iter()
        .filter(|r| r.body["event"] == event)
        .map(|r| r.body)
        .collect()
}

/// The webhook messages of this event received at `path`, once there are at least `n`.
async fn wait_for_event(sink: &Sink, path: &str, event: &str, n: usize, within: Duration) -> Vec<Value> {
    let what = format!("{n} {event} message(s) at {path}");
    eventually(&what, within, || async {
        let seen = events(sink, path, event);
        if seen.len() >= n {
            Ok(seen)
        } else {
            Err(format!("{} so far", seen.len()))
        }
    })
    .await
}

async fn heartbeats(app: &TestApp) -> Vec<Value> {
    app.get_json("/api/v1/heartbeats").await["heartbeats"]
        .as_array()
        .expect("heartbeats")
        .clone()
}

#[tokio::test]
async fn a_watchdog_that_stops_pages_once_and_its_return_resolves_once() {
    let sink = Sink::start(1).await;
    let app = Arc::new(TestApp::builder().settings(&watching(&sink, None)).spawn().await);

    let response = app.post_webhook(&watchdog(None)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["heartbeats"], 1, "{body}");
    let on = Arc::new(AtomicBool::new(true));
    let renewing = keep_renewing(app.clone(), None, on.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(app.incidents().await.is_empty(), "Watchdog opens no incident");
    assert_eq!(sink.count(), 0, "Watchdog keeps medic quiet");
    let listed = heartbeats(&app).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["state"], "ok");
    assert_eq!(listed[0]["per_value"], "");

    on.store(false, Ordering::Release);
    renewing.await.unwrap();
    let stopped = Instant::now();
    let opened = wait_for_event(&sink, "/hook", "opened", 1, Duration::from_secs(6)).await;
    let paged_after = stopped.elapsed();
    assert_eq!(opened.len(), 1, "one page: {opened:?}");
    assert!(
        paged_after < Duration::from_secs(5),
        "paged after {paged_after:?}"
    );
    let labels = &opened[0]["incident"]["labels"];
    assert_eq!(labels["alertname"], "HeartbeatMissing");
    assert_eq!(labels["heartbeat"], "watchdog");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(opened[0]["rule"], "heartbeat/watchdog");
    assert_eq!(
        wait_for_event(&sink, "/pager", "escalation", 1, Duration::from_secs(3))
            .await
            .len(),
        1
    );
    let listed = heartbeats(&app).await;
    assert_eq!(listed[0]["state"], "missing");
    let incident_id = listed[0]["incident_id"].as_i64().expect("incident_id");
    assert_eq!(app.incident(incident_id).await["status"], "firing");

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        events(&sink, "/hook", "opened").len(),
        1,
        "still one page after the window again"
    );

    assert_eq!(app.post_webhook(&watchdog(None)).await.status(), 200);
    let resolved = wait_for_event(&sink, "/hook", "resolved", 1, Duration::from_secs(5)).await;
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["incident"]["id"], incident_id);
    assert_eq!(app.incident(incident_id).await["status"], "resolved");
    assert_eq!(heartbeats(&app).await[0]["state"], "ok");
    assert_eq!(app.post_webhook(&watchdog(None)).await.status(), 200);
    sink.expect_no_more("/hook", 2, Duration::from_millis(800)).await;
    assert_eq!(app.incidents().await.len(), 1);
}

#[tokio::test]
async fn a_notification_mixing_watchdog_and_other_alerts_records_the_others_and_renews() {
    let sink = Sink::start(1).await;
    let app = TestApp::builder().settings(&watching(&sink, None)).spawn().await;
    let mut payload = notification(
        "mixed",
        "firing",
        &[("00000000000000a1", "firing", "2026-11-26T10:00:00Z")],
    );
    let dog = watchdog(None)["alerts"][0].clone();
    payload["alerts"].as_array_mut().unwrap().push(dog);

    let id = app.post_for_incident(&payload).await;
    let incident = app.incident(id).await;
    assert_eq!(incident["alerts"].as_array().unwrap().len(), 1, "{incident}");
    assert_eq!(incident["alerts"][0]["labels"]["alertname"], "HighErrorRate");
    let listed = heartbeats(&app).await;
    assert_eq!(listed[0]["state"], "ok");
    assert!(listed[0]["last_seen_at"].is_string(), "{listed:?}");
    assert_eq!(
        app.metric("medic_heartbeat_renewals_total{heartbeat=\"watchdog\"}")
            .await,
        1.0
    );
    assert_eq!(app.metric("medic_heartbeats{state=\"ok\"}").await, 1.0);
}

#[tokio::test]
async fn a_heartbeat_never_seen_since_start_is_missing_a_window_after_start() {
    let sink = Sink::start(1).await;
    let app = TestApp::builder().settings(&watching(&sink, None)).spawn().await;
    let opened = wait_for_event(&sink, "/hook", "opened", 1, Duration::from_secs(6)).await;
    assert_eq!(opened.len(), 1);
    assert!(opened[0]["incident"]["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("not seen since medic started"));
    assert_eq!(heartbeats(&app).await[0]["last_seen_at"], Value::Null);
}

#[tokio::test]
async fn per_cluster_heartbeats_page_only_for_the_cluster_that_stops() {
    let sink = Sink::start(1).await;
    let app = Arc::new(
        TestApp::builder()
            .settings(&watching(&sink, Some("cluster")))
            .spawn()
            .await,
    );
    let (east, west) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(true)));
    let east_task = keep_renewing(app.clone(), Some("east"), east.clone());
    let west_task = keep_renewing(app.clone(), Some("west"), west.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.count(), 0, "with per, nothing is armed before it is seen");
    assert_eq!(heartbeats(&app).await.len(), 2);

    west.store(false, Ordering::Release);
    west_task.await.unwrap();
    let opened = wait_for_event(&sink, "/hook", "opened", 1, Duration::from_secs(6)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let opened_now = events(&sink, "/hook", "opened");
    assert_eq!(opened_now.len(), 1, "{opened_now:?}");
    assert_eq!(opened[0]["incident"]["labels"]["cluster"], "west");
    let listed = heartbeats(&app).await;
    let state = |c: &str| listed.iter().find(|h| h["per_value"] == c).unwrap()["state"].clone();
    assert_eq!(state("east"), "ok");
    assert_eq!(state("west"), "missing");
    east.store(false, Ordering::Release);
    east_task.await.unwrap();
}

#[tokio::test]
async fn the_console_lists_heartbeats_with_the_incident_of_a_missing_one() {
    let sink = Sink::start(1).await;
    let app = TestApp::builder()
        .settings(&watching(&sink, Some("cluster")))
        .spawn()
        .await;
    assert_eq!(app.post_webhook(&watchdog(Some("west"))).await.status(), 200);
    wait_for_event(&sink, "/hook", "opened", 1, Duration::from_secs(6)).await;
    let id = heartbeats(&app).await[0]["incident_id"].as_i64().unwrap();
    let cookie = session_cookie(&app, VIEWER.2).await;
    let page = get_page(&app, &cookie, "/ui/heartbeats")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("watchdog") && page.contains("west"), "{page}");
    assert!(page.contains(&format!("href=\"/ui/incidents/{id}\"")), "{page}");
    assert!(page.contains("data-state=\"missing\""), "{page}");
}

#[tokio::test]
async fn heartbeat_out_calls_the_dead_mans_switch_while_the_engine_runs() {
    let sink = Sink::start(1).await;
    let ping = json!({"url": sink.url("/ping/abc"), "every": "1s", "method": "POST"});
    let app = TestApp::builder()
        .settings(&settings().with("heartbeat_out", ping))
        .spawn()
        .await;
    let pings = sink.wait_for("/ping/abc", 2, Duration::from_secs(5)).await;
    assert!(pings.iter().all(|p| p.method == "POST"));
    assert!(app.metric("medic_heartbeat_out_pings_total{result=\"ok\"}").await >= 2.0);
}

/// Three `medic serve` processes over one database: Watchdog renewed through one, then silent;
/// one replica killed with SIGKILL during the silence. One page, and one resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_one_killed_during_the_silence_page_exactly_once() {
    let sink = Sink::start(1).await;
    let yaml = watching(&sink, None)
        .with("heartbeats", json!([watchdog_heartbeat(None, "2s", "0s")]))
        .yaml();
    let mut replicas = Vec::new();
    let mut database = None;
    for _ in 0..3 {
        let (mut command, file, port) = serve_command(&yaml).await;
        let url = database.get_or_insert_with(|| {
            command
                .get_envs()
                .find(|(k, _)| *k == "MEDIC_DATABASE__URL")
                .and_then(|(_, v)| v)
                .unwrap()
                .to_owned()
        });
        command.env("MEDIC_DATABASE__URL", url.clone());
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        replicas.push((command.spawn().unwrap(), file, port));
    }
    let client = reqwest::Client::new();
    let post = |port: u16| {
        let client = client.clone();
        async move {
            client
                .post(format!("http://127.0.0.1:{port}/webhook"))
                .bearer_auth(TOKEN)
                .json(&watchdog(None))
                .send()
                .await
        }
    };
    for (_, _, port) in &replicas {
        eventually("the replica to answer 200", Duration::from_secs(20), || async {
            let status = post(*port).await.map(|r| r.status().as_u16());
            status.map_err(|e| e.to_string()).and_then(ok_200)
        })
        .await;
    }
    for i in 0..8 {
        let port = replicas[i % 3].2;
        assert_eq!(post(port).await.unwrap().status(), 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(sink.count(), 0);
    // Silence; one replica dies before the deadline (3 s), another arrives after it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    replicas[0].0.kill().unwrap();
    replicas[0].0.wait().unwrap();
    let opened = wait_for_event(&sink, "/hook", "opened", 1, Duration::from_secs(8)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(events(&sink, "/hook", "opened").len(), 1, "{opened:?}");
    assert_eq!(events(&sink, "/pager", "escalation").len(), 1);

    assert_eq!(post(replicas[1].2).await.unwrap().status(), 200);
    assert_eq!(post(replicas[2].2).await.unwrap().status(), 200);
    wait_for_event(&sink, "/hook", "resolved", 1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(events(&sink, "/hook", "resolved").len(), 1);
    for (child, _, _) in &mut replicas[1..] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[tokio::test]
async fn acknowledging_a_missing_heartbeat_stops_its_escalation() {
    let sink = Sink::start(1).await;
    let settings = watching(&sink, None).with("heartbeats", json!([watchdog_heartbeat(None, "1s", "3s")]));
    let app = TestApp::builder().settings(&settings).spawn().await;
    assert_eq!(app.post_webhook(&watchdog(None)).await.status(), 200);
    wait_for_event(&sink, "/hook", "opened", 1, Duration::from_secs(6)).await;
    let id = heartbeats(&app).await[0]["incident_id"].as_i64().unwrap();
    let response = app
        .acknowledge(id, &json!({"note": "Prometheus is being upgraded"}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        wait_for_event(&sink, "/hook", "acknowledged", 1, Duration::from_secs(3))
            .await
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        events(&sink, "/pager", "escalation").is_empty(),
        "acknowledged: nobody paged"
    );
}
