//! Notifiers compiled: each named destination with its secrets read and its keys checked.

use std::{collections::BTreeMap, fmt};

use secrecy::{ExposeSecret, SecretString};

use super::secrets::secret_from;
use crate::config::{NotifierSettings, NotifierType, Problem, PAGERDUTY_EVENTS_URL};

/// A notifier with its secrets read and checked.
#[derive(Clone)]
pub struct NotifierEndpoint {
    pub name: String,
    pub kind: NotifierType,
    pub url: reqwest::Url,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub routing_key: Option<SecretString>,
    pub bearer_token: Option<SecretString>,
}

impl fmt::Debug for NotifierEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL itself may be the credential (Slack): show only where it points.
        f.debug_struct("NotifierEndpoint")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.url.host_str())
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
    let url = match (url, settings.kind) {
        (Some(url), _) => parse_url(url.expose_secret(), &key("url"), problems),
        (None, NotifierType::Pagerduty) => reqwest::Url::parse(PAGERDUTY_EVENTS_URL).ok(),
        (None, _) => {
            problems.push(Problem::new(key("url"), "required (or url_file)"));
            None
        }
    };
    check_keys(
        settings,
        name,
        routing_key.is_some(),
        bearer_token.is_some(),
        problems,
    );
    let url = url.filter(|_| problems.len() == start)?;
    Some(NotifierEndpoint {
        name: name.to_owned(),
        kind: settings.kind,
        url,
        channel: settings.channel.clone(),
        username: settings.username.clone(),
        routing_key,
        bearer_token,
    })
}

/// Keys that belong to another type are mistakes, not silently ignored.
fn check_keys(
    settings: &NotifierSettings,
    name: &str,
    routing_key: bool,
    bearer: bool,
    problems: &mut Vec<Problem>,
) {
    let key = |k: &str| format!("notifiers.{name}.{k}");
    let kind = settings.kind.as_str();
    let misplaced = |k: &str, present: bool, problems: &mut Vec<Problem>| {
        if present {
            problems.push(Problem::new(key(k), format!("not used by a {kind} notifier")));
        }
    };
    match settings.kind {
        NotifierType::Slack => {
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
