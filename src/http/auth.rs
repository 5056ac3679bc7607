//! Caller authentication for `/webhook` and `/api`: a bearer token (Alertmanager's
//! `http_config.authorization`) or basic auth (`http_config.basic_auth`), compared in constant time.

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderMap},
    middleware::Next,
    web, Error,
};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::plan::Credentials;

/// Checks the `Authorization` header against the configured credentials.
#[derive(Debug, Clone)]
pub struct Authenticator {
    credentials: Credentials,
}

impl Authenticator {
    /// With empty credentials every request passes; startup refuses that unless allowed explicitly.
    pub fn new(credentials: Credentials) -> Self {
        Self { credentials }
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        if self.credentials.is_empty() {
            return true;
        }
        let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((scheme, presented)) = value.trim().split_once(' ') else {
            return false;
        };
        let presented = presented.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            self.credentials
                .bearer_token
                .as_ref()
                .is_some_and(|token| same(token.expose_secret(), presented))
        } else if scheme.eq_ignore_ascii_case("basic") {
            self.allows_basic(presented)
        } else {
            false
        }
    }

    fn allows_basic(&self, encoded: &str) -> bool {
        let Some((username, password)) = &self.credentials.basic else {
            return false;
        };
        let Some(decoded) = STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
        else {
            return false;
        };
        let Some((user, pass)) = decoded.split_once(':') else {
            return false;
        };
        // Both halves are always compared, so timing does not tell which one was wrong.
        let user_ok = same(username, user);
        let pass_ok = same(password.expose_secret(), pass);
        user_ok & pass_ok
    }

    /// The `WWW-Authenticate` challenges for the schemes that would work.
    fn challenge(&self) -> String {
        let mut challenges = Vec::new();
        if self.credentials.bearer_token.is_some() {
            challenges.push(r#"Bearer realm="medic""#);
        }
        if self.credentials.basic.is_some() {
            challenges.push(r#"Basic realm="medic", charset="UTF-8""#);
        }
        challenges.join(", ")
    }
}

fn same(expected: &str, presented: &str) -> bool {
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// Middleware: rejects the request with 401 before its body is read.
pub async fn require(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let authenticator = req
        .app_data::<web::Data<Authenticator>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no Authenticator in app data")))?;
    if authenticator.allows(req.headers()) {
        next.call(req).await
    } else {
        tracing::warn!(
            path = req.path(),
            "rejected request with missing or wrong credentials"
        );
        Err(ApiError::Unauthorized {
            challenge: authenticator.challenge(),
        }
        .into())
    }
}
