//! Reading the chain back: the head, and a walk over the rows in `chain_seq` order that
//! streams them (one row in memory at a time, any size of table) inside one read-only
//! snapshot, so the head and the rows read agree while workers keep appending.

use futures_util::TryStreamExt;
use sqlx::{FromRow, Row};

use super::walk::{Anchor, ChainFault, ChainHead, ChainRow, FaultKind, ROW_COLUMNS, Walk};
use crate::storage::{Pool, Result, Store};

/// What a walk found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChainReport {
    /// Chained rows verified by this walk.
    pub rows: u64,
    /// The last row verified (where the next incremental walk starts).
    pub last: ChainHead,
    /// The head as stored.
    pub head: ChainHead,
    /// Rows written before the chain began (not covered by it); counted only by a walk
    /// from the start.
    pub prechain_rows: i64,
    /// The first bad place, if any.
    pub fault: Option<ChainFault>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.fault.is_none()
    }
}

/// The head row as read.
type HeadRow = (i64, String, String, i64, i64);

const HEAD_SQL: &str =
    "SELECT head_seq, head_hash, user_key, prechain_rows, prechain_max_id FROM offboard_audit_chain WHERE id = 1";

impl Store {
    /// A read-only snapshot: every statement of the transaction sees the same commits.
    fn begin_snapshot(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            // A deferred transaction reads one snapshot of the WAL from its first read on.
            Pool::Sqlite(_) => "BEGIN",
        }
    }

    /// The chain's head: the last row's position and hash.
    pub async fn audit_chain_head(&self) -> Result<ChainHead> {
        on_pool!(self, |pool| {
            let (seq, hash): (i64, String) =
                sqlx::query_as("SELECT head_seq, head_hash FROM offboard_audit_chain WHERE id = 1")
                    .fetch_one(pool)
                    .await?;
            Ok(ChainHead { seq, hash })
        })
    }

    /// Walks the chain from `from` (the start when `None`: then the rows written before
    /// the chain are checked too) to the head, recomputing every hash, and reports the
    /// first bad place. `anchor`, when given, must be a position of the chain.
    #[tracing::instrument(skip_all, fields(from = from.map(|f| f.seq)), err)]
    pub async fn verify_audit_chain(&self, from: Option<&ChainHead>, anchor: Option<&Anchor>) -> Result<ChainReport> {
        let start = from.cloned().unwrap_or_else(ChainHead::genesis);
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(self.begin_snapshot()).await?;
            let stored: Option<HeadRow> = sqlx::query_as(HEAD_SQL).fetch_optional(&mut *tx).await?;
            let Some((head_seq, head_hash, key, prechain_rows, prechain_max_id)) = stored else {
                return Ok(ChainReport {
                    rows: 0,
                    last: start.clone(),
                    head: ChainHead::genesis(),
                    prechain_rows: 0,
                    fault: Some(ChainFault {
                        kind: FaultKind::Head,
                        seq: None,
                        id: None,
                        message: "the chain's head (offboard_audit_chain) was deleted".into(),
                    }),
                });
            };
            let head = ChainHead {
                seq: head_seq,
                hash: head_hash,
            };
            let mut walk = Walk::new(&key, &head, start.clone(), anchor);
            {
                let sql = format!("SELECT {ROW_COLUMNS} FROM revocation_audit WHERE chain_seq > $1 ORDER BY chain_seq");
                let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(start.seq).fetch(&mut *tx);
                while let Some(row) = rows.try_next().await? {
                    let id: i64 = row.try_get("id")?;
                    let seq: i64 = row.try_get("chain_seq")?;
                    let parsed = ChainRow::from_row(&row).map_err(|e| e.to_string());
                    if !walk.step(id, seq, parsed) {
                        break;
                    }
                }
            }
            walk.finish();
            let mut fault = walk.fault.take();
            if fault.is_none() && from.is_none() {
                fault = prechain_fault::<Db>(&mut tx, prechain_rows, prechain_max_id).await?;
            }
            tx.rollback().await?;
            Ok(ChainReport {
                rows: walk.rows,
                last: walk.last.clone(),
                head,
                prechain_rows: if from.is_none() { prechain_rows } else { 0 },
                fault,
            })
        })
    }
}

/// Rows without a chain position: only those written before the chain began may be, and
/// as many as there were then.
async fn prechain_fault<Db>(
    tx: &mut sqlx::Transaction<'_, Db>,
    prechain_rows: i64,
    prechain_max_id: i64,
) -> Result<Option<ChainFault>>
where
    Db: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db> + sqlx::Decode<'q, Db>,
    for<'q> Option<i64>: sqlx::Decode<'q, Db>,
    for<'q> <Db as sqlx::Database>::Arguments: sqlx::IntoArguments<Db>,
    for<'e> &'e mut <Db as sqlx::Database>::Connection: sqlx::Executor<'e, Database = Db>,
    usize: sqlx::ColumnIndex<<Db as sqlx::Database>::Row>,
{
    let stray: Option<i64> =
        sqlx::query_scalar("SELECT min(id) FROM revocation_audit WHERE chain_seq IS NULL AND id > $1")
            .bind(prechain_max_id)
            .fetch_one(&mut **tx)
            .await?;
    if let Some(id) = stray {
        return Ok(Some(ChainFault {
            kind: FaultKind::Unchained,
            seq: None,
            id: Some(id),
            message: format!(
                "row id {id} has no chain position but was written after the chain began (rows up to id {prechain_max_id} predate it): inserted outside the chain"
            ),
        }));
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM revocation_audit WHERE chain_seq IS NULL")
        .fetch_one(&mut **tx)
        .await?;
    Ok((count != prechain_rows).then(|| ChainFault {
        kind: FaultKind::Unchained,
        seq: None,
        id: None,
        message: format!(
            "{count} rows written before the chain began are left, where there were {prechain_rows}: rows were deleted"
        ),
    }))
}
