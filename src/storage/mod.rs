//! The queue, the token store and the audit trail, on PostgreSQL or SQLite.
//!
//! Both backends run the same SQL text (`$N` placeholders work on both) through one
//! implementation: [`on_pool!`] expands a body once per backend, so the compiler checks it
//! against each driver. What really differs lives in `postgres.rs` and `sqlite.rs`:
//! connecting, how a write transaction starts, the claim's row locking, and LISTEN.
//!
//! One file per table or concern: `requests.rs` (the queue: enqueue, claims, leases,
//! operator commands), `results.rs` (the one fenced write of a worker's results),
//! `tokens.rs` (reading a user's tokens), `audit.rs` (appending and reading audit rows),
//! `rows.rs` (the row types), `seed.rs` (writing the application's tables, for the demo and
//! the tests only).
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

/// Runs `$body` with `$pool` bound to the backend's pool and `Db` naming its database type.
/// The body is compiled once per backend.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::storage::Pool::Postgres($pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Postgres;
                $body
            }
            $crate::storage::Pool::Sqlite($pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Sqlite;
                $body
            }
        }
    };
}

mod audit;
mod postgres;
mod requests;
mod results;
mod rows;
pub mod seed;
mod sqlite;
mod tokens;

pub(crate) use postgres::RequestListener;
pub use rows::{AuditRow, ClaimedRequest, Enqueued, Fence, RequestRow, StateCounts, StoredToken};

use crate::config::DatabaseConfig;
use crate::outcome::RequestState;

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
        needs: String,
    },
    #[error("no request with id {0}")]
    NoSuchRequest(i64),
}

pub(crate) type Result<T, E = StoreError> = std::result::Result<T, E>;

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

impl Store {
    /// Opens the database named in the config, creating an SQLite file on first use, and
    /// applies pending migrations.
    pub async fn open(config: &DatabaseConfig) -> Result<Store> {
        let store = Store::connect(config).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database without migrating.
    pub(crate) async fn connect(config: &DatabaseConfig) -> Result<Store> {
        let pool = if config.url.is_postgres() {
            Pool::Postgres(postgres::connect(config).await?)
        } else {
            Pool::Sqlite(sqlite::connect(config).await?)
        };
        Ok(Store { pool })
    }

    pub(crate) fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => "postgres",
            Pool::Sqlite(_) => "sqlite",
        }
    }

    /// How a transaction that writes starts on this backend.
    fn begin_write(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => postgres::BEGIN_WRITE,
            Pool::Sqlite(_) => sqlite::BEGIN_WRITE,
        }
    }

    pub(crate) async fn migrate(&self) -> Result<()> {
        match &self.pool {
            Pool::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
            Pool::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    /// Whether the database answers, for `/readyz`.
    pub(crate) async fn ping(&self) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// A listener woken when a request becomes due (PostgreSQL NOTIFY); `None` on SQLite,
    /// which has no notifications: the caller polls.
    pub(crate) async fn listen_for_requests(&self) -> Result<Option<RequestListener>> {
        match &self.pool {
            Pool::Postgres(pool) => Ok(Some(RequestListener::connect(pool).await?)),
            Pool::Sqlite(_) => Ok(None),
        }
    }
}
