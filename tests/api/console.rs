//! The on-call console (`/ui/`): signing in, cookies, CSRF, roles, assets, and what a person
//! sees and does in headless Chromium (driven over WebDriver by `chromedriver`).
//!
//! The browser tests save a screenshot of each page under `target/ui-screenshots/`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use reqwest::{redirect::Policy, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{firing_alert, TestApp, ADMIN, RESPONDER, TOKEN, VIEWER};

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `token`; the session cookie (`name=value`) on success.
async fn sign_in(app: &TestApp, token: &str) -> reqwest::Response {
    client()
        .post(format!("{}/ui/login", app.address))
        .form(&[("token", token)])
        .send()
        .await
        .expect("POST /ui/login")
}

pub(crate) async fn session_cookie(app: &TestApp, token: &str) -> String {
    let response = sign_in(app, token).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

pub(crate) async fn get_page(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET page")
}

/// The CSRF token in a page's forms.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().unwrap().to_owned()
}

pub(crate) async fn post_form(
    app: &TestApp,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client()
        .post(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .expect("POST form")
}

async fn incident_posted(app: &TestApp, group: &str, alertname: &str, namespace: &str) -> i64 {
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
async fn the_list_filters_by_matchers_and_its_refreshing_fragment_keeps_the_filter() {
    let app = TestApp::builder().spawn().await;
    incident_posted(&app, "{}:{alertname=\"HighLatency\"}", "HighLatency", "shop").await;
    incident_posted(&app, "{}:{alertname=\"DiskFull\"}", "DiskFull", "db").await;
    let cookie = session_cookie(&app, VIEWER.2).await;
    let all = get_page(&app, &cookie, "/ui/").await.text().await.unwrap();
    assert!(all.contains("HighLatency") && all.contains("DiskFull"));
    let filtered = get_page(&app, &cookie, "/ui/?filter=namespace%3D%22db%22")
        .await
        .text()
        .await
        .unwrap();
    assert!(filtered.contains("DiskFull") && !filtered.contains("HighLatency"));
    assert!(filtered.contains(r#"hx-get="/ui/incidents?tab=firing&amp;filter=namespace%3D%22db%22""#));
    let fragment = get_page(&app, &cookie, "/ui/incidents?filter=namespace%3D%22db%22").await;
    assert_eq!(fragment.status(), StatusCode::OK);
    let fragment = fragment.text().await.unwrap();
    assert!(fragment.starts_with("<section"), "only the list: {fragment}");
    assert!(fragment.contains("DiskFull") && !fragment.contains("HighLatency"));
    let bad = get_page(&app, &cookie, "/ui/?filter=namespace%3D").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("filter"));
}

#[tokio::test]
async fn assets_are_served_by_a_hashed_name_with_a_long_cache() {
    let app = TestApp::builder().spawn().await;
    let cookie = session_cookie(&app, VIEWER.2).await;
    let page = get_page(&app, &cookie, "/ui/").await;
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    let page = page.text().await.unwrap();
    for name in ["/ui/assets/console.", "/ui/assets/htmx.min."] {
        let at = page.find(name).unwrap_or_else(|| panic!("{name} in the page"));
        let path = page[at..].split('"').next().unwrap();
        let asset = client()
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
        assert_eq!(
            asset.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
    }
    let unhashed = client()
        .get(format!("{}/ui/assets/htmx.min.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(unhashed.status(), StatusCode::NOT_FOUND);
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

/// A headless Chromium, driven over WebDriver with plain HTTP.
struct Browser {
    driver: tokio::process::Child,
    base: String,
    http: reqwest::Client,
    shots: PathBuf,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether a WebDriver error says the element went away or is not there yet, rather than that
/// the test asked for something wrong (W3C WebDriver error codes).
fn page_moved(answer: &Value) -> bool {
    matches!(
        answer["value"]["error"].as_str(),
        Some("stale element reference" | "no such element" | "element not interactable")
    )
}

impl Browser {
    async fn start(test: &str) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)");
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if http.get(format!("{root}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1300"]}}}});
        let session: Value = http
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"));
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            driver,
            base: format!("{root}/session/{id}"),
            http,
            shots: shots.join(test),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|answer| panic!("{path}: {answer}"))
    }

    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        match answer["value"].get("error") {
            None => Ok(answer["value"].clone()),
            Some(_) => Err(answer),
        }
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Finds `css` and calls each `(action, body)` on it in turn (`/element/{id}{action}`),
    /// starting again from the search while the page replaces the element or has not drawn it
    /// yet (the incident list redraws itself every few seconds; a click's navigation may still
    /// be loading), for up to 15 s.
    async fn on_element(&self, css: &str, actions: &[(&str, Value)]) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let search = json!({"using": "css selector", "value": css});
        loop {
            let attempt = async {
                let found = self
                    .try_call(reqwest::Method::POST, "/element", Some(search.clone()))
                    .await?;
                let element = found[ELEMENT].as_str().unwrap_or_default().to_owned();
                let mut last = found;
                for (action, body) in actions {
                    let path = format!("/element/{element}{action}");
                    last = self
                        .try_call(reqwest::Method::POST, &path, Some(body.clone()))
                        .await?;
                }
                Ok::<Value, Value>(last)
            };
            match attempt.await {
                Ok(answer) => return answer,
                Err(answer) if std::time::Instant::now() < deadline && page_moved(&answer) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(answer) => panic!("{css}: {answer}"),
            }
        }
    }

    async fn count(&self, css: &str) -> usize {
        let found = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found.as_array().unwrap().len()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let actions = [("/clear", json!({})), ("/value", json!({"text": text}))];
        self.on_element(css, &actions).await;
    }

    async fn click(&self, css: &str) {
        self.on_element(css, &[("/click", json!({}))]).await;
    }

    /// The page's text; tried again while a page that replaced the last one loads.
    async fn text(&self) -> String {
        let search = json!({"using": "css selector", "value": "body"});
        for _ in 0..50 {
            let found = self
                .try_call(reqwest::Method::POST, "/element", Some(search.clone()))
                .await;
            if let Ok(body) = found {
                let path = format!("/element/{}/text", body[ELEMENT].as_str().unwrap());
                if let Ok(text) = self.try_call(reqwest::Method::GET, &path, None).await {
                    return text.as_str().unwrap().to_owned();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never settled")
    }

    /// The page's text once `ready` holds for it (a click's navigation may still be loading),
    /// or as it is after 15 s.
    async fn text_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.text().await;
            if ready(&text) || std::time::Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the page's URL comes to end with `suffix` within 15 s (a click's navigation may
    /// still be on its way).
    async fn reaches(&self, suffix: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if self.url().await.ends_with(suffix) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// The whole page, not only the window (Chromium's DevTools command through chromedriver).
    async fn screenshot(&self, name: &str) {
        let params = json!({"format": "png", "captureBeyondViewport": true});
        let png = self
            .call(
                reqwest::Method::POST,
                "/goog/cdp/execute",
                Some(json!({"cmd": "Page.captureScreenshot", "params": params})),
            )
            .await;
        let png = &png["data"];
        let bytes = STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::write(format!("{}-{name}.png", self.shots.display()), bytes).unwrap();
    }

    async fn sign_in(&self, app: &TestApp, token: &str) {
        self.go(&format!("{}/ui/login", app.address)).await;
        self.type_into("#token", token).await;
        self.click("form.login button").await;
    }

    async fn quit(mut self) {
        let _ = self.http.delete(&self.base).send().await;
        let _ = self.driver.kill().await;
    }
}

#[tokio::test]
async fn an_on_call_person_signs_in_filters_opens_and_acknowledges_in_chromium() {
    let app = TestApp::builder().spawn().await;
    let id = incident_posted(&app, "{}:{alertname=\"HighLatency\"}", "HighLatency", "shop").await;
    incident_posted(&app, "{}:{alertname=\"DiskFull\"}", "DiskFull", "db").await;
    let browser = Browser::start("responder").await;

    browser.go(&format!("{}/ui/", app.address)).await;
    assert!(browser.reaches("/ui/login").await, "sent to sign in");
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
    assert!(browser.reaches(&format!("/ui/incidents/{id}")).await);
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
    assert!(browser.reaches("/ui/login").await, "signed out");
    browser.go(&format!("{}/ui/", app.address)).await;
    assert!(browser.reaches("/ui/login").await, "the session is gone");
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
    let yaml = format!(
        r#"
dry_run: false
kubernetes: {{kubeconfig: "{kubeconfig}", request_timeout: 5s}}
notifiers:
  slack: {{type: slack, url: "{slack}"}}
remediation:
  namespaces: {{allow: [shop]}}
  approval: {{timeout: 1h}}
rules:
  - name: careful
    matchers: ['alertname="HighMemoryUsage"']
    notify: [slack]
    escalation: [{{after: 1h, notify: [slack]}}]
    remediate:
      action: scale_up
      params: {{namespace: "{{{{ labels.namespace }}}}", deployment: "{{{{ labels.deployment }}}}", step: 2, max: 5}}
      cooldown: 0s
      approval: required
"#,
        kubeconfig = kubeconfig.path().display(),
        slack = sink.url("/slack"),
    );
    let app = TestApp::builder().config(&yaml).spawn().await;
    let labels = json!({"namespace": "shop", "deployment": "api", "severity": "warning"});
    let mut payload = firing_alert("g1", "HighMemoryUsage", "00000000000000d1", labels);
    payload["commonLabels"] = payload["alerts"][0]["labels"].clone();
    payload["groupLabels"] = json!({"alertname": "HighMemoryUsage"});
    let id = app.post_for_incident(&payload).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app
        .count("SELECT count(*) FROM remediations WHERE result = 'awaiting_approval'")
        .await
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "no request for approval");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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
    assert!(browser.reaches(&format!("/ui/incidents/{id}")).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let remediations = app.incident(id).await["remediations"].clone();
        if remediations[0]["result"] == "success" {
            assert_eq!(remediations[0]["approval"]["decided_by"], "alice");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never acted: {remediations}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let audit = app
        .count("SELECT count(*) FROM audit_events WHERE action = 'approve' AND channel = 'console'")
        .await;
    assert_eq!(audit, 1);
    browser.go(&format!("{}/ui/incidents/{id}", app.address)).await;
    assert!(browser.text().await.contains("approved by alice"));
    browser.screenshot("4-incident-approved").await;
    browser.quit().await;
}

/// An Alertmanager that accepts every silence as `s-1` and keeps what it was sent.
async fn fake_alertmanager() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = web::Data::new(received.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(kept.clone()).route(
                "/api/v2/silences",
                web::post().to(
                    |body: web::Json<Value>,
                     kept: web::Data<std::sync::Arc<std::sync::Mutex<Vec<Value>>>>| async move {
                        kept.lock().unwrap().push(body.into_inner());
                        HttpResponse::Ok().json(json!({"silenceID": "s-1"}))
                    },
                ),
            )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let address = server.addrs()[0];
    tokio::spawn(server.run());
    (format!("http://{address}"), received)
}

#[tokio::test]
async fn silence_1h_silences_the_incidents_alerts_in_alertmanager() {
    let (am, received) = fake_alertmanager().await;
    let app = TestApp::builder()
        .config(&format!("alertmanager: {{url: \"{am}\"}}\n"))
        .spawn()
        .await;
    let id = incident_posted(&app, "{}:{alertname=\"HighLatency\"}", "HighLatency", "shop").await;
    let cookie = session_cookie(&app, RESPONDER.2).await;
    let page = get_page(&app, &cookie, &format!("/ui/incidents/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Silence 1h"));
    let silenced = post_form(
        &app,
        &cookie,
        &format!("/ui/incidents/{id}/silence"),
        &[("csrf", &csrf_of(&page))],
    )
    .await;
    assert_eq!(silenced.status(), StatusCode::SEE_OTHER);
    let sent = received.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["createdBy"], "alice");
    let audit = app
        .count("SELECT count(*) FROM audit_events WHERE action = 'silence' AND channel = 'console' AND actor = 'alice'")
        .await;
    assert_eq!(audit, 1);
    let page = get_page(&app, &cookie, &format!("/ui/incidents/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("s-1"), "the timeline shows the silence");
}

#[tokio::test]
async fn maintenance_windows_and_the_pause_switch_follow_the_roles() {
    let app = TestApp::builder().spawn().await;
    let responder = session_cookie(&app, RESPONDER.2).await;
    let page = get_page(&app, &responder, "/ui/maintenance")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Open window") && !page.contains("Pause all remediation"));
    let csrf = csrf_of(&page);
    let form = [
        ("csrf", csrf.as_str()),
        ("matchers", "namespace=\"shop\"\nteam=\"payments\""),
        ("hours", "2"),
        ("mute_remediation", "on"),
        ("reason", "database upgrade"),
    ];
    let opened = post_form(&app, &responder, "/ui/maintenance", &form).await;
    assert_eq!(opened.status(), StatusCode::SEE_OTHER);
    let windows = app.get_json("/api/v1/maintenance").await;
    let window = &windows["windows"][0];
    assert_eq!(
        window["matchers"],
        json!(["namespace=\"shop\"", "team=\"payments\""])
    );
    assert_eq!(window["mute"], json!(["remediation"]));
    assert_eq!(window["created_by"], "alice");
    let bad = [
        ("csrf", csrf.as_str()),
        ("matchers", "namespace=~"),
        ("hours", "2"),
        ("reason", "x"),
    ];
    let refused = post_form(&app, &responder, "/ui/maintenance", &bad).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let pause = [("csrf", csrf.as_str()), ("reason", "incident")];
    let not_admin = post_form(&app, &responder, "/ui/pause", &pause).await;
    assert_eq!(not_admin.status(), StatusCode::FORBIDDEN);

    let end = format!("/ui/maintenance/{}/end", window["id"]);
    assert_eq!(
        post_form(&app, &responder, &end, &[("csrf", &csrf)])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.get_json("/api/v1/maintenance").await["windows"], json!([]));

    let admin = session_cookie(&app, ADMIN.2).await;
    let page = get_page(&app, &admin, "/ui/maintenance")
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let paused = post_form(
        &app,
        &admin,
        "/ui/pause",
        &[("csrf", &csrf), ("reason", "incident")],
    )
    .await;
    assert_eq!(paused.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_json("/api/v1/remediation/pause").await["paused_by"],
        "ada"
    );
    assert!(get_page(&app, &admin, "/ui/maintenance")
        .await
        .text()
        .await
        .unwrap()
        .contains("Resume remediation"));
    let resumed = post_form(&app, &admin, "/ui/resume", &[("csrf", &csrf)]).await;
    assert_eq!(resumed.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get_json("/api/v1/remediation/pause").await["paused"], false);
}

/// A rule with matchers, an escalation step and a two-step ladder, for the rules page.
const RULES_YAML: &str = r#"
dry_run: true
notifiers:
  slack: {type: slack, url: "http://127.0.0.1:9/slack"}
remediation:
  namespaces: {allow: [shop]}
rules:
  - name: memory-in-shop
    matchers: ['alertname="HighMemoryUsage"', 'namespace=~"shop|shop-canary"']
    severities: [warning, critical]
    notify: [slack]
    escalation: [{after: 15m, notify: [slack]}]
    remediate:
      - action: scale_up
        params: {namespace: "{{ labels.namespace }}", deployment: "{{ labels.deployment }}", step: 2, max: 5}
        verify_within: 5m
      - action: rollout_restart
        params: {namespace: "{{ labels.namespace }}", deployment: "{{ labels.deployment }}"}
        approval: required
"#;

fn memory_payload() -> String {
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

#[tokio::test]
async fn the_explain_box_answers_without_javascript_and_a_bad_payload_is_a_422_page() {
    let app = TestApp::builder().config(RULES_YAML).spawn().await;
    let cookie = session_cookie(&app, VIEWER.2).await;
    let page = get_page(&app, &cookie, "/ui/rules").await.text().await.unwrap();
    assert!(
        page.contains("<code>alertname=&quot;HighMemoryUsage&quot;</code>")
            && page.contains("<code>namespace=~&quot;shop|shop-canary&quot;</code>"),
        "the rule's matchers: {page}"
    );
    assert!(
        page.contains("{{ labels.deployment }}"),
        "the ladder's parameters as loaded"
    );
    let csrf = csrf_of(&page);

    let payload = memory_payload();
    let answered = post_form(
        &app,
        &cookie,
        "/ui/rules",
        &[("csrf", &csrf), ("payload", &payload)],
    )
    .await;
    assert_eq!(answered.status(), StatusCode::OK);
    let answer = answered.text().await.unwrap();
    for want in [
        "<strong class=\"rule-name\">memory-in-shop</strong>",
        "<code>deployment/shop/api</code>",
        r#"{&quot;deployment&quot;:&quot;api&quot;,&quot;max&quot;:5,&quot;namespace&quot;:&quot;shop&quot;,&quot;step&quot;:2}"#,
        "needed before it acts",
        "escalation step 1",
    ] {
        assert!(answer.contains(want), "{want} missing in {answer}");
    }

    let labels = r#"alertname="HighMemoryUsage", namespace="prod", deployment="api""#;
    let unmatched = post_form(
        &app,
        &cookie,
        "/ui/rules",
        &[("csrf", &csrf), ("payload", labels)],
    )
    .await;
    assert_eq!(unmatched.status(), StatusCode::OK);
    assert!(unmatched.text().await.unwrap().contains("No rule matches."));

    for (bad, says) in [
        (r#"{"receiver": "medic", "alerts": [}"#, "not valid JSON"),
        ("alertname=~\"High.*\"", "tests labels"),
        ("", "nothing to explain"),
    ] {
        let refused = post_form(&app, &cookie, "/ui/rules", &[("csrf", &csrf), ("payload", bad)]).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let page = refused.text().await.unwrap();
        assert!(
            page.contains("Cannot explain this") && page.contains(says),
            "{bad}: {page}"
        );
    }
    let without = post_form(&app, &cookie, "/ui/rules", &[("payload", labels)]).await;
    assert_eq!(without.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_explain_box_shows_the_rule_its_action_and_its_timers_in_chromium() {
    let app = TestApp::builder().config(RULES_YAML).spawn().await;
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

/// 60 firing incidents, the oldest acknowledged: more than a page (50) of firing ones above it.
async fn sixty_incidents_the_oldest_acknowledged(app: &TestApp) -> (i64, Vec<i64>) {
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

#[tokio::test]
async fn the_api_lists_acknowledged_or_unacknowledged_incidents_with_paging() {
    let app = TestApp::builder().spawn().await;
    let (oldest, ids) = sixty_incidents_the_oldest_acknowledged(&app).await;
    let acked = app
        .get_json("/api/v1/incidents?status=firing&acknowledged=true")
        .await;
    let acked: Vec<i64> = acked["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(acked, vec![oldest]);

    let first = app
        .get_json("/api/v1/incidents?acknowledged=false&limit=50")
        .await;
    assert_eq!(first["incidents"].as_array().unwrap().len(), 50);
    let before = first["next_before"].as_i64().expect("a next page");
    let second = app
        .get_json(&format!(
            "/api/v1/incidents?acknowledged=false&limit=50&before={before}"
        ))
        .await;
    let second: Vec<i64> = second["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(second, ids[1..10].iter().rev().copied().collect::<Vec<_>>());
    assert_eq!(
        app.get("/api/v1/incidents?acknowledged=maybe").await.status(),
        StatusCode::BAD_REQUEST
    );
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
