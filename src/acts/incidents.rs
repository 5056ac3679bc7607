//! Acts on an incident: acknowledge it (or hear that PagerDuty resolved it), silence its
//! alerts in Alertmanager, end that silence.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::door::{require, Acts, Refused};
use crate::{
    domain::{Act, Actor, Role, Text},
    silences::{self, SilenceError},
    store::{
        integrations::SilenceRecord,
        timers::{AckResult, Acknowledgement},
    },
};

/// What an acknowledgement found and did.
#[derive(Debug)]
pub struct Acknowledged {
    /// Who acknowledged it, when and how: this actor, or whoever did first.
    pub ack: Acknowledgement,
    /// False when it was acknowledged already (nothing changed).
    pub newly: bool,
    /// Pending escalations and remediations stopped.
    pub timers_cancelled: i32,
}

/// A silence made or extended.
#[derive(Debug)]
pub struct Silenced {
    pub record: SilenceRecord,
    /// An active silence medic made for the incident was extended (or already lasted long
    /// enough) instead of a second one being made.
    pub extended: bool,
    /// False when the silence in force already lasted long enough: nothing changed.
    pub changed: bool,
}

impl Acts {
    /// Acknowledges a firing incident: pending escalations and remediations stop, everyone told
    /// of the incident hears who took it. Acknowledging again changes nothing.
    pub async fn acknowledge(
        &self,
        actor: &Actor,
        incident: i64,
        note: Option<Text>,
    ) -> Result<Acknowledged, Refused> {
        let result = self.stop(actor, incident, note, Act::Acknowledge).await;
        self.count(Act::Acknowledge, actor, &result, |done| done.newly);
        result
    }

    /// PagerDuty says the incident is resolved there: medic stops as for an acknowledgement,
    /// until Alertmanager says it resolved; the timeline says it once.
    pub async fn resolve_elsewhere(&self, actor: &Actor, incident: i64) -> Result<Acknowledged, Refused> {
        let note = Text::parse("note", Some("resolved in PagerDuty")).ok().flatten();
        let result = self.stop(actor, incident, note, Act::ResolveElsewhere).await;
        self.count(Act::ResolveElsewhere, actor, &result, |done| done.newly);
        result
    }

    async fn stop(
        &self,
        actor: &Actor,
        incident: i64,
        note: Option<Text>,
        act: Act,
    ) -> Result<Acknowledged, Refused> {
        require(actor, Role::Responder)?;
        let note = note.as_ref().map(AsRef::as_ref);
        match self.store.acknowledge(incident, actor, note, act).await? {
            AckResult::NotFound => Err(Refused::NotFound(format!("no incident {incident}"))),
            AckResult::Resolved => Err(Refused::Conflict(format!(
                "incident {incident} is resolved; there is nothing to acknowledge"
            ))),
            AckResult::Acknowledged {
                ack,
                newly,
                cancelled,
                scheduled,
            } => {
                if newly {
                    self.metrics.timers.acknowledged(cancelled, scheduled);
                }
                tracing::info!(incident_id = incident, act = act.as_str(), by = %actor.name, role = %actor.role,
                    auth = actor.auth.as_str(), address = %actor.address, via = %actor.surface, newly,
                    timers_cancelled = cancelled, "incident acknowledged");
                Ok(Acknowledged {
                    ack,
                    newly,
                    timers_cancelled: cancelled,
                })
            }
        }
    }

    /// Silences the incident's alerts in Alertmanager for `duration`; if medic already holds an
    /// active silence for it, that one is extended to the later end instead.
    pub async fn silence(
        &self,
        actor: &Actor,
        incident: i64,
        duration: Duration,
        note: Option<Text>,
    ) -> Result<Silenced, Refused> {
        let result = async {
            require(actor, Role::Responder)?;
            let note = note.as_ref().map(AsRef::as_ref);
            self.make_silence(actor, incident, duration, note).await
        }
        .await;
        self.count(Act::Silence, actor, &result, |done| done.changed);
        result
    }

    /// Expires the incident's silence in force.
    pub async fn end_silence(&self, actor: &Actor, incident: i64) -> Result<SilenceRecord, Refused> {
        let result = async {
            require(actor, Role::Responder)?;
            let alertmanager = self.alertmanager();
            alertmanager.endpoint.ok_or(SilenceError::NotConfigured)?;
            let current = self
                .active_silence(incident)
                .await?
                .ok_or(SilenceError::NoSilence(incident))?;
            alertmanager.expire(&current.silence_id).await?;
            let record = self
                .store
                .expire_silence(incident, &current.silence_id, actor)
                .await?;
            tracing::info!(incident_id = incident, silence_id = %current.silence_id, by = %actor.name,
                via = %actor.surface, "silence expired");
            Ok(record)
        }
        .await;
        self.count(Act::Unsilence, actor, &result, |_| true);
        result
    }
}

impl Acts {
    async fn make_silence(
        &self,
        actor: &Actor,
        incident: i64,
        duration: Duration,
        note: Option<&str>,
    ) -> Result<Silenced, Refused> {
        if duration < Duration::from_secs(60) || duration > silences::MAX_DURATION {
            return Err(SilenceError::BadDuration.into());
        }
        let alertmanager = self.alertmanager();
        alertmanager.endpoint.ok_or(SilenceError::NotConfigured)?;
        let labels = self
            .store
            .silence_labels(incident)
            .await?
            .ok_or(SilenceError::NoIncident(incident))?;
        if labels.is_empty() {
            return Err(SilenceError::NoLabels(incident).into());
        }
        let ends_at = Utc::now() + duration;
        let current = self.active_silence(incident).await?;
        if let Some(current) = current.as_ref().filter(|c| c.ends_at >= ends_at) {
            return Ok(Silenced {
                record: current.clone(),
                extended: true,
                changed: false,
            });
        }
        let (silence, replaces) = match &current {
            Some(current) => match extended(&alertmanager.get(&current.silence_id).await?, ends_at) {
                Some(silence) => (silence, Some(current.silence_id.as_str())),
                // Expired in Alertmanager behind medic's back: a new one.
                None => (fresh(&labels, ends_at, actor, incident, note), None),
            },
            None => (fresh(&labels, ends_at, actor, incident, note), None),
        };
        let id = alertmanager.create(&silence).await?;
        let record = self
            .store
            .record_silence(incident, &id, ends_at, note, actor, replaces)
            .await?;
        tracing::info!(incident_id = incident, silence_id = %id, extended = replaces.is_some(), by = %actor.name,
            role = %actor.role, via = %actor.surface, ends_at = %ends_at, "incident silenced in Alertmanager");
        Ok(Silenced {
            record,
            extended: replaces.is_some(),
            changed: true,
        })
    }

    /// The silence medic made for the incident that is in force now, if any.
    async fn active_silence(&self, incident: i64) -> Result<Option<SilenceRecord>, Refused> {
        let now = Utc::now();
        Ok(self
            .store
            .silences(incident)
            .await?
            .into_iter()
            .find(|s| s.expired_at.is_none() && s.ends_at > now))
    }
}

fn fresh(
    labels: &crate::alertmanager::KV,
    ends_at: DateTime<Utc>,
    actor: &Actor,
    incident: i64,
    note: Option<&str>,
) -> Value {
    let comment = match note {
        Some(note) => format!("medic incident {incident}: {note}"),
        None => format!("medic incident {incident}"),
    };
    silences::new_silence(labels, ends_at, &actor.name, &comment)
}

/// The silence as Alertmanager has it, ending at `ends_at` instead; None if it is no longer
/// active (Alertmanager would refuse to change it).
fn extended(silence: &Value, ends_at: DateTime<Utc>) -> Option<Value> {
    if silence["status"]["state"] != "active" {
        return None;
    }
    let mut silence = silence.clone();
    let fields = silence.as_object_mut()?;
    fields.remove("status");
    fields.remove("updatedAt");
    fields.insert("endsAt".into(), serde_json::json!(ends_at));
    Some(silence)
}
