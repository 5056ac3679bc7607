//! What Slack and PagerDuty send back: `POST /integrations/slack/interactions` (the buttons
//! of medic's Slack messages) and `POST /integrations/pagerduty` (PagerDuty Webhooks v3).
//! Neither carries a medic credential: each is authenticated by its signature over the raw
//! body (`notify::slack::signature`, `notify::pagerduty::signature`), and anything unsigned,
//! mis-signed, stale or replayed is 401. What a request asks for is an act of the person
//! mapped from their Slack or PagerDuty ID, done by `notify::{slack, pagerduty}`; these
//! handlers only read the request and answer.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{error::ApiError, state::State};
use crate::notify::{
    pagerduty::{self, webhooks::Handled},
    slack::{
        interactions::{self, Click},
        signature::{self, Signed, Unsigned},
    },
};

fn unauthorized(reason: &str) -> ApiError {
    tracing::warn!(reason, "refused an integration request");
    ApiError::Unauthorized {
        challenge: "Signature".into(),
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A click on one of medic's buttons in Slack. Answered at once (Slack waits 3 seconds); the
/// act is done after, and the person is told in an ephemeral message if it could not be.
pub async fn slack_interactions(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let signed = Signed {
        timestamp: header(&req, "X-Slack-Request-Timestamp"),
        signature: header(&req, "X-Slack-Signature"),
        body: &body,
    };
    let (notifier, app) = match signature::verify(state.notifiers.slack_apps(), &state.store, &signed).await {
        Ok((notifier, app)) => (notifier.to_owned(), app.clone()),
        Err(Unsigned::Refused(reason)) => return Err(unauthorized(reason)),
        Err(Unsigned::Store(e)) => return Err(ApiError::from_store(e, state.retry_after)),
    };
    let Some(click) = Click::read(&body).map_err(ApiError::BadRequest)? else {
        return Ok(HttpResponse::Ok().finish());
    };
    let state = state.into_inner();
    tokio::spawn(async move {
        let known = state.integrations.slack_users.get(&click.user);
        let api = interactions::api(state.notifiers.client(), &notifier, &app);
        interactions::answer(click, known, &state.acts, api).await;
    });
    Ok(HttpResponse::Ok().finish())
}

/// A PagerDuty webhook: 200 with what came of it (acted on, or ignored and why).
pub async fn pagerduty(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let signatures =
        header(&req, "X-PagerDuty-Signature").ok_or_else(|| unauthorized("no PagerDuty signature"))?;
    if !pagerduty::signature::signed(&state.integrations.pagerduty_secrets, signatures, &body) {
        return Err(unauthorized("wrong or malformed PagerDuty signature"));
    }
    let event: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a PagerDuty webhook: {e}")))?;
    match pagerduty::webhooks::handle(&event, &state.integrations, &state.acts).await {
        Ok(Handled::Ignored(why)) => Ok(HttpResponse::Ok().json(json!({"ignored": why}))),
        Ok(Handled::Done { incident, result }) => {
            Ok(HttpResponse::Ok().json(json!({"incident_id": incident, "result": result})))
        }
        Err(e) => Err(ApiError::from_act(e, state.retry_after)),
    }
}
