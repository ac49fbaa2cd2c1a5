//! What `offboard evidence` reads: one user's requests and every audit row written for
//! them (attempts and notes alike), oldest first, with the hash-chain columns of each row
//! when the database has them.
//!
//! Rows are found by the user's request ids rather than by the audit's `user_id`, so rows
//! whose user id was later pseudonymized still belong to the request they were written for.
//! Values are read as stored (actions and outcomes as text): evidence shows what the table
//! holds, and a value this build does not know is shown rather than refused.

use chrono::{DateTime, Utc};

use super::{Pool, RequestRow, Result, Store};

/// One user's requests (oldest first) and their audit rows (by id).
#[derive(Debug)]
pub(crate) struct UserRecord {
    pub(crate) requests: Vec<RequestRow>,
    pub(crate) rows: Vec<EvidenceRow>,
    /// Whether `revocation_audit` has all three chain columns.
    pub(crate) chained: bool,
}

/// One row of `revocation_audit`, as stored. Token columns are empty on notes.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EvidenceRow {
    pub(crate) id: i64,
    pub(crate) request_id: i64,
    pub(crate) action: String,
    pub(crate) token_id: Option<i64>,
    pub(crate) provider: Option<String>,
    pub(crate) token_type: Option<String>,
    pub(crate) token_fingerprint: Option<String>,
    pub(crate) attempt: Option<i32>,
    pub(crate) outcome: Option<String>,
    pub(crate) settled: bool,
    pub(crate) http_status: Option<i32>,
    pub(crate) provider_request_id: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) duration_ms: i64,
    pub(crate) worker: String,
    pub(crate) attempted_at: DateTime<Utc>,
    pub(crate) verified: Option<bool>,
    pub(crate) verified_by: Option<String>,
    pub(crate) chain_seq: Option<i64>,
    pub(crate) prev_hash: Option<String>,
    pub(crate) row_hash: Option<String>,
}

impl Store {
    /// The user's requests and their audit rows; no requests means the user is unknown.
    pub(crate) async fn user_record(&self, user_id: &str) -> Result<UserRecord> {
        let mut requests = self.requests_for_user(user_id).await?;
        requests.reverse();
        let chain = self.chain_select().await?;
        let sql = format!(
            "SELECT id, request_id, action, token_id, provider, token_type, token_fingerprint, attempt,
                    outcome, settled, http_status, provider_request_id, error, duration_ms, worker,
                    attempted_at, verified, verified_by,
                    {} AS chain_seq, {} AS prev_hash, {} AS row_hash
               FROM revocation_audit
              WHERE request_id IN (SELECT id FROM offboarding_requests WHERE user_id = $1)
              ORDER BY id",
            chain.seq, chain.prev, chain.row
        );
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<Db, EvidenceRow>(sqlx::AssertSqlSafe(sql))
                .bind(user_id.to_owned())
                .fetch_all(pool)
                .await?
        });
        Ok(UserRecord {
            requests,
            rows,
            chained: chain.complete,
        })
    }

    /// How to read the chain columns on this database. They come with the hash-chained
    /// audit (migration 0007); a database without them reads NULLs, so evidence works on
    /// either. Asked once per evidence; the only place that knows the columns may be absent.
    async fn chain_select(&self) -> Result<ChainSelect> {
        Ok(match &self.pool {
            Pool::Postgres(pool) => {
                let found = sqlx::query_as(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns
                      WHERE table_schema = current_schema() AND table_name = 'revocation_audit'
                        AND column_name IN ('chain_seq', 'prev_hash', 'row_hash')",
                )
                .fetch_all(pool)
                .await?;
                ChainSelect::new(&found, false)
            }
            Pool::Sqlite(pool) => sqlite_chain_select(pool).await?,
        })
    }
}

async fn sqlite_chain_select(pool: &sqlx::SqlitePool) -> Result<ChainSelect> {
    let found = sqlx::query_as(
        "SELECT name, type FROM pragma_table_info('revocation_audit')
          WHERE name IN ('chain_seq', 'prev_hash', 'row_hash')",
    )
    .fetch_all(pool)
    .await?;
    Ok(ChainSelect::new(&found, true))
}

/// SQL expressions giving `chain_seq` as a number and the hashes as lowercase hex text,
/// whether they are stored as text or bytes, or `NULL` where a column is absent.
#[derive(Debug, PartialEq, Eq)]
struct ChainSelect {
    seq: String,
    prev: String,
    row: String,
    complete: bool,
}

impl ChainSelect {
    /// From the chain columns the table has, as (name, declared type).
    fn new(found: &[(String, String)], sqlite: bool) -> ChainSelect {
        let type_of = |name: &str| found.iter().find(|(n, _)| n == name).map(|(_, t)| t.to_lowercase());
        let hash = |name: &str| match type_of(name) {
            None => "CAST(NULL AS TEXT)".to_owned(),
            Some(_) if sqlite => {
                format!("CASE WHEN typeof({name}) = 'blob' THEN lower(hex({name})) ELSE CAST({name} AS TEXT) END")
            }
            Some(t) if t == "bytea" => format!("encode({name}, 'hex')"),
            Some(_) => format!("CAST({name} AS TEXT)"),
        };
        ChainSelect {
            seq: match type_of("chain_seq") {
                None => "CAST(NULL AS BIGINT)".to_owned(),
                Some(_) => "CAST(chain_seq AS BIGINT)".to_owned(),
            },
            prev: hash("prev_hash"),
            row: hash("row_hash"),
            complete: ["chain_seq", "prev_hash", "row_hash"]
                .iter()
                .all(|n| type_of(n).is_some()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect()
    }

    #[test]
    fn absent_chain_columns_read_as_nulls() {
        let select = ChainSelect::new(&[], false);
        assert_eq!(select.seq, "CAST(NULL AS BIGINT)");
        assert_eq!(select.prev, "CAST(NULL AS TEXT)");
        assert!(!select.complete);
        let partial = ChainSelect::new(&cols(&[("chain_seq", "bigint")]), false);
        assert!(!partial.complete);
        assert_eq!(partial.row, "CAST(NULL AS TEXT)");
    }

    #[test]
    fn postgres_bytes_are_read_as_hex_and_text_as_it_is() {
        let select = ChainSelect::new(
            &cols(&[("chain_seq", "bigint"), ("prev_hash", "bytea"), ("row_hash", "text")]),
            false,
        );
        assert!(select.complete);
        assert_eq!(select.prev, "encode(prev_hash, 'hex')");
        assert_eq!(select.row, "CAST(row_hash AS TEXT)");
    }

    /// The SQLite expressions, run: a hash stored as bytes and one stored as text both come
    /// back as lowercase hex text, and a missing column as NULL.
    #[tokio::test]
    async fn sqlite_reads_hashes_stored_as_bytes_or_text() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query(
            "CREATE TABLE revocation_audit (id INTEGER PRIMARY KEY, chain_seq INTEGER, prev_hash BLOB, row_hash TEXT)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO revocation_audit VALUES (1, 7, x'00ABff', 'c0ffee')")
            .execute(&pool)
            .await
            .unwrap();
        let select = sqlite_chain_select(&pool).await.unwrap();
        assert!(select.complete);
        let sql = format!(
            "SELECT {} , {}, {} FROM revocation_audit",
            select.seq, select.prev, select.row
        );
        let got: (Option<i64>, Option<String>, Option<String>) =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap();
        assert_eq!(got, (Some(7), Some("00abff".into()), Some("c0ffee".into())));

        let none = ChainSelect::new(&[], true);
        let sql = format!("SELECT {}, {} FROM (SELECT 1)", none.seq, none.row);
        let got: (Option<i64>, Option<String>) =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap();
        assert_eq!(got, (None, None));
    }
}
