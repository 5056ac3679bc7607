//! `medic ctl`, the real binary against a real medic over HTTP and Postgres: approving and
//! rejecting requests, the pause, maintenance windows, where the token comes from, and what
//! a refusal, a usage error or an unreachable medic look like.

use std::{io::Write, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::helpers::{
    eventually,
    fake_kube::FakeKube,
    firing_alert,
    settings::{rule, scale_up, settings},
    TestApp, ADMIN, OTHER_RESPONDER, RESPONDER, VIEWER,
};

const WAIT: Duration = Duration::from_secs(20);

/// What a `medic ctl` run gave: exit code, standard output, standard error.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn succeeded(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts the exit code, and returns standard error.
    #[track_caller]
    fn failed(&self, code: i32) -> &str {
        assert_eq!(
            self.code,
            Some(code),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(self.stdout.is_empty(), "nothing on stdout: {}", self.stdout);
        &self.stderr
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.succeeded()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// `medic ctl ARGS` with only these `MEDIC_*` variables (none of the caller's).
async fn ctl(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_medic"));
    command.arg("ctl").args(args);
    for key in ["MEDIC_URL", "MEDIC_TOKEN", "MEDIC_TOKEN_FILE"] {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    let output = command.output().await.expect("run medic ctl");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A file holding `token` and a newline, as `echo` and Kubernetes Secrets write it.
fn token_file(token: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{token}").unwrap();
    file
}

fn path(file: &tempfile::NamedTempFile) -> &str {
    file.path().to_str().unwrap()
}

/// A medic whose rule `careful` asks for approval before scaling `shop/api` in a fake cluster.
async fn medic_asking_approval() -> (FakeKube, tempfile::NamedTempFile, TestApp) {
    let kube = FakeKube::start().await;
    kube.add_deployment("shop", "api", 1, &[("app", "api")]);
    let kubeconfig = kube.kubeconfig();
    let settings = settings()
        .with("dry_run", false)
        .kubernetes(kubeconfig.path(), "5s")
        .with("remediation", json!({"namespaces": {"allow": ["shop"]}}))
        .rule(
            rule("careful")
                .matching(r#"alertname="HighMemoryUsage""#)
                .remediate(scale_up(2, 5).with("approval", "required")),
        );
    let app = TestApp::builder().settings(&settings).spawn().await;
    (kube, kubeconfig, app)
}

/// `medic ctl approvals -o json` until the incident's request shows; returns the request.
async fn awaiting(app: &TestApp, incident_id: i64) -> Value {
    eventually("a request for approval", WAIT, || async {
        let listed = ctl(
            &["--url", &app.address, "approvals", "-o", "json"],
            &[("MEDIC_TOKEN", VIEWER.2)],
        )
        .await
        .json();
        let requests = listed["remediations"].as_array().expect("remediations").clone();
        let found = requests.into_iter().find(|r| r["incident_id"] == incident_id);
        found.ok_or(listed)
    })
    .await
}

#[tokio::test]
async fn ctl_lists_a_waiting_request_approves_it_as_the_tokens_user_and_refuses_a_second_decision() {
    let (_kube, _kubeconfig, app) = medic_asking_approval().await;
    let labels = json!({"namespace": "shop", "deployment": "api"});
    let incident = app
        .post_for_incident(&firing_alert("g", "HighMemoryUsage", "00000000000000c1", labels))
        .await;
    let request = awaiting(&app, incident).await;
    let id = request["id"].as_i64().unwrap().to_string();

    let table = ctl(
        &["--url", &app.address, "approvals"],
        &[("MEDIC_TOKEN", VIEWER.2)],
    )
    .await;
    let lines: Vec<&str> = table.succeeded().lines().collect();
    assert_eq!(lines.len(), 2, "a header and one request: {lines:?}");
    for column in [
        "ID",
        "INCIDENT",
        "RULE",
        "STEP",
        "ACTION",
        "TARGET",
        "REQUESTED",
        "EXPIRES",
        "PLAN",
    ] {
        assert!(lines[0].contains(column), "{column} in {}", lines[0]);
    }
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        cells[..6],
        [
            id.as_str(),
            &incident.to_string(),
            "careful",
            "1",
            "scale_up",
            "deployment/shop/api"
        ]
    );
    assert!(lines[1].contains("would scale"), "the plan: {}", lines[1]);
    let expires = request["expires_at"]
        .as_str()
        .unwrap()
        .parse::<DateTime<Utc>>()
        .unwrap();
    let shown = expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(lines[1].contains(&shown), "expiry {shown} in {}", lines[1]);

    let alice = token_file(RESPONDER.2);
    let approved = ctl(
        &["--url", &app.address, "approve", &id, "--note", "go ahead"],
        &[("MEDIC_TOKEN_FILE", path(&alice))],
    )
    .await;
    assert_eq!(
        approved.succeeded().trim(),
        format!("remediation {id} approved by alice")
    );
    let decided = app.get_json("/api/v1/remediations").await;
    let decided = decided["remediations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == request["id"])
        .cloned()
        .unwrap();
    assert_eq!(decided["decided_by"], RESPONDER.0, "{decided}");
    let remediation = app.incident(incident).await["remediations"][0].clone();
    assert_eq!(remediation["approval"]["note"], "go ahead", "{remediation}");

    let again = ctl(
        &["--url", &app.address, "reject", &id],
        &[("MEDIC_TOKEN", OTHER_RESPONDER.2)],
    )
    .await;
    let stderr = again.failed(1);
    assert!(
        stderr.contains(&format!(
            "409 Conflict: remediation {id} is not waiting for approval"
        )),
        "{stderr}"
    );

    let none = ctl(
        &["--url", &app.address, "approvals"],
        &[("MEDIC_TOKEN", VIEWER.2)],
    )
    .await;
    assert_eq!(none.succeeded().trim(), "no request is waiting for approval");
    let unknown = ctl(
        &["--url", &app.address, "approve", "999999"],
        &[("MEDIC_TOKEN", RESPONDER.2)],
    )
    .await;
    assert!(
        unknown.failed(1).contains("404 Not Found: no remediation 999999"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn ctl_pauses_and_resumes_opens_lists_and_ends_windows_and_reports_refusals() {
    let app = TestApp::builder().spawn().await;
    let url = app.address.as_str();
    let admin = [("MEDIC_TOKEN", ADMIN.2)];

    // The pause: an admin's, visible in the API, gone after resume; a viewer's is refused.
    let refused = ctl(
        &["--url", url, "pause", "--reason", "x"],
        &[("MEDIC_TOKEN", VIEWER.2)],
    )
    .await;
    let stderr = refused.failed(1);
    assert!(
        stderr.contains("403 Forbidden: vera has the role viewer; this needs admin"),
        "{stderr}"
    );
    let before = Utc::now();
    let paused = ctl(
        &["--url", url, "pause", "--reason", "deploy 4.2", "--for", "1h"],
        &admin,
    )
    .await;
    assert!(
        paused.succeeded().starts_with("remediation paused by ada at "),
        "{}",
        paused.stdout
    );
    let pause = app.get_json("/api/v1/remediation/pause").await;
    assert_eq!(pause["paused"], true, "{pause}");
    assert_eq!(pause["paused_by"], ADMIN.0);
    assert_eq!(pause["reason"], "deploy 4.2");
    let until = pause["until"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    let hour = chrono::Duration::hours(1);
    assert!(
        until >= before + hour && until <= Utc::now() + hour,
        "until {until}"
    );
    let shown = ctl(&["--url", url, "paused"], &[("MEDIC_TOKEN", VIEWER.2)]).await;
    assert!(shown.succeeded().contains(": deploy 4.2"), "{}", shown.stdout);
    let resumed = ctl(&["--url", url, "resume"], &admin).await;
    assert_eq!(resumed.succeeded().trim(), "remediation resumed");
    assert_eq!(
        app.get_json("/api/v1/remediation/pause").await,
        json!({"paused": false})
    );
    let status = ctl(&["--url", url, "paused", "-o", "json"], &admin).await;
    assert_eq!(status.json(), json!({"paused": false}));

    // A window: two matchers for an hour, as the API lists it, then ended.
    let alice = token_file(RESPONDER.2);
    let add = [
        "--url",
        url,
        "--token-file",
        path(&alice),
        "maintenance",
        "add",
        "--matcher",
        r#"namespace="shop""#,
        "--matcher",
        r#"app=~"web|api""#,
        "--reason",
        "deploy 4.2",
        "--for",
        "1h",
        "--mute",
        "remediation",
    ];
    let opened = ctl(&add, &[]).await;
    let line = opened.succeeded().trim().to_owned();
    assert!(line.starts_with("opened maintenance window "), "{line}");
    let windows = app.get_json("/api/v1/maintenance").await;
    let window = windows["windows"][0].clone();
    let id = window["id"].as_i64().unwrap().to_string();
    assert!(line.contains(&format!("window {id} (")), "{line}");
    assert_eq!(
        window["matchers"],
        json!([r#"namespace="shop""#, r#"app=~"web|api""#])
    );
    assert_eq!(window["mute"], json!(["remediation"]));
    assert_eq!(window["created_by"], RESPONDER.0);
    let starts = window["starts_at"]
        .as_str()
        .unwrap()
        .parse::<DateTime<Utc>>()
        .unwrap();
    let ends = window["ends_at"]
        .as_str()
        .unwrap()
        .parse::<DateTime<Utc>>()
        .unwrap();
    assert!((ends - starts - hour).num_seconds().abs() <= 5, "{window}");

    let listed = ctl(
        &["--url", url, "maintenance", "list"],
        &[("MEDIC_TOKEN", VIEWER.2)],
    )
    .await;
    let lines: Vec<&str> = listed.succeeded().lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].starts_with(&id), "{}", lines[1]);
    for cell in [
        r#"namespace="shop", app=~"web|api""#,
        "deploy 4.2",
        "alice",
        "remediation",
    ] {
        assert!(lines[1].contains(cell), "{cell} in {}", lines[1]);
    }
    let json = ctl(
        &["--url", url, "maintenance", "list", "-o", "json"],
        &[("MEDIC_TOKEN", VIEWER.2)],
    )
    .await;
    assert_eq!(json.json(), windows, "the API's answer as it is");

    let ended = ctl(
        &["--url", url, "maintenance", "end", &id],
        &[("MEDIC_TOKEN", RESPONDER.2)],
    )
    .await;
    assert!(
        ended
            .succeeded()
            .starts_with(&format!("ended maintenance window {id} ")),
        "{}",
        ended.stdout
    );
    assert_eq!(app.get_json("/api/v1/maintenance").await, json!({"windows": []}));
    let empty = ctl(
        &["--url", url, "maintenance", "list"],
        &[("MEDIC_TOKEN", VIEWER.2)],
    )
    .await;
    assert_eq!(
        empty.succeeded().trim(),
        "no maintenance window is in force or ahead"
    );
    let again = ctl(
        &["--url", url, "maintenance", "end", &id],
        &[("MEDIC_TOKEN", RESPONDER.2)],
    )
    .await;
    assert!(
        again.failed(1).starts_with("error: 404 Not Found: "),
        "{}",
        again.stderr
    );

    // A bad matcher is the server's 422 with its reason; nothing is opened.
    let mut bad = add;
    bad[7] = r#"namespace=~"(""#;
    let refused = ctl(&bad, &[]).await;
    let stderr = refused.failed(1);
    assert!(
        stderr.contains(r#"422 Unprocessable Entity: matcher "namespace=~\"(\"""#),
        "{stderr}"
    );
    assert_eq!(app.get_json("/api/v1/maintenance").await, json!({"windows": []}));

    // No token at all: the server's 401, and what to do about it.
    let anonymous = ctl(&["--url", url, "approvals"], &[]).await;
    let stderr = anonymous.failed(1);
    assert!(
        stderr.contains("401 Unauthorized: missing or wrong credentials"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no token given: use --token-file, MEDIC_TOKEN_FILE or MEDIC_TOKEN"),
        "{stderr}"
    );
    // The URL from the environment, a trailing slash allowed.
    let from_env = ctl(
        &["paused"],
        &[("MEDIC_URL", &format!("{url}/")), ("MEDIC_TOKEN", VIEWER.2)],
    )
    .await;
    assert_eq!(from_env.succeeded().trim(), "remediation is not paused");
}

#[tokio::test]
async fn ctl_says_what_is_wrong_before_asking_and_when_medic_cannot_be_reached() {
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let down = ctl(&["--url", &url, "paused"], &[("MEDIC_TOKEN", VIEWER.2)]).await;
    let stderr = down.failed(1);
    assert!(
        stderr.contains(&format!("cannot reach medic at {url}/api/v1/remediation/pause: ")),
        "{stderr}"
    );
    assert!(stderr.contains("onnection refused"), "{stderr}");

    let file = token_file(VIEWER.2);
    let both = ctl(
        &["--url", &url, "paused", "--token-file", path(&file)],
        &[("MEDIC_TOKEN", "x")],
    )
    .await;
    assert!(
        both.failed(2).contains("a token and a token file are both given"),
        "{}",
        both.stderr
    );
    let empty = token_file("");
    let blank = ctl(&["--url", &url, "paused"], &[("MEDIC_TOKEN_FILE", path(&empty))]).await;
    assert!(blank.failed(2).contains("the token is empty"), "{}", blank.stderr);
    let two_lines = token_file("vera\nvera-token-0123456789");
    let garbled = ctl(
        &["--url", &url, "paused"],
        &[("MEDIC_TOKEN_FILE", path(&two_lines))],
    )
    .await;
    assert!(
        garbled.failed(2).contains("a space or a control character"),
        "{}",
        garbled.stderr
    );
    let missing = ctl(
        &["--url", &url, "paused", "--token-file", "/nonexistent/token"],
        &[],
    )
    .await;
    assert!(
        missing.failed(2).contains("token file /nonexistent/token: "),
        "{}",
        missing.stderr
    );
    let bad_url = ctl(&["--url", "medic:9095", "paused"], &[]).await;
    assert!(
        bad_url.failed(2).contains("must be http:// or https://"),
        "{}",
        bad_url.stderr
    );

    // clap's usage errors: exit 2.
    let no_end = ctl(
        &["maintenance", "add", "--matcher", r#"a="b""#, "--reason", "x"],
        &[],
    )
    .await;
    assert!(
        no_end.failed(2).contains("--until <UNTIL>|--for <DURATION>"),
        "{}",
        no_end.stderr
    );
    let no_reason = ctl(&["pause"], &[]).await;
    assert!(
        no_reason.failed(2).contains("--reason <REASON>"),
        "{}",
        no_reason.stderr
    );
    let two_ends = ctl(
        &[
            "pause",
            "--reason",
            "x",
            "--for",
            "1h",
            "--until",
            "2030-01-01T00:00:00Z",
        ],
        &[],
    )
    .await;
    two_ends.failed(2);
    let bad_duration = ctl(&["pause", "--reason", "x", "--for", "soon"], &[]).await;
    assert!(
        bad_duration.failed(2).contains("is not a duration"),
        "{}",
        bad_duration.stderr
    );
}
