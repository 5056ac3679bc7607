//! Remediation settings: `remediate` blocks checked when the config loads (action, parameters,
//! templates), the guard rails' settings, and `medic explain`.

use std::process::Command;

use medic::config::Budget;

use crate::helpers::config::{assert_problem, check_config, load_yaml, problems_in, AUTH};

fn rule(remediate: &str) -> String {
    format!("rules:\n  - name: r\n    matchers: ['alertname=\"X\"']\n    remediate: {remediate}\n")
}

#[test]
fn an_unknown_action_is_refused_with_the_known_ones() {
    let problems = problems_in(&rule("{action: reboot_cluster}"));
    assert_problem(
        &problems,
        "rules[0].remediate.action",
        "unknown action \"reboot_cluster\"",
    );
    assert_problem(&problems, "rules[0].remediate.action", "scale_up");
}

#[test]
fn unknown_missing_and_mistyped_parameters_are_refused() {
    let problems = problems_in(&rule(
        "{action: scale_up, params: {namespace: prod, replicas: 3, step: two}}",
    ));
    assert_problem(
        &problems,
        "rules[0].remediate.params.replicas",
        "scale_up takes no parameter",
    );
    assert_problem(
        &problems,
        "rules[0].remediate.params.deployment",
        "required by scale_up",
    );
    assert_problem(&problems, "rules[0].remediate.params.step", "expected an integer");
}

#[test]
fn a_template_that_names_nothing_is_refused() {
    let problems = problems_in(&rule(
        "{action: rollout_restart, params: {namespace: '{{ namespace }}', deployment: '{{ labels.app }}'}}",
    ));
    assert_problem(&problems, "rules[0].remediate.params.namespace", "names nothing");
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn restart_pods_needs_a_selector_or_a_pod_and_relieve_pool_a_known_database() {
    let problems = problems_in(&rule("{action: restart_pods, params: {namespace: prod}}"));
    assert_problem(&problems, "rules[0].remediate.params", "needs selector or pod");
    let problems = problems_in(&rule(
        "{action: postgres_relieve_pool, params: {database: orders}}",
    ));
    assert_problem(
        &problems,
        "rules[0].remediate.params.database",
        "not under remediation.databases",
    );
}

#[test]
fn budgets_read_as_actions_per_window() {
    assert_eq!(Budget::parse("3/1h").unwrap().actions, 3);
    assert_eq!(Budget::parse("20/30m").unwrap().window.as_secs(), 1800);
    for bad in ["3", "three/1h", "3/", "3/0s"] {
        assert!(Budget::parse(bad).is_err(), "{bad} accepted");
    }
    let problems = problems_in("remediation:\n  budget: {per_target: three an hour}\n");
    assert_problem(&problems, "remediation.budget.per_target", "not a budget");
}

#[test]
fn check_config_names_the_rule_of_a_bad_remediation() {
    let (code, stdout) = check_yaml(&rule("{action: scale_up, params: {namespace: p}}"));
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("rules[0].remediate.params.deployment: required by scale_up"),
        "{stdout}"
    );
}

fn explain(payload: &str) -> (bool, String) {
    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(file.path(), payload).unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/medic.example.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["explain", "--config", example])
        .arg(file.path())
        .env_clear()
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn payload(labels: &str) -> String {
    format!(
        r#"{{"receiver":"medic","status":"firing","alerts":[{{"status":"firing","labels":{labels},
        "annotations":{{}},"startsAt":"2026-11-26T10:00:00Z","endsAt":"0001-01-01T00:00:00Z",
        "generatorURL":"","fingerprint":"0123456789abcdef"}}],"groupLabels":{{}},"commonLabels":{{}},
        "commonAnnotations":{{}},"externalURL":"","version":"4","groupKey":"g","truncatedAlerts":0}}"#
    )
}

#[test]
fn explain_shows_the_rule_the_resolved_action_and_the_timers() {
    let (ok, text) = explain(&payload(
        r#"{"alertname":"HighMemoryUsage","namespace":"whiteboard-production","severity":"critical"}"#,
    ));
    assert!(ok, "{text}");
    assert!(text.contains("rule high-memory"), "{text}");
    assert!(
        text.contains("remediate: scale_up on deployment/whiteboard-production/whiteboard-app"),
        "{text}"
    );
    assert!(text.contains(r#""step":2"#), "{text}");
    assert!(text.contains("+10m") && text.contains("pagerduty"), "{text}");
}

#[test]
fn explain_says_when_an_alert_lacks_what_a_template_needs() {
    let (ok, text) = explain(&payload(r#"{"alertname":"HighMemoryUsage"}"#));
    assert!(ok, "{text}");
    assert!(
        text.contains(r#"would fail: the alert has no label "namespace""#),
        "{text}"
    );
    assert!(
        !text.contains("pagerduty"),
        "a step for critical alerts planned for one without severity: {text}"
    );
}

fn check_yaml(yaml: &str) -> (Option<i32>, String) {
    let file = crate::helpers::config::yaml(&format!("{AUTH}{yaml}"));
    check_config(file.path(), &[])
}

#[test]
fn check_config_warns_when_alerts_choose_the_namespace_and_none_is_allowed_explicitly() {
    let templated =
        rule(r#"{action: scale_up, params: {namespace: "{{ labels.namespace }}", deployment: web}}"#);
    let (code, stdout) = check_yaml(&templated);
    assert_eq!(code, Some(0), "a warning, not an error: {stdout}");
    assert!(
        stdout.contains("warning: rules[0].remediate.params.namespace: is taken from the alert"),
        "{stdout}"
    );

    let allowed = format!("remediation:\n  namespaces: {{allow: [prod]}}\n{templated}");
    let (code, stdout) = check_yaml(&allowed);
    assert_eq!(code, Some(0));
    assert!(!stdout.contains("warning"), "{stdout}");
    let literal = rule("{action: scale_up, params: {namespace: prod, deployment: web}}");
    assert!(!check_yaml(&literal).1.contains("warning"));
}

#[test]
fn literal_parameters_outside_the_limits_are_problems_at_their_key() {
    let problems = problems_in(&rule(
        "{action: scale_to, params: {namespace: prod, deployment: web, replicas: 500}}",
    ));
    assert_problem(&problems, "rules[0].remediate.params.replicas", "outside 0..=50");
    let problems = problems_in(&format!(
        "remediation:\n  limits: {{max_replicas: 600}}\n{}",
        rule("{action: scale_to, params: {namespace: Prod, deployment: web, replicas: 500}}")
    ));
    assert_problem(&problems, "rules[0].remediate.params.namespace", "DNS-1123 label");
    assert!(
        !problems.iter().any(|p| p.path.ends_with("replicas")),
        "{problems:#?}"
    );
    let problems = problems_in(&rule(
        "{action: postgres_relieve_pool, params: {database: main, threshold: 1s}}",
    ));
    assert_problem(
        &problems,
        "rules[0].remediate.params.threshold",
        "shorter than the minimum (5s)",
    );
}

#[test]
fn a_restart_run_must_fit_in_the_actions_deadline() {
    let slow = rule(
        "{action: restart_pods, params: {namespace: prod, selector: app=web, max_pods: 5, ready_timeout: 10m}}",
    );
    let problems = problems_in(&format!("remediation:\n  action_timeout: 30m\n{slow}"));
    assert_problem(
        &problems,
        "rules[0].remediate.params",
        "must fit within the action's deadline (27m",
    );
    let defaults = rule("{action: restart_pods, params: {namespace: prod, selector: app=web}}");
    let problems = problems_in(&format!("remediation:\n  action_timeout: 5m\n{defaults}"));
    assert_problem(
        &problems,
        "rules[0].remediate.params",
        "max_pods × ready_timeout (6m)",
    );
    let templated = rule(
        r#"{action: restart_pods, params: {namespace: prod, selector: app=web, max_pods: "{{ labels.n }}"}}"#,
    );
    assert!(
        crate::helpers::config::load_yaml(&format!("remediation:\n  action_timeout: 5m\n{templated}"), &[])
            .is_ok(),
        "a templated count is checked when rendered"
    );
}

#[test]
fn a_ladder_is_checked_step_by_step_with_each_steps_key_path() {
    let ladder = "
      - {action: scale_up, params: {namespace: prod, deployment: web}, verify_within: 5m}
      - {action: rollout_restart, params: {namespace: prod}, approval: required}
      - {action: reboot, params: {}}";
    let problems = problems_in(&rule(ladder));
    assert_problem(
        &problems,
        "rules[0].remediate[1].params.deployment",
        "required by rollout_restart",
    );
    assert_problem(
        &problems,
        "rules[0].remediate[2].action",
        "unknown action \"reboot\"",
    );
    assert!(
        !problems
            .iter()
            .any(|p| p.path.starts_with("rules[0].remediate[0]")),
        "{problems:#?}"
    );

    let problems = problems_in(&rule("[]"));
    assert_problem(&problems, "rules[0].remediate", "at least one step");

    // A mistake inside a step is named as itself, not as a shape that matched nothing.
    let problems = problems_in(&rule(
        "[{action: scale_up, params: {namespace: p, deployment: d}, approval: maybe}]",
    ));
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("maybe") && p.message.contains("required")),
        "{problems:#?}"
    );
    let ladder = "\n      - action: scale_up\n        params: {namespace: p, deployment: d}\n        verify_within: 5m\n        approval: required\n";
    load_yaml(&rule(ladder), &[]).expect("a valid ladder loads");
}

#[test]
fn explain_says_min_healthy_is_the_floor_only_where_no_pod_disruption_budget_covers() {
    let (ok, text) = explain(&payload(
        r#"{"alertname":"HighErrorRate","namespace":"whiteboard-production","severity":"critical"}"#,
    ));
    assert!(ok, "{text}");
    let floor = "    floor: min_healthy 50%; pods a PodDisruptionBudget covers are governed by it alone \
                 (its 429 is skipped_pdb); min_healthy is the floor only for workloads no budget covers\n";
    assert!(text.contains(floor), "{text}");
    assert_eq!(
        text.matches("floor:").count(),
        1,
        "only restart_pods has a floor: {text}"
    );
}

#[test]
fn explain_shows_every_step_of_a_ladder() {
    let (ok, text) = explain(&payload(
        r#"{"alertname":"HighErrorRate","namespace":"whiteboard-production","severity":"critical"}"#,
    ));
    assert!(ok, "{text}");
    assert!(text.contains("remediate (step 1): restart_pods"), "{text}");
    assert!(text.contains("verify within 5m"), "{text}");
    assert!(
        text.contains(
            "remediate (step 2): rollout_restart on deployment/whiteboard-production/whiteboard-app"
        ),
        "{text}"
    );
    assert!(text.contains("needs approval"), "{text}");
}

#[test]
fn an_approval_timeout_of_zero_is_a_config_problem() {
    let problems = problems_in("remediation: {approval: {timeout: 0s}}\n");
    assert_problem(
        &problems,
        "remediation.approval.timeout",
        "must be greater than 0",
    );
}
