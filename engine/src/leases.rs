//! The row leases of the deployment and build drivers: their tokens, and [`hold`], the one loop
//! that keeps a lease while its work runs, rides out a database that goes away for a moment, and
//! hands the work over when this replica is told to stop.
//!
//! Every write a driver makes is fenced by `lease_owner = its token`. The token was the replica's
//! name (host and pid), which is the same for every claim a replica makes: a driver that stalled
//! past its lease, whose work the same replica then claimed again, still passed the fence and could
//! write beside its successor. A token per claim fences it out.
//!
//! A failed renewal is not a lost lease. The lease runs on the database's clock from the last
//! renewal that succeeded; while that time has not run out nobody else can claim the row, so when
//! PostgreSQL restarts the driver keeps its lease and resumes its own work (every step is a row it
//! finds again) as soon as the database answers, instead of dropping it and leaving it to whoever
//! claims it after the lease expires. It gives up only once it can no longer be sure the lease is
//! still its own.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// A new token for one claim: the replica's name (for people reading `lease_owner`) and a random
/// part that no other claim shares.
pub fn claim_token(replica: &str) -> String {
    format!("{replica}/{}", uuid::Uuid::new_v4().simple())
}

/// Which table's row the lease is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Deployment,
    Build,
}

impl std::fmt::Display for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Work::Deployment => "deployment",
            Work::Build => "build",
        })
    }
}

/// One claimed row: what it is, its id, the claim's token, and how long a lease lasts.
#[derive(Debug, Clone)]
pub struct Lease {
    pub work: Work,
    pub id: i64,
    pub token: String,
    pub duration: Duration,
}

/// How holding a lease ended.
#[derive(Debug)]
pub enum Held {
    /// The work ran to its end (or found it was no longer its own).
    Finished,
    /// Another claim holds the row now, or the row left its running state.
    Lost,
    /// The database did not answer long enough that the lease may have expired: stopped, so as
    /// never to write beside a successor. Whoever claims the row next resumes it.
    Expired,
    /// This replica is stopping: the lease was released so that another replica resumes at once.
    HandedOver,
    /// The database refused the work itself (not an outage): left to the lease's expiry, as
    /// before, so a build's attempts still count and give up.
    Failed(sqlx::Error),
}

/// Errors of a database that is away or restarting, which the same work survives when retried:
/// the connection failed or was closed, the pool found none in time, or the server is shutting
/// down or starting (SQLSTATE classes 08 and 57P).
pub fn is_outage(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// Runs `work` under `lease` until it finishes. `work` returns `Err` when the database failed it;
/// it is then run again (it resumes from its rows) while the lease is still this claim's. Ends at
/// once, releasing the lease, when `stopping` turns true.
pub async fn hold<F, Fut>(
    pool: &PgPool,
    lease: &Lease,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    mut work: F,
) -> Held
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), sqlx::Error>>,
{
    let every = lease.duration / 3;
    let renew = async {
        // The claim set `lease_until` just now; measured from before each renewal is sent, the
        // local estimate never runs later than the database's.
        let mut renewed_at = Instant::now();
        loop {
            tokio::time::sleep(every).await;
            let sent = Instant::now();
            match renew(pool, lease).await {
                Ok(true) => renewed_at = sent,
                Ok(false) => return Held::Lost,
                Err(error) => {
                    // The next renewal would come with less than a third of the lease left: too
                    // late to be sure of it.
                    if renewed_at.elapsed() + every >= lease.duration {
                        tracing::warn!(work = %lease.work, id = lease.id, %error, "could not renew the lease in time; stopping");
                        return Held::Expired;
                    }
                    tracing::warn!(work = %lease.work, id = lease.id, %error, "renewing the lease failed; keeping it while it lasts");
                }
            }
        }
    };
    let run = async {
        let mut backoff = Duration::from_millis(200);
        loop {
            match work().await {
                Ok(()) => return Held::Finished,
                Err(error) if !is_outage(&error) => return Held::Failed(error),
                Err(error) => {
                    tracing::warn!(work = %lease.work, id = lease.id, %error, "the database failed this work; resuming it while the lease is ours");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(every.max(Duration::from_millis(200)));
                }
            }
        }
    };
    let stop = async {
        if stopping.wait_for(|s| *s).await.is_err() {
            // Nobody can tell this replica to stop any more: run until the work ends.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        held = run => held,
        held = renew => held,
        () = stop => {
            // The work was dropped at an await, as a killed process' would be; it resumes from
            // its rows wherever it is claimed next.
            match release(pool, lease).await {
                Ok(()) => Held::HandedOver,
                Err(error) => {
                    tracing::warn!(work = %lease.work, id = lease.id, %error, "could not release the lease; it expires instead");
                    Held::Expired
                }
            }
        }
    }
}

async fn renew(pool: &PgPool, lease: &Lease) -> sqlx::Result<bool> {
    let secs = lease.duration.as_secs_f64();
    let kept = match lease.work {
        Work::Deployment => sqlx::query!(
            "UPDATE deployments SET lease_until = now() + make_interval(secs => $3) WHERE id = $1 AND lease_owner = $2 AND state = 'in_progress'",
            lease.id,
            lease.token,
            secs
        )
        .execute(pool)
        .await?,
        Work::Build => sqlx::query!(
            "UPDATE builds SET lease_until = now() + make_interval(secs => $3) WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
            lease.id,
            lease.token,
            secs
        )
        .execute(pool)
        .await?,
    };
    Ok(kept.rows_affected() == 1)
}

/// Makes the row claimable now (an expired lease is what every claim looks for) and wakes the
/// other replicas' workers, so one of them takes it over without waiting out the lease.
async fn release(pool: &PgPool, lease: &Lease) -> sqlx::Result<()> {
    match lease.work {
        Work::Deployment => {
            sqlx::query!(
                "WITH released AS (
                     UPDATE deployments SET lease_until = now() - interval '1 second'
                     WHERE id = $1 AND lease_owner = $2 AND state = 'in_progress' RETURNING id)
                 SELECT pg_notify($3, id::text) FROM released",
                lease.id,
                lease.token,
                crate::deploy::worker::CHANNEL
            )
            .fetch_all(pool)
            .await?;
        }
        Work::Build => {
            // A handover is not an attempt: the claim that takes it over counts one again.
            sqlx::query!(
                "WITH released AS (
                     UPDATE builds SET lease_until = now() - interval '1 second', attempts = greatest(attempts - 1, 0)
                     WHERE id = $1 AND lease_owner = $2 AND state = 'running' RETURNING id)
                 SELECT pg_notify($3, id::text) FROM released",
                lease.id,
                lease.token,
                crate::pipeline::CHANNEL
            )
            .fetch_all(pool)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_an_outage_a_refused_query_is_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_outage(&io));
        assert!(is_outage(&sqlx::Error::PoolTimedOut));
        assert!(!is_outage(&sqlx::Error::RowNotFound));
        assert!(
            !is_outage(&sqlx::Error::PoolClosed),
            "closed by this process: it is stopping"
        );
        assert!(!is_outage(&sqlx::Error::ColumnNotFound("x".into())));
    }

    #[test]
    fn every_claim_of_a_replica_gets_its_own_token() {
        let (a, b) = (claim_token("host-1"), claim_token("host-1"));
        assert_ne!(a, b);
        assert!(
            a.starts_with("host-1/") && b.starts_with("host-1/"),
            "{a} {b}"
        );
    }
}
