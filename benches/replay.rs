//! Replaying a busy week: `cargo bench --bench replay`.
//!
//! Builds, in SQL, a week of history as medic records it: `BENCH_NOTIFICATIONS` notifications
//! (default 100,000: five deliveries per incident), three alerts per incident, an announcement
//! to Slack for each, a page 5 minutes in for the half that lasts 10 minutes (the rest resolve
//! after 2), their resolutions, and a `scale_up` for every fourth incident. Then it replays
//! the week, first with the settings it was "recorded" under, then with the page after 15
//! minutes, and prints how long reading the snapshot and replaying each took (target: 30 s or
//! less in all on two cores), with the report's counts.

#[path = "support/common.rs"]
mod common;
#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::time::Instant;

use chrono::{TimeDelta, Utc};
use common::env_or;
use medic::{config::Source, plan::Plan, store::Store};
use postgres::{Durability, TempPostgres};

const SETTINGS: &str = r##"
server: {auth: {allow_unauthenticated: true}}
notifiers:
  slack: {type: slack, url: "http://127.0.0.1:9/slack", channel: "#incidents"}
  pagerduty: {type: pagerduty, url: "http://127.0.0.1:9/pd", routing_key: "key"}
rules:
  - name: crash
    matchers: ['remediate="yes"']
    notify: [slack]
    remediate:
      action: scale_up
      params: {namespace: "{{ labels.namespace }}", deployment: "{{ labels.deployment }}"}
    escalation: [{after: 5m, notify: [pagerduty]}]
  - name: errors
    matchers: ['alertname=~"A.*"']
    notify: [slack]
    escalation: [{after: 5m, notify: [pagerduty]}]
remediation:
  cooldown: 0s
  budget: {per_target: 1000/1h, per_rule: 100000/1h, global: 100000/1h}
"##;

fn main() {
    let notifications: i64 = env_or("BENCH_NOTIFICATIONS", 100_000);
    let incidents = notifications / 5;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let postgres = TempPostgres::start(Durability::Durable);
    let url = runtime.block_on(postgres.create_database("medic"));
    let recorded = plan(&url, &[]);
    let store = Store::new(&recorded.0.database).unwrap();
    runtime.block_on(store.migrate()).unwrap();
    let started = Instant::now();
    runtime.block_on(build_week(&url, incidents));
    println!(
        "week: {notifications} notifications, {incidents} incidents built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let later = plan(&url, &[("after: 5m", "after: 15m")]);
    for (name, plan) in [("same settings", &recorded.1), ("page after 15m", &later.1)] {
        runtime.block_on(replay(&store, plan, name));
    }
}

fn plan(url: &str, changes: &[(&str, &str)]) -> (medic::config::Settings, Plan) {
    let mut yaml = SETTINGS.to_owned();
    for (from, to) in changes {
        yaml = yaml.replace(from, to);
    }
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    let source = Source {
        file: Some(file.path().to_owned()),
        env: [("MEDIC_DATABASE__URL".to_owned(), url.to_owned())].into(),
    };
    medic::plan::load(&source).unwrap_or_else(|e| panic!("bench settings: {e}"))
}

async fn replay(store: &Store, plan: &Plan, name: &str) {
    let until = Utc::now();
    let from = until - TimeDelta::days(7);
    let started = Instant::now();
    let snapshot = store
        .replay_snapshot(from, until, medic::replay::lookback(plan))
        .await
        .unwrap();
    let read = started.elapsed().as_secs_f64();
    let report = medic::replay::replay(plan, &snapshot);
    let total = started.elapsed().as_secs_f64();
    let s = &report.summary;
    println!(
        "{name:<16} read {read:>5.2} s  replay {:>5.2} s  total {total:>5.2} s  ({} notifications, {} incidents, \
         {} changed; messages {}/{}, pages {}/{}, remediations {}/{} recorded/replayed)",
        total - read,
        report.notifications,
        report.incidents,
        report.changed,
        s.messages.recorded,
        s.messages.replayed,
        s.pages.recorded,
        s.pages.replayed,
        s.remediations.recorded,
        s.remediations.replayed,
    );
}

async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The week, in SQL, as medic would have recorded it under [`SETTINGS`]: incidents spread
/// over six days, the even ones lasting 10 minutes (paged at 5), the odd ones 2.
async fn build_week(url: &str, n: i64) {
    let db = sql(url).await;
    let step_ms = 6 * 86_400_000 / n;
    db.batch_execute(&format!(
        "SET synchronous_commit = off;
         INSERT INTO alert_groups (receiver, group_key, group_labels, first_seen_at)
              SELECT 'bench', 'g' || g, '{{}}', now() FROM generate_series(1, {n}) g;
         INSERT INTO incidents (group_id, status, created_at, updated_at, resolved_at, common_labels,
                                common_annotations, external_url)
              SELECT g.id, 'resolved', t.at, t.at + t.lasts, t.at + t.lasts, '{{}}', '{{}}', ''
                FROM alert_groups g,
                     LATERAL (SELECT now() - interval '6 days 1 hour' + g.id * {step_ms} * interval '1 ms' AS at,
                                     CASE WHEN g.id % 2 = 0 THEN interval '10 minutes' ELSE interval '2 minutes' END AS lasts) t
               ORDER BY g.id;
         INSERT INTO alerts (incident_id, group_id, fingerprint, starts_at, ends_at, status, labels,
                             annotations, generator_url, first_seen_at, updated_at)
              SELECT i.id, i.group_id, lpad(to_hex(i.id * 4 + k), 16, '0'), i.created_at, i.resolved_at,
                     'resolved',
                     jsonb_build_object('alertname', 'A' || i.id % 50, 'namespace', 'ns' || i.id % 20,
                                        'deployment', 'app-' || i.id % 500, 'severity', 'critical',
                                        'remediate', CASE WHEN i.id % 4 = 0 THEN 'yes' ELSE 'no' END),
                     '{{}}', '', i.created_at, i.resolved_at
                FROM incidents i, generate_series(1, 3) k;
         INSERT INTO deliveries (incident_id, received_at, status, alerts, new_alerts, resolved_alerts,
                                 truncated_alerts, duplicate)
              SELECT i.id, i.created_at + (k - 1) * interval '20 seconds', CASE WHEN k = 5 THEN 'resolved' ELSE 'firing' END,
                     3, CASE WHEN k = 1 THEN 3 ELSE 0 END, 0, 0, k BETWEEN 2 AND 4
                FROM incidents i, generate_series(1, 5) k;"
    ))
    .await
    .unwrap();
    db.batch_execute(
        "SET synchronous_commit = off;
         INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, state, scheduled_at, due_at, fired_at)
              SELECT i.id, 'opened', r.rule, 0, 'slack', 'slack', 'done', i.created_at, i.created_at, i.created_at
                FROM incidents i, LATERAL (SELECT CASE WHEN i.id % 4 = 0 THEN 'crash' ELSE 'errors' END AS rule) r;
         INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, state, scheduled_at, due_at, fired_at)
              SELECT i.id, 'escalation', t.rule, 1, 'pagerduty', 'pagerduty',
                     CASE WHEN i.id % 2 = 0 THEN 'done' ELSE 'cancelled' END,
                     i.created_at + interval '5 minutes', i.created_at + interval '5 minutes',
                     CASE WHEN i.id % 2 = 0 THEN i.created_at + interval '5 minutes' END
                FROM incidents i JOIN timers t ON t.incident_id = i.id AND t.kind = 'opened';
         INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, state, scheduled_at, due_at, fired_at)
              SELECT t.incident_id, 'resolved', t.rule, 0, t.notifier, t.channel, 'done', i.resolved_at,
                     i.resolved_at, i.resolved_at
                FROM incidents i JOIN timers t ON t.incident_id = i.id
               WHERE t.kind = 'opened' OR (t.kind = 'escalation' AND t.fired_at IS NOT NULL);
         INSERT INTO timer_attempts (timer_id, occurrence, attempt, started_at, finished_at, result, status_code)
              SELECT t.id, 0, 1, t.fired_at, t.fired_at, 'sent', 200 FROM timers t WHERE t.fired_at IS NOT NULL;
         INSERT INTO remediations (incident_id, rule, step, action, target, episode, result, acted, dry_run,
                                   started_at, finished_at)
              SELECT a.incident_id, 'crash', 1, 'scale_up', 'deployment/' || (a.labels->>'namespace') || '/' || (a.labels->>'deployment'),
                     a.fingerprint || '@' || to_char(a.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                     'success', true, false, a.first_seen_at, a.first_seen_at
                FROM alerts a WHERE a.labels->>'remediate' = 'yes';
         INSERT INTO timers (incident_id, kind, rule, step, notifier, channel, state, scheduled_at, due_at, fired_at,
                             subject)
              SELECT r.incident_id, 'remediated', r.rule, 0, 'slack', 'slack', 'done', r.started_at, r.started_at,
                     r.started_at, r.id::text
                FROM remediations r;",
    )
    .await
    .unwrap();
    db.batch_execute("VACUUM ANALYZE").await.unwrap();
}
