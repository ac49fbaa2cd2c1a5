//! Is any request due? One read, no lock taken, for `offboard run`'s idle poll on a
//! database that cannot notify (SQLite): the claim itself is a write transaction, too dear
//! to run several times a second for nothing.

use super::{Pool, Result, Store, postgres, sqlite};

impl Store {
    /// Whether a claim would find a request now: pending and due, or running with its lease
    /// run out (the claim's own conditions).
    pub(crate) async fn any_due(&self) -> Result<bool> {
        let now = match self.pool {
            Pool::Postgres(_) => postgres::NOW,
            Pool::Sqlite(_) => sqlite::NOW,
        };
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM offboarding_requests
                WHERE (state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= {now}))
                   OR (state = 'running' AND locked_until < {now}))"
        );
        on_pool!(self, |pool| {
            let due: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await?;
            Ok(due)
        })
    }
}
