//! The HTTP side of `medic ctl`: one call to a running medic's API, and what can go wrong with
//! it, each failure with the exit code it deserves.

use std::{fmt, process::ExitCode, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::outbound;

/// A request's whole life, connecting included: an operator waits no longer.
const TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a body that is not medic's JSON (a proxy's HTML page) is worth printing.
const MAX_FOREIGN_BODY: usize = 300;

/// Why a command did not do what it was asked.
#[derive(Debug)]
pub enum Failure {
    /// What was given cannot make a request (a token file that cannot be read, a bad URL).
    Usage(String),
    /// medic answered with an error: its status and the reason it gave.
    Refused { status: StatusCode, reason: String },
    /// No answer: the URL and the cause.
    Unreachable { url: String, cause: String },
    /// An answer that makes no sense (not JSON).
    Garbled(String),
}

impl Failure {
    /// 2 for usage errors, as clap's own; 1 for everything the server or network did.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message) | Failure::Garbled(message) => f.write_str(message),
            Failure::Refused { status, reason } => {
                let name = status.canonical_reason().unwrap_or("error");
                write!(f, "{} {name}", status.as_u16())?;
                if !reason.is_empty() {
                    write!(f, ": {reason}")?;
                }
                Ok(())
            }
            Failure::Unreachable { url, cause } => write!(f, "cannot reach medic at {url}: {cause}"),
        }
    }
}

/// A running medic's API, as one credential sees it.
pub struct Api {
    /// The base URL without a trailing slash (it may carry a path, behind a proxy).
    base: String,
    /// None: send no credential (a medic with `allow_unauthenticated`).
    token: Option<String>,
    client: reqwest::Client,
}

impl Api {
    /// A client for the medic at `url`; it trusts the platform's CAs and `SSL_CERT_FILE`.
    pub fn new(url: &str, token: Option<String>) -> Result<Api, Failure> {
        let parsed = reqwest::Url::parse(url).map_err(|e| Failure::Usage(format!("--url {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Failure::Usage(format!(
                "--url {url:?}: must be http:// or https://"
            )));
        }
        let client = outbound::client_builder()
            .and_then(|builder| {
                builder
                    .timeout(TIMEOUT)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .user_agent(concat!("medic-ctl/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(anyhow::Error::from)
            })
            .map_err(|e| Failure::Usage(format!("{e:#}")))?;
        Ok(Api {
            base: url.trim_end_matches('/').to_owned(),
            token,
            client,
        })
    }

    /// Sends one request (with `body` as JSON, if any) and returns the JSON answer of a 2xx.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| Failure::Unreachable {
            url: url.clone(),
            cause: causes(&e),
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| Failure::Unreachable {
            url: url.clone(),
            cause: causes(&e),
        })?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                Failure::Garbled(format!(
                    "{url} answered {status} with a body that is not JSON: {e}"
                ))
            });
        }
        Err(Failure::Refused {
            status,
            reason: self.reason(status, &text),
        })
    }

    /// The `error` medic's JSON gives, or the start of whatever else answered (a proxy).
    fn reason(&self, status: StatusCode, body: &str) -> String {
        let reason = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|json| json["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| body.trim().chars().take(MAX_FOREIGN_BODY).collect());
        if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
            return format!("{reason} (no token given: use --token-file, MEDIC_TOKEN_FILE or MEDIC_TOKEN)");
        }
        reason
    }
}

/// reqwest's message names the URL already; the causes under it say what happened
/// (`tcp connect error: Connection refused`, `operation timed out`).
fn causes(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = cause.source();
    }
    if causes.is_empty() {
        return error.to_string();
    }
    causes.join(": ")
}
