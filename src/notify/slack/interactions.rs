//! A click on one of medic's Slack buttons, made into medic's act as the medic user the Slack
//! user is mapped to. Slack waits three seconds for an answer, so the surface answers at once
//! and the act runs after ([`answer`]); what Slack's own message update will not show is said
//! in the message's thread, and a refusal only to the person who clicked (ephemeral).

use serde_json::{json, Value};

use super::{app::Api, buttons::Button, text::escape};
use crate::{
    acts::Acts,
    domain::{Actor, Auth, Surface},
    plan::{Known, SlackApp},
};

/// One button click, as Slack's `block_actions` payload says it.
#[derive(Debug, Clone)]
pub struct Click {
    /// The Slack user who clicked.
    pub user: String,
    pub channel: String,
    /// The button, or why it is none of medic's.
    pub button: Result<Button, String>,
    /// The clicked message's `ts`, for a reply in its thread.
    pub message_ts: Option<String>,
}

impl Click {
    /// The click in Slack's form body (`payload=<JSON>`); Ok(None) for interactions that are
    /// not button clicks (shortcuts, view submissions: not medic's).
    pub fn read(body: &[u8]) -> Result<Option<Click>, String> {
        #[derive(serde::Deserialize)]
        struct Form {
            payload: String,
        }
        let form: Form =
            serde_urlencoded::from_bytes(body).map_err(|e| format!("expected a form with a payload: {e}"))?;
        let payload: Value =
            serde_json::from_str(&form.payload).map_err(|e| format!("payload is not JSON: {e}"))?;
        if payload["type"] != "block_actions" {
            return Ok(None);
        }
        let action = &payload["actions"][0];
        let (Some(user), Some(action_id)) = (payload["user"]["id"].as_str(), action["action_id"].as_str())
        else {
            return Ok(None);
        };
        Ok(Some(Click {
            user: user.to_owned(),
            channel: payload["channel"]["id"]
                .as_str()
                .or_else(|| payload["container"]["channel_id"].as_str())
                .unwrap_or_default()
                .to_owned(),
            button: Button::parse(action_id, action["value"].as_str().unwrap_or_default()),
            message_ts: payload["container"]["message_ts"]
                .as_str()
                .or_else(|| payload["message"]["ts"].as_str())
                .map(str::to_owned),
        }))
    }

    /// Does what the button says, as `known` (the medic user of the Slack user): Ok with what
    /// to tell the channel when the message's own update will not show it, Err telling the
    /// person why not.
    async fn perform(&self, known: Option<&Known>, acts: &Acts) -> Result<Option<String>, String> {
        let Some(known) = known else {
            return Err(format!(
                "medic does not know your Slack user ({}): an admin can add it as slack_user_id of your medic user",
                self.user
            ));
        };
        let actor = Actor {
            name: known.name.clone(),
            role: known.role,
            auth: Auth::Slack,
            issuer: None,
            address: "slack".into(),
            surface: Surface::Slack,
        };
        let said = |e: crate::acts::Refused| e.to_string();
        match self.button.clone()? {
            Button::Acknowledge(incident) => {
                let done = acts.acknowledge(&actor, incident, None).await.map_err(said)?;
                if done.newly {
                    Ok(None)
                } else {
                    Err(format!(
                        "incident {incident} was acknowledged already, by {}",
                        done.ack.by
                    ))
                }
            }
            Button::Silence(incident, duration) => {
                let made = acts
                    .silence(&actor, incident, duration, None)
                    .await
                    .map_err(said)?;
                Ok(Some(format!(
                    "Silenced in Alertmanager by {} until {} (silence {})",
                    actor.name,
                    made.record.ends_at.format("%Y-%m-%d %H:%M UTC"),
                    made.record.silence_id
                )))
            }
            Button::Approve(remediation) => acts
                .decide(&actor, remediation, true, None)
                .await
                .map(|_| None)
                .map_err(said),
            Button::Reject(remediation) => acts
                .decide(&actor, remediation, false, None)
                .await
                .map(|_| None)
                .map_err(said),
        }
    }
}

/// Performs the click and tells Slack what came of it: in the message's thread when the
/// message itself will not show it, else nothing; a refusal to the person alone.
pub async fn answer(click: Click, known: Option<&Known>, acts: &Acts, api: Api<'_>) {
    let outcome = click.perform(known, acts).await;
    let (method, body) = match outcome {
        Ok(None) => return,
        Ok(Some(said)) => {
            let mut body = json!({"channel": click.channel, "text": escape(&said)});
            if let Some(ts) = &click.message_ts {
                body["thread_ts"] = json!(ts);
            }
            ("chat.postMessage", body)
        }
        Err(told) => {
            tracing::info!(slack_user = %click.user, reason = %told, "Slack action refused");
            let body = json!({"channel": click.channel, "user": click.user, "text": escape(&told)});
            ("chat.postEphemeral", body)
        }
    };
    if let Err(e) = api.call(method, &body).await {
        tracing::warn!(error = %e.reason, method, "telling Slack what came of a click failed");
    }
}

/// The app a click came through, for its answer.
pub fn api<'a>(client: &'a reqwest::Client, notifier: &'a str, app: &'a SlackApp) -> Api<'a> {
    Api {
        client,
        notifier,
        app,
    }
}
