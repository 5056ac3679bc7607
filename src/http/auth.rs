//! Who is calling, and whether they may: Alertmanager's credential (a bearer token or basic
//! auth, as its `http_config` sends them) may only post to `/webhook`; the API's users (a
//! bearer token each, a name from a trusted authenticating proxy, or a JSON Web Token from a
//! configured issuer, see [`super::jwt`]) act with their role.
//! Secrets are compared in constant time. Unknown or missing credential: 401; a known one
//! whose role does not allow the request: 403. State changes of the API must be JSON (415
//! otherwise), so a cross-site form cannot post them.
//!
//! What a route needs ([`Need`]) is declared where the route is registered, and checked by
//! middleware on that route alone: it runs only when the router chose the route, so no spelling
//! of a path (percent-encoded, doubled slashes, dot segments) reaches a route past its check.
//! Nothing here looks at the path.

use std::{net::IpAddr, sync::Arc};

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{header, Method},
    middleware::Next,
    web, Error, HttpMessage, HttpRequest,
};
use base64::{engine::general_purpose::STANDARD, Engine as _};

use super::{
    error::ApiError,
    jwks::FETCH_TIMEOUT,
    jwt::{JwtVerifier, Verified},
};
use crate::{
    domain::{Actor, Auth, Role, Surface},
    outbound,
    plan::{auth::User, Credentials},
};

/// An authenticated caller, put in the request's extensions for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Alertmanager's credential.
    Alertmanager,
    /// A person or tool using the API.
    Person(Actor),
}

/// What a route needs of its caller, declared where the route is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Alertmanager's credential (`/webhook`); a user's is refused.
    Alertmanager,
    /// A user of the API with at least this role; a state change must be JSON.
    Role(Role),
}

/// A user the API knows, acting through the API.
fn api_actor(name: String, role: Role, auth: Auth, address: String) -> Actor {
    Actor {
        name,
        role,
        auth,
        address,
        surface: Surface::Api,
        issuer: None,
    }
}

/// Checks callers against the compiled credentials.
#[derive(Clone)]
pub struct Authenticator {
    credentials: Credentials,
    /// Verifies JSON Web Tokens when issuers are configured.
    jwt: Option<Arc<JwtVerifier>>,
}

/// Why a request is refused.
pub(super) enum Refusal {
    /// No credential, or one nobody has: 401.
    Unknown,
    /// A known caller whose role does not allow this: 403.
    Forbidden(String),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("credentials", &self.credentials)
            .field("jwt_issuers", &self.credentials.jwt.len())
            .finish()
    }
}

impl Authenticator {
    /// Checks callers against `credentials`; fails only when the HTTP client that fetches the
    /// issuers' keys cannot be built (an unreadable `SSL_CERT_FILE`).
    pub fn new(credentials: Credentials) -> anyhow::Result<Self> {
        let jwt = if credentials.jwt.is_empty() {
            None
        } else {
            let client = outbound::client_builder()?
                .connect_timeout(FETCH_TIMEOUT)
                .timeout(FETCH_TIMEOUT)
                .build()?;
            Some(Arc::new(JwtVerifier::new(&credentials.jwt, &client)))
        };
        Ok(Self { credentials, jwt })
    }

    /// The caller, from a trusted proxy's headers or the `Authorization` header.
    async fn identify(&self, req: &ServiceRequest) -> Result<Caller, Refusal> {
        let peer = req.peer_addr().map(|a| a.ip());
        if let Some(person) = self.proxied_person(req.request(), peer)? {
            return Ok(Caller::Person(person));
        }
        let address = peer.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some((scheme, presented)) = presented.and_then(|v| v.trim().split_once(' ')) else {
            return self.anonymous(address);
        };
        let presented = presented.trim();
        let credentials = &self.credentials;
        if scheme.eq_ignore_ascii_case("bearer") {
            if credentials
                .webhook_token
                .as_ref()
                .is_some_and(|t| t.matches(presented))
            {
                return Ok(Caller::Alertmanager);
            }
            if let Some(user) = self.user_by_token(presented) {
                return Ok(Caller::Person(api_actor(
                    user.name.clone(),
                    user.role,
                    Auth::Token,
                    address,
                )));
            }
            if let Some(person) = self.jwt_person(presented, address, Surface::Api).await? {
                return Ok(Caller::Person(person));
            }
        } else if scheme.eq_ignore_ascii_case("basic") && self.basic_matches(presented) {
            return Ok(Caller::Alertmanager);
        }
        Err(Refusal::Unknown)
    }

    /// The user whose token this is; never for Alertmanager's credential.
    pub(super) fn user_by_token(&self, presented: &str) -> Option<&User> {
        let webhook = self.credentials.webhook_token.as_ref();
        if webhook.is_some_and(|t| t.matches(presented)) {
            return None;
        }
        // Every user's token is compared, so timing does not tell which one matched.
        self.credentials.users.iter().fold(None, |found, user| {
            if user.token.matches(presented) {
                Some(user)
            } else {
                found
            }
        })
    }

    /// The person a JSON Web Token names, when issuers are configured and `token` is one; a
    /// token that does not verify is refused (401), one that gives no role is forbidden (403).
    async fn jwt_person(
        &self,
        token: &str,
        address: String,
        surface: Surface,
    ) -> Result<Option<Actor>, Refusal> {
        let Some(verifier) = self.jwt.as_ref().filter(|_| JwtVerifier::looks_like_jwt(token)) else {
            return Ok(None);
        };
        let Verified { name, issuer, role } = verifier.verify(token).await.map_err(|reason| {
            tracing::warn!(reason = %reason, address = %address, "refused a JSON Web Token");
            Refusal::Unknown
        })?;
        let role =
            role.ok_or_else(|| Refusal::Forbidden(format!("{name} (from {issuer}) has no role in medic")))?;
        Ok(Some(Actor {
            name,
            role,
            auth: Auth::Jwt,
            address,
            surface,
            issuer: Some(issuer),
        }))
    }

    /// The person a JSON Web Token in `Authorization: Bearer` names, for the console (where
    /// oauth2-proxy passes the user's token): one identity per request, no session.
    pub(super) async fn bearer_person(
        &self,
        req: &HttpRequest,
        address: String,
    ) -> Result<Option<Actor>, Refusal> {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match bearer {
            Some(token) => self.jwt_person(token, address, Surface::Console).await,
            None => Ok(None),
        }
    }

    /// The user of this name, as the settings have them now.
    pub(super) fn user_named(&self, name: &str) -> Option<&User> {
        self.credentials.users.iter().find(|user| user.name == name)
    }

    /// Whether the request came through the trusted proxy (its address, and its secret when
    /// one is set): only then do its `X-Forwarded-*` headers count.
    pub(super) fn came_through_proxy(&self, req: &HttpRequest) -> bool {
        let Some(proxy) = &self.credentials.proxy else {
            return false;
        };
        let secret = req
            .headers()
            .get(&proxy.secret_header)
            .and_then(|v| v.to_str().ok());
        req.peer_addr().is_some_and(|peer| proxy.trusts(peer.ip())) && proxy.vouches(secret)
    }

    /// Whether a trusted proxy says who the user is (the console then has no sign-in page).
    pub(super) fn has_proxy(&self) -> bool {
        self.credentials.proxy.is_some()
    }

    /// Whether anyone may act as `anonymous`, with every role.
    pub(super) fn allows_anonymous(&self) -> bool {
        self.credentials.allow_unauthenticated
    }

    /// The person a trusted proxy names on this request, or why they may not come in.
    pub(super) fn proxy_identity(&self, req: &HttpRequest) -> Result<Option<Actor>, String> {
        match self.proxied_person(req, req.peer_addr().map(|a| a.ip())) {
            Ok(person) => Ok(person),
            Err(Refusal::Forbidden(reason)) => Err(reason),
            Err(Refusal::Unknown) => Ok(None),
        }
    }

    /// A user named by a trusted proxy; headers from any other peer are ignored.
    fn proxied_person(&self, req: &HttpRequest, peer: Option<IpAddr>) -> Result<Option<Actor>, Refusal> {
        let Some(proxy) = &self.credentials.proxy else {
            return Ok(None);
        };
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let Some(user) = header(&proxy.user_header).filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let Some(peer) = peer.filter(|peer| proxy.trusts(*peer)) else {
            tracing::warn!(peer = ?peer, "identity headers from an untrusted peer ignored");
            return Ok(None);
        };
        if !proxy.vouches(header(&proxy.secret_header)) {
            tracing::warn!(peer = %peer, "identity headers without the proxy's secret ignored");
            return Ok(None);
        }
        // oauth2-proxy sends one header line per group; others one line, comma-separated.
        let groups: Vec<&str> = proxy
            .groups_header
            .as_deref()
            .map(|name| {
                req.headers()
                    .get_all(name)
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|line| line.split(','))
                    .collect()
            })
            .unwrap_or_default();
        let role = proxy
            .role_of(groups)
            .ok_or_else(|| Refusal::Forbidden(format!("{user} has no role in medic")))?;
        let client = header("x-forwarded-for")
            .and_then(|list| list.split(',').next())
            .map(str::trim);
        let address = client
            .filter(|c| !c.is_empty())
            .map_or_else(|| peer.to_string(), str::to_owned);
        Ok(Some(api_actor(
            user.chars().take(200).collect(),
            role,
            Auth::Proxy,
            address,
        )))
    }

    fn anonymous(&self, address: String) -> Result<Caller, Refusal> {
        if !self.credentials.allow_unauthenticated {
            return Err(Refusal::Unknown);
        }
        Ok(Caller::Person(api_actor(
            "anonymous".into(),
            Role::Admin,
            Auth::Anonymous,
            address,
        )))
    }

    fn basic_matches(&self, encoded: &str) -> bool {
        let Some((username, password)) = &self.credentials.webhook_basic else {
            return false;
        };
        let Some(decoded) = STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return false;
        };
        let Some((user, pass)) = decoded.split_once(':') else {
            return false;
        };
        // Both halves are always compared, so timing does not tell which one was wrong.
        let user_ok: bool = subtle::ConstantTimeEq::ct_eq(username.as_bytes(), user.as_bytes()).into();
        let pass_ok = password.matches(pass);
        user_ok & pass_ok
    }

    /// The `WWW-Authenticate` challenges for the schemes that would work.
    fn challenge(&self) -> String {
        let credentials = &self.credentials;
        let mut challenges = Vec::new();
        if credentials.webhook_token.is_some() || !credentials.users.is_empty() || self.jwt.is_some() {
            challenges.push(r#"Bearer realm="medic""#);
        }
        if credentials.webhook_basic.is_some() {
            challenges.push(r#"Basic realm="medic", charset="UTF-8""#);
        }
        challenges.join(", ")
    }
}

/// Whether `caller` may use a route that needs `need`.
fn authorize(caller: &Caller, need: Need) -> Result<(), Refusal> {
    match (caller, need) {
        (Caller::Alertmanager, Need::Alertmanager) => Ok(()),
        (Caller::Alertmanager, Need::Role(_)) => Err(Refusal::Forbidden(
            "Alertmanager's credential may only post to /webhook".into(),
        )),
        (Caller::Person(person), Need::Alertmanager) if person.auth != Auth::Anonymous => Err(
            Refusal::Forbidden("a user's credential may not post alerts; Alertmanager's may".into()),
        ),
        (Caller::Person(_), Need::Alertmanager) => Ok(()),
        (Caller::Person(person), Need::Role(needed)) if person.may(needed) => Ok(()),
        (Caller::Person(person), Need::Role(needed)) => Err(Refusal::Forbidden(format!(
            "{} has the role {}; this needs {needed}",
            person.name, person.role
        ))),
    }
}

/// A state change of the API must say it is JSON: forms cannot post it across sites.
fn check_content_type(req: &ServiceRequest, need: Need) -> Result<(), ApiError> {
    // A DELETE has no body, and no form can send one.
    let changes = !matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE
    );
    if changes && matches!(need, Need::Role(_)) {
        return super::error::require_json(req.headers());
    }
    Ok(())
}

/// Middleware on one route: identifies the caller, checks what the route needs before the body
/// is read, and hands the caller to the handler.
pub async fn require(
    need: Need,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let authenticator = req
        .app_data::<web::Data<Authenticator>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no Authenticator in app data")))?;
    let refused = match authenticator.identify(&req).await {
        Ok(caller) => match authorize(&caller, need) {
            Ok(()) => {
                check_content_type(&req, need)?;
                req.extensions_mut().insert(caller);
                return next.call(req).await;
            }
            Err(refusal) => refusal,
        },
        Err(refusal) => refusal,
    };
    let route = req.match_pattern().unwrap_or_default();
    match refused {
        Refusal::Unknown => {
            tracing::warn!(route, "rejected request with missing or wrong credentials");
            Err(ApiError::Unauthorized {
                challenge: authenticator.challenge(),
            }
            .into())
        }
        Refusal::Forbidden(reason) => {
            tracing::warn!(route, reason = %reason, "refused a request its caller may not make");
            Err(ApiError::Forbidden(reason).into())
        }
    }
}
