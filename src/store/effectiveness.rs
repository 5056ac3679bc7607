//! How well each rule's steps did over a window: what they acted on and what that came to
//! (fixed, relapsed, not fixed, failed, skipped), the fix rate, the median time from acting
//! to the alert resolving, and whether the step is demoted; a rule's steps observed
//! (`mode: observe`) apart from those that acted. The API and the console read this one query.

use serde::Serialize;

use super::{database::Store, error::StoreError};

/// One step of one rule over the window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepRecord {
    pub rule: String,
    pub step: i32,
    pub action: String,
    /// `act`, or `observe`: what the record counts would have run, and was verified as if it
    /// had (nothing was done, so its fixes are the alert resolving by itself).
    pub mode: String,
    /// Steps that acted (success or failure), or in `mode: observe` would have (observed).
    pub acted: i64,
    pub fixed: i64,
    pub relapsed: i64,
    pub not_fixed: i64,
    pub failed: i64,
    pub skipped: i64,
    /// fixed / (fixed + relapsed + not_fixed); None before any verification.
    pub fix_rate: Option<f64>,
    /// From the action to the alert resolving, over the fixed steps.
    pub median_time_to_resolve_seconds: Option<f64>,
    pub demoted: bool,
}

const EFFECTIVENESS: &str = "
    SELECT r.rule, r.step, r.action, r.mode,
           count(*) FILTER (WHERE r.result IN ('success', 'failure', 'observed')),
           count(*) FILTER (WHERE r.verification = 'fixed'),
           count(*) FILTER (WHERE r.verification = 'relapsed'),
           count(*) FILTER (WHERE r.verification = 'not_fixed'),
           count(*) FILTER (WHERE r.result = 'failure'),
           count(*) FILTER (WHERE r.result LIKE 'skipped\\_%'),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.held_from - r.started_at)::float8)
               FILTER (WHERE r.verification = 'fixed' AND r.held_from IS NOT NULL),
           EXISTS (SELECT 1 FROM rule_demotions d
                    WHERE d.rule = r.rule AND d.step = r.step AND d.promoted_at IS NULL)
      FROM remediations r
     WHERE r.started_at > now() - $1::bigint * interval '1 millisecond'
     GROUP BY r.rule, r.step, r.action, r.mode
     ORDER BY r.rule, r.step, r.action, r.mode";

impl Store {
    /// Each rule step's record over the last `window_ms`.
    pub async fn effectiveness(&self, window_ms: i64) -> Result<Vec<StepRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(EFFECTIVENESS, &[&window_ms]).await?;
        Ok(rows.iter().map(record_from).collect())
    }
}

fn record_from(row: &tokio_postgres::Row) -> StepRecord {
    let (fixed, relapsed, not_fixed): (i64, i64, i64) = (row.get(5), row.get(6), row.get(7));
    let verified = fixed + relapsed + not_fixed;
    StepRecord {
        rule: row.get(0),
        step: row.get(1),
        action: row.get(2),
        mode: row.get(3),
        acted: row.get(4),
        fixed,
        relapsed,
        not_fixed,
        failed: row.get(8),
        skipped: row.get(9),
        fix_rate: (verified > 0).then(|| fixed as f64 / verified as f64),
        median_time_to_resolve_seconds: row.get(10),
        demoted: row.get(11),
    }
}
