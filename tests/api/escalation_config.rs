//! Escalation settings: notifiers, rules and the engine, loaded and compiled through
//! `medic::plan::load`, and through `medic check-config`.

use std::time::Duration;

use medic::{
    alertmanager::KV,
    config::{load, NotifierType, Source, PAGERDUTY_EVENTS_URL},
    plan::{Endpoint, NotifierEndpoint},
};
use secrecy::ExposeSecret;

use crate::helpers::config::{assert_problem, check_config, load_yaml, problems_in, yaml, AUTH};

// Every config below accepts anonymous callers (AUTH), so that only escalation can be wrong.

/// Four notifiers covering the three types (PagerDuty both on its default URL and through a
/// proxy), two rules, and every engine setting.
const FULL: &str = r##"
notifiers:
  incidents-slack:
    type: slack
    url: https://hooks.slack.com/services/T000/B000/XXXX
    channel: "#incidents"
    username: medic
  pagerduty:
    type: pagerduty
    routing_key: R0UTING-KEY
  pagerduty-proxy:
    type: pagerduty
    url: http://pd-proxy.internal:8080/v2/enqueue
    routing_key: PROXY-KEY
  audit-hook:
    type: webhook
    url: https://audit.example.com/medic
    bearer_token: AUDIT-TOKEN
rules:
  - name: database
    matchers: ['service=~"db|postgres"', '{severity!="info", namespace="prod"}']
    severities: [critical, warning]
    notify: [incidents-slack]
    escalation:
      - after: 5m
        notify: [pagerduty]
        severities: [critical]
      - after: 1h30m
        notify: [pagerduty-proxy, audit-hook]
        repeat: 1h
    runbook_url: https://runbooks.example.com/database
    continue: true
  - name: everything-else
    notify: [incidents-slack]
engine:
  enabled: true
  lease: 2m
  safety_poll: 30s
  batch: 100
  concurrency: 8
  request_timeout: 10s
  retry:
    initial_backoff: 500ms
    max_backoff: 5m
    give_up_after: 1h
"##;

fn labels(pairs: &[(&str, &str)]) -> KV {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A notifier block and a rule that uses it, for the notifier tests.
fn with_notifier(notifier: &str) -> String {
    format!("notifiers:\n  chat:\n{notifier}rules:\n  - name: r\n    notify: [chat]\n")
}

#[test]
fn a_full_config_with_every_type_of_notifier_loads_into_targets_and_rules() {
    let settings = load_yaml(FULL, &[]).unwrap();
    let medic::plan::Plan {
        notifiers: targets,
        rules,
        ..
    } = medic::plan::compile(&settings).unwrap();

    assert_eq!(
        targets.keys().map(String::as_str).collect::<Vec<_>>(),
        ["audit-hook", "incidents-slack", "pagerduty", "pagerduty-proxy"]
    );
    let slack = &targets["incidents-slack"];
    assert_eq!(slack.name, "incidents-slack");
    assert_eq!(slack.endpoint.kind(), NotifierType::Slack);
    let Endpoint::Slack {
        webhook_url,
        channel,
        username,
    } = &slack.endpoint
    else {
        panic!("a slack notifier built as {:?}", slack.endpoint);
    };
    assert_eq!(
        webhook_url.as_str(),
        "https://hooks.slack.com/services/T000/B000/XXXX"
    );
    assert_eq!(channel.as_deref(), Some("#incidents"));
    assert_eq!(username.as_deref(), Some("medic"));

    let pagerduty = |name: &str| match &targets[name].endpoint {
        Endpoint::PagerDuty { routing_key, url } => (url.as_str(), routing_key.expose_secret()),
        other => panic!("{name} built as {other:?}"),
    };
    assert_eq!(
        pagerduty("pagerduty"),
        (PAGERDUTY_EVENTS_URL, "R0UTING-KEY"),
        "the default events URL"
    );
    assert_eq!(
        pagerduty("pagerduty-proxy"),
        ("http://pd-proxy.internal:8080/v2/enqueue", "PROXY-KEY")
    );
    let Endpoint::Webhook { url, bearer_token } = &targets["audit-hook"].endpoint else {
        panic!("a webhook notifier built as {:?}", targets["audit-hook"].endpoint);
    };
    assert_eq!(url.as_str(), "https://audit.example.com/medic");
    assert_eq!(
        bearer_token.as_ref().map(ExposeSecret::expose_secret),
        Some("AUDIT-TOKEN")
    );

    assert!(!rules.is_empty());
    let database = rules.get("database").unwrap();
    let names = |targets: &[medic::plan::NotifierRef]| {
        targets
            .iter()
            .map(|t| (t.name.clone(), t.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&database.notify),
        [("incidents-slack".to_owned(), NotifierType::Slack)]
    );
    assert_eq!(
        database.runbook_url.as_deref(),
        Some("https://runbooks.example.com/database")
    );
    assert_eq!(database.steps.len(), 2);
    assert_eq!(database.steps[0].after, Duration::from_secs(300));
    assert_eq!(
        names(&database.steps[0].notify),
        [("pagerduty".to_owned(), NotifierType::Pagerduty)]
    );
    assert_eq!(database.steps[0].repeat, None);
    assert_eq!(database.steps[1].after, Duration::from_secs(5400));
    assert_eq!(
        names(&database.steps[1].notify),
        [
            ("pagerduty-proxy".to_owned(), NotifierType::Pagerduty),
            ("audit-hook".to_owned(), NotifierType::Webhook)
        ]
    );
    assert_eq!(database.steps[1].repeat, Some(Duration::from_secs(3600)));
    let everything = rules.get("everything-else").unwrap();
    assert!(everything.steps.is_empty() && everything.runbook_url.is_none());
    assert!(rules.get("nonexistent").is_none());

    let matched = |pairs: &[(&str, &str)]| {
        let labels = labels(pairs);
        rules
            .matching(&labels)
            .map(|rule| rule.name.clone())
            .collect::<Vec<_>>()
    };
    let db = [
        ("service", "postgres"),
        ("namespace", "prod"),
        ("severity", "critical"),
    ];
    assert_eq!(
        matched(&db),
        ["database", "everything-else"],
        "database says continue"
    );
    let info = [
        ("service", "postgres"),
        ("namespace", "prod"),
        ("severity", "info"),
    ];
    assert_eq!(matched(&info), ["everything-else"]);
    assert_eq!(matched(&[("service", "api")]), ["everything-else"]);

    let engine = &settings.engine;
    assert!(engine.enabled);
    assert_eq!(engine.lease.0, Duration::from_secs(120));
    assert_eq!(engine.safety_poll.0, Duration::from_secs(30));
    assert_eq!((engine.batch, engine.concurrency), (100, 8));
    assert_eq!(engine.request_timeout.0, Duration::from_secs(10));
    assert_eq!(engine.retry.initial_backoff.0, Duration::from_millis(500));
    assert_eq!(engine.retry.max_backoff.0, Duration::from_secs(300));
    assert_eq!(engine.retry.give_up_after.0, Duration::from_secs(3600));
}

#[test]
fn a_config_without_notifiers_or_rules_has_no_escalation() {
    let settings = load_yaml("", &[]).unwrap();
    let medic::plan::Plan {
        notifiers: targets,
        rules,
        ..
    } = medic::plan::compile(&settings).unwrap();
    assert!(targets.is_empty());
    assert!(rules.is_empty());
}

#[test]
fn a_secret_can_be_read_from_a_file_and_is_trimmed() {
    let secret = yaml("  key-from-a-file\n");
    let text = format!(
        "notifiers:\n  pagerduty:\n    type: pagerduty\n    routing_key_file: {}\n",
        secret.path().display()
    );
    let targets = medic::plan::compile(&load_yaml(&text, &[]).unwrap())
        .unwrap()
        .notifiers;
    assert_eq!(routing_key(&targets["pagerduty"]), Some("key-from-a-file"));
}

#[test]
fn a_secret_file_that_cannot_be_read_is_reported_at_its_key() {
    let problems = problems_in(
        "notifiers:\n  pagerduty:\n    type: pagerduty\n    routing_key_file: /nonexistent/medic-key\n",
    );
    assert_problem(&problems, "notifiers.pagerduty.routing_key_file", "cannot read");
}

#[test]
fn notifier_secrets_come_from_the_environment_with_hyphens_written_as_underscores() {
    let text = "notifiers:\n  incidents-slack:\n    type: slack\n  pagerduty:\n    type: pagerduty\n\
                rules:\n  - name: all\n    notify: [incidents-slack, pagerduty]\n";
    let settings = load_yaml(
        text,
        &[
            (
                "MEDIC_NOTIFIERS__INCIDENTS_SLACK__URL",
                "https://hooks.slack.com/services/from-env",
            ),
            ("MEDIC_NOTIFIERS__PAGERDUTY__ROUTING_KEY", "key-from-env"),
        ],
    )
    .unwrap();
    let medic::plan::Plan {
        notifiers: targets,
        rules,
        ..
    } = medic::plan::compile(&settings).unwrap();
    assert_eq!(
        slack_url(&targets["incidents-slack"]),
        "https://hooks.slack.com/services/from-env"
    );
    assert_eq!(routing_key(&targets["pagerduty"]), Some("key-from-env"));
    assert_eq!(rules.get("all").unwrap().notify.len(), 2);
}

#[test]
fn the_environment_beats_the_file_for_notifier_secrets() {
    let text = "notifiers:\n  incidents-slack:\n    type: slack\n    url: https://hooks.slack.com/services/from-file\n\
                \x20 pagerduty:\n    type: pagerduty\n    routing_key: key-from-file\n";
    let settings = load_yaml(
        text,
        &[
            (
                "MEDIC_NOTIFIERS__INCIDENTS_SLACK__URL",
                "https://hooks.slack.com/services/from-env",
            ),
            ("MEDIC_NOTIFIERS__PAGERDUTY__ROUTING_KEY", "00123"),
        ],
    )
    .unwrap();
    let targets = medic::plan::compile(&settings).unwrap().notifiers;
    assert_eq!(
        slack_url(&targets["incidents-slack"]),
        "https://hooks.slack.com/services/from-env"
    );
    assert_eq!(
        routing_key(&targets["pagerduty"]),
        Some("00123"),
        "a numeric-looking key must stay a string"
    );
}

#[test]
fn a_secret_set_in_the_environment_and_as_a_file_in_the_config_is_a_conflict() {
    let secret = yaml("key-from-a-file\n");
    let text = format!(
        "notifiers:\n  pagerduty:\n    type: pagerduty\n    routing_key_file: {}\n",
        secret.path().display()
    );
    let problems = load_yaml(
        &text,
        &[("MEDIC_NOTIFIERS__PAGERDUTY__ROUTING_KEY", "key-from-env")],
    )
    .unwrap_err()
    .0;
    assert_problem(
        &problems,
        "notifiers.pagerduty.routing_key",
        "set either notifiers.pagerduty.routing_key or notifiers.pagerduty.routing_key_file",
    );
}

#[test]
fn a_bad_regex_matcher_is_reported_at_the_rules_matchers_with_the_regex_error() {
    let problems = problems_in("rules:\n  - name: r\n    matchers: ['alertname=~\"(\"']\n");
    assert_problem(&problems, "rules[0].matchers", "invalid regex \"(\"");
    assert_problem(&problems, "rules[0].matchers", "unclosed group");
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn a_rule_naming_an_unknown_notifier_is_reported_in_notify_and_in_a_step() {
    let problems = problems_in(
        "notifiers:\n  chat: {type: slack, url: 'https://hooks.slack.com/x'}\n\
         rules:\n  - name: r\n    notify: [nobody]\n    escalation:\n      - after: 5m\n        notify: [chat, ghost]\n",
    );
    assert_problem(&problems, "rules[0].notify[0]", "no notifier named \"nobody\"");
    assert_problem(
        &problems,
        "rules[0].escalation[0].notify[1]",
        "no notifier named \"ghost\"",
    );

    let problems =
        problems_in("rules:\n  - name: r\n    escalation:\n      - after: 5m\n        notify: [ghost]\n");
    assert_problem(
        &problems,
        "rules[0].escalation[0].notify[0]",
        "no notifier named \"ghost\"",
    );
}

#[test]
fn two_rules_may_not_share_a_name() {
    let problems = problems_in("rules:\n  - name: db\n  - name: other\n  - name: db\n");
    assert_problem(&problems, "rules[2].name", "another rule is already named \"db\"");
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn only_the_last_step_may_repeat() {
    let problems = problems_in(
        "notifiers:\n  chat: {type: slack, url: 'https://hooks.slack.com/x'}\n\
         rules:\n  - name: r\n    escalation:\n      - {after: 5m, notify: [chat], repeat: 10m}\n      \
         - {after: 10m, notify: [chat], repeat: 1h}\n",
    );
    assert_problem(
        &problems,
        "rules[0].escalation[0].repeat",
        "only the last step may repeat",
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn steps_must_come_in_the_order_they_fire() {
    let problems = problems_in(
        "notifiers:\n  chat: {type: slack, url: 'https://hooks.slack.com/x'}\n\
         rules:\n  - name: r\n    escalation:\n      - {after: 30m, notify: [chat]}\n      \
         - {after: 5m, notify: [chat]}\n",
    );
    assert_problem(
        &problems,
        "rules[0].escalation[1].after",
        "must not be earlier than the step before (30m)",
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn a_pagerduty_notifier_needs_a_routing_key() {
    let problems = problems_in(&with_notifier("    type: pagerduty\n"));
    assert_problem(
        &problems,
        "notifiers.chat.routing_key",
        "required (or routing_key_file)",
    );
}

#[test]
fn a_slack_notifier_needs_a_url() {
    let problems = problems_in(&with_notifier("    type: slack\n    channel: '#x'\n"));
    assert_problem(&problems, "notifiers.chat.url", "required (or url_file)");
}

#[test]
fn a_notifier_url_must_be_http_or_https() {
    let problems = problems_in(&with_notifier(
        "    type: webhook\n    url: ftp://files.example.com/medic\n",
    ));
    assert_problem(&problems, "notifiers.chat.url", "must be an http or https URL");

    let problems = problems_in(&with_notifier(
        "    type: slack\n    url: hooks.slack.com/services/x\n",
    ));
    assert_problem(&problems, "notifiers.chat.url", "not a URL");
}

#[test]
fn a_key_that_belongs_to_another_type_of_notifier_is_a_mistake() {
    let problems = problems_in(&with_notifier(
        "    type: slack\n    url: https://hooks.slack.com/x\n    routing_key: k\n",
    ));
    assert_problem(
        &problems,
        "notifiers.chat.routing_key",
        "not used by a slack notifier",
    );

    let problems = problems_in(&with_notifier(
        "    type: pagerduty\n    routing_key: k\n    channel: '#x'\n",
    ));
    assert_problem(
        &problems,
        "notifiers.chat.channel",
        "not used by a pagerduty notifier",
    );
}

#[test]
fn an_unknown_key_inside_a_rule_a_step_or_a_notifier_is_reported_as_unknown() {
    let problems = problems_in(
        "notifiers:\n  chat: {type: slack, url: 'https://hooks.slack.com/x', chanel: '#x'}\n\
         rules:\n  - name: r\n    notfy: [chat]\n    escalation:\n      - {after: 5m, notify: [chat], aftr: 1m}\n",
    );
    assert_problem(&problems, "notifiers.chat.chanel", "unknown key");
    for key in ["notfy", "aftr"] {
        assert!(
            problems
                .iter()
                .any(|p| p.path.starts_with("rules") && p.path.ends_with(key) && p.message == "unknown key"),
            "{key}: {problems:#?}"
        );
    }
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

/// Unknown keys are reported at the same kind of path as every other problem: `rules[0].…`.
#[test]
fn an_unknown_key_inside_a_rule_is_reported_at_the_rules_key_path() {
    let problems = problems_in(
        "rules:\n  - name: r\n    notfy: [chat]\n    escalation:\n      - {after: 5m, notify: [], aftr: 1m}\n",
    );
    assert_problem(&problems, "rules[0].notfy", "unknown key");
    assert_problem(&problems, "rules[0].escalation[0].aftr", "unknown key");
}

#[test]
fn a_duration_must_be_written_like_prometheus_does() {
    let problems = problems_in(
        "notifiers:\n  chat: {type: slack, url: 'https://hooks.slack.com/x'}\n\
         rules:\n  - name: r\n    escalation:\n      - {after: 5 minutes, notify: [chat]}\n",
    );
    assert_problem(
        &problems,
        "rules[0].escalation[0].after",
        "\"5 minutes\" is not a duration such as 90s, 5m or 1h30m",
    );
}

#[test]
fn the_engine_lease_must_outlast_a_request() {
    let problems = problems_in("engine:\n  lease: 10s\n  request_timeout: 10s\n");
    assert_problem(
        &problems,
        "engine.lease",
        "must be longer than engine.request_timeout (10s)",
    );
    assert!(load_yaml("engine:\n  lease: 11s\n  request_timeout: 10s\n", &[]).is_ok());
}

#[test]
fn every_problem_is_reported_at_once() {
    let problems = problems_in(
        "notifiers:\n  pd: {type: pagerduty}\n  chat: {type: slack, url: 'gopher://x'}\n\
         rules:\n  - name: a\n    matchers: ['alertname=~\"(\"']\n    notify: [nobody]\n    notfy: [chat]\n\
         \x20 - name: a\n    escalation:\n      - {after: 10m, notify: [pd], repeat: 5m}\n      \
         - {after: 5m, notify: [chat]}\n\
         engine:\n  lease: 5s\n  request_timeout: 10s\n",
    );
    for (path, message) in [
        ("notifiers.pd.routing_key", "required"),
        ("notifiers.chat.url", "must be an http or https URL"),
        ("rules[0].matchers", "invalid regex"),
        ("rules[0].notify[0]", "no notifier named \"nobody\""),
        ("rules[1].name", "another rule is already named \"a\""),
        ("rules[1].escalation[0].repeat", "only the last step may repeat"),
        ("rules[1].escalation[1].after", "must not be earlier"),
        ("engine.lease", "must be longer than engine.request_timeout"),
    ] {
        assert_problem(&problems, path, message);
    }
    assert!(
        problems
            .iter()
            .any(|p| p.path.ends_with("notfy") && p.message == "unknown key"),
        "{problems:#?}"
    );
}

/// Part of every secret in `secret_notifiers`; must never be printed.
const MARKER: &str = "hunter2-medic";

/// Notifiers holding secrets in every way one can be given.
fn secret_notifiers(routing_key_file: &std::path::Path) -> String {
    format!(
        "notifiers:\n\
         \x20 chat:\n    type: slack\n    url: https://hooks.slack.com/services/T0/B0/{MARKER}-slack\n\
         \x20 pd:\n    type: pagerduty\n    routing_key: {MARKER}-routing\n\
         \x20 pd-file:\n    type: pagerduty\n    routing_key_file: {}\n\
         \x20 hook:\n    type: webhook\n    url: https://hooks.example.com/in?token={MARKER}-query\n    \
         bearer_token: {MARKER}-bearer\n",
        routing_key_file.display()
    )
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let key_file = yaml(&format!("{MARKER}-file\n"));
    let text = format!(
        "{}rules:\n  - name: r\n    notify: [chat, pd, pd-file, hook]\n",
        secret_notifiers(key_file.path())
    );
    let from_env = format!("{MARKER}-env");
    let settings = load_yaml(&text, &[("MEDIC_NOTIFIERS__PD__ROUTING_KEY", &from_env)]).unwrap();
    let medic::plan::Plan {
        notifiers: targets,
        rules,
        ..
    } = medic::plan::compile(&settings).unwrap();
    assert_eq!(
        routing_key(&targets["pd"]),
        Some(from_env.as_str()),
        "the secrets are there"
    );
    let printed = format!("{settings:?}\n{settings:#?}\n{targets:?}\n{rules:?}");
    assert!(!printed.contains(MARKER), "{printed}");

    // The same secrets in a config with problems: neither Debug nor Display shows them.
    let text = format!(
        "{}  bad-slack:\n    type: slack\n    url: ftp://hooks.slack.com/{MARKER}-ftp\n    \
         routing_key: {MARKER}-misplaced\n  bad-hook:\n    type: webhook\n    url: 'http://[{MARKER}'\n    \
         bearer_token: {MARKER}-inline\n    bearer_token_file: {}\n\
         rules:\n  - name: r\n    notify: [missing]\n",
        secret_notifiers(key_file.path()),
        key_file.path().display()
    );
    let problems = load_yaml(&text, &[]).unwrap_err();
    for path in [
        "notifiers.bad-slack.url",
        "notifiers.bad-slack.routing_key",
        "notifiers.bad-hook.url",
        "notifiers.bad-hook.bearer_token",
        "rules[0].notify[0]",
    ] {
        assert!(problems.0.iter().any(|p| p.path == path), "{path}: {problems:#?}");
    }
    let printed = format!("{problems:?}\n{problems:#?}\n{problems}");
    assert!(!printed.contains(MARKER), "{printed}");
}

#[test]
fn check_config_fails_and_names_the_rule_with_a_bad_matcher() {
    let file = yaml(&format!(
        "{AUTH}rules:\n  - name: ok\n  - name: broken\n    matchers: ['alertname=~\"(\"']\n"
    ));
    let (code, stdout) = check_config(file.path(), &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("rules[1].matchers: invalid matcher"), "{stdout}");
}

#[test]
fn check_config_accepts_a_full_escalation_config() {
    let file = yaml(&format!("{AUTH}{FULL}"));
    let (code, stdout) = check_config(file.path(), &[]);
    assert_eq!(code, Some(0), "{stdout}");
}

#[test]
fn the_example_config_checks_and_its_documented_secret_variables_apply() {
    let example = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/medic.example.yaml"));
    let vars = [
        ("MEDIC_SERVER__AUTH__BEARER_TOKEN", "t"),
        (
            "MEDIC_NOTIFIERS__INCIDENTS_SLACK__URL",
            "https://hooks.slack.com/services/from-env",
        ),
        ("MEDIC_NOTIFIERS__PAGERDUTY__ROUTING_KEY", "key-from-env"),
    ];
    let (code, stdout) = check_config(example, &vars[..1]);
    assert_eq!(code, Some(0), "{stdout}");
    let (code, stdout) = check_config(example, &vars);
    assert_eq!(code, Some(0), "{stdout}");

    let settings = load(&Source {
        file: Some(example.into()),
        env: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    })
    .unwrap();
    let medic::plan::Plan {
        notifiers: targets,
        rules,
        ..
    } = medic::plan::compile(&settings).unwrap();
    assert!(!rules.is_empty(), "the example shows rules");
    assert_eq!(
        slack_url(&targets["incidents-slack"]),
        "https://hooks.slack.com/services/from-env"
    );
    assert_eq!(routing_key(&targets["pagerduty"]), Some("key-from-env"));
}

/// A PagerDuty notifier's routing key, None for another kind.
fn routing_key(notifier: &NotifierEndpoint) -> Option<&str> {
    match &notifier.endpoint {
        Endpoint::PagerDuty { routing_key, .. } => Some(routing_key.expose_secret()),
        _ => None,
    }
}

/// A Slack notifier's webhook URL.
fn slack_url(notifier: &NotifierEndpoint) -> &str {
    match &notifier.endpoint {
        Endpoint::Slack { webhook_url, .. } => webhook_url.as_str(),
        other => panic!("{} built as {other:?}", notifier.name),
    }
}
