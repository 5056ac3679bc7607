//! Secrets read from the settings: inline, or from a file (a mounted Kubernetes Secret).

use std::{fmt, path::PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::config::{AuthSettings, Problem};

/// Credentials resolved from the settings, files read.
#[derive(Clone, Default)]
pub struct Credentials {
    pub bearer_token: Option<SecretString>,
    pub basic: Option<(String, SecretString)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "[REDACTED]"))
            .field("basic_username", &self.basic.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl Credentials {
    /// True when no credential is configured at all.
    pub fn is_empty(&self) -> bool {
        self.bearer_token.is_none() && self.basic.is_none()
    }
}

/// The webhook's credentials with secret files read; checks that exactly one form of each
/// secret is given.
pub fn credentials(auth: &AuthSettings, problems: &mut Vec<Problem>) -> Option<Credentials> {
    let start = problems.len();
    let bearer_token = secret_from(
        "server.auth.bearer_token",
        auth.bearer_token.as_ref(),
        auth.bearer_token_file.as_ref(),
        problems,
    );
    let basic = auth.basic_auth.as_ref().and_then(|basic| {
        if basic.username.is_empty() {
            problems.push(Problem::new(
                "server.auth.basic_auth.username",
                "must not be empty",
            ));
        }
        let password = secret_from(
            "server.auth.basic_auth.password",
            basic.password.as_ref(),
            basic.password_file.as_ref(),
            problems,
        );
        if password.is_none() && basic.password.is_none() && basic.password_file.is_none() {
            problems.push(Problem::new(
                "server.auth.basic_auth",
                "needs password or password_file",
            ));
        }
        password.map(|password| (basic.username.clone(), password))
    });
    let credentials = Credentials { bearer_token, basic };
    if credentials.is_empty() && !auth.allow_unauthenticated && problems.len() == start {
        problems.push(Problem::new(
            "server.auth",
            "no credential configured: set bearer_token, bearer_token_file or basic_auth, \
             or set allow_unauthenticated: true to accept anyone",
        ));
    }
    (problems.len() == start).then_some(credentials)
}

/// A secret given inline (`key`) or in a file (`key_file`), not both.
pub fn secret_from(
    key: &str,
    inline: Option<&SecretString>,
    file: Option<&PathBuf>,
    problems: &mut Vec<Problem>,
) -> Option<SecretString> {
    let secret = match (inline, file) {
        (Some(_), Some(_)) => {
            problems.push(Problem::new(
                key,
                format!("set either {key} or {key}_file, not both"),
            ));
            return None;
        }
        (Some(secret), None) => secret.clone(),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => SecretString::from(text.trim().to_owned()),
            Err(e) => {
                problems.push(Problem::new(
                    format!("{key}_file"),
                    format!("cannot read {}: {e}", path.display()),
                ));
                return None;
            }
        },
        (None, None) => return None,
    };
    if secret.expose_secret().is_empty() {
        problems.push(Problem::new(key, "must not be empty"));
        return None;
    }
    Some(secret)
}
