//! Bad input gets a 4xx with a JSON body that says what is wrong, and nothing is stored.

use serde_json::Value;

use crate::helpers::{fixture, notification, TestApp, TOKEN};

async fn assert_nothing_stored(app: &TestApp) {
    assert_eq!(app.count("SELECT count(*) FROM incidents").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM alert_groups").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM deliveries").await, 0);
}

#[tokio::test]
async fn malformed_json_is_400_with_line_and_column() {
    let app = TestApp::builder().spawn().await;

    let response = app.post_webhook_raw("{\n  \"receiver\": \"x\",\n  oops\n}").await;

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().starts_with("malformed JSON"),
        "{body}"
    );
    assert_eq!(body["line"], 3);
    assert_eq!(body["column"], 3);
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_truncated_body_is_400() {
    let app = TestApp::builder().spawn().await;
    let payload = fixture("firing.json");

    let response = app
        .post_webhook_raw(payload[..payload.len() / 2].to_owned())
        .await;

    assert_eq!(response.status(), 400);
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_wrong_content_type_is_415() {
    let app = TestApp::builder().spawn().await;

    let response = app
        .webhook("text/plain")
        .bearer_auth(TOKEN)
        .body(fixture("firing.json"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("application/json"),
        "{body}"
    );
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn json_with_a_charset_parameter_is_accepted() {
    let app = TestApp::builder().spawn().await;

    let response = app
        .webhook("Application/JSON; charset=utf-8")
        .bearer_auth(TOKEN)
        .body(fixture("firing.json"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::builder()
        .env("MEDIC_SERVER__BODY_LIMIT_BYTES", 4096)
        .spawn()
        .await;
    let alerts: Vec<(String, &str, &str)> = (0..40)
        .map(|i| (format!("{i:04x}"), "firing", "2026-11-26T15:00:00Z"))
        .collect();
    let alerts: Vec<(&str, &str, &str)> = alerts.iter().map(|(f, s, t)| (f.as_str(), *s, *t)).collect();
    let payload = notification("g", "firing", &alerts);
    assert!(payload.to_string().len() > 4096);

    let response = app.post_webhook(&payload).await;

    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["limit_bytes"], 4096);
    assert_nothing_stored(&app).await;
    let small = notification("g", "firing", &alerts[..2]);
    assert_eq!(app.post_webhook(&small).await.status(), 200);
}

#[tokio::test]
async fn an_unsupported_version_is_422_and_says_so() {
    let app = TestApp::builder().spawn().await;
    for version in ["3", "5"] {
        let mut payload: Value = serde_json::from_str(&fixture("firing.json")).unwrap();
        payload["version"] = version.into();

        let response = app.post_webhook(&payload).await;

        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("unsupported payload version"),
            "{body}"
        );
    }
    let mut other_shape: Value = serde_json::json!({"version": "5", "groups": []});
    let response = app.post_webhook(&other_shape).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unsupported payload version"),
        "{body}"
    );
    other_shape["version"] = "4".into();
    assert_eq!(app.post_webhook(&other_shape).await.status(), 422);
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_notification_missing_required_fields_is_422_naming_the_field() {
    let app = TestApp::builder().spawn().await;
    let mut payload: Value = serde_json::from_str(&fixture("firing.json")).unwrap();
    payload.as_object_mut().unwrap().remove("groupKey");

    let response = app.post_webhook(&payload).await;

    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("groupKey"), "{body}");
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn an_invalid_alert_rejects_the_whole_notification() {
    let app = TestApp::builder().spawn().await;
    let mut payload = notification(
        "g",
        "firing",
        &[
            ("aa01", "firing", "2026-11-26T15:00:00Z"),
            ("aa02", "firing", "2026-11-26T15:00:00Z"),
        ],
    );
    payload["alerts"][1]["fingerprint"] = "not hex!".into();

    let response = app.post_webhook(&payload).await;

    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().starts_with("alerts[1]"), "{body}");
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn unknown_fields_from_newer_alertmanagers_are_ignored() {
    let app = TestApp::builder().spawn().await;
    let mut payload: Value = serde_json::from_str(&fixture("firing.json")).unwrap();
    payload["notification_reason"] = "repeat".into();
    payload["routeLabels"] = serde_json::json!({"team": "sre"});
    payload["alerts"][0]["silenceURL"] = "http://am/silence".into();

    assert_eq!(app.post_webhook(&payload).await.status(), 200);
}

#[tokio::test]
async fn truncated_alerts_are_kept() {
    let app = TestApp::builder().spawn().await;
    let mut payload = notification("g", "firing", &[("aa01", "firing", "2026-11-26T15:00:00Z")]);
    payload["truncatedAlerts"] = 7.into();

    app.post_webhook(&payload).await;

    assert_eq!(app.incidents().await[0]["truncated_alerts"], 7);
}

#[tokio::test]
async fn go_escaped_characters_round_trip() {
    let app = TestApp::builder().spawn().await;
    let raw = fixture("firing.json").replace(
        "Pod api-7d9f is crash looping",
        r#"p99 \u003e 250ms \u0026 errors \u003c 5% \"quoted\""#,
    );

    assert_eq!(app.post_webhook_raw(raw).await.status(), 200);

    let incident = &app.incidents().await[0];
    assert_eq!(
        incident["alerts"][0]["annotations"]["summary"],
        r#"p99 > 250ms & errors < 5% "quoted""#
    );
}

#[tokio::test]
async fn a_nul_character_postgres_cannot_store_is_422_not_a_retry_loop() {
    let app = TestApp::builder().spawn().await;
    let raw = fixture("firing.json").replace("Pod api-7d9f is crash looping", r"bad \u0000 byte");

    let response = app.post_webhook_raw(raw).await;

    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("NUL"), "{body}");
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_resolved_notification_with_a_firing_alert_is_422() {
    let app = TestApp::builder().spawn().await;
    let payload = notification(
        "g",
        "resolved",
        &[
            ("00000000000000a1", "resolved", "2026-11-26T15:00:00Z"),
            ("00000000000000a2", "firing", "2026-11-26T15:00:00Z"),
        ],
    );
    let response = app.post_webhook(&payload).await;
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("firing"), "{body}");
    assert!(app.incidents().await.is_empty());
}

#[tokio::test]
async fn a_group_key_too_long_to_index_is_422_and_a_long_label_value_is_stored() {
    let app = TestApp::builder().spawn().await;
    let long_key = format!("{{}}:{{alertname=\"{}\"}}", "k".repeat(3000));
    let response = app
        .post_webhook(&notification(
            &long_key,
            "firing",
            &[("00000000000000b1", "firing", "2026-11-26T15:00:00Z")],
        ))
        .await;
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("groupKey is 3"),
        "{body}"
    );

    let mut payload = notification(
        "g",
        "firing",
        &[("00000000000000b2", "firing", "2026-11-26T15:00:00Z")],
    );
    payload["alerts"][0]["labels"]["description"] = serde_json::json!("v".repeat(3 * 1024));
    assert_eq!(
        app.post_webhook(&payload).await.status(),
        200,
        "a 3 KB label value is stored"
    );
    assert_eq!(
        app.post_webhook(&payload).await.status(),
        200,
        "and again, as a duplicate"
    );
}

#[tokio::test]
async fn an_episode_repeated_within_a_notification_keeps_its_last_occurrence() {
    let app = TestApp::builder().spawn().await;
    let t = "2026-11-26T15:00:00Z";
    let mut payload = notification(
        "g",
        "firing",
        &[
            ("00000000000000c1", "firing", t),
            ("00000000000000c2", "firing", t),
            ("00000000000000c1", "firing", t),
        ],
    );
    payload["alerts"][0]["annotations"]["summary"] = serde_json::json!("first");
    payload["alerts"][2]["annotations"]["summary"] = serde_json::json!("last");
    let id = app.post_for_incident(&payload).await;
    let alerts = app.incident(id).await["alerts"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 2);
    let c1 = alerts
        .iter()
        .find(|a| a["fingerprint"] == "00000000000000c1")
        .unwrap();
    assert_eq!(c1["annotations"]["summary"], "last");
}
