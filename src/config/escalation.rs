//! Settings for telling people: notifiers, the rules that pick them, and the timer engine.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use secrecy::SecretString;
use serde::Deserialize;

use super::problem::Problem;
use crate::domain::{HumanDuration, RuleMode, ValueFormat};

/// Where a notifier sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierType {
    /// A Slack incoming webhook.
    Slack,
    /// A Slack app: one message per incident, updated, with a thread and buttons.
    #[serde(rename = "slack_app")]
    SlackApp,
    /// PagerDuty's Events API v2.
    Pagerduty,
    /// A JSON POST to any URL.
    Webhook,
    /// A line in medic's own log, nothing sent: for trying medic out (scripts/run-local), or a
    /// log pipeline that forwards it.
    Log,
}

impl NotifierType {
    /// The name used in the config, the database and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifierType::Slack => "slack",
            NotifierType::SlackApp => "slack_app",
            NotifierType::Pagerduty => "pagerduty",
            NotifierType::Webhook => "webhook",
            NotifierType::Log => "log",
        }
    }

    /// The channel a message to a notifier of this type goes by, as timers store it.
    pub fn channel(self) -> crate::domain::Channel {
        use crate::domain::Channel;
        match self {
            NotifierType::Slack => Channel::Slack,
            NotifierType::SlackApp => Channel::SlackApp,
            NotifierType::Pagerduty => Channel::PagerDuty,
            NotifierType::Webhook => Channel::Webhook,
            NotifierType::Log => Channel::Log,
        }
    }
}

/// PagerDuty's public endpoint; tests and proxies set `url` instead.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// One named destination under `notifiers:`. Secrets (`url`, `routing_key`, `bearer_token`) may
/// also be read from a `*_file`, or set with `MEDIC_NOTIFIERS__<NAME>__<KEY>`.
#[derive(Debug, Deserialize)]
pub struct NotifierSettings {
    #[serde(rename = "type")]
    pub kind: NotifierType,
    /// Slack's incoming-webhook URL, PagerDuty's events URL, or the webhook's URL. A secret:
    /// Slack's URL is the credential.
    pub url: Option<SecretString>,
    pub url_file: Option<PathBuf>,
    /// Slack: the channel to post to, when not the webhook's own.
    pub channel: Option<String>,
    /// Slack: the name messages are posted under.
    pub username: Option<String>,
    /// PagerDuty: the integration's routing key.
    pub routing_key: Option<SecretString>,
    pub routing_key_file: Option<PathBuf>,
    /// Webhook: sent as `Authorization: Bearer`. Slack app: its bot token (`xoxb-`).
    pub bearer_token: Option<SecretString>,
    pub bearer_token_file: Option<PathBuf>,
    /// Slack app: its bot token (`xoxb-`), sent as `Authorization: Bearer`.
    pub bot_token: Option<SecretString>,
    pub bot_token_file: Option<PathBuf>,
    /// Slack app: the signing secret its interactions are signed with.
    pub signing_secret: Option<SecretString>,
    pub signing_secret_file: Option<PathBuf>,
    /// Slack app: the Web API's base URL (default Slack's).
    pub api_url: Option<String>,
    /// PagerDuty: the webhook subscription's secret, which signs what PagerDuty sends back.
    pub webhook_secret: Option<SecretString>,
    pub webhook_secret_file: Option<PathBuf>,
}

/// Slack's Web API; tests and proxies set `api_url` instead.
pub const SLACK_API_URL: &str = "https://slack.com/api";

/// One entry of `rules:`: which alerts it takes and whom it tells, when.
#[derive(Debug, Deserialize)]
pub struct RuleSettings {
    pub name: String,
    /// Alertmanager matchers (`alertname="X"`, `!=`, `=~`, `!~`); all must hold.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// When given, the alert's `severity` label must be one of these.
    #[serde(default)]
    pub severities: Vec<String>,
    /// Told when the incident opens, is acknowledged and resolves.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Steps taken while the incident is still firing and unacknowledged.
    #[serde(default)]
    pub escalation: Vec<StepSettings>,
    /// Linked in messages when the alert has no `runbook_url` annotation.
    pub runbook_url: Option<String>,
    /// Keep matching later rules (default: the first matching rule wins).
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// What to do about a matching alert, beyond telling people: one step, or a ladder of
    /// steps tried in turn while the alert still fires.
    pub remediate: Option<Ladder>,
    /// `observe`: the remediation is decided with every guard rail and recorded as
    /// `observed` with its plan, and nothing is changed (default `act`).
    #[serde(default)]
    pub mode: RuleMode,
}

/// A rule's `remediate:`: a single map (a ladder of one) or a list of steps.
#[derive(Debug)]
pub enum Ladder {
    One(RemediateSettings),
    Steps(Vec<RemediateSettings>),
}

/// By hand rather than `untagged`, so that a mistake inside a step is reported as itself, not
/// as "matched no variant".
impl<'de> Deserialize<'de> for Ladder {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Ladder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a remediation step (a map) or a ladder of steps (a list)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Ladder, A::Error> {
                RemediateSettings::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Ladder::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Ladder, A::Error> {
                Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Ladder::Steps)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Ladder {
    /// The steps in order, each with its key path under `at` (`at` itself for a single map).
    pub fn steps(&self, at: &str) -> Vec<(String, &RemediateSettings)> {
        match self {
            Ladder::One(step) => vec![(at.to_owned(), step)],
            Ladder::Steps(steps) => steps
                .iter()
                .enumerate()
                .map(|(i, step)| (format!("{at}[{i}]"), step))
                .collect(),
        }
    }
}

/// Whether a step acts on its own or waits for a person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Approval {
    #[default]
    Auto,
    Required,
}

impl TryFrom<String> for Approval {
    type Error = String;
    fn try_from(word: String) -> Result<Self, String> {
        match word.as_str() {
            "auto" => Ok(Approval::Auto),
            "required" => Ok(Approval::Required),
            other => Err(format!("{other:?}: auto or required")),
        }
    }
}

/// Whether a spec-changing step acts on an object Argo CD or Flux manages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Gitops {
    /// `skipped_gitops`: handed over to people, naming the application.
    #[default]
    Skip,
    /// Act anyway, warning that the controller may revert it.
    Allow,
}

impl TryFrom<String> for Gitops {
    type Error = String;
    fn try_from(word: String) -> Result<Self, String> {
        match word.as_str() {
            "skip" => Ok(Gitops::Skip),
            "allow" => Ok(Gitops::Allow),
            other => Err(format!("{other:?}: skip or allow")),
        }
    }
}

/// One step of a rule's `remediate:`.
#[derive(Debug, Deserialize)]
pub struct RemediateSettings {
    /// `restart_pods`, `scale_up`, `scale_to`, `rollout_restart` or `postgres_relieve_pool`.
    pub action: String,
    /// The action's parameters; text may use `{{ labels.NAME }}` and `{{ annotations.NAME }}`.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// No second action on the same target within this; default `remediation.cooldown`.
    pub cooldown: Option<HumanDuration>,
    /// Plan and record, change nothing; default: the global `dry_run`.
    pub dry_run: Option<bool>,
    /// Read for compatibility: a failed or skipped step now always brings the first pending
    /// escalation step forward (a ladder that ran out hands over to people).
    #[serde(default)]
    pub escalate_on_failure: bool,
    /// The alert must resolve within this after the action, or the step is `not_fixed` and
    /// the next one runs.
    pub verify_within: Option<HumanDuration>,
    /// After the alert resolved within `verify_within`, it must stay resolved this long for
    /// the step to be `fixed`; default `remediation.hold`.
    pub hold: Option<HumanDuration>,
    /// `required`: a person approves the step before it acts.
    #[serde(default)]
    pub approval: Approval,
    /// `allow`: change a Deployment that Argo CD or Flux manages anyway (default `skip`).
    #[serde(default)]
    pub gitops: Gitops,
    /// PromQL yielding one series, read from `prometheus.url` before the step acts and when
    /// it is verified, as evidence of what it changed.
    pub verify_query: Option<VerifyQuerySettings>,
}

/// A step's `verify_query`: the PromQL alone, or a map that also names the value and says
/// how to show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyQuerySettings {
    /// PromQL; text may use `{{ labels.NAME }}` and `{{ annotations.NAME }}`.
    pub query: String,
    /// What people call the value (`error ratio`).
    pub name: Option<String>,
    /// `number` (default) or `percent` (a ratio shown as a percentage).
    pub format: ValueFormat,
}

/// The map form of [`VerifyQuerySettings`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyQueryMap {
    query: String,
    name: Option<String>,
    #[serde(default)]
    format: ValueFormat,
}

/// By hand rather than `untagged`, so that a mistake inside the map is reported as itself.
impl<'de> Deserialize<'de> for VerifyQuerySettings {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = VerifyQuerySettings;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("PromQL text, or a map with query, name and format")
            }
            fn visit_str<E: serde::de::Error>(self, query: &str) -> Result<VerifyQuerySettings, E> {
                Ok(VerifyQuerySettings {
                    query: query.to_owned(),
                    name: None,
                    format: ValueFormat::Number,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<VerifyQuerySettings, A::Error> {
                let map = VerifyQueryMap::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(VerifyQuerySettings {
                    query: map.query,
                    name: map.name,
                    format: map.format,
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One escalation step.
#[derive(Debug, Deserialize)]
pub struct StepSettings {
    /// From when the incident opened.
    pub after: HumanDuration,
    pub notify: Vec<String>,
    /// When given, the step applies only to incidents of these severities.
    #[serde(default)]
    pub severities: Vec<String>,
    /// Last step only: send it again this often until resolved or acknowledged.
    pub repeat: Option<HumanDuration>,
}

/// The timer engine every replica runs.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct EngineSettings {
    /// Run the engine in this process (replicas that only take webhooks may turn it off).
    pub enabled: bool,
    /// How long a claimed timer is held; an engine that dies loses it after this.
    pub lease: HumanDuration,
    /// Slowest check for due timers, should a wake-up be missed (LISTEN/NOTIFY does the rest).
    pub safety_poll: HumanDuration,
    /// Timers claimed per query.
    pub batch: usize,
    /// Timers due this soon are claimed together and sent at their due time, so that at a
    /// high rate one query serves many timers. Precision comes from the local sleep.
    pub claim_ahead: HumanDuration,
    /// Messages being sent at once by this replica.
    pub concurrency: usize,
    /// Remediations running at once in this replica, apart from the sends.
    pub remediation_concurrency: usize,
    /// Longest wait for a notifier's answer.
    pub request_timeout: HumanDuration,
    /// `/healthz` fails when the claim loop has not gone round for longer than this.
    pub stall_after: HumanDuration,
    pub retry: RetrySettings,
}

/// How failed sends are retried.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RetrySettings {
    /// First delay; it doubles each attempt, with jitter.
    pub initial_backoff: HumanDuration,
    pub max_backoff: HumanDuration,
    /// After this long since the timer was due, stop and record it as failed.
    pub give_up_after: HumanDuration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            lease: HumanDuration(Duration::from_secs(60)),
            safety_poll: HumanDuration(Duration::from_secs(30)),
            batch: 256,
            claim_ahead: HumanDuration(Duration::from_millis(50)),
            concurrency: 64,
            remediation_concurrency: 4,
            request_timeout: HumanDuration(Duration::from_secs(10)),
            stall_after: HumanDuration(Duration::from_secs(120)),
            retry: RetrySettings::default(),
        }
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            initial_backoff: HumanDuration(Duration::from_secs(1)),
            max_backoff: HumanDuration(Duration::from_secs(300)),
            give_up_after: HumanDuration(Duration::from_secs(3600)),
        }
    }
}

impl EngineSettings {
    /// Problems the types cannot rule out.
    pub fn check(&self, problems: &mut Vec<Problem>) {
        let zero = Duration::ZERO;
        for (key, span) in [
            ("engine.lease", self.lease),
            ("engine.safety_poll", self.safety_poll),
            ("engine.request_timeout", self.request_timeout),
            ("engine.retry.initial_backoff", self.retry.initial_backoff),
            ("engine.retry.max_backoff", self.retry.max_backoff),
        ] {
            if span.0 == zero {
                problems.push(Problem::new(key, "must be greater than 0"));
            }
        }
        if self.lease.0 <= self.request_timeout.0 {
            problems.push(Problem::new(
                "engine.lease",
                format!(
                    "must be longer than engine.request_timeout ({}), or a slow send would be \
                     taken over and sent twice",
                    self.request_timeout
                ),
            ));
        }
        if self.claim_ahead.0 * 2 > self.lease.0 {
            problems.push(Problem::new(
                "engine.claim_ahead",
                "must be at most half of engine.lease",
            ));
        }
        let longest_round = self.safety_poll.0.saturating_add(self.request_timeout.0);
        if self.stall_after.0 <= longest_round {
            problems.push(Problem::new(
                "engine.stall_after",
                format!(
                    "must be longer than engine.safety_poll plus engine.request_timeout ({}), or a \
                     healthy idle engine would read as stalled",
                    HumanDuration(longest_round)
                ),
            ));
        }
        if self.batch == 0 || self.batch > 10_000 {
            problems.push(Problem::new("engine.batch", "must be between 1 and 10000"));
        }
        if self.concurrency == 0 {
            problems.push(Problem::new("engine.concurrency", "must be greater than 0"));
        }
        if self.remediation_concurrency == 0 {
            problems.push(Problem::new(
                "engine.remediation_concurrency",
                "must be greater than 0",
            ));
        }
    }
}
