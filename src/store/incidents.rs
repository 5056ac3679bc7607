//! Incidents, their alerts and deliveries: recording a notification and reading them back.
//!
//! Recording is one transaction that first upserts the group's row. The upsert locks that row,
//! so deliveries of one group (retries, HA pairs, several replicas) are applied one after the
//! other, while the unique constraints make a duplicate change nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{types::Json, Row};

use super::{Store, StoreError};
use crate::{
    alertmanager::{Status, KV},
    domain::Notification,
};

/// What recording one notification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Recorded {
    pub incident_id: i64,
    /// A new incident was opened for this notification.
    pub new_incident: bool,
    /// Alert episodes seen for the first time.
    pub new_alerts: u32,
    /// Alert episodes that resolved with this notification.
    pub resolved_alerts: u32,
    /// The incident was closed by this notification.
    pub incident_resolved: bool,
    /// Nothing changed: a retry, an HA twin, or a repeat of a known state.
    pub duplicate: bool,
}

/// Which incident a notification belongs to.
enum Target {
    Existing { id: i64, open: bool },
    New(Status),
}

const UPSERT_GROUP: &str = "
    INSERT INTO alert_groups (receiver, group_key, group_labels) VALUES ($1, $2, $3)
    ON CONFLICT (receiver, group_key) DO UPDATE SET last_delivery_at = now()
    RETURNING id";

/// The group's open incident, the newest incident holding any of the notification's episodes,
/// and how many of its firing episodes are already known.
const LOOKUP: &str = "
    WITH n AS (SELECT * FROM unnest($2::text[], $3::timestamptz[], $4::text[]) AS n(fp, starts_at, status)),
         known AS (SELECT a.incident_id, n.status FROM alerts a
                   JOIN n ON a.fingerprint = n.fp AND a.starts_at = n.starts_at
                   WHERE a.group_id = $1)
    SELECT (SELECT id FROM incidents WHERE group_id = $1 AND status = 'firing'),
           (SELECT max(incident_id) FROM known),
           (SELECT count(*) FROM known WHERE status = 'firing')";

const CREATE_INCIDENT: &str = "
    INSERT INTO incidents (group_id, status, resolved_at, common_labels, common_annotations,
                           external_url, truncated_alerts)
    VALUES ($1, $2, CASE WHEN $2 = 'resolved' THEN now() END, $3, $4, $5, $6)
    RETURNING id";

/// New episodes join the target incident; known ones stay where they are. A resolved episode
/// is final: a late firing duplicate never re-opens it.
const UPSERT_ALERTS: &str = "
    INSERT INTO alerts (incident_id, group_id, fingerprint, starts_at, ends_at, status, labels,
                        annotations, generator_url)
    SELECT $1, $2, n.* FROM unnest($3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[],
                                   $7::jsonb[], $8::jsonb[], $9::text[]) AS n
    ON CONFLICT (group_id, fingerprint, starts_at) DO UPDATE
       SET status = EXCLUDED.status, ends_at = EXCLUDED.ends_at,
           annotations = EXCLUDED.annotations, updated_at = now()
       WHERE alerts.status = 'firing'
         AND (EXCLUDED.status = 'resolved' OR alerts.annotations <> EXCLUDED.annotations)
    RETURNING xmax = 0 AS inserted, status";

/// Counts the delivery on the incident, closes it when asked, and logs the delivery.
const FINISH: &str = "
    WITH incident AS (
        UPDATE incidents
           SET deliveries = deliveries + 1, updated_at = now(),
               status = CASE WHEN $2 THEN 'resolved' ELSE status END,
               resolved_at = CASE WHEN $2 THEN now() ELSE resolved_at END,
               truncated_alerts = CASE WHEN status = 'firing' THEN $3 ELSE truncated_alerts END
         WHERE id = $1
        RETURNING id),
    leftover AS (
        UPDATE alerts SET status = 'resolved', updated_at = now()
         WHERE $2 AND incident_id = $1 AND status = 'firing')
    INSERT INTO deliveries (incident_id, status, alerts, new_alerts, resolved_alerts,
                            truncated_alerts, duplicate)
    SELECT id, $4, $5, $6, $7, $3, $8 FROM incident";

impl Store {
    /// Records a notification durably; returns once it is committed.
    pub async fn record(&self, n: &Notification) -> Result<Recorded, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let upsert_group = tx.prepare_cached(UPSERT_GROUP).await?;
        let group_id: i64 = tx
            .query_one(
                &upsert_group,
                &[&n.receiver, &n.group_key, &Json(&n.group_labels)],
            )
            .await?
            .get(0);

        let fingerprints: Vec<&str> = n.alerts.iter().map(|a| a.fingerprint.as_ref()).collect();
        let starts: Vec<DateTime<Utc>> = n.alerts.iter().map(|a| a.starts_at).collect();
        let statuses: Vec<&str> = n.alerts.iter().map(|a| a.status.as_str()).collect();
        let lookup = tx.prepare_cached(LOOKUP).await?;
        let row = tx
            .query_one(&lookup, &[&group_id, &fingerprints, &starts, &statuses])
            .await?;
        let (open, known, known_firing): (Option<i64>, Option<i64>, i64) =
            (row.get(0), row.get(1), row.get(2));
        let unknown_firing = n.firing_count() as i64 > known_firing;
        let target = match (open, known) {
            (Some(id), _) => Target::Existing { id, open: true },
            (None, _) if unknown_firing => Target::New(Status::Firing),
            (None, Some(id)) => Target::Existing { id, open: false },
            (None, None) => Target::New(Status::Resolved),
        };
        let (incident_id, new_incident, open) = match target {
            Target::Existing { id, open } => (id, false, open),
            Target::New(status) => {
                let create = tx.prepare_cached(CREATE_INCIDENT).await?;
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                    &group_id,
                    &status.as_str(),
                    &Json(&n.common_labels),
                    &Json(&n.common_annotations),
                    &n.external_url,
                    &(n.truncated_alerts as i64),
                ];
                let id: i64 = tx.query_one(&create, &params).await?.get(0);
                (id, true, status == Status::Firing)
            }
        };

        let ends: Vec<Option<DateTime<Utc>>> = n.alerts.iter().map(|a| a.ends_at).collect();
        let labels: Vec<Json<&KV>> = n.alerts.iter().map(|a| Json(&a.labels)).collect();
        let annotations: Vec<Json<&KV>> = n.alerts.iter().map(|a| Json(&a.annotations)).collect();
        let generators: Vec<&str> = n.alerts.iter().map(|a| a.generator_url.as_str()).collect();
        let upsert_alerts = tx.prepare_cached(UPSERT_ALERTS).await?;
        let changed = tx
            .query(
                &upsert_alerts,
                &[
                    &incident_id,
                    &group_id,
                    &fingerprints,
                    &starts,
                    &ends,
                    &statuses,
                    &labels,
                    &annotations,
                    &generators,
                ],
            )
            .await?;
        let new_alerts = changed.iter().filter(|r| r.get::<_, bool>(0)).count() as u32;
        let resolved_alerts = changed
            .iter()
            .filter(|r| r.get::<_, &str>(1) == "resolved")
            .count() as u32;

        let close = open && n.status == Status::Resolved;
        let duplicate = !new_incident && new_alerts == 0 && resolved_alerts == 0 && !close;
        let finish = tx.prepare_cached(FINISH).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
            &incident_id,
            &close,
            &(n.truncated_alerts as i64),
            &n.status.as_str(),
            &(n.alerts.len() as i32),
            &(new_alerts as i32),
            &(resolved_alerts as i32),
            &duplicate,
        ];
        tx.execute(&finish, &params).await?;
        tx.commit().await?;
        let incident_resolved = close || (new_incident && !open);
        Ok(Recorded {
            incident_id,
            new_incident,
            new_alerts,
            resolved_alerts,
            incident_resolved,
            duplicate,
        })
    }
}

/// Which incidents to list.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub status: Option<Status>,
    /// Only incidents with a smaller id (the `next_before` of the previous page).
    pub before: Option<i64>,
    pub limit: i64,
}

/// An incident as the API shows it.
#[derive(Debug, Serialize)]
pub struct Incident {
    pub id: i64,
    pub status: String,
    pub receiver: String,
    pub group_key: String,
    pub group_labels: serde_json::Value,
    pub common_labels: serde_json::Value,
    pub common_annotations: serde_json::Value,
    pub external_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub deliveries: i64,
    pub truncated_alerts: i64,
    pub alerts: Vec<AlertRecord>,
}

/// One alert episode of an incident.
#[derive(Debug, Serialize)]
pub struct AlertRecord {
    #[serde(skip)]
    incident_id: i64,
    pub fingerprint: String,
    pub status: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub labels: serde_json::Value,
    pub annotations: serde_json::Value,
    pub generator_url: String,
    pub first_seen_at: DateTime<Utc>,
}

const SELECT_INCIDENTS: &str = "
    SELECT i.id, i.status, g.receiver, g.group_key, g.group_labels, i.common_labels,
           i.common_annotations, i.external_url, i.created_at, i.updated_at, i.resolved_at,
           i.deliveries, i.truncated_alerts
      FROM incidents i JOIN alert_groups g ON g.id = i.group_id";

const SELECT_ALERTS: &str = "
    SELECT incident_id, fingerprint, status, starts_at, ends_at, labels, annotations, generator_url,
           first_seen_at
      FROM alerts WHERE incident_id = ANY($1) ORDER BY incident_id, starts_at, fingerprint";

impl Store {
    /// Incidents newest first, with their alerts.
    pub async fn list_incidents(&self, page: Page) -> Result<Vec<Incident>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "{SELECT_INCIDENTS} WHERE ($1::text IS NULL OR i.status = $1) AND ($2::bigint IS NULL OR i.id < $2)
             ORDER BY i.id DESC LIMIT $3"
        );
        let statement = client.prepare_cached(&sql).await?;
        let status = page.status.map(Status::as_str);
        let rows = client
            .query(&statement, &[&status, &page.before, &page.limit])
            .await?;
        let mut incidents: Vec<Incident> = rows.iter().map(incident_from).collect();
        attach_alerts(&client, &mut incidents).await?;
        Ok(incidents)
    }

    /// One incident with its alerts, if it exists.
    pub async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("{SELECT_INCIDENTS} WHERE i.id = $1"))
            .await?;
        let Some(row) = client.query_opt(&statement, &[&id]).await? else {
            return Ok(None);
        };
        let mut incidents = vec![incident_from(&row)];
        attach_alerts(&client, &mut incidents).await?;
        Ok(incidents.pop())
    }
}

fn incident_from(row: &Row) -> Incident {
    Incident {
        id: row.get(0),
        status: row.get(1),
        receiver: row.get(2),
        group_key: row.get(3),
        group_labels: row.get(4),
        common_labels: row.get(5),
        common_annotations: row.get(6),
        external_url: row.get(7),
        created_at: row.get(8),
        updated_at: row.get(9),
        resolved_at: row.get(10),
        deliveries: row.get(11),
        truncated_alerts: row.get(12),
        alerts: Vec::new(),
    }
}

async fn attach_alerts(
    client: &tokio_postgres::Client,
    incidents: &mut [Incident],
) -> Result<(), StoreError> {
    let ids: Vec<i64> = incidents.iter().map(|i| i.id).collect();
    let rows = client.query(SELECT_ALERTS, &[&ids]).await?;
    for row in rows {
        let alert = AlertRecord {
            incident_id: row.get(0),
            fingerprint: row.get(1),
            status: row.get(2),
            starts_at: row.get(3),
            ends_at: row.get(4),
            labels: row.get(5),
            annotations: row.get(6),
            generator_url: row.get(7),
            first_seen_at: row.get(8),
        };
        if let Some(incident) = incidents.iter_mut().find(|i| i.id == alert.incident_id) {
            incident.alerts.push(alert);
        }
    }
    Ok(())
}
