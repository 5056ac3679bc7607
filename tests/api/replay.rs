//! `medic replay`: a recorded "week", made by a real medic (intake, engine, acknowledgements,
//! a maintenance window, remediation on the fake Kubernetes API), replayed under the same
//! settings and under changed ones. The week is compressed: escalations come after 8 s.
//!
//! The week is recorded once, on a runtime of its own that outlives every test.

use std::{collections::BTreeSet, sync::OnceLock, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use crate::helpers::{
    config::medic,
    eventually,
    fake_kube::FakeKube,
    notification,
    sink::{Reply, Sink},
    yaml_file, TestApp, RESPONDER,
};
use medic::replay::{event::Fact, report::Report};

const ERRORS: usize = 150;
const CRASHES: usize = 100;
const DISKS: usize = 50;
const DEPLOYMENTS: usize = 40;
const FIRING_AT: &str = "2026-11-26T10:00:00Z";

/// The settings in force during the week; `changes` are (from, to) replacements.
fn settings(slack: &str, pagerduty: &str, kubeconfig: &str, changes: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        r##"
notifiers:
  slack: {{type: slack, url: "{slack}", channel: "#incidents"}}
  pagerduty: {{type: pagerduty, url: "{pagerduty}", routing_key: "routing-key-1"}}
rules:
  - name: high-error-rate
    matchers: ['alertname="HighErrorRate"']
    notify: [slack]
    escalation:
      - after: 8s
        notify: [pagerduty]
  - name: pod-crash
    matchers: ['alertname="PodCrash"']
    notify: [slack]
    remediate:
      action: scale_up
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: "{{{{ labels.deployment }}}}", step: 1, max: 50}}
    escalation:
      - after: 8s
        notify: [pagerduty]
remediation:
  budget: {{per_target: 100/1h, per_rule: 1000/1h, global: 1000/1h}}
kubernetes: {{kubeconfig: "{kubeconfig}"}}
engine:
  lease: 5s
  request_timeout: 2s
  retry: {{initial_backoff: 100ms, max_backoff: 500ms, give_up_after: 30s}}
"##
    );
    for (from, to) in changes {
        assert!(yaml.contains(from), "{from:?} is not in the settings");
        yaml = yaml.replace(from, to);
    }
    yaml
}

/// The recorded week: its database, the sinks medic sent to, and its settings.
struct Week {
    database_url: String,
    /// Behind locks only because neither server is `Sync`.
    sink: std::sync::Mutex<Sink>,
    kube: std::sync::Mutex<FakeKube>,
    kubeconfig: tempfile::NamedTempFile,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

impl Week {
    fn settings(&self, changes: &[(&str, &str)]) -> String {
        let path = self.kubeconfig.path().display().to_string();
        let sink = self.sink.lock().unwrap();
        settings(&sink.url("/slack"), &sink.url("/pagerduty"), &path, changes)
    }

    /// Replays the week under the settings with `changes`, through the library.
    async fn replay(&self, changes: &[(&str, &str)]) -> Report {
        let (settings, plan) = TestApp::builder()
            .config(&self.settings(changes))
            .database(&self.database_url)
            .load()
            .await;
        let store = medic::store::Store::new(&settings.database).unwrap();
        let report = medic::replay::run(&store, &plan, self.from, self.until)
            .await
            .unwrap();
        store.close();
        report
    }

    async fn sql(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }
}

static WEEK: OnceLock<Week> = OnceLock::new();

/// The week, recorded by the first test that needs it.
fn week() -> &'static Week {
    WEEK.get_or_init(|| {
        std::thread::spawn(|| {
            let runtime = Box::leak(Box::new(tokio::runtime::Runtime::new().unwrap()));
            runtime.block_on(record())
        })
        .join()
        .unwrap()
    })
}

fn alert(group: &str, alertname: &str, i: usize, labels: Value, status: &str) -> Value {
    let mut payload = notification(group, status, &[(&format!("{:016x}", i + 1), status, FIRING_AT)]);
    let mut all = json!({"alertname": alertname, "severity": "critical"});
    for (k, v) in labels.as_object().unwrap() {
        all[k] = v.clone();
    }
    payload["alerts"][0]["labels"] = all;
    payload["groupLabels"] = json!({"alertname": alertname});
    payload
}

/// Every incident of the week: (group, alertname, labels).
fn groups() -> Vec<(String, &'static str, Value)> {
    let errors = (0..ERRORS).map(|i| {
        (
            format!("err-{i}"),
            "HighErrorRate",
            json!({"service": format!("s{i}")}),
        )
    });
    let crashes = (0..CRASHES).map(|i| {
        let namespace = if i % 5 == 0 { "frozen" } else { "shop" };
        let labels = json!({"namespace": namespace, "deployment": format!("api-{}", i % DEPLOYMENTS)});
        (format!("crash-{i}"), "PodCrash", labels)
    });
    let disks = (0..DISKS).map(|i| {
        (
            format!("disk-{i}"),
            "DiskFull",
            json!({"volume": format!("v{i}")}),
        )
    });
    errors.chain(crashes).chain(disks).collect()
}

async fn record() -> Week {
    let sink = Sink::start(4).await;
    sink.set_default(
        "/pagerduty",
        Reply::status(202).with_body(r#"{"status":"success"}"#),
    );
    let kube = FakeKube::start().await;
    for i in 0..DEPLOYMENTS {
        let name = format!("api-{i}");
        kube.add_deployment("shop", &name, 2, &[("app", &name)]);
    }
    let kubeconfig = kube.kubeconfig();
    let path = kubeconfig.path().display().to_string();
    let yaml = settings(&sink.url("/slack"), &sink.url("/pagerduty"), &path, &[]);
    let app = TestApp::builder().config(&yaml).spawn().await;
    let from = Utc::now() - TimeDelta::seconds(1);
    open_window(&app).await;
    let groups = groups();
    let mut ids = Vec::new();
    // Some errors acknowledged, some errors and disks resolved, at once: before any escalation.
    for (k, (group, alertname, labels)) in groups.iter().enumerate() {
        let id = app
            .post_for_incident(&alert(group, alertname, k, labels.clone(), "firing"))
            .await;
        match (*alertname, k % 3) {
            ("HighErrorRate", 0) => ack(&app, id).await,
            ("HighErrorRate", 1) | ("DiskFull", 0) => resolve(&app, group, alertname, k, labels).await,
            _ => {}
        }
        ids.push(id);
    }
    settle(&app).await;
    // Crashes once every remediation is decided: a third acknowledged, a third resolved.
    for (k, ((group, alertname, labels), id)) in groups.iter().zip(&ids).enumerate() {
        match (*alertname, k % 3) {
            ("PodCrash", 0) => ack(&app, *id).await,
            ("PodCrash", 1) => resolve(&app, group, alertname, k, labels).await,
            _ => {}
        }
    }
    // Every escalation due, then the rest resolved.
    tokio::time::sleep(Duration::from_secs(9)).await;
    settle(&app).await;
    for (k, (group, alertname, labels)) in groups.iter().enumerate() {
        resolve(&app, group, alertname, k, labels).await;
    }
    settle(&app).await;
    app.stop().await;
    Week {
        database_url: app.database_url.clone(),
        sink: std::sync::Mutex::new(sink),
        kube: std::sync::Mutex::new(kube),
        kubeconfig,
        from,
        until: Utc::now(),
    }
}

async fn open_window(app: &TestApp) {
    let ends_at = Utc::now() + TimeDelta::hours(1);
    let window = json!({"matchers": ["namespace=\"frozen\""], "ends_at": ends_at, "mute": ["remediation"], "reason": "freeze"});
    let response = app
        .client
        .post(format!("{}/api/v1/maintenance", app.address))
        .bearer_auth(RESPONDER.2)
        .json(&window)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

async fn ack(app: &TestApp, id: i64) {
    let response = app.acknowledge(id, &json!({"note": "on it"})).await;
    assert!(response.status().is_success(), "ack {id}: {}", response.status());
}

async fn resolve(app: &TestApp, group: &str, alertname: &str, k: usize, labels: &Value) {
    let response = app
        .post_webhook(&alert(group, alertname, k, labels.clone(), "resolved"))
        .await;
    assert_eq!(response.status(), 200);
}

/// Waits until nothing due is left to send, and every remediation is decided.
async fn settle(app: &TestApp) {
    eventually("nothing due and nothing running", Duration::from_secs(60), || async {
        let busy = app
            .count(
                "SELECT (SELECT count(*) FROM timers WHERE state = 'pending' AND (due_at <= now() OR kind = 'remediation'))
                      + (SELECT count(*) FROM remediations WHERE result = 'running')",
            )
            .await;
        (busy == 0).then_some(()).ok_or(format!("{busy} timers still due"))
    })
    .await;
}

fn changed_ids(report: &Report) -> BTreeSet<i64> {
    report.differences.iter().map(|d| d.incident_id).collect()
}

#[tokio::test]
async fn the_week_replayed_with_its_own_settings_changes_nothing() {
    let week = week();
    let report = week.replay(&[]).await;

    assert_eq!(report.incidents, ERRORS + CRASHES + DISKS);
    assert!(
        report.notifications >= (2 * (ERRORS + CRASHES + DISKS)) as i64,
        "{}",
        report.notifications
    );
    assert_eq!(
        report.changed,
        0,
        "{}",
        serde_json::to_string_pretty(&report.differences).unwrap()
    );
    let s = &report.summary;
    assert_eq!(s.messages.recorded, s.messages.replayed);
    assert_eq!(s.pages.recorded, s.pages.replayed);
    assert_eq!(s.remediations.recorded, s.remediations.replayed);
    // The week holds what the replay must reproduce: pages, actions, and every guard rail seen.
    assert!(s.pages.recorded > 50, "{s:?}");
    assert!(s.remediations.recorded > 10, "{s:?}");
    let sql = week.sql().await;
    let results: Vec<String> = sql
        .query("SELECT DISTINCT result FROM remediations ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(results, ["skipped_cooldown", "skipped_maintenance", "success"]);
}

#[tokio::test]
async fn a_rule_added_for_unhandled_alerts_changes_exactly_their_incidents() {
    let week = week();
    let added =
        "rules:\n  - name: disk-full\n    matchers: ['alertname=\"DiskFull\"']\n    notify: [slack]\n";
    let report = week.replay(&[("rules:\n", added)]).await;

    assert_eq!(report.changed, DISKS, "{:#?}", report.differences.first());
    for d in &report.differences {
        assert_eq!(d.alertname, "DiskFull");
        assert!(d.recorded.is_empty(), "{d:?}");
        let facts: Vec<String> = d.replayed.iter().map(|e| describe(&e.fact)).collect();
        assert_eq!(
            facts,
            ["rule disk-full", "message opened slack", "message resolved slack"],
            "{d:?}"
        );
    }
    assert_eq!(
        report.summary.messages.replayed,
        report.summary.messages.recorded + 2 * DISKS
    );
}

#[tokio::test]
async fn an_escalation_delay_changed_drops_exactly_the_pages_sent_on_schedule() {
    let week = week();
    let report = week.replay(&[("- after: 8s", "- after: 1h")]).await;

    // Pages that went out 8 s after the incident opened; those a remediation's hand-over
    // brought forward go out at the same moment either way.
    let sql = week.sql().await;
    let expected: BTreeSet<i64> = sql
        .query(
            "SELECT DISTINCT t.incident_id FROM timers t JOIN incidents i ON i.id = t.incident_id
              WHERE t.kind = 'escalation' AND t.fired_at IS NOT NULL
                AND t.scheduled_at = i.created_at + interval '8 seconds'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(expected.len() > 20, "{expected:?}");
    assert_eq!(changed_ids(&report), expected);
    for d in &report.differences {
        assert!(d.replayed.is_empty(), "{d:?}");
        let facts: Vec<String> = d.recorded.iter().map(|e| describe(&e.fact)).collect();
        assert_eq!(
            facts,
            ["message escalation pagerduty", "message resolved pagerduty"],
            "{d:?}"
        );
    }
}

#[tokio::test]
async fn a_smaller_budget_skips_exactly_the_actions_past_it() {
    let week = week();
    let report = week.replay(&[("global: 1000/1h", "global: 3/1h")]).await;

    // The first three actions stand; every later one, and every step the cooldown of a later
    // one skipped, is over the budget now.
    let sql = week.sql().await;
    let rows: Vec<(i64, String, bool)> = sql
        .query(
            "SELECT incident_id, target, acted FROM remediations
                 WHERE acted OR result = 'skipped_cooldown' ORDER BY started_at, id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let first: Vec<&(i64, String, bool)> = rows.iter().filter(|(_, _, acted)| *acted).take(3).collect();
    assert_eq!(first.len(), 3);
    let expected: BTreeSet<i64> = rows
        .iter()
        .filter(|(id, target, acted)| {
            if *acted {
                !first.iter().any(|f| f.0 == *id)
            } else {
                !first.iter().any(|f| &f.1 == target)
            }
        })
        .map(|(id, _, _)| *id)
        .collect();
    assert!(expected.len() > 10, "{rows:?}");
    assert_eq!(changed_ids(&report), expected);
    for d in &report.differences {
        let decision = |events: &[medic::replay::event::Event]| {
            events
                .iter()
                .find_map(|e| match &e.fact {
                    Fact::Remediation { decision, .. } => Some(decision.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        assert!(
            ["acted", "skipped_cooldown"].contains(&decision(&d.recorded).as_str()),
            "{d:?}"
        );
        assert_eq!(decision(&d.replayed), "skipped_budget", "{d:?}");
    }
    assert_eq!(report.summary.remediations.replayed, 3);
}

#[tokio::test]
async fn a_rule_turned_to_observe_mode_observes_what_it_acted_on_and_acts_on_nothing() {
    let week = week();
    let report = week
        .replay(&[(
            "  - name: pod-crash\n",
            "  - name: pod-crash\n    mode: observe\n",
        )])
        .await;

    let sql = week.sql().await;
    let acted: BTreeSet<i64> = sql
        .query("SELECT incident_id FROM remediations WHERE acted", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(acted.len() > 10, "{acted:?}");
    let observed: BTreeSet<i64> = report
        .differences
        .iter()
        .filter(|d| {
            d.replayed
                .iter()
                .any(|e| matches!(&e.fact, Fact::Remediation { decision, .. } if decision == "observed"))
        })
        .map(|d| d.incident_id)
        .collect();
    assert_eq!(observed, acted, "what acted is observed, and nothing else");
    assert_eq!(report.summary.remediations.replayed, 0, "nothing acts");
    assert_eq!(
        report.summary.remediations.recorded,
        acted.len(),
        "{:?}",
        report.summary
    );
}

#[tokio::test]
async fn replay_sends_nothing_changes_no_row_and_fails_ci_on_a_change() {
    let week = week();
    let sql = week.sql().await;
    let fingerprint = "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
        SELECT 'i' || t::text AS x FROM incidents t UNION ALL SELECT 'a' || t::text FROM alerts t
        UNION ALL SELECT 'd' || t::text FROM deliveries t UNION ALL SELECT 't' || t::text FROM timers t
        UNION ALL SELECT 'p' || t::text FROM timer_attempts t UNION ALL SELECT 'r' || t::text FROM remediations t
        UNION ALL SELECT 'w' || t::text FROM maintenance_windows t UNION ALL SELECT 'e' || t::text FROM audit_events t) s";
    let rows_before: String = sql.query_one(fingerprint, &[]).await.unwrap().get(0);
    let (sent, kube_calls) = (
        week.sink.lock().unwrap().count(),
        week.kube.lock().unwrap().requests().len(),
    );

    // Through the binary, as a settings repository's CI runs it.
    let same = yaml_file(&week.settings(&[]));
    let changed = yaml_file(&week.settings(&[("- after: 8s", "- after: 1h")]));
    let run = |file: &tempfile::NamedTempFile, extra: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_medic"));
        command
            .args(["replay", "--config"])
            .arg(file.path())
            .args([
                "--from",
                &week.from.to_rfc3339(),
                "--until",
                &week.until.to_rfc3339(),
            ])
            .args(extra)
            .env_clear()
            .env("MEDIC_DATABASE__URL", &week.database_url);
        medic(&mut command)
    };
    let (code, stdout, stderr) = run(&same, &["--format", "json", "--fail-on-change"]);
    assert_eq!(code, Some(0), "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["changed"], 0);
    assert_eq!(json["incidents"], ERRORS + CRASHES + DISKS);
    let (code, stdout, stderr) = run(&changed, &["--fail-on-change"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stdout.contains("changed") && stdout.contains("message escalation to pagerduty"),
        "{stdout}"
    );
    let (code, _, _) = run(&same, &["--since", "7d"]);
    assert_eq!(code, Some(2), "--since with --from is a usage error");

    let rows_after: String = sql.query_one(fingerprint, &[]).await.unwrap().get(0);
    assert_eq!(rows_before, rows_after, "a row changed");
    assert_eq!(week.sink.lock().unwrap().count(), sent, "a message was sent");
    assert_eq!(
        week.kube.lock().unwrap().requests().len(),
        kube_calls,
        "Kubernetes was called"
    );
}

fn describe(fact: &Fact) -> String {
    match fact {
        Fact::Rule { rule } => format!("rule {rule}"),
        Fact::Message { notifier, kind, .. } => format!("message {kind} {notifier}"),
        Fact::Remediation { action, decision, .. } => format!("remediation {action} {decision}"),
    }
}
