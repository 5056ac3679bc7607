//! The capacity forecast (`medic capacity`): for each Deployment, its usage over the history
//! read from Prometheus, the forecast of the next 30 days, and what it means for replicas. The
//! README says how each number is computed; in short:
//!
//! - `current.utilisation`: the last usage sample over `replicas × capacity_per_pod`.
//! - `forecast.7d` / `forecast.30d`: the median and the p95 at that horizon, and their peaks
//!   up to it.
//! - `replicas.needed`: the fewest replicas keeping the 30-day median peak at or under the
//!   target utilisation (`needed_p95`: the p95 peak); `hpa_max` is `needed_p95`, `hpa_min`
//!   what the quietest point of the 7-day median needs.
//! - `runs_out_at`: the first forecast point at or over what the current replicas can take.

use std::{fmt::Write as _, time::Duration};

use anyhow::{anyhow, Context as _};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{
    forecast::{self, Forecast},
    sizing::{fill_gaps, replicas_for, runs_out, utilisation},
};
use crate::{
    plan::capacity::{Capacity, Deployment, ReplicasSource},
    slo::{prometheus::Prometheus, rules::prometheus_duration},
};

const DAY: u64 = 86_400;
/// How far ahead the forecast looks, in days: the short and the long horizon.
const HORIZONS: (u64, u64) = (7, 30);

/// `{"capacity_forecast": ...}`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub capacity_forecast: CapacityForecast,
}

/// The forecast of every Deployment, made at `at`.
#[derive(Debug, Serialize)]
pub struct CapacityForecast {
    pub at: String,
    /// As in the settings: `14d`.
    pub history: String,
    pub step: String,
    /// What the `p95` figures are: the upper bound of the 90% prediction interval.
    pub high_quantile: &'static str,
    pub deployments: Vec<DeploymentForecast>,
}

/// One Deployment: what it is, and its figures or why there are none.
#[derive(Debug, Serialize)]
pub struct DeploymentForecast {
    pub namespace: String,
    pub name: String,
    pub unit: String,
    pub capacity_per_pod: f64,
    /// In percent.
    pub target_utilisation: f64,
    pub usage_query: String,
    #[serde(flatten)]
    pub figures: Option<Figures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the forecast says about one Deployment.
#[derive(Debug, Serialize)]
pub struct Figures {
    /// What was fitted, e.g. `MSTL(24) + ETS(A,A,N)`.
    pub model: String,
    pub history: Span,
    pub current: Current,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpa: Option<Hpa>,
    pub forecast: Horizons,
    /// The highest point of the 30-day forecast.
    pub peak: Peak,
    pub replicas: Replicas,
    /// When the median forecast first reaches what the current replicas can take; `null`: not
    /// within 30 days.
    pub runs_out_at: Option<String>,
    /// The same for the p95.
    pub runs_out_at_p95: Option<String>,
}

/// The history the model was fitted on.
#[derive(Debug, Serialize)]
pub struct Span {
    pub start: String,
    pub end: String,
    /// Points, gaps filled.
    pub points: usize,
}

/// The last sample, and what it is of the current replicas' capacity.
#[derive(Debug, Serialize)]
pub struct Current {
    pub at: String,
    pub usage: f64,
    pub replicas: u32,
    /// In percent.
    pub utilisation: f64,
}

/// The HorizontalPodAutoscaler's current bounds.
#[derive(Debug, Serialize)]
pub struct Hpa {
    pub name: String,
    pub min: u32,
    pub max: u32,
}

/// The forecast a week and a month ahead.
#[derive(Debug, Serialize)]
pub struct Horizons {
    #[serde(rename = "7d")]
    pub week: Horizon,
    #[serde(rename = "30d")]
    pub month: Horizon,
}

/// The forecast at one horizon; utilisation at the current replicas, in percent.
#[derive(Debug, Serialize)]
pub struct Horizon {
    pub at: String,
    pub median: f64,
    pub p95: f64,
    pub utilisation_median: f64,
    pub utilisation_p95: f64,
    /// The highest median and p95 from now to the horizon.
    pub peak_median: f64,
    pub peak_p95: f64,
}

/// The highest point of the forecast: when the median peaks, and how high both go.
#[derive(Debug, Serialize)]
pub struct Peak {
    pub at: String,
    pub median: f64,
    pub p95: f64,
    pub utilisation_median: f64,
    pub utilisation_p95: f64,
}

/// Replicas now, and those the peak needs to stay under the target utilisation.
#[derive(Debug, Serialize)]
pub struct Replicas {
    pub current: u32,
    /// For the median peak.
    pub needed: u32,
    /// For the p95 peak.
    pub needed_p95: u32,
    /// What the quietest point of the next 7 days' median needs (at most `hpa_max`).
    pub hpa_min: u32,
    /// `needed_p95`: the HPA must be allowed that far.
    pub hpa_max: u32,
}

/// What is read from Prometheus for one Deployment.
#[derive(Debug)]
pub struct Inputs {
    /// `(unix seconds, usage)`, in time order.
    pub samples: Vec<(i64, f64)>,
    pub replicas: u32,
    pub hpa: Option<Hpa>,
}

/// Forecasts every Deployment at `at`; one that fails carries its `error`.
pub async fn build(capacity: &Capacity, prometheus: &Prometheus, at: DateTime<Utc>) -> Report {
    let mut deployments = Vec::new();
    for deployment in &capacity.deployments {
        let figures = match read(deployment, capacity, prometheus, at).await {
            Ok(inputs) => figures(deployment, &inputs, capacity.step),
            Err(e) => Err(e),
        };
        tracing::debug!(deployment = %deployment.key(), ok = figures.is_ok(), "forecast made");
        deployments.push(DeploymentForecast {
            namespace: deployment.namespace.clone(),
            name: deployment.name.clone(),
            unit: deployment.unit.clone(),
            capacity_per_pod: deployment.capacity_per_pod,
            target_utilisation: round(deployment.target * 100.0),
            usage_query: deployment.usage.clone(),
            error: figures.as_ref().err().map(|e| format!("{e:#}")),
            figures: figures.ok(),
        });
    }
    Report {
        capacity_forecast: CapacityForecast {
            at: rfc3339(at),
            history: prometheus_duration(capacity.history),
            step: prometheus_duration(capacity.step),
            high_quantile: "p95: the upper bound of the 90% prediction interval",
            deployments,
        },
    }
}

/// The usage history, the current replicas and the HPA's bounds at `at`.
async fn read(
    deployment: &Deployment,
    capacity: &Capacity,
    prometheus: &Prometheus,
    at: DateTime<Utc>,
) -> anyhow::Result<Inputs> {
    let start = at - chrono::Duration::from_std(capacity.history)?;
    let samples = prometheus
        .range(&deployment.usage, start, at, capacity.step)
        .await
        .context("reading the usage history")?;
    if samples.is_empty() {
        return Err(anyhow!("no usage history: {} is empty", deployment.usage));
    }
    let replicas = match &deployment.replicas {
        ReplicasSource::Fixed(replicas) => *replicas,
        ReplicasSource::Query(query) => count(prometheus, query, at)
            .await?
            .ok_or_else(|| anyhow!("no current replicas: {query} is empty (set `replicas:`)"))?,
    };
    let hpa = match (deployment.hpa_queries(), &deployment.hpa) {
        (Some((min, max)), Some(name)) => {
            let missing = |query: &str| anyhow!("no HPA bound: {query} is empty");
            Some(Hpa {
                name: name.clone(),
                min: count(prometheus, &min, at).await?.ok_or_else(|| missing(&min))?,
                max: count(prometheus, &max, at).await?.ok_or_else(|| missing(&max))?,
            })
        }
        _ => None,
    };
    Ok(Inputs {
        samples,
        replicas,
        hpa,
    })
}

async fn count(prometheus: &Prometheus, query: &str, at: DateTime<Utc>) -> anyhow::Result<Option<u32>> {
    let value = prometheus.value(query, at).await?;
    Ok(value.map(|v| v.round().clamp(0.0, f64::from(u32::MAX)) as u32))
}

/// Fits the history and works out every figure; pure but for the model's own arithmetic.
pub fn figures(deployment: &Deployment, inputs: &Inputs, step: Duration) -> anyhow::Result<Figures> {
    let step_secs = step.as_secs() as i64;
    let (start, history) = fill_gaps(&inputs.samples, step_secs)
        .ok_or_else(|| anyhow!("no usage history: {} is empty", deployment.usage))?;
    let month = (HORIZONS.1 * DAY / step.as_secs()) as usize;
    let week = (HORIZONS.0 * DAY / step.as_secs()) as usize;
    let forecast = forecast::forecast(&history, step, month)?;
    let now = start + step_secs * (history.len() as i64 - 1);
    let time = |index: usize| rfc3339_secs(now + step_secs * (index as i64 + 1));
    let usage = history.last().copied().unwrap_or_default();
    let (replicas, per_pod, target) = (inputs.replicas, deployment.capacity_per_pod, deployment.target);
    let percent = |value: f64| round(utilisation(value, replicas, per_pod));
    let horizon = |points: usize| horizon(&forecast, points, &percent, &time);
    let (peak_index, peak_median) = argmax(&forecast.median);
    let peak_p95 = argmax(&forecast.p95).1;
    let needed_p95 = replicas_for(peak_p95, per_pod, target);
    let trough = forecast.median[..week]
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let total = f64::from(replicas) * per_pod;
    let run_out = |points: &[f64]| match usage >= total {
        true => Some(rfc3339_secs(now)),
        false => runs_out(points, total).map(&time),
    };
    Ok(Figures {
        model: forecast.model.clone(),
        history: Span {
            start: rfc3339_secs(start),
            end: rfc3339_secs(now),
            points: history.len(),
        },
        current: Current {
            at: rfc3339_secs(now),
            usage: round(usage),
            replicas,
            utilisation: percent(usage),
        },
        hpa: inputs.hpa.as_ref().map(|hpa| Hpa {
            name: hpa.name.clone(),
            ..*hpa
        }),
        forecast: Horizons {
            week: horizon(week),
            month: horizon(month),
        },
        peak: Peak {
            at: time(peak_index),
            median: round(peak_median),
            p95: round(peak_p95),
            utilisation_median: percent(peak_median),
            utilisation_p95: percent(peak_p95),
        },
        replicas: Replicas {
            current: replicas,
            needed: replicas_for(peak_median, per_pod, target),
            needed_p95,
            hpa_min: replicas_for(trough, per_pod, target).min(needed_p95),
            hpa_max: needed_p95,
        },
        runs_out_at: run_out(&forecast.median),
        runs_out_at_p95: run_out(&forecast.p95),
    })
}

/// The forecast `points` steps ahead, and its peaks until then.
fn horizon(
    forecast: &Forecast,
    points: usize,
    percent: &dyn Fn(f64) -> f64,
    time: &dyn Fn(usize) -> String,
) -> Horizon {
    let (median, p95) = (forecast.median[points - 1], forecast.p95[points - 1]);
    Horizon {
        at: time(points - 1),
        median: round(median),
        p95: round(p95),
        utilisation_median: percent(median),
        utilisation_p95: percent(p95),
        peak_median: round(argmax(&forecast.median[..points]).1),
        peak_p95: round(argmax(&forecast.p95[..points]).1),
    }
}

/// The index and value of the highest point (the first, on a tie).
fn argmax(values: &[f64]) -> (usize, f64) {
    values.iter().copied().enumerate().fold(
        (0, f64::NEG_INFINITY),
        |best, (i, v)| if v > best.1 { (i, v) } else { best },
    )
}

/// Four decimals: enough for any unit, and JSON a person can read.
fn round(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn rfc3339_secs(seconds: i64) -> String {
    DateTime::from_timestamp(seconds, 0).map_or_else(|| seconds.to_string(), rfc3339)
}

/// The forecast as a table for people, one row per Deployment, usage in its unit with the
/// utilisation at the current replicas in brackets.
pub fn table(report: &Report) -> String {
    let r = &report.capacity_forecast;
    let mut out = format!(
        "Capacity forecast at {} (history {}, step {}; p95 is the upper bound of the 90% prediction interval)\n\n",
        r.at, r.history, r.step
    );
    let header = [
        "DEPLOYMENT",
        "UNIT",
        "NOW",
        "7D MEDIAN / P95",
        "30D MEDIAN / P95",
        "PEAK MEDIAN / P95",
        "TARGET",
        "REPLICAS",
        "NEEDED / P95",
        "HPA NOW",
        "HPA MIN-MAX",
        "RUNS OUT",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    let mut errors = Vec::new();
    for d in &r.deployments {
        let name = format!("{}/{}", d.namespace, d.name);
        match &d.figures {
            Some(f) => rows.push(row(name, d, f)),
            None => errors.push(format!("{name}: {}", d.error.as_deref().unwrap_or("no forecast"))),
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|row| row[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    for error in errors {
        let _ = writeln!(out, "\nerror: {error}");
    }
    out
}

fn row(name: String, d: &DeploymentForecast, f: &Figures) -> Vec<String> {
    let unit = d.unit.as_str();
    let pair = |median: f64, p95: f64, u_median: f64, u_p95: f64| {
        format!(
            "{} / {} ({u_median:.0}% / {u_p95:.0}%)",
            number(median, unit),
            number(p95, unit)
        )
    };
    let (week, month, peak) = (&f.forecast.week, &f.forecast.month, &f.peak);
    let runs_out = match (&f.runs_out_at, &f.runs_out_at_p95) {
        (Some(median), _) => median.clone(),
        (None, Some(p95)) => format!("not within 30 days (p95: {p95})"),
        (None, None) => "not within 30 days".into(),
    };
    vec![
        name,
        d.unit.clone(),
        format!(
            "{} ({:.0}%)",
            number(f.current.usage, unit),
            f.current.utilisation
        ),
        pair(
            week.median,
            week.p95,
            week.utilisation_median,
            week.utilisation_p95,
        ),
        pair(
            month.median,
            month.p95,
            month.utilisation_median,
            month.utilisation_p95,
        ),
        pair(
            peak.median,
            peak.p95,
            peak.utilisation_median,
            peak.utilisation_p95,
        ),
        format!("{:.0}%", d.target_utilisation),
        f.replicas.current.to_string(),
        format!("{} / {}", f.replicas.needed, f.replicas.needed_p95),
        f.hpa
            .as_ref()
            .map_or("-".into(), |h| format!("{}-{}", h.min, h.max)),
        format!("{}-{}", f.replicas.hpa_min, f.replicas.hpa_max),
        runs_out,
    ]
}

/// A usage figure: bytes in binary multiples, anything else with three significant digits.
fn number(value: f64, unit: &str) -> String {
    let (base, suffixes) = if unit == "bytes" {
        (1024.0, ["", "Ki", "Mi", "Gi", "Ti"])
    } else {
        (1000.0, ["", "k", "M", "G", "T"])
    };
    let mut scaled = value;
    let mut suffix = 0;
    while scaled.abs() >= base && suffix + 1 < suffixes.len() {
        scaled /= base;
        suffix += 1;
    }
    let decimals = if scaled.abs() >= 100.0 {
        0
    } else if scaled.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.decimals$}{}", suffixes[suffix])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_in_their_unit() {
        assert_eq!(number(2.4, "cores"), "2.40");
        assert_eq!(number(1536.0 * 1024.0 * 1024.0, "bytes"), "1.50Gi");
        assert_eq!(number(12_500.0, "connections"), "12.5k");
    }
}
