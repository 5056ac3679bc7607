//! Heartbeat renewals, made inside the transaction that records notifications (intake's, in
//! [`Store::record`](super::database::Store::record)): an alert that renews a heartbeat moves
//! its deadline, and a missing one's incident resolves.

use tokio_postgres::Statement;

use super::error::StoreError;
use crate::domain::Renewal;

/// Renews heartbeats; resolves the incidents of those that were missing.
const RENEW: &str = "
    SELECT name, per_value, incident_id
      FROM medic_renew_heartbeats(p_names => $1, p_per_values => $2, p_window_ms => $3)";

/// A heartbeat that came back: its incident resolved in the renewal's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returned {
    pub name: String,
    pub per_value: String,
    pub incident_id: i64,
}

/// Renewals' columns, as the function takes them.
pub(super) struct RenewArgs<'a> {
    names: Vec<&'a str>,
    per_values: Vec<&'a str>,
    window_ms: Vec<i64>,
}

impl<'a> RenewArgs<'a> {
    /// Distinct renewals in key order (the order rows are locked in).
    pub(super) fn new(renewals: &[&'a Renewal]) -> Self {
        let mut sorted: Vec<&Renewal> = renewals.to_vec();
        sorted.sort();
        sorted.dedup_by(|a, b| a.name == b.name && a.per_value == b.per_value);
        Self {
            names: sorted.iter().map(|r| r.name.as_str()).collect(),
            per_values: sorted.iter().map(|r| r.per_value.as_str()).collect(),
            window_ms: sorted.iter().map(|r| millis(r.window)).collect(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Renews heartbeats with `client`, inside the caller's transaction: the statement is
/// prepared first, so that the caller can pipeline the call with the rest of its transaction.
pub(super) async fn prepare_renew(
    client: &deadpool_postgres::ClientWrapper,
    args: &RenewArgs<'_>,
) -> Result<Option<Statement>, StoreError> {
    if args.is_empty() {
        return Ok(None);
    }
    Ok(Some(client.prepare_cached(RENEW).await?))
}

/// The renewal call, prepared by [`prepare_renew`]; nothing when there is no renewal.
pub(super) async fn renew_in(
    client: &deadpool_postgres::ClientWrapper,
    statement: Option<&Statement>,
    args: &RenewArgs<'_>,
) -> Result<Vec<Returned>, StoreError> {
    let Some(statement) = statement else {
        return Ok(Vec::new());
    };
    let rows = client
        .query(statement, &[&args.names, &args.per_values, &args.window_ms])
        .await?;
    Ok(rows
        .iter()
        .map(|row| Returned {
            name: row.get(0),
            per_value: row.get(1),
            incident_id: row.get(2),
        })
        .collect())
}
