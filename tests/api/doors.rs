//! One door per act: the role a route needs is checked on the route the router chose, so no
//! spelling of a path (percent-encoded letters, dot segments, doubled or trailing slashes, an
//! encoded slash) reaches a route past its check or its JSON-only rule; and each act has the
//! same limits through the API and the console.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, ADMIN, RESPONDER, TOKEN, VIEWER};

/// Who calls, and the rank of their credential: Alertmanager's may only post alerts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Alertmanager,
    Viewer,
    Responder,
    Admin,
}

impl Caller {
    const ALL: [Caller; 4] = [
        Caller::Alertmanager,
        Caller::Viewer,
        Caller::Responder,
        Caller::Admin,
    ];

    fn token(self) -> &'static str {
        match self {
            Caller::Alertmanager => TOKEN,
            Caller::Viewer => VIEWER.2,
            Caller::Responder => RESPONDER.2,
            Caller::Admin => ADMIN.2,
        }
    }

    fn may(self, need: Need) -> bool {
        match (self, need) {
            (Caller::Alertmanager, Need::Alertmanager) => true,
            (Caller::Alertmanager, _) | (_, Need::Alertmanager) => false,
            (Caller::Viewer, need) => need == Need::Viewer,
            (Caller::Responder, need) => need != Need::Admin,
            (Caller::Admin, _) => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Need {
    Alertmanager,
    Viewer,
    Responder,
    Admin,
}

/// Every route of the webhook and the API, and what it needs.
const ROUTES: &[(&str, &str, Need)] = &[
    ("POST", "/webhook", Need::Alertmanager),
    ("GET", "/api/v1/incidents", Need::Viewer),
    ("GET", "/api/v1/incidents/999999", Need::Viewer),
    ("GET", "/api/v1/incidents/999999/context", Need::Viewer),
    ("POST", "/api/v1/incidents/999999/ack", Need::Responder),
    ("POST", "/api/v1/incidents/999999/silence", Need::Responder),
    ("DELETE", "/api/v1/incidents/999999/silence", Need::Responder),
    ("GET", "/api/v1/slo/report", Need::Viewer),
    ("GET", "/api/v1/heartbeats", Need::Viewer),
    ("GET", "/api/v1/rules/effectiveness", Need::Viewer),
    ("POST", "/api/v1/rules/nosuchrule/steps/1/promote", Need::Admin),
    ("GET", "/api/v1/remediations", Need::Viewer),
    ("POST", "/api/v1/remediations/999999/approve", Need::Responder),
    ("POST", "/api/v1/remediations/999999/reject", Need::Responder),
    ("POST", "/api/v1/maintenance", Need::Responder),
    ("GET", "/api/v1/maintenance", Need::Viewer),
    ("DELETE", "/api/v1/maintenance/999999", Need::Responder),
    ("GET", "/api/v1/remediation/pause", Need::Viewer),
    ("PUT", "/api/v1/remediation/pause", Need::Admin),
    ("DELETE", "/api/v1/remediation/pause", Need::Admin),
];

fn encode(c: char, upper: bool) -> String {
    if upper {
        format!("%{:02X}", c as u32)
    } else {
        format!("%{:02x}", c as u32)
    }
}

/// The path with the letters chosen by `pick` (their index among the path's letters, and how
/// many there are) percent-encoded.
fn encoded(path: &str, upper: bool, pick: impl Fn(usize, usize) -> bool) -> String {
    let letters = path.chars().filter(char::is_ascii_alphabetic).count();
    let mut seen = 0;
    path.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                seen += 1;
                if pick(seen - 1, letters) {
                    return encode(c, upper);
                }
            }
            c.to_string()
        })
        .collect()
}

/// Spellings of `path`: (name, spelling, whether the router must treat it as `path`).
fn spellings(path: &str) -> Vec<(&'static str, String, bool)> {
    let (head, last) = path.rsplit_once('/').expect("a path");
    let first_slash = path[1..].find('/').map_or(path.len(), |i| i + 1);
    let mut all = vec![
        ("first letter encoded", encoded(path, false, |i, _| i == 0), true),
        (
            "last letter encoded",
            encoded(path, false, |i, n| i + 1 == n),
            true,
        ),
        ("every letter encoded", encoded(path, false, |_, _| true), true),
        ("upper-case hex", encoded(path, true, |_, _| true), true),
        ("dot segment", format!("{head}/./{last}"), false),
        ("dot-dot segment", format!("{head}/zz/../{last}"), false),
        (
            "doubled slash",
            format!("{}/{}", &path[..first_slash], &path[first_slash..]),
            false,
        ),
        ("leading doubled slash", format!("/{path}"), false),
        ("trailing slash", format!("{path}/"), false),
    ];
    if !head.is_empty() {
        all.push(("encoded slash", format!("{head}%2F{last}"), false));
    }
    all
}

async fn call(app: &TestApp, caller: Caller, method: &str, path: &str, content_type: &str) -> StatusCode {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app
        .client
        .request(method.clone(), format!("{}{path}", app.address))
        .bearer_auth(caller.token());
    if method != Method::GET && method != Method::DELETE {
        // A body no handler accepts: a route reached answers 400 or 422, and changes nothing.
        request = request.header("content-type", content_type).body("[]");
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn no_spelling_of_a_path_reaches_a_route_whose_role_the_caller_lacks() {
    let app = TestApp::builder().spawn().await;
    for &(method, path, need) in ROUTES {
        for caller in Caller::ALL {
            let canonical = call(&app, caller, method, path, "application/json").await;
            if !caller.may(need) {
                assert!(
                    matches!(canonical.as_u16(), 401 | 403),
                    "{caller:?} {method} {path}: {canonical}"
                );
            } else {
                assert!(
                    ![401, 403, 415].contains(&canonical.as_u16()),
                    "{caller:?} {method} {path}: {canonical}"
                );
            }
            for (name, spelled, same) in spellings(path) {
                let status = call(&app, caller, method, &spelled, "application/json").await;
                let what = format!("{caller:?} {method} {spelled} ({name}): {status}, canonical {canonical}");
                assert!(!status.is_success() || caller.may(need), "{what}");
                if same {
                    assert_eq!(status, canonical, "{what}");
                } else {
                    assert!(
                        status == canonical || matches!(status.as_u16(), 400 | 404),
                        "{what}"
                    );
                }
                if !caller.may(need) {
                    assert!(matches!(status.as_u16(), 400 | 401 | 403 | 404), "{what}");
                }
            }
        }
    }
    // Nothing any of it did changed anything.
    for table in [
        "deliveries",
        "audit_events",
        "maintenance_windows",
        "remediation_pause",
    ] {
        assert_eq!(
            app.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

#[tokio::test]
async fn a_responder_cannot_pause_and_no_user_can_post_alerts_by_spelling_the_path_differently() {
    let app = TestApp::builder().spawn().await;
    let pause = app
        .client
        .put(format!("{}/api/v1/remediation/%70ause", app.address))
        .bearer_auth(RESPONDER.2)
        .json(&json!({"reason": "spelled differently"}))
        .send()
        .await
        .unwrap();
    assert_eq!(pause.status(), 403);
    let alert = crate::helpers::fixture("firing.json");
    for user in [VIEWER.2, RESPONDER.2, ADMIN.2] {
        let posted = app
            .client
            .post(format!("{}/%77ebhook", app.address))
            .bearer_auth(user)
            .header("content-type", "application/json")
            .body(alert.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 403, "{user}");
    }
    // The JSON-only rule holds on every spelling: a form cannot post an act.
    let form = app
        .client
        .post(format!("{}/%61pi/v1/maintenance", app.address))
        .bearer_auth(ADMIN.2)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("matchers=a%3D%22b%22&ends_at=2099-01-01T00:00:00Z&reason=x")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    // The same spellings with the right credential reach the route.
    let paused = app
        .client
        .put(format!("{}/api/v1/remediation/%70ause", app.address))
        .bearer_auth(ADMIN.2)
        .json(&json!({"reason": "spelled differently, by an admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 200);
    let posted = app
        .client
        .post(format!("{}/%77ebhook", app.address))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(alert)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM deliveries").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM remediation_pause").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE actor = 'ada' AND action = 'pause'")
            .await,
        1
    );
}

/// Opens a window through the API as `token`: the status and the error, if any.
async fn api_window(app: &TestApp, token: &str, matchers: &[&str], hours: i64) -> (u16, String) {
    let ends_at = chrono::Utc::now() + chrono::TimeDelta::hours(hours);
    let response = app
        .client
        .post(format!("{}/api/v1/maintenance", app.address))
        .bearer_auth(token)
        .json(&json!({"matchers": matchers, "ends_at": ends_at, "reason": "upgrade"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

/// Opens a window through the console as the session `cookie`: the status and the page.
async fn console_window(app: &TestApp, cookie: &str, matchers: &[&str], hours: i64) -> (u16, String) {
    use crate::console::{csrf_of, get_page, post_form};
    let page = get_page(app, cookie, "/ui/maintenance")
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let matchers = matchers.join("\n");
    let hours = hours.to_string();
    let form = [
        ("csrf", csrf.as_str()),
        ("matchers", matchers.as_str()),
        ("hours", hours.as_str()),
        ("mute_pages", "on"),
        ("reason", "upgrade"),
    ];
    let response = post_form(app, cookie, "/ui/maintenance", &form).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn window_limits_hold_through_the_api_and_the_console_with_the_same_answers() {
    let app = TestApp::builder()
        .env("MEDIC_MAINTENANCE__MAX_DURATION", "2h")
        .env("MEDIC_MAINTENANCE__MAX_WINDOWS", "2")
        .spawn()
        .await;
    let responder = crate::console::session_cookie(&app, RESPONDER.2).await;
    let admin = crate::console::session_cookie(&app, ADMIN.2).await;
    let shop = ["namespace=\"shop\""];
    let twenty_one: Vec<String> = (0..21).map(|i| format!("team=\"t{i}\"")).collect();
    let twenty_one: Vec<&str> = twenty_one.iter().map(String::as_str).collect();
    // (what, who, matchers, hours, status, words the answer carries)
    type Case<'a> = (&'a str, (&'a str, &'a str), &'a [&'a str], i64, u16, &'a str);
    let refused: [Case; 5] = [
        (
            "everything",
            (RESPONDER.2, &responder),
            &["nolabel=\"\""],
            1,
            422,
            "empty string",
        ),
        (
            "everything by regex",
            (ADMIN.2, &admin),
            &["a=~\".*\"", "b!=\"x\""],
            1,
            422,
            "empty string",
        ),
        (
            "longer than a responder may",
            (RESPONDER.2, &responder),
            &shop,
            3,
            403,
            "needs admin",
        ),
        (
            "longer than 30 days",
            (ADMIN.2, &admin),
            &shop,
            24 * 31,
            422,
            "30 days",
        ),
        (
            "21 matchers",
            (ADMIN.2, &admin),
            &twenty_one,
            1,
            422,
            "at most 20",
        ),
    ];
    for (what, (token, cookie), matchers, hours, status, words) in refused {
        let (api, error) = api_window(&app, token, matchers, hours).await;
        let (console, page) = console_window(&app, cookie, matchers, hours).await;
        assert_eq!((api, console), (status, status), "{what}: {error}");
        assert!(error.contains(words) && page.contains(words), "{what}: {error}");
    }
    assert_eq!(app.count("SELECT count(*) FROM maintenance_windows").await, 0);
    // An admin may open a longer window; the third window is one too many, either way.
    assert_eq!(api_window(&app, ADMIN.2, &shop, 3).await.0, 201);
    assert_eq!(console_window(&app, &admin, &shop, 3).await.0, 303);
    let (api, error) = api_window(&app, RESPONDER.2, &shop, 1).await;
    let (console, page) = console_window(&app, &responder, &shop, 1).await;
    assert_eq!((api, console), (422, 422), "{error}");
    assert!(error.contains("max_windows") && page.contains("max_windows"));
    assert_eq!(app.count("SELECT count(*) FROM maintenance_windows").await, 2);
    // Each refusal and each window is counted once, by surface.
    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains(r#"medic_acts_total{act="maintenance_start",outcome="refused",surface="console"} 6"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"medic_acts_total{act="maintenance_start",outcome="done",surface="api"} 1"#));
}

/// Another replica's window, written as its act writes it, holds here within a second: the
/// NOTIFY of the change wakes this replica (its safety poll is 30 s, so a pass cannot come
/// from polling).
#[tokio::test]
async fn a_window_opened_through_one_replica_holds_in_another_within_a_second() {
    let app = TestApp::builder().spawn().await;
    let other = TestApp::builder().database(&app.database_url).spawn().await;
    // Let both replicas' LISTEN connections come up and their first reads pass.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(other.metric("medic_maintenance_windows_active").await, 0.0);
    let (opened, error) = api_window(&app, RESPONDER.2, &["namespace=\"shop\""], 1).await;
    assert_eq!(opened, 201, "{error}");
    other
        .metric_becomes(
            "medic_maintenance_windows_active",
            1.0,
            std::time::Duration::from_secs(1),
        )
        .await;
}
