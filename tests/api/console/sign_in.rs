//! Signing in and out, the session cookie, CSRF, what each role may do, and a proxy that names
//! the person instead.

use reqwest::StatusCode;

use super::{
    client::{client, csrf_of, get_page, post_form, session_cookie, sign_in},
    setups::incident_posted,
};
use crate::helpers::{TestApp, ADMIN, RESPONDER, TOKEN, VIEWER};

#[tokio::test]
async fn signing_in_with_a_users_token_sets_an_httponly_samesite_strict_cookie() {
    let app = TestApp::builder().spawn().await;
    let response = sign_in(&app, RESPONDER.2).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/ui/");
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("medic_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{flag} missing in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: the cookie would never come back"
    );
    let stored = app
        .count("SELECT count(*) FROM console_sessions WHERE user_name = 'alice'")
        .await;
    assert_eq!(stored, 1);

    // Whether the browser came over HTTPS is never a client's say: only medic's own TLS or the
    // trusted proxy's (identity::cookies_are_host_prefixed_only_when_a_trusted_proxy_says_https).
    let claimed = client()
        .post(format!("{}/ui/login", app.address))
        .header("x-forwarded-proto", "https")
        .form(&[("token", RESPONDER.2)])
        .send()
        .await
        .unwrap();
    let cookie = claimed.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("medic_session=") && !cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn alertmanagers_credential_and_unknown_tokens_cannot_sign_in() {
    let app = TestApp::builder().spawn().await;
    for token in [TOKEN, "nobody-has-this-token", ""] {
        let response = sign_in(&app, token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "token {token:?}");
        assert!(response.headers().get("set-cookie").is_none());
        assert!(response.text().await.unwrap().contains("not a user"));
    }
    assert_eq!(app.count("SELECT count(*) FROM console_sessions").await, 0);
}

#[tokio::test]
async fn pages_send_whoever_is_not_signed_in_to_the_sign_in_page() {
    let app = TestApp::builder().spawn().await;
    for path in [
        "/ui/",
        "/ui/incidents",
        "/ui/remediations",
        "/ui/maintenance",
        "/ui/rules",
    ] {
        let response = get_page(&app, "medic_session=forged", path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()["location"], "/ui/login");
    }
    let polled = client()
        .get(format!("{}/ui/incidents", app.address))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(
        polled.headers()["hx-redirect"],
        "/ui/login",
        "htmx loads the sign-in page whole"
    );
    let bearer = client()
        .get(format!("{}/ui/", app.address))
        .bearer_auth(ADMIN.2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        bearer.status(),
        StatusCode::SEE_OTHER,
        "the console does not take bearer tokens"
    );
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused() {
    let app = TestApp::builder().spawn().await;
    let id = incident_posted(&app, "{}:{alertname=\"HighLatency\"}", "HighLatency", "shop").await;
    let cookie = session_cookie(&app, RESPONDER.2).await;
    let page = get_page(&app, &cookie, &format!("/ui/incidents/{id}"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);

    let ack = format!("/ui/incidents/{id}/ack");
    let without = post_form(&app, &cookie, &ack, &[("note", "mine")]).await;
    assert_eq!(without.status(), StatusCode::FORBIDDEN);
    let wrong = post_form(
        &app,
        &cookie,
        &ack,
        &[("csrf", &"0".repeat(64)), ("note", "mine")],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let logout = post_form(&app, &cookie, "/ui/logout", &[]).await;
    assert_eq!(logout.status(), StatusCode::FORBIDDEN);
    assert!(
        app.incident(id).await["acknowledgement"].is_null(),
        "nothing was acknowledged"
    );

    let with = post_form(&app, &cookie, &ack, &[("csrf", &csrf), ("note", "mine")]).await;
    assert_eq!(with.status(), StatusCode::SEE_OTHER);
    let ack = &app.incident(id).await["acknowledgement"];
    assert_eq!(ack["by"], "alice");
    assert_eq!(ack["via"], "console");
    assert_eq!(ack["note"], "mine");
}

#[tokio::test]
async fn a_viewer_sees_no_buttons_and_may_not_act_from_the_console() {
    let app = TestApp::builder().spawn().await;
    let id = incident_posted(&app, "{}:{alertname=\"HighLatency\"}", "HighLatency", "shop").await;
    let cookie = session_cookie(&app, VIEWER.2).await;
    let page = get_page(&app, &cookie, &format!("/ui/incidents/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("HighLatency"));
    assert!(!page.contains("Acknowledge</button>") && !page.contains("Silence 1h"));
    let csrf = csrf_of(&page); // the sign-out form's
    let refused = post_form(
        &app,
        &cookie,
        &format!("/ui/incidents/{id}/ack"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(app.incident(id).await["acknowledgement"].is_null());
    let maintenance = get_page(&app, &cookie, "/ui/maintenance")
        .await
        .text()
        .await
        .unwrap();
    assert!(!maintenance.contains("Open window") && !maintenance.contains("Pause all remediation"));
}

#[tokio::test]
async fn signing_out_ends_the_session_in_the_database() {
    let app = TestApp::builder().spawn().await;
    let cookie = session_cookie(&app, ADMIN.2).await;
    let page = get_page(&app, &cookie, "/ui/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await.unwrap());
    let out = post_form(&app, &cookie, "/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        get_page(&app, &cookie, "/ui/").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.count("SELECT count(*) FROM console_sessions").await, 0);
}

#[tokio::test]
async fn with_a_proxy_the_proxy_names_the_person_and_there_is_no_sign_in() {
    let app = TestApp::builder()
        .without_users()
        .config(
            "server:\n  auth:\n    proxy:\n      user_header: X-Forwarded-Email\n      groups_header: X-Forwarded-Groups\n      trusted_sources: [127.0.0.1]\n      roles: {sre-oncall: responder}\n",
        )
        .spawn()
        .await;
    let id = incident_posted(&app, "{}:{alertname=\"HighLatency\"}", "HighLatency", "shop").await;
    let as_sam = |method: reqwest::Method, path: String| {
        client()
            .request(method, format!("{}{path}", app.address))
            .header("X-Forwarded-Email", "sam@example.com")
            .header("X-Forwarded-Groups", "sre-oncall")
    };
    let login = as_sam(reqwest::Method::GET, "/ui/login".into())
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        StatusCode::SEE_OTHER,
        "no sign-in page behind a proxy"
    );
    let page = as_sam(reqwest::Method::GET, format!("/ui/incidents/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf_cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    assert!(html.contains("sam@example.com (responder)") && html.contains("Acknowledge"));
    let csrf = csrf_of(&html);
    let without = as_sam(reqwest::Method::POST, format!("/ui/incidents/{id}/ack"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        without.status(),
        StatusCode::FORBIDDEN,
        "the token must match the cookie"
    );
    let acked = as_sam(reqwest::Method::POST, format!("/ui/incidents/{id}/ack"))
        .header("cookie", csrf_cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(acked.status(), StatusCode::SEE_OTHER);
    let audit = app.count("SELECT count(*) FROM audit_events WHERE actor = 'sam@example.com' AND via = 'proxy' AND channel = 'console'").await;
    assert_eq!(audit, 1);
    let nobody = client().get(format!("{}/ui/", app.address)).send().await.unwrap();
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
}
