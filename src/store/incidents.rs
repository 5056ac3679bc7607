//! Incidents, their alerts and deliveries: recording notifications and reading them back.
//!
//! Recording calls `medic_record` (migrations/0013) once per notification, in one transaction
//! per batch, with named arguments. The function first locks the group's row (creating it if need
//! be), so deliveries of one group (retries, HA pairs, several replicas) are applied one after
//! the other, while the unique constraints make a duplicate change nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{
    types::{Json, ToSql},
    Row,
};

use super::{
    audit::AuditRecord,
    database::Store,
    error::StoreError,
    remediations::RemediationRecord,
    renewals::{prepare_renew, renew_in, RenewArgs, Returned},
    timer_work,
    timers::{Acknowledgement, TimerRecord},
};
use crate::{
    alertmanager::{Status, KV},
    domain::{Notification, PlannedTimer, Renewal},
};

/// What recording one notification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Timers scheduled by the rules, or announcements of the resolution.
    pub timers_scheduled: u32,
    /// Pending escalations stopped because the incident resolved.
    pub timers_cancelled: u32,
}

/// Records one notification and schedules its timers (migrations/0013). The arguments are
/// named, in the order of [`RecordArgs::as_sql`].
const RECORD: &str = "
    SELECT incident_id, new_incident, new_alerts, resolved_alerts, incident_resolved, duplicate,
           timers_scheduled, timers_cancelled
      FROM medic_record(
           p_receiver => $1, p_group_key => $2, p_group_labels => $3, p_status => $4,
           p_common_labels => $5, p_common_annotations => $6, p_external_url => $7,
           p_truncated_alerts => $8,
           p_fingerprints => $9, p_starts_at => $10, p_ends_at => $11, p_statuses => $12,
           p_labels => $13, p_annotations => $14, p_generator_urls => $15,
           p_timer_kinds => $16, p_timer_rules => $17, p_timer_steps => $18,
           p_timer_notifiers => $19, p_timer_channels => $20, p_timer_after_ms => $21,
           p_timer_repeat_ms => $22, p_timer_subjects => $23, p_timer_payloads => $24,
           p_traceparent => $25, p_label_pairs => $26)";

/// A notification and the timers its rules ask for.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub notification: &'a Notification,
    pub timers: &'a [PlannedTimer],
    /// The W3C trace context a new incident keeps, so its later work joins this trace; None
    /// when medic exports no traces.
    pub traceparent: Option<&'a str>,
}

/// A notification's arguments, as the function takes them.
struct RecordArgs<'a> {
    group_labels: Json<&'a KV>,
    status: &'a str,
    common_labels: Json<&'a KV>,
    common_annotations: Json<&'a KV>,
    truncated: i64,
    fingerprints: Vec<&'a str>,
    starts: Vec<DateTime<Utc>>,
    ends: Vec<Option<DateTime<Utc>>>,
    statuses: Vec<&'a str>,
    labels: Vec<Json<&'a KV>>,
    annotations: Vec<Json<&'a KV>>,
    generators: Vec<&'a str>,
    n: &'a Notification,
    timers: TimerColumns<'a>,
    traceparent: Option<&'a str>,
    label_pairs: Vec<String>,
}

/// The timers' columns, as the function takes them.
struct TimerColumns<'a> {
    kinds: Vec<&'static str>,
    rules: Vec<&'a str>,
    steps: Vec<i32>,
    notifiers: Vec<String>,
    channels: Vec<&'static str>,
    after_ms: Vec<i64>,
    repeat_ms: Vec<Option<i64>>,
    subjects: Vec<String>,
    payloads: Vec<Option<serde_json::Value>>,
}

impl<'a> TimerColumns<'a> {
    fn new(timers: &'a [PlannedTimer]) -> Self {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut columns = Self {
            kinds: Vec::with_capacity(timers.len()),
            rules: timers.iter().map(|t| t.rule.as_str()).collect(),
            steps: Vec::with_capacity(timers.len()),
            notifiers: Vec::with_capacity(timers.len()),
            channels: timers.iter().map(|t| t.channel.as_str()).collect(),
            after_ms: timers.iter().map(|t| ms(t.after)).collect(),
            repeat_ms: timers.iter().map(|t| t.repeat.map(ms)).collect(),
            subjects: Vec::with_capacity(timers.len()),
            payloads: Vec::with_capacity(timers.len()),
        };
        for timer in timers {
            let row = timer_work::encode(&timer.work);
            columns.kinds.push(row.kind.as_str());
            columns.steps.push(row.step);
            columns.notifiers.push(row.notifier);
            columns.subjects.push(row.subject);
            columns.payloads.push(row.payload);
        }
        columns
    }
}

impl<'a> RecordArgs<'a> {
    fn new(
        Entry {
            notification: n,
            timers,
            traceparent,
        }: Entry<'a>,
    ) -> Self {
        Self {
            group_labels: Json(&n.group_labels),
            status: n.status.as_str(),
            common_labels: Json(&n.common_labels),
            common_annotations: Json(&n.common_annotations),
            truncated: i64::try_from(n.truncated_alerts).unwrap_or(i64::MAX),
            fingerprints: n.alerts.iter().map(|a| a.fingerprint.as_ref()).collect(),
            starts: n.alerts.iter().map(|a| a.starts_at).collect(),
            ends: n.alerts.iter().map(|a| a.ends_at).collect(),
            statuses: n.alerts.iter().map(|a| a.status.as_str()).collect(),
            labels: n.alerts.iter().map(|a| Json(&a.labels)).collect(),
            annotations: n.alerts.iter().map(|a| Json(&a.annotations)).collect(),
            generators: n.alerts.iter().map(|a| a.generator_url.as_str()).collect(),
            n,
            timers: TimerColumns::new(timers),
            traceparent,
            label_pairs: label_pairs(n),
        }
    }

    fn as_sql(&self) -> [&(dyn ToSql + Sync); 26] {
        [
            &self.n.receiver,
            &self.n.group_key,
            &self.group_labels,
            &self.status,
            &self.common_labels,
            &self.common_annotations,
            &self.n.external_url,
            &self.truncated,
            &self.fingerprints,
            &self.starts,
            &self.ends,
            &self.statuses,
            &self.labels,
            &self.annotations,
            &self.generators,
            &self.timers.kinds,
            &self.timers.rules,
            &self.timers.steps,
            &self.timers.notifiers,
            &self.timers.channels,
            &self.timers.after_ms,
            &self.timers.repeat_ms,
            &self.timers.subjects,
            &self.timers.payloads,
            &self.traceparent,
            &self.label_pairs,
        ]
    }
}

/// The distinct `name=value` pairs of the alerts' labels, which the label index keeps as
/// hashes: cheaper to build here than in Postgres, where each alert's labels would be unpacked
/// by a set-returning function.
fn label_pairs(n: &Notification) -> Vec<String> {
    let mut pairs: Vec<(&str, &str)> = n
        .alerts
        .iter()
        .flat_map(|a| a.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

impl Store {
    /// Records notifications in one transaction, in the order given, with the heartbeats
    /// they renew; returns once committed.
    ///
    /// BEGIN, one call per notification, the renewals and COMMIT are pipelined: requests on a
    /// connection go out in the order first polled, so they leave together and cost one round
    /// trip. If a call fails, Postgres turns the COMMIT into a rollback and nothing is stored.
    /// Callers order batches by group so that concurrent batches lock groups in the same
    /// order; heartbeats are locked after groups, in key order.
    pub async fn record(
        &self,
        batch: &[Entry<'_>],
        renewals: &[&Renewal],
    ) -> Result<(Vec<Recorded>, Vec<Returned>), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(RECORD).await?;
        let renew = RenewArgs::new(renewals);
        let renew_statement = prepare_renew(&client, &renew).await?;
        let args: Vec<RecordArgs> = batch.iter().map(|entry| RecordArgs::new(*entry)).collect();
        let calls = args.iter().map(|p| {
            let statement = &statement;
            let client = &client;
            async move { client.query_one(statement, &p.as_sql()).await }
        });
        let (begin, rows, returned, commit) = tokio::join!(
            client.batch_execute("BEGIN"),
            futures_util::future::join_all(calls),
            renew_in(&client, renew_statement.as_ref(), &renew),
            client.batch_execute("COMMIT"),
        );
        begin?;
        let rows = rows.into_iter().collect::<Result<Vec<Row>, _>>()?;
        let returned = returned?;
        commit?;
        Ok((rows.iter().map(recorded_from).collect(), returned))
    }
}

/// Records one notification inside the caller's transaction (a heartbeat going missing opens
/// its incident this way, with the row that says so locked).
pub(super) async fn record_in(
    tx: &deadpool_postgres::Transaction<'_>,
    entry: Entry<'_>,
) -> Result<Recorded, StoreError> {
    let statement = tx.prepare_cached(RECORD).await?;
    let args = RecordArgs::new(entry);
    Ok(recorded_from(&tx.query_one(&statement, &args.as_sql()).await?))
}

fn recorded_from(row: &Row) -> Recorded {
    Recorded {
        incident_id: row.get(0),
        new_incident: row.get(1),
        new_alerts: row.get::<_, i32>(2) as u32,
        resolved_alerts: row.get::<_, i32>(3) as u32,
        incident_resolved: row.get(4),
        duplicate: row.get(5),
        timers_scheduled: row.get::<_, i32>(6) as u32,
        timers_cancelled: row.get::<_, i32>(7) as u32,
    }
}

/// Which incidents to list.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub status: Option<Status>,
    /// Only incidents with a smaller id (the `next_before` of the previous page).
    pub before: Option<i64>,
    pub limit: i64,
    /// Only incidents one of whose alerts passes every filter.
    pub filters: Vec<LabelFilter>,
    /// Only incidents opened at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only incidents opened before this.
    pub until: Option<DateTime<Utc>>,
    /// Only incidents someone acknowledged (`Some(true)`) or nobody did (`Some(false)`).
    pub acknowledged: Option<bool>,
}

/// A test of one label of an alert; a missing label reads as empty, as in Alertmanager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    pub label: String,
    pub test: LabelTest,
}

/// How a label's value is tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelTest {
    Equal(String),
    NotEqual(String),
    /// The whole value matches this regular expression.
    Regex(String),
    NotRegex(String),
}

impl LabelTest {
    /// The operator as the search statement takes it.
    fn op(&self) -> &'static str {
        match self {
            LabelTest::Equal(_) => "=",
            LabelTest::NotEqual(_) => "!=",
            LabelTest::Regex(_) => "=~",
            LabelTest::NotRegex(_) => "!~",
        }
    }

    /// Cheaper tests first: an alert that fails an equality is never tried against a regex.
    fn cost(&self) -> u8 {
        match self {
            LabelTest::Equal(_) => 0,
            LabelTest::NotEqual(_) => 1,
            LabelTest::Regex(_) | LabelTest::NotRegex(_) => 2,
        }
    }
}

impl LabelFilter {
    /// Whether the incidents' GIN index of label pairs serves this test: an equality on a
    /// non-empty value (an incident holds the pair only if one of its alerts does).
    fn indexed(&self) -> bool {
        matches!(&self.test, LabelTest::Equal(v) if !v.is_empty())
    }

    fn value(&self) -> &String {
        match &self.test {
            LabelTest::Equal(v) | LabelTest::NotEqual(v) | LabelTest::Regex(v) | LabelTest::NotRegex(v) => v,
        }
    }
}

/// Most label filters of one search: the search statement has this many slots.
pub const MAX_FILTERS: usize = 20;

/// The statement of a search. Its text depends only on whether incidents are filtered by
/// acknowledgement, by labels, and through the label index, never on the filters' shapes: at
/// most nine statements are ever prepared, however many different searches people make.
///
/// The filters arrive as three arrays (labels `$6`, operators `$7`, values `$8`), tested in
/// [`MAX_FILTERS`] slots of which those past the arrays' length are skipped; the indexed
/// equalities as two more (`$9`, `$10`), hashed once into the key set the GIN index is asked
/// for. The alerts are tested in a subquery that cannot become a join (`OFFSET 0`), so their
/// filters, regexes included, run only on incidents the cheaper conditions (the index among
/// them) let through, and within an alert cheaper tests come first.
fn search_sql(acknowledged: Option<bool>, filtered: bool, indexed: bool) -> String {
    let mut sql = format!(
        "{SELECT_INCIDENTS} WHERE ($1::text IS NULL OR i.status = $1) AND ($2::bigint IS NULL OR i.id < $2)
           AND ($4::timestamptz IS NULL OR i.created_at >= $4)
           AND ($5::timestamptz IS NULL OR i.created_at < $5)"
    );
    // Spelled out rather than a parameter, so the plan of each variant is its own.
    match acknowledged {
        Some(true) => sql.push_str(" AND i.acked_at IS NOT NULL"),
        Some(false) => sql.push_str(" AND i.acked_at IS NULL"),
        None => {}
    }
    if indexed {
        sql.push_str(
            " AND i.label_keys @> ARRAY(SELECT hashtextextended(k.label || '=' || k.value, 0)
                                          FROM unnest($9::text[], $10::text[]) AS k(label, value))",
        );
    }
    if filtered {
        let slots: Vec<String> = (1..=MAX_FILTERS).map(filter_slot).collect();
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM alerts a WHERE a.group_id = i.group_id AND a.incident_id = i.id
                             AND {} OFFSET 0)",
            slots.join(" AND ")
        ));
    }
    sql.push_str(" ORDER BY i.id DESC LIMIT $3");
    sql
}

/// The test of filter slot `k` on alert `a`; true when there is no `k`th filter. A missing
/// label reads as empty, as in Alertmanager; regexes are anchored.
fn filter_slot(k: usize) -> String {
    let value = format!("coalesce(a.labels->>(($6::text[])[{k}]), '')");
    let arg = format!("($8::text[])[{k}]");
    format!(
        "(cardinality($7::text[]) < {k} OR CASE ($7::text[])[{k}]
             WHEN '=' THEN {value} = {arg} WHEN '!=' THEN {value} <> {arg}
             WHEN '=~' THEN {value} ~ ('^(?:' || {arg} || ')$')
             ELSE {value} !~ ('^(?:' || {arg} || ')$') END)"
    )
}

/// A search's parameters past the first five, as the statement's arrays.
struct FilterArrays<'a> {
    labels: Vec<&'a str>,
    ops: Vec<&'static str>,
    values: Vec<&'a str>,
    indexed_labels: Vec<&'a str>,
    indexed_values: Vec<&'a str>,
}

impl<'a> FilterArrays<'a> {
    fn new(filters: &'a [LabelFilter]) -> Self {
        let mut ordered: Vec<&LabelFilter> = filters.iter().collect();
        ordered.sort_by_key(|f| f.test.cost());
        let indexed: Vec<&LabelFilter> = ordered.iter().copied().filter(|f| f.indexed()).collect();
        Self {
            labels: ordered.iter().map(|f| f.label.as_str()).collect(),
            ops: ordered.iter().map(|f| f.test.op()).collect(),
            values: ordered.iter().map(|f| f.value().as_str()).collect(),
            indexed_labels: indexed.iter().map(|f| f.label.as_str()).collect(),
            indexed_values: indexed.iter().map(|f| f.value().as_str()).collect(),
        }
    }
}

/// A search: its statement and its parameters.
struct Search<'a> {
    sql: String,
    page: &'a Page,
    status: Option<&'static str>,
    arrays: FilterArrays<'a>,
}

impl<'a> Search<'a> {
    fn new(page: &'a Page) -> Self {
        let arrays = FilterArrays::new(&page.filters);
        let sql = search_sql(
            page.acknowledged,
            !arrays.labels.is_empty(),
            !arrays.indexed_labels.is_empty(),
        );
        Self {
            sql,
            page,
            status: page.status.map(Status::as_str),
            arrays,
        }
    }

    /// The parameters, as many as the statement takes.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let page = self.page;
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&self.status, &page.before, &page.limit, &page.since, &page.until];
        let arrays = &self.arrays;
        if !arrays.labels.is_empty() {
            params.extend([&arrays.labels as &(dyn ToSql + Sync), &arrays.ops, &arrays.values]);
        }
        if !arrays.indexed_labels.is_empty() {
            params.extend([
                &arrays.indexed_labels as &(dyn ToSql + Sync),
                &arrays.indexed_values,
            ]);
        }
        params
    }
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
    pub acknowledgement: Option<Acknowledgement>,
    pub alerts: Vec<AlertRecord>,
    /// The incident's timers with their attempts (one incident only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timers: Option<Vec<TimerRecord>>,
    /// Every remediation decision (one incident only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediations: Option<Vec<RemediationRecord>>,
    /// What people did to it (one incident only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<Vec<AuditRecord>>,
    /// When its cluster context was gathered (one incident only, once it was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<super::context::ContextMark>,
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
           (SELECT count(*) FROM deliveries d WHERE d.incident_id = i.id) + i.pruned_deliveries,
           i.truncated_alerts,
           i.acked_by, i.ack_note, i.acked_at, coalesce(i.acked_via, 'api')
      FROM incidents i JOIN alert_groups g ON g.id = i.group_id";

/// Through the group (the primary key's prefix): alerts have no index of their own on incident_id.
const SELECT_ALERTS: &str = "
    SELECT a.incident_id, a.fingerprint, a.status, a.starts_at, a.ends_at, a.labels, a.annotations,
           a.generator_url, a.first_seen_at
      FROM incidents i JOIN alerts a ON a.group_id = i.group_id AND a.incident_id = i.id
     WHERE i.id = ANY($1) ORDER BY a.incident_id, a.starts_at, a.fingerprint";

impl Store {
    /// Incidents newest first, with their alerts.
    pub async fn list_incidents(&self, page: Page) -> Result<Vec<Incident>, StoreError> {
        if page.filters.len() > MAX_FILTERS {
            return Err(StoreError::Rejected(format!("at most {MAX_FILTERS} filters")));
        }
        let search = Search::new(&page);
        let client = self.client().await?;
        let statement = client.prepare_cached(&search.sql).await?;
        let rows = client.query(&statement, &search.params()).await?;
        let mut incidents: Vec<Incident> = rows.iter().map(incident_from).collect();
        attach_alerts(&client, &mut incidents).await?;
        Ok(incidents)
    }

    /// How Postgres runs a search (`EXPLAIN (ANALYZE, FORMAT JSON)` of its statement, with
    /// its parameters): what an operator looks at when a search is slow.
    pub async fn explain_search(&self, page: Page) -> Result<serde_json::Value, StoreError> {
        let search = Search::new(&page);
        let client = self.client().await?;
        let explain = format!("EXPLAIN (ANALYZE, FORMAT JSON) {}", search.sql);
        let row = client.query_one(&explain, &search.params()).await?;
        Ok(row.get(0))
    }

    /// One incident with its alerts and timers, if it exists.
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
        // Each of the rest takes a connection of its own: give this one back first, so that
        // a pool of a few connections is never emptied by readers waiting on themselves.
        drop(client);
        let mut incident = incidents.pop();
        if let Some(incident) = &mut incident {
            incident.timers = Some(self.incident_timers(id).await?);
            incident.remediations = Some(self.incident_remediations(id).await?);
            incident.audit = Some(self.incident_audit(id).await?);
            incident.context = self.context_mark(id).await?;
        }
        Ok(incident)
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
        acknowledgement: row.get::<_, Option<String>>(13).map(|by| Acknowledgement {
            by,
            note: row.get(14),
            at: row.get(15),
            via: super::timers::surface(row.get(16)),
        }),
        alerts: Vec::new(),
        timers: None,
        remediations: None,
        audit: None,
        context: None,
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
