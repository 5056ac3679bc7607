//! What the console's tests start from: incidents posted, a rules file with a ladder, a page
//! and more of incidents.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    firing_alert,
    settings::{rollout_restart, rule, scale_up, settings, slack, TestSettings},
    TestApp,
};

pub(super) async fn incident_posted(app: &TestApp, group: &str, alertname: &str, namespace: &str) -> i64 {
    let mut payload = firing_alert(
        group,
        alertname,
        &format!("{:016x}", group.len() * 7919),
        json!({
        "namespace": namespace, "severity": "critical"}),
    );
    payload["groupLabels"] = json!({"alertname": alertname, "namespace": namespace});
    payload["commonLabels"] = payload["alerts"][0]["labels"].clone();
    payload["commonAnnotations"] = json!({"summary": format!("{alertname} in {namespace}"),
        "runbook_url": "https://runbooks.example.com/latency"});
    payload["alerts"][0]["annotations"] = payload["commonAnnotations"].clone();
    app.post_for_incident(&payload).await
}

/// A rule with matchers, an escalation step and a two-step ladder, for the rules page.
pub(super) fn rules_settings() -> TestSettings {
    settings()
        .with("dry_run", true)
        .notifier("slack", slack("http://127.0.0.1:9/slack"))
        .with("remediation", json!({"namespaces": {"allow": ["shop"]}}))
        .rule(
            rule("memory-in-shop")
                .matching(r#"alertname="HighMemoryUsage""#)
                .matching(r#"namespace=~"shop|shop-canary""#)
                .with("severities", json!(["warning", "critical"]))
                .notify(&["slack"])
                .escalate("15m", &["slack"])
                .ladder([
                    scale_up(2, 5).with("verify_within", "5m"),
                    rollout_restart().with("approval", "required"),
                ]),
        )
}

pub(super) fn memory_payload() -> String {
    let labels = json!({"namespace": "shop", "deployment": "api", "severity": "warning"});
    let mut payload = firing_alert(
        "{}:{alertname=\"HighMemoryUsage\"}",
        "HighMemoryUsage",
        "00000000000000e1",
        labels,
    );
    payload["commonLabels"] = payload["alerts"][0]["labels"].clone();
    serde_json::to_string_pretty(&payload).unwrap()
}

/// 60 firing incidents, the oldest acknowledged: more than a page (50) of firing ones above it.
pub(super) async fn sixty_incidents_the_oldest_acknowledged(app: &TestApp) -> (i64, Vec<i64>) {
    let mut ids = Vec::new();
    for n in 0..60 {
        let group = format!("{{}}:{{alertname=\"Busy{n}\"}}");
        let fingerprint = format!("{:016x}", 0xb000 + n);
        let mut payload = firing_alert(&group, &format!("Busy{n}"), &fingerprint, json!({}));
        payload["commonLabels"] = payload["alerts"][0]["labels"].clone();
        payload["groupLabels"] = payload["alerts"][0]["labels"].clone();
        ids.push(app.post_for_incident(&payload).await);
    }
    let oldest = ids[0];
    let acked = app.acknowledge(oldest, &json!({"note": "the oldest"})).await;
    assert_eq!(acked.status(), StatusCode::OK);
    (oldest, ids)
}
