//! Identity you can prove: the proxy's headers count only with its secret, a revoked token
//! ends API access and console sessions, sign-in is throttled, cookies are `__Host-` only
//! over HTTPS that medic can believe, and the SLO report's window is bounded.

use std::time::Duration;

use reqwest::{redirect::Policy, StatusCode};

use crate::{
    helpers::{
        config::{check_config, yaml},
        eventually, ok_200, TestApp, RESPONDER,
    },
    trust::proxy_yaml,
};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn as_proxied(app: &TestApp, secret: Option<&str>, https: bool) -> reqwest::Response {
    let mut request = client()
        .get(format!("{}/api/v1/incidents", app.address))
        .header("X-Forwarded-Email", "lead@example.com")
        .header("X-Forwarded-Groups", "sre-leads");
    if let Some(secret) = secret {
        request = request.header("X-Medic-Proxy-Secret", secret);
    }
    if https {
        request = request.header("X-Forwarded-Proto", "https");
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn identity_headers_count_only_with_the_proxys_secret() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "proxy-secret-0123456789\n").unwrap();
    let app = TestApp::builder()
        .without_users()
        .config(&proxy_yaml("127.0.0.0/8", Some(secret.path())))
        .spawn()
        .await;
    assert_eq!(
        as_proxied(&app, None, false).await.status(),
        401,
        "no secret: a pod in the range"
    );
    assert_eq!(
        as_proxied(&app, Some("guess"), false).await.status(),
        401,
        "a wrong secret"
    );
    assert_eq!(
        as_proxied(&app, Some("proxy-secret-0123456789"), false)
            .await
            .status(),
        200
    );
}

#[test]
fn check_config_wants_a_proxy_secret_for_a_range_and_long_user_tokens() {
    let settings = |trusted: &str, token: &str| {
        yaml(&format!(
            "server:\n  auth:\n    bearer_token: webhook-token-0123456789\n    users:\n      - {{name: bo, role: viewer, token: {token}}}\n    proxy:\n      user_header: X-Forwarded-Email\n      trusted_sources: [{trusted}]\n      default_role: viewer\n"
        ))
    };
    let range = settings("10.0.0.0/8", "short");
    let (code, stdout) = check_config(range.path(), &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("server.auth.proxy.secret_file: required"),
        "{stdout}"
    );
    assert!(
        stdout.contains("server.auth.users[0].token: must be at least 16 characters"),
        "{stdout}"
    );
    let single = settings("10.1.2.3", "bo-token-0123456789");
    let (code, stdout) = check_config(single.path(), &[]);
    assert_eq!(code, Some(0), "{stdout}");
}

/// Signs in to the console; the session cookie (`name=value`).
async fn session(app: &TestApp, token: &str) -> String {
    let response = client()
        .post(format!("{}/ui/login", app.address))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

async fn console_status(app: &TestApp, cookie: &str) -> (StatusCode, String) {
    let response = client()
        .get(format!("{}/ui/", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let to = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status(), to)
}

async fn api_status(app: &TestApp, token: &str) -> StatusCode {
    app.client
        .get(format!("{}/api/v1/incidents", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Polls until the console sends `cookie` to the sign-in page and the API refuses `token`.
async fn until_revoked(app: &TestApp, cookie: &str, token: &str) {
    eventually(
        "the session and the token to end",
        Duration::from_secs(10),
        || async {
            let (console, to) = console_status(app, cookie).await;
            let api = api_status(app, token).await;
            let out = console == StatusCode::SEE_OTHER && to == "/ui/login" && api == 401;
            out.then_some(())
                .ok_or(format!("still in: console {console}, API {api}"))
        },
    )
    .await;
}

#[tokio::test]
async fn rotated_emptied_and_deleted_token_files_end_api_access_and_console_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("carol");
    std::fs::write(&file, "carol-token-one-0123456789").unwrap();
    let yaml = format!(
        "server:\n  auth:\n    users:\n      - {{name: carol, role: responder, token_file: {}}}\n",
        file.display()
    );
    let app = TestApp::builder().without_users().config(&yaml).spawn().await;
    let cookie = session(&app, "carol-token-one-0123456789").await;
    assert_eq!(console_status(&app, &cookie).await.0, StatusCode::OK);

    // Rotated: the old token and the session made from it end; the new token works.
    std::fs::write(&file, "carol-token-two-0123456789").unwrap();
    until_revoked(&app, &cookie, "carol-token-one-0123456789").await;
    assert_eq!(api_status(&app, "carol-token-two-0123456789").await, 200);
    // The ended session is gone from the database, not just refused.
    assert_eq!(app.count("SELECT count(*) FROM console_sessions").await, 0);

    // Emptied: the token stops; medic keeps running.
    let cookie = session(&app, "carol-token-two-0123456789").await;
    std::fs::write(&file, "").unwrap();
    until_revoked(&app, &cookie, "carol-token-two-0123456789").await;
    // Back, then deleted.
    std::fs::write(&file, "carol-token-three-0123456789").unwrap();
    eventually(
        "the restored token to be accepted",
        Duration::from_secs(10),
        || async { ok_200(api_status(&app, "carol-token-three-0123456789").await.as_u16()) },
    )
    .await;
    let cookie = session(&app, "carol-token-three-0123456789").await;
    std::fs::remove_file(&file).unwrap();
    until_revoked(&app, &cookie, "carol-token-three-0123456789").await;
    assert_eq!(app.get_anonymous("/healthz").await.status(), 200);
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_address_and_a_right_token_then_waits_too() {
    let app = TestApp::builder().spawn().await;
    for i in 0..10 {
        let response = client()
            .post(format!("{}/ui/login", app.address))
            .form(&[("token", format!("wrong-{i}"))])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let throttled = client()
        .post(format!("{}/ui/login", app.address))
        .form(&[("token", RESPONDER.2)])
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(
        throttled.headers().get("set-cookie").is_none(),
        "no session while throttled"
    );
}

#[tokio::test]
async fn cookies_are_host_prefixed_only_when_a_trusted_proxy_says_https() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "proxy-secret-0123456789").unwrap();
    let app = TestApp::builder()
        .without_users()
        .config(&proxy_yaml("127.0.0.0/8", Some(secret.path())))
        .spawn()
        .await;
    let page = |secret: Option<&'static str>| {
        let mut request = client()
            .get(format!("{}/ui/", app.address))
            .header("X-Forwarded-Email", "lead@example.com")
            .header("X-Forwarded-Groups", "sre-leads")
            .header("X-Forwarded-Proto", "https");
        if let Some(secret) = secret {
            request = request.header("X-Medic-Proxy-Secret", secret);
        }
        request.send()
    };
    let through_proxy = page(Some("proxy-secret-0123456789")).await.unwrap();
    assert_eq!(through_proxy.status(), 200);
    let cookie = through_proxy.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-medic_csrf="), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("Path=/;"),
        "{cookie}"
    );

    // Without the proxy's secret the headers say nothing, X-Forwarded-Proto included.
    let app = TestApp::builder().spawn().await;
    let response = client()
        .post(format!("{}/ui/login", app.address))
        .header("X-Forwarded-Proto", "https")
        .form(&[("token", RESPONDER.2)])
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("medic_session=") && !cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn the_slo_report_window_is_at_most_ninety_days() {
    let yaml = r#"
prometheus:
  url: http://127.0.0.1:9
slos:
  - name: api-availability
    service: whiteboard
    objective: 99
    window: 2d
    sli:
      ratio:
        good: sum(rate(http_requests_total{code!~"5.."}[$window]))
        total: sum(rate(http_requests_total[$window]))
"#;
    let app = TestApp::builder().config(yaml).spawn().await;
    let status = |window: &'static str| {
        app.client
            .get(format!("{}/api/v1/slo/report?window={window}", app.address))
            .bearer_auth(RESPONDER.2)
            .send()
    };
    assert_eq!(status("91d").await.unwrap().status(), 422);
    let unreachable = status("90d").await.unwrap();
    assert_eq!(unreachable.status(), 502);
    let body = unreachable.text().await.unwrap();
    assert!(
        !body.contains("127.0.0.1"),
        "Prometheus' own words are not returned: {body}"
    );
}
