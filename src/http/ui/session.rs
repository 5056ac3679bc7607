//! Who is looking at the console, and the CSRF token their forms carry.
//!
//! - With `server.auth.proxy` configured, the person the trusted proxy names on each request;
//!   there is no sign-in page.
//! - With `server.auth.jwt` configured, a JSON Web Token in `Authorization: Bearer` (as
//!   oauth2-proxy's `--pass-authorization-header` sends it) names the person on each request,
//!   verified by medic itself: no session, CSRF by double submit as for the proxy.
//! - Otherwise `/ui/login` takes a user's API token (Alertmanager's credential cannot sign
//!   in) and starts a session: a random id in the `medic_session` cookie (HttpOnly,
//!   SameSite=Strict, path `/ui`, 12 hours), kept in Postgres by its SHA-256 with its own CSRF
//!   token. The user's role is looked up in the settings on every request.
//! - Proxy and anonymous viewers have no stored session: their CSRF token is a random value in
//!   the `medic_csrf` cookie that forms repeat (the double-submit pattern).
//!
//! A session ends with the credential it was made from: it keeps the token's SHA-256, and a
//! request after the token was rotated, emptied or deleted ends it and shows the sign-in page.
//!
//! Served over HTTPS (medic's own TLS, or `X-Forwarded-Proto: https` / `Forwarded: proto=https`
//! from the trusted proxy, never from anyone else), cookies are `Secure` with the `__Host-`
//! prefix; on plain HTTP (a local trial) they keep their plain names, path `/ui`.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use chrono::{Duration, Utc};
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    failure::Failure,
    layout::{self, see_other},
    viewer::Viewer,
};
use crate::{
    domain::{Actor, Auth, Role, Surface},
    http::{
        auth::{Authenticator, Refusal},
        error::ApiError,
        state::State,
    },
    store::console::Session,
};

const SESSION_COOKIE: &str = "medic_session";
const CSRF_COOKIE: &str = "medic_csrf";
/// Failed sign-ins a source address may make in a minute.
const MAX_FAILED_SIGN_INS: i64 = 10;
/// How long a sign-in lasts.
const SESSION_HOURS: i64 = 12;

/// Someone acting from the console.
fn console_actor(name: String, role: Role, auth: Auth, address: String) -> Actor {
    Actor {
        name,
        role,
        auth,
        address,
        surface: Surface::Console,
        issuer: None,
    }
}

/// Who is looking: from the proxy, a bearer JSON Web Token, the session cookie, or anonymous
/// if the settings allow it; otherwise to the sign-in page.
pub(super) async fn viewer(req: &HttpRequest, state: &State) -> Result<Viewer, Failure> {
    let auth = authenticator(req)?;
    let proxied = if auth.has_proxy() {
        auth.proxy_identity(req).map_err(Failure::forbidden)?
    } else {
        None
    };
    if let Some(person) = proxied {
        return Ok(double_submit(
            req,
            Actor {
                surface: Surface::Console,
                ..person
            },
        ));
    }
    if let Some(person) = bearer(auth, req).await? {
        return Ok(double_submit(req, person));
    }
    if auth.has_proxy() {
        return Err(ApiError::Unauthorized {
            challenge: String::new(),
        }
        .into());
    }
    if let Some(id) = cookie(req, SESSION_COOKIE) {
        let session = state
            .store
            .session(&digest(&id))
            .await
            .map_err(|e| Failure::store(e, state))?;
        if let Some(session) = session {
            let user = auth.user_named(&session.user).filter(|user| {
                session
                    .credential
                    .as_deref()
                    .is_some_and(|credential| user.token.has_fingerprint(credential))
            });
            let Some(user) = user else {
                // The token it was made from was rotated or revoked: so is the session.
                tracing::warn!(user = %session.user, "console session ended: its token no longer works");
                state
                    .store
                    .end_session(&digest(&id))
                    .await
                    .map_err(|e| Failure::store(e, state))?;
                return Err(Failure::SignIn {
                    htmx: req.headers().contains_key("hx-request"),
                });
            };
            let person = console_actor(user.name.clone(), user.role, Auth::Token, address(req));
            return Ok(Viewer {
                person,
                csrf: session.csrf,
                signed_in: true,
                set_cookie: None,
            });
        }
    }
    if auth.allows_anonymous() {
        let person = console_actor("anonymous".into(), Role::Admin, Auth::Anonymous, address(req));
        return Ok(double_submit(req, person));
    }
    Err(Failure::SignIn {
        htmx: req.headers().contains_key("hx-request"),
    })
}

/// The person a bearer JSON Web Token names; a token that does not verify is a 401, not the
/// sign-in page: whoever sent it (a proxy) expects it to be enough.
async fn bearer(auth: &Authenticator, req: &HttpRequest) -> Result<Option<Actor>, Failure> {
    match auth.bearer_person(req, address(req)).await {
        Ok(person) => Ok(person),
        Err(Refusal::Forbidden(reason)) => Err(Failure::forbidden(reason)),
        Err(Refusal::Unknown) => Err(ApiError::Unauthorized {
            challenge: r#"Bearer realm="medic""#.into(),
        }
        .into()),
    }
}

fn authenticator(req: &HttpRequest) -> Result<&Authenticator, Failure> {
    req.app_data::<web::Data<Authenticator>>()
        .map(|data| data.get_ref())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no Authenticator in app data")).into())
}

/// A viewer without a stored session: the CSRF token is the `medic_csrf` cookie's value.
fn double_submit(req: &HttpRequest, person: Actor) -> Viewer {
    let (csrf, set_cookie) = match cookie(req, CSRF_COOKIE).filter(|c| c.len() == 64) {
        Some(csrf) => (csrf, None),
        None => {
            let csrf = random_hex();
            let set = set_cookie(req, CSRF_COOKIE, &csrf, SESSION_HOURS * 3600);
            (csrf, Some(set))
        }
    };
    Viewer {
        person,
        csrf,
        signed_in: false,
        set_cookie,
    }
}

fn address(req: &HttpRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
}

/// Whether the browser reached medic over HTTPS: medic's own TLS, or the trusted proxy (its
/// address and secret) says so. A header from anyone else says nothing.
fn https(req: &HttpRequest) -> bool {
    if req.app_config().secure() {
        return true;
    }
    let forwarded = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    let says_https = forwarded("x-forwarded-proto").is_some_and(|p| p.trim() == "https")
        || forwarded("forwarded").is_some_and(|f| f.split([';', ',']).any(|kv| kv.trim() == "proto=https"));
    says_https && authenticator(req).is_ok_and(|auth| auth.came_through_proxy(req))
}

/// A cookie's name: over HTTPS with the `__Host-` prefix (the browser then insists on Secure,
/// path `/` and no domain, so no other host or path can set it).
fn cookie_name(req: &HttpRequest, name: &str) -> String {
    if https(req) {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

/// A cookie's value from the `Cookie` header (actix-web's cookie feature is not compiled in).
fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    let name = cookie_name(req, name);
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name.as_str())
        .map(|(_, value)| value.to_owned())
}

fn set_cookie(req: &HttpRequest, name: &str, value: &str, max_age: i64) -> String {
    if https(req) {
        format!("__Host-{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict; Secure")
    } else {
        format!("{name}={value}; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict")
    }
}

fn digest(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

/// 32 random bytes, in hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // The operating system's generator failing is a broken host: no session without it.
    if let Err(e) = getrandom::getrandom(&mut bytes) {
        tracing::error!(error = %e, "no randomness for a console token");
        return String::new();
    }
    hex::encode(bytes)
}

/// `GET /ui/login`: the sign-in form (to the incidents when a proxy signs people in).
pub(super) async fn login_page(req: HttpRequest) -> Result<HttpResponse, Failure> {
    if authenticator(&req)?.has_proxy() {
        return Ok(see_other("/ui/"));
    }
    Ok(login_form(actix_web::http::StatusCode::OK, None))
}

fn login_form(status: actix_web::http::StatusCode, problem: Option<&str>) -> HttpResponse {
    let body = html! {
        h1 { "Sign in to medic" }
        form.login method="post" action="/ui/login" {
            @if let Some(problem) = problem {
                p.problem role="alert" { (problem) }
            }
            label for="token" { "Your API token" }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            button type="submit" { "Sign in" }
        }
        p.hint { "The token is the one medic's settings give you under " code { "server.auth.users" } "." }
    };
    layout::respond(status, None, "Sign in", body)
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
}

/// `POST /ui/login`: a user's token starts a session; anything else shows the form again.
pub(super) async fn login(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let auth = authenticator(&req)?;
    if auth.has_proxy() {
        return Err(ApiError::NotFound("sign in through the proxy".into()).into());
    }
    let from = address(&req);
    let (failures, wait) = state
        .store
        .login_failures(&from)
        .await
        .map_err(|e| Failure::store(e, &state))?;
    if failures >= MAX_FAILED_SIGN_INS {
        tracing::warn!(address = %from, failures, "console sign-in throttled");
        let mut page = login_form(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed sign-ins from your address: wait a minute."),
        );
        page.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
        return Ok(page);
    }
    let Some(user) = auth.user_by_token(form.token.trim()) else {
        tracing::warn!(address = %from, "console sign-in with an unknown token refused");
        state
            .store
            .record_login_failure(&from)
            .await
            .map_err(|e| Failure::store(e, &state))?;
        return Ok(login_form(
            actix_web::http::StatusCode::UNAUTHORIZED,
            Some("That token is not a user's token."),
        ));
    };
    let id = random_hex();
    let csrf = random_hex();
    if id.is_empty() || csrf.is_empty() {
        return Err(ApiError::Internal(anyhow::anyhow!("no randomness for a session")).into());
    }
    let session = Session {
        user: user.name.clone(),
        csrf,
        expires_at: Utc::now() + Duration::hours(SESSION_HOURS),
        credential: user.token.fingerprint(),
    };
    state
        .store
        .create_session(&digest(&id), &session, &address(&req))
        .await
        .map_err(|e| Failure::store(e, &state))?;
    tracing::info!(user = %user.name, role = %user.role, address = %address(&req), "signed in to the console");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/"))
        .insert_header((
            header::SET_COOKIE,
            set_cookie(&req, SESSION_COOKIE, &id, SESSION_HOURS * 3600),
        ))
        .finish())
}

/// A form that carries only its CSRF token.
#[derive(Deserialize)]
pub(super) struct CsrfForm {
    pub csrf: Option<String>,
}

/// `POST /ui/logout`: ends the session and clears its cookie.
pub(super) async fn logout(
    req: HttpRequest,
    form: web::Form<CsrfForm>,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    viewer.check_csrf(form.csrf.as_deref())?;
    if let Some(id) = cookie(&req, SESSION_COOKIE) {
        state
            .store
            .end_session(&digest(&id))
            .await
            .map_err(|e| Failure::store(e, &state))?;
    }
    tracing::info!(user = %viewer.person.name, "signed out of the console");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/login"))
        .insert_header((header::SET_COOKIE, set_cookie(&req, SESSION_COOKIE, "", 0)))
        .finish())
}
