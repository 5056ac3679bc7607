//! Signed identity: a JSON Web Token presented as `Authorization: Bearer`, verified by medic
//! against its issuer's published keys (`server.auth.jwt`).
//!
//! The token's `iss` picks the configured issuer (unverified, only to know whose keys to
//! use); then its signature, `exp` (required), `nbf`, `iss` and `aud` are checked with that
//! issuer's key for the token's `kid`. Only RS256, ES256 and EdDSA are accepted, each only
//! with a key of its own type: `alg: none`, HMAC (the old trick of signing with the issuer's
//! public key as the secret) and keys used against their type are refused. A header's own
//! `jwk` or `jku` is never looked at. Every refusal is a reason to log and a 401; a token that
//! checks out but whose groups and subject give no role is a known caller without a role.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwks::{Key, Keys};
use crate::{domain::Role, plan::jwt::JwtIssuer};

/// Longest name recorded: the claim is the issuer's, the audit trail's column is ours.
const MAX_NAME: usize = 200;

/// A token that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `user_claim`'s value.
    pub name: String,
    /// The issuer that signed it.
    pub issuer: String,
    /// None when neither its groups nor its subject give one, and there is no default.
    pub role: Option<Role>,
}

/// Verifies tokens of the configured issuers.
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
}

struct Issuer {
    settings: JwtIssuer,
    keys: Keys,
}

/// Only what is needed to choose the issuer, read before the signature is checked.
#[derive(Deserialize)]
struct Unverified {
    iss: Option<String>,
}

impl JwtVerifier {
    /// A verifier for `issuers`, fetching their keys with `client`.
    pub fn new(issuers: &[JwtIssuer], client: &reqwest::Client) -> Self {
        let issuers = issuers
            .iter()
            .map(|settings| Issuer {
                keys: Keys::new(settings.keys.clone(), client.clone()),
                settings: settings.clone(),
            })
            .collect();
        Self { issuers }
    }

    /// Whether `token` has a JWT's shape (three base64url parts): only then is it verified as
    /// one, and refused as one.
    pub fn looks_like_jwt(token: &str) -> bool {
        let parts: Vec<&str> = token.split('.').collect();
        parts.len() == 3
            && parts[..2].iter().all(|p| !p.is_empty())
            && parts.iter().all(|p| {
                p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    }

    /// The person `token` names, or why it is refused (to log; the caller answers 401).
    pub async fn verify(&self, token: &str) -> Result<Verified, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("unreadable header: {e}"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let claimed = jsonwebtoken::dangerous::insecure_decode::<Unverified>(token)
            .map_err(|e| format!("unreadable claims: {e}"))?
            .claims
            .iss
            .unwrap_or_default();
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.settings.issuer == claimed)
            .ok_or_else(|| format!("no issuer {:?} is configured", truncate(&claimed)))?;
        issuer.verify(token, header.alg, header.kid.as_deref()).await
    }
}

impl Issuer {
    async fn verify(&self, token: &str, alg: Algorithm, kid: Option<&str>) -> Result<Verified, String> {
        let keys = self.keys.current().await.map_err(|e| format!("no keys: {e:#}"))?;
        let candidates = match candidates(&keys, alg, kid) {
            found if !found.is_empty() => found,
            _ => self.after_refetch(&keys, alg, kid).await?,
        };
        let validation = self.validation(alg);
        let mut refusal = String::from("no key");
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return self.identity(&data.claims),
                Err(e) => refusal = format!("refused: {e}"),
            }
        }
        Err(refusal)
    }

    /// The candidates once the keys were fetched again for a key the set lacks.
    async fn after_refetch(
        &self,
        seen: &Arc<Vec<Key>>,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Vec<Key>, String> {
        let unknown = || format!("no {alg:?} key {:?} in the issuer's keys", kid.map(truncate));
        let fetched = self
            .keys
            .refetch_for_unknown(seen)
            .await
            .map_err(|e| format!("{}; fetching again failed: {e:#}", unknown()))?;
        let found = fetched
            .map(|keys| candidates(&keys, alg, kid))
            .unwrap_or_default();
        if found.is_empty() {
            return Err(unknown());
        }
        Ok(found)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();
        validation
    }

    /// Who the verified claims name, and the role their groups and subject give.
    fn identity(&self, claims: &Map<String, Value>) -> Result<Verified, String> {
        let settings = &self.settings;
        let name: String = claims
            .get(&settings.user_claim)
            .and_then(Value::as_str)
            .map(|name| name.chars().filter(|c| !c.is_control()).take(MAX_NAME).collect())
            .filter(|name: &String| !name.trim().is_empty())
            .ok_or_else(|| format!("no {:?} claim naming the user", settings.user_claim))?;
        let groups: Vec<&str> = match claims.get(&settings.groups_claim) {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(one)) => vec![one.as_str()],
            _ => Vec::new(),
        };
        let subject = claims.get("sub").and_then(Value::as_str);
        Ok(Verified {
            name,
            issuer: settings.issuer.clone(),
            role: settings.role_of(subject, groups),
        })
    }
}

/// The keys that may have signed a token with this `alg` and `kid`: the one named, or with no
/// `kid` every key of the algorithm's type.
fn candidates(keys: &[Key], alg: Algorithm, kid: Option<&str>) -> Vec<Key> {
    keys.iter()
        .filter(|key| key.algorithm == alg)
        .filter(|key| kid.is_none() || key.id.as_deref() == kid)
        .cloned()
        .collect()
}

/// A value from the token, short enough to log.
fn truncate(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_base64url_parts_look_like_a_token() {
        assert!(JwtVerifier::looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(
            JwtVerifier::looks_like_jwt("eyJh.eyJz."),
            "an unsigned token is refused as a JWT"
        );
        assert!(!JwtVerifier::looks_like_jwt("alice-token-0123456789"));
        assert!(!JwtVerifier::looks_like_jwt("a.b"));
        assert!(!JwtVerifier::looks_like_jwt("a.b.c.d"));
        assert!(!JwtVerifier::looks_like_jwt("a b.c.d"));
    }
}
