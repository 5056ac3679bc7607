//! Notifiers compiled: each named destination with its secrets read and its keys checked.

use std::{collections::BTreeMap, fmt};

use secrecy::{ExposeSecret, SecretString};

use super::secrets::secret_from;
use crate::config::{NotifierSettings, NotifierType, Problem, PAGERDUTY_EVENTS_URL, SLACK_API_URL};

/// A notifier with its secrets read and checked: its name and where it sends.
#[derive(Clone, Debug)]
pub struct NotifierEndpoint {
    /// The key under `notifiers`.
    pub name: String,
    /// Where it sends, with what its kind needs.
    pub endpoint: Endpoint,
}

/// Where one notifier sends, one variant per kind, each holding what that kind cannot send
/// without: a notifier without its URL (or a PagerDuty one without its routing key, a Slack
/// app without its tokens or channel) cannot be built, so sending never finds one missing.
#[derive(Clone)]
pub enum Endpoint {
    /// A generic webhook: a JSON document POSTed to `url`.
    Webhook {
        /// Where to POST.
        url: reqwest::Url,
        /// Sent as `Authorization: Bearer`, when set.
        bearer_token: Option<SecretString>,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The hook's URL, itself the credential.
        webhook_url: reqwest::Url,
        /// Overrides the hook's channel, when set.
        channel: Option<String>,
        /// Overrides the hook's user name, when set.
        username: Option<String>,
    },
    /// A Slack app, posting through the Web API and receiving clicks.
    SlackApp(SlackApp),
    /// PagerDuty's Events API v2.
    PagerDuty {
        /// The integration's routing key.
        routing_key: SecretString,
        /// The Events API (`PAGERDUTY_EVENTS_URL` unless `url` is set).
        url: reqwest::Url,
    },
    /// medic's own log: nothing sent.
    Log,
}

/// What a Slack app needs: its Web API, its tokens and the channel it posts in.
#[derive(Clone)]
pub struct SlackApp {
    /// Slack's Web API (`SLACK_API_URL` unless `api_url` is set).
    pub api_url: reqwest::Url,
    /// The bot token every call carries.
    pub bot_token: SecretString,
    /// What Slack signs the app's interactions with.
    pub signing_secret: SecretString,
    /// The channel's ID (`C…`) or name.
    pub channel: String,
}

impl Endpoint {
    /// The notifier's type, as settings spell it.
    pub fn kind(&self) -> NotifierType {
        match self {
            Endpoint::Webhook { .. } => NotifierType::Webhook,
            Endpoint::Slack { .. } => NotifierType::Slack,
            Endpoint::SlackApp(_) => NotifierType::SlackApp,
            Endpoint::PagerDuty { .. } => NotifierType::Pagerduty,
            Endpoint::Log => NotifierType::Log,
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL itself may be the credential (Slack): show only where it points.
        let (url, channel) = match self {
            Endpoint::Webhook { url, .. } | Endpoint::PagerDuty { url, .. } => (Some(url), None),
            Endpoint::Slack {
                webhook_url, channel, ..
            } => (Some(webhook_url), channel.as_deref()),
            Endpoint::SlackApp(app) => (Some(&app.api_url), Some(app.channel.as_str())),
            Endpoint::Log => (None, None),
        };
        f.debug_struct("Endpoint")
            .field("kind", &self.kind())
            .field("host", &url.and_then(|u| u.host_str()))
            .field("channel", &channel)
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
    // Every `?` below stands for a problem already pushed: settings that pass the checks
    // above hold what their kind needs.
    let endpoint = match settings.kind {
        NotifierType::Webhook => Endpoint::Webhook {
            url: url?,
            bearer_token,
        },
        NotifierType::Slack => Endpoint::Slack {
            webhook_url: url?,
            channel: settings.channel.clone(),
            username: settings.username.clone(),
        },
        NotifierType::SlackApp => Endpoint::SlackApp(SlackApp {
            api_url: url?,
            bot_token: bot_token?,
            signing_secret: signing_secret?,
            channel: settings.channel.clone()?,
        }),
        NotifierType::Pagerduty => Endpoint::PagerDuty {
            routing_key: routing_key?,
            url: url?,
        },
        NotifierType::Log => Endpoint::Log,
    };
    Some(NotifierEndpoint {
        name: name.to_owned(),
        endpoint,
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
