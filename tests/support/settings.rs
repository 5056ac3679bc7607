//! `settings()`: a test medic's settings built from named parts (a notifier pointing at a sink,
//! a rule and its ladder, the fake cluster, users mapped to Slack), written as the YAML
//! `TestAppBuilder::config` reads, so that a test says what differs and no block is pasted twice.
//!
//! Tests whose YAML is the point (config checks, hostile input, a replay under edited settings)
//! keep their text.

use std::path::Path;

use serde_json::{json, Map, Value};

/// A test medic's settings; [`TestSettings::yaml`] writes them.
#[derive(Clone, Debug, Default)]
pub struct TestSettings {
    /// The top-level sections, each as JSON: `notifiers`, `rules`, `engine` and so on.
    sections: Map<String, Value>,
}

/// Settings with nothing set: medic's defaults.
pub fn settings() -> TestSettings {
    TestSettings::default()
}

impl TestSettings {
    /// Sets a top-level section or key (`engine`, `remediation`, `dry_run`), replacing what was
    /// there.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.sections.insert(key.to_owned(), value.into());
        self
    }

    /// Adds the notifier `name`.
    pub fn notifier(mut self, name: &str, notifier: impl Into<Value>) -> Self {
        let notifiers = self.sections.entry("notifiers").or_insert_with(|| json!({}));
        notifiers[name] = notifier.into();
        self
    }

    /// Adds a rule after those before it.
    pub fn rule(mut self, rule: Rule) -> Self {
        let rules = self.sections.entry("rules").or_insert_with(|| json!([]));
        rules.as_array_mut().expect("rules is a list").push(rule.0.into());
        self
    }

    /// The fake cluster behind `kubeconfig`, asked with this timeout.
    pub fn kubernetes(self, kubeconfig: &Path, request_timeout: &str) -> Self {
        let kubernetes =
            json!({"kubeconfig": kubeconfig.display().to_string(), "request_timeout": request_timeout});
        self.with("kubernetes", kubernetes)
    }

    /// No Kubernetes at all (remediation on Postgres only, or none).
    pub fn without_kubernetes(self) -> Self {
        self.with("kubernetes", json!({"enabled": false}))
    }

    /// `server.auth.users` instead of the test users (`TestAppBuilder::settings` then leaves
    /// those out): each a `{name, role, token, ..}` map.
    pub fn users(mut self, users: Value) -> Self {
        let server = self.sections.entry("server").or_insert_with(|| json!({}));
        server["auth"]["users"] = users;
        self
    }

    /// Sets `server.<key>` (with [`TestSettings::users`]: a `server` section replaces the test
    /// users).
    pub fn server(mut self, key: &str, value: impl Into<Value>) -> Self {
        let server = self.sections.entry("server").or_insert_with(|| json!({}));
        server[key] = value.into();
        self
    }

    /// Whether these settings say who the users are (a `server` section of their own).
    pub fn has_server(&self) -> bool {
        self.sections.contains_key("server")
    }

    /// The YAML text: one line per section, each value in flow style (JSON is YAML).
    pub fn yaml(&self) -> String {
        self.sections
            .iter()
            .map(|(key, value)| format!("{key}: {}\n", flow(value)))
            .collect()
    }
}

/// A value in YAML's flow style, one line, with a space after each `:` and `,` to read.
fn flow(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{}: {}", Value::from(key.as_str()), flow(value)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        scalar => scalar.to_string(),
    }
}

/// A map of settings built up key by key: a notifier, a remediation step.
#[derive(Clone, Debug)]
pub struct Part(Map<String, Value>);

impl Part {
    /// Sets `key` (`cooldown`, `verify_within`, `channel`, `bearer_token`...).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }
}

impl From<Part> for Value {
    fn from(part: Part) -> Value {
        Value::Object(part.0)
    }
}

fn part(value: Value) -> Part {
    match value {
        Value::Object(map) => Part(map),
        other => panic!("a part of the settings is a map, not {other}"),
    }
}

/// A webhook notifier posting to `url`.
pub fn webhook(url: &str) -> Part {
    part(json!({"type": "webhook", "url": url}))
}

/// A Slack incoming-webhook notifier posting to `url`.
pub fn slack(url: &str) -> Part {
    part(json!({"type": "slack", "url": url}))
}

/// A PagerDuty Events v2 notifier posting to `url`.
pub fn pagerduty(url: &str, routing_key: &str) -> Part {
    part(json!({"type": "pagerduty", "url": url, "routing_key": routing_key}))
}

/// A Slack app (bot `xoxb-test`, channel `C0TEST`) whose Web API is at `api_url`.
pub fn slack_app(api_url: &str, signing_secret: &str) -> Part {
    part(json!({
        "type": "slack_app", "bot_token": "xoxb-test", "signing_secret": signing_secret,
        "channel": "C0TEST", "api_url": api_url,
    }))
}

/// A remediation step: `action` with these parameters.
pub fn step(action: &str, params: Value) -> Part {
    part(json!({"action": action, "params": params}))
}

/// The alert's namespace, as a step's parameter takes it from the labels.
pub const ALERTS_NAMESPACE: &str = "{{ labels.namespace }}";

/// The alert's Deployment, from its labels: what every scaling or restarting step of these tests
/// acts on.
pub fn alerts_deployment() -> Value {
    json!({"namespace": ALERTS_NAMESPACE, "deployment": "{{ labels.deployment }}"})
}

/// `scale_up` of the alert's Deployment by `by` replicas, up to `max`.
pub fn scale_up(by: u32, max: u32) -> Part {
    let mut params = alerts_deployment();
    params["step"] = json!(by);
    params["max"] = json!(max);
    step("scale_up", params)
}

/// `rollout_restart` of the alert's Deployment.
pub fn rollout_restart() -> Part {
    step("rollout_restart", alerts_deployment())
}

/// A rule, built up: what it matches, whom it tells, how it escalates and remediates.
#[derive(Clone, Debug)]
pub struct Rule(Map<String, Value>);

/// A rule named `name` that matches every alert until told otherwise.
pub fn rule(name: &str) -> Rule {
    Rule(Map::from_iter([("name".to_owned(), json!(name))]))
}

impl Rule {
    /// Adds a matcher, e.g. `alertname="HighMemoryUsage"`.
    pub fn matching(mut self, matcher: &str) -> Self {
        let matchers = self.0.entry("matchers").or_insert_with(|| json!([]));
        matchers
            .as_array_mut()
            .expect("matchers is a list")
            .push(json!(matcher));
        self
    }

    /// Whom the rule tells when an incident opens.
    pub fn notify(self, notifiers: &[&str]) -> Self {
        self.with("notify", json!(notifiers))
    }

    /// Adds an escalation step: `after` the incident opened, `notify`.
    pub fn escalate(mut self, after: &str, notify: &[&str]) -> Self {
        let escalation = self.0.entry("escalation").or_insert_with(|| json!([]));
        let steps = escalation.as_array_mut().expect("escalation is a list");
        steps.push(json!({"after": after, "notify": notify}));
        self
    }

    /// One remediation step.
    pub fn remediate(self, step: Part) -> Self {
        self.with("remediate", step)
    }

    /// A ladder of remediation steps, tried in turn.
    pub fn ladder(self, steps: impl IntoIterator<Item = Part>) -> Self {
        let steps: Vec<Value> = steps.into_iter().map(Value::from).collect();
        self.with("remediate", steps)
    }

    /// Sets any other key of the rule (`severities`, `runbook_url`, ...).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }
}
