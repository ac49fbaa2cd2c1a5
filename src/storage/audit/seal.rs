//! Sealing rows into the chain as they are appended: the head (`offboard_audit_chain`, one
//! row) is locked once per transaction, each new row gets the next `chain_seq`, the hash of
//! the row before it and its own hash, and the head moves to the last one, all in the
//! transaction that inserts the rows. So the chain's order is the order in which appending
//! transactions committed: on PostgreSQL the head's row lock (`FOR UPDATE`) makes the next
//! appender wait until this one commits or rolls back (a rollback takes its sequence numbers
//! with it, so no gap is left); on SQLite writers are serialized by `BEGIN IMMEDIATE`.
//!
//! Lock order: a transaction that appends takes the head before any request or token row
//! (the group committer appends first; an operator command locks the head before its
//! update), so two appenders cannot deadlock on each other.

use chrono::{DateTime, Utc};

use super::Entry;
use super::encode::{Fields, row_hash, to_micros, user_ref};
use crate::storage::Result;
use crate::storage::rows::AuditAction;

/// The chain's head as locked: the last row's sequence number and hash (0 and the genesis
/// hash before the first row), and the key of the user references.
pub(crate) struct Head {
    seq: i64,
    hash: String,
    user_key: String,
}

/// A backend's locking of the head. Both run the same statements but for the lock clause.
pub(crate) trait ChainDb: sqlx::Database {
    /// Reads the head, locked until the transaction ends.
    fn lock_head<'c>(tx: &mut sqlx::Transaction<'c, Self>) -> impl Future<Output = Result<Head>> + Send;
    /// Moves the head to row `seq`, whose hash is `hash`.
    fn move_head<'c>(
        tx: &mut sqlx::Transaction<'c, Self>,
        seq: i64,
        hash: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Inserts sealed rows (at most [`super::AUDIT_CHUNK`]).
    fn insert<'c>(tx: &mut sqlx::Transaction<'c, Self>, rows: &[Sealed<'_>])
    -> impl Future<Output = Result<()>> + Send;
}

macro_rules! chain_db {
    ($db:ty, $lock:literal, $insert:path) => {
        impl ChainDb for $db {
            async fn lock_head<'c>(tx: &mut sqlx::Transaction<'c, Self>) -> Result<Head> {
                let (seq, hash, user_key): (i64, String, String) = sqlx::query_as(concat!(
                    "SELECT head_seq, head_hash, user_key FROM offboard_audit_chain WHERE id = 1",
                    $lock
                ))
                .fetch_one(&mut **tx)
                .await?;
                Ok(Head { seq, hash, user_key })
            }

            async fn move_head<'c>(tx: &mut sqlx::Transaction<'c, Self>, seq: i64, hash: &str) -> Result<()> {
                sqlx::query("UPDATE offboard_audit_chain SET head_seq = $1, head_hash = $2 WHERE id = 1")
                    .bind(seq)
                    .bind(hash.to_owned())
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn insert<'c>(tx: &mut sqlx::Transaction<'c, Self>, rows: &[Sealed<'_>]) -> Result<()> {
                $insert(tx, rows).await
            }
        }
    };
}

chain_db!(sqlx::Postgres, " FOR UPDATE", super::insert::unnest);
chain_db!(sqlx::Sqlite, "", super::insert::values);

/// One row ready to insert: its values, where it sits in the chain and its hashes.
pub(crate) struct Sealed<'a> {
    pub(super) user_id: &'a str,
    pub(super) fields: Fields<'a>,
    /// `attempted_at` cut to the microsecond: the value hashed is the value stored.
    pub(super) attempted_at: DateTime<Utc>,
    pub(super) seq: i64,
    pub(super) prev_hash: String,
    pub(super) row_hash: String,
}

/// The user references of `entries`, under the head's key (computed apart, as the sealed
/// rows borrow them).
pub(super) fn user_refs(head: &Head, entries: &[Entry<'_>]) -> Vec<String> {
    entries.iter().map(|e| user_ref(&head.user_key, e.user_id())).collect()
}

/// Seals `entries` in order after `head`; `refs` are their [`user_refs`].
pub(super) fn seal<'a>(head: &Head, entries: &'a [Entry<'a>], refs: &'a [String]) -> Vec<Sealed<'a>> {
    let mut seq = head.seq;
    let mut prev = head.hash.clone();
    entries
        .iter()
        .zip(refs)
        .map(|(entry, user_ref)| {
            seq += 1;
            let (attempted_at, fields) = fields(entry, user_ref);
            let row_hash = row_hash(seq, &prev, &fields);
            let prev_hash = std::mem::replace(&mut prev, row_hash.clone());
            Sealed {
                user_id: entry.user_id(),
                fields,
                attempted_at,
                seq,
                prev_hash,
                row_hash,
            }
        })
        .collect()
}

/// What the chain covers of an entry, and its time as stored.
fn fields<'a>(entry: &'a Entry<'a>, user_ref: &'a str) -> (DateTime<Utc>, Fields<'a>) {
    match entry {
        Entry::Attempt(r) => {
            let (at, micros) = to_micros(r.attempted_at);
            (
                at,
                Fields {
                    request_id: r.request_id,
                    user_ref,
                    action: AuditAction::Revoke.as_str(),
                    token_id: Some(r.token_id),
                    provider: Some(&r.provider),
                    token_type: Some(&r.token_type),
                    token_fingerprint: Some(&r.token_fingerprint),
                    attempt: Some(r.attempt),
                    outcome: Some(r.outcome.as_str()),
                    settled: r.settled,
                    http_status: r.http_status,
                    provider_request_id: r.provider_request_id.as_deref(),
                    error: r.error.as_deref(),
                    duration_ms: r.duration_ms,
                    worker: &r.worker,
                    attempted_at: micros,
                    verified: r.verified,
                    verified_by: r.verified_by.as_deref(),
                },
            )
        }
        Entry::Note(n) => {
            let (at, micros) = to_micros(n.attempted_at);
            (
                at,
                Fields {
                    request_id: n.request_id,
                    user_ref,
                    action: n.action.as_str(),
                    token_id: None,
                    provider: None,
                    token_type: None,
                    token_fingerprint: None,
                    attempt: None,
                    outcome: None,
                    settled: false,
                    http_status: None,
                    provider_request_id: None,
                    error: n.error.as_deref(),
                    duration_ms: 0,
                    worker: &n.worker,
                    attempted_at: micros,
                    verified: None,
                    verified_by: None,
                },
            )
        }
    }
}

impl Sealed<'_> {
    /// The head after this row.
    pub(super) fn position(&self) -> (i64, &str) {
        (self.seq, &self.row_hash)
    }
}
