//! Silencing an incident in Alertmanager (API v2): a silence with the incident's group labels
//! as equality matchers, `createdBy` the medic user and a comment naming the incident and the
//! note; its id goes into the incident's timeline. Expiring it is a DELETE.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::{
    plan::AlertmanagerEndpoint,
    store::{audit::Actor, integrations::SilenceRecord, Store, StoreError},
};

/// Longest silence medic makes.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);

/// Why a silence could not be made or expired.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("alertmanager.url is not set: medic cannot make silences")]
    NotConfigured,
    #[error("no incident {0}")]
    NoIncident(i64),
    #[error("incident {0} has no labels to silence by")]
    NoLabels(i64),
    #[error("incident {0} has no silence in force")]
    NoSilence(i64),
    #[error("a silence lasts from 1 minute to 7 days")]
    BadDuration,
    #[error("Alertmanager: {0}")]
    Alertmanager(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Alertmanager's API as medic calls it.
pub struct Alertmanager<'a> {
    pub client: &'a reqwest::Client,
    pub endpoint: Option<&'a AlertmanagerEndpoint>,
}

impl Alertmanager<'_> {
    fn url(&self, path: &str) -> Result<(reqwest::Url, Option<String>), SilenceError> {
        let endpoint = self.endpoint.ok_or(SilenceError::NotConfigured)?;
        let mut url = endpoint.url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        let token = endpoint
            .bearer_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned());
        Ok((url, token))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<String>,
    ) -> Result<Value, SilenceError> {
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| SilenceError::Alertmanager(e.without_url().to_string()))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let text: String = text.chars().take(300).collect();
            return Err(SilenceError::Alertmanager(format!(
                "HTTP {}: {}",
                status.as_u16(),
                text.trim()
            )));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Makes a silence; its id.
    async fn create(&self, silence: &Value) -> Result<String, SilenceError> {
        let (url, token) = self.url("/api/v2/silences")?;
        let answer = self.send(self.client.post(url).json(silence), token).await?;
        answer["silenceID"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SilenceError::Alertmanager("the answer has no silenceID".into()))
    }

    /// Expires a silence now.
    async fn expire(&self, id: &str) -> Result<(), SilenceError> {
        let (url, token) = self.url(&format!("/api/v2/silence/{id}"))?;
        self.send(self.client.delete(url), token).await.map(|_| ())
    }
}

/// Silences the incident's alerts for `duration`, as `actor`.
pub async fn silence(
    store: &Store,
    alertmanager: &Alertmanager<'_>,
    incident_id: i64,
    duration: Duration,
    note: Option<&str>,
    actor: &Actor<'_>,
) -> Result<SilenceRecord, SilenceError> {
    if duration < Duration::from_secs(60) || duration > MAX_DURATION {
        return Err(SilenceError::BadDuration);
    }
    alertmanager.endpoint.ok_or(SilenceError::NotConfigured)?;
    let labels = store
        .silence_labels(incident_id)
        .await?
        .ok_or(SilenceError::NoIncident(incident_id))?;
    if labels.is_empty() {
        return Err(SilenceError::NoLabels(incident_id));
    }
    let starts_at = Utc::now();
    let ends_at: DateTime<Utc> = starts_at + duration;
    let matchers: Vec<Value> = labels
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value, "isRegex": false, "isEqual": true}))
        .collect();
    let comment = match note {
        Some(note) => format!("medic incident {incident_id}: {note}"),
        None => format!("medic incident {incident_id}"),
    };
    let silence = json!({
        "matchers": matchers,
        "startsAt": starts_at,
        "endsAt": ends_at,
        "createdBy": actor.name,
        "comment": comment,
    });
    let id = alertmanager.create(&silence).await?;
    let record = store
        .record_silence(incident_id, &id, ends_at, note, actor)
        .await?;
    tracing::info!(incident_id, silence_id = %id, by = actor.name, via = actor.channel, ends_at = %ends_at,
        "incident silenced in Alertmanager");
    Ok(record)
}

/// Expires the incident's silence in force, as `actor`.
pub async fn unsilence(
    store: &Store,
    alertmanager: &Alertmanager<'_>,
    incident_id: i64,
    actor: &Actor<'_>,
) -> Result<SilenceRecord, SilenceError> {
    alertmanager.endpoint.ok_or(SilenceError::NotConfigured)?;
    let current = store
        .silences(incident_id)
        .await?
        .into_iter()
        .find(|s| s.expired_at.is_none() && s.ends_at > Utc::now())
        .ok_or(SilenceError::NoSilence(incident_id))?;
    alertmanager.expire(&current.silence_id).await?;
    let record = store
        .expire_silence(incident_id, &current.silence_id, actor)
        .await?;
    tracing::info!(incident_id, silence_id = %current.silence_id, by = actor.name, "silence expired");
    Ok(record)
}
