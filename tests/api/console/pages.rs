//! The console's pages without a browser: the incident list and its filter, assets, silences,
//! maintenance windows and the pause switch, the rules page's explain box, and the API's paging
//! the list relies on.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{
    client::{client, csrf_of, get_page, post_form, session_cookie},
    setups::{incident_posted, memory_payload, rules_settings, sixty_incidents_the_oldest_acknowledged},
};
use crate::helpers::{settings::settings, TestApp, ADMIN, RESPONDER, VIEWER};

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
        .settings(&settings().with("alertmanager", json!({"url": am})))
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

#[tokio::test]
async fn the_explain_box_answers_without_javascript_and_a_bad_payload_is_a_422_page() {
    let app = TestApp::builder().settings(&rules_settings()).spawn().await;
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
