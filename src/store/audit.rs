//! The audit trail: every state change a person makes, with who, which role, how they were
//! authenticated, from where and when; written in the transaction that makes the change.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{database::Store, error::StoreError};

use crate::domain::Act;
pub use crate::domain::Actor;

/// One recorded action, as the API shows it.
#[derive(Debug, Serialize)]
pub struct AuditRecord {
    /// `acknowledge`, `approve`, `reject`, `pause`, `resume`, `maintenance_start`,
    /// `maintenance_end`.
    pub action: String,
    pub actor: String,
    pub role: String,
    /// How the person was authenticated.
    #[serde(rename = "auth")]
    pub via: String,
    /// The way the action came: `api`, `slack`, `pagerduty`, `console`.
    #[serde(rename = "via")]
    pub channel: String,
    pub address: String,
    /// The JWT issuer that vouched for the person, when `auth` is `jwt`.
    pub issuer: Option<String>,
    pub detail: Value,
    pub at: DateTime<Utc>,
}

/// Records `action` by `actor` (on an incident, if it is about one), in the caller's
/// transaction.
pub(super) async fn record(
    client: &tokio_postgres::Transaction<'_>,
    incident_id: Option<i64>,
    action: Act,
    actor: &Actor,
    detail: &Value,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO audit_events (incident_id, action, actor, role, via, address, detail, channel, issuer)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &incident_id,
                &action.as_str(),
                &actor.name,
                &actor.role.as_str(),
                &actor.auth.as_str(),
                &actor.address,
                detail,
                &actor.surface.as_str(),
                &actor.issuer,
            ],
        )
        .await?;
    Ok(())
}

impl Store {
    /// What people did to an incident, oldest first.
    pub async fn incident_audit(&self, incident_id: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT action, actor, role, via, address, detail, at, channel, issuer FROM audit_events
                  WHERE incident_id = $1 ORDER BY at, id",
                &[&incident_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| AuditRecord {
                action: row.get(0),
                actor: row.get(1),
                role: row.get(2),
                via: row.get(3),
                channel: row.get(7),
                address: row.get(4),
                issuer: row.get(8),
                detail: row.get(5),
                at: row.get(6),
            })
            .collect())
    }
}
