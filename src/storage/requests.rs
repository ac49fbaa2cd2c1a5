//! The queue: enqueueing, claims and leases, operator commands, and reading requests.

use chrono::{DateTime, Utc};

use super::rows::REQUEST_COLUMNS;
use super::{
    ClaimedRequest, Enqueued, Fence, Pool, RequestRow, Result, StateCounts, Store, StoreError, postgres, sqlite,
};
use crate::outcome::RequestState;

/// States in which a request is open: a new enqueue for the user returns it.
const OPEN_STATES: &str = "('pending', 'running', 'failed')";

impl Store {
    fn claim_sql(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => postgres::CLAIM_SQL,
            Pool::Sqlite(_) => sqlite::CLAIM_SQL,
        }
    }

    /// Inserts a request for the user, or returns the open one. Safe against concurrent
    /// callers: the partial unique index decides, and the loser reads the winner's row.
    #[tracing::instrument(skip(self), err)]
    pub async fn enqueue(
        &self,
        user_id: &str,
        requested_by: Option<&str>,
        external_ref: Option<&str>,
    ) -> Result<Enqueued> {
        let now = Utc::now();
        on_pool!(self, |pool| {
            let inserted = sqlx::query_as::<Db, RequestRow>(sqlx::AssertSqlSafe(format!(
                "INSERT INTO offboarding_requests (user_id, requested_by, external_ref, requested_at, updated_at)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (user_id) WHERE state IN {OPEN_STATES} DO NOTHING
                 RETURNING {REQUEST_COLUMNS}"
            )))
            .bind(user_id.to_owned())
            .bind(requested_by.map(str::to_owned))
            .bind(external_ref.map(str::to_owned))
            .bind(now)
            .fetch_optional(pool)
            .await?;
            if let Some(request) = inserted {
                return Ok(Enqueued { request, created: true });
            }
            let request = sqlx::query_as::<Db, RequestRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {REQUEST_COLUMNS} FROM offboarding_requests
                  WHERE user_id = $1 AND state IN {OPEN_STATES}"
            )))
            .bind(user_id.to_owned())
            .fetch_one(pool)
            .await?;
            Ok(Enqueued {
                request,
                created: false,
            })
        })
    }

    /// Claims up to `limit` due requests for `worker`: pending ones whose `next_attempt_at`
    /// has come, and running ones whose lease expired (their worker died). Commits at once.
    #[tracing::instrument(skip(self), err)]
    pub async fn claim_due(
        &self,
        worker: &str,
        limit: u32,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedRequest>> {
        let until = now + lease;
        let rows: Vec<(i64, String, i32)> = on_pool!(self, |pool| {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let rows = sqlx::query_as(self.claim_sql())
                .bind(worker.to_owned())
                .bind(until)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        });
        Ok(rows
            .into_iter()
            .map(|(id, user_id, attempt)| ClaimedRequest {
                id,
                user_id,
                attempt,
                fence: Fence::new(id, worker.to_owned(), attempt),
            })
            .collect())
    }

    /// Extends the lease of every request `worker` still holds. Requests taken over by
    /// another worker are not touched, because their `locked_by` changed.
    pub async fn renew_leases(&self, worker: &str, lease: std::time::Duration, now: DateTime<Utc>) -> Result<u64> {
        let until = now + lease;
        on_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE offboarding_requests SET locked_until = $1
                  WHERE state = 'running' AND locked_by = $2 AND locked_until >= $3",
            )
            .bind(until)
            .bind(worker.to_owned())
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Requests of a user, newest first.
    pub(crate) async fn requests_for_user(&self, user_id: &str) -> Result<Vec<RequestRow>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_as::<Db, RequestRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {REQUEST_COLUMNS} FROM offboarding_requests WHERE user_id = $1 ORDER BY id DESC"
            )))
            .bind(user_id.to_owned())
            .fetch_all(pool)
            .await?)
        })
    }

    pub async fn request(&self, id: i64) -> Result<Option<RequestRow>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_as::<Db, RequestRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {REQUEST_COLUMNS} FROM offboarding_requests WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// The user's latest request, which decides whether their data may be deleted.
    pub async fn clearance(&self, user_id: &str) -> Result<Option<RequestRow>> {
        Ok(self.requests_for_user(user_id).await?.into_iter().next())
    }

    /// Number of requests in each state that has any, by state name.
    pub(crate) async fn state_counts(&self) -> Result<StateCounts> {
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT state, count(*) AS n FROM offboarding_requests GROUP BY state ORDER BY state")
                .fetch_all(pool)
                .await?
        });
        let counts = rows
            .into_iter()
            .map(|(state, n)| Ok((RequestState::try_from(state).map_err(sqlx::Error::decode)?, n)))
            .collect::<Result<_>>()?;
        Ok(StateCounts::new(counts))
    }

    /// Operator: puts a `failed` request back to `pending` with a fresh attempt budget.
    pub async fn retry(&self, id: i64) -> Result<RequestRow> {
        self.operator_transition(id, "retry", &[RequestState::Failed], RequestState::Pending)
            .await
    }

    /// Operator: cancels a request that is not finished. A worker still running it loses
    /// its fence and writes nothing.
    pub async fn cancel(&self, id: i64) -> Result<RequestRow> {
        self.operator_transition(
            id,
            "cancel",
            &[RequestState::Pending, RequestState::Running, RequestState::Failed],
            RequestState::Cancelled,
        )
        .await
    }

    async fn operator_transition(
        &self,
        id: i64,
        action: &'static str,
        from: &'static [RequestState],
        to: RequestState,
    ) -> Result<RequestRow> {
        let now = Utc::now();
        let from_list = from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let updated = on_pool!(self, |pool| {
            sqlx::query_as::<Db, RequestRow>(sqlx::AssertSqlSafe(format!(
                "UPDATE offboarding_requests
                    SET state = $1, attempts = 0, next_attempt_at = NULL, locked_by = NULL,
                        locked_until = NULL, updated_at = $2
                  WHERE id = $3 AND state IN ({from_list})
                  RETURNING {REQUEST_COLUMNS}"
            )))
            .bind(to.as_str())
            .bind(now)
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        match updated {
            Some(row) => Ok(row),
            None => match self.request(id).await? {
                None => Err(StoreError::NoSuchRequest(id)),
                Some(row) => Err(StoreError::WrongState {
                    id,
                    state: row.state,
                    action,
                    needs: RequestState::list(from),
                }),
            },
        }
    }
}
