//! `medic capacity` against a real Prometheus (2.42) whose history promtool backfilled with a
//! known trend and daily cycle, and its settings' problems through `medic check-config`.
//!
//! The history, one sample every 5 minutes over the 15 days before `at` (a whole hour, an hour
//! ago), of websocket connections on the Deployment `whiteboard/api`, split 60/40 over its two
//! pods (the usage query adds them), and a pod of another Deployment that must not count:
//!
//!   usage(t) = 1000 + 100 × (days since the start) + 500 × sin(2π × (t - at) / 1d) ± 20
//!
//! so at `at` it is 2500, growing 100 a day with its daily high 6 hours after each midnight
//! of `at`'s clock. kube-state-metrics' series say 4 replicas, and an HPA from 2 to 6.
//! With 1000 connections a pod and a 70% target:
//! - now: 2500 of 4000, 62.5%;
//! - in 7 days: 3200 (the cycle is at 0 there); in 30 days: 5500;
//! - the 30-day peak: 1000 + 100 × 44.25 + 500 = 5925 on the last day, 6 hours past the
//!   hour of `at`: ⌈5925 / 700⌉ = 9 replicas;
//! - the 4 replicas' 4000 run out at the first daily high reaching it: 10 days and 6 hours
//!   after `at`.
//!
//! The noise (under 1% of the usage) and where `at` falls in it vary from run to run, so the
//! forecast is held to stated tolerances: 2% at 7 days, 3% at 30 and at the peak, the peak's
//! hour within 2 hours, the run-out date within a day. (Five runs with `at` 1 to 200 hours
//! ago were all within 0.1% of 3200, 5500 and 5925, peaking 5 to 6 hours past the hour of
//! `at`, running out 10 days and 5 to 6 hours on.)

use std::{fmt::Write as _, path::Path, process::Command};

use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;

use crate::helpers::{
    config::yaml,
    prometheus::{self, close, rfc3339},
};

const DAY: i64 = 86_400;

/// `at` (a whole hour, an hour ago) and the OpenMetrics text of the 15 days before it.
fn history() -> (DateTime<Utc>, String) {
    let at = (Utc::now() - chrono::Duration::hours(1))
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    let end = at.timestamp();
    let start = end - 15 * DAY;
    let usage = |t: i64| {
        let days = (t - start) as f64 / DAY as f64;
        let cycle = (std::f64::consts::TAU * (t - end) as f64 / DAY as f64).sin();
        // Deterministic noise in [-20, 20].
        let noise = ((t / 300).wrapping_mul(7919) % 41) as f64 - 20.0;
        1000.0 + 100.0 * days + 500.0 * cycle + noise
    };
    let mut text = String::from("# TYPE whiteboard_connections gauge\n");
    let times: Vec<i64> = (start..=end).step_by(300).collect();
    for (pod, share) in [("api-7d9f-a", 0.6), ("api-7d9f-b", 0.4), ("billing-55c-x", 5.0)] {
        for &t in &times {
            let labels = format!(r#"namespace="whiteboard",pod="{pod}""#);
            writeln!(
                text,
                "whiteboard_connections{{{labels}}} {} {t}",
                share * usage(t)
            )
            .unwrap();
        }
    }
    let gauges = [
        (
            "kube_deployment_spec_replicas",
            r#"namespace="whiteboard",deployment="api""#,
            4,
        ),
        (
            "kube_horizontalpodautoscaler_spec_min_replicas",
            r#"namespace="whiteboard",horizontalpodautoscaler="api""#,
            2,
        ),
        (
            "kube_horizontalpodautoscaler_spec_max_replicas",
            r#"namespace="whiteboard",horizontalpodautoscaler="api""#,
            6,
        ),
    ];
    for (metric, labels, value) in gauges {
        writeln!(text, "# TYPE {metric} gauge").unwrap();
        for &t in times.iter().filter(|&&t| t >= end - DAY) {
            writeln!(text, "{metric}{{{labels}}} {value} {t}").unwrap();
        }
    }
    text.push_str("# EOF\n");
    (at, text)
}

fn settings(prometheus: &str) -> String {
    format!(
        r#"
prometheus:
  url: {prometheus}
capacity:
  history: 14d
  step: 1h
  target_utilisation: 70
  deployments:
    - namespace: whiteboard
      name: api
      usage: sum(whiteboard_connections{{namespace="$namespace", pod=~"$deployment-.*"}})
      capacity_per_pod: 1000
      unit: connections
      hpa: api
"#
    )
}

/// `medic capacity --config FILE ARGS`: exit code, stdout, stderr.
fn capacity(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    crate::helpers::config::medic(
        Command::new(env!("CARGO_BIN_EXE_medic"))
            .args(["capacity", "--config"])
            .arg(config)
            .args(args)
            .env_clear(),
    )
}

/// Seconds from `at` to the RFC 3339 time in `value`.
#[track_caller]
fn seconds_after(at: DateTime<Utc>, value: &Value) -> i64 {
    let time: DateTime<Utc> = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a time"))
        .parse()
        .unwrap();
    (time - at).num_seconds()
}

#[tokio::test]
async fn the_forecast_extrapolates_the_trend_and_sizes_the_replicas_for_the_peak() {
    let (at, text) = history();
    let prometheus = prometheus::backfilled(&text).await;
    let file = yaml(&settings(&prometheus.url));
    let at_text = rfc3339(at);

    let (code, stdout, stderr) = capacity(file.path(), &["--at", &at_text]);
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let forecast = &report["capacity_forecast"];
    assert_eq!(forecast["at"], at_text);
    assert_eq!(
        (&forecast["history"], &forecast["step"]),
        (&"14d".into(), &"1h".into())
    );
    let api = &forecast["deployments"][0];
    assert_eq!(
        (&api["namespace"], &api["name"]),
        (&"whiteboard".into(), &"api".into())
    );
    assert_eq!(api["unit"], "connections");
    assert_eq!(api["target_utilisation"], 70.0);
    assert_eq!(
        api["usage_query"],
        r#"sum(whiteboard_connections{namespace="whiteboard", pod=~"api-.*"})"#
    );
    assert_eq!(api["model"], "MSTL(24) + ETS(A,A,N)");
    // 14 days of hourly points, both ends included.
    assert_eq!(api["history"]["points"], 14 * 24 + 1);
    assert_eq!(api["history"]["end"], at_text);

    // Now: the two api pods' 2500 (not the billing pod's), of 4 × 1000.
    let current = &api["current"];
    assert_eq!(current["at"], at_text);
    close(&current["usage"], 2500.0, 20.0);
    assert_eq!(current["replicas"], 4);
    close(&current["utilisation"], 62.5, 0.5);
    assert_eq!(api["hpa"], serde_json::json!({"name": "api", "min": 2, "max": 6}));

    // The trend, extrapolated.
    let week = &api["forecast"]["7d"];
    assert_eq!(seconds_after(at, &week["at"]), 7 * DAY);
    close(&week["median"], 3200.0, 0.02 * 3200.0);
    let month = &api["forecast"]["30d"];
    assert_eq!(seconds_after(at, &month["at"]), 30 * DAY);
    close(&month["median"], 5500.0, 0.03 * 5500.0);
    close(
        &month["utilisation_median"],
        month["median"].as_f64().unwrap() / 40.0,
        0.01,
    );
    for horizon in [week, month] {
        assert!(horizon["p95"].as_f64() >= horizon["median"].as_f64(), "{horizon}");
    }

    // The peak: on the last day, at the daily high (6 hours past the hour of `at`, ± 2).
    let peak = &api["peak"];
    close(&peak["median"], 5925.0, 0.03 * 5925.0);
    assert_eq!(peak["median"], month["peak_median"]);
    let peak_after = seconds_after(at, &peak["at"]);
    assert!(peak_after >= 29 * DAY, "the peak is on the last day: {peak}");
    close(&(peak_after % DAY).into(), 6.0 * 3600.0, 2.0 * 3600.0);

    // Replicas: ⌈peak / (1000 × 70%)⌉ for the median peak and for the p95 one.
    let replicas = &api["replicas"];
    let needed = |peak: &Value| (peak.as_f64().unwrap() / 700.0 - 1e-9).ceil();
    assert_eq!(replicas["current"], 4);
    assert_eq!(replicas["needed"].as_f64(), Some(needed(&peak["median"])));
    assert_eq!(
        replicas["needed"], 9,
        "5925 connections at 70% of 1000: {replicas}"
    );
    assert_eq!(replicas["needed_p95"].as_f64(), Some(needed(&peak["p95"])));
    assert_eq!(replicas["hpa_max"], replicas["needed_p95"]);
    assert!(
        replicas["hpa_min"].as_u64() <= replicas["needed"].as_u64(),
        "{replicas}"
    );

    // 4 replicas run out at the daily high 10 days and 6 hours on, within a day; the p95
    // runs out no later.
    let runs_out = seconds_after(at, &api["runs_out_at"]);
    close(&runs_out.into(), (10 * DAY + 6 * 3600) as f64, DAY as f64);
    assert!(seconds_after(at, &api["runs_out_at_p95"]) <= runs_out);

    // The table says the same for people.
    let (code, table, stderr) = capacity(file.path(), &["--at", &at_text, "--format", "table"]);
    assert_eq!(code, Some(0), "{stderr}");
    let row = table
        .lines()
        .find(|line| line.starts_with("whiteboard/api"))
        .unwrap_or_else(|| panic!("no row for whiteboard/api:\n{table}"));
    assert!(row.contains("connections"), "{table}");
    assert!(row.contains("(62%)") || row.contains("(63%)"), "{table}");
    assert!(row.contains("2-6"), "the HPA now: {table}");
    let needed = format!("9 / {}", replicas["needed_p95"]);
    assert!(row.contains(&needed), "{needed} in {table}");
    assert!(row.contains(api["runs_out_at"].as_str().unwrap()), "{table}");
}

#[tokio::test]
async fn a_deployment_without_history_says_why_and_fails_the_command() {
    let (at, text) = history();
    let prometheus = prometheus::backfilled(&text).await;
    let settings = settings(&prometheus.url).replace("name: api", "name: chat");
    let file = yaml(&settings);

    let (code, stdout, stderr) = capacity(file.path(), &["--at", &rfc3339(at)]);
    assert_eq!(code, Some(1), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let chat = &report["capacity_forecast"]["deployments"][0];
    let error = chat["error"].as_str().unwrap();
    assert!(error.contains("no usage history"), "{error}");
    assert!(chat.get("replicas").is_none(), "{chat}");
    assert!(stderr.contains("whiteboard/chat: no usage history"), "{stderr}");
}

#[test]
fn capacity_settings_problems_are_reported_with_their_key_paths() {
    let file = yaml(
        r#"
server:
  auth: {allow_unauthenticated: true}
capacity:
  history: 60d
  step: 1h
  deployments:
    - namespace: whiteboard
      name: api
      usage: sum(whiteboard_connections{namespace="$namespace"}
      capacity_per_pod: -1
      unit: connections
"#,
    );
    let expected = [
        "capacity.history: must be between 7d and 30d",
        "capacity.deployments[0].usage:",
        "capacity.deployments[0].capacity_per_pod: must be a number greater than 0",
        "prometheus.url: must be set",
    ];

    let (code, stdout, stderr) = capacity(file.path(), &[]);
    assert_eq!(code, Some(1), "{stdout}");
    for problem in expected {
        assert!(stderr.contains(problem), "{problem:?} in {stderr}");
    }

    let output = Command::new(env!("CARGO_BIN_EXE_medic"))
        .arg("check-config")
        .arg(file.path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for problem in expected {
        assert!(stdout.contains(problem), "{problem:?} in {stdout}");
    }
}
