//! `revocation_audit`: appending a run's rows and notes (inside the caller's transaction,
//! before and regardless of its fence check: an answered call is a fact) and reading them
//! back for reports, the demo and the tests. The table is append-only; a trigger refuses
//! updates and deletes.

use super::rows::{AuditAction, AuditNote};
use super::{AuditRow, Result, Store};

/// Largest number of audit rows in one INSERT (18 binds each; SQLite allows 32766).
const AUDIT_CHUNK: usize = 500;

/// One audit row to insert: an attempt at a token, or a note about the request.
pub(super) enum Entry<'a> {
    Attempt(&'a AuditRow),
    Note(&'a AuditNote),
}

/// Appends attempt rows and notes (`entries`) within `tx`, in chunks: the rows of many
/// requests in one statement when a group commit gathered them. Callers write them whether
/// or not they still hold the request's lease: an answered call is a fact.
pub(super) async fn append_entries<'c, Db>(tx: &mut sqlx::Transaction<'c, Db>, entries: &[Entry<'_>]) -> Result<()>
where
    Db: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> Option<i64>: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> Option<i32>: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> bool: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> Option<bool>: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> String: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> Option<String>: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> &'static str: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> Option<&'static str>: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> chrono::DateTime<chrono::Utc>: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> <Db as sqlx::Database>::Arguments: sqlx::IntoArguments<Db>,
    for<'e> &'e mut <Db as sqlx::Database>::Connection: sqlx::Executor<'e, Database = Db>,
{
    for chunk in entries.chunks(AUDIT_CHUNK) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO revocation_audit (request_id, user_id, action, token_id, provider, token_type, \
             token_fingerprint, attempt, outcome, settled, http_status, provider_request_id, \
             error, duration_ms, worker, attempted_at, verified, verified_by) ",
        );
        insert.push_values(chunk, |mut b, entry| match entry {
            Entry::Attempt(r) => {
                b.push_bind(r.request_id)
                    .push_bind(r.user_id.clone())
                    .push_bind(AuditAction::Revoke.as_str())
                    .push_bind(Some(r.token_id))
                    .push_bind(Some(r.provider.clone()))
                    .push_bind(Some(r.token_type.clone()))
                    .push_bind(Some(r.token_fingerprint.clone()))
                    .push_bind(Some(r.attempt))
                    .push_bind(Some(r.outcome.as_str()))
                    .push_bind(r.settled)
                    .push_bind(r.http_status)
                    .push_bind(r.provider_request_id.clone())
                    .push_bind(r.error.clone())
                    .push_bind(r.duration_ms)
                    .push_bind(r.worker.clone())
                    .push_bind(r.attempted_at)
                    .push_bind(r.verified)
                    .push_bind(r.verified_by.clone());
            }
            Entry::Note(n) => {
                b.push_bind(n.request_id)
                    .push_bind(n.user_id.clone())
                    .push_bind(n.action.as_str())
                    .push_bind(None::<i64>)
                    .push_bind(None::<String>)
                    .push_bind(None::<String>)
                    .push_bind(None::<String>)
                    .push_bind(None::<i32>)
                    .push_bind(None::<&'static str>)
                    .push_bind(false)
                    .push_bind(None::<i32>)
                    .push_bind(None::<String>)
                    .push_bind(n.error.clone())
                    .push_bind(0_i64)
                    .push_bind(n.worker.clone())
                    .push_bind(n.attempted_at)
                    .push_bind(None::<bool>)
                    .push_bind(None::<String>);
            }
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
                        attempted_at, verified, verified_by
                   FROM revocation_audit
                  WHERE action = 'revoke' AND ($1 IS NULL OR request_id = $1) AND ($2 IS NULL OR user_id = $2)
                  ORDER BY id",
            )
            .bind(request_id)
            .bind(user_id.map(str::to_owned))
            .fetch_all(pool)
            .await?)
        })
    }

    /// Audit rows about requests rather than tokens (no tokens, operator actions), oldest
    /// first, optionally for one request.
    pub async fn audit_notes(&self, request_id: Option<i64>) -> Result<Vec<AuditNote>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_as::<Db, AuditNote>(
                "SELECT request_id, user_id, action, error, worker, attempted_at
                   FROM revocation_audit
                  WHERE action <> 'revoke' AND ($1 IS NULL OR request_id = $1)
                  ORDER BY id",
            )
            .bind(request_id)
            .fetch_all(pool)
            .await?)
        })
    }
}
