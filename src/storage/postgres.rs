//! PostgreSQL: the production backend, shared by many workers on many hosts.
//!
//! Claims lock candidate rows with `FOR UPDATE SKIP LOCKED`, so concurrent workers pass over
//! each other's rows instead of waiting, and commit at once. Idle workers LISTEN on the
//! channel the migration's trigger notifies when a request becomes pending.

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use super::{Result, StoreError};
use crate::config::DatabaseConfig;

pub(super) const CLAIM_SQL: &str = claim_sql!(
    "now()",
    "(now() + $2::bigint * interval '1 millisecond')",
    "nextval('offboard_fence_seq')",
    "FOR UPDATE SKIP LOCKED"
);

pub(super) const BEGIN_WRITE: &str = "BEGIN";

/// The database's clock: every lease, due time and fence check on PostgreSQL is timed by the
/// one server all workers share, so a worker whose clock runs ahead cannot take over live
/// leases or make work due early.
pub(super) const NOW: &str = "now()";

/// `NOW` plus `$param` milliseconds.
pub(super) fn later(param: &str) -> String {
    format!("(now() + {param}::bigint * interval '1 millisecond')")
}

/// Locks the user's token rows while the clearance re-check reads them, so an application
/// rotating a token in place either finishes first (and is seen) or waits for the decision.
pub(super) const LOCK_TOKENS: &str = "FOR SHARE";

/// Tables whose statistics the claim's and the audit lookups' plans rest on, stale when
/// never analyzed or grown to over twice the pages they had when last analyzed. Without
/// statistics, the claim on a new database with a backlog of 5,000 requests estimated one
/// due row, and fetched and sorted all 5,000 on every claim (7 to 10 ms each) instead of
/// walking the open requests' index in order; autovacuum analyzes a minute late at best.
const STALE_SQL: &str = "SELECT c.relname::text FROM pg_class c
                          WHERE c.oid IN ('offboarding_requests'::regclass, 'revocation_audit'::regclass)
                            AND (c.reltuples < 0
                                 OR pg_relation_size(c.oid) / current_setting('block_size')::bigint > 2 * c.relpages + 8)";

/// How often claims look at the statistics.
const TEND_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// When the statistics were last looked at, shared by a store's clones.
#[derive(Clone, Debug, Default)]
pub(super) struct Tended(std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl Tended {
    /// Analyzes the tables of [`STALE_SQL`] that are stale, at most every [`TEND_EVERY`].
    /// Best effort: a failure (say, a database user that may not analyze) is logged and
    /// the claim goes on with the plans it gets.
    pub(super) async fn tend(&self, pool: &sqlx::PgPool) {
        {
            let mut last = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < TEND_EVERY) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let analyze = async {
            let stale: Vec<String> = sqlx::query_scalar(STALE_SQL).fetch_all(pool).await?;
            for table in stale {
                // One of the two names above, from the catalogue.
                let statement = match table.as_str() {
                    "offboarding_requests" => "ANALYZE offboarding_requests",
                    _ => "ANALYZE revocation_audit",
                };
                sqlx::raw_sql(statement).execute(pool).await?;
            }
            Ok::<(), sqlx::Error>(())
        };
        if let Err(e) = analyze.await {
            tracing::warn!(error = %e, "could not refresh the planner's statistics");
        }
    }
}

/// The channel `offboard_notify()` in `migrations/postgres/0001_init.sql` sends a request's
/// id on when it is inserted or put back to pending. The two must agree.
const REQUESTS_CHANNEL: &str = "offboard_requests";

/// Plans every statement for the values it runs with. PostgreSQL otherwise switches a
/// prepared statement to a generic plan after five runs and keeps it: chosen while a new
/// database's audit table was empty, that plan scanned the whole table on every lookup as
/// it filled (tests/it/young_tables.rs). A session setting, so it also passes through
/// connection poolers that refuse unknown start-up parameters.
const PLAN_FOR_VALUES: &str = "SET plan_cache_mode = force_custom_plan";

pub(super) async fn connect(config: &DatabaseConfig) -> Result<sqlx::PgPool> {
    let fail = |source| StoreError::Connect {
        url: config.url.redacted(),
        source,
    };
    let options: PgConnectOptions = config.url.as_str().parse().map_err(fail)?;
    let options = options
        .application_name("offboard")
        .statement_cache_capacity(super::STATEMENT_CACHE);
    PgPoolOptions::new()
        .max_connections(config.max_connections.get())
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::raw_sql(PLAN_FOR_VALUES).execute(conn).await?;
                Ok(())
            })
        })
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(fail)
}

/// Wakes an idle worker when a request becomes due. Notifications sent while its connection
/// is down are lost, so it only wakes the worker early; the schedule stays the fallback.
pub(crate) struct RequestListener(PgListener);

impl RequestListener {
    pub(super) async fn connect(pool: &sqlx::PgPool) -> Result<RequestListener> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(REQUESTS_CHANNEL).await?;
        Ok(RequestListener(listener))
    }

    /// Waits for the next notification: `Ok(true)`. `Ok(false)` means the connection
    /// dropped (notifications sent meanwhile are lost) and the next call reconnects; an
    /// error means reconnecting failed.
    pub(crate) async fn next(&mut self) -> Result<bool> {
        Ok(self.0.try_recv().await?.is_some())
    }
}
