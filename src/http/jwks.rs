//! The keys an issuer of tokens signs with: its JSON Web Key Set, fetched from its URL or read
//! from a file, and kept as verification keys ready to use.
//!
//! A fetched set is used for at most [`MAX_AGE`]; a token naming a key the set lacks (the
//! issuer rotated its keys) fetches it again, at most once per [`FORCED_EVERY`], so that
//! tokens with made-up key ids cannot make medic hammer the issuer. One fetch at a time per
//! issuer, each bounded by [`FETCH_TIMEOUT`]: a request never waits on a slow issuer for
//! longer than that. A file is read again when its modification time or size changes.
//!
//! Only the key types medic verifies are kept: RSA (RS256), P-256 (ES256) and Ed25519 (EdDSA);
//! a key of any other type, or one meant for encryption, is skipped, not an error.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{anyhow, Context as _};
use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
    Algorithm, DecodingKey,
};
use serde::Deserialize;

use crate::plan::jwt::KeySource;

/// Longest a fetched key set is used without fetching it again.
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// Least time between two fetches for a key the set does not have.
pub const FORCED_EVERY: Duration = Duration::from_secs(60);
/// Longest one fetch of a key set may take, connecting included; also the longest a request
/// waits for another request's fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// After a failed fetch, requests are refused at once for this long instead of each waiting
/// for a fetch of its own: an issuer that is down must not queue every request behind it.
const AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Largest key set read: a real one is a few kilobytes.
const MAX_BYTES: usize = 256 * 1024;

/// One verification key of the set.
#[derive(Clone)]
pub struct Key {
    /// `kid`: which key a token names.
    pub id: Option<String>,
    /// The one algorithm this key verifies.
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// An issuer's keys, as last fetched or read.
pub struct Keys {
    source: KeySource,
    client: reqwest::Client,
    cached: RwLock<Cached>,
    /// Held while fetching, so that concurrent requests wait for one fetch instead of each
    /// starting their own.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default, Clone)]
struct Cached {
    keys: Arc<Vec<Key>>,
    /// When the URL was last fetched successfully.
    fetched_at: Option<Instant>,
    /// When a fetch was last made for an unknown key id.
    forced_at: Option<Instant>,
    /// The file's modification time and size when it was read.
    stamp: Option<(SystemTime, u64)>,
    /// When the last fetch failed, and why.
    failed: Option<(Instant, String)>,
}

impl Keys {
    /// The keys at `source`, fetched with `client` when they are first needed.
    pub fn new(source: KeySource, client: reqwest::Client) -> Self {
        Self {
            source,
            client,
            cached: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The keys in force: fetched again when older than [`MAX_AGE`], read again when the file
    /// changed. An error means there is no key set to trust now.
    pub async fn current(&self) -> anyhow::Result<Arc<Vec<Key>>> {
        match &self.source {
            KeySource::File(path) => self.read_file(path),
            KeySource::Url(_) => {
                if let Some(keys) = self.fresh() {
                    return Ok(keys);
                }
                let asked = Instant::now();
                let _one = self.turn().await?;
                // Another request may have fetched, or failed to, while this one waited.
                if let Some(keys) = self.fresh() {
                    return Ok(keys);
                }
                if let Some((at, error)) = self.snapshot().failed {
                    if at >= asked || at.elapsed() < AFTER_FAILURE {
                        return Err(anyhow!("{error} (lately; not fetched again yet)"));
                    }
                }
                self.fetch(false).await
            }
        }
    }

    /// The keys after fetching again for a key id that `seen` lacked; None when a fetch for an
    /// unknown key was made less than [`FORCED_EVERY`] ago (or the keys are in a file, read
    /// again whenever it changes anyway).
    pub async fn refetch_for_unknown(&self, seen: &Arc<Vec<Key>>) -> anyhow::Result<Option<Arc<Vec<Key>>>> {
        if matches!(self.source, KeySource::File(_)) {
            return Ok(None);
        }
        let _one = self.turn().await?;
        let cached = self.snapshot();
        if !Arc::ptr_eq(&cached.keys, seen) && cached.fetched_at.is_some() {
            // Fetched while this request waited: that set is as new as a fetch now.
            return Ok(Some(cached.keys));
        }
        if cached.forced_at.is_some_and(|at| at.elapsed() < FORCED_EVERY) {
            return Ok(None);
        }
        self.fetch(true).await.map(Some)
    }

    /// The right to fetch, waiting at most [`FETCH_TIMEOUT`] for another request's fetch.
    async fn turn(&self) -> anyhow::Result<tokio::sync::MutexGuard<'_, ()>> {
        tokio::time::timeout(FETCH_TIMEOUT, self.fetching.lock())
            .await
            .map_err(|_| anyhow!("another request's fetch of the keys is taking too long"))
    }

    fn snapshot(&self) -> Cached {
        self.cached
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn fresh(&self) -> Option<Arc<Vec<Key>>> {
        let cached = self.snapshot();
        let at = cached.fetched_at?;
        (at.elapsed() < MAX_AGE).then_some(cached.keys)
    }

    /// Fetches the URL; `forced` for an unknown key id. A failed fetch keeps the keys in force
    /// until they are too old.
    async fn fetch(&self, forced: bool) -> anyhow::Result<Arc<Vec<Key>>> {
        let KeySource::Url(url) = &self.source else {
            return Err(anyhow!("no URL to fetch"));
        };
        let started = Instant::now();
        if forced {
            self.update(|cached| cached.forced_at = Some(started));
        }
        let fetched = self
            .get(url.clone())
            .await
            .with_context(|| format!("fetching {url}"))
            .and_then(|body| parse(&body).with_context(|| format!("reading the key set at {url}")));
        let keys = match fetched {
            Ok(keys) => Arc::new(keys),
            Err(e) => {
                self.update(|cached| cached.failed = Some((Instant::now(), format!("{e:#}"))));
                return Err(e);
            }
        };
        tracing::info!(url = %url, keys = keys.len(), forced, "fetched an issuer's keys");
        self.update(|cached| {
            cached.keys = keys.clone();
            cached.fetched_at = Some(started);
            cached.failed = None;
        });
        Ok(keys)
    }

    async fn get(&self, url: reqwest::Url) -> anyhow::Result<Vec<u8>> {
        let request = self.client.get(url).timeout(FETCH_TIMEOUT).send();
        let response = tokio::time::timeout(FETCH_TIMEOUT, request)
            .await
            .context("timed out")??
            .error_for_status()?;
        if response.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
            return Err(anyhow!("larger than {MAX_BYTES} bytes"));
        }
        let body = tokio::time::timeout(FETCH_TIMEOUT, response.bytes())
            .await
            .context("timed out")??;
        if body.len() > MAX_BYTES {
            return Err(anyhow!("larger than {MAX_BYTES} bytes"));
        }
        Ok(body.to_vec())
    }

    fn read_file(&self, path: &std::path::Path) -> anyhow::Result<Arc<Vec<Key>>> {
        // A local file of a few kilobytes, looked at with one `stat`: reading it here costs less
        // than handing it to a blocking thread (the secrets' files are read the same way).
        let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
        let cached = self.snapshot();
        if cached.stamp == Some(stamp) {
            return Ok(cached.keys);
        }
        let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let keys =
            Arc::new(parse(&body).with_context(|| format!("reading the key set in {}", path.display()))?);
        tracing::info!(file = %path.display(), keys = keys.len(), "read an issuer's keys");
        self.update(|cached| {
            cached.keys = keys.clone();
            cached.stamp = Some(stamp);
        });
        Ok(keys)
    }

    fn update(&self, change: impl FnOnce(&mut Cached)) {
        let mut cached = self
            .cached
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut cached);
    }
}

/// A key set whose keys are read one by one: a key of a type this version of the crate does not
/// know must not hide the others.
#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// The usable keys of a JSON Web Key Set.
pub fn parse(body: &[u8]) -> anyhow::Result<Vec<Key>> {
    let set: RawSet = serde_json::from_slice(body).context("not a JSON Web Key Set")?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|raw| serde_json::from_value::<Jwk>(raw).ok())
        .filter_map(|jwk| verification_key(&jwk))
        .collect())
}

/// The key, if it is one medic verifies with: its type gives the only algorithm it may
/// verify, so a token cannot choose to have an RSA key used as an HMAC secret.
fn verification_key(jwk: &Jwk) -> Option<Key> {
    if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
        return None;
    }
    let (algorithm, named) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            (Algorithm::EdDSA, KeyAlgorithm::EdDSA)
        }
        _ => return None,
    };
    if jwk.common.key_algorithm.is_some_and(|alg| alg != named) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        id: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signature_keys_of_the_verified_types_are_kept() {
        let set = br#"{"keys": [
            {"kty": "RSA", "kid": "r", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "AKP", "kid": "future", "alg": "ML-DSA-44", "pub": "AAAA"},
            {"kty": "OKP", "kid": "e", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}"#;
        let keys = parse(set).unwrap();
        let kept: Vec<(Option<&str>, Algorithm)> =
            keys.iter().map(|k| (k.id.as_deref(), k.algorithm)).collect();
        assert_eq!(
            kept,
            [(Some("r"), Algorithm::RS256), (Some("e"), Algorithm::EdDSA)]
        );
        assert!(parse(b"{}").is_err(), "no keys member");
    }
}
