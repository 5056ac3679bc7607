//! Rules: which alerts each one takes (Alertmanager matchers), and which timers it schedules
//! for an incident: the announcement to its `notify` list and its escalation steps.
//!
//! Rules are tried in order for every firing alert; the first that matches takes it, unless it
//! says `continue`, as Alertmanager's routes do. An incident gets the timers of every rule that
//! took one of its alerts, once each, however many alerts matched.

use std::{collections::BTreeMap, time::Duration};

use serde_json::{json, Value};

use crate::{
    alertmanager::{Status, KV},
    config::{NotifierType, Problem, RemediateSettings, RuleSettings, StepSettings},
    domain::{AlertEpisode, Notification, TimerKind},
    matchers::Matchers,
    remediation::{Action, Param, Params},
};

/// The checked rules, in config order.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// One rule, compiled.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    matchers: Matchers,
    severities: Vec<String>,
    /// Told when the incident opens, is acknowledged and resolves.
    pub notify: Vec<Target>,
    pub steps: Vec<Step>,
    /// Linked when the alert carries no `runbook_url` annotation.
    pub runbook_url: Option<String>,
    continue_matching: bool,
    pub remediate: Option<Remediate>,
}

/// A rule's remediation, checked.
#[derive(Debug)]
pub struct Remediate {
    pub action: Action,
    params: BTreeMap<String, Param>,
    /// None: the global default.
    pub cooldown: Option<Duration>,
    /// None: the global `dry_run`.
    pub dry_run: Option<bool>,
    pub escalate_on_failure: bool,
}

impl Remediate {
    /// The parameters for one alert, or why they cannot be rendered.
    pub fn render(&self, labels: &KV, annotations: &KV) -> Result<Params, String> {
        self.params
            .iter()
            .map(|(name, param)| Ok((name.clone(), param.render(labels, annotations)?)))
            .collect::<Result<_, String>>()
            .map(Params)
    }
}

/// One escalation step, compiled.
#[derive(Debug)]
pub struct Step {
    pub after: Duration,
    pub notify: Vec<Target>,
    severities: Vec<String>,
    pub repeat: Option<Duration>,
}

/// A notifier named by a rule, with its type (stored with the timer).
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub kind: NotifierType,
}

/// A timer the store should schedule for the incident a notification belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerSpec {
    pub kind: TimerKind,
    pub rule: String,
    /// 1-based escalation step; 0 for the announcement.
    pub step: i32,
    /// The notifier, or the action for a remediation.
    pub notifier: String,
    /// The notifier's type, or `remediation`.
    pub channel: &'static str,
    /// From when the incident opened.
    pub after: Duration,
    pub repeat: Option<Duration>,
    /// The alert episode a remediation is for (`fingerprint@startsAt`); empty otherwise.
    pub subject: String,
    /// A remediation's rendered parameters and the alert it is for.
    pub payload: Option<Value>,
}

/// How urgent a severity label is, so that an incident takes its most urgent alert's.
pub fn severity_rank(severity: Option<&str>) -> u8 {
    match severity.map(str::to_ascii_lowercase).as_deref() {
        Some("critical" | "page" | "emergency" | "fatal") => 4,
        Some("error" | "high" | "major") => 3,
        Some("warning" | "warn" | "medium" | "minor") => 2,
        Some("info" | "low" | "informational") => 1,
        _ => 0,
    }
}

impl Rule {
    /// All matchers hold and, if the rule lists severities, the alert has one of them.
    pub fn matches(&self, labels: &KV) -> bool {
        let severity_ok = self.severities.is_empty()
            || labels.get("severity").is_some_and(|s| {
                self.severities
                    .iter()
                    .any(|wanted| wanted.eq_ignore_ascii_case(s))
            });
        severity_ok && self.matchers.matches(labels)
    }
}

impl Step {
    /// No `severities`, or one of the alerts the rule took has one of them.
    fn applies_to(&self, severities: &[Option<&str>]) -> bool {
        self.severities.is_empty()
            || severities
                .iter()
                .flatten()
                .any(|s| self.severities.iter().any(|w| w.eq_ignore_ascii_case(s)))
    }
}

impl Rules {
    /// Compiles the rules; every problem names the rule's key path.
    pub fn compile(
        settings: &[RuleSettings],
        notifiers: &BTreeMap<String, NotifierType>,
    ) -> Result<Rules, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for (i, rule) in settings.iter().enumerate() {
            let at = format!("rules[{i}]");
            if rule.name.trim().is_empty() {
                problems.push(Problem::new(format!("{at}.name"), "must not be empty"));
            } else if settings[..i].iter().any(|r| r.name == rule.name) {
                problems.push(Problem::new(
                    format!("{at}.name"),
                    format!("another rule is already named {:?}", rule.name),
                ));
            }
            if let Some(rule) = compile_rule(&at, rule, notifiers, &mut problems) {
                rules.push(rule);
            }
        }
        if problems.is_empty() {
            Ok(Rules { rules })
        } else {
            Err(problems)
        }
    }

    /// The rules that take an alert with these labels: the first match, and those after it
    /// while each matching rule says `continue`.
    pub fn matching<'a>(&'a self, labels: &'a KV) -> impl Iterator<Item = &'a Rule> + 'a {
        let mut stopped = false;
        self.rules.iter().filter(move |rule| {
            if stopped || !rule.matches(labels) {
                return false;
            }
            stopped = !rule.continue_matching;
            true
        })
    }

    /// The rule of this name.
    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.name == name)
    }

    /// Whether any rule exists.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The timers a notification asks for: for each rule taking one of its firing alerts, its
    /// announcement and the escalation steps that apply to the severities of the alerts it took.
    pub fn plan(&self, notification: &Notification) -> Vec<TimerSpec> {
        let mut taken: Vec<(&Rule, Vec<Option<&str>>)> = Vec::new();
        let mut remediations = Vec::new();
        for alert in notification.alerts.iter().filter(|a| a.status == Status::Firing) {
            let severity = alert.labels.get("severity").map(String::as_str);
            for rule in self.matching(&alert.labels) {
                remediations.extend(rule.remediation(alert));
                match taken.iter_mut().find(|(r, _)| std::ptr::eq(*r, rule)) {
                    Some((_, severities)) if !severities.contains(&severity) => severities.push(severity),
                    Some(_) => {}
                    None => taken.push((rule, vec![severity])),
                }
            }
        }
        taken
            .into_iter()
            .flat_map(|(rule, severities)| rule.timers(&severities))
            .chain(remediations)
            .collect()
    }
}

impl Rule {
    /// The remediation timer for one firing alert episode: due at once, keyed by the episode
    /// so that it runs once however often the alert is delivered.
    fn remediation(&self, alert: &AlertEpisode) -> Option<TimerSpec> {
        let remediate = self.remediate.as_ref()?;
        let params = remediate.render(&alert.labels, &alert.annotations);
        let subject = episode_key(alert);
        let payload = json!({
            "params": params.as_ref().ok(),
            "error": params.as_ref().err(),
            "fingerprint": alert.fingerprint.as_ref(),
            "starts_at": alert.starts_at,
            "labels": alert.labels,
        });
        Some(TimerSpec {
            kind: TimerKind::Remediation,
            rule: self.name.clone(),
            step: 0,
            notifier: remediate.action.as_str().to_owned(),
            channel: "remediation",
            after: Duration::ZERO,
            repeat: None,
            subject,
            payload: Some(payload),
        })
    }

    fn timers(&self, severities: &[Option<&str>]) -> Vec<TimerSpec> {
        let spec = |kind, step, target: &Target, after, repeat| TimerSpec {
            kind,
            rule: self.name.clone(),
            step,
            notifier: target.name.clone(),
            channel: target.kind.as_str(),
            after,
            repeat,
            subject: String::new(),
            payload: None,
        };
        let announce = self
            .notify
            .iter()
            .map(|target| spec(TimerKind::Opened, 0, target, Duration::ZERO, None));
        let steps = self
            .steps
            .iter()
            .zip(1..)
            .filter(|(step, _)| step.applies_to(severities))
            .flat_map(|(step, number)| {
                step.notify
                    .iter()
                    .map(move |target| spec(TimerKind::Escalation, number, target, step.after, step.repeat))
            });
        announce.chain(steps).collect()
    }
}

fn compile_rule(
    at: &str,
    rule: &RuleSettings,
    notifiers: &BTreeMap<String, NotifierType>,
    problems: &mut Vec<Problem>,
) -> Option<Rule> {
    let start = problems.len();
    let matchers = Matchers::parse(&rule.matchers)
        .map_err(|e| problems.push(Problem::new(format!("{at}.matchers"), e.to_string())))
        .ok();
    let notify = targets(&format!("{at}.notify"), &rule.notify, notifiers, problems);
    let steps: Vec<Step> = rule
        .escalation
        .iter()
        .enumerate()
        .map(|(j, step)| compile_step(&format!("{at}.escalation[{j}]"), step, notifiers, problems))
        .collect();
    check_steps(at, &rule.escalation, problems);
    let remediate = rule
        .remediate
        .as_ref()
        .and_then(|r| compile_remediate(&format!("{at}.remediate"), r, problems));
    if problems.len() > start {
        return None;
    }
    Some(Rule {
        name: rule.name.clone(),
        matchers: matchers?,
        severities: rule.severities.clone(),
        notify,
        steps,
        runbook_url: rule.runbook_url.clone(),
        continue_matching: rule.continue_matching,
        remediate,
    })
}

/// `fingerprint@startsAt`: one firing episode of one alert.
pub fn episode_key(alert: &AlertEpisode) -> String {
    format!(
        "{}@{}",
        alert.fingerprint.as_ref(),
        alert
            .starts_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

fn compile_remediate(
    at: &str,
    settings: &RemediateSettings,
    problems: &mut Vec<Problem>,
) -> Option<Remediate> {
    let Some(action) = Action::parse(&settings.action) else {
        let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        problems.push(Problem::new(
            format!("{at}.action"),
            format!(
                "unknown action {:?}; known: {}",
                settings.action,
                known.join(", ")
            ),
        ));
        return None;
    };
    let specs = action.params();
    let mut params = BTreeMap::new();
    for (name, value) in &settings.params {
        let key = format!("{at}.params.{name}");
        match specs.iter().find(|spec| spec.name == name) {
            None => problems.push(Problem::new(
                key,
                format!("{} takes no parameter {name:?}", action.as_str()),
            )),
            Some(spec) => match Param::compile(value, spec) {
                Ok(param) => {
                    params.insert(name.clone(), param);
                }
                Err(e) => problems.push(Problem::new(key, e)),
            },
        }
    }
    for spec in specs.iter().filter(|spec| spec.required) {
        if !settings.params.contains_key(spec.name) {
            problems.push(Problem::new(
                format!("{at}.params.{}", spec.name),
                format!("required by {}", action.as_str()),
            ));
        }
    }
    if action == Action::RestartPods
        && !settings.params.contains_key("selector")
        && !settings.params.contains_key("pod")
    {
        problems.push(Problem::new(
            format!("{at}.params"),
            "restart_pods needs selector or pod",
        ));
    }
    Some(Remediate {
        action,
        params,
        cooldown: settings.cooldown.map(|c| c.0),
        dry_run: settings.dry_run,
        escalate_on_failure: settings.escalate_on_failure,
    })
}

fn compile_step(
    at: &str,
    step: &StepSettings,
    notifiers: &BTreeMap<String, NotifierType>,
    problems: &mut Vec<Problem>,
) -> Step {
    if step.notify.is_empty() {
        problems.push(Problem::new(
            format!("{at}.notify"),
            "must name at least one notifier",
        ));
    }
    if step.repeat.is_some_and(|r| r.0.is_zero()) {
        problems.push(Problem::new(format!("{at}.repeat"), "must be greater than 0"));
    }
    Step {
        after: step.after.0,
        notify: targets(&format!("{at}.notify"), &step.notify, notifiers, problems),
        severities: step.severities.clone(),
        repeat: step.repeat.map(|r| r.0),
    }
}

/// Steps come in the order they fire, and only the last may repeat.
fn check_steps(at: &str, steps: &[StepSettings], problems: &mut Vec<Problem>) {
    for (j, pair) in steps.windows(2).enumerate() {
        if pair[1].after < pair[0].after {
            problems.push(Problem::new(
                format!("{at}.escalation[{}].after", j + 1),
                format!("must not be earlier than the step before ({})", pair[0].after),
            ));
        }
        if pair[0].repeat.is_some() {
            problems.push(Problem::new(
                format!("{at}.escalation[{j}].repeat"),
                "only the last step may repeat",
            ));
        }
    }
}

fn targets(
    at: &str,
    names: &[String],
    notifiers: &BTreeMap<String, NotifierType>,
    problems: &mut Vec<Problem>,
) -> Vec<Target> {
    names
        .iter()
        .enumerate()
        .filter_map(|(k, name)| match notifiers.get(name) {
            Some(kind) => Some(Target {
                name: name.clone(),
                kind: *kind,
            }),
            None => {
                problems.push(Problem::new(
                    format!("{at}[{k}]"),
                    format!("no notifier named {name:?} under notifiers"),
                ));
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::alertmanager::Data;

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
        Rules::compile(&settings, &notifiers()).unwrap()
    }

    fn compile_err(rules: Value) -> Vec<Problem> {
        let settings: Vec<RuleSettings> = serde_json::from_value(rules).unwrap();
        Rules::compile(&settings, &notifiers()).unwrap_err()
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
            .map(|t| (t.kind, t.rule, t.step, t.notifier))
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
        let spec = |kind, step, notifier: &str, channel: NotifierType, after, repeat| TimerSpec {
            kind,
            rule: "db".to_owned(),
            step,
            notifier: notifier.to_owned(),
            channel: channel.as_str(),
            after,
            repeat,
            subject: String::new(),
            payload: None,
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

    #[test]
    fn severity_rank_orders_critical_error_warning_info_unknown() {
        let order = [
            Some("critical"),
            Some("error"),
            Some("warning"),
            Some("info"),
            Some("unknown"),
        ];
        for pair in order.windows(2) {
            assert!(
                severity_rank(pair[0]) > severity_rank(pair[1]),
                "{:?} should outrank {:?}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(severity_rank(Some("unknown")), severity_rank(None));
        assert_eq!(severity_rank(Some("")), 0);
        for (alias, of) in [
            ("page", "critical"),
            ("CRITICAL", "critical"),
            ("Major", "error"),
            ("warn", "warning"),
            ("low", "info"),
        ] {
            assert_eq!(severity_rank(Some(alias)), severity_rank(Some(of)), "{alias}");
        }
    }
}
