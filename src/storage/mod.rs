//! The queue, the token store and the audit trail, on PostgreSQL or SQLite.
//!
//! Both backends run the same SQL text (`$N` placeholders work on both) through one
//! implementation: [`on_pool!`] expands a body once per backend, so the compiler checks it
//! against each driver. What really differs lives in `postgres.rs` and `sqlite.rs`:
//! connecting, how a write transaction starts, and the claim's row locking.
//!
//! Rules every write keeps:
//! - Claims commit at once; no transaction is open during an HTTP call.
//! - Every write of a worker's results is fenced: it applies only while the request is
//!   still `running` under the same `locked_by` and `attempts` the worker claimed with.
//! - A request is cleared only in the transaction that writes its last audit rows, and only
//!   if, inside that transaction, every token of the user is settled.

/// The claim, with the backend's row-locking clause spliced in (a `&'static str`, as
/// `sqlx::query` wants). Due: pending with `next_attempt_at` come, or running with an expired
/// lease (its worker died). Claiming counts an attempt and sets the fence.
macro_rules! claim_sql {
    ($locking:literal) => {
        concat!(
            "UPDATE offboarding_requests
                SET state = 'running', locked_by = $1, locked_until = $2, attempts = attempts + 1,
                    updated_at = $3
              WHERE id IN (
                    SELECT id FROM offboarding_requests
                     WHERE (state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= $3))
                        OR (state = 'running' AND locked_until < $3)
                     ORDER BY id
                     LIMIT $4 ",
            $locking,
            ")
             RETURNING id, user_id, attempts"
        )
    };
}

mod postgres;
mod sqlite;

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::config::DatabaseConfig;
use crate::outcome::{Decision, Outcome, RequestState};
use crate::token::{Fingerprint, TokenType, TokenValue};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {url}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error")]
    Sqlx(#[from] sqlx::Error),
    #[error("request {0} is no longer leased by this worker; its results were not written")]
    LeaseLost(i64),
    #[error("request {id} is {state}; {action} needs a request that is {needs}")]
    WrongState {
        id: i64,
        state: RequestState,
        action: &'static str,
        needs: &'static str,
    },
    #[error("no request with id {0}")]
    NoSuchRequest(i64),
    #[error("database holds an unexpected value: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

/// Runs `$body` with `$pool` bound to the backend's pool and `Db` naming its database type.
/// The body is compiled once per backend.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            Pool::Postgres($pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Postgres;
                $body
            }
            Pool::Sqlite($pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Sqlite;
                $body
            }
        }
    };
}

/// What the worker holds while it works on a request. Every write of results checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub request_id: i64,
    pub worker: String,
    /// The request's `attempts` after this claim.
    pub attempt: i32,
}

#[derive(Clone, Debug)]
pub struct ClaimedRequest {
    pub id: i64,
    pub user_id: String,
    pub attempt: i32,
    pub fence: Fence,
}

/// A row of `oauth_tokens` with what this request already knows about it.
#[derive(Clone, Debug)]
pub struct StoredToken {
    pub id: i64,
    pub provider: String,
    /// The raw `token_type`; [`StoredToken::token_type`] parses it.
    pub token_type_raw: String,
    pub value: TokenValue,
    pub grant_ref: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// A settling audit row exists for this token in this request.
    pub settled_in_request: bool,
    /// Audit rows already written for this token in this request.
    pub prior_attempts: i32,
}

impl StoredToken {
    pub fn token_type(&self) -> Option<TokenType> {
        TokenType::parse(&self.token_type_raw)
    }

    /// Settled tokens are never sent to a provider again.
    pub fn is_settled(&self) -> bool {
        self.revoked_at.is_some() || self.settled_in_request
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.value.fingerprint()
    }
}

/// One row of `revocation_audit`.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRow {
    pub request_id: i64,
    pub user_id: String,
    pub token_id: i64,
    pub provider: String,
    pub token_type: String,
    pub token_fingerprint: String,
    pub attempt: i32,
    pub outcome: Outcome,
    pub settled: bool,
    pub http_status: Option<i32>,
    pub provider_request_id: Option<String>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub worker: String,
    pub attempted_at: DateTime<Utc>,
}

/// A row of `offboarding_requests`, for `status` and the gate.
#[derive(Clone, Debug)]
pub struct RequestRow {
    pub id: i64,
    pub user_id: String,
    pub requested_by: Option<String>,
    pub external_ref: Option<String>,
    pub state: RequestState,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub cleared_at: Option<DateTime<Utc>>,
}

/// What `enqueue` did.
#[derive(Clone, Debug)]
pub struct Enqueued {
    pub request: RequestRow,
    /// False when an open request for the user already existed and was returned.
    pub created: bool,
}

/// A token to insert into `oauth_tokens` (demo, simulator seeding, tests).
#[derive(Clone, Debug)]
pub struct NewToken {
    pub user_id: String,
    pub provider: String,
    pub token_type: TokenType,
    pub value: TokenValue,
    pub grant_ref: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

const REQUEST_COLUMNS: &str = "id, user_id, requested_by, external_ref, state, attempts, \
    next_attempt_at, locked_by, locked_until, last_error, requested_at, cleared_at";

/// States in which a request is open: a new enqueue for the user returns it.
const OPEN_STATES: &str = "('pending', 'running', 'failed')";

fn request_from_row<R>(row: &R) -> Result<RequestRow>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    Ok(RequestRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        requested_by: row.try_get("requested_by")?,
        external_ref: row.try_get("external_ref")?,
        state: RequestState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("request state '{state}'")))?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        locked_by: row.try_get("locked_by")?,
        locked_until: row.try_get("locked_until")?,
        last_error: row.try_get("last_error")?,
        requested_at: row.try_get("requested_at")?,
        cleared_at: row.try_get("cleared_at")?,
    })
}

/// Largest number of audit rows in one INSERT (16 binds each; SQLite allows 32766).
const AUDIT_CHUNK: usize = 500;

impl Store {
    /// Opens the database named in the config, creating an SQLite file on first use, and
    /// applies pending migrations.
    pub async fn open(config: &DatabaseConfig) -> Result<Store> {
        let store = Store::connect(config).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database without migrating.
    pub async fn connect(config: &DatabaseConfig) -> Result<Store> {
        let pool = if config.url.is_postgres() {
            Pool::Postgres(postgres::connect(config).await?)
        } else {
            Pool::Sqlite(sqlite::connect(config).await?)
        };
        Ok(Store { pool })
    }

    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => "postgres",
            Pool::Sqlite(_) => "sqlite",
        }
    }

    /// The PostgreSQL pool, for LISTEN; `None` on SQLite.
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    /// The SQLite pool; `None` on PostgreSQL. For tests and tools that need raw SQL.
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            Pool::Postgres(_) => None,
        }
    }

    fn claim_sql(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => postgres::CLAIM_SQL,
            Pool::Sqlite(_) => sqlite::CLAIM_SQL,
        }
    }

    fn begin_write(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => postgres::BEGIN_WRITE,
            Pool::Sqlite(_) => sqlite::BEGIN_WRITE,
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            Pool::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
            Pool::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    /// Whether the database answers, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
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
            let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
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
            if let Some(row) = inserted {
                return Ok(Enqueued {
                    request: request_from_row(&row)?,
                    created: true,
                });
            }
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {REQUEST_COLUMNS} FROM offboarding_requests
                  WHERE user_id = $1 AND state IN {OPEN_STATES}"
            )))
            .bind(user_id.to_owned())
            .fetch_one(pool)
            .await?;
            Ok(Enqueued {
                request: request_from_row(&row)?,
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
        let rows = on_pool!(self, |pool| {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let rows = sqlx::query(self.claim_sql())
                .bind(worker.to_owned())
                .bind(until)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get::<i64, _>("id")?,
                        row.try_get::<String, _>("user_id")?,
                        row.try_get::<i32, _>("attempts")?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?
        });
        Ok(rows
            .into_iter()
            .map(|(id, user_id, attempt)| ClaimedRequest {
                id,
                user_id,
                attempt,
                fence: Fence {
                    request_id: id,
                    worker: worker.to_owned(),
                    attempt,
                },
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

    /// Every token of the user, with whether this request already settled it.
    pub async fn tokens_for(&self, request_id: i64, user_id: &str) -> Result<Vec<StoredToken>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT t.id, t.provider, t.token_type, t.token, t.grant_ref, t.expires_at, t.revoked_at,
                        (SELECT count(*) FROM revocation_audit a
                          WHERE a.request_id = $1 AND a.token_id = t.id AND a.settled) AS settled_rows,
                        (SELECT count(*) FROM revocation_audit a
                          WHERE a.request_id = $1 AND a.token_id = t.id) AS prior_rows
                   FROM oauth_tokens t
                  WHERE t.user_id = $2
                  ORDER BY t.id",
            )
            .bind(request_id)
            .bind(user_id.to_owned())
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(StoredToken {
                        id: row.try_get("id")?,
                        provider: row.try_get("provider")?,
                        token_type_raw: row.try_get("token_type")?,
                        value: TokenValue::new(row.try_get("token")?),
                        grant_ref: row.try_get("grant_ref")?,
                        expires_at: row.try_get("expires_at")?,
                        revoked_at: row.try_get("revoked_at")?,
                        settled_in_request: row.try_get::<i64, _>("settled_rows")? > 0,
                        prior_attempts: i32::try_from(row.try_get::<i64, _>("prior_rows")?).unwrap_or(i32::MAX),
                    })
                })
                .collect()
        })
    }

    /// Writes a run's audit rows, marks dead tokens `revoked_at`, and moves the request to
    /// where `decision` says, all in one transaction and only while `fence` holds. A
    /// `Cleared` decision is re-checked against the database inside the transaction: if any
    /// token of the user is still unsettled (say, one inserted during the run), the request
    /// goes back to `pending` instead. Returns the state written.
    #[tracing::instrument(skip(self, rows), fields(rows = rows.len()), err)]
    pub async fn complete(
        &self,
        fence: &Fence,
        user_id: &str,
        rows: &[AuditRow],
        decision: &Decision,
        now: DateTime<Utc>,
    ) -> Result<RequestState> {
        self.write_results(fence, rows, Some((user_id, decision)), now).await
    }

    /// Writes audit rows (and `revoked_at`) of tokens finished while the run goes on, under
    /// the same fence, leaving the request `running`. A worker that dies later loses only
    /// the calls still in flight, and the worker that takes over does not send these tokens
    /// again.
    #[tracing::instrument(skip(self, rows), fields(rows = rows.len()), err)]
    pub async fn record_progress(&self, fence: &Fence, rows: &[AuditRow], now: DateTime<Utc>) -> Result<()> {
        self.write_results(fence, rows, None, now).await.map(|_| ())
    }

    /// The one fenced write of results: rows, `revoked_at`, and, with a decision (and the
    /// user whose tokens a `Cleared` decision is checked against), the state.
    async fn write_results(
        &self,
        fence: &Fence,
        rows: &[AuditRow],
        decision: Option<(&str, &Decision)>,
        now: DateTime<Utc>,
    ) -> Result<RequestState> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            // Fence first: this also takes the row lock on PostgreSQL.
            let held = sqlx::query(
                "UPDATE offboarding_requests SET updated_at = $1
                  WHERE id = $2 AND state = 'running' AND locked_by = $3 AND attempts = $4",
            )
            .bind(now)
            .bind(fence.request_id)
            .bind(fence.worker.clone())
            .bind(fence.attempt)
            .execute(&mut *tx)
            .await?;
            if held.rows_affected() == 0 {
                tx.rollback().await?;
                return Err(StoreError::LeaseLost(fence.request_id));
            }

            for chunk in rows.chunks(AUDIT_CHUNK) {
                let mut insert = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO revocation_audit (request_id, user_id, token_id, provider, token_type, \
                     token_fingerprint, attempt, outcome, settled, http_status, provider_request_id, \
                     error, duration_ms, worker, attempted_at) ",
                );
                insert.push_values(chunk, |mut b, r| {
                    b.push_bind(r.request_id)
                        .push_bind(r.user_id.clone())
                        .push_bind(r.token_id)
                        .push_bind(r.provider.clone())
                        .push_bind(r.token_type.clone())
                        .push_bind(r.token_fingerprint.clone())
                        .push_bind(r.attempt)
                        .push_bind(r.outcome.as_str())
                        .push_bind(r.settled)
                        .push_bind(r.http_status)
                        .push_bind(r.provider_request_id.clone())
                        .push_bind(r.error.clone())
                        .push_bind(r.duration_ms)
                        .push_bind(r.worker.clone())
                        .push_bind(r.attempted_at);
                });
                insert.build().execute(&mut *tx).await?;
            }

            let dead: Vec<i64> = rows
                .iter()
                .filter(|r| r.outcome.token_is_dead())
                .map(|r| r.token_id)
                .collect();
            for chunk in dead.chunks(AUDIT_CHUNK) {
                let mut update = sqlx::QueryBuilder::<Db>::new("UPDATE oauth_tokens SET revoked_at = ");
                update.push_bind(now).push(" WHERE revoked_at IS NULL AND id IN (");
                let mut ids = update.separated(", ");
                for id in chunk {
                    ids.push_bind(*id);
                }
                update.push(")");
                update.build().execute(&mut *tx).await?;
            }

            let Some((user_id, decision)) = decision else {
                tx.commit().await?;
                return Ok(RequestState::Running);
            };
            let (state, next_attempt_at, error, attempts_delta) = match decision {
                Decision::Cleared => {
                    let unsettled: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM oauth_tokens t
                          WHERE t.user_id = $1 AND t.revoked_at IS NULL
                            AND NOT EXISTS (SELECT 1 FROM revocation_audit a
                                             WHERE a.request_id = $2 AND a.token_id = t.id AND a.settled)",
                    )
                    .bind(user_id.to_owned())
                    .bind(fence.request_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if unsettled == 0 {
                        (RequestState::Cleared, None, None, 0)
                    } else {
                        let why = format!(
                            "{unsettled} token(s) of the user appeared or stayed unsettled during the run; running again"
                        );
                        (RequestState::Pending, Some(now), Some(why), 0)
                    }
                }
                Decision::Retry { at, reason } => (RequestState::Pending, Some(*at), Some(reason.clone()), 0),
                Decision::Failed { reason } => (RequestState::Failed, None, Some(reason.clone()), 0),
                Decision::Release => (RequestState::Pending, None, None, -1),
            };
            let cleared_at = (state == RequestState::Cleared).then_some(now);
            sqlx::query(
                "UPDATE offboarding_requests
                    SET state = $1, next_attempt_at = $2, last_error = COALESCE($3, last_error),
                        cleared_at = $4, locked_by = NULL, locked_until = NULL,
                        attempts = attempts + $5, updated_at = $6
                  WHERE id = $7",
            )
            .bind(state.as_str())
            .bind(next_attempt_at)
            .bind(error)
            .bind(cleared_at)
            .bind(attempts_delta)
            .bind(now)
            .bind(fence.request_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(state)
        })
    }

    /// Requests of a user, newest first.
    pub async fn requests_for_user(&self, user_id: &str) -> Result<Vec<RequestRow>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {REQUEST_COLUMNS} FROM offboarding_requests WHERE user_id = $1 ORDER BY id DESC"
            )))
            .bind(user_id.to_owned())
            .fetch_all(pool)
            .await?;
            rows.iter().map(request_from_row).collect()
        })
    }

    pub async fn request(&self, id: i64) -> Result<Option<RequestRow>> {
        on_pool!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {REQUEST_COLUMNS} FROM offboarding_requests WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(request_from_row).transpose()
        })
    }

    /// Number of requests in each state.
    pub async fn state_counts(&self) -> Result<Vec<(String, i64)>> {
        on_pool!(self, |pool| {
            let rows =
                sqlx::query("SELECT state, count(*) AS n FROM offboarding_requests GROUP BY state ORDER BY state")
                    .fetch_all(pool)
                    .await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<String, _>("state")?, r.try_get::<i64, _>("n")?)))
                .collect()
        })
    }

    /// Operator: puts a `failed` request back to `pending` with a fresh attempt budget.
    pub async fn retry(&self, id: i64) -> Result<RequestRow> {
        self.operator_transition(id, "retry", "failed", &["failed"], RequestState::Pending)
            .await
    }

    /// Operator: cancels a request that is not finished. A worker still running it loses
    /// its fence and writes nothing.
    pub async fn cancel(&self, id: i64) -> Result<RequestRow> {
        self.operator_transition(
            id,
            "cancel",
            "pending, running or failed",
            &["pending", "running", "failed"],
            RequestState::Cancelled,
        )
        .await
    }

    async fn operator_transition(
        &self,
        id: i64,
        action: &'static str,
        needs: &'static str,
        from: &[&str],
        to: RequestState,
    ) -> Result<RequestRow> {
        let now = Utc::now();
        let from_list = from.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        let updated = on_pool!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
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
            .await?;
            row.as_ref().map(request_from_row).transpose()?
        });
        match updated {
            Some(row) => Ok(row),
            None => match self.request(id).await? {
                None => Err(StoreError::NoSuchRequest(id)),
                Some(row) => Err(StoreError::WrongState {
                    id,
                    state: row.state,
                    action,
                    needs,
                }),
            },
        }
    }

    /// Audit rows, oldest first, optionally for one request or one user.
    pub async fn audit_rows(&self, request_id: Option<i64>, user_id: Option<&str>) -> Result<Vec<AuditRow>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT request_id, user_id, token_id, provider, token_type, token_fingerprint, attempt,
                        outcome, settled, http_status, provider_request_id, error, duration_ms, worker,
                        attempted_at
                   FROM revocation_audit
                  WHERE ($1 IS NULL OR request_id = $1) AND ($2 IS NULL OR user_id = $2)
                  ORDER BY id",
            )
            .bind(request_id)
            .bind(user_id.map(str::to_owned))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let outcome: String = r.try_get("outcome")?;
                    Ok(AuditRow {
                        request_id: r.try_get("request_id")?,
                        user_id: r.try_get("user_id")?,
                        token_id: r.try_get("token_id")?,
                        provider: r.try_get("provider")?,
                        token_type: r.try_get("token_type")?,
                        token_fingerprint: r.try_get("token_fingerprint")?,
                        attempt: r.try_get("attempt")?,
                        outcome: Outcome::parse(&outcome)
                            .ok_or_else(|| StoreError::Corrupt(format!("audit outcome '{outcome}'")))?,
                        settled: r.try_get("settled")?,
                        http_status: r.try_get("http_status")?,
                        provider_request_id: r.try_get("provider_request_id")?,
                        error: r.try_get("error")?,
                        duration_ms: r.try_get("duration_ms")?,
                        worker: r.try_get("worker")?,
                        attempted_at: r.try_get("attempted_at")?,
                    })
                })
                .collect()
        })
    }

    /// Inserts tokens into `oauth_tokens` (the application's table); returns their ids.
    pub async fn insert_tokens(&self, tokens: &[NewToken]) -> Result<Vec<i64>> {
        let mut ids = Vec::with_capacity(tokens.len());
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            for t in tokens {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO oauth_tokens (user_id, provider, token_type, token, grant_ref, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(t.user_id.clone())
                .bind(t.provider.clone())
                .bind(t.token_type.as_str())
                .bind(t.value.expose().to_owned())
                .bind(t.grant_ref.clone())
                .bind(t.expires_at)
                .fetch_one(&mut *tx)
                .await?;
                ids.push(id);
            }
            tx.commit().await?;
        });
        Ok(ids)
    }

    /// Whether the user's latest request is cleared, and that request.
    pub async fn clearance(&self, user_id: &str) -> Result<Option<RequestRow>> {
        Ok(self.requests_for_user(user_id).await?.into_iter().next())
    }
}
