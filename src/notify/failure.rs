//! Why a send did not succeed: an answer or a transport error classified, as Alertmanager's
//! notifiers do, into worth a retry or not.

use std::time::Duration;

use reqwest::{header, Response, StatusCode};

/// Why a send did not succeed, and whether trying again can help.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: Option<u16>,
    pub retryable: bool,
    /// From a 429 or 503's `Retry-After`.
    pub retry_after: Option<Duration>,
    pub reason: String,
}

pub(crate) fn transport_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {detail}")
    }
}

/// 2xx succeeded; 429, 408 and 5xx are worth a retry (honouring `Retry-After`); other 4xx
/// will fail the same way again.
pub(crate) async fn classify(response: Response) -> Result<u16, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    if status.is_redirection() {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)");
        let location: String = location.chars().take(300).collect();
        return Err(Failure {
            status: Some(status.as_u16()),
            retryable: false,
            retry_after: None,
            reason: format!(
                "HTTP {}: redirected to {location}; notifiers are not followed",
                status.as_u16()
            ),
        });
    }
    let retry_after = retry_after(&response);
    let retryable = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    Err(Failure {
        status: Some(status.as_u16()),
        retryable,
        retry_after,
        reason: format!("HTTP {}: {}", status.as_u16(), body.trim()),
    })
}

/// `Retry-After` in seconds (the HTTP date form is read as "soon": one second).
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    match value.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => httpdate_seconds(value).map(Duration::from_secs),
    }
}

fn httpdate_seconds(value: &str) -> Option<u64> {
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let seconds = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(seconds.max(1) as u64)
}
