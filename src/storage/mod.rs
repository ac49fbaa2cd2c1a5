//! The queue, the token store and the audit trail, on PostgreSQL or SQLite.
//!
//! Both backends run the same SQL text (`$N` placeholders work on both) through one
//! implementation: [`on_pool!`] expands a body once per backend, so the compiler checks it
//! against each driver. What really differs lives in `postgres.rs` and `sqlite.rs`:
//! connecting, how a write transaction starts, the claim's row locking, and LISTEN.
//!
//! One file per table or concern: `requests.rs` (the queue: enqueue, claims, leases,
//! operator commands), `results.rs` (the one fenced write of a worker's results),
//! `batch.rs` (many requests' writes of results in one transaction; the single write is a
//! batch of one), `tokens.rs` (reading a user's tokens, a page at a time), `audit.rs`
//! (appending and reading audit rows), `rows.rs` (the row types), `rates.rs` (the
//! workers' shares of the providers' rates and the adaptive rates they share, PostgreSQL
//! only), `due.rs` (whether anything is due), `report.rs` (the audit trail streamed for reports, the
//! queue's oldest pending request and latest failures for status), `dashboard.rs` (what the operator's dashboard reads), `seed.rs` (writing the application's tables,
//! for the demo, the bench and the tests only). `evidence.rs` reads one user's requests
//! and audit rows, chain columns included, for `offboard evidence`.
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
/// Each backend supplies its clock (`$now`), `$now` plus `$2` milliseconds (`$until`), the
/// next fencing value (`$fence`) and its row-locking clause. The due rows are read once
/// (`MATERIALIZED`), so the last column can say, from the state each had before, whether the
/// claim took over an expired lease.
macro_rules! claim_sql {
    ($now:literal, $until:literal, $fence:literal, $locking:literal) => {
        concat!(
            "WITH due AS MATERIALIZED (
                    SELECT id, state FROM offboarding_requests
                     WHERE state IN ('pending', 'running')
                       AND ((state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ",
            $now,
            "))
                        OR (state = 'running' AND locked_until < ",
            $now,
            "))
                     ORDER BY id
                     LIMIT $3 ",
            $locking,
            ")
             UPDATE offboarding_requests
                SET state = 'running', locked_by = $1, locked_until = ",
            $until,
            ", attempts = attempts + 1, fence = ",
            $fence,
            ", updated_at = ",
            $now,
            "
              WHERE id IN (SELECT id FROM due)
             RETURNING id, user_id, attempts, fence, last_error,
                       (SELECT due.state = 'running' FROM due WHERE due.id = offboarding_requests.id)"
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
mod batch;
mod dashboard;
mod due;
mod evidence;
mod postgres;
mod rates;
mod report;
mod requests;
mod results;
mod rows;
pub mod seed;
mod sources;
mod sqlite;
mod tokens;

pub use audit::{Anchor, ChainCheck, ChainFault, ChainHead, ChainReport, FaultKind};
pub use batch::Write;
pub(crate) use dashboard::{HourCell, QueueSnapshot, TimelineRow};
pub(crate) use evidence::{EvidenceRow, UserRecord};
pub(crate) use postgres::RequestListener;
pub(crate) use rates::MyPace;
pub use report::{AuditFilter, AuditRecord, FailedRequest};
pub use results::Results;
pub use rows::{
    AuditAction, AuditNote, AuditRow, BadToken, ClaimedRequest, Enqueued, Fence, RequestRow, StateCounts, StoredToken,
    UserTokens,
};
pub(crate) use sources::Sources;
pub use tokens::Cursor;

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
    #[error("request {0} is no longer leased by this worker: its calls were audited, its state was not changed")]
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
    #[error("the group committer stopped before answering: whether the results were written is unknown")]
    CommitterStopped,
}

impl StoreError {
    /// Whether the error is the database being away or busy (a dropped connection, a
    /// restart, a full pool, a locked SQLite file, a deadlock or serialization failure)
    /// rather than anything about the request: worth retrying the same write.
    pub fn is_outage(&self) -> bool {
        match self {
            StoreError::Sqlx(e) | StoreError::Connect { source: e, .. } => is_outage(e),
            _ => false,
        }
    }
}

fn is_outage(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed | sqlx::Error::Tls(_) => true,
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6) with their extended codes.
            let sqlite_busy = matches!(code.as_ref(), "5" | "6" | "261" | "262" | "517");
            // PostgreSQL: connection exceptions (08…), shutdown and start-up (57P01-57P03),
            // too many connections, serialization failures and deadlocks.
            let pg_away = code.starts_with("08")
                || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01");
            sqlite_busy || pg_away
        }
        _ => false,
    }
}

pub(crate) type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// Prepared statements kept per connection. Batched writes and reads bind lists whose
/// length varies (each length its own statement text), so sqlx's default of 100 per
/// connection filled every pooled connection with statements used once: peak RSS grew
/// with the queue and with a user's number of tokens (`offboard bench rss`). The
/// statements every claim and write use stay cached under this bound.
const STATEMENT_CACHE: usize = 24;

/// Longest list bound into a statement that is still prepared and kept on its connection.
/// Each length of a list is its own statement text: kept, the long ones filled every
/// connection's cache with statements of thousands of parameters (on PostgreSQL about
/// 100 KiB of metadata each, on SQLite the compiled program), used once or rarely, so peak
/// RSS grew with how long the worker ran, the queue and a user's number of tokens. Longer
/// lists are prepared for the one execution and dropped.
const CACHED_LIST: usize = 4;

/// Whether a statement binding a list of `len` items is kept prepared on its connection.
fn keep_prepared(len: usize) -> bool {
    len <= CACHED_LIST
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// Where the application's tokens are: `oauth_tokens` unless the config maps others.
    sources: std::sync::Arc<sources::Sources>,
    /// When the planner's statistics were last looked at (PostgreSQL).
    tended: postgres::Tended,
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
        Ok(Store {
            pool,
            sources: Default::default(),
            tended: Default::default(),
        })
    }

    /// The same database, reading tokens from `sources`.
    pub(crate) fn with_sources(&self, sources: std::sync::Arc<sources::Sources>) -> Store {
        Store {
            pool: self.pool.clone(),
            sources,
            tended: self.tended.clone(),
        }
    }

    fn sql(&self) -> sources::Sql {
        match self.pool {
            Pool::Postgres(_) => sources::Sql::Postgres,
            Pool::Sqlite(_) => sources::Sql::Sqlite,
        }
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

    /// The backend's clock as an SQL expression: the server's on PostgreSQL.
    fn now_sql(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => postgres::NOW,
            Pool::Sqlite(_) => sqlite::NOW,
        }
    }

    /// The backend's clock plus the milliseconds bound at `$param`.
    fn later_sql(&self, param: &str) -> String {
        match self.pool {
            Pool::Postgres(_) => postgres::later(param),
            Pool::Sqlite(_) => sqlite::later(param),
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
