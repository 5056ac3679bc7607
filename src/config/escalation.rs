//! Settings for telling people: notifiers, the rules that pick them, and the timer engine.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::{de, Deserialize, Deserializer};

use super::{secret_from, Problem};

/// A duration written as Prometheus does (`90s`, `5m`, `1h30m`, `250ms`) or as whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span(pub Duration);

impl Span {
    /// Parses `1h30m`, `5m`, `10s`, `250ms`, `2d` (units in decreasing order, each at most
    /// once), or a bare number of seconds (as environment variables give it).
    pub fn parse(text: &str) -> Result<Span, String> {
        if let Ok(seconds) = text.trim().parse::<u64>() {
            return Ok(Span(Duration::from_secs(seconds)));
        }
        const UNITS: [(&str, u64); 5] = [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ];
        let bad = || format!("{text:?} is not a duration such as 90s, 5m or 1h30m");
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total_ms: u64 = 0;
        let mut last_unit = 0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let position = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
            // Units in the table's order (d, h, m, s, ms), each at most once.
            let rank = position + 1;
            if rank <= last_unit {
                return Err(bad());
            }
            last_unit = rank;
            total_ms = number
                .checked_mul(UNITS[position].1)
                .and_then(|ms| total_ms.checked_add(ms))
                .ok_or_else(bad)?;
        }
        Ok(Span(Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => write!(f, "0s"),
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Span;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 90s, 5m or 1h30m")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Span, E> {
                Ok(Span(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Span, E> {
                u64::try_from(v)
                    .map(|v| Span(Duration::from_secs(v)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Span, E> {
                Span::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Where a notifier sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierType {
    /// A Slack incoming webhook.
    Slack,
    /// PagerDuty's Events API v2.
    Pagerduty,
    /// A JSON POST to any URL.
    Webhook,
}

impl NotifierType {
    /// The name used in the config, the database and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifierType::Slack => "slack",
            NotifierType::Pagerduty => "pagerduty",
            NotifierType::Webhook => "webhook",
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
    /// Webhook: sent as `Authorization: Bearer`.
    pub bearer_token: Option<SecretString>,
    pub bearer_token_file: Option<PathBuf>,
}

/// A notifier with its secrets read and checked.
#[derive(Clone)]
pub struct NotifierTarget {
    pub name: String,
    pub kind: NotifierType,
    pub url: reqwest::Url,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub routing_key: Option<SecretString>,
    pub bearer_token: Option<SecretString>,
}

impl fmt::Debug for NotifierTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL itself may be the credential (Slack): show only where it points.
        f.debug_struct("NotifierTarget")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.url.host_str())
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl NotifierSettings {
    /// Reads the secrets and checks what this type of notifier needs.
    pub fn target(&self, name: &str, problems: &mut Vec<Problem>) -> Option<NotifierTarget> {
        let key = |k: &str| format!("notifiers.{name}.{k}");
        let start = problems.len();
        let url = secret_from(&key("url"), self.url.as_ref(), self.url_file.as_ref(), problems);
        let routing_key = secret_from(
            &key("routing_key"),
            self.routing_key.as_ref(),
            self.routing_key_file.as_ref(),
            problems,
        );
        let bearer_token = secret_from(
            &key("bearer_token"),
            self.bearer_token.as_ref(),
            self.bearer_token_file.as_ref(),
            problems,
        );
        let url = match (url, self.kind) {
            (Some(url), _) => parse_url(url.expose_secret(), &key("url"), problems),
            (None, NotifierType::Pagerduty) => reqwest::Url::parse(PAGERDUTY_EVENTS_URL).ok(),
            (None, _) => {
                problems.push(Problem::new(key("url"), "required (or url_file)"));
                None
            }
        };
        self.check_keys(name, routing_key.is_some(), bearer_token.is_some(), problems);
        let url = url.filter(|_| problems.len() == start)?;
        Some(NotifierTarget {
            name: name.to_owned(),
            kind: self.kind,
            url,
            channel: self.channel.clone(),
            username: self.username.clone(),
            routing_key,
            bearer_token,
        })
    }

    /// Keys that belong to another type are mistakes, not silently ignored.
    fn check_keys(&self, name: &str, routing_key: bool, bearer: bool, problems: &mut Vec<Problem>) {
        let key = |k: &str| format!("notifiers.{name}.{k}");
        let kind = self.kind.as_str();
        let misplaced = |k: &str, present: bool, problems: &mut Vec<Problem>| {
            if present {
                problems.push(Problem::new(key(k), format!("not used by a {kind} notifier")));
            }
        };
        match self.kind {
            NotifierType::Slack => {
                misplaced("routing_key", routing_key, problems);
                misplaced("bearer_token", bearer, problems);
            }
            NotifierType::Pagerduty => {
                if !routing_key {
                    problems.push(Problem::new(key("routing_key"), "required (or routing_key_file)"));
                }
                misplaced("bearer_token", bearer, problems);
                misplaced("channel", self.channel.is_some(), problems);
                misplaced("username", self.username.is_some(), problems);
            }
            NotifierType::Webhook => {
                misplaced("routing_key", routing_key, problems);
                misplaced("channel", self.channel.is_some(), problems);
                misplaced("username", self.username.is_some(), problems);
            }
        }
    }
}

fn parse_url(text: &str, key: &str, problems: &mut Vec<Problem>) -> Option<reqwest::Url> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
        // Never echo the URL: for Slack it is the credential.
        Ok(_) => {
            problems.push(Problem::new(key, "must be an http or https URL"));
            None
        }
        Err(e) => {
            problems.push(Problem::new(key, format!("not a URL: {e}")));
            None
        }
    }
}

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
    /// What to do about a matching alert, beyond telling people.
    pub remediate: Option<RemediateSettings>,
}

/// A rule's `remediate:` block.
#[derive(Debug, Deserialize)]
pub struct RemediateSettings {
    /// `restart_pods`, `scale_up`, `scale_to`, `rollout_restart` or `postgres_relieve_pool`.
    pub action: String,
    /// The action's parameters; text may use `{{ labels.NAME }}` and `{{ annotations.NAME }}`.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// No second action on the same target within this; default `remediation.cooldown`.
    pub cooldown: Option<Span>,
    /// Plan and record, change nothing; default: the global `dry_run`.
    pub dry_run: Option<bool>,
    /// A failed or skipped action brings the first pending escalation step forward to now.
    #[serde(default)]
    pub escalate_on_failure: bool,
}

/// One escalation step.
#[derive(Debug, Deserialize)]
pub struct StepSettings {
    /// From when the incident opened.
    pub after: Span,
    pub notify: Vec<String>,
    /// When given, the step applies only to incidents of these severities.
    #[serde(default)]
    pub severities: Vec<String>,
    /// Last step only: send it again this often until resolved or acknowledged.
    pub repeat: Option<Span>,
}

/// The timer engine every replica runs.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct EngineSettings {
    /// Run the engine in this process (replicas that only take webhooks may turn it off).
    pub enabled: bool,
    /// How long a claimed timer is held; an engine that dies loses it after this.
    pub lease: Span,
    /// Slowest check for due timers, should a wake-up be missed (LISTEN/NOTIFY does the rest).
    pub safety_poll: Span,
    /// Timers claimed per query.
    pub batch: usize,
    /// Timers due this soon are claimed together and sent at their due time, so that at a
    /// high rate one query serves many timers. Precision comes from the local sleep.
    pub claim_ahead: Span,
    /// Messages being sent at once by this replica.
    pub concurrency: usize,
    /// Longest wait for a notifier's answer.
    pub request_timeout: Span,
    pub retry: RetrySettings,
}

/// How failed sends are retried.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RetrySettings {
    /// First delay; it doubles each attempt, with jitter.
    pub initial_backoff: Span,
    pub max_backoff: Span,
    /// After this long since the timer was due, stop and record it as failed.
    pub give_up_after: Span,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            lease: Span(Duration::from_secs(60)),
            safety_poll: Span(Duration::from_secs(30)),
            batch: 256,
            claim_ahead: Span(Duration::from_millis(50)),
            concurrency: 64,
            request_timeout: Span(Duration::from_secs(10)),
            retry: RetrySettings::default(),
        }
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            initial_backoff: Span(Duration::from_secs(1)),
            max_backoff: Span(Duration::from_secs(300)),
            give_up_after: Span(Duration::from_secs(3600)),
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
        if self.batch == 0 || self.batch > 10_000 {
            problems.push(Problem::new("engine.batch", "must be between 1 and 10000"));
        }
        if self.concurrency == 0 {
            problems.push(Problem::new("engine.concurrency", "must be greater than 0"));
        }
    }
}

/// Reads every notifier's secrets; problems carry the notifier's key path.
pub fn notifier_targets(
    notifiers: &BTreeMap<String, NotifierSettings>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, NotifierTarget> {
    notifiers
        .iter()
        .filter_map(|(name, settings)| Some((name.clone(), settings.target(name, problems)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_prometheus_durations() {
        let ms = |text| Span::parse(text).map(|s| s.0.as_millis());
        assert_eq!(ms("5m"), Ok(300_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("1m30s500ms"), Ok(90_500));
        assert_eq!(ms("2d"), Ok(172_800_000));
        assert_eq!(
            ms("30"),
            Ok(30_000),
            "bare seconds, as environment variables give them"
        );
        for bad in ["", "m", "5x", "30s1m", "1m1m", "-5s", "5 m", "1.5s"] {
            assert!(Span::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
