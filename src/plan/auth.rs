//! Who may call medic, compiled: Alertmanager's credential, the API's users with their roles,
//! the authenticating proxy trusted to name users, and the issuers whose tokens name them. Every secret that comes from a file is
//! a [`Secret`] read again when the file changes.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use secrecy::ExposeSecret;

use super::{
    jwt::{issuers, JwtIssuer},
    secrets::{rotating_secret, Secret},
};
use crate::{
    config::{AuthSettings, Problem, ProxySettings},
    domain::Role,
};

/// Everything the HTTP layer checks callers against.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Alertmanager's bearer token: `POST /webhook` and nothing else.
    pub webhook_token: Option<Secret>,
    /// Alertmanager's basic-auth user and password: `POST /webhook` and nothing else.
    pub webhook_basic: Option<(String, Secret)>,
    /// The API's users, each with a token and a role.
    pub users: Vec<User>,
    /// The proxy trusted to say who the user is.
    pub proxy: Option<Proxy>,
    /// The issuers whose JSON Web Tokens name a user.
    pub jwt: Vec<JwtIssuer>,
    /// Anyone may post alerts and act as `anonymous` with every role.
    pub allow_unauthenticated: bool,
}

/// One user of the API.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub token: Secret,
}

/// An authenticating proxy in front of medic.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub user_header: String,
    pub groups_header: Option<String>,
    /// Only these peers may name the user.
    pub trusted: Vec<Cidr>,
    pub roles: BTreeMap<String, Role>,
    pub default_role: Option<Role>,
    /// What the proxy must send in `secret_header` for its identity headers to count.
    pub secret: Option<Secret>,
    pub secret_header: String,
}

impl Proxy {
    /// Whether the request carries the proxy's secret (always, when none is configured).
    pub fn vouches(&self, presented: Option<&str>) -> bool {
        match &self.secret {
            None => true,
            Some(secret) => presented.is_some_and(|presented| secret.matches(presented.trim())),
        }
    }

    /// The highest role among the groups, else the default.
    pub fn role_of<'a>(&self, groups: impl IntoIterator<Item = &'a str>) -> Option<Role> {
        groups
            .into_iter()
            .filter_map(|group| self.roles.get(group.trim()).copied())
            .max()
            .or(self.default_role)
    }

    /// Whether this peer may set the identity headers.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted.iter().any(|cidr| cidr.contains(peer))
    }
}

impl Credentials {
    /// True when no credential is configured at all.
    pub fn is_empty(&self) -> bool {
        self.webhook_token.is_none()
            && self.webhook_basic.is_none()
            && self.users.is_empty()
            && self.proxy.is_none()
            && self.jwt.is_empty()
    }

    /// Every secret that comes from a file, to be read again when it changes.
    pub fn rotating(&self) -> Vec<Secret> {
        let webhook = self
            .webhook_token
            .iter()
            .chain(self.webhook_basic.iter().map(|(_, s)| s));
        webhook
            .chain(self.users.iter().map(|u| &u.token))
            .chain(self.proxy.iter().filter_map(|p| p.secret.as_ref()))
            .filter(|secret| secret.file().is_some())
            .cloned()
            .collect()
    }
}

/// Compiles `server.auth`; every problem has its key path.
pub fn credentials(auth: &AuthSettings, problems: &mut Vec<Problem>) -> Option<Credentials> {
    let start = problems.len();
    let webhook_token = rotating_secret(
        "server.auth.bearer_token",
        auth.bearer_token.as_ref(),
        auth.bearer_token_file.as_ref(),
        problems,
    );
    let webhook_basic = auth.basic_auth.as_ref().and_then(|basic| {
        if basic.username.is_empty() {
            problems.push(Problem::new(
                "server.auth.basic_auth.username",
                "must not be empty",
            ));
        }
        let password = rotating_secret(
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
    let users = users(auth, webhook_token.as_ref(), problems);
    let proxy = auth
        .proxy
        .as_ref()
        .and_then(|proxy| compile_proxy(proxy, problems));
    let jwt = issuers(&auth.jwt, problems);
    let credentials = Credentials {
        webhook_token,
        webhook_basic,
        users,
        proxy,
        jwt,
        allow_unauthenticated: auth.allow_unauthenticated,
    };
    if credentials.is_empty() && !auth.allow_unauthenticated && problems.len() == start {
        problems.push(Problem::new(
            "server.auth",
            "no credential configured: set bearer_token, bearer_token_file or basic_auth, \
             or set allow_unauthenticated: true to accept anyone",
        ));
    }
    (problems.len() == start).then_some(credentials)
}

/// A user's token shorter than this is guessable.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Users with distinct names and tokens, none of them Alertmanager's.
fn users(auth: &AuthSettings, webhook: Option<&Secret>, problems: &mut Vec<Problem>) -> Vec<User> {
    let mut users: Vec<User> = Vec::new();
    let mut tokens = BTreeSet::new();
    if let Some(current) = webhook.and_then(Secret::current) {
        tokens.insert(current.expose_secret().to_owned());
    }
    for (i, user) in auth.users.iter().enumerate() {
        let at = format!("server.auth.users[{i}]");
        let name = user.name.trim();
        if name.is_empty() || name.len() > 200 || name.contains('\0') {
            problems.push(Problem::new(format!("{at}.name"), "must be 1 to 200 characters"));
        } else if users.iter().any(|u| u.name == name) {
            problems.push(Problem::new(
                format!("{at}.name"),
                format!("another user is named {name:?}"),
            ));
        }
        let token = rotating_secret(
            &format!("{at}.token"),
            user.token.as_ref(),
            user.token_file.as_ref(),
            problems,
        );
        let Some(token) = token else {
            if user.token.is_none() && user.token_file.is_none() {
                problems.push(Problem::new(format!("{at}.token"), "required (or token_file)"));
            }
            continue;
        };
        let current = token
            .current()
            .map(|t| t.expose_secret().to_owned())
            .unwrap_or_default();
        if current.chars().count() < MIN_TOKEN_CHARS {
            problems.push(Problem::new(
                format!("{at}.token"),
                format!("must be at least {MIN_TOKEN_CHARS} characters (e.g. openssl rand -hex 24)"),
            ));
        }
        if !tokens.insert(current) {
            problems.push(Problem::new(
                format!("{at}.token"),
                "is another user's or Alertmanager's token: each credential must be its own",
            ));
        }
        users.push(User {
            name: name.to_owned(),
            role: user.role,
            token,
        });
    }
    users
}

fn compile_proxy(settings: &ProxySettings, problems: &mut Vec<Problem>) -> Option<Proxy> {
    let at = "server.auth.proxy";
    let start = problems.len();
    if settings.user_header.trim().is_empty() {
        problems.push(Problem::new(format!("{at}.user_header"), "must name a header"));
    }
    if settings.trusted_sources.is_empty() {
        problems.push(Problem::new(
            format!("{at}.trusted_sources"),
            "must list the proxy's addresses: anyone else could claim to be any user",
        ));
    }
    let trusted: Vec<Cidr> = settings
        .trusted_sources
        .iter()
        .enumerate()
        .filter_map(|(i, source)| {
            Cidr::parse(source)
                .map_err(|e| problems.push(Problem::new(format!("{at}.trusted_sources[{i}]"), e)))
                .ok()
        })
        .collect();
    let secret = rotating_secret(
        &format!("{at}.secret"),
        None,
        settings.secret_file.as_ref(),
        problems,
    );
    let single_addresses = trusted.iter().all(Cidr::is_single_address);
    if settings.secret_file.is_none() && !single_addresses {
        problems.push(Problem::new(
            format!("{at}.secret_file"),
            "required when trusted_sources has a range: any pod in it could otherwise name any user",
        ));
    }
    if settings.secret_header.trim().is_empty() {
        problems.push(Problem::new(format!("{at}.secret_header"), "must name a header"));
    }
    (problems.len() == start).then(|| Proxy {
        user_header: settings.user_header.trim().to_owned(),
        groups_header: settings.groups_header.as_ref().map(|h| h.trim().to_owned()),
        trusted,
        roles: settings.roles.clone(),
        default_role: settings.default_role,
        secret,
        secret_header: settings.secret_header.trim().to_owned(),
    })
}

/// An address range: `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let bad = || format!("{text:?} is not an address or a CIDR range such as 10.0.0.0/8");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(bad)?,
            None => bits,
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether the range is one address (`/32`, `/128`, or none written).
    pub fn is_single_address(&self) -> bool {
        self.prefix == if self.network.is_ipv4() { 32 } else { 128 }
    }

    /// Whether `address` is in the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        let (network, address, bits) = match (self.network, address) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (u128::from(u32::from(n)), u128::from(u32::from(a)), 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (network >> shift) == (address >> shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges_contain_their_addresses_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let private = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(private.contains(ip("10.1.2.3")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(private.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped");
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::1/128").unwrap().contains(ip("::1")));
        assert!(!Cidr::parse("::1/128").unwrap().contains(ip("127.0.0.1")));
        for bad in ["10.0.0.0/33", "ten", "10.0.0.0/", "::/129", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_proxy_user_gets_the_highest_role_of_their_groups() {
        let proxy = Proxy {
            user_header: "X-Forwarded-Email".into(),
            groups_header: Some("X-Forwarded-Groups".into()),
            trusted: vec![],
            roles: BTreeMap::from([("oncall".into(), Role::Responder), ("leads".into(), Role::Admin)]),
            default_role: None,
            secret: None,
            secret_header: "X-Medic-Proxy-Secret".into(),
        };
        assert_eq!(proxy.role_of(["dev", " oncall"]), Some(Role::Responder));
        assert_eq!(proxy.role_of(["oncall", "leads"]), Some(Role::Admin));
        assert_eq!(proxy.role_of(["dev"]), None);
        let open = Proxy {
            default_role: Some(Role::Viewer),
            ..proxy
        };
        assert_eq!(open.role_of(["dev"]), Some(Role::Viewer));
    }
}
