//! Rules and timer planning, from rules written as the config's `rules:` list would be.

use std::{collections::BTreeMap, time::Duration};

use serde_json::{json, Value};

use super::Rules;
use crate::{
    alertmanager::{Data, Status, KV},
    config::{NotifierType, Problem, RuleSettings},
    domain::{Notification, ParamLimits, PlannedTimer, TimerKind, TimerWork},
};

fn notifiers() -> BTreeMap<String, NotifierType> {
    [
        ("slack", NotifierType::Slack),
        ("pd", NotifierType::Pagerduty),
        ("hook", NotifierType::Webhook),
    ]
    .into_iter()
    .map(|(name, kind)| (name.to_owned(), kind))
    .collect()
}

/// Rules written as the config's `rules:` list would be, in JSON.
fn compile(rules: Value) -> Rules {
    let settings: Vec<RuleSettings> = serde_json::from_value(rules).unwrap();
    Rules::compile(&settings, &notifiers(), &ParamLimits::default()).unwrap()
}

fn compile_err(rules: Value) -> Vec<Problem> {
    let settings: Vec<RuleSettings> = serde_json::from_value(rules).unwrap();
    Rules::compile(&settings, &notifiers(), &ParamLimits::default()).unwrap_err()
}

fn labels(pairs: &[(&str, &str)]) -> KV {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The names of the rules that take an alert with these labels.
fn taken_by(rules: &Rules, pairs: &[(&str, &str)]) -> Vec<String> {
    let labels = labels(pairs);
    rules.matching(&labels).map(|rule| rule.name.clone()).collect()
}

/// A notification of one group, shaped like tests/fixtures/alertmanager/firing.json, with one
/// alert per `(status, labels)`, each its own fingerprint.
fn notification(alerts: &[(&str, &[(&str, &str)])]) -> Notification {
    let alerts: Vec<Value> = alerts
        .iter()
        .enumerate()
        .map(|(i, (status, pairs))| {
            let ends_at = if *status == "resolved" {
                "2026-11-26T16:00:00Z"
            } else {
                "0001-01-01T00:00:00Z"
            };
            json!({
                "status": status,
                "labels": labels(pairs),
                "annotations": {"summary": "something is wrong"},
                "startsAt": "2026-11-26T15:53:17.755987228Z",
                "endsAt": ends_at,
                "generatorURL": "http://prometheus.local/graph",
                "fingerprint": format!("{:016x}", 0xedac_2885_0000_0000_u64 + i as u64),
            })
        })
        .collect();
    let status = if alerts.iter().any(|a| a["status"] == "firing") {
        "firing"
    } else {
        "resolved"
    };
    let data: Data = serde_json::from_value(json!({
        "receiver": "medic",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": "PodCrashLooping"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://vm:9093",
        "version": "4",
        "groupKey": "{}:{alertname=\"PodCrashLooping\"}",
        "truncatedAlerts": 0,
    }))
    .unwrap();
    Notification::parse(data).unwrap()
}

fn firing<'a>(pairs: &'a [(&'a str, &'a str)]) -> (&'static str, &'a [(&'a str, &'a str)]) {
    ("firing", pairs)
}

/// `(kind, rule, step, notifier)` of each planned timer, in plan order.
fn planned(rules: &Rules, notification: &Notification) -> Vec<(TimerKind, String, i32, String)> {
    rules
        .plan(notification)
        .into_iter()
        .map(|t| {
            let to = match &t.work {
                TimerWork::Remediation(work) | TimerWork::Verify(work) => work.action.as_str().to_owned(),
                work => work.notifier().unwrap_or_default().to_owned(),
            };
            (t.kind(), t.rule, t.work.step(), to)
        })
        .collect()
}

fn opened(rule: &str, notifier: &str) -> (TimerKind, String, i32, String) {
    (TimerKind::Opened, rule.to_owned(), 0, notifier.to_owned())
}

fn escalation(rule: &str, step: i32, notifier: &str) -> (TimerKind, String, i32, String) {
    (TimerKind::Escalation, rule.to_owned(), step, notifier.to_owned())
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn the_first_matching_rule_takes_an_alert() {
    let rules = compile(json!([
        {"name": "x", "matchers": ["alertname=\"X\""], "notify": ["slack"]},
        {"name": "x-or-y", "matchers": ["alertname=~\"X|Y\""], "notify": ["pd"]},
        {"name": "rest", "notify": ["hook"]},
    ]));
    assert_eq!(taken_by(&rules, &[("alertname", "X")]), ["x"]);
    assert_eq!(taken_by(&rules, &[("alertname", "Y")]), ["x-or-y"]);
    assert_eq!(taken_by(&rules, &[("alertname", "Z")]), ["rest"]);
    assert_eq!(taken_by(&rules, &[("job", "node")]), ["rest"]);

    let n = notification(&[firing(&[("alertname", "X")])]);
    assert_eq!(planned(&rules, &n), [opened("x", "slack")]);
}

#[test]
fn no_rule_takes_an_alert_that_none_matches() {
    let rules = compile(json!([{"name": "x", "matchers": ["alertname=\"X\""], "notify": ["slack"]}]));
    assert!(taken_by(&rules, &[("alertname", "Y")]).is_empty());
    assert!(rules
        .plan(&notification(&[firing(&[("alertname", "Y")])]))
        .is_empty());
    assert!(Rules::default()
        .plan(&notification(&[firing(&[("alertname", "Y")])]))
        .is_empty());
}

#[test]
fn continue_lets_later_rules_take_the_alert_too() {
    let rules = compile(json!([
        {"name": "audit", "notify": ["hook"], "continue": true},
        {"name": "db-continue", "matchers": ["service=\"db\""], "notify": ["pd"], "continue": true},
        {"name": "db", "matchers": ["service=\"db\""], "notify": ["slack"]},
        {"name": "rest", "notify": ["slack"]},
    ]));
    assert_eq!(
        taken_by(&rules, &[("service", "db")]),
        ["audit", "db-continue", "db"]
    );
    assert_eq!(taken_by(&rules, &[("service", "api")]), ["audit", "rest"]);

    let n = notification(&[firing(&[("service", "db")])]);
    assert_eq!(
        planned(&rules, &n),
        [
            opened("audit", "hook"),
            opened("db-continue", "pd"),
            opened("db", "slack")
        ]
    );
}

#[test]
fn a_rule_with_severities_takes_only_alerts_of_those_severities() {
    let rules = compile(json!([
        {"name": "urgent", "severities": ["critical", "error"], "notify": ["pd"]},
        {"name": "rest", "notify": ["slack"]},
    ]));
    assert_eq!(taken_by(&rules, &[("severity", "critical")]), ["urgent"]);
    assert_eq!(taken_by(&rules, &[("severity", "error")]), ["urgent"]);
    assert_eq!(taken_by(&rules, &[("severity", "warning")]), ["rest"]);
    assert_eq!(taken_by(&rules, &[("alertname", "NoSeverity")]), ["rest"]);
    assert!(rules
        .get("urgent")
        .unwrap()
        .matches(&labels(&[("severity", "critical")])));
    assert!(!rules
        .get("urgent")
        .unwrap()
        .matches(&labels(&[("severity", "info")])));
}

/// A rule announcing to Slack, paging for critical incidents only, then calling a webhook.
fn paging_rules() -> Rules {
    compile(json!([
        {
            "name": "db",
            "matchers": ["service=\"db\""],
            "notify": ["slack"],
            "escalation": [
                {"after": "5m", "notify": ["pd"], "severities": ["critical"]},
                {"after": "30m", "notify": ["hook"]},
            ],
        },
        {"name": "rest", "notify": ["slack"]},
    ]))
}

#[test]
fn a_step_for_some_severities_is_planned_only_when_a_firing_alert_of_the_rule_has_one() {
    let rules = paging_rules();
    let warning = [("service", "db"), ("severity", "warning")];
    let critical = [("service", "db"), ("severity", "critical")];
    let without_paging = [opened("db", "slack"), escalation("db", 2, "hook")];
    let with_paging = [
        opened("db", "slack"),
        escalation("db", 1, "pd"),
        escalation("db", 2, "hook"),
    ];

    assert_eq!(
        planned(&rules, &notification(&[firing(&warning)])),
        without_paging
    );
    assert_eq!(planned(&rules, &notification(&[firing(&critical)])), with_paging);
    assert_eq!(
        planned(&rules, &notification(&[firing(&[("service", "db")])])),
        without_paging,
        "no severity label"
    );

    // The most urgent severity among the rule's alerts counts, in either order.
    let n = notification(&[firing(&warning), firing(&critical), firing(&warning)]);
    assert_eq!(planned(&rules, &n), with_paging);
    let n = notification(&[firing(&critical), firing(&warning)]);
    assert_eq!(planned(&rules, &n), with_paging);
    let n = notification(&[firing(&[("service", "db")]), firing(&critical)]);
    assert_eq!(planned(&rules, &n), with_paging);

    // A resolved critical alert does not count.
    let n = notification(&[("resolved", &critical), firing(&warning)]);
    assert_eq!(planned(&rules, &n), without_paging);

    // Nor does a critical alert that another rule took.
    let n = notification(&[
        firing(&warning),
        firing(&[("service", "api"), ("severity", "critical")]),
    ]);
    assert_eq!(
        planned(&rules, &n),
        [
            opened("db", "slack"),
            escalation("db", 2, "hook"),
            opened("rest", "slack")
        ]
    );
}

/// Whether a step is planned must not depend on the order of the group's alerts.
#[test]
fn a_step_for_some_severities_is_planned_whatever_the_order_of_the_alerts() {
    let rules = compile(json!([
        {
            "name": "db",
            "escalation": [
                {"after": "1m", "notify": ["pd"], "severities": ["critical"]},
                {"after": "2m", "notify": ["hook"], "severities": ["sev1"]},
            ],
        },
    ]));
    let page = [("severity", "page")];
    let critical = [("severity", "critical")];
    let none = [("alertname", "X")];
    let sev1 = [("severity", "sev1")];
    for alerts in [
        [firing(&critical), firing(&page)],
        [firing(&page), firing(&critical)],
    ] {
        assert_eq!(
            planned(&rules, &notification(&alerts)),
            [escalation("db", 1, "pd")],
            "{alerts:?}"
        );
    }
    for alerts in [[firing(&sev1), firing(&none)], [firing(&none), firing(&sev1)]] {
        assert_eq!(
            planned(&rules, &notification(&alerts)),
            [escalation("db", 2, "hook")],
            "{alerts:?}"
        );
    }
}

#[test]
fn resolved_alerts_plan_nothing() {
    let rules = paging_rules();
    let critical = [("service", "db"), ("severity", "critical")];
    let n = notification(&[("resolved", &critical), ("resolved", &[("service", "api")])]);
    assert_eq!(n.status, Status::Resolved);
    assert!(rules.plan(&n).is_empty());

    // In a group still firing, only the firing alerts' rules plan.
    let n = notification(&[("resolved", &critical), firing(&[("service", "api")])]);
    assert_eq!(planned(&rules, &n), [opened("rest", "slack")]);
}

#[test]
fn fifty_firing_alerts_matching_one_rule_plan_each_timer_once() {
    let rules = paging_rules();
    let pods: Vec<String> = (0..50).map(|i| format!("db-{i}")).collect();
    let label_sets: Vec<[(&str, &str); 3]> = pods
        .iter()
        .map(|pod| [("service", "db"), ("severity", "critical"), ("pod", pod.as_str())])
        .collect();
    let alerts: Vec<(&str, &[(&str, &str)])> = label_sets.iter().map(|l| ("firing", &l[..])).collect();
    let n = notification(&alerts);
    assert_eq!(n.firing_count(), 50);

    assert_eq!(
        planned(&rules, &n),
        [
            opened("db", "slack"),
            escalation("db", 1, "pd"),
            escalation("db", 2, "hook"),
        ]
    );
}

#[test]
fn plans_carry_opened_for_notify_and_escalation_with_the_steps_timing() {
    let rules = compile(json!([{
        "name": "db",
        "notify": ["slack", "hook"],
        "escalation": [
            {"after": "5m", "notify": ["pd"]},
            {"after": "1h", "notify": ["pd", "slack"], "repeat": "30m"},
        ],
    }]));
    let spec = |kind, step, notifier: &str, channel: NotifierType, after, repeat| PlannedTimer {
        rule: "db".to_owned(),
        channel: channel.channel(),
        after,
        repeat,
        work: match kind {
            TimerKind::Opened => TimerWork::Opened {
                notifier: notifier.to_owned(),
            },
            _ => TimerWork::Escalation {
                notifier: notifier.to_owned(),
                step,
                occurrence: 0,
                handover: None,
            },
        },
    };
    let n = notification(&[firing(&[("alertname", "X")])]);
    assert_eq!(
        rules.plan(&n),
        [
            spec(
                TimerKind::Opened,
                0,
                "slack",
                NotifierType::Slack,
                Duration::ZERO,
                None
            ),
            spec(
                TimerKind::Opened,
                0,
                "hook",
                NotifierType::Webhook,
                Duration::ZERO,
                None
            ),
            spec(
                TimerKind::Escalation,
                1,
                "pd",
                NotifierType::Pagerduty,
                5 * MINUTE,
                None
            ),
            spec(
                TimerKind::Escalation,
                2,
                "pd",
                NotifierType::Pagerduty,
                60 * MINUTE,
                Some(30 * MINUTE)
            ),
            spec(
                TimerKind::Escalation,
                2,
                "slack",
                NotifierType::Slack,
                60 * MINUTE,
                Some(30 * MINUTE)
            ),
        ]
    );
}

#[test]
fn a_skipped_step_keeps_its_number() {
    let rules = compile(json!([{
        "name": "db",
        "escalation": [
            {"after": "1m", "notify": ["pd"], "severities": ["critical"]},
            {"after": "2m", "notify": ["slack"]},
        ],
    }]));
    let n = notification(&[firing(&[("severity", "info")])]);
    assert_eq!(planned(&rules, &n), [escalation("db", 2, "slack")]);
}

#[test]
fn compile_reports_each_problem_at_its_key_path() {
    let problems = compile_err(json!([
        {"name": "a", "matchers": ["alertname=~\"(\""], "notify": ["nobody"]},
        {"name": "a", "escalation": [
            {"after": "10m", "notify": [], "repeat": "5m"},
            {"after": "5m", "notify": ["slack", "ghost"], "repeat": 0},
        ]},
        {"name": " "},
    ]));
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "rules[0].matchers",
            "rules[0].notify[0]",
            "rules[1].name",
            "rules[1].escalation[0].notify",
            "rules[1].escalation[1].repeat",
            "rules[1].escalation[1].notify[1]",
            "rules[1].escalation[1].after",
            "rules[1].escalation[0].repeat",
            "rules[2].name",
        ],
        "{problems:#?}"
    );
    assert!(problems[0].message.contains("invalid regex"), "{problems:#?}");
}

#[test]
fn compiled_rules_keep_their_notifiers_types_and_runbook() {
    let rules = compile(json!([{
        "name": "db",
        "notify": ["slack"],
        "escalation": [{"after": 90, "notify": ["pd", "hook"], "repeat": "1h"}],
        "runbook_url": "https://runbooks.example/db",
    }]));
    let rule = rules.get("db").unwrap();
    assert_eq!(rule.runbook_url.as_deref(), Some("https://runbooks.example/db"));
    assert_eq!(rule.notify[0].kind, NotifierType::Slack);
    assert_eq!(rule.steps[0].after, Duration::from_secs(90));
    assert_eq!(rule.steps[0].repeat, Some(Duration::from_secs(3600)));
    let kinds: Vec<_> = rule.steps[0].notify.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [NotifierType::Pagerduty, NotifierType::Webhook]);
    assert!(rules.get("other").is_none());
}

/// Heartbeats written as the config's `heartbeats:` list would be, compiled with their rules
/// put before `rules`.
fn with_heartbeats(heartbeats: Value, rules: Value) -> (super::Heartbeats, Rules) {
    let settings: Vec<crate::config::HeartbeatSettings> = serde_json::from_value(heartbeats).unwrap();
    let mut problems = Vec::new();
    let (heartbeats, first) = super::Heartbeats::compile(&settings, &notifiers(), &mut problems);
    let mut rules = compile(rules);
    rules.prepend(first, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    (heartbeats, rules)
}

fn watchdog() -> Value {
    json!([{"name": "watchdog", "matchers": ["alertname=\"Watchdog\""], "per": "cluster",
            "expect_every": "2m", "notify": ["slack"], "escalation": [{"after": "0s", "notify": ["pd"]}]}])
}

#[test]
fn firing_watchdogs_renew_their_heartbeat_per_cluster_and_are_not_recorded() {
    let (heartbeats, _) = with_heartbeats(watchdog(), json!([]));
    let n = notification(&[
        firing(&[("alertname", "Watchdog"), ("cluster", "east")]),
        firing(&[("alertname", "Watchdog"), ("cluster", "east")]),
        firing(&[("alertname", "Watchdog")]),
        ("resolved", &[("alertname", "Watchdog"), ("cluster", "west")]),
    ]);
    let split = heartbeats.split(n);
    let renewed: Vec<(&str, &str)> = split
        .renewals
        .iter()
        .map(|r| (r.name.as_str(), r.per_value.as_str()))
        .collect();
    assert_eq!(renewed, [("watchdog", ""), ("watchdog", "east")]);
    assert_eq!(
        split.renewals[0].window,
        Duration::from_secs(240),
        "grace defaults to expect_every"
    );
    assert!(
        split.rest.is_none(),
        "a resolved Watchdog is dropped, not recorded"
    );
}

#[test]
fn the_other_alerts_of_a_mixed_notification_are_recorded_resolved_when_they_all_are() {
    let (heartbeats, _) = with_heartbeats(watchdog(), json!([]));
    let n = notification(&[
        firing(&[("alertname", "Watchdog")]),
        ("resolved", &[("alertname", "HighErrorRate")]),
    ]);
    let rest = heartbeats.split(n).rest.expect("the other alert");
    assert_eq!(rest.alerts.len(), 1);
    assert_eq!(rest.alerts[0].labels["alertname"], "HighErrorRate");
    assert_eq!(rest.status, Status::Resolved);
}

#[test]
fn a_missing_heartbeat_is_taken_by_its_own_rule_before_a_catch_all() {
    let (heartbeats, rules) = with_heartbeats(watchdog(), json!([{"name": "all", "notify": ["hook"]}]));
    let since = chrono::DateTime::parse_from_rfc3339("2026-11-26T16:00:00Z")
        .unwrap()
        .to_utc();
    let missing = heartbeats.get("watchdog").unwrap().missing("east", since, None);
    let labels = &missing.alerts[0].labels;
    assert_eq!(labels["alertname"], "HeartbeatMissing");
    assert_eq!(
        (labels["heartbeat"].as_str(), labels["cluster"].as_str()),
        ("watchdog", "east")
    );
    assert_eq!(labels["severity"], "critical");
    let timers: Vec<(TimerKind, String, i32, String)> = planned(&rules, &missing);
    assert_eq!(
        timers,
        [
            (TimerKind::Opened, "heartbeat/watchdog".into(), 0, "slack".into()),
            (TimerKind::Escalation, "heartbeat/watchdog".into(), 1, "pd".into()),
        ]
    );
    let again = heartbeats.get("watchdog").unwrap().missing("east", since, None);
    assert_eq!(
        again.alerts[0].key(),
        missing.alerts[0].key(),
        "the same episode on every replica"
    );
}

#[test]
fn a_rule_may_not_take_a_heartbeats_rule_name() {
    let settings: Vec<crate::config::HeartbeatSettings> = serde_json::from_value(watchdog()).unwrap();
    let mut problems = Vec::new();
    let (_, first) = super::Heartbeats::compile(&settings, &notifiers(), &mut problems);
    let mut rules = compile(json!([{"name": "heartbeat/watchdog"}]));
    rules.prepend(first, &mut problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn a_notifier_type_is_stored_as_the_channel_of_the_same_word() {
    use NotifierType::*;
    for kind in [Slack, SlackApp, Pagerduty, Webhook, Log] {
        assert_eq!(kind.channel().as_str(), kind.as_str());
    }
}
