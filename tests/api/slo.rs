//! `medic slo rules`: the rules it prints pass `promtool check rules`, and promtool's unit tests
//! show the burn-rate alerts firing on series that burn the budget and staying quiet on
//! healthy ones, for a ratio SLI and a latency SLI. Invalid SLOs are reported by key path.

use std::{path::Path, process::Command};

use crate::helpers::config::{assert_problem, check_config, load_yaml, problems_in, yaml};

/// The issue's two SLOs: a ratio of good requests, and drawing operations under 200ms.
const SLOS: &str = r#"
prometheus:
  url: http://prometheus-operated.monitoring:9090
slos:
  - name: api-availability
    service: whiteboard-application
    description: Percentage of API requests that return successfully
    objective: 99.9
    window: 30d
    sli:
      ratio:
        good: sum(rate(http_request_duration_seconds_count{status_code!~"5.."}[$window]))
        total: sum(rate(http_request_duration_seconds_count[$window]))
    incidents: ['service="whiteboard"']
    owner_label: team
  - name: drawing-latency
    service: whiteboard-application
    objective: 99
    window: 30d
    sli:
      latency: {histogram: drawing_operation_duration_seconds, threshold: 200ms}
"#;

/// `medic slo rules --config FILE ARGS`: exit code, standard output, standard error.
fn slo_rules(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    crate::helpers::config::medic(
        Command::new(env!("CARGO_BIN_EXE_medic"))
            .args(["slo", "rules", "--config"])
            .arg(config)
            .args(args)
            .env_clear(),
    )
}

/// The rule file medic makes for `SLOS`, written into `dir`.
fn write_rules(dir: &Path) -> std::path::PathBuf {
    let config = yaml(SLOS);
    let (code, rules, stderr) = slo_rules(config.path(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let path = dir.join("rules.yml");
    std::fs::write(&path, rules).unwrap();
    path
}

/// Runs promtool; panics with its output unless it succeeds.
#[track_caller]
fn promtool(args: &[&str], dir: &Path) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool must be installed (Debian: apt-get install prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_rules_for_a_ratio_and_a_latency_slo_pass_promtool_check_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let out = promtool(&["check", "rules", rules.to_str().unwrap()], dir.path());
    // Per SLO: eight error ratios (5m, 30m, 1h, 2h, 6h, 1d, 3d and the SLO's 30d), the budget
    // and what is left of it, two alerts.
    assert!(out.contains("SUCCESS: 24 rules found"), "{out}");
    let text = std::fs::read_to_string(&rules).unwrap();
    for window in ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"] {
        assert!(text.contains(&format!("record: \"slo:sli_error:ratio_rate{window}\"")));
    }
    assert!(text.contains(r#"drawing_operation_duration_seconds_bucket{le="0.2"}[5m]"#));
}

#[test]
fn the_prometheusrule_object_holds_the_same_groups_and_its_labels() {
    let dir = tempfile::tempdir().unwrap();
    let plain = std::fs::read_to_string(write_rules(dir.path())).unwrap();
    let config = yaml(SLOS);
    let args = [
        "--format",
        "prometheusrule",
        "--name",
        "whiteboard-slos",
        "--label",
        "release=prometheus",
    ];
    let (code, object, stderr) = slo_rules(config.path(), &args);
    assert_eq!(code, Some(0), "{stderr}");
    let (head, spec) = object.split_once("spec:\n").unwrap();
    assert!(head.contains("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n"));
    assert!(head.contains("  name: \"whiteboard-slos\"\n  labels:\n    \"release\": \"prometheus\"\n"));
    let dedented: String = spec
        .lines()
        .map(|line| format!("{}\n", line.strip_prefix("  ").unwrap_or(line)))
        .collect();
    let groups = plain.split_once("groups:").unwrap().1;
    assert_eq!(dedented.split_once("groups:").unwrap().1, groups);
}

/// One expected `SLOBurnRate` alert in promtool's terms, with the annotations responders read.
fn expected_alert(slo: &str, what: &str, budget: &str, severity: &str, value: &str) -> String {
    let (speed, burns, lasts) = match severity {
        "critical" => ("fast", "14.4x over 1h and 5m, or 6x over 6h and 30m", "5d"),
        _ => ("steadily", "3x over 1d and 2h, or 1x over 3d and 6h", "30d"),
    };
    let description = format!(
        "{what}: {value} of events were bad over the long window. The error budget of {budget} is \
         burning faster than {burns}: at that rate it is spent within {lasts}."
    );
    let summary = format!("SLO {slo} of whiteboard-application is burning its error budget {speed}");
    format!(
        "          - exp_labels: {{slo: {slo}, service: whiteboard-application, severity: {severity}}}\n\
         \x20           exp_annotations:\n\
         \x20             summary: {}\n\
         \x20             description: {}\n\
         \x20             runbook_url: https://github.com/medic-sre/medic/blob/main/runbooks/SLOBurnRate.md\n",
        serde_json::to_string(&summary).unwrap(),
        serde_json::to_string(&description).unwrap(),
    )
}

/// A promtool test case: these series (one sample a minute), and the alerts expected at `at`.
fn case(series: &[(&str, &str)], at: &str, alerts: &[String]) -> String {
    let mut out = String::from("  - interval: 1m\n    input_series:\n");
    for (name, values) in series {
        out += &format!("      - series: '{name}'\n        values: '{values}'\n");
    }
    out += &format!("    alert_rule_test:\n      - eval_time: {at}\n        alertname: SLOBurnRate\n");
    if alerts.is_empty() {
        out += "        exp_alerts: []\n";
    } else {
        out += "        exp_alerts:\n";
        out += &alerts.concat();
    }
    out
}

/// Writes the rules for `SLOS` and these cases, and runs `promtool test rules`.
fn promtool_test(cases: &[String]) {
    promtool_test_with(SLOS, cases);
}

fn promtool_test_with(slos: &str, cases: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let config = yaml(slos);
    let (code, rules, stderr) = slo_rules(config.path(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    let test = format!(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n{}",
        cases.concat()
    );
    std::fs::write(dir.path().join("test.yml"), test).unwrap();
    promtool(&["test", "rules", "test.yml"], dir.path());
}

#[test]
fn a_ratio_slo_pages_on_a_fast_burn_opens_a_ticket_on_a_slow_one_and_is_quiet_when_healthy() {
    let ok = r#"http_request_duration_seconds_count{status_code="200"}"#;
    let failed = r#"http_request_duration_seconds_count{status_code="500"}"#;
    let what = "api-availability (Percentage of API requests that return successfully)";
    let alert =
        |severity, value| expected_alert("api-availability", what, "0.1% (99.9% over 30d)", severity, value);
    promtool_test(&[
        // 10% of requests fail: above 14.4 times the budget of 0.1%, so both fire.
        case(
            &[(ok, "0+90x200"), (failed, "0+10x200")],
            "90m",
            &[alert("critical", "10%"), alert("warning", "10%")],
        ),
        // 0.5%: five times the budget, under the page's 6x, over the ticket's 3x.
        case(
            &[(ok, "0+995x200"), (failed, "0+5x200")],
            "150m",
            &[alert("warning", "0.5%")],
        ),
        // 10% for an hour, then none: the short windows stop the page; the ticket stays.
        case(
            &[(ok, "0+90x60 5400+100x120"), (failed, "0+10x60 600+0x120")],
            "2h",
            &[alert("warning", "5.042%")],
        ),
        // 0.05%: within budget, nothing fires.
        case(&[(ok, "0+1999x300"), (failed, "0+1x300")], "4h", &[]),
    ]);
}

#[test]
fn the_budget_records_give_dashboards_the_burn_rate_and_the_budget_left() {
    let ok = r#"http_request_duration_seconds_count{status_code="200"}"#;
    let failed = r#"http_request_duration_seconds_count{status_code="500"}"#;
    let labels = r#"{slo="api-availability", service="whiteboard-application"}"#;
    // 0.5% of requests fail: the burn rate over an hour is 5 (the budget is 0.1%), and over the
    // SLO's window (all the history there is) four budgets more than the whole are spent.
    let expect = |expr: &str, value: &str| {
        format!(
            "      - expr: 'round({expr}, 0.001)'\n        eval_time: 150m\n        exp_samples:\n\
             \x20         - labels: '{labels}'\n            value: {value}\n"
        )
    };
    let mut test = String::from("  - interval: 1m\n    input_series:\n");
    for (name, values) in [(ok, "0+995x200"), (failed, "0+5x200")] {
        test += &format!("      - series: '{name}'\n        values: '{values}'\n");
    }
    test += "    promql_expr_test:\n";
    test += &expect(r#"slo:error_budget:ratio{slo="api-availability"}"#, "0.001");
    test += &expect(
        r#"slo:sli_error:ratio_rate1h{slo="api-availability"} / on(slo, service) slo:error_budget:ratio"#,
        "5",
    );
    test += &expect(
        r#"slo:error_budget_remaining:ratio{slo="api-availability"}"#,
        "-4",
    );
    promtool_test(&[test]);
}

#[test]
fn a_latency_slo_counts_requests_slower_than_the_threshold_bucket_as_bad() {
    let fast = r#"drawing_operation_duration_seconds_bucket{le="0.2"}"#;
    let faster = r#"drawing_operation_duration_seconds_bucket{le="0.1"}"#;
    let all = "drawing_operation_duration_seconds_count";
    let alert = |severity, value| {
        expected_alert(
            "drawing-latency",
            "drawing-latency",
            "1% (99% over 30d)",
            severity,
            value,
        )
    };
    promtool_test(&[
        // 30% slower than 200ms: above 14.4 times the budget of 1%.
        case(
            &[(faster, "0+10x200"), (fast, "0+70x200"), (all, "0+100x200")],
            "90m",
            &[alert("critical", "30%"), alert("warning", "30%")],
        ),
        // 4%: over the ticket's 3x, under the page's 6x.
        case(
            &[(faster, "0+10x200"), (fast, "0+96x200"), (all, "0+100x200")],
            "150m",
            &[alert("warning", "4%")],
        ),
        // 0.5% slower than 200ms (though most are slower than 100ms): within budget.
        case(
            &[(faster, "0+10x300"), (fast, "0+995x300"), (all, "0+1000x300")],
            "4h",
            &[],
        ),
    ]);
}

#[test]
fn a_whole_second_threshold_finds_its_bucket_as_prometheus_2_and_3_write_it() {
    let slos = "slos:\n  - name: save-latency\n    service: whiteboard-application\n    objective: 99\n    \
                window: 7d\n    sli:\n      latency: {histogram: save_duration_seconds, threshold: 1s}\n";
    let alert = |le: &str| {
        let bucket = format!(r#"save_duration_seconds_bucket{{le="{le}"}}"#);
        case(
            &[
                (bucket.as_str(), "0+70x200"),
                ("save_duration_seconds_count", "0+100x200"),
            ],
            "90m",
            &[
                expected_page_for_save_latency("critical"),
                expected_page_for_save_latency("warning"),
            ],
        )
    };
    // Prometheus 2 stores the bound as "1", Prometheus 3 as "1.0"; a "10" bucket is another.
    let other = case(
        &[
            (r#"save_duration_seconds_bucket{le="10"}"#, "0+70x200"),
            ("save_duration_seconds_count", "0+100x200"),
        ],
        "90m",
        &[],
    );
    promtool_test_with(slos, &[alert("1"), alert("1.0"), other]);
}

fn expected_page_for_save_latency(severity: &str) -> String {
    expected_alert(
        "save-latency",
        "save-latency",
        "1% (99% over 7d)",
        severity,
        "30%",
    )
    .replace("within 5d", "within 28h")
    .replace("within 30d", "within 7d")
}

#[test]
fn the_environment_sets_where_prometheus_is() {
    let settings = load_yaml(SLOS, &[("MEDIC_PROMETHEUS__URL", "http://prometheus:9090")]).unwrap();
    assert_eq!(settings.prometheus.url.as_deref(), Some("http://prometheus:9090"));
    assert_eq!(settings.slos.len(), 2);
}

#[test]
fn invalid_slos_are_reported_with_their_key_paths() {
    let problems = problems_in(
        r#"
prometheus:
  url: prometheus:9090
slos:
  - name: api availability
    service: web
    objective: 100
    window: 30d
    sli:
      ratio: {good: 'sum(rate(ok[5m]))', total: 'sum(rate(all[$window])'}
    incidents: ['service=~"(unclosed"']
    owner_label: 'team-name'
  - name: latency
    service: web
    objective: 99
    window: 0s
    sli:
      ratio: {good: 'sum(rate(ok[$window]))', total: 'sum(rate(all[$window]))'}
      latency: {histogram: drawing_duration_seconds, threshold: 200ms}
  - name: latency
    service: web
    objective: 0
    window: 30d
    sli:
      latency: {histogram: 'drawing-duration', threshold: 0s}
"#,
    );
    assert_problem(&problems, "prometheus.url", "http://");
    assert_problem(&problems, "slos[0].name", "becomes the `slo` label");
    assert_problem(&problems, "slos[0].objective", "between 0 and 100");
    assert_problem(&problems, "slos[0].sli.ratio.good", "$window");
    assert_problem(&problems, "slos[0].sli.ratio.total", "balance");
    assert_problem(&problems, "slos[0].incidents[0]", "invalid matcher");
    assert_problem(&problems, "slos[0].owner_label", "not a label name");
    assert_problem(&problems, "slos[1].window", "greater than 0");
    assert_problem(&problems, "slos[1].sli", "exactly one of ratio and latency");
    assert_problem(&problems, "slos[2].name", "already named");
    assert_problem(&problems, "slos[2].objective", "between 0 and 100");
    assert_problem(&problems, "slos[2].sli.latency.histogram", "not a metric name");
    assert_problem(&problems, "slos[2].sli.latency.threshold", "greater than 0");
}

#[test]
fn check_config_and_slo_rules_report_an_invalid_slo() {
    let file = yaml(&format!(
        "{}slos:\n  - {{name: x, service: y, objective: 99, window: 30d, sli: {{}}}}\n",
        crate::helpers::config::AUTH
    ));
    let (code, out) = check_config(file.path(), &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("slos[0].sli: must have exactly one of ratio and latency"),
        "{out}"
    );
    let (code, rules, stderr) = slo_rules(file.path(), &[]);
    assert_eq!(code, Some(1));
    assert!(rules.is_empty(), "{rules}");
    assert!(stderr.contains("slos[0].sli"), "{stderr}");
}

#[test]
fn slo_rules_needs_none_of_the_secrets_serve_reads() {
    // The rules are made in CI, where the notifiers' secret files are not at hand.
    let config = yaml(&format!(
        "notifiers:\n  pager:\n    type: pagerduty\n    routing_key_file: /nonexistent/key\n{SLOS}"
    ));
    let (code, rules, stderr) = slo_rules(config.path(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(rules.contains("name: \"slo-api-availability\""), "{rules}");
}
