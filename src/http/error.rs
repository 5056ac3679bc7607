//! API errors: the caller's mistakes (4xx, with a JSON body saying what is wrong) apart from
//! failures a retry can fix (503) and opaque ones (500).

use actix_web::{
    http::{header, StatusCode},
    HttpResponse, ResponseError,
};
use serde_json::json;

use crate::{acts::Refused, store::StoreError};

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong credentials")]
    Unauthorized {
        /// `WWW-Authenticate` challenge(s).
        challenge: String,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A service medic relies on (Alertmanager) failed the request.
    #[error("{0}")]
    BadGateway(String),
    #[error("content type must be application/json, got {0:?}")]
    UnsupportedMediaType(String),
    #[error("body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("malformed JSON: {message}")]
    MalformedJson {
        message: String,
        line: usize,
        column: usize,
    },
    #[error("{0}")]
    Unprocessable(String),
    #[error("database unavailable, retry later")]
    Unavailable { retry_after: u64 },
    /// Every connection of the read pool is busy: this read only is refused (503,
    /// `Retry-After: 1`); intake has connections of its own.
    #[error("every read connection is busy, retry in a second")]
    ReadsBusy,
    /// A read ran past `database.read_statement_timeout` and was cancelled (503).
    #[error("{0}")]
    TooExpensive(String),
    /// The caller already has as many reads in flight as it may (429, `Retry-After: 1`).
    #[error("{0}")]
    TooManyRequests(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// Maps an act refused to what the API answers.
    pub fn from_act(e: Refused, retry_after: u64) -> Self {
        match e {
            Refused::Forbidden(reason) => ApiError::Forbidden(reason),
            Refused::NotFound(reason) => ApiError::NotFound(reason),
            Refused::Conflict(reason) => ApiError::Conflict(reason),
            Refused::Invalid(reason) => ApiError::Unprocessable(reason),
            Refused::Upstream(reason) => ApiError::BadGateway(reason),
            Refused::Store(e) => ApiError::from_store(e, retry_after),
        }
    }

    /// The `Retry-After` seconds of an answer a retry can fix.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Unavailable { retry_after } => Some(*retry_after),
            ApiError::ReadsBusy | ApiError::TooManyRequests(_) => Some(1),
            _ => None,
        }
    }

    /// Maps a store failure: unreachable database is retryable (503), the rest is a 500.
    pub fn from_store(e: StoreError, retry_after: u64) -> Self {
        match e {
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                ApiError::Unavailable { retry_after }
            }
            StoreError::Rejected(reason) => ApiError::BadRequest(reason),
            StoreError::TooExpensive => ApiError::TooExpensive(
                "the query was too expensive: it ran past its deadline and was cancelled".into(),
            ),
            StoreError::Busy => ApiError::ReadsBusy,
            StoreError::Other(e) => ApiError::Internal(e),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) | ApiError::MalformedJson { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable { .. } | ApiError::ReadsBusy | ApiError::TooExpensive(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        let mut body = json!({ "error": self.to_string() });
        match self {
            ApiError::Unauthorized { challenge } => {
                response.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
            }
            ApiError::MalformedJson { line, column, .. } => {
                body["line"] = json!(line);
                body["column"] = json!(column);
            }
            ApiError::PayloadTooLarge { limit } => body["limit_bytes"] = json!(limit),
            ApiError::Internal(e) => tracing::error!(error = ?e, "request failed"),
            _ => {}
        }
        response.json(body)
    }
}

/// 415 unless the request says its body is JSON (`application/json`, any parameters).
pub fn require_json(headers: &actix_web::http::header::HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            content_type.chars().take(100).collect(),
        ))
    }
}
