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
mod insert;
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
pub(super) async fn append_entries<'c, Db: ChainDb>(
    tx: &mut sqlx::Transaction<'c, Db>,
    entries: &[Entry<'_>],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let head = Db::lock_head(tx).await?;
    let refs = seal::user_refs(&head, entries);
    let sealed = seal::seal(&head, entries, &refs);
    for chunk in sealed.chunks(AUDIT_CHUNK) {
        Db::insert(tx, chunk).await?;
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
