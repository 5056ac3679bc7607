//! Bearer and basic authentication on `/webhook` and `/api`.

use base64::Engine as _;

use crate::helpers::{fixture, TestApp};

#[tokio::test]
async fn a_missing_token_is_401_with_a_challenge() {
    let app = TestApp::builder().spawn().await;

    let response = app
        .webhook("application/json")
        .body(fixture("firing.json"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="medic""#);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].is_string());
    assert_eq!(app.count("SELECT count(*) FROM deliveries").await, 0);
}

#[tokio::test]
async fn a_wrong_token_is_401_on_the_webhook_and_the_api() {
    let app = TestApp::builder().spawn().await;

    let webhook = app
        .webhook("application/json")
        .bearer_auth("test-token-0123456788")
        .body(fixture("firing.json"))
        .send()
        .await
        .unwrap();
    let api = app
        .client
        .get(format!("{}/api/v1/incidents", app.address))
        .bearer_auth("x")
        .send()
        .await
        .unwrap();
    let api_without = app.get_anonymous("/api/v1/incidents/1").await;

    assert_eq!(webhook.status(), 401);
    assert_eq!(api.status(), 401);
    assert_eq!(api_without.status(), 401);
    assert_eq!(app.count("SELECT count(*) FROM deliveries").await, 0);
}

#[tokio::test]
async fn probes_and_metrics_need_no_credentials() {
    let app = TestApp::builder().spawn().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = app.get_anonymous(path).await;
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn basic_auth_as_alertmanager_sends_it_is_accepted() {
    let app = TestApp::builder()
        .without_users()
        .without_env("MEDIC_SERVER__AUTH__BEARER_TOKEN")
        .env("MEDIC_SERVER__AUTH__BASIC_AUTH__USERNAME", "alertmanager")
        .env("MEDIC_SERVER__AUTH__BASIC_AUTH__PASSWORD", "s3cret:with:colons")
        .spawn()
        .await;
    let post = |user: &'static str, password: &'static str| {
        app.client
            .post(format!("{}/webhook", app.address))
            .basic_auth(user, Some(password))
            .header("content-type", "application/json")
            .body(fixture("firing.json"))
            .send()
    };

    assert_eq!(
        post("alertmanager", "s3cret:with:colons").await.unwrap().status(),
        200
    );
    let wrong_password = post("alertmanager", "s3cret").await.unwrap();
    assert_eq!(wrong_password.status(), 401);
    assert_eq!(
        wrong_password.headers()["www-authenticate"],
        r#"Basic realm="medic", charset="UTF-8""#
    );
    assert_eq!(post("someone", "s3cret:with:colons").await.unwrap().status(), 401);
    let garbage = app
        .client
        .post(format!("{}/webhook", app.address))
        .header(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("nocolon")
            ),
        )
        .header("content-type", "application/json")
        .body(fixture("firing.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
}

#[tokio::test]
async fn the_token_can_come_from_a_file_as_a_kubernetes_secret_mounts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "from-a-file\n").unwrap();
    let app = TestApp::builder()
        .without_env("MEDIC_SERVER__AUTH__BEARER_TOKEN")
        .env("MEDIC_SERVER__AUTH__BEARER_TOKEN_FILE", path.display())
        .spawn()
        .await;

    let post = |token: &'static str| {
        app.webhook("application/json")
            .bearer_auth(token)
            .body(fixture("firing.json"))
            .send()
    };

    assert_eq!(post("from-a-file").await.unwrap().status(), 200);
    assert_eq!(post("test-token-0123456789").await.unwrap().status(), 401);
}

#[tokio::test]
async fn medic_refuses_to_start_without_a_credential_unless_told_to() {
    let anonymous = TestApp::builder().without_env("MEDIC_SERVER__AUTH__BEARER_TOKEN");
    let env = anonymous.environment("postgres://medic@localhost/medic");
    let refused = medic::plan::load(&medic::config::Source { file: None, env }).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("server.auth: no credential configured"),
        "{refused}"
    );

    let app = anonymous
        .env("MEDIC_SERVER__AUTH__ALLOW_UNAUTHENTICATED", true)
        .spawn()
        .await;
    let response = app
        .webhook("application/json")
        .body(fixture("firing.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
