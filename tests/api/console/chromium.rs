//! What a person sees and does in headless Chromium: signing in, filtering, opening and
//! acknowledging an incident, approving a remediation, the explain box and the list's tabs.

use std::time::Duration;

use serde_json::json;

use super::{
    browser::Browser,
    setups::{incident_posted, memory_payload, rules_settings, sixty_incidents_the_oldest_acknowledged},
};
use crate::helpers::{
    eventually, firing_alert,
    settings::{rule, scale_up, settings, slack},
    TestApp, RESPONDER, VIEWER,
};

#[tokio::test]
async fn an_on_call_person_signs_in_filters_opens_and_acknowledges_in_chromium() {
    let app = TestApp::builder().spawn().await;
    let id = incident_posted(&app, "{}:{alertname=\"HighLatency\"}", "HighLatency", "shop").await;
    incident_posted(&app, "{}:{alertname=\"DiskFull\"}", "DiskFull", "db").await;
    let browser = Browser::start("responder").await;

    browser.go(&format!("{}/ui/", app.address)).await;
    browser.reaches("/ui/login").await; // sent to sign in
    browser.screenshot("1-login").await;
    browser.sign_in(&app, RESPONDER.2).await;
    let list = browser.text_when(|t| t.contains("DiskFull")).await;
    assert!(
        list.contains("HighLatency") && list.contains("DiskFull"),
        "{list}"
    );
    assert!(list.contains("alice (responder)"));
    browser.screenshot("2-incidents").await;

    browser.type_into("#filter", r#"alertname="HighLatency""#).await;
    browser.click("form.filters button").await;
    let filtered = browser.text_when(|t| !t.contains("DiskFull")).await;
    assert!(
        filtered.contains("HighLatency") && !filtered.contains("DiskFull"),
        "{filtered}"
    );
    // The list refreshes itself and keeps the filter.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let refreshed = browser.text().await;
    assert!(
        refreshed.contains("HighLatency") && !refreshed.contains("DiskFull"),
        "{refreshed}"
    );
    browser.screenshot("3-filtered").await;

    browser.click("table.incidents a").await;
    let page = browser.text_when(|t| t.contains("Timeline")).await;
    browser.reaches(&format!("/ui/incidents/{id}")).await;
    assert!(
        page.contains("Runbook") && page.contains("Timeline") && page.contains("opened"),
        "{page}"
    );
    browser.screenshot("4-incident").await;
    browser.type_into("#note", "looking at the shop's latency").await;
    browser.click("section.actions form[action$='/ack'] button").await;
    let acked = browser.text_when(|t| t.contains("alice via console")).await;
    assert!(acked.contains("alice via console"), "{acked}");
    browser.screenshot("5-acknowledged").await;
    let api = app.incident(id).await;
    assert_eq!(api["acknowledgement"]["by"], "alice");
    assert_eq!(api["acknowledgement"]["note"], "looking at the shop's latency");
    assert_eq!(api["acknowledgement"]["via"], "console");

    browser.go(&format!("{}/ui/?tab=acknowledged", app.address)).await;
    assert!(browser.text().await.contains("HighLatency"));
    for (page, heading) in [
        ("remediations", "Remediations"),
        ("maintenance", "Maintenance"),
        ("rules", "Rules"),
    ] {
        browser.go(&format!("{}/ui/{page}", app.address)).await;
        assert!(browser.text().await.contains(heading));
        browser.screenshot(&format!("6-{page}")).await;
    }
    browser.resize(390, 844).await;
    browser.go(&format!("{}/ui/incidents/{id}", app.address)).await;
    browser.screenshot("7-phone-incident").await;
    browser.resize(1280, 1300).await;

    browser.click("header form button").await;
    browser.reaches("/ui/login").await; // signed out
    browser.go(&format!("{}/ui/", app.address)).await;
    browser.reaches("/ui/login").await; // the session is gone
    browser.quit().await;
}

#[tokio::test]
async fn a_viewer_sees_no_buttons_in_chromium() {
    let app = TestApp::builder().spawn().await;
    let id = incident_posted(&app, "{}:{alertname=\"HighLatency\"}", "HighLatency", "shop").await;
    let browser = Browser::start("viewer").await;
    browser.sign_in(&app, VIEWER.2).await;
    browser.go(&format!("{}/ui/incidents/{id}", app.address)).await;
    assert!(browser.text().await.contains("vera (viewer)"));
    assert_eq!(browser.count("section.actions").await, 0);
    assert_eq!(browser.count("form[method='post']").await, 1, "only signing out");
    browser.screenshot("incident").await;
    browser.quit().await;
}

#[tokio::test]
async fn a_responder_approves_a_waiting_remediation_in_chromium() {
    let kube = crate::helpers::fake_kube::FakeKube::start().await;
    kube.add_deployment("shop", "api", 1, &[("app", "api")]);
    let kubeconfig = kube.kubeconfig();
    let sink = crate::helpers::sink::Sink::start(1).await;
    let settings = settings()
        .with("dry_run", false)
        .kubernetes(kubeconfig.path(), "5s")
        .notifier("slack", slack(&sink.url("/slack")))
        .with(
            "remediation",
            json!({"namespaces": {"allow": ["shop"]}, "approval": {"timeout": "1h"}}),
        )
        .rule(
            rule("careful")
                .matching(r#"alertname="HighMemoryUsage""#)
                .notify(&["slack"])
                .escalate("1h", &["slack"])
                .remediate(scale_up(2, 5).with("cooldown", "0s").with("approval", "required")),
        );
    let app = TestApp::builder().settings(&settings).spawn().await;
    let labels = json!({"namespace": "shop", "deployment": "api", "severity": "warning"});
    let mut payload = firing_alert("g1", "HighMemoryUsage", "00000000000000d1", labels);
    payload["commonLabels"] = payload["alerts"][0]["labels"].clone();
    payload["groupLabels"] = json!({"alertname": "HighMemoryUsage"});
    let id = app.post_for_incident(&payload).await;
    let waiting = "SELECT count(*) FROM remediations WHERE result = 'awaiting_approval'";
    eventually("a request for approval", Duration::from_secs(20), || async {
        app.count(waiting).await > 0
    })
    .await;

    let browser = Browser::start("approval").await;
    browser.sign_in(&app, RESPONDER.2).await;
    assert!(
        browser
            .text_when(|t| t.contains("awaiting approval"))
            .await
            .contains("awaiting approval"),
        "the list says so"
    );
    browser.go(&format!("{}/ui/remediations", app.address)).await;
    assert!(browser.text().await.contains("Approve"));
    browser.screenshot("1-remediations").await;
    browser.go(&format!("{}/ui/rules", app.address)).await;
    assert!(browser.text().await.contains("careful"));
    browser.screenshot("2-rules").await;
    browser.go(&format!("{}/ui/incidents/{id}", app.address)).await;
    browser.screenshot("3-incident-waiting").await;
    browser.click("button.approve").await;
    browser.reaches(&format!("/ui/incidents/{id}")).await;
    let acted = eventually("the approved step to act", Duration::from_secs(20), || async {
        let remediation = app.incident(id).await["remediations"][0].clone();
        if remediation["result"] == "success" {
            Ok(remediation)
        } else {
            Err(remediation)
        }
    })
    .await;
    assert_eq!(acted["approval"]["decided_by"], "alice");
    let audit = app
        .count("SELECT count(*) FROM audit_events WHERE action = 'approve' AND channel = 'console'")
        .await;
    assert_eq!(audit, 1);
    browser.go(&format!("{}/ui/incidents/{id}", app.address)).await;
    assert!(browser.text().await.contains("approved by alice"));
    browser.screenshot("4-incident-approved").await;
    browser.quit().await;
}

#[tokio::test]
async fn the_explain_box_shows_the_rule_its_action_and_its_timers_in_chromium() {
    let app = TestApp::builder().settings(&rules_settings()).spawn().await;
    let browser = Browser::start("explain").await;
    browser.sign_in(&app, VIEWER.2).await;
    browser.text_when(|t| t.contains("vera (viewer)")).await;
    browser.go(&format!("{}/ui/rules", app.address)).await;
    let rules = browser.text().await;
    assert!(
        rules.contains(r#"alertname="HighMemoryUsage""#)
            && rules.contains(r#"namespace=~"shop|shop-canary""#),
        "{rules}"
    );
    assert!(
        rules.contains("scale_up") && rules.contains("rollout_restart"),
        "{rules}"
    );
    browser.screenshot("1-rules").await;

    browser.type_into("#payload", &memory_payload()).await;
    browser.click("form.explain button").await;
    let answer = browser.text_when(|t| t.contains("Rule memory-in-shop")).await;
    assert!(answer.contains("Rule memory-in-shop"), "{answer}");
    assert!(answer.contains("scale_up on deployment/shop/api"), "{answer}");
    assert!(
        answer.contains("Step 2: rollout_restart on deployment/shop/api"),
        "{answer}"
    );
    assert!(answer.contains("escalation step 1"), "{answer}");
    assert_eq!(
        browser.count("#explanation table.timers tbody tr").await,
        3,
        "opened, escalation step 1, remediation: {answer}"
    );
    browser.screenshot("2-explained").await;

    browser.type_into("#payload", r#"{"alertname": 42}"#).await;
    browser.click("form.explain button").await;
    let refused = browser.text_when(|t| t.contains("Cannot explain this")).await;
    assert!(refused.contains("a label's value is a string"), "{refused}");
    assert_eq!(browser.count("#explain-error").await, 1);
    assert_eq!(browser.count("#explanation").await, 0);
    browser.screenshot("3-bad-payload").await;
    browser.quit().await;
}

#[tokio::test]
async fn the_acknowledged_tab_shows_an_acknowledged_incident_behind_a_page_of_firing_ones_in_chromium() {
    let app = TestApp::builder().spawn().await;
    sixty_incidents_the_oldest_acknowledged(&app).await;
    let browser = Browser::start("tabs").await;
    browser.sign_in(&app, VIEWER.2).await;
    let firing = browser.text_when(|t| t.contains("Busy59")).await;
    assert!(firing.contains("Busy59") && firing.contains("Busy10"), "{firing}");
    assert!(
        !firing.contains("Busy0") && !firing.contains("Busy9"),
        "older than a page: {firing}"
    );
    assert_eq!(browser.count("table.incidents tbody tr").await, 50);
    browser.screenshot("1-firing").await;

    browser.click("p.paging a").await;
    let older = browser.text_when(|t| t.contains("Busy9")).await;
    assert_eq!(
        browser.count("table.incidents tbody tr").await,
        9,
        "Busy9 to Busy1: {older}"
    );
    assert!(!older.contains("Busy0"), "{older}");

    browser.go(&format!("{}/ui/?tab=acknowledged", app.address)).await;
    let acked = browser.text_when(|t| t.contains("Busy0")).await;
    assert!(acked.contains("Busy0") && acked.contains("alice"), "{acked}");
    assert_eq!(browser.count("table.incidents tbody tr").await, 1, "{acked}");
    browser.screenshot("2-acknowledged").await;
    browser.quit().await;
}
