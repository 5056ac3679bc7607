//! Containment: nothing medic does can spin or stall unseen. A notifier's Retry-After cannot
//! make medic retry faster than its backoff or wait past its horizon, a redirect is a failure,
//! a panic in one timer's work is a recorded failure that reaches a final state, a stalled
//! engine fails `/healthz`, and a task medic cannot run without ending stops medic.

use std::{sync::Arc, time::Duration};

use futures_util::FutureExt;
use serde_json::{json, Value};

use crate::helpers::{
    eventually, notification,
    settings::{rule, settings, step, webhook, TestSettings},
    sink::{Reply, Sink},
    TestApp,
};

const WAIT: Duration = Duration::from_secs(15);

/// A webhook told of every incident, retried from `initial_backoff` up to `max_backoff` until
/// `give_up_after`.
fn hook_retrying(sink: &Sink, initial_backoff: &str, max_backoff: &str, give_up_after: &str) -> TestSettings {
    let retry = json!({"initial_backoff": initial_backoff, "max_backoff": max_backoff, "give_up_after": give_up_after});
    settings()
        .notifier("hook", webhook(&sink.url("/hook")))
        .rule(rule("everything").notify(&["hook"]))
        .with(
            "engine",
            json!({"lease": "5s", "safety_poll": "1s", "request_timeout": "1s", "stall_after": "3s", "retry": retry}),
        )
}

async fn fire(app: &TestApp) -> i64 {
    let payload = notification(
        "g",
        "firing",
        &[("00000000000000aa", "firing", "2026-11-26T10:00:00Z")],
    );
    app.post_for_incident(&payload).await
}

/// The incident's only timer once it leaves `pending`.
async fn settled(app: &TestApp, id: i64, within: Duration) -> Value {
    eventually("the timer to leave pending", within, || async {
        let timer = app.incident(id).await["timers"][0].clone();
        if timer["state"] != "pending" {
            Ok(timer)
        } else {
            Err(timer)
        }
    })
    .await
}

#[tokio::test]
async fn retry_after_zero_cannot_make_medic_retry_faster_than_its_backoff() {
    let sink = Sink::start(1).await;
    sink.set_default("/hook", Reply::status(429).with_header("Retry-After", "0"));
    let app = TestApp::builder()
        .settings(&hook_retrying(&sink, "500ms", "2s", "4s"))
        .spawn()
        .await;
    let id = fire(&app).await;
    let timer = settled(&app, id, WAIT).await;
    assert_eq!(timer["state"], "failed", "given up at the horizon: {timer}");
    let attempts = sink.received_at("/hook").len();
    // 500ms, 1s, 2s, 2s backoff with equal jitter (at least half of each) fit at most 8 times
    // into 4s; Retry-After: 0 alone drew thousands.
    assert!((2..=8).contains(&attempts), "{attempts} attempts in 4s");
    let last = timer["attempts"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["result"], "gave_up");
}

#[tokio::test]
async fn an_absurd_retry_after_waits_until_the_horizon_and_no_longer() {
    let sink = Sink::start(1).await;
    sink.set_default(
        "/hook",
        Reply::status(503).with_header("Retry-After", "99999999999999999"),
    );
    let app = TestApp::builder()
        .settings(&hook_retrying(&sink, "200ms", "1s", "3s"))
        .spawn()
        .await;
    let id = fire(&app).await;
    let timer = settled(&app, id, WAIT).await;
    assert_eq!(timer["state"], "failed", "{timer}");
    let attempts = sink.received_at("/hook").len();
    assert!(
        (2..=3).contains(&attempts),
        "{attempts} attempts: the second at the horizon, then done"
    );
}

#[tokio::test]
async fn a_redirect_from_a_notifier_is_a_failure_naming_where_it_pointed() {
    let sink = Sink::start(1).await;
    sink.set_default(
        "/hook",
        Reply::status(307).with_header("Location", "http://elsewhere.example/steal"),
    );
    let app = TestApp::builder()
        .settings(&hook_retrying(&sink, "200ms", "1s", "10s"))
        .spawn()
        .await;
    let id = fire(&app).await;
    let timer = settled(&app, id, WAIT).await;
    assert_eq!(timer["state"], "failed");
    let error = timer["last_error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 307") && error.contains("http://elsewhere.example/steal"),
        "{error}"
    );
    assert_eq!(sink.received_at("/hook").len(), 1, "not followed, not retried");
}

#[tokio::test]
async fn a_panic_in_a_timers_work_is_a_recorded_failure_retried_to_a_final_state() {
    let sink = Sink::start(1).await;
    let app = TestApp::builder()
        .settings(&hook_retrying(&sink, "200ms", "400ms", "2s"))
        .fault(Arc::new(|_| async { panic!("injected by the test") }.boxed()))
        .spawn()
        .await;
    let id = fire(&app).await;
    let timer = settled(&app, id, WAIT).await;
    assert_eq!(timer["state"], "failed", "{timer}");
    let attempts = timer["attempts"].as_array().unwrap();
    assert!((2..=12).contains(&attempts.len()), "{} attempts", attempts.len());
    assert!(attempts.iter().all(|a| a["error"]
        .as_str()
        .unwrap()
        .contains("panicked: injected by the test")));
    assert_eq!(attempts.last().unwrap()["result"], "gave_up");
    assert!(app.metric("medic_timer_panics_total").await >= 2.0);
    // The engine went on: /healthz is fine.
    assert_eq!(app.get_anonymous("/healthz").await.status(), 200);
}

#[tokio::test]
async fn healthz_fails_when_the_engine_stops_going_round() {
    let sink = Sink::start(1).await;
    let app = TestApp::builder()
        .settings(&hook_retrying(&sink, "200ms", "400ms", "2s"))
        .env("MEDIC_ENGINE__CONCURRENCY", 1)
        .fault(Arc::new(|_| {
            tokio::time::sleep(Duration::from_secs(3600)).boxed()
        }))
        .spawn()
        .await;
    assert_eq!(app.get_anonymous("/healthz").await.status(), 200);
    let before = app.metric("medic_engine_last_loop_timestamp_seconds").await;
    assert!(before > 1.7e9, "{before}");
    fire(&app).await;
    let started = std::time::Instant::now();
    eventually(
        "a stalled engine to fail /healthz",
        Duration::from_secs(10),
        || async { app.get_anonymous("/healthz").await.status() != 200 },
    )
    .await;
    let body: Value = app.get_anonymous("/healthz").await.json().await.unwrap();
    assert_eq!(body["status"], "engine stalled");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not at once: stall_after is 3s"
    );
}

#[tokio::test]
async fn medic_stops_with_an_error_when_its_engine_task_ends() {
    let (settings, plan) = TestApp::builder().load().await;
    let app = medic::startup::Application::build(settings, plan).await.unwrap();
    let address = format!("http://127.0.0.1:{}/healthz", app.port());
    app.abort_engine();
    let stopped = tokio::time::timeout(Duration::from_secs(10), app.run_until_stopped()).await;
    let error = stopped
        .expect("medic kept serving without its engine")
        .unwrap_err();
    assert!(error.to_string().contains("timer engine stopped"), "{error}");
    assert!(reqwest::get(address).await.is_err(), "still listening");
}

/// A database that accepts connections and then never says a word.
async fn black_hole() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_remediation_stuck_on_a_silent_database_hits_its_deadline_while_pages_go_out() {
    let (port, _hole) = black_hole().await;
    let sink = Sink::start(1).await;
    let silent = format!("postgres://medic@127.0.0.1:{port}/app?sslmode=disable");
    let settings = settings()
        .without_kubernetes()
        .notifier("hook", webhook(&sink.url("/hook")))
        .with(
            "remediation",
            json!({"action_timeout": "3s", "databases": {"silent": {"url": silent, "users": ["app"]}}}),
        )
        .rule(
            rule("pool")
                .matching(r#"alertname="HighErrorRate""#)
                .notify(&["hook"])
                .remediate(step(
                    "postgres_relieve_pool",
                    json!({"database": "silent", "threshold": "10s"}),
                )),
        )
        .with(
            "engine",
            json!({"concurrency": 1, "remediation_concurrency": 1, "request_timeout": "1s", "lease": "5s"}),
        );
    let app = TestApp::builder().settings(&settings).spawn().await;
    let started = std::time::Instant::now();
    let id = fire(&app).await;

    // The page does not wait for the remediation.
    sink.wait_for("/hook", 1, WAIT).await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the page waited {:?}",
        started.elapsed()
    );
    let done = eventually("the remediation to finish", WAIT, || async {
        let incident = app.incident(id).await;
        let finished = incident["remediations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| !r["finished_at"].is_null())
            .cloned();
        finished.ok_or(incident)
    })
    .await;
    assert_eq!(done["result"], "failure", "{done}");
    assert!(
        done["summary"].as_str().unwrap().starts_with("deadline"),
        "{done}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the remediation outlived its deadline by far: {:?}",
        started.elapsed()
    );
}

/// medic as a process, to send it SIGTERM.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn sigterm_mid_send_lets_the_send_finish_and_records_it_once() {
    let sink = Sink::start(1).await;
    sink.set_default("/hook", Reply::status(200).with_delay(Duration::from_secs(2)));
    let engine = settings()
        .notifier("hook", webhook(&sink.url("/hook")))
        .rule(rule("everything").notify(&["hook"]))
        .with("engine", json!({"lease": "10s", "request_timeout": "5s"}));
    let (loaded, _) = TestApp::builder().settings(&engine).load().await;
    let url = secrecy::ExposeSecret::expose_secret(&loaded.database.url).to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let served = engine
        .server("listen", format!("127.0.0.1:{port}"))
        .server("shutdown_timeout_seconds", 10);
    let file = crate::helpers::yaml_file(&served.yaml());
    let mut medic = Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_medic"))
            .args(["serve", "--config"])
            .arg(file.path())
            .env_clear()
            .env("MEDIC_DATABASE__URL", &url)
            .env("MEDIC_SERVER__AUTH__BEARER_TOKEN", crate::helpers::TOKEN)
            .env("MEDIC_LOG__FORMAT", "text")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let address = format!("http://127.0.0.1:{port}");
    eventually("medic to become ready", Duration::from_secs(10), || async {
        let ready = client.get(format!("{address}/readyz")).send().await;
        ready.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let payload = notification(
        "g",
        "firing",
        &[("00000000000000aa", "firing", "2026-11-26T10:00:00Z")],
    );
    let posted = client
        .post(format!("{address}/webhook"))
        .bearer_auth(crate::helpers::TOKEN)
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    sink.wait_for("/hook", 1, WAIT).await; // the send is in flight: the sink holds it 2s

    let pid = medic.0.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = std::time::Instant::now();
    let status = eventually("medic to stop", Duration::from_secs(15), || {
        std::future::ready(medic.0.try_wait().unwrap())
    })
    .await;
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "medic did not wait for the send in flight"
    );

    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = db
        .query_one(
            "SELECT t.state, (SELECT count(*) FROM timer_attempts a WHERE a.timer_id = t.id AND a.result = 'sent')
               FROM timers t",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "done",
        "the send was recorded before medic exited"
    );
    assert_eq!(row.get::<_, i64>(1), 1);
    assert_eq!(sink.received_at("/hook").len(), 1, "sent once");
}
