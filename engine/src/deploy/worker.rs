//! The deployment driver. Each replica runs one worker; a deployment is driven by whichever worker
//! holds its lease.
//!
//! Why row leases (`FOR UPDATE SKIP LOCKED` plus `lease_owner`/`lease_until`) rather than advisory
//! locks or a Kubernetes Lease: the claim and the state change are one statement in the database
//! that already holds the deployment, so there is no second system to disagree with; a lease
//! outlives a connection drop (an advisory lock dies with its session and would hand the work over
//! while the first driver may still be applying); and a dead replica's work returns after at most
//! `LEASE` without anyone having to notice it died.

use std::time::Duration;

use enclii_spec::render::{self, Target};
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::{apply, rollout};
use crate::Engine;

pub const LEASE: Duration = Duration::from_secs(30);
pub const CHANNEL: &str = "enclii_deployments";

/// Claims and drives deployments until the process stops.
pub async fn run(engine: Engine, client: kube::Client, replica: String) {
    let mut listener = match PgListener::connect_with(&engine.pool).await {
        Ok(mut l) => match l.listen(CHANNEL).await {
            Ok(()) => Some(l),
            Err(_) => None,
        },
        Err(_) => None,
    };
    loop {
        if engine.pool.is_closed() {
            tracing::info!("the database pool closed; the deployment worker stops");
            return;
        }
        match claim(&engine.pool, &replica).await {
            Ok(Some(id)) => {
                let engine = engine.clone();
                let client = client.clone();
                let replica = replica.clone();
                tokio::spawn(async move { drive_with_lease(&engine, client, id, &replica).await });
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "claiming a deployment failed; retrying shortly");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        // A new deployment notifies at once; the timeout also catches expired leases.
        let woke = match listener.as_mut() {
            Some(l) => tokio::time::timeout(Duration::from_secs(2), l.recv()).await,
            None => Ok(Err(sqlx::Error::PoolClosed)),
        };
        if let Ok(Err(_)) = woke {
            // No listener (or it broke): fall back to polling, never to a busy loop.
            listener = None;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Takes one deployment that is pending, or whose driver's lease ran out.
pub async fn claim(pool: &PgPool, replica: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"UPDATE deployments SET state = 'in_progress', started_at = COALESCE(started_at, now()),
                  lease_owner = $1, lease_until = now() + make_interval(secs => $2)
           WHERE id = (SELECT id FROM deployments
                       WHERE state = 'pending' OR (state = 'in_progress' AND lease_until < now())
                       ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
           RETURNING id"#,
        replica,
        LEASE.as_secs_f64()
    )
    .fetch_optional(pool)
    .await
}

async fn drive_with_lease(engine: &Engine, client: kube::Client, id: i64, replica: &str) {
    let renew = async {
        loop {
            tokio::time::sleep(LEASE / 3).await;
            let kept = sqlx::query!(
                "UPDATE deployments SET lease_until = now() + make_interval(secs => $3) WHERE id = $1 AND lease_owner = $2 AND state = 'in_progress'",
                id,
                replica,
                LEASE.as_secs_f64()
            )
            .execute(&engine.pool)
            .await;
            if !matches!(kept, Ok(r) if r.rows_affected() == 1) {
                tracing::warn!(
                    deployment = id,
                    "lost the lease; another replica drives this deployment now"
                );
                return;
            }
        }
    };
    tokio::select! {
        result = drive(engine, client, id) => {
            if let Err(e) = result {
                tracing::error!(deployment = id, error = %e, "driving a deployment failed on the database; it will be resumed");
            }
        }
        _ = renew => {}
    }
}

struct Job {
    project: String,
    service: String,
    environment: String,
    namespace: String,
    image: String,
    release: String,
    source: String,
}

#[tracing::instrument(skip(engine, client), fields(deployment = id))]
pub async fn drive(engine: &Engine, client: kube::Client, id: i64) -> sqlx::Result<()> {
    let pool = &engine.pool;
    let row = sqlx::query!(
        r#"SELECT s.name AS service, p.slug AS project, e.name AS environment, e.namespace, r.id AS release_id,
                  r.image_ref, r.image_digest, sr.source
           FROM deployments d JOIN services s ON s.id = d.service_id JOIN projects p ON p.id = s.project_id
                JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id
                JOIN spec_revisions sr ON sr.service_id = r.service_id AND sr.revision = r.spec_revision
           WHERE d.id = $1"#,
        id
    )
    .fetch_one(pool)
    .await?;
    let job = Job {
        project: row.project,
        service: row.service,
        environment: row.environment,
        namespace: row.namespace,
        image: pinned_image(&row.image_ref, row.image_digest.as_deref()),
        release: row.release_id.to_string(),
        source: row.source,
    };
    let file = match enclii_spec::parse(&job.source) {
        Ok(f) => f,
        Err(_) => return finish(pool, id, "failed", "the release's spec no longer parses").await,
    };
    let target = Target {
        project: &job.project,
        environment: &job.environment,
        namespace: &job.namespace,
        image: &job.image,
        release: &job.release,
    };
    let manifests = render::render(&file, &target);

    let seq = step_start(pool, id, "apply", None).await?;
    match apply::apply_all(&client, &manifests).await {
        Ok(applied) => {
            step_end(
                pool,
                id,
                seq,
                "succeeded",
                &format!("applied {} objects", applied.len()),
                serde_json::json!({ "objects": applied }),
            )
            .await?
        }
        Err(reason) => {
            step_end(pool, id, seq, "failed", &reason, serde_json::json!({})).await?;
            return finish(pool, id, "failed", &reason).await;
        }
    }
    let seq = step_start(pool, id, "prune", None).await?;
    match apply::prune(
        &client,
        &job.namespace,
        &job.service,
        &job.environment,
        &manifests,
    )
    .await
    {
        Ok(pruned) => {
            step_end(
                pool,
                id,
                seq,
                "succeeded",
                &format!("pruned {} objects", pruned.len()),
                serde_json::json!({ "objects": pruned }),
            )
            .await?
        }
        Err(reason) => {
            step_end(pool, id, seq, "failed", &reason, serde_json::json!({})).await?;
            return finish(pool, id, "failed", &reason).await;
        }
    }
    // Canary analysis is the canary issue's; until it lands every strategy rolls out in one step,
    // and the record says so.
    let seq = step_start(pool, id, "rollout", Some(100)).await?;
    sqlx::query!("UPDATE deployments SET traffic_split = 'single step (no canary analysis yet)' WHERE id = $1", id).execute(pool).await?;
    let limit = Duration::from_secs(engine.settings.cluster.rollout_timeout_secs);
    let pool2 = pool.clone();
    let outcome = rollout::watch(client, &job.namespace, &job.service, &job.release, limit, move |p| {
        if let rollout::Progress::Waiting { ready, desired } = p {
            // Progress is evidence too: the dashboard and `deploy --wait` show it as it happens.
            let (pool, ready, desired) = (pool2.clone(), *ready, *desired);
            tokio::spawn(async move {
                let _ = sqlx::query!(
                    "UPDATE deployment_steps SET message = $3, evidence = jsonb_build_object('ready', $4::int, 'desired', $5::int)
                     WHERE deployment_id = $1 AND seq = $2 AND state = 'running'",
                    id,
                    seq,
                    format!("{ready}/{desired} new pods ready"),
                    ready,
                    desired
                )
                .execute(&pool)
                .await;
            });
        }
    })
    .await;
    match outcome {
        rollout::Progress::Succeeded { ready } => {
            step_end(
                pool,
                id,
                seq,
                "succeeded",
                &format!("{ready} new pods ready"),
                serde_json::json!({ "ready": ready }),
            )
            .await?;
            finish(
                pool,
                id,
                "succeeded",
                &format!("{ready} pods of the new release are ready"),
            )
            .await
        }
        rollout::Progress::Failed { reason } => {
            step_end(pool, id, seq, "failed", &reason, serde_json::json!({})).await?;
            finish(pool, id, "failed", &reason).await
        }
        rollout::Progress::Waiting { .. } => {
            finish(pool, id, "failed", "the rollout stopped without an outcome").await
        }
    }
}

/// The image by digest when the release knows it: a tag can be moved, a digest cannot.
pub fn pinned_image(image_ref: &str, digest: Option<&str>) -> String {
    match digest {
        Some(d) if !image_ref.contains('@') => {
            let last_slash = image_ref.rfind('/').map(|i| i + 1).unwrap_or(0);
            let repo = match image_ref[last_slash..].find(':') {
                Some(colon) => &image_ref[..last_slash + colon],
                None => image_ref,
            };
            format!("{repo}@{d}")
        }
        _ => image_ref.to_owned(),
    }
}

async fn step_start(pool: &PgPool, id: i64, kind: &str, weight: Option<i32>) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        r#"INSERT INTO deployment_steps (deployment_id, seq, kind, state, weight)
           VALUES ($1, (SELECT COALESCE(max(seq), 0) + 1 FROM deployment_steps WHERE deployment_id = $1), $2, 'running', $3)
           RETURNING seq"#,
        id,
        kind,
        weight
    )
    .fetch_one(pool)
    .await
}

async fn step_end(
    pool: &PgPool,
    id: i64,
    seq: i32,
    state: &str,
    message: &str,
    evidence: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE deployment_steps SET state = $3, message = $4, evidence = evidence || $5, finished_at = now() WHERE deployment_id = $1 AND seq = $2",
        id,
        seq,
        state,
        message,
        evidence
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn finish(pool: &PgPool, id: i64, state: &str, reason: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE deployments SET state = $2, state_reason = $3, finished_at = now(), lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND state = 'in_progress'",
        id,
        state,
        reason
    )
    .execute(pool)
    .await?;
    tracing::info!(deployment = id, state, reason, "deployment finished");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_pinned_by_digest_when_known() {
        let d = "sha256:abc";
        assert_eq!(
            pinned_image("ghcr.io/org/app:1.2", Some(d)),
            "ghcr.io/org/app@sha256:abc"
        );
        assert_eq!(
            pinned_image("registry:5000/app", Some(d)),
            "registry:5000/app@sha256:abc"
        );
        assert_eq!(
            pinned_image("registry:5000/app:v1", Some(d)),
            "registry:5000/app@sha256:abc"
        );
        assert_eq!(
            pinned_image("ghcr.io/org/app:1.2", None),
            "ghcr.io/org/app:1.2"
        );
        assert_eq!(pinned_image("app@sha256:def", Some(d)), "app@sha256:def");
    }
}
