//! The trust boundary: who may make medic act, and on what. Each role against each endpoint,
//! acknowledgements recorded as the authenticated caller, JSON-only state changes, rotated
//! token files, and identities from a trusted proxy.

use std::{path::Path, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    eventually, fixture, ok_200, TestApp, ADMIN, OTHER_RESPONDER, RESPONDER, TOKEN, VIEWER,
};

/// What a caller sends: nothing, a token nobody has, Alertmanager's, or a user's.
#[derive(Debug, Clone, Copy)]
enum Who {
    Nobody,
    Stranger,
    Alertmanager,
    User(&'static str),
}

impl Who {
    fn token(self) -> Option<&'static str> {
        match self {
            Who::Nobody => None,
            Who::Stranger => Some("not-anyones-token"),
            Who::Alertmanager => Some(TOKEN),
            Who::User(token) => Some(token),
        }
    }
}

async fn call(app: &TestApp, who: Who, method: Method, path: &str, body: Option<String>) -> StatusCode {
    let mut request = app.client.request(method, format!("{}{path}", app.address));
    if let Some(token) = who.token() {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn each_credential_may_do_only_what_its_role_allows() {
    let app = TestApp::builder().spawn().await;
    let id = app
        .post_for_incident(&serde_json::from_str(&fixture("firing.json")).unwrap())
        .await;
    let incident = format!("/api/v1/incidents/{id}");
    let ack = format!("/api/v1/incidents/{id}/ack");
    let webhook = || Some(fixture("firing.json"));
    let note = || Some(r#"{"note": "on it"}"#.to_owned());

    // (who, webhook, list, one incident, acknowledge)
    let table = [
        (Who::Nobody, 401, 401, 401, 401),
        (Who::Stranger, 401, 401, 401, 401),
        (Who::Alertmanager, 200, 403, 403, 403),
        (Who::User(VIEWER.2), 403, 200, 200, 403),
        (Who::User(RESPONDER.2), 403, 200, 200, 200),
        (Who::User(ADMIN.2), 403, 200, 200, 200),
    ];
    for (who, post, list, one, acknowledge) in table {
        let got = (
            call(&app, who, Method::POST, "/webhook", webhook())
                .await
                .as_u16(),
            call(&app, who, Method::GET, "/api/v1/incidents", None)
                .await
                .as_u16(),
            call(&app, who, Method::GET, &incident, None).await.as_u16(),
            call(&app, who, Method::POST, &ack, note()).await.as_u16(),
        );
        assert_eq!(got, (post, list, one, acknowledge), "{who:?}");
    }
    // Probes and metrics stay open to the kubelet and Prometheus.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            call(&app, Who::Nobody, Method::GET, path, None).await,
            200,
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_acknowledgement_is_recorded_as_the_authenticated_caller_with_where_from() {
    let app = TestApp::builder().spawn().await;
    let id = app
        .post_for_incident(&serde_json::from_str(&fixture("firing.json")).unwrap())
        .await;

    let impostor = app
        .acknowledge(id, &json!({"by": "ada", "note": "it was ada"}))
        .await;
    assert_eq!(impostor.status(), 422, "alice may not acknowledge as ada");
    let response = app.acknowledge(id, &json!({"note": "looking"})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["acknowledged"]["by"], RESPONDER.0);

    let again = app
        .acknowledge_as(OTHER_RESPONDER.2, id, &json!({"by": "bob"}))
        .await;
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["already_acknowledged"], true);

    let incident = app.incident(id).await;
    let acknowledged: Vec<&Value> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "acknowledged")
        .collect();
    assert_eq!(
        acknowledged.len(),
        1,
        "a repeat changes nothing and records nothing"
    );
    let event = acknowledged[0];
    assert_eq!(event["by"], RESPONDER.0);
    assert_eq!(event["role"], "responder");
    assert_eq!(event["auth"], "token");
    assert_eq!(
        event["via"], "api",
        "the way it came, apart from how the person was authenticated"
    );
    assert_eq!(event["from"], "127.0.0.1");
    assert_eq!(event["note"], "looking");
    assert!(event["at"].is_string());
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE actor = 'alice' AND action = 'acknowledge'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_state_change_that_is_not_json_is_415_so_a_form_cannot_post_it() {
    let app = TestApp::builder().spawn().await;
    let id = app
        .post_for_incident(&serde_json::from_str(&fixture("firing.json")).unwrap())
        .await;
    for content_type in [
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("text/plain"),
        None,
    ] {
        let mut request = app
            .client
            .post(format!("{}/api/v1/incidents/{id}/ack", app.address))
            .bearer_auth(RESPONDER.2)
            .body(r#"{"note": "from a form"}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let status = request.send().await.unwrap().status();
        assert_eq!(status, 415, "{content_type:?}");
    }
    assert!(app.incident(id).await["acknowledgement"].is_null());
}

/// Polls until `token` is accepted for `GET /api/v1/incidents` (or, for Alertmanager's, for
/// `POST /webhook`); how long it took.
async fn until_accepted(app: &TestApp, who: Who, within: Duration) -> Duration {
    let started = std::time::Instant::now();
    let what = format!("{who:?} to be accepted");
    eventually(&what, within, || async { ok_200(status_of(app, who).await) }).await;
    started.elapsed()
}

async fn status_of(app: &TestApp, who: Who) -> u16 {
    match who {
        Who::Alertmanager | Who::Nobody | Who::Stranger => {
            call(app, who, Method::POST, "/webhook", Some(fixture("firing.json")))
                .await
                .as_u16()
        }
        Who::User(_) => call(app, who, Method::GET, "/api/v1/incidents", None)
            .await
            .as_u16(),
    }
}

/// A token as a mounted Kubernetes Secret holds it: `dir/token -> ..data/token`, and
/// `..data -> ..<version>`, swapped atomically on rotation.
fn kubernetes_secret(dir: &Path, version: &str, token: &str) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join("token"), token).unwrap();
    let staged = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &staged).unwrap();
    std::fs::rename(&staged, dir.join("..data")).unwrap();
    if !dir.join("token").exists() {
        std::os::unix::fs::symlink("..data/token", dir.join("token")).unwrap();
    }
}

#[tokio::test]
async fn rotated_token_files_work_within_ten_seconds_and_the_old_tokens_stop() {
    let secret = tempfile::tempdir().unwrap();
    let webhook_file = secret.path().join("webhook-token");
    std::fs::write(&webhook_file, "webhook-token-one\n").unwrap();
    let user_secret = tempfile::tempdir().unwrap();
    kubernetes_secret(user_secret.path(), "2026_11_30_01", "user-token-one-0123456789");
    let yaml = format!(
        "server:\n  auth:\n    bearer_token_file: {}\n    users:\n      - {{name: carol, role: viewer, token_file: {}}}\n",
        webhook_file.display(),
        user_secret.path().join("token").display()
    );
    let app = TestApp::builder()
        .without_users()
        .without_env("MEDIC_SERVER__AUTH__BEARER_TOKEN")
        .config(&yaml)
        .spawn()
        .await;
    let alertmanager = |token: &'static str| Who::User(token);
    assert_eq!(
        call(
            &app,
            alertmanager("webhook-token-one"),
            Method::POST,
            "/webhook",
            Some(fixture("firing.json"))
        )
        .await,
        200
    );
    assert_eq!(status_of(&app, Who::User("user-token-one-0123456789")).await, 200);

    // An atomic rename, as tools that write files safely do.
    let staged = secret.path().join("webhook-token.new");
    std::fs::write(&staged, "webhook-token-two").unwrap();
    std::fs::rename(&staged, &webhook_file).unwrap();
    // The kubelet's symlink swap.
    kubernetes_secret(user_secret.path(), "2026_11_30_02", "user-token-two-0123456789");

    let webhook_two = || async {
        call(
            &app,
            alertmanager("webhook-token-two"),
            Method::POST,
            "/webhook",
            Some(fixture("firing.json")),
        )
        .await
    };
    eventually(
        "the rotated webhook token to be accepted",
        Duration::from_secs(10),
        || async { ok_200(webhook_two().await.as_u16()) },
    )
    .await;
    until_accepted(
        &app,
        Who::User("user-token-two-0123456789"),
        Duration::from_secs(10),
    )
    .await;
    let webhook_one = call(
        &app,
        alertmanager("webhook-token-one"),
        Method::POST,
        "/webhook",
        Some(fixture("firing.json")),
    )
    .await;
    assert_eq!(webhook_one, 401, "the old webhook token still works");
    assert_eq!(
        status_of(&app, Who::User("user-token-one-0123456789")).await,
        401,
        "the old user token still works"
    );
}

/// The proxy's settings; `secret_file` is required when `trusted` is a range.
pub(crate) fn proxy_yaml(trusted: &str, secret_file: Option<&Path>) -> String {
    let secret = secret_file.map_or_else(String::new, |f| format!("      secret_file: {}\n", f.display()));
    format!(
        r#"server:
  auth:
    proxy:
      user_header: X-Forwarded-Email
      groups_header: X-Forwarded-Groups
      trusted_sources: [{trusted}]
      roles: {{sre-oncall: responder, sre-leads: admin}}
{secret}"#
    )
}

async fn as_proxied(
    app: &TestApp,
    user: &str,
    groups: &str,
    method: Method,
    path: &str,
) -> reqwest::Response {
    app.client
        .request(method, format!("{}{path}", app.address))
        .header("X-Forwarded-Email", user)
        .header("X-Forwarded-Groups", groups)
        .header("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_trusted_proxy_names_the_user_and_their_groups_give_the_role() {
    let app = TestApp::builder()
        .without_users()
        .config(&proxy_yaml("127.0.0.1", None))
        .spawn()
        .await;
    let id = app
        .post_for_incident(&serde_json::from_str(&fixture("firing.json")).unwrap())
        .await;
    let ack = format!("/api/v1/incidents/{id}/ack");

    let outsider = as_proxied(
        &app,
        "eve@example.com",
        "marketing",
        Method::GET,
        "/api/v1/incidents",
    )
    .await;
    assert_eq!(outsider.status(), 403, "a user in no mapped group has no role");
    let acked = as_proxied(&app, "sam@example.com", "dev, sre-oncall", Method::POST, &ack).await;
    assert_eq!(acked.status(), 200);
    let body: Value = acked.json().await.unwrap();
    assert_eq!(body["acknowledged"]["by"], "sam@example.com");
    let timeline = app
        .client
        .get(format!("{}/api/v1/incidents/{id}", app.address))
        .header("X-Forwarded-Email", "sam@example.com")
        .header("X-Forwarded-Groups", "sre-oncall")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["timeline"]
        .clone();
    let event = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "acknowledged")
        .unwrap()
        .clone();
    assert_eq!(event["auth"], "proxy");
    assert_eq!(event["via"], "api");
    assert_eq!(event["from"], "203.0.113.7", "the client the proxy names");
}

#[tokio::test]
async fn identity_headers_from_an_untrusted_peer_are_ignored() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "proxy-secret-0123456789").unwrap();
    let app = TestApp::builder()
        .config(&proxy_yaml("10.0.0.0/8", Some(secret.path())))
        .without_users()
        .spawn()
        .await;
    let response = as_proxied(
        &app,
        "lead@example.com",
        "sre-leads",
        Method::GET,
        "/api/v1/incidents",
    )
    .await;
    assert_eq!(response.status(), 401, "anyone could claim to be anyone");
}

/// oauth2-proxy sends a header line per group: every line counts, not just the first.
#[tokio::test]
async fn every_groups_header_line_counts() {
    let app = TestApp::builder()
        .without_users()
        .config(&proxy_yaml("127.0.0.1", None))
        .spawn()
        .await;
    let response = app
        .client
        .get(format!("{}/api/v1/remediation/pause", app.address))
        .header("X-Forwarded-Email", "lead@example.com")
        .header("X-Forwarded-Groups", "dev")
        .header("X-Forwarded-Groups", "sre-oncall")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "sre-oncall on the second line gives a role"
    );
}
