//! SQLite: the embedded default, for one process. The file is created on first use and runs
//! in WAL mode, so readers (`status`, `gate`, the deletion job) never wait for the worker.
//!
//! Every write transaction starts with `BEGIN IMMEDIATE`: it takes the write lock up front,
//! so two writers queue on the busy timeout instead of failing a read-to-write upgrade with
//! "database is locked".

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Result, StoreError};
use crate::config::DatabaseConfig;

pub(super) const CLAIM_SQL: &str = claim_sql!(
    "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')",
    "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', printf('%+.3f seconds', $2 / 1000.0))",
    "(SELECT value FROM offboard_counters WHERE name = 'fence')",
    ""
);

/// Run in the claim's transaction before [`CLAIM_SQL`]: takes the next fence value.
pub(super) const NEXT_FENCE: &str = "UPDATE offboard_counters SET value = value + 1 WHERE name = 'fence'";

pub(super) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The clock, in the text shape sqlx writes timestamps in (RFC 3339, `+00:00`), so that
/// stored and computed times compare correctly as text. One process, one clock.
pub(super) const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')";

/// `NOW` plus `$param` milliseconds.
pub(super) fn later(param: &str) -> String {
    format!("strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', printf('%+.3f seconds', {param} / 1000.0))")
}

/// `BEGIN IMMEDIATE` already keeps every other writer out while the re-check runs.
pub(super) const LOCK_TOKENS: &str = "";

/// Each connection's page cache, in KiB (a negative `cache_size`). SQLite's default is
/// about 2 MiB a connection, which the worker's connections fill as the database grows:
/// `bench rss` with one user of 100,000 tokens peaked at 36.1 MiB against 26.7 MiB with
/// 1,000; with 256 KiB, 31.1 MiB, and no slower (`bench unlimited`). Pages beyond it come
/// from the operating system's file cache.
const PAGE_CACHE: &str = "-256";

pub(super) async fn connect(config: &DatabaseConfig) -> Result<sqlx::SqlitePool> {
    let fail = |source| StoreError::Connect {
        url: config.url.redacted(),
        source,
    };
    let options = SqliteConnectOptions::from_str(config.url.as_str())
        .map_err(fail)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(config.busy_timeout.0)
        .statement_cache_capacity(super::STATEMENT_CACHE)
        .pragma("cache_size", PAGE_CACHE);
    SqlitePoolOptions::new()
        .max_connections(config.max_connections.get())
        .connect_with(options)
        .await
        .map_err(fail)
}

#[cfg(test)]
pub(super) mod tests {
    /// The steps of SQLite's plan for `explain` (a statement after `EXPLAIN QUERY PLAN `),
    /// on a fresh in-memory database with offboard's tables.
    pub(in crate::storage) async fn plan_steps(mut explain: sqlx::QueryBuilder<sqlx::Sqlite>) -> Vec<String> {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::migrate!("migrations/sqlite").run(&pool).await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> = explain.build_query_as().fetch_all(&pool).await.unwrap();
        plan.into_iter().map(|(_, _, _, step)| step).collect()
    }

    /// Each connection keeps a small page cache ([`super::PAGE_CACHE`]), whatever the
    /// database's size: with SQLite's default of 2 MiB each, the worker's memory grew with
    /// the token table.
    #[tokio::test]
    async fn each_connection_keeps_a_small_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::DatabaseConfig {
            url: format!("sqlite://{}", dir.path().join("cache.db").display())
                .parse()
                .unwrap(),
            ..crate::config::DatabaseConfig::default()
        };
        let pool = super::connect(&config).await.unwrap();
        let mut seen = Vec::new();
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = pool.acquire().await.unwrap();
            let size: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            seen.push(size);
            held.push(conn);
        }
        assert_eq!(seen, [-256, -256, -256]);
    }

    /// Issue 10: a claim reads the open requests by their partial index (migration 0006),
    /// never the whole table: before it, SQLite scanned every request ever made on each
    /// claim, so claims slowed as cleared requests piled up.
    #[tokio::test]
    async fn the_claim_reads_open_requests_by_their_index() {
        let explain = sqlx::QueryBuilder::new(format!("EXPLAIN QUERY PLAN {}", super::CLAIM_SQL));
        let steps = plan_steps(explain).await;
        assert!(
            steps
                .iter()
                .any(|s| s.contains("USING INDEX offboarding_requests_open")),
            "{steps:?}"
        );
        assert!(
            !steps.iter().any(|s| s == "SCAN offboarding_requests"),
            "the claim scans the whole table: {steps:?}"
        );
    }
}
