//! A rule in `mode: observe`, and a step's `verify_query`, over real HTTP and Postgres with the
//! fake Kubernetes API server and a real Prometheus: the watching rule decides with every guard
//! rail and records what it would have done, and changes nothing; the query is read before the
//! step acts and when it is verified.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    console::{get_page, session_cookie},
    helpers::{
        config::{assert_problem, check_config, problems_in, yaml, AUTH},
        eventually,
        fake_kube::FakeKube,
        firing_alert,
        prometheus::{self, Prometheus},
        sink::{Reply, Sink},
        TestApp, VIEWER,
    },
    proof::remediation_head,
};

const NS: &str = "shop";
const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    kube: FakeKube,
    _kubeconfig: tempfile::NamedTempFile,
    app: TestApp,
    sink: Sink,
    _prometheus: Option<Prometheus>,
}

/// Rules that watch (`watch`, `watch-approval`, `watch-sticky`) and one that acts (`act`), all
/// on the Deployments named by the alert; every rule pages `oncall` only after an hour, so
/// that an early hand-over would show within a test's wait. `evidence` and `quiet` read their
/// `verify_query` from `prometheus` when it is given.
async fn setup(deployments: &[(&str, i32)], prometheus: Option<Prometheus>, sink: Sink) -> Setup {
    let kube = FakeKube::start().await;
    for (name, replicas) in deployments {
        kube.add_deployment(NS, name, *replicas, &[("app", name)]);
    }
    let kubeconfig = kube.kubeconfig();
    let scale = r#"{action: scale_up, params: {namespace: "{{ labels.namespace }}", deployment: "{{ labels.deployment }}", step: 1, max: 10}"#;
    let evidence = match &prometheus {
        Some(p) => format!(
            r#"prometheus: {{url: "{url}"}}
rules:
  - name: evidence
    matchers: ['alertname="Errors"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    remediate:
      - {scale}, verify_within: 8s, hold: 0s, verify_query: {{query: 'error_ratio{{job="app", deployment="{{{{ labels.deployment }}}}"}}', name: error ratio, format: percent}}}}
  - name: quiet
    matchers: ['alertname="Quiet"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    remediate:
      - {scale}, verify_within: 1s, hold: 0s, verify_query: 'no_such_series{{job="app"}}'}}
"#,
            url = p.url
        ),
        None => "rules:\n".to_owned(),
    };
    let config = format!(
        r#"
{head}{evidence}  - name: watch
    matchers: ['alertname="Busy"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    mode: observe
    remediate:
      - {scale}, verify_within: 1s, hold: 1s}}
  - name: act
    matchers: ['alertname="BusyForReal"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    remediate: {scale}}}
  - name: watch-approval
    matchers: ['alertname="Crashing"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    mode: observe
    remediate:
      action: restart_pods
      params: {{namespace: "{{{{ labels.namespace }}}}", pod: "{{{{ labels.pod }}}}", ready_timeout: 3s}}
      approval: required
  - name: watch-sticky
    matchers: ['alertname="Sticky"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [oncall]}}]
    mode: observe
    remediate:
      - {scale}, cooldown: 0s, verify_within: 1s, hold: 30s}}
engine: {{request_timeout: 2s}}
"#,
        head = remediation_head(
            &kubeconfig.path().display().to_string(),
            &sink.url("/slack"),
            &sink.url("/oncall")
        ),
    );
    let app = TestApp::builder().config(&config).spawn().await;
    Setup {
        kube,
        _kubeconfig: kubeconfig,
        app,
        sink,
        _prometheus: prometheus,
    }
}

/// `alertname` on `deployment`, one episode that started at `starts_at`.
fn alert(alertname: &str, fingerprint: &str, deployment: &str, starts_at: &str) -> Value {
    let labels = json!({"namespace": NS, "deployment": deployment});
    let mut payload = firing_alert(fingerprint, alertname, fingerprint, labels);
    payload["alerts"][0]["startsAt"] = json!(starts_at);
    payload
}

async fn resolve(app: &TestApp, mut payload: Value) {
    payload["status"] = json!("resolved");
    payload["alerts"][0]["status"] = json!("resolved");
    payload["alerts"][0]["endsAt"] = json!("2026-11-26T23:59:00Z");
    app.post_for_incident(&payload).await;
}

/// Polls the incident until `done` holds for its remediations; returns them.
async fn remediations_until(app: &TestApp, id: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    eventually("the incident's remediations", WAIT, || async {
        let incident = app.incident(id).await;
        let remediations = incident["remediations"].as_array().unwrap().clone();
        done(&remediations).then_some(remediations).ok_or(incident)
    })
    .await
}

async fn finished(app: &TestApp, id: i64) -> Value {
    remediations_until(app, id, |r| {
        r.first().is_some_and(|r| !r["finished_at"].is_null())
    })
    .await[0]
        .clone()
}

/// Waits for a message at `path` containing `text`.
async fn heard(sink: &Sink, path: &str, text: &str) {
    eventually(&format!("{text:?} at {path}"), WAIT, || async {
        let heard = sink.received_at(path);
        let texts: Vec<String> = heard.iter().map(|m| m.text.clone()).collect();
        texts
            .iter()
            .any(|t| t.contains(text))
            .then_some(())
            .ok_or(format!("{texts:?}"))
    })
    .await
}

fn replicas(kube: &FakeKube, name: &str) -> i64 {
    kube.deployment(NS, name).unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

/// What medic asked of the cluster other than reads.
fn writes(kube: &FakeKube) -> Vec<String> {
    kube.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

async fn step_record(app: &TestApp, rule: &str) -> Value {
    let body = app.get_json("/api/v1/rules/effectiveness?window=30d").await;
    let rows: Vec<&Value> = body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rule"] == rule)
        .collect();
    assert_eq!(rows.len(), 1, "one record for {rule}: {body}");
    rows[0].clone()
}

#[tokio::test]
async fn a_rule_in_observe_mode_records_what_it_would_have_done_and_changes_nothing() {
    let s = setup(&[("web", 1), ("api", 1)], None, Sink::start(1).await).await;
    let first = alert("Busy", "00000000000000d1", "web", "2026-11-26T10:00:00Z");
    let id = s.app.post_for_incident(&first).await;

    let done = finished(&s.app, id).await;
    assert_eq!(
        (&done["result"], &done["mode"]),
        (&json!("observed"), &json!("observe")),
        "{done}"
    );
    let summary = done["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("observed: would have run scale_up on deployment/shop/web: would scale deployment/web from 1 to 2"),
        "{summary}"
    );
    let plan = &done["detail"]["observed"];
    assert_eq!(
        (&plan["action"], &plan["target"], &plan["params"]["deployment"]),
        (&json!("scale_up"), &json!("deployment/shop/web"), &json!("web")),
        "{done}"
    );
    assert_eq!(replicas(&s.kube, "web"), 1, "nothing was changed");
    assert_eq!(writes(&s.kube), Vec::<String>::new());
    let timeline = s.app.incident(id).await["timeline"].clone();
    let event = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "remediation")
        .cloned()
        .unwrap_or_else(|| panic!("{timeline}"));
    assert_eq!(
        (&event["result"], &event["mode"]),
        (&json!("observed"), &json!("observe"))
    );
    assert!(
        event["summary"]
            .as_str()
            .unwrap()
            .starts_with("observed: would have run scale_up on deployment/shop/web"),
        "{event}"
    );
    heard(
        &s.sink,
        "/slack",
        "observed: would have run scale_up on deployment/shop/web",
    )
    .await;

    // It spent nothing: a rule that acts on the same Deployment is neither in its cooldown nor
    // over budget.
    let real = alert("BusyForReal", "00000000000000d2", "web", "2026-11-26T10:00:00Z");
    let acted = finished(&s.app, s.app.post_for_incident(&real).await).await;
    assert_eq!(acted["result"], "success", "{acted}");
    assert_eq!(replicas(&s.kube, "web"), 2);

    // Verified as if it had run: the alert resolved and stayed resolved for hold.
    resolve(&s.app, first).await;
    remediations_until(&s.app, id, |r| {
        r.first().is_some_and(|r| r["verification"] == "fixed")
    })
    .await;
    heard(
        &s.sink,
        "/slack",
        "observed, nothing was done: the alert resolved within verify_within and stayed resolved for hold",
    )
    .await;

    // On api: the step is observed and the alert goes on firing (not fixed); a second firing
    // within the cooldown is skipped as if the first had acted. Nobody is paged early.
    let api = alert("Busy", "00000000000000d3", "api", "2026-11-26T10:00:00Z");
    let id = s.app.post_for_incident(&api).await;
    remediations_until(&s.app, id, |r| {
        r.first().is_some_and(|r| r["verification"] == "not_fixed")
    })
    .await;
    let again = alert("Busy", "00000000000000d4", "api", "2026-11-26T10:00:00Z");
    let skipped = finished(&s.app, s.app.post_for_incident(&again).await).await;
    assert_eq!(skipped["result"], "skipped_cooldown", "{skipped}");
    assert_eq!(replicas(&s.kube, "api"), 1);
    s.sink.expect_no_more("/oncall", 0, Duration::from_secs(2)).await;

    let record = step_record(&s.app, "watch").await;
    assert_eq!(
        [
            &record["mode"],
            &record["acted"],
            &record["fixed"],
            &record["not_fixed"],
            &record["skipped"],
            &record["fix_rate"],
            &record["demoted"]
        ],
        [
            &json!("observe"),
            &json!(2),
            &json!(1),
            &json!(1),
            &json!(1),
            &json!(0.5),
            &json!(false)
        ],
        "{record}"
    );
    assert_eq!(step_record(&s.app, "act").await["mode"], "act");
    // The console's rules page shows the same record, as observed.
    let cookie = session_cookie(&s.app, VIEWER.2).await;
    let page = get_page(&s.app, &cookie, "/ui/rules").await.text().await.unwrap();
    let row = page
        .split(r#"data-rule="watch" data-step="1" data-mode="observe""#)
        .nth(1)
        .unwrap_or_else(|| panic!("no observed row: {page}"));
    assert!(
        row.contains(r#"<td class="mode">observed</td><td class="acted">2</td>"#),
        "{row}"
    );
    assert!(page.contains("decided and recorded as observed, nothing is changed"));
    let observed = |outcome: &str| {
        format!(
            "medic_remediation_observed_outcomes_total{{action=\"scale_up\",outcome=\"{outcome}\",rule=\"watch\"}}"
        )
    };
    for outcome in ["fixed", "not_fixed", "skipped"] {
        assert_eq!(s.app.metric(&observed(outcome)).await, 1.0, "{outcome}");
    }
    let metrics = s.app.metrics().await;
    assert!(
        !metrics.contains(
            "medic_remediation_outcomes_total{action=\"scale_up\",outcome=\"fixed\",rule=\"watch\"}"
        ),
        "an observed fix is not counted as medic's"
    );
    assert_eq!(
        s.app
            .metric("medic_remediations_total{action=\"scale_up\",result=\"observed\"}")
            .await,
        2.0
    );
}

#[tokio::test]
async fn an_observed_step_that_needs_approval_asks_nobody_and_evicts_nothing() {
    let s = setup(&[("api", 4)], None, Sink::start(1).await).await;
    let pods = s.kube.wait_ready_pods(NS, "api", 4, WAIT).await;
    let pod = pods[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let labels = json!({"namespace": NS, "pod": pod});
    let payload = firing_alert("00000000000000e1", "Crashing", "00000000000000e1", labels);
    let id = s.app.post_for_incident(&payload).await;

    let done = finished(&s.app, id).await;
    assert_eq!(done["result"], "observed", "{done}");
    let summary = done["summary"].as_str().unwrap();
    let says = format!(
        "observed: would have asked for approval (approval: required), then run restart_pods on pod/{NS}/{pod}: "
    );
    assert!(summary.starts_with(&says), "{summary}");
    assert_eq!(done["detail"]["observed"]["approval"], "approval: required");
    assert!(done.get("approval").is_none(), "no request: {done}");
    let requests = s.app.get_json("/api/v1/remediations").await;
    assert_eq!(requests["remediations"], json!([]), "{requests}");

    assert_eq!(writes(&s.kube), Vec::<String>::new());
    let names: Vec<Value> = s
        .kube
        .pods(NS)
        .iter()
        .map(|p| p["metadata"]["name"].clone())
        .collect();
    assert!(names.contains(&json!(pod)), "{names:?}");
    heard(&s.sink, "/slack", "[REMEDIATION OBSERVED]").await;
    let messages = s.sink.received_at("/slack");
    assert!(
        messages.iter().all(|m| !m.text.contains("APPROVAL NEEDED")),
        "{messages:?}"
    );
}

#[tokio::test]
async fn observed_relapses_demote_nothing() {
    let s = setup(&[("cache", 1)], None, Sink::start(1).await).await;
    let fp = "00000000000000f1";
    for hour in ["01", "02", "03"] {
        let first = alert("Sticky", fp, "cache", &format!("2026-11-26T{hour}:00:00Z"));
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
        let refired = alert("Sticky", fp, "cache", &format!("2026-11-26T{hour}:30:00Z"));
        let second = s.app.post_for_incident(&refired).await;
        remediations_until(&s.app, second, |r| {
            r.iter().any(|r| r["verification"] == "relapsed")
        })
        .await;
        resolve(&s.app, refired).await;
    }
    let record = step_record(&s.app, "watch-sticky").await;
    assert_eq!(
        (&record["relapsed"], &record["demoted"]),
        (&json!(3), &json!(false)),
        "{record}"
    );
    assert_eq!(s.app.count("SELECT count(*) FROM rule_demotions").await, 0);

    let fourth = alert("Sticky", fp, "cache", "2026-11-26T04:00:00Z");
    let id = s.app.post_for_incident(&fourth).await;
    let done = remediations_until(&s.app, id, |r| r.iter().any(|r| !r["finished_at"].is_null())).await;
    assert!(
        done.iter().all(|r| r["result"] == "observed"),
        "no approval asked: {done:?}"
    );
    assert_eq!(replicas(&s.kube, "cache"), 1);
}

/// Polls Prometheus until `query` yields `value`.
async fn until_prometheus_says(prometheus: &str, query: &str, value: &str) {
    let client = reqwest::Client::new();
    eventually(&format!("Prometheus to say {query} = {value}"), WAIT, || async {
        let body: Value = client
            .get(format!("{prometheus}/api/v1/query"))
            .query(&[("query", query)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (body["data"]["result"][0]["value"][1] == value)
            .then_some(())
            .ok_or(body)
    })
    .await
}

fn exposition(value: f64) -> Reply {
    Reply::status(200)
        .with_header("Content-Type", "text/plain; version=0.0.4")
        .with_body(&format!("error_ratio{{deployment=\"web\"}} {value}\n"))
}

#[tokio::test]
async fn a_verify_query_is_read_before_acting_and_when_verifying() {
    let sink = Sink::start(1).await;
    sink.set_default("/metrics", exposition(0.072));
    let prometheus = prometheus::scraping(&sink.url("/metrics")).await;
    let url = prometheus.url.clone();
    let query = r#"error_ratio{job="app", deployment="web"}"#;
    until_prometheus_says(&url, query, "0.072").await;
    let s = setup(&[("web", 1), ("api", 1)], Some(prometheus), sink).await;

    let errors = alert("Errors", "00000000000000a7", "web", "2026-11-26T10:00:00Z");
    let id = s.app.post_for_incident(&errors).await;
    let done = finished(&s.app, id).await;
    assert_eq!(done["result"], "success", "{done}");
    assert!(
        done["summary"]
            .as_str()
            .unwrap()
            .ends_with("; error ratio 7.2% before acting"),
        "{done}"
    );
    assert_eq!(done["evidence"]["query"], query, "{done}");
    assert_eq!(done["evidence"]["before"]["value"], 0.072, "{done}");

    // The fix works: the error ratio falls, and the alert resolves within verify_within.
    s.sink.set_default("/metrics", exposition(0.004));
    until_prometheus_says(&url, query, "0.004").await;
    resolve(&s.app, errors).await;
    let done = remediations_until(&s.app, id, |r| {
        r.first().is_some_and(|r| r["verification"] == "fixed")
    })
    .await;
    let evidence = &done[0]["evidence"];
    assert_eq!(
        (&evidence["before"]["value"], &evidence["after"]["value"]),
        (&json!(0.072), &json!(0.004)),
        "{evidence}"
    );
    assert_eq!(evidence["summary"], "error ratio 7.2% → 0.4%");
    let timeline = s.app.incident(id).await["timeline"].clone();
    assert!(
        timeline
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "remediation" && e["evidence"] == "error ratio 7.2% → 0.4%"),
        "{timeline}"
    );
    heard(
        &s.sink,
        "/slack",
        "stayed resolved for hold; error ratio 7.2% → 0.4%",
    )
    .await;
}

#[tokio::test]
async fn a_verify_query_without_exactly_one_series_records_why_and_the_step_goes_on() {
    let sink = Sink::start(1).await;
    sink.set_default("/metrics", exposition(0.072));
    let prometheus = prometheus::scraping(&sink.url("/metrics")).await;
    let s = setup(&[("api", 1)], Some(prometheus), sink).await;

    let quiet = alert("Quiet", "00000000000000a8", "api", "2026-11-26T10:00:00Z");
    let id = s.app.post_for_incident(&quiet).await;
    let done = remediations_until(&s.app, id, |r| {
        r.first().is_some_and(|r| r["verification"] == "not_fixed")
    })
    .await;
    assert_eq!(done[0]["result"], "success", "{done:?}");
    assert_eq!(replicas(&s.kube, "api"), 2, "the step acted");
    let evidence = &done[0]["evidence"];
    for reading in ["before", "after"] {
        assert_eq!(evidence[reading]["error"], "0 series, not one", "{evidence}");
        assert!(evidence[reading].get("value").is_none(), "{evidence}");
    }
    assert_eq!(
        evidence["summary"],
        "verify_query unknown (0 series, not one) → unknown (0 series, not one)"
    );
}

fn rule(remediate: &str) -> String {
    format!("rules:\n  - name: r\n    matchers: ['alertname=\"X\"']\n    remediate: {remediate}\n")
}

#[test]
fn check_config_refuses_a_verify_query_without_prometheus_and_a_mode_it_does_not_know() {
    let step =
        "{action: scale_up, params: {namespace: p, deployment: d}, verify_within: 5m, verify_query: 'up'}";
    let problems = problems_in(&rule(step));
    assert_problem(
        &problems,
        "rules[0].remediate.verify_query",
        "needs prometheus.url",
    );
    let with_prometheus = format!("prometheus: {{url: 'http://prometheus:9090'}}\n{}", rule(step));
    crate::helpers::config::load_yaml(&with_prometheus, &[]).expect("loads with prometheus.url");

    let unverified = "{action: scale_up, params: {namespace: p, deployment: d}, verify_query: 'up'}";
    let problems = problems_in(&format!(
        "prometheus: {{url: 'http://prometheus:9090'}}\n{}",
        rule(unverified)
    ));
    assert_problem(
        &problems,
        "rules[0].remediate.verify_query",
        "needs verify_within",
    );

    let templated = "{action: scale_up, params: {namespace: p, deployment: d}, verify_within: 5m, \
                     verify_query: {query: 'up{a=\"{{ nothing }}\"}', name: up}}";
    let problems = problems_in(&format!(
        "prometheus: {{url: 'http://prometheus:9090'}}\n{}",
        rule(templated)
    ));
    assert_problem(&problems, "rules[0].remediate.verify_query", "names nothing");
    let formatted = "{action: scale_up, params: {namespace: p, deployment: d}, verify_within: 5m, \
                     verify_query: {query: up, format: ratio}}";
    let problems = problems_in(&format!(
        "prometheus: {{url: 'http://prometheus:9090'}}\n{}",
        rule(formatted)
    ));
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("\"ratio\": number or percent")),
        "{problems:#?}"
    );

    let file = yaml(&format!(
        "{AUTH}rules:\n  - name: r\n    matchers: ['alertname=\"X\"']\n    mode: watch\n    \
         remediate: {{action: rollout_restart, params: {{namespace: p, deployment: d}}}}\n"
    ));
    let (code, stdout) = check_config(file.path(), &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("rules[0].mode") && stdout.contains("\"watch\": act or observe"),
        "{stdout}"
    );

    let (code, stdout) = check_config(file_with(&rule(step)).path(), &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("rules[0].remediate.verify_query: needs prometheus.url"),
        "{stdout}"
    );
}

fn file_with(text: &str) -> tempfile::NamedTempFile {
    yaml(&format!("{AUTH}{text}"))
}

#[test]
fn explain_shows_that_a_rule_only_observes_and_what_it_would_read() {
    let config = file_with(
        "prometheus: {url: 'http://prometheus:9090'}\n\
         rules:\n  - name: watch\n    matchers: ['alertname=\"Busy\"']\n    mode: observe\n    \
         remediate:\n      action: rollout_restart\n      params: {namespace: shop, deployment: '{{ labels.deployment }}'}\n      \
         approval: required\n      verify_within: 5m\n      \
         verify_query: 'rate(errors{deployment=\"{{ labels.deployment }}\"}[5m])'\n",
    );
    let payload = tempfile::Builder::new().suffix(".txt").tempfile().unwrap();
    std::fs::write(payload.path(), r#"alertname="Busy", deployment="web""#).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["explain", "--config"])
        .arg(config.path())
        .arg(payload.path())
        .env_clear()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("  rule watch\n    mode: observe: each step is decided with every guard rail and recorded as observed"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"verify_query: rate(errors{deployment="web"}[5m]) (read before acting and when verified)"#
        ),
        "{text}"
    );
}
