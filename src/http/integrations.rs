//! What Slack and PagerDuty send back: `POST /integrations/slack/interactions` (the buttons
//! of medic's Slack messages) and `POST /integrations/pagerduty` (PagerDuty Webhooks v3).
//! Neither carries a medic credential: each is authenticated by its signature over the raw
//! body (HMAC-SHA256, compared in constant time), and anything unsigned, mis-signed or stale
//! is 401. The person acting is the medic user mapped from their Slack or PagerDuty ID.

use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{KeyInit, Mac};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{ApiError, State};
use crate::{
    acts::Refused,
    domain::{Actor, Auth, HumanDuration, Role, Surface},
    notify::{incident_of, slack_app::Api},
    plan::{Known, NotifierEndpoint},
};

type HmacSha256 = hmac::Hmac<Sha256>;

/// Slack's requests older (or newer) than this are replays: refused.
const SLACK_MAX_SKEW_SECONDS: i64 = 300;

fn unauthorized(reason: &str) -> ApiError {
    tracing::warn!(reason, "refused an integration request");
    ApiError::Unauthorized {
        challenge: "Signature".into(),
    }
}

/// Whether `signature` (hex) is the HMAC-SHA256 of `message` under `secret`.
fn signed(secret: &[u8], message: &[&[u8]], signature: &str) -> bool {
    let Ok(signature) = hex::decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    for part in message {
        mac.update(part);
    }
    mac.verify_slice(&signature).is_ok()
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The Slack app whose signing secret signed this request, if one did and it is fresh.
fn slack_signer<'a>(
    req: &HttpRequest,
    body: &[u8],
    state: &'a State,
) -> Result<&'a NotifierEndpoint, ApiError> {
    let timestamp =
        header(req, "X-Slack-Request-Timestamp").ok_or_else(|| unauthorized("no Slack timestamp"))?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| unauthorized("bad Slack timestamp"))?;
    if (chrono::Utc::now().timestamp() - at).abs() > SLACK_MAX_SKEW_SECONDS {
        return Err(unauthorized("Slack timestamp more than 5 minutes away"));
    }
    let signature = header(req, "X-Slack-Signature").ok_or_else(|| unauthorized("no Slack signature"))?;
    let hex = signature
        .strip_prefix("v0=")
        .ok_or_else(|| unauthorized("not a v0 Slack signature"))?;
    state
        .notifiers
        .slack_apps()
        .find(|app| {
            app.signing_secret.as_ref().is_some_and(|secret| {
                signed(
                    secret.expose_secret().as_bytes(),
                    &[b"v0:", timestamp.as_bytes(), b":", body],
                    hex,
                )
            })
        })
        .ok_or_else(|| unauthorized("wrong Slack signature"))
}

/// A click on one of medic's buttons in Slack. Answered at once (Slack waits 3 seconds); the
/// work is done after, and the person is told in an ephemeral message if it could not be.
pub async fn slack_interactions(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let app = slack_signer(&req, &body, &state)?.clone();
    #[derive(serde::Deserialize)]
    struct Form {
        payload: String,
    }
    let form: Form = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ApiError::BadRequest(format!("expected a form with a payload: {e}")))?;
    let payload: Value = serde_json::from_str(&form.payload)
        .map_err(|e| ApiError::BadRequest(format!("payload is not JSON: {e}")))?;
    let Some(click) = Click::read(&payload) else {
        // Other interaction types (shortcuts, view submissions) are not medic's.
        return Ok(HttpResponse::Ok().finish());
    };
    let state = state.into_inner();
    tokio::spawn(async move {
        let outcome = click.perform(&state).await;
        let api = Api {
            client: state.notifiers.client(),
            endpoint: &app,
        };
        match outcome {
            Ok(None) => {}
            // A silence changes nothing the message shows: the thread says who silenced it.
            Ok(Some(said)) => {
                let body = match &click.message_ts {
                    Some(ts) => json!({"channel": click.channel, "thread_ts": ts, "text": said}),
                    None => json!({"channel": click.channel, "text": said}),
                };
                if let Err(e) = api.call("chat.postMessage", &body).await {
                    tracing::warn!(error = %e.reason, "telling the channel what was done failed");
                }
            }
            Err(told) => {
                tracing::info!(slack_user = %click.user, action = %click.action, reason = %told, "Slack action refused");
                let body = json!({"channel": click.channel, "user": click.user, "text": told});
                if let Err(e) = api.call("chat.postEphemeral", &body).await {
                    tracing::warn!(error = %e.reason, "telling a Slack user why failed");
                }
            }
        }
    });
    Ok(HttpResponse::Ok().finish())
}

/// One button click, as Slack's `block_actions` payload says it.
#[derive(Debug, Clone)]
struct Click {
    user: String,
    channel: String,
    action: String,
    value: String,
    /// The clicked message's `ts`, for a reply in its thread.
    message_ts: Option<String>,
}

impl Click {
    fn read(payload: &Value) -> Option<Click> {
        if payload["type"] != "block_actions" {
            return None;
        }
        let action = &payload["actions"][0];
        Some(Click {
            user: payload["user"]["id"].as_str()?.to_owned(),
            channel: payload["channel"]["id"]
                .as_str()
                .or_else(|| payload["container"]["channel_id"].as_str())
                .unwrap_or_default()
                .to_owned(),
            action: action["action_id"].as_str()?.to_owned(),
            value: action["value"].as_str().unwrap_or_default().to_owned(),
            message_ts: payload["container"]["message_ts"]
                .as_str()
                .or_else(|| payload["message"]["ts"].as_str())
                .map(str::to_owned),
        })
    }

    /// Does what the button says, as the medic user the Slack user is: Ok with what to tell
    /// the channel when the message's own update will not show it, Err telling them why not.
    async fn perform(&self, state: &State) -> Result<Option<String>, String> {
        let Some(known) = state.integrations.slack_users.get(&self.user) else {
            return Err(format!(
                "medic does not know your Slack user ({}): an admin can add it as slack_user_id of your medic user",
                self.user
            ));
        };
        let actor = Actor {
            name: known.name.clone(),
            role: known.role,
            auth: Auth::Slack,
            address: "slack".into(),
            surface: Surface::Slack,
            issuer: None,
        };
        let id = |text: &str| text.parse::<i64>().map_err(|_| format!("not an id: {text:?}"));
        let acts = &state.acts;
        match self.action.as_str() {
            "medic_ack" => {
                let incident = id(&self.value)?;
                let done = acts
                    .acknowledge(&actor, incident, None)
                    .await
                    .map_err(|e| e.to_string())?;
                if done.newly {
                    Ok(None)
                } else {
                    Err(format!(
                        "incident {incident} was acknowledged already, by {}",
                        done.ack.by
                    ))
                }
            }
            "medic_silence" => {
                let (incident, duration) = self.value.split_once(':').unwrap_or((&self.value, "1h"));
                let incident = id(incident)?;
                let duration = HumanDuration::parse(duration).map_err(|e| e.to_string())?;
                let made = acts
                    .silence(&actor, incident, duration.0, None)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Some(format!(
                    "Silenced in Alertmanager by {} until {} (silence {})",
                    actor.name,
                    made.record.ends_at.format("%Y-%m-%d %H:%M UTC"),
                    made.record.silence_id
                )))
            }
            "medic_approve" | "medic_reject" => {
                let remediation = id(&self.value)?;
                let approve = self.action == "medic_approve";
                acts.decide(&actor, remediation, approve, None)
                    .await
                    .map(|_| None)
                    .map_err(|e| e.to_string())
            }
            other => Err(format!("medic has no action {other:?}")),
        }
    }
}

/// PagerDuty Webhooks v3: `incident.acknowledged` acknowledges the medic incident as the
/// PagerDuty user; `incident.resolved` stops its escalations and remediation. Events about
/// another installation's incidents, and other event types, are answered 200 and ignored.
pub async fn pagerduty(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let signatures =
        header(&req, "X-PagerDuty-Signature").ok_or_else(|| unauthorized("no PagerDuty signature"))?;
    let secrets = &state.integrations.pagerduty_secrets;
    let valid = signatures
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("v1="))
        .any(|hex| {
            secrets
                .iter()
                .any(|secret| signed(secret.expose_secret().as_bytes(), &[&body], hex))
        });
    if !valid {
        return Err(unauthorized("wrong PagerDuty signature"));
    }
    let event: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a PagerDuty webhook: {e}")))?;
    let event = &event["event"];
    let kind = event["event_type"].as_str().unwrap_or_default();
    let key = event["data"]["incident_key"].as_str().unwrap_or_default();
    let ignore = |why: &str| {
        tracing::info!(
            event_type = kind,
            incident_key = key,
            why,
            "PagerDuty event ignored"
        );
        Ok(HttpResponse::Ok().json(json!({"ignored": why})))
    };
    if !matches!(kind, "incident.acknowledged" | "incident.resolved") {
        return ignore("not an event medic acts on");
    }
    let Some(incident) = incident_of(&state.integrations.instance, key) else {
        return ignore("not an incident of this installation");
    };
    let agent = &event["agent"];
    let agent_id = agent["id"].as_str().unwrap_or_default();
    let (name, role) = match state.integrations.pagerduty_users.get(agent_id) {
        Some(Known { name, role }) => (name.clone(), *role),
        None => {
            let summary = agent["summary"].as_str().unwrap_or("a PagerDuty user");
            let summary: String = summary.chars().filter(|c| !c.is_control()).take(200).collect();
            (summary, Role::Responder)
        }
    };
    let actor = Actor {
        name: name.clone(),
        role,
        auth: Auth::PagerDuty,
        address: "pagerduty".into(),
        surface: Surface::PagerDuty,
        issuer: None,
    };
    let result = if kind == "incident.acknowledged" {
        state.acts.acknowledge(&actor, incident, None).await
    } else {
        state.acts.resolve_elsewhere(&actor, incident).await
    };
    let done = match result {
        Err(Refused::NotFound(_)) => "no such incident",
        Err(Refused::Conflict(_)) => "the incident is resolved already",
        Err(e) => return Err(ApiError::from_act(e, state.retry_after)),
        Ok(done) if !done.newly && kind == "incident.resolved" => {
            "recorded; escalation and remediation had stopped at its acknowledgement"
        }
        Ok(done) if !done.newly => "acknowledged already",
        Ok(_) => "stopped escalation and remediation",
    };
    tracing::info!(incident_id = incident, event_type = kind, by = %name, done, "PagerDuty event");
    Ok(HttpResponse::Ok().json(json!({"incident_id": incident, "result": done})))
}
