//! What the operator's dashboard (`src/web`) reads: the queue at a glance, the requests an
//! operator may act on, the last hour of calls per provider in time buckets, the shared
//! adaptive rates, and one user's audit rows. Read-only; every write the dashboard makes
//! goes through the operator commands of `requests.rs` (`retry`, `cancel`), which audit it.
//!
//! The hour's numbers are aggregated in SQL (a count, sums and a maximum per provider,
//! bucket and outcome), so a busy hour of millions of attempts costs one scan, never a
//! transfer of its rows. `revocation_audit` has no index on `attempted_at`: the scan reads
//! the whole table, which is acceptable for a page an operator opens, not for a scrape.

use chrono::{DateTime, Utc};

use super::rows::REQUEST_COLUMNS;
use super::{Pool, RequestRow, Result, StateCounts, Store};

/// The queue as the dashboard shows it, timed by the database's clock.
#[derive(Debug, Clone)]
pub(crate) struct QueueSnapshot {
    pub(crate) now: DateTime<Utc>,
    pub(crate) counts: StateCounts,
    /// Requests a worker may claim now: pending and due, or running with an expired lease.
    pub(crate) due: i64,
    /// Since when the longest-waiting due request has been due.
    pub(crate) oldest_due_since: Option<DateTime<Utc>>,
}

/// One provider's calls in one time bucket with one outcome.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(crate) struct HourCell {
    pub(crate) provider: String,
    /// From 0 (the oldest) on; the caller clamps late rows into its last bucket.
    pub(crate) bucket: i64,
    pub(crate) outcome: String,
    pub(crate) calls: i64,
    /// Answers with HTTP status 429.
    pub(crate) throttled: i64,
    pub(crate) total_ms: i64,
    pub(crate) max_ms: i64,
}

/// One row of a user's audit trail: an attempt at a token, or a note about a request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct TimelineRow {
    pub(crate) id: i64,
    pub(crate) request_id: i64,
    pub(crate) action: String,
    pub(crate) provider: Option<String>,
    pub(crate) token_id: Option<i64>,
    pub(crate) token_type: Option<String>,
    pub(crate) token_fingerprint: Option<String>,
    pub(crate) attempt: Option<i32>,
    pub(crate) outcome: Option<String>,
    pub(crate) http_status: Option<i32>,
    pub(crate) provider_request_id: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) duration_ms: i64,
    pub(crate) worker: String,
    pub(crate) attempted_at: DateTime<Utc>,
    pub(crate) verified: Option<bool>,
    pub(crate) verified_by: Option<String>,
}

/// Due: the claim's own condition (`claim_sql!`), with the time each became due.
const DUE_SQL: &str = "(state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= {now}))
                    OR (state = 'running' AND locked_until < {now})";

impl Store {
    /// The database's clock.
    pub(crate) async fn clock(&self) -> Result<DateTime<Utc>> {
        on_pool!(self, |pool| {
            Ok(
                sqlx::query_scalar::<Db, DateTime<Utc>>(sqlx::AssertSqlSafe(format!("SELECT {}", self.now_sql())))
                    .fetch_one(pool)
                    .await?,
            )
        })
    }

    /// Counts by state, and how many requests are due and since when the oldest has been.
    pub(crate) async fn queue_snapshot(&self) -> Result<QueueSnapshot> {
        let now = self.clock().await?;
        let counts = self.state_counts().await?;
        let due = DUE_SQL.replace("{now}", "$1");
        let (due, oldest): (i64, Option<DateTime<Utc>>) = on_pool!(self, |pool| {
            sqlx::query_as::<Db, (i64, Option<DateTime<Utc>>)>(sqlx::AssertSqlSafe(format!(
                "SELECT count(*),
                        min(CASE WHEN state = 'pending' THEN coalesce(next_attempt_at, requested_at)
                                 ELSE locked_until END)
                   FROM offboarding_requests WHERE {due}"
            )))
            .bind(now)
            .fetch_one(pool)
            .await?
        });
        Ok(QueueSnapshot {
            now,
            counts,
            due,
            oldest_due_since: oldest,
        })
    }

    /// Failed requests, most recently failed first (by id: a failed request keeps its id),
    /// at most `limit`, and how many there are.
    pub(crate) async fn failed_requests(&self, limit: i64) -> Result<Vec<RequestRow>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_as::<Db, RequestRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {REQUEST_COLUMNS} FROM offboarding_requests
                  WHERE state = 'failed' ORDER BY id DESC LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Open requests (pending or running), the one due longest first, at most `limit`.
    pub(crate) async fn open_requests(&self, limit: i64) -> Result<Vec<RequestRow>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_as::<Db, RequestRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {REQUEST_COLUMNS} FROM offboarding_requests
                  WHERE state IN ('pending', 'running')
                  ORDER BY CASE WHEN state = 'pending' THEN coalesce(next_attempt_at, requested_at)
                                ELSE locked_until END, id
                  LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Attempts since `since`, per provider, bucket of `bucket_secs` seconds (bucket 0
    /// starts at `since`) and outcome.
    pub(crate) async fn provider_hour(&self, since: DateTime<Utc>, bucket_secs: i64) -> Result<Vec<HourCell>> {
        // Attempts are never before `since` here, so truncating toward zero is the floor.
        let bucket = match self.pool {
            Pool::Postgres(_) => "CAST(trunc(extract(epoch FROM (attempted_at - $1)) / $2) AS BIGINT)",
            Pool::Sqlite(_) => "CAST((julianday(attempted_at) - julianday($1)) * 86400.0 / $2 AS INTEGER)",
        };
        on_pool!(self, |pool| {
            Ok(sqlx::query_as::<Db, HourCell>(sqlx::AssertSqlSafe(format!(
                "SELECT provider, {bucket} AS bucket, outcome, count(*) AS calls,
                        CAST(sum(CASE WHEN http_status = 429 THEN 1 ELSE 0 END) AS BIGINT) AS throttled,
                        CAST(sum(duration_ms) AS BIGINT) AS total_ms,
                        CAST(max(duration_ms) AS BIGINT) AS max_ms
                   FROM revocation_audit
                  WHERE action = 'revoke' AND attempted_at >= $1
                  GROUP BY provider, bucket, outcome
                  ORDER BY provider, bucket, outcome"
            )))
            .bind(since)
            .bind(bucket_secs)
            .fetch_all(pool)
            .await?)
        })
    }

    /// The adaptive rate each provider is paced at now, in calls a second for all workers
    /// together, where the workers share one (PostgreSQL); none on SQLite.
    pub(crate) async fn shared_rates(&self) -> Result<Vec<(String, f64)>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_as::<Db, (String, f64)>(
                "SELECT provider, rate_per_sec FROM offboard_provider_pacing ORDER BY provider",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// The user's audit rows in time order (ties in the order written), at most `limit`.
    pub(crate) async fn user_timeline(&self, user_id: &str, limit: i64) -> Result<Vec<TimelineRow>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_as::<Db, TimelineRow>(
                "SELECT id, request_id, action, provider, token_id, token_type, token_fingerprint, attempt,
                        outcome, http_status, provider_request_id, error, duration_ms, worker,
                        attempted_at, verified, verified_by
                   FROM revocation_audit
                  WHERE user_id = $1
                  ORDER BY attempted_at, id
                  LIMIT $2",
            )
            .bind(user_id.to_owned())
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// The user's requests, oldest first.
    pub(crate) async fn user_requests(&self, user_id: &str) -> Result<Vec<RequestRow>> {
        let mut rows = self.requests_for_user(user_id).await?;
        rows.reverse();
        Ok(rows)
    }
}
