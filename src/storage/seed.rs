//! Writing the application's tables and raw SQL, for the demo and the tests only. The
//! daemon never inserts tokens: the application owns `oauth_tokens`.

use chrono::{DateTime, Utc};

use super::{Result, Store};
use crate::token::{TokenType, TokenValue};

/// A token to insert into `oauth_tokens`.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub user_id: String,
    pub provider: String,
    pub token_type: TokenType,
    pub value: TokenValue,
    pub grant_ref: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Inserts tokens into `oauth_tokens` in one transaction; returns their ids.
pub async fn insert_tokens(store: &Store, tokens: &[NewToken]) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(tokens.len());
    on_pool!(store, |pool| {
        let mut tx = pool.begin_with(store.begin_write()).await?;
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

/// Rows per multi-row `INSERT` of the fast paths: six parameters a row stays far below
/// both backends' limits on bound parameters (SQLite 32,766, PostgreSQL 65,535).
const ROWS_PER_INSERT: usize = 1_000;

/// As [`insert_tokens`], without the ids: multi-row inserts, all in one transaction, for
/// seeding large backlogs (the benchmarks) in chunks.
pub async fn insert_tokens_fast(store: &Store, tokens: &[NewToken]) -> Result<()> {
    on_pool!(store, |pool| {
        let mut tx = pool.begin_with(store.begin_write()).await?;
        for rows in tokens.chunks(ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO oauth_tokens (user_id, provider, token_type, token, grant_ref, expires_at) ",
            );
            insert.push_values(rows, |mut row, t| {
                row.push_bind(t.user_id.clone())
                    .push_bind(t.provider.clone())
                    .push_bind(t.token_type.as_str())
                    .push_bind(t.value.expose().to_owned())
                    .push_bind(t.grant_ref.clone())
                    .push_bind(t.expires_at);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Enqueues each of `users` (who must have no open request) in multi-row inserts, all in
/// one transaction: the benchmarks' fast path, with neither the idempotence check nor the
/// returned rows of [`Store::enqueue`]. Requests are due at once; PostgreSQL notifies.
pub async fn enqueue_fast(store: &Store, users: &[String], requested_by: &str) -> Result<()> {
    let now = Utc::now();
    on_pool!(store, |pool| {
        let mut tx = pool.begin_with(store.begin_write()).await?;
        for rows in users.chunks(ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO offboarding_requests (user_id, requested_by, requested_at, updated_at) ",
            );
            insert.push_values(rows, |mut row, user| {
                row.push_bind(user.clone())
                    .push_bind(requested_by.to_owned())
                    .push_bind(now)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Runs one statement; returns the rows it affected.
pub async fn execute(store: &Store, sql: &'static str) -> Result<u64> {
    on_pool!(store, |pool| Ok(sqlx::query(sql).execute(pool).await?.rows_affected()))
}

/// Runs one query that returns a single number.
pub async fn scalar(store: &Store, sql: &'static str) -> Result<i64> {
    on_pool!(store, |pool| Ok(sqlx::query_scalar(sql).fetch_one(pool).await?))
}

/// Runs one query whose rows are a single text column.
pub async fn text_rows(store: &Store, sql: &'static str) -> Result<Vec<String>> {
    on_pool!(store, |pool| Ok(sqlx::query_scalar(sql).fetch_all(pool).await?))
}
