//! Searching incidents by label (`filter`, Alertmanager matcher syntax, repeatable), status,
//! and when they opened, with the cursor paging and the list's shape unchanged.

use serde_json::{json, Value};

use crate::helpers::{alerts_with_labels, notification, TestApp};

/// An incident in group `group` with one alert per label set.
async fn incident(app: &TestApp, group: &str, alerts: &[Value]) -> i64 {
    app.post_for_incident(&alerts_with_labels(group, alerts, 0xab00 + group.len() * 100))
        .await
}

async fn ids(app: &TestApp, query: &str) -> Vec<i64> {
    let body = app.get_json(&format!("/api/v1/incidents?{query}")).await;
    body["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

fn q(filter: &str) -> String {
    format!("filter={}", urlencode(filter))
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn filters_select_incidents_with_an_alert_matching_them_all() {
    let app = TestApp::builder().spawn().await;
    let shop = incident(
        &app,
        "shop",
        &[json!({"alertname": "HighErrorRate", "namespace": "shop-prod", "pod": "a"})],
    )
    .await;
    let shop_staging = incident(
        &app,
        "shop-staging",
        &[json!({"alertname": "HighErrorRate", "namespace": "shop-staging"})],
    )
    .await;
    let mixed = incident(
        &app,
        "mixed",
        &[
            json!({"alertname": "HighErrorRate", "namespace": "api"}),
            json!({"alertname": "Other", "namespace": "shop-x"}),
        ],
    )
    .await;
    let other = incident(
        &app,
        "other",
        &[json!({"alertname": "LowDiskSpace", "namespace": "db"})],
    )
    .await;

    assert_eq!(
        ids(&app, &q(r#"alertname="HighErrorRate""#)).await,
        [mixed, shop_staging, shop]
    );
    assert_eq!(
        ids(
            &app,
            &format!(
                "{}&{}",
                q(r#"alertname="HighErrorRate""#),
                q(r#"namespace=~"shop.*""#)
            )
        )
        .await,
        [shop_staging, shop],
        "both filters on one alert: mixed has them on two alerts"
    );
    assert_eq!(
        ids(&app, &q(r#"namespace!~"shop.*""#)).await,
        [other, mixed],
        "mixed's api alert passes"
    );
    assert_eq!(
        ids(&app, &q(r#"pod="""#)).await,
        [other, mixed, shop_staging],
        "a missing label is empty"
    );
    assert_eq!(
        ids(&app, &q(r#"alertname!="HighErrorRate""#)).await,
        [other, mixed]
    );
    assert_eq!(
        ids(&app, &q(r#"{alertname="LowDiskSpace", namespace="db"}"#)).await,
        [other]
    );

    // Paging keeps the filter.
    let first = app
        .get_json(&format!(
            "/api/v1/incidents?limit=1&{}",
            q(r#"alertname="HighErrorRate""#)
        ))
        .await;
    assert_eq!(first["incidents"][0]["id"], mixed);
    assert_eq!(
        first["incidents"][0]["alerts"].as_array().unwrap().len(),
        2,
        "the row keeps its alerts"
    );
    let next = first["next_before"].as_i64().unwrap();
    assert_eq!(
        ids(
            &app,
            &format!("before={next}&limit=5&{}", q(r#"alertname="HighErrorRate""#))
        )
        .await,
        [shop_staging, shop]
    );
}

#[tokio::test]
async fn status_and_time_bounds_combine_with_filters() {
    let app = TestApp::builder().spawn().await;
    let t = "2026-11-30T07:00:00Z";
    let firing = app
        .post_for_incident(&notification("a", "firing", &[("00000000000000a1", "firing", t)]))
        .await;
    let resolved = app
        .post_for_incident(&notification("b", "firing", &[("00000000000000b1", "firing", t)]))
        .await;
    app.post_for_incident(&notification(
        "b",
        "resolved",
        &[("00000000000000b1", "resolved", t)],
    ))
    .await;
    let both = q(r#"alertname="HighErrorRate""#);
    assert_eq!(ids(&app, &format!("status=firing&{both}")).await, [firing]);
    assert_eq!(ids(&app, &format!("status=resolved&{both}")).await, [resolved]);
    assert_eq!(ids(&app, "since=2000-01-01T00:00:00Z").await, [resolved, firing]);
    assert!(ids(&app, "until=2000-01-01T00:00:00Z").await.is_empty());
    assert!(
        ids(&app, &format!("since={}", urlencode("2999-01-01T00:00:00+01:00")))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_bad_filter_or_time_is_400_with_the_reason() {
    let app = TestApp::builder().spawn().await;
    for (query, reason) in [
        (q(r#"alertname=~"(""#), "filter"),
        (q("alertname"), "filter"),
        (q(r#"alertname=~"(?P<x>a)""#), "regular expression"),
        ("since=yesterday".to_owned(), "RFC 3339"),
        ("status=burning".to_owned(), "status"),
        ("colour=blue".to_owned(), "unknown query parameter"),
        ("limit=0".to_owned(), "limit"),
    ] {
        let response = app.get(&format!("/api/v1/incidents?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(reason),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn a_label_is_found_when_its_alert_joins_later_and_at_any_length() {
    let app = TestApp::builder().spawn().await;
    let first = [json!({"alertname": "Disk", "pod": "a"})];
    let incident_id = incident(&app, "disk", &first).await;
    let long = "v".repeat(6000);
    let both = [
        json!({"alertname": "Disk", "pod": "a"}),
        json!({"alertname": "Disk", "pod": "b", "volume": long}),
    ];
    // The same group with a second alert: it joins the open incident.
    assert_eq!(incident(&app, "disk", &both).await, incident_id);
    let _decoy = incident(&app, "other", &[json!({"alertname": "Disk", "pod": "c"})]).await;

    assert_eq!(ids(&app, &q(r#"pod="b""#)).await, [incident_id]);
    assert_eq!(ids(&app, &q(&format!(r#"volume="{long}""#))).await, [incident_id]);
    assert!(ids(&app, &q(&format!(r#"volume="{long}x""#))).await.is_empty());
    assert_eq!(
        ids(&app, &format!("{}&{}", q(r#"pod="a""#), q(r#"alertname="Disk""#))).await,
        [incident_id]
    );
    assert!(
        ids(&app, &format!("{}&{}", q(r#"pod="a""#), q(r#"volume!="""#)))
            .await
            .is_empty(),
        "pod a and the volume are on different alerts"
    );
}

/// The label index's keys are the same whoever computes them: medic from the pairs it sends,
/// `medic_record` from the labels when a replica of the previous version calls it (during a
/// rolling update), and `medic_label_keys`, which filled the index for older incidents.
#[tokio::test]
async fn label_keys_are_the_same_from_medic_and_from_a_replica_of_the_previous_version() {
    let app = TestApp::builder().spawn().await;
    let labels = [
        json!({"alertname": "Disk", "pod": "a", "zone": "é=ü"}),
        json!({"alertname": "Disk", "pod": "b", "zone": "é=ü"}),
    ];
    let by_medic = incident(&app, "disk", &labels).await;
    let db = app.sql().await;
    let previous: i64 = db
        .query_one(
            "SELECT incident_id FROM medic_record(
                 p_receiver => 'web', p_group_key => 'previous', p_group_labels => '{}',
                 p_status => 'firing', p_common_labels => '{}', p_common_annotations => '{}',
                 p_external_url => '', p_truncated_alerts => 0,
                 p_fingerprints => ARRAY['aa', 'bb'], p_starts_at => ARRAY[now(), now()],
                 p_ends_at => ARRAY[NULL, NULL]::timestamptz[], p_statuses => ARRAY['firing', 'firing'],
                 p_labels => $1::jsonb[], p_annotations => ARRAY['{}', '{}']::jsonb[],
                 p_generator_urls => ARRAY['', ''], p_timer_kinds => '{}', p_timer_rules => '{}',
                 p_timer_steps => '{}', p_timer_notifiers => '{}', p_timer_channels => '{}',
                 p_timer_after_ms => '{}', p_timer_repeat_ms => '{}', p_timer_subjects => '{}',
                 p_timer_payloads => '{}', p_traceparent => NULL)",
            &[&labels.to_vec()],
        )
        .await
        .unwrap()
        .get(0);
    let keys = "SELECT i.label_keys, medic_label_keys(ARRAY(SELECT a.labels FROM alerts a
                                                            WHERE a.incident_id = i.id))
                  FROM incidents i WHERE i.id = $1";
    let medic = db.query_one(keys, &[&by_medic]).await.unwrap();
    let old = db.query_one(keys, &[&previous]).await.unwrap();
    let medic: (Vec<i64>, Vec<i64>) = (medic.get(0), medic.get(1));
    assert_eq!(medic.0.len(), 4, "alertname, two pods, one zone");
    assert_eq!(medic.0, medic.1);
    assert_eq!(old.get::<_, Vec<i64>>(0), medic.0);
    assert_eq!(
        ids(&app, &format!("{}&{}", q(r#"zone="é=ü""#), q(r#"pod="b""#))).await,
        [previous, by_medic]
    );
}
