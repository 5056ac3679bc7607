//! Cluster context: stored once per incident with the replies to its Slack apps scheduled in
//! the same statement, and read back whole (the API, the console) or as a mark (the timeline).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::Json;

use super::{database::Store, error::StoreError};
use crate::domain::{ClusterContext, ContextSummary};

/// Keeps the first context of an incident (a second is dropped) and, only then, schedules a
/// `context_ready` message to each Slack app that announced the incident.
const SAVE: &str = "
    WITH saved AS (
        INSERT INTO incident_context (incident_id, gathered_at, complete, body, summary)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (incident_id) DO NOTHING RETURNING incident_id),
    replies AS (
        INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, scheduled_at, due_at)
        SELECT DISTINCT ON (t.notifier) s.incident_id, 'context_ready', t.rule, 0, t.notifier, t.channel,
               now(), now()
          FROM saved s JOIN timers t ON t.incident_id = s.incident_id
         WHERE t.kind = 'opened' AND t.channel = 'slack_app'
        ON CONFLICT DO NOTHING RETURNING 1)
    SELECT count(*) FROM replies";

/// When an incident's context was gathered, for its timeline.
#[derive(Debug, Clone, Serialize)]
pub struct ContextMark {
    pub gathered_at: DateTime<Utc>,
    pub complete: bool,
    /// How many parts could not be read.
    pub errors: i32,
}

impl Store {
    /// Stores the incident's context (the first one only) and schedules the replies; returns
    /// how many were scheduled.
    pub async fn save_context(
        &self,
        incident: i64,
        context: &ClusterContext,
        summary: &ContextSummary,
    ) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(SAVE).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
            &incident,
            &context.gathered_at,
            &context.complete,
            &Json(context),
            &Json(summary),
        ];
        let replies: i64 = client.query_one(&statement, &params).await?.get(0);
        if replies > 0 {
            client.batch_execute("NOTIFY medic_timers").await?;
        }
        Ok(replies)
    }

    /// The incident's context, if it was gathered.
    pub async fn incident_context(&self, incident: i64) -> Result<Option<ClusterContext>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT body FROM incident_context WHERE incident_id = $1",
                &[&incident],
            )
            .await?;
        row.map(|row| {
            let Json(context): Json<ClusterContext> = row.try_get(0)?;
            Ok(context)
        })
        .transpose()
    }

    /// When the incident's context was gathered, if it was.
    pub async fn context_mark(&self, incident: i64) -> Result<Option<ContextMark>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT gathered_at, complete, jsonb_array_length(coalesce(body->'errors', '[]'))
                   FROM incident_context WHERE incident_id = $1",
                &[&incident],
            )
            .await?;
        Ok(row.map(|row| ContextMark {
            gathered_at: row.get(0),
            complete: row.get(1),
            errors: row.get(2),
        }))
    }
}
