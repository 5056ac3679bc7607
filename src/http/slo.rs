//! `GET /api/v1/slo/report?at=&window=`: the SLO report `medic slo report` prints, measured
//! in the Prometheus of `prometheus:` and medic's own incidents.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{error::ApiError, state::State};
use crate::{
    domain::HumanDuration,
    slo::report::{self, ReportError},
};

/// The longest period a report may cover: each SLO's queries grow with it.
const MAX_WINDOW: Duration = Duration::from_secs(90 * 86_400);

/// The report's period when `window` is not given, as for the command.
const DEFAULT_WINDOW: Duration = Duration::from_secs(7 * 86_400);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// RFC 3339; now when absent.
    at: Option<String>,
    /// `7d`, `24h`; [`DEFAULT_WINDOW`] when absent.
    window: Option<String>,
}

/// The report as JSON; 400 for a bad `at` or `window`, 422 for a window over 90 days, 404 without `prometheus.url`, 503
/// without the database, 502 when Prometheus fails.
pub async fn report(
    state: web::Data<State>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let at = match &query.at {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|e| ApiError::BadRequest(format!("at {text:?}: not an RFC 3339 time: {e}")))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let window = match &query.window {
        Some(text) => {
            HumanDuration::parse(text)
                .map_err(|e| ApiError::BadRequest(format!("window {text:?}: {e}")))?
                .0
        }
        None => DEFAULT_WINDOW,
    };
    if window.as_secs() == 0 {
        return Err(ApiError::BadRequest("window must be at least one second".into()));
    }
    if window > MAX_WINDOW {
        return Err(ApiError::Unprocessable("window must be at most 90d".into()));
    }
    let Some(prometheus) = &state.prometheus else {
        return Err(ApiError::NotFound(
            "no SLO report: prometheus.url is not set".into(),
        ));
    };
    match report::build(&state.slos, prometheus, &state.reads, at, window).await {
        Ok(made) => Ok(HttpResponse::Ok().json(made)),
        Err(ReportError::Store(e)) => Err(ApiError::from_store(e, state.retry_after)),
        Err(ReportError::Prometheus(e)) => {
            // Prometheus' own words may name its internals: the log has them, the caller not.
            tracing::warn!(error = %format!("{e:#}"), "SLO report: Prometheus failed");
            Err(ApiError::BadGateway(
                "Prometheus failed the SLO report's queries; medic's log says why".into(),
            ))
        }
    }
}
