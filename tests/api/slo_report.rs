//! `medic slo report` and `GET /api/v1/slo/report` against a real Prometheus (2.42) whose
//! history promtool backfilled with known numbers, and incidents posted through `/webhook`.
//!
//! The history, one sample a minute over the three days before `at` (one hour ago):
//! - `http_requests_total`: 1000 requests a minute, of which 8 fail (`code="500"`) until a day
//!   before `at` and 4 after. Over a 2d window 0.6% fail: the SLI is 99.4%.
//! - `drawing_operation_duration_seconds`: 1000 observations a minute, 900 under 0.1s, 980
//!   under 0.2s, 995 under 0.5s: the latency SLI at 200ms is 98%, and p95 is interpolated
//!   in the (0.1, 0.2] bucket at 0.1 + 0.1 * 50/80 = 162.5ms.

use std::{fmt::Write as _, net::TcpListener, path::Path, process::Command};

use chrono::{DateTime, Timelike, Utc};
use serde_json::{json, Value};

use crate::helpers::{
    firing_alert,
    prometheus::{self, close, rfc3339, Prometheus},
    yaml_file, TestApp,
};

/// Off from the exact figure by at most this many percentage points (the first minute of a
/// window falls out of `rate()`; everything else is exact).
const TOLERANCE: f64 = 0.01;

/// `at` (a whole minute, an hour ago) and the OpenMetrics text of the three days before it.
fn history() -> (DateTime<Utc>, String) {
    let now = Utc::now();
    let at = (now - chrono::Duration::hours(1))
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    let end = at.timestamp();
    let start = end - 3 * 86_400;
    let minutes: Vec<i64> = (start..=end).step_by(60).collect();
    let errors = |t: i64| if t > end - 86_400 { 4.0 } else { 8.0 };
    let mut text = String::from("# TYPE http_requests counter\n");
    for code in ["200", "500"] {
        let mut total = 0.0;
        for &t in &minutes {
            total += if code == "500" {
                errors(t)
            } else {
                1000.0 - errors(t)
            };
            writeln!(text, "http_requests_total{{code=\"{code}\"}} {total} {t}").unwrap();
        }
    }
    text.push_str("# TYPE drawing_operation_duration_seconds histogram\n");
    let buckets = [("0.1", 900.0), ("0.2", 980.0), ("0.5", 995.0), ("+Inf", 1000.0)];
    for (i, &t) in minutes.iter().enumerate() {
        let n = (i + 1) as f64;
        for (le, per_minute) in buckets {
            writeln!(
                text,
                "drawing_operation_duration_seconds_bucket{{le=\"{le}\"}} {} {t}",
                per_minute * n
            )
            .unwrap();
        }
        writeln!(
            text,
            "drawing_operation_duration_seconds_count {} {t}",
            1000.0 * n
        )
        .unwrap();
        writeln!(text, "drawing_operation_duration_seconds_sum {} {t}", 100.0 * n).unwrap();
    }
    text.push_str("# EOF\n");
    (at, text)
}

/// Backfills [`history`] and starts Prometheus on it; returns it with `at`.
async fn prometheus() -> (Prometheus, DateTime<Utc>) {
    let (at, text) = history();
    (prometheus::backfilled(&text).await, at)
}

/// Three SLOs over a 2d window: the ratio at 99% (healthy: 40% of the budget left) and at
/// 99.5% (breached: -20%), and the latency at 95% under 200ms (healthy: 60% left).
fn slos(prometheus: &str) -> String {
    let ratio = r#"
      ratio:
        good: sum(rate(http_requests_total{code!~"5.."}[$window]))
        total: sum(rate(http_requests_total[$window]))"#;
    format!(
        r#"
prometheus:
  url: {prometheus}
slos:
  - name: api-availability
    service: whiteboard
    description: API requests that succeed
    objective: 99
    window: 2d
    sli:{ratio}
    incidents: ['service="whiteboard"']
    owner_label: team
  - name: api-availability-strict
    service: whiteboard
    objective: 99.5
    window: 2d
    sli:{ratio}
    incidents: ['service="whiteboard"', 'severity="critical"']
    owner_label: team
  - name: drawing-latency
    service: whiteboard
    objective: 95
    window: 2d
    sli:
      latency: {{histogram: drawing_operation_duration_seconds, threshold: 200ms}}
    incidents: ['service="drawing"']
    owner_label: team
"#
    )
}

/// Posts a firing alert that began `ago` before `at`; returns its incident's id.
async fn incident(
    app: &TestApp,
    group: &str,
    at: DateTime<Utc>,
    ago: chrono::Duration,
    labels: Value,
) -> i64 {
    let mut payload = firing_alert(
        group,
        "HighErrorRate",
        &format!(
            "{:016x}",
            group.bytes().fold(7u64, |h, b| h.wrapping_mul(31) + u64::from(b))
        ),
        labels,
    );
    payload["alerts"][0]["startsAt"] = json!(rfc3339(at - ago));
    app.post_for_incident(&payload).await
}

/// `medic slo report --config FILE ARGS` with the test medic's database; exit code, stdout, stderr.
fn slo_report(config: &Path, database_url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    crate::helpers::config::medic(
        Command::new(env!("CARGO_BIN_EXE_medic"))
            .args(["slo", "report", "--config"])
            .arg(config)
            .args(args)
            .env_clear()
            .env("MEDIC_DATABASE__URL", database_url),
    )
}

fn slo<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["slo_report"]["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no SLO {name} in {report:#}"))
}

fn incident_ids(slo: &Value) -> Vec<i64> {
    slo["incidents_affecting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["incident_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_report_measures_each_slo_in_prometheus_with_the_incidents_that_spent_its_budget() {
    let (prometheus, at) = prometheus().await;
    let config = slos(&prometheus.url);
    let app = TestApp::builder().config(&config).spawn().await;
    let labels = json!({"service": "whiteboard", "severity": "critical", "team": "web"});
    let web = incident(&app, "web", at, chrono::Duration::hours(3), labels).await;
    let drawing_labels = json!({"service": "drawing", "team": "canvas"});
    let drawing = incident(&app, "drawing", at, chrono::Duration::hours(30), drawing_labels).await;
    let other = json!({"service": "billing"});
    incident(&app, "other", at, chrono::Duration::hours(2), other).await;
    // A remediation of the web incident whose verification found the errors still there.
    app.sql()
        .await
        .execute(
            "INSERT INTO remediations (incident_id, rule, action, target, episode, result, acted,
                                       dry_run, verification)
             VALUES ($1, 'restart-api', 'restart_pods', 'deployment/web/api', 'e@1', 'success',
                     true, false, 'not_fixed')",
            &[&web],
        )
        .await
        .unwrap();

    let file = yaml_file(&config);
    let at_text = rfc3339(at);
    let args = ["--at", at_text.as_str(), "--window", "1d"];
    let (code, stdout, stderr) = slo_report(file.path(), &app.database_url, &args);
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();

    let period = &report["slo_report"]["period"];
    assert_eq!(period["end"], at_text);
    assert_eq!(period["start"], rfc3339(at - chrono::Duration::days(1)));
    assert_eq!(report["slo_report"]["service"], "whiteboard");

    // Ratio at 99%: 0.6% errors over 2d leave 40% of the budget; the last day (0.4%) beats
    // the day before (0.8%).
    let api = slo(&report, "api-availability");
    assert_eq!(api["target"], 99.0);
    assert_eq!(api["measurement_window"], "2d");
    assert_eq!(api["description"], "API requests that succeed");
    let perf = &api["current_performance"];
    close(&perf["value"], 99.4, TOLERANCE);
    close(&perf["error_budget_remaining"], 40.0, TOLERANCE * 100.0);
    assert_eq!(perf["status"], "healthy");
    assert_eq!(perf["trend"], "improving");
    assert!(api["sli_query"].as_str().unwrap().contains("[2d]"), "{api}");
    assert!(api.get("p95_ms").is_none() && api.get("unit").is_none(), "{api}");
    assert_eq!(incident_ids(api), vec![web]);
    let affecting = &api["incidents_affecting"][0];
    assert_eq!(affecting["date"], rfc3339(at - chrono::Duration::hours(3)));
    assert_eq!(affecting["duration"], "3h");
    assert_eq!(affecting["cause"], "HighErrorRate: error rate above 5%");
    assert_eq!(affecting["owner"], "web");
    assert_eq!(affecting["ongoing"], true);
    close(&affecting["error_ratio"], 0.004, 0.0001);
    // 0.4% of 3h of traffic against 1% of 2d: 2.5% of the budget.
    close(&affecting["error_budget_spent"], 2.5, 0.1);
    assert!(
        affecting["impact"]
            .as_str()
            .unwrap()
            .contains("0.400% bad events over 3h"),
        "{affecting}"
    );

    // The same SLI at 99.5% is breached: -20% of the budget left.
    let strict = slo(&report, "api-availability-strict");
    close(
        &strict["current_performance"]["error_budget_remaining"],
        -20.0,
        TOLERANCE * 200.0,
    );
    assert_eq!(strict["current_performance"]["status"], "breached");
    assert_eq!(incident_ids(strict), vec![web]);

    // Latency at 95% under 200ms: 98% are, 60% of the budget left, p95 162.5ms.
    let latency = slo(&report, "drawing-latency");
    let perf = &latency["current_performance"];
    close(&perf["value"], 98.0, TOLERANCE);
    close(&perf["error_budget_remaining"], 60.0, TOLERANCE * 20.0);
    assert_eq!(perf["status"], "healthy");
    assert_eq!(perf["trend"], "stable");
    assert_eq!(latency["threshold_ms"], 200.0);
    assert_eq!(latency["unit"], "ms");
    close(&latency["p95_ms"], 162.5, 0.5);
    // Began 30h before `at`, before the period, and still firing: it overlaps.
    assert_eq!(incident_ids(latency), vec![drawing]);
    // 2% of 30h against 5% of 2d: 25% of the budget.
    close(
        &latency["incidents_affecting"][0]["error_budget_spent"],
        25.0,
        0.5,
    );

    // Worst status; the mean of the budgets clipped to [0, 100]: (40 + 0 + 60) / 3.
    let overall = &report["slo_report"]["overall_reliability"];
    assert_eq!(overall["status"], "breached");
    close(&overall["score"], 100.0 / 3.0, 0.5);
    assert!(overall["recommendation"]
        .as_str()
        .unwrap()
        .contains("api-availability-strict"));

    let items = report["slo_report"]["action_items"].as_array().unwrap();
    let item = |needle: &str| {
        items
            .iter()
            .find(|i| i["title"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no action item {needle:?} in {items:#?}"))
    };
    let week = (at + chrono::Duration::days(7)).format("%Y-%m-%d").to_string();
    let breached = item("Bring api-availability-strict back");
    assert_eq!(
        (&breached["priority"], &breached["owner"]),
        (&json!("high"), &json!("web"))
    );
    assert_eq!(breached["due_date"], week);
    let unfixed = item("restart_pods on deployment/web/api did not fix");
    assert_eq!(
        (&unfixed["priority"], &unfixed["owner"]),
        (&json!("high"), &json!("web"))
    );
    assert_eq!(unfixed["due_date"], week);
    let follow_up = item(&format!("Follow up incident #{drawing}"));
    assert_eq!(
        (&follow_up["priority"], &follow_up["owner"]),
        (&json!("high"), &json!("canvas"))
    );
    // Incident #web spent 2.5% of one SLO's budget (low) and 5% of the other's: the more
    // urgent of the two items stays.
    let web_follow_up = item(&format!("Follow up incident #{web}"));
    assert_eq!(web_follow_up["priority"], "medium");
    let due = (at + chrono::Duration::days(14)).format("%Y-%m-%d").to_string();
    assert_eq!(web_follow_up["due_date"], due);
    let follow_ups = items
        .iter()
        .filter(|i| i["title"].as_str().unwrap().contains("Follow up"));
    assert_eq!(follow_ups.count(), 2, "one per incident: {items:#?}");
    assert_eq!(items[0]["priority"], "high");
    let order: Vec<&str> = items.iter().map(|i| i["priority"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        ["high", "high", "high", "medium"],
        "most urgent first: {items:#?}"
    );

    // The API answers the viewer with the same report.
    let query = format!("/api/v1/slo/report?at={}&window=1d", at_text.replace('+', "%2B"));
    let api_report = app.get_json(&query).await;
    assert_eq!(api_report, report);

    // Markdown: the same numbers in tables.
    let args = ["--at", at_text.as_str(), "--window", "1d", "--format", "markdown"];
    let (code, markdown, stderr) = slo_report(file.path(), &app.database_url, &args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        markdown.contains("| api-availability-strict | 99.5% | 99.4"),
        "{markdown}"
    );
    assert!(markdown.contains("| breached |"), "{markdown}");
    assert!(markdown.contains(&format!("| #{web} |")), "{markdown}");
}

#[tokio::test]
async fn the_report_endpoint_refuses_a_bad_time_and_needs_prometheus() {
    let app = TestApp::builder().spawn().await;
    let response = app.get("/api/v1/slo/report?at=yesterday").await;
    assert_eq!(response.status(), 400);
    let response = app.get("/api/v1/slo/report?window=soon").await;
    assert_eq!(response.status(), 400);
    let response = app.get("/api/v1/slo/report").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body.to_string().contains("prometheus.url"), "{body}");
    let response = app.get_anonymous("/api/v1/slo/report").await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn the_command_says_why_when_prometheus_is_unreachable() {
    let app = TestApp::builder().spawn().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = yaml_file(&slos(&format!("http://127.0.0.1:{port}")));
    let (code, stdout, stderr) = slo_report(file.path(), &app.database_url, &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stderr.contains("Prometheus"), "{stderr}");
}

#[tokio::test]
async fn only_incidents_whose_firing_overlaps_the_period_are_counted() {
    let (prometheus, at) = prometheus().await;
    let app = TestApp::builder().config(&slos(&prometheus.url)).spawn().await;
    let hours = chrono::Duration::hours;
    let labels = json!({"service": "whiteboard", "team": "web"});
    // Began 40h before `at` and resolved 30h before: before the 1d period.
    let before = incident(&app, "before", at, hours(40), labels.clone()).await;
    // Began 2h before `at`, resolved an hour later: inside it.
    let inside = incident(&app, "inside", at, hours(2), labels.clone()).await;
    // Began after `at`: not yet.
    let after = incident(&app, "after", at, hours(-1), labels).await;
    let sql = app.sql().await;
    for (id, resolved) in [(before, at - hours(30)), (inside, at - hours(1))] {
        sql.execute(
            "UPDATE incidents SET status = 'resolved', resolved_at = $2 WHERE id = $1",
            &[&id, &resolved],
        )
        .await
        .unwrap();
    }

    let query = format!("/api/v1/slo/report?at={}&window=1d", rfc3339(at));
    let report = app.get_json(&query).await;
    let api = slo(&report, "api-availability");
    assert_eq!(
        incident_ids(api),
        vec![inside],
        "not #{before} nor #{after}: {api:#}"
    );
    let counted = &api["incidents_affecting"][0];
    assert_eq!(counted["duration"], "1h");
    assert_eq!(counted["ongoing"], false);
    // 0.4% of an hour's traffic against 1% of 2d.
    close(
        &counted["error_budget_spent"],
        100.0 * 0.004 / (0.01 * 48.0),
        0.05,
    );
    // Without `severity="critical"` the strict SLO's matchers select none of them.
    assert_eq!(
        incident_ids(slo(&report, "api-availability-strict")),
        Vec::<i64>::new()
    );
}
