//! What only the on-call console needs: its sign-in sessions, the remediation state of listed
//! incidents, and the audit log of remediation decisions with its filters.

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::{
    database::Store,
    error::StoreError,
    remediations::{remediation_from, RemediationRecord, REMEDIATION_COLUMNS, REMEDIATION_COLUMN_COUNT},
};

/// A signed-in browser, as stored.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user, by name: their role is looked up in the settings on every request.
    pub user: String,
    /// The token every state-changing form of this session carries.
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
    /// The SHA-256 of the token it was made from: the session ends when the user's token no
    /// longer has it. None for sessions made before it was recorded.
    pub credential: Option<Vec<u8>>,
}

/// The latest remediation of an incident, for the list of incidents.
#[derive(Debug, Clone)]
pub struct RemediationState {
    /// The remediation result (`running`, `success`, `awaiting_approval`, ...).
    pub result: String,
    /// `fixed`, `not_fixed`, `pending` or `none`.
    pub verification: String,
    /// Waiting for a person's answer, and not yet expired.
    pub waiting: bool,
}

/// Which remediation decisions to list.
#[derive(Debug, Clone, Default)]
pub struct DecisionQuery {
    pub rule: Option<String>,
    pub action: Option<String>,
    pub result: Option<String>,
    /// Decided at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Decided before this.
    pub until: Option<DateTime<Utc>>,
    pub limit: i64,
}

/// One remediation decision with its incident.
#[derive(Debug)]
pub struct Decision {
    pub incident_id: i64,
    /// Waiting for a person's answer, and not yet expired.
    pub waiting: bool,
    pub record: RemediationRecord,
}

impl Store {
    /// Records a session by the SHA-256 of its id; expired sessions go at the same time.
    pub async fn create_session(
        &self,
        id_hash: &[u8],
        session: &Session,
        address: &str,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM console_sessions WHERE expires_at < now()", &[])
            .await?;
        client
            .execute(
                "INSERT INTO console_sessions (id_hash, user_name, csrf, address, expires_at, credential)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &id_hash,
                    &session.user,
                    &session.csrf,
                    &address,
                    &session.expires_at,
                    &session.credential,
                ],
            )
            .await?;
        Ok(())
    }

    /// The session with this id hash, unless it has expired.
    pub async fn session(&self, id_hash: &[u8]) -> Result<Option<Session>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT user_name, csrf, expires_at, credential FROM console_sessions
                  WHERE id_hash = $1 AND expires_at > now()",
                &[&id_hash],
            )
            .await?;
        Ok(row.map(|row| Session {
            user: row.get(0),
            csrf: row.get(1),
            expires_at: row.get(2),
            credential: row.get(3),
        }))
    }

    /// Failed sign-ins from `address` in the last minute, and the seconds until the oldest of
    /// them is a minute old.
    pub async fn login_failures(&self, address: &str) -> Result<(i64, u64), StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*), coalesce(ceil(extract(epoch FROM min(at) + interval '1 minute' - now())), 0)::float8
                   FROM console_login_failures WHERE address = $1 AND at > now() - interval '1 minute'",
                &[&address],
            )
            .await?;
        let wait: f64 = row.get(1);
        Ok((row.get(0), wait.clamp(1.0, 60.0) as u64))
    }

    /// Records a failed sign-in; those over a minute old go at the same time.
    pub async fn record_login_failure(&self, address: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "WITH old AS (DELETE FROM console_login_failures WHERE at < now() - interval '1 minute')
                 INSERT INTO console_login_failures (address) VALUES ($1)",
                &[&address],
            )
            .await?;
        Ok(())
    }

    /// Ends a session (signing out).
    pub async fn end_session(&self, id_hash: &[u8]) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM console_sessions WHERE id_hash = $1", &[&id_hash])
            .await?;
        Ok(())
    }

    /// The latest remediation of each of these incidents that has one.
    pub async fn remediation_states(
        &self,
        incidents: &[i64],
    ) -> Result<Vec<(i64, RemediationState)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT ON (incident_id) incident_id, result, verification,
                        result = 'awaiting_approval' AND approved IS NULL AND expires_at > now()
                   FROM remediations WHERE incident_id = ANY($1)
                  ORDER BY incident_id, coalesce(requested_at, started_at) DESC, id DESC",
                &[&incidents],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let state = RemediationState {
                    result: row.get(1),
                    verification: row.get(2),
                    waiting: row.get::<_, Option<bool>>(3).unwrap_or(false),
                };
                (row.get(0), state)
            })
            .collect())
    }

    /// Remediation decisions: those waiting for a person first, then newest first.
    pub async fn decisions(&self, query: &DecisionQuery) -> Result<Vec<Decision>, StoreError> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 6] = [
            &query.rule,
            &query.action,
            &query.result,
            &query.since,
            &query.until,
            &query.limit,
        ];
        let rows = client
            .query(
                &format!(
                "SELECT {REMEDIATION_COLUMNS}, incident_id,
                        coalesce(result = 'awaiting_approval' AND approved IS NULL AND expires_at > now(), false)
                           AS waiting
                   FROM remediations
                  WHERE ($1::text IS NULL OR rule = $1) AND ($2::text IS NULL OR action = $2)
                    AND ($3::text IS NULL OR result = $3)
                    AND ($4::timestamptz IS NULL OR coalesce(requested_at, started_at) >= $4)
                    AND ($5::timestamptz IS NULL OR coalesce(requested_at, started_at) < $5)
                  ORDER BY waiting DESC, coalesce(requested_at, started_at) DESC, id DESC LIMIT $6"
                ),
                &params,
            )
            .await?;
        Ok(rows.iter().map(decision_from).collect())
    }
}

fn decision_from(row: &tokio_postgres::Row) -> Decision {
    let record = remediation_from(row);
    Decision {
        incident_id: row.get(REMEDIATION_COLUMN_COUNT),
        waiting: row.get(REMEDIATION_COLUMN_COUNT + 1),
        record,
    }
}
