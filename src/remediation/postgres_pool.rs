//! `postgres_relieve_pool`: on an allow-listed database, terminate the client backends of
//! allow-listed users whose active query has run longer than `threshold` (never medic's own,
//! replication or superuser sessions; at most `max_terminations`), and optionally raise the
//! application's pool size through an environment variable on its Deployment, up to a cap.
//! The target database carries no Kubernetes metadata; the pool-size change is a change to the
//! application's Deployment, so that Deployment is checked for a GitOps controller: a managed
//! one keeps its pool size (unless `gitops: allow`), while the terminations, which change no
//! spec, go ahead.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{
    gitops::{self, Verdict},
    kube::Kube,
    report::Report,
};
use crate::{
    config::{PgConnection, SessionLimits},
    domain::{ActionParams, RemediationResult},
    plan::TargetDatabase,
    store::tls::Connector,
};

/// Long-running queries that may be terminated, oldest first.
const VICTIMS: &str = "
    SELECT a.pid, a.usename::text, extract(epoch FROM now() - a.query_start)::float8,
           left(a.query, 200)
      FROM pg_stat_activity a
      JOIN pg_roles r ON r.rolname = a.usename
     WHERE a.state = 'active' AND a.backend_type = 'client backend'
       AND a.pid <> pg_backend_pid() AND a.application_name <> 'medic'
       AND NOT r.rolsuper AND NOT r.rolreplication
       AND a.usename = ANY($1)
       AND now() - a.query_start > $2::bigint * interval '1 millisecond'
     ORDER BY a.query_start
     LIMIT $3";

/// How the step runs: in a dry run or for real, and whether it may change a Deployment a
/// GitOps controller manages.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub dry_run: bool,
    pub gitops_allow: bool,
}

pub async fn relieve(
    database: &TargetDatabase,
    kube: Option<&Kube>,
    params: &ActionParams,
    run: Run,
) -> Result<Report, String> {
    let dry_run = run.dry_run;
    let threshold = params.duration("threshold", Duration::from_secs(60))?;
    let limit = params.integer("max_terminations", 5)?.max(0);
    let client = connect(database).await?;
    let rows = client
        .query(
            VICTIMS,
            &[&database.users, &(threshold.as_millis() as i64), &limit],
        )
        .await
        .map_err(|e| format!("listing long queries: {e}"))?;
    let victims: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"pid": r.get::<_, i32>(0), "user": r.get::<_, String>(1),
                   "seconds": r.get::<_, f64>(2), "query": r.get::<_, String>(3)})
        })
        .collect();
    let pool = match params.text("env") {
        Some(env) => Some(plan_pool(kube, params, env, run.gitops_allow).await?),
        None => None,
    };
    let detail = json!({"terminated": victims, "pool": pool});
    if dry_run {
        let summary = format!(
            "would terminate {} backends running over {threshold:?}{}",
            victims.len(),
            pool_text(&pool)
        );
        return Ok(Report::dry_run(summary, detail));
    }
    let mut terminated = 0;
    for row in &rows {
        let pid: i32 = row.get(0);
        let done: bool = client
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .map_err(|e| format!("terminating backend {pid}: {e}"))?
            .get(0);
        terminated += usize::from(done);
    }
    if let Some(pool) = &pool {
        apply_pool(kube, params, pool).await?;
    }
    let summary = format!(
        "terminated {terminated} backends running over {threshold:?}{}",
        pool_text(&pool)
    );
    let gitops_skip = pool.as_ref().and_then(|p| p["gitops_skip"].as_str());
    if let (0, Some(why)) = (terminated, gitops_skip) {
        let summary = format!("no query has run longer than {threshold:?}; pool size not changed: {why}");
        return Ok(Report::new(RemediationResult::SkippedGitops, summary, detail));
    }
    if terminated == 0 && pool.is_none() {
        return Ok(Report::noop(format!(
            "no query has run longer than {threshold:?}: nothing done"
        )));
    }
    Ok(Report::success(summary, detail))
}

/// A session with TLS as the connection string asks, and every statement bounded.
async fn connect(database: &TargetDatabase) -> Result<tokio_postgres::Client, String> {
    let limits = SessionLimits {
        connect_timeout: Duration::from_secs(5),
        statement_timeout: database.statement_timeout,
        idle_in_transaction_timeout: database.statement_timeout,
        keepalives_idle: Duration::from_secs(10),
    };
    let mut connection = PgConnection::parse(database.url.expose_secret())?.limit(&limits);
    connection.config.application_name("medic");
    let connector = Connector::new(connection)?;
    let (client, connection) = connector
        .connect()
        .await
        .map_err(|e| format!("connecting to the database: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// The env var's value before and after: + `pool_step` (default 5), at most `pool_max`; left
/// as it is (`gitops_skip` says why) when a GitOps controller manages the Deployment and the
/// step does not allow changing it (`gitops_warning` when it does).
async fn plan_pool(
    kube: Option<&Kube>,
    params: &ActionParams,
    env: &str,
    gitops_allow: bool,
) -> Result<Value, String> {
    let kube = kube.ok_or("raising the pool needs Kubernetes, which is not available")?;
    let (namespace, name) = (params.required("namespace")?, params.required("deployment")?);
    let step = params.integer("pool_step", 5)?;
    let max = params.integer("pool_max", i64::MAX)?;
    let deployment = kube
        .deployment(namespace, name)
        .await
        .map_err(|e| e.to_string())?;
    let manager = gitops::manager_of(&deployment);
    let verdict = gitops::verdict(&format!("deployment/{namespace}/{name}"), manager, gitops_allow);
    let container = deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .ok_or_else(|| format!("deployment/{name} has no container"))?;
    let current = container
        .env
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == env)
        .and_then(|e| e.value)
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| format!("deployment/{name} sets no numeric {env}"))?;
    let after = (current + step).min(max);
    let mut pool = json!({"container": container.name, "env": env, "before": current, "after": after});
    match verdict {
        Verdict::Free | Verdict::Unreadable(_) => {}
        Verdict::Skip(why) => {
            pool["after"] = json!(current);
            pool["gitops_skip"] = json!(why);
        }
        Verdict::Warn(warning) => pool["gitops_warning"] = json!(warning),
    }
    Ok(pool)
}

async fn apply_pool(kube: Option<&Kube>, params: &ActionParams, pool: &Value) -> Result<(), String> {
    let (Some(kube), Some(env)) = (kube, pool["env"].as_str()) else {
        return Ok(());
    };
    if pool["after"] == pool["before"] {
        return Ok(());
    }
    let (namespace, name) = (params.required("namespace")?, params.required("deployment")?);
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": pool["container"],
        "env": [{"name": env, "value": pool["after"].to_string()}],
    }]}}}});
    kube.patch_deployment(namespace, name, &patch)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn pool_text(pool: &Option<Value>) -> String {
    let gitops = |key: &str| pool.as_ref().and_then(|p| p[key].as_str());
    if let (Some(p), Some(why)) = (pool, gitops("gitops_skip")) {
        let env = p["env"].as_str().unwrap_or("");
        return format!("; {env} left at {}: {why}", p["before"]);
    }
    let warning = gitops("gitops_warning")
        .map(|w| format!("; {w}"))
        .unwrap_or_default();
    let text = match pool {
        Some(p) if p["after"] != p["before"] => format!(
            "; {} {} → {}",
            p["env"].as_str().unwrap_or(""),
            p["before"],
            p["after"]
        ),
        Some(p) => format!(
            "; {} already at its cap ({})",
            p["env"].as_str().unwrap_or(""),
            p["before"]
        ),
        None => String::new(),
    };
    text + &warning
}
