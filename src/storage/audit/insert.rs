//! Inserting sealed rows: one statement per chunk, shaped for each backend.
//!
//! PostgreSQL takes each column as one array (`UNNEST`): the statement's text is the same
//! for any number of rows, so it is prepared once per connection and planned in no time,
//! where a `VALUES` list of 22 binds a row is parsed and planned anew for each length
//! (over 6,000 parameters for a busy commit). SQLite has no arrays and its parsing is
//! cheap: it takes a `VALUES` list.

use super::seal::Sealed;
use crate::storage::Result;

/// The columns every insert writes, in order (a macro, so the statements are literals).
macro_rules! columns {
    () => {
        "request_id, user_id, action, token_id, provider, token_type, token_fingerprint, attempt, \
         outcome, settled, http_status, provider_request_id, error, duration_ms, worker, \
         attempted_at, verified, verified_by, chain_seq, user_ref, prev_hash, row_hash"
    };
}

/// The rows as a multi-row `VALUES` list (SQLite).
pub(super) async fn values(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, rows: &[Sealed<'_>]) -> Result<()> {
    let mut insert =
        sqlx::QueryBuilder::<sqlx::Sqlite>::new(concat!("INSERT INTO revocation_audit (", columns!(), ") "));
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

/// The PostgreSQL insert: one array per column, in [`columns!`] order.
const UNNEST_SQL: &str = concat!(
    "INSERT INTO revocation_audit (",
    columns!(),
    ") SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],
        $7::text[], $8::int4[], $9::text[], $10::bool[], $11::int4[], $12::text[], $13::text[],
        $14::int8[], $15::text[], $16::timestamptz[], $17::bool[], $18::text[], $19::int8[],
        $20::text[], $21::text[], $22::text[])"
);

/// One column of `rows`, as the array bound for it.
fn column<'a, T>(rows: &'a [Sealed<'a>], get: impl Fn(&'a Sealed<'a>) -> T) -> Vec<T> {
    rows.iter().map(get).collect()
}

/// The rows as one array per column (PostgreSQL).
pub(super) async fn unnest<'a>(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, rows: &'a [Sealed<'a>]) -> Result<()> {
    sqlx::query(UNNEST_SQL)
        .bind(column(rows, |s| s.fields.request_id))
        .bind(column(rows, |s| s.user_id))
        .bind(column(rows, |s| s.fields.action))
        .bind(column(rows, |s| s.fields.token_id))
        .bind(column(rows, |s| s.fields.provider))
        .bind(column(rows, |s| s.fields.token_type))
        .bind(column(rows, |s| s.fields.token_fingerprint))
        .bind(column(rows, |s| s.fields.attempt))
        .bind(column(rows, |s| s.fields.outcome))
        .bind(column(rows, |s| s.fields.settled))
        .bind(column(rows, |s| s.fields.http_status))
        .bind(column(rows, |s| s.fields.provider_request_id))
        .bind(column(rows, |s| s.fields.error))
        .bind(column(rows, |s| s.fields.duration_ms))
        .bind(column(rows, |s| s.fields.worker))
        .bind(column(rows, |s| s.attempted_at))
        .bind(column(rows, |s| s.fields.verified))
        .bind(column(rows, |s| s.fields.verified_by))
        .bind(column(rows, |s| s.seq))
        .bind(column(rows, |s| s.fields.user_ref))
        .bind(column(rows, |s| s.prev_hash.as_str()))
        .bind(column(rows, |s| s.row_hash.as_str()))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
