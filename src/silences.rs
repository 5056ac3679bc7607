//! Alertmanager's silences API (v2) as medic calls it: a silence with the incident's group
//! labels as equality matchers, `createdBy` the medic user and a comment naming the incident
//! and the note. What a person's silence does is the `silence` act (`acts`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::{plan::AlertmanagerEndpoint, store::StoreError};

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

    /// Makes a silence (or, with an `id`, updates it); its id, which Alertmanager may have
    /// changed when it could not update in place.
    pub async fn create(&self, silence: &Value) -> Result<String, SilenceError> {
        let (url, token) = self.url("/api/v2/silences")?;
        let answer = self.send(self.client.post(url).json(silence), token).await?;
        answer["silenceID"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SilenceError::Alertmanager("the answer has no silenceID".into()))
    }

    /// A silence as Alertmanager has it now.
    pub async fn get(&self, id: &str) -> Result<Value, SilenceError> {
        let (url, token) = self.url(&format!("/api/v2/silence/{id}"))?;
        self.send(self.client.get(url), token).await
    }

    /// Expires a silence now.
    pub async fn expire(&self, id: &str) -> Result<(), SilenceError> {
        let (url, token) = self.url(&format!("/api/v2/silence/{id}"))?;
        self.send(self.client.delete(url), token).await.map(|_| ())
    }
}

/// The silence medic asks for: the incident's group labels as equality matchers.
pub fn new_silence(
    labels: &crate::alertmanager::KV,
    ends_at: DateTime<Utc>,
    created_by: &str,
    comment: &str,
) -> Value {
    let matchers: Vec<Value> = labels
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value, "isRegex": false, "isEqual": true}))
        .collect();
    json!({
        "matchers": matchers,
        "startsAt": Utc::now(),
        "endsAt": ends_at,
        "createdBy": created_by,
        "comment": comment,
    })
}
