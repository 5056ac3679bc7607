//! `medic capacity`: each Deployment of `capacity:` forecast from its usage history in
//! Prometheus, as JSON or a table. Reads only `capacity:` and `prometheus:`, so no secret
//! need be at hand; exits 1 if the settings are wrong or any Deployment has no forecast.

use std::{path::Path, process::ExitCode, time::Duration};

use chrono::{DateTime, Utc};
use clap::ValueEnum;

use crate::{
    capacity::report::{self, Report},
    config::Source,
    plan,
    slo::prometheus::Prometheus,
};

/// How the forecast is printed.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    /// `{"capacity_forecast": ...}`; the README lists the fields.
    #[default]
    Json,
    /// One row per Deployment, for people.
    Table,
}

/// A 30-day range at a 5-minute step is 8640 points: allow Prometheus its time.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Prints the forecast made at `at` (now by default).
pub async fn run(config: &Path, at: Option<DateTime<Utc>>, format: Format) -> ExitCode {
    let made = match make(config, at.unwrap_or_else(Utc::now)).await {
        Ok(made) => made,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match format {
        Format::Json => match serde_json::to_string_pretty(&made) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        Format::Table => print!("{}", report::table(&made)),
    }
    let failed = made
        .capacity_forecast
        .deployments
        .iter()
        .filter(|d| d.error.is_some());
    for deployment in failed.clone() {
        let error = deployment.error.as_deref().unwrap_or_default();
        eprintln!("error: {}/{}: {error}", deployment.namespace, deployment.name);
    }
    if failed.count() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn make(config: &Path, at: DateTime<Utc>) -> Result<Report, String> {
    if !config.exists() {
        return Err(format!("{}: no such file", config.display()));
    }
    let source = Source::from_process(Some(config.to_owned()));
    let (capacity, settings) = plan::capacity::load(&source).map_err(|p| p.to_string())?;
    if capacity.deployments.is_empty() {
        return Err("capacity.deployments is empty: nothing to forecast".into());
    }
    let prometheus = Prometheus::new(&settings.prometheus, QUERY_TIMEOUT)
        .map_err(|e| format!("{e:#}"))?
        .ok_or("prometheus.url is not set: the forecast reads the history there")?;
    Ok(report::build(&capacity, &prometheus, at).await)
}
