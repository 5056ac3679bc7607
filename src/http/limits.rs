//! How many reads one caller may have in flight (`server.read_concurrency_per_user`): a person
//! or a script searching in a loop gets 429 (`Retry-After: 1`) past their share, and never
//! holds every connection of the read pool. A user is counted by name (the same person on
//! several tabs or scripts shares one count), an anonymous caller by source address.
//! Alertmanager's credential and the signed integrations never pass here.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
    middleware::Next,
    web, Error, HttpMessage,
};
use sha2::{Digest, Sha256};

use super::{
    auth::{Authenticator, Caller},
    error::ApiError,
};
use crate::domain::Auth;

/// Reads in flight, by caller.
#[derive(Debug)]
pub struct ReadLimits {
    per_caller: usize,
    in_flight: Mutex<HashMap<String, usize>>,
}

/// One read admitted; its caller's count goes down when it is dropped.
struct Permit {
    limits: Arc<ReadLimits>,
    key: String,
}

impl ReadLimits {
    /// At most `per_caller` reads in flight per caller.
    pub fn new(per_caller: usize) -> Arc<Self> {
        Arc::new(Self {
            per_caller,
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    fn enter(self: &Arc<Self>, key: String) -> Option<Permit> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let count = in_flight.entry(key.clone()).or_insert(0);
        if *count >= self.per_caller {
            return None;
        }
        *count += 1;
        Some(Permit {
            limits: self.clone(),
            key,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut in_flight = self.limits.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = in_flight.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.key);
            }
        }
    }
}

/// Middleware on an API route, inside the authentication that put the caller in the request:
/// a read (GET, HEAD) by a person counts against their share.
pub async fn api_reads(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let key = match req.extensions().get::<Caller>() {
        Some(Caller::Person(person)) if person.auth == Auth::Anonymous => {
            Some(format!("address {}", person.address))
        }
        Some(Caller::Person(person)) => Some(format!("user {}", person.name)),
        Some(Caller::Alertmanager) | None => None,
    };
    admit(req, key, next).await
}

/// Middleware on the console: its pages find out who is looking themselves, so a read is
/// counted by what identifies the viewer before that: the trusted proxy's user, else the
/// session cookie, else the source address.
pub async fn console_reads(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let key = console_key(&req);
    admit(req, Some(key), next).await
}

fn console_key(req: &ServiceRequest) -> String {
    let proxied = req
        .app_data::<web::Data<Authenticator>>()
        .and_then(|auth| auth.proxy_identity(req.request()).ok().flatten());
    if let Some(person) = proxied {
        return format!("user {}", person.name);
    }
    let session = req
        .headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| matches!(*name, "medic_session" | "__Host-medic_session"));
    match session {
        // Kept by digest: a session id is a credential.
        Some((_, id)) => format!("session {}", hex::encode(Sha256::digest(id.as_bytes()))),
        None => format!(
            "address {}",
            req.peer_addr()
                .map_or_else(|| "unknown".into(), |a| a.ip().to_string())
        ),
    }
}

/// Runs a read within its caller's share, or answers 429.
async fn admit(
    req: ServiceRequest,
    key: Option<String>,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let limits = req
        .app_data::<web::Data<ReadLimits>>()
        .map(|l| l.clone().into_inner());
    let (Some(key), true, Some(limits)) = (key, read, limits) else {
        return next.call(req).await;
    };
    let Some(_permit) = limits.enter(key) else {
        let route = req.match_pattern().unwrap_or_default();
        tracing::info!(
            route,
            "a read refused: its caller has as many in flight as it may"
        );
        return Err(ApiError::TooManyRequests(format!(
            "at most {} reads in flight per caller; retry in a second",
            limits.per_caller
        ))
        .into());
    };
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_has_its_share_and_gets_it_back_as_reads_end() {
        let limits = ReadLimits::new(2);
        let first = limits.enter("user vera".into());
        let second = limits.enter("user vera".into());
        assert!(first.is_some() && second.is_some());
        assert!(limits.enter("user vera".into()).is_none());
        assert!(limits.enter("user alice".into()).is_some());
        drop(first);
        assert!(limits.enter("user vera".into()).is_some());
        drop(second);
        assert!(
            limits.in_flight.lock().unwrap().is_empty(),
            "no caller is kept once done"
        );
    }
}
