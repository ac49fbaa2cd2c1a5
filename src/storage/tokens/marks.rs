//! What the audit says about tokens just read: what settled each row's current value (in
//! any request), and how many attempts this request already made at each. One statement a
//! chunk of ids, the request's attempts joined to the first by `UNION ALL`: a page of
//! tokens costs one round trip to the audit, not two.

use std::collections::HashMap;

use super::super::rows::settlement;
use super::super::{Result, StoredToken};
use crate::outcome::Outcome;

/// Settling audit rows of the tokens whose ids follow (from any request), by the partial
/// index on settled rows. The ids are bound rather than read by a subquery on the user: a
/// planner without statistics on a young audit table (a fresh database filling fast) chose
/// to scan the whole audit for every clearance check. The fourth column is 0 on these rows.
const SETTLED_SQL: &str = "SELECT a.token_id, a.token_fingerprint, a.outcome, CAST(0 AS BIGINT)
                             FROM revocation_audit a
                            WHERE a.settled AND a.action = 'revoke' AND a.token_id IN (";

/// Appended to the first chunk's query when a request is given: the attempts already
/// audited in this request, per token (fourth column, at least 1), for the token ids of
/// the page (from `low` to `high`), by the index on `(request_id, token_id)`.
const PRIOR_SQL: &str = " UNION ALL
    SELECT token_id, '', '', count(*) FROM revocation_audit
     WHERE request_id = ";

/// Most ids bound in one query.
const ID_CHUNK: usize = 500;

/// Sets each token's `settled_as`, `revoked_by_application` and, given `request_id`,
/// `prior_attempts` (left at 0 without).
pub(super) async fn mark<Db>(
    conn: &mut <Db as sqlx::Database>::Connection,
    tokens: &mut [StoredToken],
    request_id: Option<i64>,
) -> Result<()>
where
    Db: sqlx::Database + sqlx::database::HasStatementCache,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'r> i64: sqlx::Decode<'r, Db>,
    for<'r> String: sqlx::Decode<'r, Db>,
    String: sqlx::Type<Db>,
    usize: sqlx::ColumnIndex<<Db as sqlx::Database>::Row>,
    for<'q> <Db as sqlx::Database>::Arguments: sqlx::IntoArguments<Db>,
    for<'e> &'e mut <Db as sqlx::Database>::Connection: sqlx::Executor<'e, Database = Db>,
{
    let (Some(low), Some(high)) = (tokens.iter().map(|t| t.id).min(), tokens.iter().map(|t| t.id).max()) else {
        return Ok(());
    };
    let ids: Vec<i64> = tokens.iter().map(|t| t.id).collect();
    let mut found: Vec<(i64, String, String, i64)> = Vec::new();
    for (at, chunk) in ids.chunks(ID_CHUNK).enumerate() {
        let mut query = sqlx::QueryBuilder::<Db>::new(SETTLED_SQL);
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        query.push(")");
        if let (0, Some(request)) = (at, request_id) {
            query.push(PRIOR_SQL);
            query.push_bind(request);
            query.push(" AND action = 'revoke' AND token_id BETWEEN ");
            query.push_bind(low);
            query.push(" AND ");
            query.push_bind(high);
            query.push(" GROUP BY token_id");
        }
        let rows: Vec<(i64, String, String, i64)> = query
            .build_query_as()
            .persistent(crate::storage::keep_prepared(chunk.len()))
            .fetch_all(&mut *conn)
            .await?;
        found.extend(rows);
    }
    // Indexed by token id: a page is marked in linear time.
    let mut settled_of: HashMap<i64, Vec<(String, Outcome)>> = HashMap::new();
    let mut prior: HashMap<i64, i64> = HashMap::new();
    for (id, fingerprint, outcome, attempts) in found {
        if attempts > 0 {
            prior.insert(id, attempts);
        } else if let Some(outcome) = Outcome::parse(&outcome) {
            settled_of.entry(id).or_default().push((fingerprint, outcome));
        }
    }
    for token in tokens {
        let rows_of_token = settled_of.get(&token.id).map_or(&[][..], Vec::as_slice);
        let (settled_as, by_application) = settlement(&token.fingerprint(), token.revoked_at.is_some(), rows_of_token);
        token.settled_as = settled_as;
        token.revoked_by_application = by_application;
        token.prior_attempts = prior
            .get(&token.id)
            .map_or(0, |n| i32::try_from(*n).unwrap_or(i32::MAX));
    }
    Ok(())
}

/// The attempts already audited per request and token, for the requests of `request_ids`
/// (a claim's batch), by the index on `(request_id, token_id)`: rows only for requests
/// that ran before.
pub(super) async fn prior_of_requests<Db>(
    conn: &mut <Db as sqlx::Database>::Connection,
    request_ids: &[i64],
) -> Result<HashMap<(i64, i64), i64>>
where
    Db: sqlx::Database + sqlx::database::HasStatementCache,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'r> i64: sqlx::Decode<'r, Db>,
    usize: sqlx::ColumnIndex<<Db as sqlx::Database>::Row>,
    for<'q> <Db as sqlx::Database>::Arguments: sqlx::IntoArguments<Db>,
    for<'e> &'e mut <Db as sqlx::Database>::Connection: sqlx::Executor<'e, Database = Db>,
{
    let mut prior = HashMap::new();
    for chunk in request_ids.chunks(ID_CHUNK) {
        let mut query = sqlx::QueryBuilder::<Db>::new(
            "SELECT request_id, token_id, count(*) FROM revocation_audit WHERE action = 'revoke' AND request_id IN (",
        );
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        query.push(") GROUP BY request_id, token_id");
        let rows: Vec<(i64, i64, i64)> = query
            .build_query_as()
            .persistent(crate::storage::keep_prepared(chunk.len()))
            .fetch_all(&mut *conn)
            .await?;
        prior.extend(rows.into_iter().map(|(request, token, n)| ((request, token), n)));
    }
    Ok(prior)
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    /// A statement binding a long list is not kept prepared on its connection: each list
    /// length is its own statement text, and kept they filled every connection's cache
    /// (about 100 KiB of metadata each for the audit insert on PostgreSQL; peak RSS of a
    /// big user's run grew with them). Short lists are kept.
    #[tokio::test]
    async fn lists_longer_than_four_are_not_kept_prepared() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::migrate!("migrations/sqlite").run(&mut conn).await.unwrap();
        let before = conn.cached_statements_size();
        for len in 5..=40 {
            let ids: Vec<i64> = (0..len).collect();
            super::prior_of_requests::<sqlx::Sqlite>(&mut conn, &ids).await.unwrap();
        }
        assert_eq!(
            conn.cached_statements_size(),
            before,
            "a long list's statement was kept"
        );
        for len in 1..=4 {
            let ids: Vec<i64> = (0..len).collect();
            super::prior_of_requests::<sqlx::Sqlite>(&mut conn, &ids).await.unwrap();
        }
        assert_eq!(conn.cached_statements_size(), before + 4, "short lists are kept");
    }
}
