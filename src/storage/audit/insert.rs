//! Inserting sealed rows: one statement per chunk, shaped for each backend.
//!
//! PostgreSQL takes each column as one array (`UNNEST`): the statement's text is the same
//! for any number of rows, so it is prepared once per connection and planned in no time,
//! where a `VALUES` list of 22 binds a row is parsed and planned anew for each length
//! (over 6,000 parameters for a busy commit). SQLite has no arrays and its parsing is
//! cheap: it takes a `VALUES` list.

use super::seal::Sealed;
use crate::storage::Result;

const COLUMNS: &str = "request_id, user_id, action, token_id, provider, token_type, token_fingerprint, attempt, \
                       outcome, settled, http_status, provider_request_id, error, duration_ms, worker, \
                       attempted_at, verified, verified_by, chain_seq, user_ref, prev_hash, row_hash";

/// The rows as a multi-row `VALUES` list (SQLite).
pub(super) async fn values(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, rows: &[Sealed<'_>]) -> Result<()> {
    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!("INSERT INTO revocation_audit ({COLUMNS}) "));
    insert.push_values(rows, |mut b, s| {
        let f = &s.fields;
        b.push_bind(f.request_id)
            .push_bind(s.user_id)
            .push_bind(f.action)
            .push_bind(f.token_id)
            .push_bind(f.provider)
            .push_bind(f.token_type)
            .push_bind(f.token_fingerprint)
            .push_bind(f.attempt)
            .push_bind(f.outcome)
            .push_bind(f.settled)
            .push_bind(f.http_status)
            .push_bind(f.provider_request_id)
            .push_bind(f.error)
            .push_bind(f.duration_ms)
            .push_bind(f.worker)
            .push_bind(s.attempted_at)
            .push_bind(f.verified)
            .push_bind(f.verified_by)
            .push_bind(s.seq)
            .push_bind(f.user_ref)
            .push_bind(s.prev_hash.as_str())
            .push_bind(s.row_hash.as_str());
    });
    insert
        .build()
        .persistent(crate::storage::keep_prepared(rows.len()))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The rows as one array per column (PostgreSQL).
pub(super) async fn unnest<'a>(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, rows: &'a [Sealed<'a>]) -> Result<()> {
    let column =
        |get: fn(&'a Sealed<'a>) -> Option<&'a str>| -> Vec<Option<&'a str>> { rows.iter().map(get).collect() };
    let sql = format!(
        "INSERT INTO revocation_audit ({COLUMNS})
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[],
                              $8::int4[], $9::text[], $10::bool[], $11::int4[], $12::text[], $13::text[],
                              $14::int8[], $15::text[], $16::timestamptz[], $17::bool[], $18::text[],
                              $19::int8[], $20::text[], $21::text[], $22::text[])"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(rows.iter().map(|s| s.fields.request_id).collect::<Vec<i64>>())
        .bind(column(|s| Some(s.user_id)))
        .bind(column(|s| Some(s.fields.action)))
        .bind(rows.iter().map(|s| s.fields.token_id).collect::<Vec<Option<i64>>>())
        .bind(column(|s| s.fields.provider))
        .bind(column(|s| s.fields.token_type))
        .bind(column(|s| s.fields.token_fingerprint))
        .bind(rows.iter().map(|s| s.fields.attempt).collect::<Vec<Option<i32>>>())
        .bind(column(|s| s.fields.outcome))
        .bind(rows.iter().map(|s| s.fields.settled).collect::<Vec<bool>>())
        .bind(rows.iter().map(|s| s.fields.http_status).collect::<Vec<Option<i32>>>())
        .bind(column(|s| s.fields.provider_request_id))
        .bind(column(|s| s.fields.error))
        .bind(rows.iter().map(|s| s.fields.duration_ms).collect::<Vec<i64>>())
        .bind(column(|s| Some(s.fields.worker)))
        .bind(rows.iter().map(|s| s.attempted_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|s| s.fields.verified).collect::<Vec<Option<bool>>>())
        .bind(column(|s| s.fields.verified_by))
        .bind(rows.iter().map(|s| s.seq).collect::<Vec<i64>>())
        .bind(column(|s| Some(s.fields.user_ref)))
        .bind(column(|s| Some(s.prev_hash.as_str())))
        .bind(column(|s| Some(s.row_hash.as_str())))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
