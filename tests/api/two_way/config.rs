//! The settings of the two-way integrations, checked with their key paths.

#[test]
fn slack_app_and_integration_settings_are_checked_with_their_key_paths() {
    use crate::helpers::config::{assert_problem, problems_in};
    let problems = problems_in(
        "notifiers:
  app: {type: slack_app, url: \"https://hooks.slack.com/services/x\"}
  hook: {type: slack, url: \"https://hooks.slack.com/services/y\", signing_secret: s, webhook_secret: w}
alertmanager: {url: \"ftp://am\"}
",
    );
    assert_problem(&problems, "notifiers.app.bot_token", "required");
    assert_problem(&problems, "notifiers.app.signing_secret", "required");
    assert_problem(&problems, "notifiers.app.channel", "required");
    assert_problem(&problems, "notifiers.app.url", "not used by a slack_app notifier");
    assert_problem(
        &problems,
        "notifiers.hook.signing_secret",
        "not used by a slack notifier",
    );
    assert_problem(
        &problems,
        "notifiers.hook.webhook_secret",
        "not used by a slack notifier",
    );
    assert_problem(&problems, "alertmanager.url", "http or https");

    let problems = problems_in(
        "    users:
      - {name: a, role: viewer, token: token-a-0123456789, slack_user_id: U1}
      - {name: b, role: viewer, token: token-b-0123456789, slack_user_id: U1, pagerduty_user_id: 'P 1'}
  instance: 'eu west'
",
    );
    assert_problem(&problems, "server.auth.users[1].slack_user_id", "another user's");
    assert_problem(
        &problems,
        "server.auth.users[1].pagerduty_user_id",
        "letters and digits",
    );
    assert_problem(&problems, "server.instance", "letters, digits");
}

#[test]
fn alertmanager_settings_come_from_the_environment_too() {
    let settings = crate::helpers::config::load_yaml(
        "",
        &[
            ("MEDIC_ALERTMANAGER__URL", "http://alertmanager:9093"),
            ("MEDIC_ALERTMANAGER__BEARER_TOKEN", "am-token"),
        ],
    )
    .expect("loads");
    assert_eq!(
        settings.alertmanager.url.as_deref(),
        Some("http://alertmanager:9093")
    );
    assert!(settings.alertmanager.bearer_token.is_some());
}
