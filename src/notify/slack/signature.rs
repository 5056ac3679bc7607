//! Slack's request signatures: `v0=` HMAC-SHA256 of `v0:<timestamp>:<body>` under an app's
//! signing secret, compared in constant time; a timestamp more than five minutes away is a
//! replay, and so is a signature already taken (remembered in Postgres, so every replica
//! agrees).

use std::time::Duration;

use hmac::{KeyInit, Mac};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::{
    plan::SlackApp,
    store::{Store, StoreError},
};

type HmacSha256 = hmac::Hmac<Sha256>;

/// Slack's requests older (or newer) than this are refused.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// Why a request is not Slack's.
#[derive(Debug, thiserror::Error)]
pub enum Unsigned {
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What Slack sends to prove a request is its own.
pub struct Signed<'a> {
    /// `X-Slack-Request-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-Slack-Signature`.
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// The Slack app whose signing secret signed this request, if one did, it is fresh, and no
/// replica has taken it before.
pub async fn verify<'a>(
    apps: impl Iterator<Item = (&'a str, &'a SlackApp)>,
    store: &Store,
    request: &Signed<'_>,
) -> Result<(&'a str, &'a SlackApp), Unsigned> {
    let app = signer(apps, request, chrono::Utc::now().timestamp())?;
    let signature = request.signature.unwrap_or_default().trim();
    let seen = Sha256::digest(signature.as_bytes());
    let window = Duration::from_secs(2 * MAX_SKEW_SECONDS as u64);
    if !store.first_slack_request(seen.as_slice(), window).await? {
        return Err(Unsigned::Refused("a Slack request replayed"));
    }
    Ok(app)
}

/// The app whose secret signed the request at `now` (Unix seconds).
fn signer<'a>(
    mut apps: impl Iterator<Item = (&'a str, &'a SlackApp)>,
    request: &Signed<'_>,
    now: i64,
) -> Result<(&'a str, &'a SlackApp), Unsigned> {
    let timestamp = request.timestamp.ok_or(Unsigned::Refused("no Slack timestamp"))?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Unsigned::Refused("bad Slack timestamp"))?;
    if (now - at).abs() > MAX_SKEW_SECONDS {
        return Err(Unsigned::Refused("Slack timestamp more than 5 minutes away"));
    }
    let signature = request.signature.ok_or(Unsigned::Refused("no Slack signature"))?;
    let hex = signature
        .trim()
        .strip_prefix("v0=")
        .ok_or(Unsigned::Refused("not a v0 Slack signature"))?;
    let Ok(presented) = hex::decode(hex) else {
        return Err(Unsigned::Refused("wrong Slack signature"));
    };
    apps.find(|(_, app)| {
        let Ok(mut mac) = HmacSha256::new_from_slice(app.signing_secret.expose_secret().as_bytes()) else {
            return false;
        };
        for part in [b"v0:".as_slice(), timestamp.as_bytes(), b":", request.body] {
            mac.update(part);
        }
        mac.verify_slice(&presented).is_ok()
    })
    .ok_or(Unsigned::Refused("wrong Slack signature"))
}
