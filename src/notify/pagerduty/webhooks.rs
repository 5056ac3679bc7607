//! PagerDuty Webhooks v3, made into medic's acts: `incident.acknowledged` acknowledges the
//! medic incident as the PagerDuty user (mapped to a medic user, else a responder named by
//! PagerDuty's summary of them); `incident.resolved` stops its escalations and remediation.
//! Events about another installation's incidents, and other event types, are ignored.

use serde_json::Value;

use crate::{
    acts::{Acts, Refused},
    domain::{Actor, Auth, Role, Surface},
    notify::incident_of,
    plan::Integrations,
};

/// What became of one event.
#[derive(Debug)]
pub enum Handled {
    /// Ignored, and why.
    Ignored(&'static str),
    /// Acted on the incident; what it did.
    Done { incident: i64, result: &'static str },
}

/// Acts on one signed event; Err only for what a retry can fix (the database).
pub async fn handle(event: &Value, integrations: &Integrations, acts: &Acts) -> Result<Handled, Refused> {
    let event = &event["event"];
    let kind = event["event_type"].as_str().unwrap_or_default();
    let key = event["data"]["incident_key"].as_str().unwrap_or_default();
    if !matches!(kind, "incident.acknowledged" | "incident.resolved") {
        return Ok(ignored(kind, key, "not an event medic acts on"));
    }
    let Some(incident) = incident_of(&integrations.instance, key) else {
        return Ok(ignored(kind, key, "not an incident of this installation"));
    };
    let actor = actor(&event["agent"], integrations);
    let result = if kind == "incident.acknowledged" {
        acts.acknowledge(&actor, incident, None).await
    } else {
        acts.resolve_elsewhere(&actor, incident).await
    };
    let result = match result {
        Err(Refused::NotFound(_)) => "no such incident",
        Err(Refused::Conflict(_)) => "the incident is resolved already",
        Err(e) => return Err(e),
        Ok(done) if !done.newly && kind == "incident.resolved" => {
            "recorded; escalation and remediation had stopped at its acknowledgement"
        }
        Ok(done) if !done.newly => "acknowledged already",
        Ok(_) => "stopped escalation and remediation",
    };
    tracing::info!(incident_id = incident, event_type = kind, by = %actor.name, result, "PagerDuty event");
    Ok(Handled::Done { incident, result })
}

fn ignored(kind: &str, key: &str, why: &'static str) -> Handled {
    tracing::info!(
        event_type = kind,
        incident_key = key,
        why,
        "PagerDuty event ignored"
    );
    Handled::Ignored(why)
}

/// The medic user the PagerDuty user is, else a responder named by PagerDuty's summary.
fn actor(agent: &Value, integrations: &Integrations) -> Actor {
    let id = agent["id"].as_str().unwrap_or_default();
    let (name, role) = match integrations.pagerduty_users.get(id) {
        Some(known) => (known.name.clone(), known.role),
        None => {
            let summary = agent["summary"].as_str().unwrap_or("a PagerDuty user");
            let summary: String = summary.chars().filter(|c| !c.is_control()).take(200).collect();
            (summary, Role::Responder)
        }
    };
    Actor {
        name,
        role,
        auth: Auth::PagerDuty,
        issuer: None,
        address: "pagerduty".into(),
        surface: Surface::PagerDuty,
    }
}
