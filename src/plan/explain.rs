//! What medic would do with a notification, from the compiled rules and guard rails alone:
//! which rule takes each alert, which action with which parameters, which timers. It touches
//! nothing. `medic explain` prints it ([`Explanation`]'s `Display`); the console's explain box
//! renders the same value as HTML.

use std::{
    collections::hash_map::DefaultHasher,
    fmt,
    hash::{Hash, Hasher},
    time::Duration,
};

use chrono::Utc;
use serde_json::Value;

use crate::{
    alertmanager::{Alert, Data, Status, KV, SUPPORTED_VERSION},
    domain::{
        target_key, Action, ActionParams, AlertEpisode, HumanDuration, Notification, RuleMode, TimerKind,
        TimerWork, FLOOR_RULE,
    },
};

use super::{
    matchers::{Matchers, Op},
    remediation::{GuardRails, RemediationSpec},
    rules::Rules,
};

/// What one notification would set going.
#[derive(Debug)]
pub struct Explanation {
    pub group_key: String,
    pub status: Status,
    pub alerts: Vec<AlertExplained>,
    /// The timers scheduled if this notification opens the incident or adds these alerts.
    pub timers: Vec<TimerExplained>,
}

/// One alert of the notification and the rules that take it.
#[derive(Debug)]
pub struct AlertExplained {
    /// Its `alertname` label, or `(no alertname)`.
    pub name: String,
    pub status: Status,
    /// The episode's key, `fingerprint@startsAt`.
    pub key: String,
    /// In order; empty when no rule matches or the alert resolved (no rule acts on it then).
    pub rules: Vec<RuleTaken>,
}

/// A rule that takes an alert, with its remediation ladder worked out for that alert.
#[derive(Debug)]
pub struct RuleTaken {
    pub rule: String,
    /// `observe`: every step is decided and recorded as `observed`, and nothing is changed.
    pub mode: RuleMode,
    /// Empty when the rule only tells people.
    pub steps: Vec<StepExplained>,
}

/// One step of a ladder for one alert.
#[derive(Debug)]
pub struct StepExplained {
    /// 1 for the first step.
    pub number: usize,
    pub action: &'static str,
    pub outcome: StepOutcome,
}

/// What a step would do with this alert's labels and annotations.
#[derive(Debug)]
pub enum StepOutcome {
    /// The parameters render and pass the action's checks.
    Runs(Run),
    /// Rendered, but the action's checks refuse them: recorded as `skipped_invalid`.
    Invalid { params: String, reason: String },
    /// The alert lacks a label or annotation the parameters name.
    Fails { reason: String },
}

/// A step that would act, and the guard rails it would meet.
#[derive(Debug)]
pub struct Run {
    pub target: String,
    /// The rendered parameters, as JSON.
    pub params: String,
    pub dry_run: bool,
    pub namespace_allowed: bool,
    pub cooldown: Duration,
    pub verify_within: Option<Duration>,
    pub approval: bool,
    /// For `restart_pods`: its `min_healthy`, and whose floor holds which pods.
    pub floor: Option<String>,
    /// For a spec-changing action: what happens if Argo CD or Flux manages the target.
    pub gitops: Option<String>,
    /// The step's `verify_query` rendered for this alert (or why it cannot be: recorded, the
    /// step runs anyway).
    pub verify_query: Option<String>,
}

/// A timer the notification would schedule.
#[derive(Debug)]
pub struct TimerExplained {
    /// From when the incident opens.
    pub after: Duration,
    /// `escalation step 2`, `opened`, `remediation`, ...
    pub what: String,
    /// The notifier, or the action of a remediation.
    pub notifier: String,
    pub rule: String,
    pub repeat: Option<Duration>,
}

/// Works out what `rules` and `rails` would do with `n`.
pub fn explain(rules: &Rules, rails: &GuardRails, n: &Notification) -> Explanation {
    let alerts = n
        .alerts
        .iter()
        .map(|alert| AlertExplained {
            name: alert
                .labels
                .get("alertname")
                .map_or("(no alertname)", String::as_str)
                .to_owned(),
            status: alert.status,
            key: alert.key(),
            rules: rules_taking(rules, rails, alert),
        })
        .collect();
    // The cluster context timer belongs to no rule and sends nothing itself: left out.
    let timers = rules
        .plan(n)
        .into_iter()
        .filter(|timer| timer.kind() != TimerKind::Context)
        .map(|timer| TimerExplained {
            after: timer.after,
            what: match &timer.work {
                TimerWork::Escalation { step, .. } => format!("escalation step {step}"),
                work => work.kind().as_str().to_owned(),
            },
            notifier: match &timer.work {
                TimerWork::Remediation(work) | TimerWork::Verify(work) => work.action.as_str().to_owned(),
                work => work.notifier().unwrap_or_default().to_owned(),
            },
            rule: timer.rule,
            repeat: timer.repeat,
        })
        .collect();
    Explanation {
        group_key: n.group_key.clone(),
        status: n.status,
        alerts,
        timers,
    }
}

fn rules_taking(rules: &Rules, rails: &GuardRails, alert: &AlertEpisode) -> Vec<RuleTaken> {
    if alert.status != Status::Firing {
        return Vec::new();
    }
    rules
        .matching(&alert.labels)
        .map(|rule| RuleTaken {
            rule: rule.name.clone(),
            mode: rule.mode,
            steps: (1..)
                .zip(&rule.remediate)
                .map(|(number, spec)| StepExplained {
                    number,
                    action: spec.action.as_str(),
                    outcome: outcome(spec, rails, alert),
                })
                .collect(),
        })
        .collect()
}

fn outcome(spec: &RemediationSpec, rails: &GuardRails, alert: &AlertEpisode) -> StepOutcome {
    let params = match spec.render(&alert.labels, &alert.annotations) {
        Ok(params) => params,
        Err(reason) => return StepOutcome::Fails { reason },
    };
    let json = |params: &crate::domain::ActionParams| serde_json::to_string(&params.0).unwrap_or_default();
    match spec.action.validate(&params, &rails.limits) {
        Ok(params) => StepOutcome::Runs(Run {
            target: target_key(spec.action, &params),
            namespace_allowed: params
                .text("namespace")
                .is_none_or(|ns| rails.namespace_allowed(ns)),
            params: json(&params),
            dry_run: spec.dry_run.unwrap_or(rails.dry_run),
            cooldown: spec.cooldown.unwrap_or(rails.cooldown),
            verify_within: spec.verify_within,
            approval: spec.approval,
            floor: floor(spec.action, &params),
            gitops: gitops(spec, &params),
            verify_query: spec.verify_query.as_ref().map(|v| {
                v.query
                    .render(&alert.labels, &alert.annotations)
                    .unwrap_or_else(|e| format!("cannot be rendered ({e}): recorded, the step runs anyway"))
            }),
        }),
        Err(e) => StepOutcome::Invalid {
            params: json(&params),
            reason: e.to_string(),
        },
    }
}

/// What a spec-changing step does with a Deployment Argo CD or Flux manages (read from its
/// labels and annotations when the step runs; explain reads no cluster).
fn gitops(spec: &RemediationSpec, params: &ActionParams) -> Option<String> {
    let deployment = match spec.action {
        Action::PostgresRelievePool if params.text("env").is_some() => "the pool size's deployment",
        action if action.changes_spec() => "the deployment",
        _ => return None,
    };
    Some(if spec.gitops_allow {
        format!("gitops: allow (acts even if Argo CD or Flux manages {deployment}, warning that it may revert it)")
    } else {
        format!("gitops: skipped_gitops if Argo CD or Flux manages {deployment}, handed over to people")
    })
}

/// `restart_pods`' floor: `min_healthy 50%; ` and the rule ([`FLOOR_RULE`]).
fn floor(action: Action, params: &ActionParams) -> Option<String> {
    if action != Action::RestartPods {
        return None;
    }
    let min_healthy = params.min_healthy().ok()?;
    Some(format!("min_healthy {min_healthy}; {FLOOR_RULE}"))
}

impl fmt::Display for Explanation {
    /// The text `medic explain` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "group {} ({}), {} alert(s)",
            self.group_key,
            self.status.as_str(),
            self.alerts.len()
        )?;
        for alert in &self.alerts {
            writeln!(
                f,
                "\nalert {} [{}] {}",
                alert.name,
                alert.status.as_str(),
                alert.key
            )?;
            if alert.status != Status::Firing {
                writeln!(f, "  resolved: no rule acts on it")?;
                continue;
            }
            if alert.rules.is_empty() {
                writeln!(f, "  no rule matches")?;
            }
            for rule in &alert.rules {
                writeln!(f, "  rule {}", rule.rule)?;
                if rule.steps.is_empty() {
                    writeln!(f, "    no remediation")?;
                } else if rule.mode == RuleMode::Observe {
                    writeln!(f, "    {OBSERVE}")?;
                }
                for step in &rule.steps {
                    let numbered = rule.steps.len() > 1;
                    write_step(f, step, numbered)?;
                }
            }
        }
        writeln!(
            f,
            "\ntimers (if this notification opens the incident or adds these alerts):"
        )?;
        if self.timers.is_empty() {
            writeln!(f, "  none")?;
        }
        for timer in &self.timers {
            let repeat = timer
                .repeat
                .map(|r| format!(", repeating every {}", HumanDuration(r)))
                .unwrap_or_default();
            writeln!(
                f,
                "  +{:<8} {:<20} {} (rule {}){repeat}",
                HumanDuration(timer.after).to_string(),
                timer.what,
                timer.notifier,
                timer.rule
            )?;
        }
        Ok(())
    }
}

/// What `mode: observe` does, as `medic explain` says it.
const OBSERVE: &str = "mode: observe: each step is decided with every guard rail and recorded as \
                       observed with its plan; nothing is changed, no budget is spent, nobody is asked \
                       to approve and nobody is paged early";

fn write_step(f: &mut fmt::Formatter<'_>, step: &StepExplained, numbered: bool) -> fmt::Result {
    let label = if numbered {
        format!(" (step {})", step.number)
    } else {
        String::new()
    };
    let action = step.action;
    match &step.outcome {
        StepOutcome::Runs(run) => {
            let verify = run
                .verify_within
                .map(|v| format!("; verify within {}", HumanDuration(v)))
                .unwrap_or_default();
            let approval = if run.approval { "; needs approval" } else { "" };
            writeln!(
                f,
                "    remediate{label}: {action} on {} with {}",
                run.target, run.params
            )?;
            writeln!(
                f,
                "    dry run: {}; namespace allowed: {}; cooldown: {}{verify}{approval}",
                run.dry_run,
                run.namespace_allowed,
                HumanDuration(run.cooldown)
            )?;
            if let Some(gitops) = &run.gitops {
                writeln!(f, "    {gitops}")?;
            }
            if let Some(query) = &run.verify_query {
                writeln!(
                    f,
                    "    verify_query: {query} (read before acting and when verified)"
                )?;
            }
            match &run.floor {
                Some(floor) => writeln!(f, "    floor: {floor}"),
                None => Ok(()),
            }
        }
        StepOutcome::Invalid { params, reason } => writeln!(
            f,
            "    remediate{label}: {action} with {params} would be skipped_invalid: {reason}"
        ),
        StepOutcome::Fails { reason } => writeln!(f, "    remediate{label}: {action} would fail: {reason}"),
    }
}

/// Reads what a person pastes: a whole Alertmanager webhook payload (JSON with `alerts`), a
/// JSON object of labels, or labels written as matchers (`alertname="X", namespace="shop"`,
/// braces optional, one or more per line). Labels stand for one firing alert that starts now.
/// The error says what was wrong, for people.
pub fn notification(text: &str) -> Result<Notification, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(r#"nothing to explain: paste an Alertmanager webhook payload or labels such as alertname="HighErrorRate", namespace="shop""#.to_owned());
    }
    let labels = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) if object.contains_key("alerts") => {
            let data: Data = serde_json::from_str(text)
                .map_err(|e| format!("not an Alertmanager webhook payload: {e}"))?;
            return Notification::parse(data).map_err(|e| format!("not a payload medic takes: {e}"));
        }
        Ok(Value::Object(object)) => labels_of_object(object)?,
        Ok(_) => return Err("JSON must be an object: a webhook payload or labels".to_owned()),
        // `{a="b"}` is no JSON but is matchers; `{"a": ...` and `[` were meant as JSON.
        Err(e) if text.starts_with("{\"") || text.starts_with('[') => {
            return Err(format!("not valid JSON: {e}"))
        }
        Err(_) => labels_of_matchers(text)?,
    };
    firing(labels)
}

fn labels_of_object(object: serde_json::Map<String, Value>) -> Result<KV, String> {
    if object.is_empty() {
        return Err("no labels: give at least one, such as alertname".to_owned());
    }
    object
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(value) => Ok((name, value)),
            other => Err(format!(
                "label {name:?}: a label's value is a string, not {other}"
            )),
        })
        .collect()
}

fn labels_of_matchers(text: &str) -> Result<KV, String> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let matchers = Matchers::parse(&lines).map_err(|e| format!("neither JSON nor labels: {e}"))?;
    if matchers.is_empty() {
        return Err("no labels: give at least one, such as alertname".to_owned());
    }
    matchers
        .iter()
        .map(|m| match m.op() {
            Op::Equal => Ok((m.name().to_owned(), m.value().to_owned())),
            op => Err(format!(
                "{m}: a label is name=\"value\"; {op} tests labels, it does not give one"
            )),
        })
        .collect()
}

/// One firing alert with `labels`, starting now, in a group of its own.
fn firing(labels: KV) -> Result<Notification, String> {
    let mut hasher = DefaultHasher::new();
    labels.hash(&mut hasher);
    let alert = Alert {
        status: Status::Firing,
        labels: labels.clone(),
        annotations: KV::new(),
        starts_at: Utc::now(),
        ends_at: None,
        generator_url: String::new(),
        fingerprint: format!("{:016x}", hasher.finish()),
    };
    let data = Data {
        version: SUPPORTED_VERSION.to_owned(),
        receiver: "explain".to_owned(),
        status: Status::Firing,
        alerts: vec![alert],
        group_key: "{}:{}".to_owned(),
        group_labels: KV::new(),
        common_labels: labels,
        common_annotations: KV::new(),
        external_url: String::new(),
        truncated_alerts: 0,
    };
    Notification::parse(data).map_err(|e| format!("not labels medic takes: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(text: &str) -> KV {
        let n = notification(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(n.alerts.len(), 1);
        assert_eq!(n.alerts[0].status, Status::Firing);
        n.alerts[0].labels.clone()
    }

    fn kv(pairs: &[(&str, &str)]) -> KV {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_read_as_matchers_with_or_without_braces_and_over_lines() {
        let want = kv(&[("alertname", "X"), ("namespace", "shop")]);
        assert_eq!(labels(r#"alertname="X", namespace="shop""#), want);
        assert_eq!(labels(r#"{alertname="X", namespace="shop"}"#), want);
        assert_eq!(labels("alertname=\"X\"\nnamespace=\"shop\"\n"), want);
    }

    #[test]
    fn labels_read_as_a_json_object() {
        assert_eq!(
            labels(r#"{"alertname": "X", "namespace": "shop"}"#),
            kv(&[("alertname", "X"), ("namespace", "shop")])
        );
    }

    #[test]
    fn a_whole_payload_keeps_its_alerts_and_group() {
        let payload = r#"{"receiver":"medic","status":"firing","alerts":[
            {"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-11-26T10:00:00Z","fingerprint":"01"},
            {"status":"resolved","labels":{"alertname":"B"},"startsAt":"2026-11-26T10:00:00Z","fingerprint":"02"}],
            "version":"4","groupKey":"{}:{alertname=\"A\"}"}"#;
        let n = notification(payload).unwrap();
        assert_eq!(n.group_key, r#"{}:{alertname="A"}"#);
        assert_eq!(n.alerts.len(), 2);
    }

    #[test]
    fn what_is_neither_says_why() {
        for (text, says) in [
            ("", "nothing to explain"),
            ("   \n", "nothing to explain"),
            (
                r#"{"alerts": 3, "version": "4"}"#,
                "not an Alertmanager webhook payload",
            ),
            (r#"{"alertname": 3}"#, "a label's value is a string"),
            (r#"{"alertname": "X""#, "not valid JSON"),
            ("[1, 2]", "JSON must be an object"),
            ("{}", "no labels"),
            (r#"alertname=~"X.*""#, "tests labels"),
            ("just some words", "neither JSON nor labels"),
            (
                r#"{"receiver":"m","status":"firing","alerts":[],"version":"4","groupKey":"g"}"#,
                "alerts must not be empty",
            ),
        ] {
            let e = notification(text).expect_err(text);
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
