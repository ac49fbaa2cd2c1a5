//! Reading for `offboard report` and `offboard status`: the audit trail a row at a time, and
//! the queue's oldest pending request and latest failures.
//!
//! The audit trail can hold millions of rows, so it is never read into memory: rows are
//! fetched as a stream (PostgreSQL sends them as the query runs; SQLite steps its statement
//! as rows are taken) and handed to the caller one by one, which writes each out before the
//! next is read. Filters are bound parameters, added to the `WHERE` clause only when set, so
//! each one can use an index where there is one (`user_id`, `request_id`) and nothing a user
//! typed is ever spliced into the SQL.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;

use super::rows::{AuditAction, REQUEST_COLUMNS};
use super::{RequestRow, Result, Store, StoreError};
use crate::outcome::Outcome;

/// Which audit rows to read. Every filter that is set must match; none set reads them all.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub request_id: Option<i64>,
    pub user_id: Option<String>,
    pub provider: Option<String>,
    pub outcome: Option<Outcome>,
    /// Rows written at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Rows written before this time.
    pub until: Option<DateTime<Utc>>,
}

/// One row of `revocation_audit`, as reports show it: an attempt at a token (`action`
/// `revoke`, every token column set) or a note about the request (no tokens, an operator's
/// retry or cancel: the token columns empty, `worker` naming who, `error` why).
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// The row's id: its place in the trail, and how an auditor cites it.
    pub id: i64,
    pub request_id: i64,
    pub user_id: String,
    pub action: AuditAction,
    pub token_id: Option<i64>,
    pub provider: Option<String>,
    pub token_type: Option<String>,
    pub token_fingerprint: Option<String>,
    pub attempt: Option<i32>,
    pub outcome: Option<Outcome>,
    pub settled: bool,
    pub http_status: Option<i32>,
    pub provider_request_id: Option<String>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub worker: String,
    pub attempted_at: DateTime<Utc>,
    pub verified: Option<bool>,
    pub verified_by: Option<String>,
}

/// The row as the database holds it, before its outcome is parsed.
#[derive(sqlx::FromRow)]
struct RawRecord {
    id: i64,
    request_id: i64,
    user_id: String,
    #[sqlx(try_from = "String")]
    action: AuditAction,
    token_id: Option<i64>,
    provider: Option<String>,
    token_type: Option<String>,
    token_fingerprint: Option<String>,
    attempt: Option<i32>,
    outcome: Option<String>,
    settled: bool,
    http_status: Option<i32>,
    provider_request_id: Option<String>,
    error: Option<String>,
    duration_ms: i64,
    worker: String,
    attempted_at: DateTime<Utc>,
    verified: Option<bool>,
    verified_by: Option<String>,
}

impl TryFrom<RawRecord> for AuditRecord {
    type Error = sqlx::Error;
    fn try_from(r: RawRecord) -> std::result::Result<Self, sqlx::Error> {
        let outcome = match r.outcome {
            Some(raw) => Some(Outcome::try_from(raw).map_err(sqlx::Error::decode)?),
            None => None,
        };
        Ok(AuditRecord {
            id: r.id,
            request_id: r.request_id,
            user_id: r.user_id,
            action: r.action,
            token_id: r.token_id,
            provider: r.provider,
            token_type: r.token_type,
            token_fingerprint: r.token_fingerprint,
            attempt: r.attempt,
            outcome,
            settled: r.settled,
            http_status: r.http_status,
            provider_request_id: r.provider_request_id,
            error: r.error,
            duration_ms: r.duration_ms,
            worker: r.worker,
            attempted_at: r.attempted_at,
            verified: r.verified,
            verified_by: r.verified_by,
        })
    }
}

const RECORD_COLUMNS: &str = "SELECT id, request_id, user_id, action, token_id, provider, token_type, \
     token_fingerprint, attempt, outcome, settled, http_status, provider_request_id, error, duration_ms, \
     worker, attempted_at, verified, verified_by FROM revocation_audit WHERE 1 = 1";

/// A failed request and when it failed (its last state change).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FailedRequest {
    #[sqlx(flatten)]
    pub request: RequestRow,
    pub failed_at: DateTime<Utc>,
}

impl Store {
    /// Hands every audit row that `filter` selects to `each`, in the order written (by id),
    /// one at a time: memory stays the same for ten rows or ten million. Stops at the first
    /// error `each` returns (a closed pipe, a full disk), which is returned as is. Returns
    /// the number of rows handed over.
    pub async fn each_audit_record<E>(
        &self,
        filter: &AuditFilter,
        mut each: impl FnMut(AuditRecord) -> std::result::Result<(), E>,
    ) -> std::result::Result<u64, E>
    where
        E: From<StoreError>,
    {
        let mut count = 0_u64;
        on_pool!(self, |pool| {
            let mut query = sqlx::QueryBuilder::<Db>::new(RECORD_COLUMNS);
            if let Some(id) = filter.request_id {
                query.push(" AND request_id = ").push_bind(id);
            }
            if let Some(user) = &filter.user_id {
                query.push(" AND user_id = ").push_bind(user.clone());
            }
            if let Some(provider) = &filter.provider {
                query.push(" AND provider = ").push_bind(provider.clone());
            }
            if let Some(outcome) = filter.outcome {
                query.push(" AND outcome = ").push_bind(outcome.as_str());
            }
            // SQLite keeps times as RFC 3339 text in UTC (`+00:00`), as sqlx binds them, so
            // text order is time order.
            if let Some(since) = filter.since {
                query.push(" AND attempted_at >= ").push_bind(since);
            }
            if let Some(until) = filter.until {
                query.push(" AND attempted_at < ").push_bind(until);
            }
            query.push(" ORDER BY id");
            let mut rows = query.build_query_as::<RawRecord>().fetch(pool);
            while let Some(raw) = rows.try_next().await.map_err(StoreError::from)? {
                each(AuditRecord::try_from(raw).map_err(StoreError::from)?)?;
                count += 1;
            }
        });
        Ok(count)
    }

    /// The pending request that was asked for longest ago, if any.
    pub(crate) async fn oldest_pending(&self) -> Result<Option<RequestRow>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_as::<Db, RequestRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {REQUEST_COLUMNS} FROM offboarding_requests WHERE state = 'pending'
                  ORDER BY requested_at, id LIMIT 1"
            )))
            .fetch_optional(pool)
            .await?)
        })
    }

    /// The `limit` failed requests that failed last, latest first.
    pub(crate) async fn recent_failures(&self, limit: u32) -> Result<Vec<FailedRequest>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_as::<Db, FailedRequest>(sqlx::AssertSqlSafe(format!(
                "SELECT {REQUEST_COLUMNS}, updated_at AS failed_at FROM offboarding_requests
                  WHERE state = 'failed' ORDER BY updated_at DESC, id DESC LIMIT $1"
            )))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?)
        })
    }
}

/// `offboard bench report`'s requests: one per user, all cleared.
const FILL_REQUESTS_PG: &str = "INSERT INTO offboarding_requests
        (user_id, requested_by, state, attempts, requested_at, updated_at, cleared_at)
    SELECT 'bench-user-' || g, 'offboard bench', 'cleared', 1, now(), now(), now()
      FROM generate_series(0, $1 - 1) AS g";

const FILL_REQUESTS_SQLITE: &str = "WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < $1)
    INSERT INTO offboarding_requests
        (user_id, requested_by, state, attempts, requested_at, updated_at, cleared_at)
    SELECT 'bench-user-' || n, 'offboard bench', 'cleared', 1, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'),
           strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
      FROM g";

/// Audit rows spread over the requests from `$2` (`$3` of them), one a millisecond up to
/// now; every tenth a failure whose error text holds a comma and quotes, as real ones do.
const FILL_AUDIT_PG: &str = "INSERT INTO revocation_audit
        (request_id, user_id, action, token_id, provider, token_type, token_fingerprint, attempt, outcome,
         settled, http_status, provider_request_id, error, duration_ms, worker, attempted_at)
    SELECT $2 + g % $3, 'bench-user-' || (g % $3), 'revoke', g, 'm' || (1 + g % 4),
           CASE WHEN g % 2 = 0 THEN 'access_token' ELSE 'refresh_token' END,
           'sha256:' || md5(g::text), 1 + g % 3,
           CASE WHEN g % 10 = 9 THEN 'failed' ELSE 'revoked' END, g % 10 <> 9,
           CASE WHEN g % 10 = 9 THEN 400 ELSE 200 END, 'req-' || g,
           CASE WHEN g % 10 = 9 THEN 'HTTP 400: invalid_client, \"client authentication failed\"' END,
           g % 250, 'bench-worker', now() - ($1 - g) * interval '1 millisecond'
      FROM generate_series(0, $1 - 1) AS g";

const FILL_AUDIT_SQLITE: &str = "WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < $1)
    INSERT INTO revocation_audit
        (request_id, user_id, action, token_id, provider, token_type, token_fingerprint, attempt, outcome,
         settled, http_status, provider_request_id, error, duration_ms, worker, attempted_at)
    SELECT $2 + n % $3, 'bench-user-' || (n % $3), 'revoke', n, 'm' || (1 + n % 4),
           CASE WHEN n % 2 = 0 THEN 'access_token' ELSE 'refresh_token' END,
           printf('sha256:%016x%016x', n * 2654435761, n), 1 + n % 3,
           CASE WHEN n % 10 = 9 THEN 'failed' ELSE 'revoked' END, n % 10 <> 9,
           CASE WHEN n % 10 = 9 THEN 400 ELSE 200 END, 'req-' || n,
           CASE WHEN n % 10 = 9 THEN 'HTTP 400: invalid_client, \"client authentication failed\"' END,
           n % 250, 'bench-worker',
           strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', printf('-%.3f seconds', ($1 - n) / 1000.0))
      FROM g";

impl Store {
    /// Fills an empty database with `rows` audit rows over `users` cleared requests, in two
    /// statements (`generate_series` on PostgreSQL, a recursive CTE on SQLite): for
    /// `offboard bench report` and the tests of reports, never for the daemon.
    pub async fn fill_audit_rows(&self, rows: u32, users: u32) -> Result<()> {
        let (rows, users) = (i64::from(rows), i64::from(users.max(1)));
        let (requests, audit) = match self.pool {
            super::Pool::Postgres(_) => (FILL_REQUESTS_PG, FILL_AUDIT_PG),
            super::Pool::Sqlite(_) => (FILL_REQUESTS_SQLITE, FILL_AUDIT_SQLITE),
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            if matches!(self.pool, super::Pool::Sqlite(_)) {
                // SQLite's default page cache (2 MB) spills the transaction's index pages to
                // the WAL again and again: 1,000,000 rows took minutes instead of seconds.
                sqlx::query("PRAGMA cache_size = -262144").execute(&mut *tx).await?;
            }
            sqlx::query(requests).bind(users).execute(&mut *tx).await?;
            let first: i64 =
                sqlx::query_scalar("SELECT min(id) FROM offboarding_requests WHERE requested_by = 'offboard bench'")
                    .fetch_one(&mut *tx)
                    .await?;
            if rows > 0 {
                sqlx::query(audit)
                    .bind(rows)
                    .bind(first)
                    .bind(users)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
