//! Prove it helped, over real HTTP and Postgres with the fake Kubernetes API server: medic does
//! not fight Argo CD or Flux over a Deployment they manage, and a fix counts only if it holds.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{
    console::{get_page, session_cookie},
    helpers::{fake_kube::FakeKube, firing_alert, sink::Sink, TestApp, ADMIN, RESPONDER, VIEWER},
};

const NS: &str = "shop";
const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    kube: FakeKube,
    _kubeconfig: tempfile::NamedTempFile,
    app: TestApp,
    sink: Sink,
}

/// Every rule escalates to `oncall` after an hour, so that only a handover pages within a
/// test's wait.
/// The settings both this file's and observe's medic start from: a fake cluster, two Slack
/// channels, generous budgets and `demote_after` at three in an hour; their rules follow.
pub fn remediation_head(kubeconfig: &str, slack: &str, oncall: &str) -> String {
    format!(
        r#"
dry_run: false
kubernetes: {{kubeconfig: "{kubeconfig}", request_timeout: 5s}}
notifiers:
  slack: {{type: slack, url: "{slack}"}}
  oncall: {{type: slack, url: "{oncall}"}}
remediation:
  namespaces: {{allow: [{NS}]}}
  budget: {{per_target: 100/1h, per_rule: 100/1h, global: 100/1h}}
  flapping: {{max_fires: 100, window: 1h}}
  demote_after: {{count: 3, window: 1h}}
"#
    )
}

async fn setup(deployments: &[&str]) -> Setup {
    let kube = FakeKube::start().await;
    for name in deployments {
        kube.add_deployment(NS, name, 1, &[("app", name)]);
    }
    let kubeconfig = kube.kubeconfig();
    let sink = Sink::start(1).await;
    let yaml = format!(
        r#"
{head}rules:
  - name: scale
    matchers: ['alertname="Busy"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    remediate:
      action: scale_up
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: "{{{{ labels.deployment }}}}", step: 1, max: 10}}
      cooldown: 0s
  - name: scale-anyway
    matchers: ['alertname="BusyAnyway"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    remediate:
      action: scale_up
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: "{{{{ labels.deployment }}}}", step: 1, max: 10}}
      cooldown: 0s
      gitops: allow
  - name: restart
    matchers: ['alertname="Stale"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    remediate:
      action: rollout_restart
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: "{{{{ labels.deployment }}}}"}}
      cooldown: 0s
  - name: hold
    matchers: ['alertname="Leak"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    remediate:
      - action: scale_up
        params: {{namespace: "{{{{ labels.namespace }}}}", deployment: "{{{{ labels.deployment }}}}", step: 1, max: 10}}
        cooldown: 0s
        verify_within: 1s
        hold: 4s
      - action: rollout_restart
        params: {{namespace: "{{{{ labels.namespace }}}}", deployment: "{{{{ labels.deployment }}}}"}}
        cooldown: 0s
        verify_within: 1s
        hold: 4s
  - name: demote
    matchers: ['alertname="Sticky"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    remediate:
      action: scale_up
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: "{{{{ labels.deployment }}}}", step: 1, max: 20}}
      cooldown: 0s
      verify_within: 1s
      hold: 30s
engine: {{request_timeout: 2s}}
"#,
        head = remediation_head(
            &kubeconfig.path().display().to_string(),
            &sink.url("/slack"),
            &sink.url("/oncall")
        ),
    );
    let app = TestApp::builder().config(&yaml).spawn().await;
    Setup {
        kube,
        _kubeconfig: kubeconfig,
        app,
        sink,
    }
}

fn alert(alertname: &str, fingerprint: &str, deployment: &str) -> Value {
    let labels = json!({"namespace": NS, "deployment": deployment});
    firing_alert(fingerprint, alertname, fingerprint, labels)
}

async fn fire(app: &TestApp, alertname: &str, fingerprint: &str, deployment: &str) -> i64 {
    app.post_for_incident(&alert(alertname, fingerprint, deployment))
        .await
}

/// Polls the incident until `done` holds for its remediations; returns them.
async fn remediations_until(app: &TestApp, id: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    crate::helpers::eventually("the remediations to get there", WAIT, || async {
        let incident = app.incident(id).await;
        let remediations = incident["remediations"].as_array().unwrap().clone();
        done(&remediations).then_some(remediations).ok_or(incident)
    })
    .await
}

async fn first_finished(app: &TestApp, id: i64) -> Value {
    let done = remediations_until(app, id, |r| {
        r.first().is_some_and(|r| !r["finished_at"].is_null())
    })
    .await;
    done[0].clone()
}

fn replicas(kube: &FakeKube, name: &str) -> i64 {
    kube.deployment(NS, name).unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

fn patched(kube: &FakeKube, name: &str) -> bool {
    kube.requests()
        .iter()
        .any(|r| r.method == "PATCH" && r.path.contains(&format!("/deployments/{name}")))
}

#[tokio::test]
async fn a_deployment_argo_cd_manages_is_skipped_naming_the_application_and_people_take_over() {
    let s = setup(&["web"]).await;
    s.kube
        .mark_deployment(NS, "web", &[("argocd.argoproj.io/instance", "shop-web")], &[]);
    let id = fire(&s.app, "Busy", "00000000000000a1", "web").await;

    let done = first_finished(&s.app, id).await;
    assert_eq!(done["result"], "skipped_gitops", "{done}");
    let summary = done["summary"].as_str().unwrap();
    assert!(summary.contains("Argo CD application shop-web"), "{summary}");
    assert_eq!(replicas(&s.kube, "web"), 1);
    assert!(!patched(&s.kube, "web"), "nothing changed");

    let paged = s.sink.wait_for("/oncall", 1, WAIT).await;
    assert!(
        paged[0].text.contains(
            "scale_up (skipped_gitops: deployment/shop/web is managed by Argo CD application shop-web"
        ),
        "{}",
        paged[0].text
    );
    assert_eq!(
        s.app
            .metric("medic_remediations_total{action=\"scale_up\",result=\"skipped_gitops\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn argo_cds_tracking_annotation_and_flux_labels_mark_a_managed_deployment_too() {
    let s = setup(&["api", "worker", "cron"]).await;
    let tracking = (
        "argocd.argoproj.io/tracking-id",
        "shop-api:apps/Deployment:shop/api",
    );
    s.kube.mark_deployment(NS, "api", &[], &[tracking]);
    let kustomization = [
        ("kustomize.toolkit.fluxcd.io/name", "apps"),
        ("kustomize.toolkit.fluxcd.io/namespace", "flux-system"),
    ];
    s.kube.mark_deployment(NS, "worker", &kustomization, &[]);
    s.kube
        .mark_deployment(NS, "cron", &[("helm.toolkit.fluxcd.io/name", "cron")], &[]);

    for (alertname, fingerprint, deployment, says) in [
        ("Busy", "00000000000000a2", "api", "Argo CD application shop-api"),
        (
            "Stale",
            "00000000000000a3",
            "worker",
            "Flux Kustomization flux-system/apps",
        ),
        ("Stale", "00000000000000a4", "cron", "Flux HelmRelease cron"),
    ] {
        let id = fire(&s.app, alertname, fingerprint, deployment).await;
        let done = first_finished(&s.app, id).await;
        assert_eq!(done["result"], "skipped_gitops", "{done}");
        assert!(done["summary"].as_str().unwrap().contains(says), "{done}");
        assert!(!patched(&s.kube, deployment), "{deployment} changed");
    }
}

#[tokio::test]
async fn gitops_allow_acts_on_a_managed_deployment_and_warns_it_may_be_reverted() {
    let s = setup(&["web"]).await;
    s.kube
        .mark_deployment(NS, "web", &[("argocd.argoproj.io/instance", "shop-web")], &[]);
    let id = fire(&s.app, "BusyAnyway", "00000000000000a5", "web").await;

    let done = first_finished(&s.app, id).await;
    assert_eq!(done["result"], "success", "{done}");
    let summary = done["summary"].as_str().unwrap();
    assert!(
        summary.contains("scaled deployment/web from 1 to 2")
            && summary.contains("Argo CD application shop-web, which may revert this"),
        "{summary}"
    );
    assert_eq!(replicas(&s.kube, "web"), 2);
    let incident = s.app.incident(id).await;
    let timeline = incident["timeline"].to_string();
    assert!(timeline.contains("which may revert this"), "{timeline}");
    // The rule's channel hears the warning with the outcome.
    let heard = s.sink.wait_for("/slack", 2, WAIT).await;
    assert!(
        heard.iter().any(|m| m.text.contains("which may revert this")),
        "{heard:?}"
    );
}

#[tokio::test]
async fn an_unmanaged_deployment_is_acted_on_as_before() {
    let s = setup(&["web"]).await;
    let id = fire(&s.app, "Busy", "00000000000000a6", "web").await;
    let done = first_finished(&s.app, id).await;
    assert_eq!(done["result"], "success", "{done}");
    assert_eq!(replicas(&s.kube, "web"), 2);
}

/// The alert's episode that started at `starts_at` (the same fingerprint and group).
fn episode(alertname: &str, fingerprint: &str, deployment: &str, starts_at: &str) -> Value {
    let mut payload = alert(alertname, fingerprint, deployment);
    payload["alerts"][0]["startsAt"] = json!(starts_at);
    payload
}

async fn resolve(app: &TestApp, mut payload: Value) {
    payload["status"] = json!("resolved");
    payload["alerts"][0]["status"] = json!("resolved");
    payload["alerts"][0]["endsAt"] = json!("2026-11-26T10:05:00Z");
    app.post_for_incident(&payload).await;
}

#[tokio::test]
async fn a_fix_that_does_not_hold_is_relapsed_and_the_next_step_runs() {
    let s = setup(&["web"]).await;
    let first = episode("Leak", "00000000000000b1", "web", "2026-11-26T10:00:00Z");
    let id = s.app.post_for_incident(&first).await;
    remediations_until(&s.app, id, |r| r.len() == 1 && r[0]["verification"] == "pending").await;
    resolve(&s.app, first).await;
    let held = remediations_until(&s.app, id, |r| r[0]["verification"] == "holding").await;
    assert!(held[0]["hold_until"].is_string(), "{held:?}");

    // The same alert fires again within the hold: a new episode, and (the group had gone
    // quiet) a new incident.
    let again = episode("Leak", "00000000000000b1", "web", "2026-11-26T10:10:00Z");
    let second = s.app.post_for_incident(&again).await;
    assert_ne!(second, id);
    let done = remediations_until(&s.app, second, |r| {
        r.len() == 2 && r[1]["verification"] == "not_fixed"
    })
    .await;
    assert_eq!(
        (&done[0]["action"], &done[0]["verification"]),
        (&json!("scale_up"), &json!("relapsed")),
        "{done:?}"
    );
    assert!(done[0]["relapsed_at"].is_string(), "{done:?}");
    assert_eq!(
        done[1]["action"], "rollout_restart",
        "the ladder went on: {done:?}"
    );
    assert_eq!(replicas(&s.kube, "web"), 2, "step 1 did not run again");
    let first_incident = s.app.incident(id).await;
    assert_eq!(first_incident["remediations"][0]["verification"], "relapsed");

    // The ladder ran out: people hear that the first fix held only for a while.
    let paged = s.sink.wait_for("/oncall", 1, WAIT).await;
    let text = &paged[0].text;
    assert!(
        text.contains("scale_up (success, relapsed: fixed at ")
            && text.contains(", fired again at ")
            && text.contains("rollout_restart (success, not fixed)"),
        "{text}"
    );
    assert_eq!(
        s.app
            .metric("medic_remediation_verifications_total{action=\"scale_up\",result=\"relapsed\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_fix_is_fixed_only_once_the_alert_stayed_resolved_for_hold() {
    let s = setup(&["api"]).await;
    let first = episode("Leak", "00000000000000b2", "api", "2026-11-26T10:00:00Z");
    let id = s.app.post_for_incident(&first).await;
    remediations_until(&s.app, id, |r| r.len() == 1 && r[0]["verification"] == "pending").await;
    resolve(&s.app, first).await;
    remediations_until(&s.app, id, |r| r[0]["verification"] == "holding").await;
    let started = Instant::now();
    remediations_until(&s.app, id, |r| r[0]["verification"] == "fixed").await;
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "fixed before its hold"
    );

    // A firing after the hold is a new problem: the ladder starts again from its first step.
    let later = episode("Leak", "00000000000000b2", "api", "2026-11-26T11:00:00Z");
    let second = s.app.post_for_incident(&later).await;
    let done = remediations_until(&s.app, second, |r| r.len() == 1 && !r[0]["finished_at"].is_null()).await;
    assert_eq!(
        (&done[0]["action"], &done[0]["step"]),
        (&json!("scale_up"), &json!(1))
    );
    assert_eq!(replicas(&s.kube, "api"), 3);
}

/// `Sticky` fires on `cache` from `starts_at`; medic scales, the alert resolves, and it fires
/// again (from `again`) within the hold: a relapse. Returns the incident of the re-fire.
async fn fix_then_relapse(s: &Setup, starts_at: &str, again: &str) -> i64 {
    let fp = "00000000000000c1";
    let first = episode("Sticky", fp, "cache", starts_at);
    let id = s.app.post_for_incident(&first).await;
    remediations_until(&s.app, id, |r| {
        r.last().is_some_and(|r| r["verification"] == "pending")
    })
    .await;
    resolve(&s.app, first).await;
    remediations_until(&s.app, id, |r| {
        r.last().is_some_and(|r| r["verification"] == "holding")
    })
    .await;
    let refired = episode("Sticky", fp, "cache", again);
    let second = s.app.post_for_incident(&refired).await;
    remediations_until(&s.app, second, |r| {
        r.iter().any(|r| r["verification"] == "relapsed")
    })
    .await;
    resolve(&s.app, refired).await;
    second
}

async fn promote(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.address))
        .bearer_auth(token)
        .json(&json!({"note": "fixed the leak upstream"}))
        .send()
        .await
        .unwrap()
}

async fn step_record(app: &TestApp, rule: &str) -> Value {
    let body = app.get_json("/api/v1/rules/effectiveness?window=30d").await;
    let rules = body["rules"].as_array().unwrap();
    rules
        .iter()
        .find(|r| r["rule"] == rule)
        .cloned()
        .unwrap_or_else(|| panic!("{body}"))
}

#[tokio::test]
async fn three_relapses_demote_a_step_until_an_admin_promotes_it() {
    let s = setup(&["cache"]).await;
    for hour in ["01", "02", "03"] {
        fix_then_relapse(
            &s,
            &format!("2026-11-26T{hour}:00:00Z"),
            &format!("2026-11-26T{hour}:30:00Z"),
        )
        .await;
    }
    let record = step_record(&s.app, "demote").await;
    assert_eq!(
        (
            &record["step"],
            &record["action"],
            &record["acted"],
            &record["relapsed"],
            &record["fixed"]
        ),
        (&json!(1), &json!("scale_up"), &json!(3), &json!(3), &json!(0)),
        "{record}"
    );
    assert_eq!(record["fix_rate"], json!(0.0), "{record}");
    assert_eq!(record["demoted"], true, "{record}");
    assert_eq!(
        s.app
            .metric(
                "medic_remediation_outcomes_total{action=\"scale_up\",outcome=\"relapsed\",rule=\"demote\"}"
            )
            .await,
        3.0
    );

    // The fourth firing waits for a person, saying why.
    let fourth = episode("Sticky", "00000000000000c1", "cache", "2026-11-26T04:00:00Z");
    let id = s.app.post_for_incident(&fourth).await;
    // Asked once the plan is stored: the decision to ask is committed a moment before its dry
    // run's plan, and the incident shows the step in between.
    let asked = remediations_until(&s.app, id, |r| {
        r.iter()
            .any(|r| r["result"] == "awaiting_approval" && r["approval"]["plan"].is_string())
    })
    .await;
    let request = asked.iter().find(|r| r["result"] == "awaiting_approval").unwrap();
    let plan = request["approval"]["plan"].as_str().unwrap();
    assert!(
        plan.starts_with("demoted: 3 relapses in 1h; would scale deployment/cache"),
        "{plan}"
    );
    assert_eq!(replicas(&s.kube, "cache"), 4, "three fixes, none since");

    // The console shows the same record.
    let cookie = session_cookie(&s.app, VIEWER.2).await;
    let page = get_page(&s.app, &cookie, "/ui/rules").await.text().await.unwrap();
    assert!(
        page.contains("demoted: 3 relapses in 1h, needs approval until an admin promotes it"),
        "{page}"
    );
    let row = page
        .split(r#"data-rule="demote""#)
        .nth(1)
        .expect("a row for the rule");
    assert!(
        row.contains(r#"<td class="relapsed">3</td>"#) && row.contains(r#"<td class="demoted">demoted</td>"#),
        "{row}"
    );

    // Only an admin promotes; then the step acts on its own again.
    let path = "/api/v1/rules/demote/steps/1/promote";
    assert_eq!(promote(&s.app, RESPONDER.2, path).await.status(), 403);
    let promoted = promote(&s.app, ADMIN.2, path).await;
    assert_eq!(promoted.status(), 200);
    let body: Value = promoted.json().await.unwrap();
    assert_eq!(body["lifted"], "demoted: 3 relapses in 1h", "{body}");
    assert_eq!(promote(&s.app, ADMIN.2, path).await.status(), 409);
    assert!(!step_record(&s.app, "demote").await["demoted"].as_bool().unwrap());
    let audited = s
        .app
        .count("SELECT count(*) FROM audit_events WHERE action = 'promote' AND actor = 'ada'")
        .await;
    assert_eq!(audited, 1);

    resolve(&s.app, fourth).await;
    let fifth = episode("Sticky", "00000000000000c1", "cache", "2026-11-26T05:00:00Z");
    let id = s.app.post_for_incident(&fifth).await;
    let done = remediations_until(&s.app, id, |r| r.iter().any(|r| r["result"] == "success")).await;
    assert!(
        done.iter().all(|r| r["result"] != "awaiting_approval"),
        "{done:?}"
    );
    assert_eq!(replicas(&s.kube, "cache"), 5);
}

/// The console's rules page offers an admin the same promote act as the API; a responder sees
/// no button and is refused.
#[tokio::test]
async fn an_admin_promotes_a_demoted_step_from_the_console() {
    use crate::console::{csrf_of, get_page, post_form, session_cookie};
    let s = setup(&["web"]).await;
    s.app
        .sql()
        .await
        .execute(
            "INSERT INTO rule_demotions (rule, step, reason) VALUES ('demote', 1, 'demoted: 3 relapses in 1h')",
            &[],
        )
        .await
        .unwrap();
    let responder = session_cookie(&s.app, crate::helpers::RESPONDER.2).await;
    let page = get_page(&s.app, &responder, "/ui/rules")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("demoted: 3 relapses in 1h") && !page.contains(">Promote<"),
        "responder sees no button"
    );
    let refused = post_form(
        &s.app,
        &responder,
        "/ui/rules/demote/steps/1/promote",
        &[("csrf", &csrf_of(&page))],
    )
    .await;
    assert_eq!(refused.status(), 403);

    let admin = session_cookie(&s.app, crate::helpers::ADMIN.2).await;
    let page = get_page(&s.app, &admin, "/ui/rules").await.text().await.unwrap();
    assert!(page.contains(">Promote<"), "the admin's page has the button");
    let promoted = post_form(
        &s.app,
        &admin,
        "/ui/rules/demote/steps/1/promote",
        &[("csrf", &csrf_of(&page))],
    )
    .await;
    assert_eq!(promoted.status(), 303);
    let lifted = s
        .app
        .count("SELECT count(*) FROM rule_demotions WHERE promoted_by = 'ada' AND promoted_at IS NOT NULL")
        .await;
    assert_eq!(lifted, 1);
    let audited = s
        .app
        .count("SELECT count(*) FROM audit_events WHERE action = 'promote' AND channel = 'console'")
        .await;
    assert_eq!(audited, 1);
    let again = post_form(
        &s.app,
        &admin,
        "/ui/rules/demote/steps/1/promote",
        &[("csrf", &csrf_of(&page))],
    )
    .await;
    assert_eq!(again.status(), 409, "not demoted any more");
}
