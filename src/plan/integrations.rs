//! The integrations that answer back, compiled: this installation's name (in PagerDuty dedup
//! keys), which medic user each Slack and PagerDuty user is, the secrets PagerDuty signs its
//! webhooks with, and the Alertmanager silences are made in.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use super::secrets::secret_from;
use crate::{
    config::{NotifierType, Problem, Settings},
    domain::Role,
};

/// A medic user as another system knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub name: String,
    pub role: Role,
}

/// Where silences go: Alertmanager's API v2.
#[derive(Clone)]
pub struct AlertmanagerEndpoint {
    pub url: reqwest::Url,
    pub bearer_token: Option<SecretString>,
}

impl std::fmt::Debug for AlertmanagerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertmanagerEndpoint")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Everything the integration endpoints check and look up.
#[derive(Debug, Clone, Default)]
pub struct Integrations {
    /// `server.instance`: dedup keys are `<instance>-incident-<id>`.
    pub instance: String,
    /// By Slack user ID.
    pub slack_users: BTreeMap<String, Known>,
    /// By PagerDuty user ID.
    pub pagerduty_users: BTreeMap<String, Known>,
    /// Every `pagerduty` notifier's `webhook_secret`: any of them may sign.
    pub pagerduty_secrets: Vec<SecretString>,
    pub alertmanager: Option<AlertmanagerEndpoint>,
}

/// Reads the integrations' settings; problems carry their key paths.
pub fn integrations(settings: &Settings, problems: &mut Vec<Problem>) -> Integrations {
    let instance = settings.server.instance.trim().to_owned();
    let valid_instance = !instance.is_empty()
        && instance.len() <= 63
        && instance
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_instance {
        problems.push(Problem::new(
            "server.instance",
            "1 to 63 letters, digits, '-' or '_' (it goes into PagerDuty dedup keys)",
        ));
    }
    let mut slack_users = BTreeMap::new();
    let mut pagerduty_users = BTreeMap::new();
    for (i, user) in settings.server.auth.users.iter().enumerate() {
        let known = Known {
            name: user.name.trim().to_owned(),
            role: user.role,
        };
        for (key, id, map) in [
            ("slack_user_id", &user.slack_user_id, &mut slack_users),
            ("pagerduty_user_id", &user.pagerduty_user_id, &mut pagerduty_users),
        ] {
            let Some(id) = id.as_deref().map(str::trim) else {
                continue;
            };
            let at = format!("server.auth.users[{i}].{key}");
            if id.is_empty() || id.len() > 40 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                problems.push(Problem::new(at, "an ID of letters and digits, e.g. U024BE7LH"));
            } else if map.insert(id.to_owned(), known.clone()).is_some() {
                problems.push(Problem::new(at, format!("{id} is another user's too")));
            }
        }
    }
    let pagerduty_secrets = settings
        .notifiers
        .iter()
        .filter(|(_, n)| n.kind == NotifierType::Pagerduty)
        .filter_map(|(name, n)| {
            let key = format!("notifiers.{name}.webhook_secret");
            // Read again here only to collect them; the notifier's own check reports problems.
            let mut ignored = Vec::new();
            secret_from(
                &key,
                n.webhook_secret.as_ref(),
                n.webhook_secret_file.as_ref(),
                &mut ignored,
            )
        })
        .filter(|secret| !secret.expose_secret().is_empty())
        .collect();
    let alertmanager = settings.alertmanager.url.as_deref().and_then(|url| {
        let parsed = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if parsed.is_none() {
            problems.push(Problem::new("alertmanager.url", "must be an http or https URL"));
        }
        let token = secret_from(
            "alertmanager.bearer_token",
            settings.alertmanager.bearer_token.as_ref(),
            settings.alertmanager.bearer_token_file.as_ref(),
            problems,
        );
        parsed.map(|url| AlertmanagerEndpoint {
            url,
            bearer_token: token,
        })
    });
    Integrations {
        instance,
        slack_users,
        pagerduty_users,
        pagerduty_secrets,
        alertmanager,
    }
}
