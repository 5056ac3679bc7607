//! A first run, as `scripts/run-local` makes it: medic's binary on an empty database, its
//! notifiers of type `log`. Startup migrates the schema while the engine waits for it without
//! a warning, an alert's message is a line of the log, and SIGTERM stops medic: not one
//! warning or error on the way.

use std::{process::Stdio, time::Duration};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{ChildStdout, Command},
};

use crate::helpers::{fixture, serve_command, TOKEN};

const WAIT: Duration = Duration::from_secs(20);

const SETTINGS: &str = "notifiers:\n  incidents-slack: {type: log}\n\
    rules:\n  - name: everything\n    notify: [incidents-slack]\nkubernetes: {enabled: false}\n";

/// Reads JSON log lines until one whose message contains `text`; returns every line read.
async fn until(lines: &mut Lines<BufReader<ChildStdout>>, text: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let event: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            let done = event["message"].as_str().is_some_and(|m| m.contains(text));
            seen.push(event);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(found, Ok(true)), "no log line {text:?} in {seen:#?}");
    seen
}

#[tokio::test]
async fn a_first_run_on_an_empty_database_logs_its_message_and_not_one_warning() {
    let (command, _file, port) = serve_command(SETTINGS).await;
    let mut medic = Command::from(command)
        .env("MEDIC_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(medic.stdout.take().unwrap()).lines();
    let mut log = until(&mut lines, "database schema ready").await;

    let posted = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/webhook"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(fixture("firing.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    log.extend(until(&mut lines, "[FIRING:1] PodCrashLooping").await);
    let message = log.last().unwrap();
    assert_eq!(message["notifier"], "incidents-slack");
    assert_eq!(message["summary"], "Pod api-7d9f is crash looping");

    let pid = medic.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    log.extend(until(&mut lines, "medic stopped").await);
    let status = tokio::time::timeout(WAIT, medic.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");

    let loud: Vec<&Value> = log
        .iter()
        .filter(|event| matches!(event["level"].as_str(), Some("WARN" | "ERROR")))
        .collect();
    assert!(loud.is_empty(), "a first run warned: {loud:#?}");
}
