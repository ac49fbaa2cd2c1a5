//! `revocation_audit`: appending a run's rows (inside the caller's fenced transaction) and
//! reading them back for reports, the demo and the tests. The table is append-only; a
//! trigger refuses updates and deletes.

use super::{AuditRow, Result, Store};

/// Largest number of audit rows in one INSERT (15 binds each; SQLite allows 32766).
const AUDIT_CHUNK: usize = 500;

/// Appends `rows` within `tx`, in chunks.
pub(super) async fn append<'c, Db>(tx: &mut sqlx::Transaction<'c, Db>, rows: &[AuditRow]) -> Result<()>
where
    Db: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> i32: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> Option<i32>: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> bool: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> String: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> Option<String>: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> &'static str: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> chrono::DateTime<chrono::Utc>: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> <Db as sqlx::Database>::Arguments: sqlx::IntoArguments<Db>,
    for<'e> &'e mut <Db as sqlx::Database>::Connection: sqlx::Executor<'e, Database = Db>,
{
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
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Audit rows, oldest first, optionally for one request or one user.
    pub async fn audit_rows(&self, request_id: Option<i64>, user_id: Option<&str>) -> Result<Vec<AuditRow>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_as::<Db, AuditRow>(
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
            .await?)
        })
    }
}
