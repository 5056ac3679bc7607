//! What an SLO report reads from medic's history: the incidents whose firing overlaps a
//! period, with their alerts' labels (matched against each SLO's matchers by the caller), and
//! the remediations whose verification found the problem still there.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tokio_postgres::types::Json;

use super::{database::Store, error::StoreError};
use crate::domain::Verification;

/// Most incidents one report reads: a period with more is summarised by its first ones.
pub const MAX_INCIDENTS: i64 = 5000;

/// An incident that fired during a period.
#[derive(Debug, Clone)]
pub struct PeriodIncident {
    pub id: i64,
    /// When its firing began: its earliest alert's `startsAt` (Alertmanager's word), or when
    /// medic recorded it if that is earlier.
    pub started_at: DateTime<Utc>,
    /// `None` while it is still firing.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Each alert's labels and annotations.
    pub alerts: Vec<AlertLabels>,
}

/// One alert of an incident, as far as a report needs it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AlertLabels {
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A remediation that ran, and whose verification says the problem stayed.
#[derive(Debug, Clone)]
pub struct UnfixedRemediation {
    pub id: i64,
    pub incident_id: i64,
    pub action: String,
    pub target: String,
    pub started_at: DateTime<Utc>,
}

const OVERLAPPING: &str = "
SELECT i.id, least(i.created_at, min(a.starts_at)) AS started_at, i.resolved_at,
       coalesce(jsonb_agg(jsonb_build_object('labels', a.labels, 'annotations', a.annotations))
                FILTER (WHERE a.incident_id IS NOT NULL), '[]'::jsonb) AS alerts
  FROM incidents i
  LEFT JOIN alerts a ON a.group_id = i.group_id AND a.incident_id = i.id
 WHERE i.resolved_at IS NULL OR i.resolved_at > $1
 GROUP BY i.id
HAVING least(i.created_at, min(a.starts_at)) < $2
 ORDER BY started_at, i.id
 LIMIT $3";

const UNFIXED: &str = "
SELECT r.id, r.incident_id, r.action, r.target, r.started_at
  FROM remediations r
 WHERE r.incident_id = ANY($1) AND r.verification = $2
 ORDER BY r.started_at, r.id";

impl Store {
    /// Incidents whose firing overlaps `[start, end)`: begun before `end`, and not resolved
    /// by `start`. Oldest first.
    pub async fn incidents_overlapping(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<PeriodIncident>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(OVERLAPPING, &[&start, &end, &MAX_INCIDENTS]).await?;
        Ok(rows
            .iter()
            .map(|row| {
                let Json(alerts): Json<Vec<AlertLabels>> = row.get("alerts");
                PeriodIncident {
                    id: row.get("id"),
                    started_at: row.get("started_at"),
                    resolved_at: row.get("resolved_at"),
                    alerts,
                }
            })
            .collect())
    }

    /// Remediations of these incidents verified as `not_fixed`, oldest first.
    pub async fn unfixed_remediations(
        &self,
        incident_ids: &[i64],
    ) -> Result<Vec<UnfixedRemediation>, StoreError> {
        if incident_ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let not_fixed = Verification::NotFixed.as_str();
        let rows = client.query(UNFIXED, &[&incident_ids, &not_fixed]).await?;
        Ok(rows
            .iter()
            .map(|row| UnfixedRemediation {
                id: row.get("id"),
                incident_id: row.get("incident_id"),
                action: row.get("action"),
                target: row.get("target"),
                started_at: row.get("started_at"),
            })
            .collect())
    }
}
