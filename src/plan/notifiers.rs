//! Notifiers compiled: each named destination with its secrets read and its keys checked.

use std::{collections::BTreeMap, fmt};

use secrecy::{ExposeSecret, SecretString};

use super::secrets::secret_from;
use crate::config::{NotifierSettings, NotifierType, Problem, PAGERDUTY_EVENTS_URL, SLACK_API_URL};

/// A notifier with its secrets read and checked.
#[derive(Clone)]
pub struct NotifierEndpoint {
    pub name: String,
    pub kind: NotifierType,
    /// Where to send; `None` only for a `log` notifier, which sends nothing.
    pub url: Option<reqwest::Url>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub routing_key: Option<SecretString>,
    /// A webhook's bearer token, or a Slack app's bot token.
    pub bearer_token: Option<SecretString>,
    /// A Slack app's signing secret (its interactions are signed with it).
    pub signing_secret: Option<SecretString>,
    /// A PagerDuty webhook subscription's secret (what PagerDuty sends back is signed with it).
    pub webhook_secret: Option<SecretString>,
}

impl fmt::Debug for NotifierEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL itself may be the credential (Slack): show only where it points.
        f.debug_struct("NotifierEndpoint")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.url.as_ref().and_then(|u| u.host_str()))
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// Reads one notifier's secrets and checks what its type needs.
fn endpoint(
    settings: &NotifierSettings,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Option<NotifierEndpoint> {
    let key = |k: &str| format!("notifiers.{name}.{k}");
    let start = problems.len();
    let url = secret_from(
        &key("url"),
        settings.url.as_ref(),
        settings.url_file.as_ref(),
        problems,
    );
    let routing_key = secret_from(
        &key("routing_key"),
        settings.routing_key.as_ref(),
        settings.routing_key_file.as_ref(),
        problems,
    );
    let bearer_token = secret_from(
        &key("bearer_token"),
        settings.bearer_token.as_ref(),
        settings.bearer_token_file.as_ref(),
        problems,
    );
    let bot_token = secret_from(
        &key("bot_token"),
        settings.bot_token.as_ref(),
        settings.bot_token_file.as_ref(),
        problems,
    );
    let signing_secret = secret_from(
        &key("signing_secret"),
        settings.signing_secret.as_ref(),
        settings.signing_secret_file.as_ref(),
        problems,
    );
    let webhook_secret = secret_from(
        &key("webhook_secret"),
        settings.webhook_secret.as_ref(),
        settings.webhook_secret_file.as_ref(),
        problems,
    );
    let url = match (url, settings.kind) {
        (Some(_), NotifierType::SlackApp) => {
            problems.push(Problem::new(
                key("url"),
                "not used by a slack_app notifier (api_url is)",
            ));
            None
        }
        (Some(_), NotifierType::Log) => {
            problems.push(Problem::new(key("url"), "not used by a log notifier"));
            None
        }
        (Some(url), _) => parse_url(url.expose_secret(), &key("url"), problems),
        (None, NotifierType::Log) => None,
        (None, NotifierType::Pagerduty) => reqwest::Url::parse(PAGERDUTY_EVENTS_URL).ok(),
        (None, NotifierType::SlackApp) => {
            let api = settings.api_url.as_deref().unwrap_or(SLACK_API_URL);
            parse_url(api, &key("api_url"), problems)
        }
        (None, _) => {
            problems.push(Problem::new(key("url"), "required (or url_file)"));
            None
        }
    };
    let present = Present {
        routing_key: routing_key.is_some(),
        bearer: bearer_token.is_some(),
        bot: bot_token.is_some(),
        signing: signing_secret.is_some(),
        webhook_secret: webhook_secret.is_some(),
    };
    check_keys(settings, name, &present, problems);
    if problems.len() != start {
        return None;
    }
    Some(NotifierEndpoint {
        name: name.to_owned(),
        kind: settings.kind,
        url,
        channel: settings.channel.clone(),
        username: settings.username.clone(),
        routing_key,
        bearer_token: bearer_token.or(bot_token),
        signing_secret,
        webhook_secret,
    })
}

/// Which secrets a notifier's settings hold.
struct Present {
    routing_key: bool,
    bearer: bool,
    bot: bool,
    signing: bool,
    webhook_secret: bool,
}

/// Keys that belong to another type are mistakes, not silently ignored.
fn check_keys(settings: &NotifierSettings, name: &str, present: &Present, problems: &mut Vec<Problem>) {
    let (routing_key, bearer) = (present.routing_key, present.bearer);
    let key = |k: &str| format!("notifiers.{name}.{k}");
    let kind = settings.kind.as_str();
    let misplaced = |k: &str, present: bool, problems: &mut Vec<Problem>| {
        if present {
            problems.push(Problem::new(key(k), format!("not used by a {kind} notifier")));
        }
    };
    let required = |k: &str, present: bool, problems: &mut Vec<Problem>| {
        if !present {
            problems.push(Problem::new(key(k), format!("required (or {k}_file)")));
        }
    };
    if settings.kind != NotifierType::SlackApp {
        misplaced("bot_token", present.bot, problems);
        misplaced("signing_secret", present.signing, problems);
        misplaced("api_url", settings.api_url.is_some(), problems);
    }
    if settings.kind != NotifierType::Pagerduty {
        misplaced("webhook_secret", present.webhook_secret, problems);
    }
    match settings.kind {
        NotifierType::Slack => {
            misplaced("routing_key", routing_key, problems);
            misplaced("bearer_token", bearer, problems);
        }
        NotifierType::SlackApp => {
            required("bot_token", present.bot, problems);
            required("signing_secret", present.signing, problems);
            if settings.channel.as_deref().is_none_or(|c| c.trim().is_empty()) {
                problems.push(Problem::new(
                    key("channel"),
                    "required: a channel ID (C…) or name",
                ));
            }
            misplaced("routing_key", routing_key, problems);
            misplaced("bearer_token", bearer, problems);
        }
        NotifierType::Pagerduty => {
            if !routing_key {
                problems.push(Problem::new(key("routing_key"), "required (or routing_key_file)"));
            }
            misplaced("bearer_token", bearer, problems);
            misplaced("channel", settings.channel.is_some(), problems);
            misplaced("username", settings.username.is_some(), problems);
        }
        NotifierType::Webhook => {
            misplaced("routing_key", routing_key, problems);
            misplaced("channel", settings.channel.is_some(), problems);
            misplaced("username", settings.username.is_some(), problems);
        }
        NotifierType::Log => {
            misplaced("routing_key", routing_key, problems);
            misplaced("bearer_token", bearer, problems);
            misplaced("channel", settings.channel.is_some(), problems);
            misplaced("username", settings.username.is_some(), problems);
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

/// Reads every notifier's secrets; problems carry the notifier's key path.
pub fn endpoints(
    notifiers: &BTreeMap<String, NotifierSettings>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, NotifierEndpoint> {
    notifiers
        .iter()
        .filter_map(|(name, settings)| Some((name.clone(), endpoint(settings, name, problems)?)))
        .collect()
}
