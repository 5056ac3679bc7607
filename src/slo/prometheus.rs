//! The Prometheus that measures the SLIs, holds the capacity forecast's history and answers
//! remediation steps' `verify_query`, asked for instant values (`/api/v1/query`) and for
//! ranges (`/api/v1/query_range`). The bearer token file is read at each query, so a rotated
//! token takes effect.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{anyhow, Context as _};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::{config::PrometheusSettings, outbound};

/// Where to send instant queries, and how.
#[derive(Debug, Clone)]
pub struct Prometheus {
    /// The server's base URL, without a trailing slash.
    url: String,
    /// Sent as `Authorization: Bearer` when set.
    bearer_token_file: Option<PathBuf>,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<Sample>),
    Scalar((f64, String)),
    Matrix(Vec<Series>),
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Sample {
    value: (f64, String),
}

#[derive(Deserialize)]
struct Series {
    values: Vec<(f64, String)>,
}

impl Prometheus {
    /// The client for `prometheus:`, or `None` when no URL is set.
    pub fn new(settings: &PrometheusSettings, timeout: Duration) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.url else { return Ok(None) };
        let client = outbound::client_builder()?
            .timeout(timeout)
            .build()
            .context("building the Prometheus client")?;
        Ok(Some(Self {
            url: url.trim_end_matches('/').to_owned(),
            bearer_token_file: settings.bearer_token_file.clone(),
            client,
        }))
    }

    /// The value of a query that yields one number at `at`: the first sample of a vector, or a
    /// scalar. `None` when the vector is empty or the value is not finite (no traffic: 0/0).
    pub async fn value(&self, query: &str, at: DateTime<Utc>) -> anyhow::Result<Option<f64>> {
        let time = seconds(at).to_string();
        let data = self.get("query", query, &[("time", &time)]).await?;
        let text = match data {
            Some(Data::Vector(samples)) => samples.into_iter().next().map(|s| s.value.1),
            Some(Data::Scalar((_, value))) => Some(value),
            _ => return Err(anyhow!("{query:?} must yield an instant vector or a scalar")),
        };
        Ok(text.and_then(|t| t.parse::<f64>().ok()).filter(|v| v.is_finite()))
    }

    /// The value now of a query that must yield exactly one series (a vector of one sample,
    /// or a scalar): a step's `verify_query`. The error says why there is none.
    pub async fn one_series(&self, query: &str) -> anyhow::Result<f64> {
        let text = match self.get("query", query, &[]).await? {
            Some(Data::Vector(mut samples)) if samples.len() == 1 => samples.remove(0).value.1,
            Some(Data::Vector(samples)) => return Err(anyhow!("{} series, not one", samples.len())),
            Some(Data::Scalar((_, value))) => value,
            _ => return Err(anyhow!("not an instant vector or a scalar")),
        };
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| anyhow!("the value {text:?} is not a finite number"))
    }

    /// The values of a query from `start` to `end` every `step`, as `(unix seconds, value)`
    /// in time order. A query yielding several series (one per pod) gives their sum at each
    /// time; times where no series has a finite value are left out.
    pub async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> anyhow::Result<Vec<(i64, f64)>> {
        let params = [
            ("start", seconds(start).to_string()),
            ("end", seconds(end).to_string()),
            ("step", step.as_secs_f64().to_string()),
        ];
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let series = match self.get("query_range", query, &params).await? {
            Some(Data::Matrix(series)) => series,
            _ => return Err(anyhow!("{query:?} must yield an instant vector")),
        };
        let mut sums: BTreeMap<i64, f64> = BTreeMap::new();
        for (time, text) in series.into_iter().flat_map(|s| s.values) {
            if let Some(value) = text.parse::<f64>().ok().filter(|v| v.is_finite()) {
                *sums.entry(time.round() as i64).or_default() += value;
            }
        }
        Ok(sums.into_iter().collect())
    }

    /// `GET /api/v1/{endpoint}?query=..&params..`: the answer's data, or why there is none.
    async fn get(
        &self,
        endpoint: &str,
        query: &str,
        params: &[(&str, &str)],
    ) -> anyhow::Result<Option<Data>> {
        let mut request = self
            .client
            .get(format!("{}/api/v1/{endpoint}", self.url))
            .query(&[("query", query)])
            .query(params);
        if let Some(file) = &self.bearer_token_file {
            let token = std::fs::read_to_string(file)
                .with_context(|| format!("reading prometheus.bearer_token_file {}", file.display()))?;
            request = request.bearer_auth(token.trim());
        }
        let response = request.send().await.context("querying Prometheus")?;
        let status = response.status();
        let body: Response = response
            .json()
            .await
            .with_context(|| format!("Prometheus answered {status} with no API response"))?;
        if body.status != "success" {
            return Err(anyhow!(
                "Prometheus refused {query:?}: {}",
                body.error.unwrap_or_else(|| status.to_string())
            ));
        }
        Ok(body.data)
    }
}

/// Unix seconds with milliseconds, as Prometheus's API takes times.
fn seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}
