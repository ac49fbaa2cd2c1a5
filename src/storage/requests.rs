//! The queue: enqueueing, claims and leases, operator commands, and reading requests.

use chrono::{DateTime, Utc};

use super::audit;
use super::rows::{AuditAction, AuditNote, REQUEST_COLUMNS};
use super::{
    ClaimedRequest, Enqueued, Fence, Pool, RequestRow, Result, StateCounts, Store, StoreError, postgres, sqlite,
};
use crate::outcome::RequestState;

/// Largest number of requests in one renewal.
const ID_CHUNK: usize = 300;

/// A duration as whole milliseconds for SQL, saturating (config bounds keep it far below).
pub(super) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

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
    /// has come, and running ones whose lease expired (their worker died). Each claim counts
    /// an attempt and takes a fresh fence; times are the database's. Commits at once.
    #[tracing::instrument(skip(self), err)]
    pub async fn claim_due(&self, worker: &str, limit: u32, lease: std::time::Duration) -> Result<Vec<ClaimedRequest>> {
        if let Pool::Postgres(pool) = &self.pool {
            self.tended.tend(pool).await;
        }
        let rows: Vec<(i64, String, i32, i64, Option<String>, bool)> = on_pool!(self, |pool| {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            if let Pool::Sqlite(_) = self.pool {
                sqlx::query(sqlite::NEXT_FENCE).execute(&mut *tx).await?;
            }
            let rows = sqlx::query_as(self.claim_sql())
                .bind(worker.to_owned())
                .bind(millis(lease))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        });
        Ok(rows
            .into_iter()
            .map(|(id, user_id, attempt, fence, last_error, taken_over)| ClaimedRequest {
                id,
                user_id,
                attempt,
                fence: Fence::new(id, worker.to_owned(), fence),
                last_error,
                taken_over,
            })
            .collect())
    }

    /// Extends the leases of the requests this worker is really working on (`fences`), and
    /// returns the ids of those it still holds. A request missing from the answer was taken
    /// over, retried or cancelled: its work must stop.
    pub async fn renew_leases(&self, fences: &[&Fence], lease: std::time::Duration) -> Result<Vec<i64>> {
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let mut held = Vec::new();
        on_pool!(self, |pool| {
            // The new end of the leases, by the database's clock.
            let until: DateTime<Utc> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {}", self.later_sql("$1"))))
                    .bind(millis(lease))
                    .fetch_one(pool)
                    .await?;
            for chunk in fences.chunks(ID_CHUNK) {
                let mut update = sqlx::QueryBuilder::<Db>::new("UPDATE offboarding_requests SET locked_until = ");
                update.push_bind(until);
                still_held::<Db>(&mut update, chunk);
                let ids: Vec<i64> = update
                    .build_query_scalar()
                    .persistent(super::keep_prepared(chunk.len()))
                    .fetch_all(pool)
                    .await?;
                held.extend(ids);
            }
        });
        Ok(held)
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

    /// As [`Store::state_counts`], with how long the request due the longest has waited to
    /// be claimed (zero when none is due), in the same read. Due as a claim has it: pending
    /// with `next_attempt_at` come (due since then, or since it was requested), or running
    /// with its lease expired (due since the lease ended); timed by the database's clock.
    pub(crate) async fn queue_depth(&self) -> Result<(StateCounts, std::time::Duration)> {
        type Row = (String, i64, Option<DateTime<Utc>>, DateTime<Utc>);
        let now = self.now_sql();
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT state, count(*) AS n,
                        MIN(CASE WHEN state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= {now})
                                 THEN COALESCE(next_attempt_at, requested_at)
                                 WHEN state = 'running' AND locked_until < {now} THEN locked_until END),
                        {now}
                   FROM offboarding_requests GROUP BY state ORDER BY state"
            )))
            .fetch_all(pool)
            .await?
        });
        let oldest = rows
            .iter()
            .filter_map(|(_, _, due_since, now)| (*now - (*due_since)?).to_std().ok())
            .max()
            .unwrap_or_default();
        let counts = rows
            .into_iter()
            .map(|(state, n, _, _)| Ok((RequestState::try_from(state).map_err(sqlx::Error::decode)?, n)))
            .collect::<Result<_>>()?;
        Ok((StateCounts::new(counts), oldest))
    }

    /// Operator: puts a `failed` request back to `pending` with a fresh attempt budget, and
    /// audits who did it and why.
    pub async fn retry(&self, id: i64, by: &str, reason: Option<&str>) -> Result<RequestRow> {
        let action = OperatorAction {
            action: AuditAction::Retry,
            from: &[RequestState::Failed],
            to: RequestState::Pending,
        };
        self.operator_transition(id, action, by, reason).await
    }

    /// Operator: cancels a request that is not finished, and audits who did it and why. A
    /// worker still running it loses its fence: it writes no state and stops sending.
    pub async fn cancel(&self, id: i64, by: &str, reason: Option<&str>) -> Result<RequestRow> {
        let action = OperatorAction {
            action: AuditAction::Cancel,
            from: &[RequestState::Pending, RequestState::Running, RequestState::Failed],
            to: RequestState::Cancelled,
        };
        self.operator_transition(id, action, by, reason).await
    }

    async fn operator_transition(
        &self,
        id: i64,
        op: OperatorAction,
        by: &str,
        reason: Option<&str>,
    ) -> Result<RequestRow> {
        let from_list = op
            .from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let now = self.now_sql();
        let updated = on_pool!(self, |pool| {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            // The audit chain's head before the request row, as every appender takes them.
            audit::lock_chain(&mut tx).await?;
            let row = sqlx::query_as::<Db, RequestRow>(sqlx::AssertSqlSafe(format!(
                "UPDATE offboarding_requests
                    SET state = $1, attempts = 0, next_attempt_at = NULL, locked_by = NULL,
                        locked_until = NULL, updated_at = {now}
                  WHERE id = $2 AND state IN ({from_list})
                  RETURNING {REQUEST_COLUMNS}"
            )))
            .bind(op.to.as_str())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = &row {
                let note = AuditNote {
                    request_id: row.id,
                    user_id: row.user_id.clone(),
                    action: op.action,
                    error: reason.map(str::to_owned),
                    worker: by.to_owned(),
                    attempted_at: Utc::now(),
                };
                audit::append_entries(&mut tx, &[audit::Entry::Note(&note)]).await?;
            }
            tx.commit().await?;
            row
        });
        match updated {
            Some(row) => Ok(row),
            None => match self.request(id).await? {
                None => Err(StoreError::NoSuchRequest(id)),
                Some(row) => Err(StoreError::WrongState {
                    id,
                    state: row.state,
                    action: op.action.as_str(),
                    needs: RequestState::list(op.from),
                }),
            },
        }
    }
}

/// An operator's state change: which states it applies to and where it goes.
struct OperatorAction {
    action: AuditAction,
    from: &'static [RequestState],
    to: RequestState,
}

/// Ends an `UPDATE offboarding_requests SET …` so that it touches only the requests whose
/// claims `fences` still hold (running, same worker, same fence) and returns their ids:
/// the one test of a held claim, for lease renewals and group-committed progress alike.
pub(super) fn still_held<Db>(update: &mut sqlx::QueryBuilder<Db>, fences: &[&Fence])
where
    Db: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> String: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
{
    update.push(" WHERE state = 'running' AND (id, locked_by, fence) IN (VALUES ");
    let mut rows = update.separated(", ");
    for fence in fences {
        rows.push("(");
        rows.push_bind_unseparated(fence.request_id());
        rows.push_unseparated(", ");
        rows.push_bind_unseparated(fence.worker().to_owned());
        rows.push_unseparated(", ");
        rows.push_bind_unseparated(fence.value());
        rows.push_unseparated(")");
    }
    update.push(") RETURNING id");
}
