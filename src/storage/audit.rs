//! `revocation_audit`: appending a run's rows and notes (inside the caller's transaction,
//! before and regardless of its fence check: an answered call is a fact) and reading them
//! back for reports, the demo and the tests. The table is append-only; a trigger refuses
//! updates and deletes. Every row appended is sealed into a hash chain (`audit/seal.rs`,
//! the encoding in `audit/encode.rs`) that `offboard audit verify` walks (`audit/verify.rs`)
//! and `offboard run` checks as it grows (`audit/watch.rs`).

use super::rows::AuditNote;
use super::{AuditRow, Result, Store};
use seal::ChainDb;

mod encode;
mod seal;
mod verify;
mod walk;
mod watch;

pub use verify::ChainReport;
pub use walk::{Anchor, ChainFault, ChainHead, FaultKind};
pub use watch::ChainCheck;

/// Largest number of audit rows in one INSERT (22 binds each; SQLite allows 32766).
const AUDIT_CHUNK: usize = 500;

/// One audit row to insert: an attempt at a token, or a note about the request.
pub(super) enum Entry<'a> {
    Attempt(&'a AuditRow),
    Note(&'a AuditNote),
}

impl Entry<'_> {
    fn user_id(&self) -> &str {
        match self {
            Entry::Attempt(r) => &r.user_id,
            Entry::Note(n) => &n.user_id,
        }
    }
}

/// Locks the head of the audit chain until the transaction ends, for a transaction that
/// will append after locking other rows: the head must be taken first (see `seal.rs`).
pub(super) async fn lock_chain<'c, Db: ChainDb>(tx: &mut sqlx::Transaction<'c, Db>) -> Result<()> {
    Db::lock_head(tx).await.map(drop)
}

/// Appends attempt rows and notes (`entries`) within `tx`, in chunks: the rows of many
/// requests in one statement when a group commit gathered them. Callers write them whether
/// or not they still hold the request's lease: an answered call is a fact. The rows are
/// sealed into the hash chain (`seal.rs`): the chain's head stays locked until `tx` ends.
pub(super) async fn append_entries<'c, Db>(tx: &mut sqlx::Transaction<'c, Db>, entries: &[Entry<'_>]) -> Result<()>
where
    Db: ChainDb + sqlx::database::HasStatementCache,
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
    if entries.is_empty() {
        return Ok(());
    }
    let head = Db::lock_head(tx).await?;
    let refs = seal::user_refs(&head, entries);
    let sealed = seal::seal(&head, entries, &refs);
    let owned = |s: Option<&str>| s.map(str::to_owned);
    for chunk in sealed.chunks(AUDIT_CHUNK) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO revocation_audit (request_id, user_id, action, token_id, provider, token_type, \
             token_fingerprint, attempt, outcome, settled, http_status, provider_request_id, \
             error, duration_ms, worker, attempted_at, verified, verified_by, \
             chain_seq, user_ref, prev_hash, row_hash) ",
        );
        insert.push_values(chunk, |mut b, s| {
            let f = &s.fields;
            b.push_bind(f.request_id)
                .push_bind(s.user_id.to_owned())
                .push_bind(f.action.to_owned())
                .push_bind(f.token_id)
                .push_bind(owned(f.provider))
                .push_bind(owned(f.token_type))
                .push_bind(owned(f.token_fingerprint))
                .push_bind(f.attempt)
                .push_bind(owned(f.outcome))
                .push_bind(f.settled)
                .push_bind(f.http_status)
                .push_bind(owned(f.provider_request_id))
                .push_bind(owned(f.error))
                .push_bind(f.duration_ms)
                .push_bind(f.worker.to_owned())
                .push_bind(s.attempted_at)
                .push_bind(f.verified)
                .push_bind(owned(f.verified_by))
                .push_bind(s.seq)
                .push_bind(f.user_ref.to_owned())
                .push_bind(s.prev_hash.clone())
                .push_bind(s.row_hash.clone());
        });
        insert
            .build()
            .persistent(super::keep_prepared(chunk.len()))
            .execute(&mut **tx)
            .await?;
    }
    if let Some((seq, hash)) = sealed.last().map(seal::Sealed::position) {
        Db::move_head(tx, seq, hash).await?;
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
