//! Schema migrations, embedded in the binary and applied in order under an advisory lock, so
//! that replicas starting together apply each one exactly once.

use tokio_postgres::Client;

use super::error::StoreError;

/// `(version, name, sql)`, in the order they apply. Never edit one that has shipped.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "intake", include_str!("../../migrations/0001_intake.sql")),
    (
        2,
        "record_notification",
        include_str!("../../migrations/0002_record_notification.sql"),
    ),
    (3, "timers", include_str!("../../migrations/0003_timers.sql")),
    (
        4,
        "remediation",
        include_str!("../../migrations/0004_remediation.sql"),
    ),
    (
        5,
        "explicit_boundary",
        include_str!("../../migrations/0005_explicit_boundary.sql"),
    ),
    (
        6,
        "label_search",
        include_str!("../../migrations/0006_label_search.sql"),
    ),
    (
        7,
        "people_in_control",
        include_str!("../../migrations/0007_people_in_control.sql"),
    ),
    (8, "two_way", include_str!("../../migrations/0008_two_way.sql")),
    (9, "console", include_str!("../../migrations/0009_console.sql")),
    (
        10,
        "acknowledged_tabs",
        include_str!("../../migrations/0010_acknowledged_tabs.sql"),
    ),
    (11, "traces", include_str!("../../migrations/0011_traces.sql")),
    (
        12,
        "label_index_cost",
        include_str!("../../migrations/0012_label_index_cost.sql"),
    ),
    (
        13,
        "new_group_cost",
        include_str!("../../migrations/0013_new_group_cost.sql"),
    ),
    (
        14,
        "prune_by_age",
        include_str!("../../migrations/0014_prune_by_age.sql"),
    ),
    (
        15,
        "control_changes",
        include_str!("../../migrations/0015_control_changes.sql"),
    ),
    (16, "jwt", include_str!("../../migrations/0016_jwt.sql")),
    (
        17,
        "proven_identity",
        include_str!("../../migrations/0017_proven_identity.sql"),
    ),
    (
        18,
        "heartbeats",
        include_str!("../../migrations/0018_heartbeats.sql"),
    ),
    (19, "context", include_str!("../../migrations/0019_context.sql")),
    (20, "proof", include_str!("../../migrations/0020_proof.sql")),
    (21, "observe", include_str!("../../migrations/0021_observe.sql")),
    (22, "channels", include_str!("../../migrations/0022_channels.sql")),
];

/// Arbitrary key for `pg_advisory_xact_lock`: "medic" in ASCII.
const LOCK_KEY: i64 = 0x006d_6564_6963;

/// The versions of the migrations this build applies, in order.
pub fn versions() -> Vec<i32> {
    MIGRATIONS.iter().map(|(version, _, _)| *version).collect()
}

/// The schema version this build needs.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _, _)| *version)
}

/// Applies what is missing in one transaction; returns how many migrations ran.
pub async fn run(client: &mut Client) -> Result<usize, StoreError> {
    let tx = client.transaction().await?;
    // A migration may take longer than a session's usual statement limit.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS medic_schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM medic_schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let mut applied = 0;
    for (version, name, sql) in MIGRATIONS.iter().filter(|(version, _, _)| *version > current) {
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError::Other(anyhow::Error::new(e).context(format!("applying migration {version} {name}")))
        })?;
        tx.execute(
            "INSERT INTO medic_schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tracing::info!(version, name, "applied migration");
        applied += 1;
    }
    tx.commit().await?;
    Ok(applied)
}

/// Whether the database holds at least the schema this build needs.
pub async fn is_current(client: &Client) -> Result<bool, StoreError> {
    let exists = client
        .query_one("SELECT to_regclass('medic_schema_migrations') IS NOT NULL", &[])
        .await?;
    if !exists.get::<_, bool>(0) {
        return Ok(false);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM medic_schema_migrations",
            &[],
        )
        .await?;
    Ok(row.get::<_, i32>(0) >= latest())
}
