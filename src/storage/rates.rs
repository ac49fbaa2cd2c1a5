//! Rate shares and the adaptive rates shared by the workers of one PostgreSQL database
//! (`migrations/postgres/0005_rate_shares.sql`). One statement per renewal does everything
//! for all providers at once: renew this worker's share rows, delete other workers' expired
//! ones, merge this worker's adaptive rates into the shared ones, and read back per provider
//! the live members, how long this worker has been one, and the shared rate. No call to a
//! provider ever waits on the database: the gates are retuned from the answer.
//!
//! SQLite has no coordination (one process is its normal case): these return `None` there.

use std::time::Duration;

use super::{Pool, Result, Store};

/// What this worker says about one provider at a renewal.
#[derive(Debug, Clone)]
pub(crate) struct MyPace {
    pub(crate) provider: String,
    pub(crate) rate: f64,
    pub(crate) ceiling: f64,
    /// Whether this worker lowered the rate since its last renewal.
    pub(crate) decreased: bool,
    /// The drain's first renewal: this worker's rate may be stale (it was idle, or is a new
    /// process at the configured rate), so it adopts the shared rate without raising it.
    pub(crate) fresh: bool,
}

/// What the database says back about one provider.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ProviderShare {
    pub(crate) provider: String,
    /// Live members, this worker included.
    pub(crate) members: i64,
    /// Seconds since this worker joined (its row was made, or remade after it expired).
    pub(crate) age: f64,
    pub(crate) rate: f64,
    pub(crate) ceiling: f64,
    /// Seconds since any worker's last decrease, if any.
    pub(crate) calm: Option<f64>,
}

/// One renewal. A worker's own expired row is remade with a fresh `joined_at` (the others
/// counted it out, so it must wait for them again), never deleted in the same statement (a
/// row may change only once per statement). While a decrease is younger than `guard`, no
/// worker's higher rate overrides it: each has a renewal to adopt it first; nor does the
/// rate of a worker renewing for the first time in its drain (marked by an `updated_at` of
/// `-infinity` in the row it proposes).
const RENEW_SQL: &str = "
WITH mine AS (
    SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[], $4::bool[], $8::bool[])
        AS m(provider, rate, ceiling, decreased, fresh)
), shares AS (
    INSERT INTO offboard_rate_shares AS s (provider, worker, joined_at, lease_until)
    SELECT provider, $5, now(), now() + $6::bigint * interval '1 millisecond' FROM mine
    ON CONFLICT (provider, worker) DO UPDATE
       SET lease_until = excluded.lease_until,
           joined_at = CASE WHEN s.lease_until < now() THEN now() ELSE s.joined_at END
    RETURNING provider, joined_at
), expired AS (
    DELETE FROM offboard_rate_shares WHERE lease_until < now() AND worker <> $5
), pacing AS (
    INSERT INTO offboard_provider_pacing AS p (provider, rate_per_sec, ceiling, updated_at, decreased_at)
    SELECT provider, rate, ceiling, CASE WHEN fresh THEN '-infinity' ELSE now() END,
           CASE WHEN decreased THEN now() END
      FROM mine
    ON CONFLICT (provider) DO UPDATE
       SET rate_per_sec = CASE
               WHEN excluded.decreased_at IS NOT NULL THEN LEAST(p.rate_per_sec, excluded.rate_per_sec)
               WHEN excluded.updated_at = '-infinity' THEN p.rate_per_sec
               WHEN p.decreased_at > now() - $7::bigint * interval '1 millisecond' THEN p.rate_per_sec
               ELSE GREATEST(p.rate_per_sec, excluded.rate_per_sec)
           END,
           ceiling = CASE WHEN excluded.decreased_at IS NOT NULL THEN excluded.ceiling ELSE p.ceiling END,
           decreased_at = GREATEST(p.decreased_at, excluded.decreased_at),
           updated_at = now()
    RETURNING provider, rate_per_sec, ceiling, decreased_at
)
SELECT s.provider,
       1 + (SELECT count(*) FROM offboard_rate_shares o
             WHERE o.provider = s.provider AND o.worker <> $5 AND o.lease_until >= now()) AS members,
       extract(epoch FROM now() - s.joined_at)::float8 AS age,
       p.rate_per_sec AS rate,
       p.ceiling,
       extract(epoch FROM now() - p.decreased_at)::float8 AS calm
  FROM shares s JOIN pacing p USING (provider)
";

/// The advisory lock renewals take turns under (an arbitrary key, offboard's own).
const RENEWAL_LOCK: i64 = 0x0ffb_0a2d_5a2e;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Renews this worker's shares of `mine`'s providers for `lease`, and merges its rates
    /// into the shared ones (see [`RENEW_SQL`]). `None` on SQLite.
    pub(crate) async fn renew_rate_shares(
        &self,
        worker: &str,
        mine: &[MyPace],
        lease: Duration,
        guard: Duration,
    ) -> Result<Option<Vec<ProviderShare>>> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(None);
        };
        // Sorted, so concurrent renewals lock the shared rows in one order.
        let mut mine = mine.to_vec();
        mine.sort_by(|a, b| a.provider.cmp(&b.provider));
        // Renewals take turns: a statement sees only what was committed when it began, so
        // two workers joining at the same moment would each count itself alone and take
        // the whole rate (seen as 38 to 57 calls in a second from three workers at 30/s,
        // burst 5). Under the lock, the second sees the first and waits its turn as a
        // newcomer. One short transaction per worker per renewal.
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(RENEWAL_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query_as::<_, ProviderShare>(RENEW_SQL)
            .bind(mine.iter().map(|m| m.provider.clone()).collect::<Vec<_>>())
            .bind(mine.iter().map(|m| m.rate).collect::<Vec<_>>())
            .bind(mine.iter().map(|m| m.ceiling).collect::<Vec<_>>())
            .bind(mine.iter().map(|m| m.decreased).collect::<Vec<_>>())
            .bind(worker)
            .bind(millis(lease))
            .bind(millis(guard))
            .bind(mine.iter().map(|m| m.fresh).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(rows))
    }

    /// Gives this worker's shares back (its drain ended). Nothing on SQLite.
    pub(crate) async fn leave_rate_shares(&self, worker: &str) -> Result<()> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query("DELETE FROM offboard_rate_shares WHERE worker = $1")
                .bind(worker)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// The live members of each provider's shares, for tests and operators.
    pub async fn rate_share_members(&self) -> Result<Vec<(String, String)>> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(Vec::new());
        };
        Ok(sqlx::query_as(
            "SELECT provider, worker FROM offboard_rate_shares WHERE lease_until >= now() ORDER BY provider, worker",
        )
        .fetch_all(pool)
        .await?)
    }
}
