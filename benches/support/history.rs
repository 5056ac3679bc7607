//! A history built in SQL, as the benchmarks that read one need it.

#![allow(dead_code)]

/// A connection of its own to the database at `url`.
pub async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The history, in SQL: groups, incidents, alerts and deliveries, then ANALYZE.
pub async fn build_history(url: &str, n: i64) {
    let db = sql(url).await;
    db.batch_execute(&format!(
        "SET synchronous_commit = off;
         INSERT INTO alert_groups (receiver, group_key, group_labels, first_seen_at)
              SELECT 'bench', 'g' || g, jsonb_build_object('alertname', 'A' || g % 50), now()
                FROM generate_series(1, {n}) g;
         INSERT INTO incidents (group_id, status, created_at, updated_at, resolved_at, common_labels,
                                common_annotations, external_url)
              SELECT g.id, CASE WHEN g.id % 100 = 0 THEN 'firing' ELSE 'resolved' END,
                     now() - ({n} - g.id) * interval '30 seconds', now() - ({n} - g.id) * interval '30 seconds',
                     CASE WHEN g.id % 100 = 0 THEN NULL ELSE now() - ({n} - g.id) * interval '30 seconds' + interval '5 minutes' END,
                     jsonb_build_object('alertname', 'A' || g.id % 50), '{{}}', 'http://alertmanager:9093'
                FROM alert_groups g ORDER BY g.id;"
    ))
    .await
    .unwrap();
    // Alerts and deliveries in slices, so that no one statement holds everything in memory.
    let slice = 100_000;
    for start in (0..n).step_by(slice as usize) {
        db.batch_execute(&format!(
            "SET synchronous_commit = off;
             INSERT INTO alerts (incident_id, group_id, fingerprint, starts_at, ends_at, status, labels,
                                 annotations, generator_url, first_seen_at, updated_at)
                  SELECT i.id, i.group_id, lpad(to_hex(i.id * 16 + k), 16, '0'), i.created_at,
                         i.resolved_at, i.status,
                         jsonb_build_object('alertname', 'A' || i.id % 50, 'namespace', 'ns' || i.id % 200,
                                            'pod', 'pod-' || i.id || '-' || k, 'severity', 'critical')
                         || CASE WHEN i.id % 1000 = 0 THEN '{{\"needle\": \"yes\"}}'::jsonb ELSE '{{}}' END,
                         '{{\"summary\": \"something is wrong\"}}', '', i.created_at, i.created_at
                    FROM incidents i, generate_series(1, 10) k
                   WHERE i.id > {start} AND i.id <= {end};
             INSERT INTO deliveries (incident_id, received_at, status, alerts, new_alerts, resolved_alerts,
                                     truncated_alerts, duplicate)
                  SELECT i.id, i.created_at + k * interval '1 minute', 'firing', 10, 0, 0, 0, k > 1
                    FROM incidents i, generate_series(1, 20) k
                   WHERE i.id > {start} AND i.id <= {end};
             UPDATE incidents i
                SET label_keys = (SELECT medic_label_keys(array_agg(a.labels)) FROM alerts a
                                   WHERE a.group_id = i.group_id AND a.incident_id = i.id)
              WHERE i.id > {start} AND i.id <= {end};",
            end = start + slice
        ))
        .await
        .unwrap();
    }
    // Flushed now, so that writing the build's pages out does not fall in the measurements.
    db.batch_execute("VACUUM ANALYZE").await.unwrap();
    db.batch_execute("CHECKPOINT").await.unwrap();
}
