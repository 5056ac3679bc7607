//! Signed identity, compiled: for each issuer whose JSON Web Tokens medic accepts, the claims it
//! must carry, where its keys are, and the role its tokens' groups and subject give. The keys
//! themselves are fetched at run time (`http`), not here.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::PathBuf,
    time::Duration,
};

use crate::{
    config::{JwtSettings, OneOrMany, Problem},
    domain::Role,
};

/// The most clock skew accepted: past it, an expired token would be good for too long.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// One issuer whose tokens medic accepts.
#[derive(Debug, Clone)]
pub struct JwtIssuer {
    /// `iss` must equal it.
    pub issuer: String,
    /// `aud` must contain one of them.
    pub audiences: Vec<String>,
    /// Where its signing keys are.
    pub keys: KeySource,
    /// The claim naming the person.
    pub user_claim: String,
    /// The claim listing their groups.
    pub groups_claim: String,
    pub roles: BTreeMap<String, Role>,
    pub subjects: BTreeMap<String, Role>,
    pub default_role: Option<Role>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

/// Where an issuer's JSON Web Key Set is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Fetched over HTTPS (plain HTTP on a loopback address only: tests, a sidecar).
    Url(reqwest::Url),
    /// Read from a file, again when it changes.
    File(PathBuf),
}

impl JwtIssuer {
    /// The highest role of the token's groups and its subject, else the default.
    pub fn role_of<'a>(
        &self,
        subject: Option<&str>,
        groups: impl IntoIterator<Item = &'a str>,
    ) -> Option<Role> {
        let by_subject = subject.and_then(|sub| self.subjects.get(sub).copied());
        groups
            .into_iter()
            .filter_map(|group| self.roles.get(group).copied())
            .chain(by_subject)
            .max()
            .or(self.default_role)
    }
}

/// Compiles `server.auth.jwt`; every problem has its key path.
pub fn issuers(settings: &OneOrMany<JwtSettings>, problems: &mut Vec<Problem>) -> Vec<JwtIssuer> {
    let mut seen = BTreeSet::new();
    let mut issuers = Vec::new();
    for (at, settings) in settings.with_paths("server.auth.jwt") {
        let Some(issuer) = compile(&at, settings, problems) else {
            continue;
        };
        if !seen.insert(issuer.issuer.clone()) {
            problems.push(Problem::new(
                format!("{at}.issuer"),
                format!("{:?} is configured twice", issuer.issuer),
            ));
        }
        issuers.push(issuer);
    }
    issuers
}

fn compile(at: &str, settings: &JwtSettings, problems: &mut Vec<Problem>) -> Option<JwtIssuer> {
    let start = problems.len();
    let issuer = settings.issuer.as_deref().map(str::trim).unwrap_or_default();
    if issuer.is_empty() {
        problems.push(Problem::new(
            format!("{at}.issuer"),
            "required: `iss` must equal it",
        ));
    }
    if settings.audiences.iter().all(|a| a.trim().is_empty()) {
        problems.push(Problem::new(
            format!("{at}.audiences"),
            "must list medic's audience: a token minted for another service is not for medic",
        ));
    }
    let keys = key_source(at, settings, problems);
    for (key, claim) in [
        ("user_claim", &settings.user_claim),
        ("groups_claim", &settings.groups_claim),
    ] {
        if claim.trim().is_empty() {
            problems.push(Problem::new(format!("{at}.{key}"), "must name a claim"));
        }
    }
    if settings.leeway.0 > MAX_LEEWAY {
        problems.push(Problem::new(
            format!("{at}.leeway"),
            "must be at most 5m: an expired token would be accepted for that long",
        ));
    }
    if settings.roles.is_empty() && settings.subjects.is_empty() && settings.default_role.is_none() {
        problems.push(Problem::new(
            at,
            "gives no token a role: set roles, subjects or default_role",
        ));
    }
    let keys = keys.filter(|_| problems.len() == start)?;
    Some(JwtIssuer {
        issuer: issuer.to_owned(),
        audiences: settings.audiences.iter().map(|a| a.trim().to_owned()).collect(),
        keys,
        user_claim: settings.user_claim.trim().to_owned(),
        groups_claim: settings.groups_claim.trim().to_owned(),
        roles: settings.roles.clone(),
        subjects: settings.subjects.clone(),
        default_role: settings.default_role,
        leeway: settings.leeway.0,
    })
}

/// `jwks_url` or `jwks_file`, exactly one.
fn key_source(at: &str, settings: &JwtSettings, problems: &mut Vec<Problem>) -> Option<KeySource> {
    match (&settings.jwks_url, &settings.jwks_file) {
        (Some(_), Some(_)) => {
            problems.push(Problem::new(at, "set jwks_url or jwks_file, not both"));
            None
        }
        (None, None) => {
            problems.push(Problem::new(
                at,
                "needs jwks_url or jwks_file: where the issuer's keys are",
            ));
            None
        }
        (Some(url), None) => jwks_url(url)
            .map_err(|e| problems.push(Problem::new(format!("{at}.jwks_url"), e)))
            .ok(),
        (None, Some(file)) if file.as_os_str().is_empty() => {
            problems.push(Problem::new(format!("{at}.jwks_file"), "must name a file"));
            None
        }
        (None, Some(file)) => match std::fs::metadata(file) {
            Ok(meta) if meta.is_file() => Some(KeySource::File(file.clone())),
            Ok(_) => {
                problems.push(Problem::new(
                    format!("{at}.jwks_file"),
                    format!("{} is not a file", file.display()),
                ));
                None
            }
            Err(e) => {
                problems.push(Problem::new(
                    format!("{at}.jwks_file"),
                    format!("cannot read {}: {e}", file.display()),
                ));
                None
            }
        },
    }
}

/// An `https://` URL, or `http://` to a loopback address: keys fetched in the clear from
/// anywhere else could be anyone's.
fn jwks_url(text: &str) -> Result<KeySource, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(KeySource::Url(url)),
        "http" if loopback => Ok(KeySource::Url(url)),
        _ => Err(format!(
            "{text:?} must be https:// (plain http only to a loopback address)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> JwtIssuer {
        JwtIssuer {
            issuer: "https://accounts.example.com".into(),
            audiences: vec!["medic".into()],
            keys: KeySource::File("/keys.json".into()),
            user_claim: "email".into(),
            groups_claim: "groups".into(),
            roles: BTreeMap::from([("oncall".into(), Role::Responder), ("leads".into(), Role::Admin)]),
            subjects: BTreeMap::from([("system:serviceaccount:ops:bot".into(), Role::Responder)]),
            default_role: None,
            leeway: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_token_gets_the_highest_role_of_its_groups_and_subject() {
        let jwt = issuer();
        assert_eq!(jwt.role_of(Some("u1"), ["dev", "oncall"]), Some(Role::Responder));
        assert_eq!(
            jwt.role_of(Some("system:serviceaccount:ops:bot"), ["leads"]),
            Some(Role::Admin)
        );
        assert_eq!(
            jwt.role_of(Some("system:serviceaccount:ops:bot"), []),
            Some(Role::Responder)
        );
        assert_eq!(jwt.role_of(None, ["dev"]), None);
        let open = JwtIssuer {
            default_role: Some(Role::Viewer),
            ..jwt
        };
        assert_eq!(open.role_of(None, ["dev"]), Some(Role::Viewer));
    }

    #[test]
    fn keys_come_over_https_or_from_loopback() {
        assert!(jwks_url("https://kubernetes.default.svc/openid/v1/jwks").is_ok());
        assert!(jwks_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(jwks_url("http://[::1]/jwks").is_ok());
        assert!(jwks_url("http://localhost/jwks").is_ok());
        assert!(jwks_url("http://accounts.example.com/jwks").is_err());
        assert!(jwks_url("file:///etc/jwks").is_err());
        assert!(jwks_url("not a url").is_err());
    }
}
