//! The read API: listing newest first, filtering, paging, one incident.

use crate::helpers::{notification, TestApp};

async fn three_incidents(app: &crate::helpers::TestApp) {
    let t0 = "2026-11-26T15:00:00Z";
    for group in ["first", "second", "third"] {
        app.post_webhook(&notification(group, "firing", &[("aa01", "firing", t0)]))
            .await;
    }
    app.post_webhook(&notification("second", "resolved", &[("aa01", "resolved", t0)]))
        .await;
}

#[tokio::test]
async fn incidents_are_listed_newest_first_and_filtered_by_status() {
    let app = TestApp::builder().spawn().await;
    three_incidents(&app).await;

    let all = app.incidents().await;
    let keys: Vec<&str> = all.iter().map(|i| i["group_key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["third", "second", "first"]);

    let firing = app.get_json("/api/v1/incidents?status=firing").await;
    let keys: Vec<&str> = firing["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["group_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["third", "first"]);

    let resolved = app.get_json("/api/v1/incidents?status=resolved").await;
    assert_eq!(resolved["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(resolved["incidents"][0]["group_key"], "second");
}

#[tokio::test]
async fn pages_follow_the_cursor_until_the_end() {
    let app = TestApp::builder().spawn().await;
    three_incidents(&app).await;

    let page1 = app.get_json("/api/v1/incidents?limit=2").await;
    assert_eq!(page1["incidents"].as_array().unwrap().len(), 2);
    let cursor = page1["next_before"]
        .as_i64()
        .expect("a cursor while more may follow");
    let page2 = app
        .get_json(&format!("/api/v1/incidents?limit=2&before={cursor}"))
        .await;

    assert_eq!(page2["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(page2["incidents"][0]["group_key"], "first");
    assert!(page2["next_before"].is_null());
}

#[tokio::test]
async fn one_incident_by_id_and_404_for_an_unknown_one() {
    let app = TestApp::builder().spawn().await;
    three_incidents(&app).await;
    let id = app.incidents().await[0]["id"].as_i64().unwrap();

    let incident = app.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["id"], id);
    for field in [
        "status",
        "receiver",
        "group_key",
        "created_at",
        "resolved_at",
        "deliveries",
        "alerts",
    ] {
        assert!(incident.get(field).is_some(), "{field} missing from {incident}");
    }
    for field in [
        "fingerprint",
        "status",
        "starts_at",
        "ends_at",
        "labels",
        "annotations",
    ] {
        assert!(
            incident["alerts"][0].get(field).is_some(),
            "{field} missing from the alert"
        );
    }

    let missing = app.get("/api/v1/incidents/999999").await;
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn bad_query_parameters_are_400_with_a_json_error() {
    let app = TestApp::builder().spawn().await;
    for path in [
        "/api/v1/incidents?status=burning",
        "/api/v1/incidents?limit=0",
        "/api/v1/incidents?limit=100000",
        "/api/v1/incidents?colour=red",
        "/api/v1/incidents/abc",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 400, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}");
    }
}
