//! Many requests' writes of results in one transaction (a group commit). Facts first and
//! unfenced, gathered across the writes: every audit row in multi-row INSERTs, every
//! settlement in one statement per source. Then, per write, the fenced part: a progress
//! write only touches its request while the claim still holds; a completion re-checks a
//! clearance against the user's tokens (locked on PostgreSQL) and moves its request, only
//! while the claim still holds. A write whose claim is gone gets
//! [`StoreError::LeaseLost`]; the others in the batch are not affected by it.

use super::audit::{self, Entry};
use super::requests::millis;
use super::sources;
use super::tokens;
use super::{Fence, Pool, Result, Store, StoreError, postgres, sqlite};
use crate::config::sources::{ID_SPACE, Settlement};
use crate::outcome::{Decision, RequestState, Unsettled};
use crate::storage::Results;
use crate::token::TokenValue;

/// Largest number of tokens in one `revoked_at` update, and of requests in one progress
/// touch.
const CHUNK: usize = 400;

/// One request's write in a batch: results of tokens finished while the run goes on
/// (`decision: None`), or a run's last results with where the request goes.
#[derive(Clone, Copy, Debug)]
pub struct Write<'a> {
    pub fence: &'a Fence,
    pub results: &'a Results,
    /// The user and the decision, for a completion.
    pub decision: Option<(&'a str, &'a Decision)>,
}

impl Store {
    fn lock_tokens(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => postgres::LOCK_TOKENS,
            Pool::Sqlite(_) => sqlite::LOCK_TOKENS,
        }
    }

    /// Writes `writes` in one transaction and answers each in order: the state written
    /// (`Running` for a progress write), or `LeaseLost` for a write whose claim no longer
    /// holds (its rows were written all the same). An `Err` means nothing was written.
    #[tracing::instrument(skip_all, fields(writes = writes.len()), err)]
    pub async fn write_batch(&self, writes: &[Write<'_>]) -> Result<Vec<Result<RequestState>>> {
        let now = self.now_sql();
        let entries: Vec<Entry<'_>> = writes
            .iter()
            .flat_map(|w| {
                let rows = w.results.rows.iter().map(Entry::Attempt);
                rows.chain(w.results.notes.iter().map(Entry::Note))
            })
            .collect();
        let dead: Vec<&(i64, TokenValue)> = writes.iter().flat_map(|w| w.results.dead.iter()).collect();
        let progress: Vec<&Fence> = writes
            .iter()
            .filter(|w| w.decision.is_none())
            .map(|w| w.fence)
            .collect();
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            audit::append_entries(&mut tx, &entries).await?;

            for source in &self.sources.list {
                let c = &source.config;
                let base = c.number * ID_SPACE;
                let mine: Vec<(i64, &TokenValue)> = dead
                    .iter()
                    .filter(|(id, _)| id.div_euclid(ID_SPACE) == c.number)
                    .map(|(id, v)| (id - base, v))
                    .collect();
                let (id, value) = (sources::id_expr(c), sources::value_expr(c, self.sql()));
                let table = c.table.quoted();
                match &c.settlement {
                    // Value-conditional: only while the row still holds the value revoked.
                    Settlement::Column(column) => {
                        let column = column.quoted();
                        for chunk in mine.chunks(CHUNK) {
                            let mut update = sqlx::QueryBuilder::<Db>::new(format!(
                                "UPDATE {table} SET {column} = {now} WHERE {column} IS NULL AND ({id}, {value}) IN (VALUES "
                            ));
                            let mut pairs = update.separated(", ");
                            for (row_id, stored) in chunk {
                                pairs.push("(");
                                pairs.push_bind_unseparated(*row_id);
                                pairs.push_unseparated(", ");
                                pairs.push_bind_unseparated(stored.expose().to_owned());
                                pairs.push_unseparated(")");
                            }
                            update.push(")");
                            update.build().execute(&mut *tx).await?;
                        }
                    }
                    // offboard's own table; the application's is only read.
                    Settlement::Offboard => {
                        for (row_id, stored) in &mine {
                            sqlx::query(sqlx::AssertSqlSafe(format!(
                                "INSERT INTO offboard_token_settlements (source, token_key, value_fingerprint, revoked_at)
                                 SELECT $1, $2, $3, {now}
                                  WHERE EXISTS (SELECT 1 FROM {table} WHERE {id} = $4 AND {value} = $5)
                                 ON CONFLICT DO NOTHING"
                            )))
                            .bind(c.name.clone())
                            .bind(base + row_id)
                            .bind(stored.fingerprint().as_str().to_owned())
                            .bind(*row_id)
                            .bind(stored.expose().to_owned())
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
            }

            // Progress writes: one touch for all, telling which claims still hold.
            let mut held: Vec<i64> = Vec::with_capacity(progress.len());
            for chunk in progress.chunks(CHUNK) {
                let mut update =
                    sqlx::QueryBuilder::<Db>::new(format!("UPDATE offboarding_requests SET updated_at = {now}"));
                super::requests::still_held::<Db>(&mut update, chunk);
                let ids: Vec<i64> = update.build_query_scalar().fetch_all(&mut *tx).await?;
                held.extend(ids);
            }

            let mut answers = Vec::with_capacity(writes.len());
            for write in writes {
                let fence = write.fence;
                let Some((user_id, decision)) = write.decision else {
                    // The rows are facts: kept whether or not the lease still holds.
                    answers.push(if held.contains(&fence.request_id()) {
                        Ok(RequestState::Running)
                    } else {
                        Err(StoreError::LeaseLost(fence.request_id()))
                    });
                    continue;
                };
                let change = match decision {
                    Decision::Cleared { unless } => {
                        let lock = self.lock_tokens();
                        let unsettled =
                            tokens::count_unsettled::<Db>(&mut tx, &self.sources, self.sql(), user_id, lock).await?;
                        Change::cleared_unless(unsettled, unless)
                    }
                    other => Change::of(other),
                };
                let later = self.later_sql("$2");
                let written = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE offboarding_requests
                        SET state = $1,
                            next_attempt_at = CASE WHEN $2 IS NULL THEN NULL ELSE {later} END,
                            last_error = COALESCE($3, last_error),
                            cleared_at = CASE WHEN $4 THEN {now} ELSE NULL END,
                            locked_by = NULL, locked_until = NULL,
                            attempts = attempts + $5, updated_at = {now}
                      WHERE id = $6 AND state = 'running' AND locked_by = $7 AND fence = $8"
                )))
                .bind(change.state.as_str())
                .bind(change.next_after_ms)
                .bind(change.error)
                .bind(change.state == RequestState::Cleared)
                .bind(change.attempts_delta)
                .bind(fence.request_id())
                .bind(fence.worker().to_owned())
                .bind(fence.value())
                .execute(&mut *tx)
                .await?;
                answers.push(if written.rows_affected() == 0 {
                    Err(StoreError::LeaseLost(fence.request_id()))
                } else {
                    Ok(change.state)
                });
            }
            tx.commit().await?;
            Ok(answers)
        })
    }
}

/// The state change a decision comes to.
struct Change {
    state: RequestState,
    next_after_ms: Option<i64>,
    error: Option<String>,
    attempts_delta: i32,
}

impl Change {
    fn to(state: RequestState) -> Change {
        Change {
            state,
            next_after_ms: None,
            error: None,
            attempts_delta: 0,
        }
    }

    /// A `Cleared` decision, given how many of the user's tokens the re-check found
    /// unsettled (inserted, or rotated in place, during the run): cleared only at none.
    fn cleared_unless(unsettled: usize, unless: &Unsettled) -> Change {
        if unsettled == 0 {
            return Change::to(RequestState::Cleared);
        }
        let found = format!("{unsettled} token(s) of the user appeared or stayed unsettled during the run");
        match unless {
            Unsettled::Retry { after, note } => Change {
                next_after_ms: Some(millis(*after)),
                error: Some(format!("{note}: {found}")),
                ..Change::to(RequestState::Pending)
            },
            Unsettled::Fail { note } => Change {
                error: Some(format!("{note}: {found}")),
                ..Change::to(RequestState::Failed)
            },
        }
    }

    /// Any other decision.
    fn of(decision: &Decision) -> Change {
        match decision {
            Decision::Cleared { unless } => Change::cleared_unless(usize::MAX, unless),
            Decision::Retry { after, reason } => Change {
                next_after_ms: Some(millis(*after)),
                error: Some(reason.clone()),
                ..Change::to(RequestState::Pending)
            },
            Decision::Failed { reason } => Change {
                error: Some(reason.clone()),
                ..Change::to(RequestState::Failed)
            },
            Decision::Release => Change {
                attempts_delta: -1,
                ..Change::to(RequestState::Pending)
            },
            Decision::Defer { after, reason } => Change {
                next_after_ms: Some(millis(*after)),
                error: Some(reason.clone()),
                attempts_delta: -1,
                ..Change::to(RequestState::Pending)
            },
        }
    }
}
