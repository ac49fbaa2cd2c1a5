//! The one write of a worker's results. Facts first and unfenced: audit rows, and
//! `revoked_at` (or a row of `offboard_token_settlements`) for tokens whose value was revoked (only while the row still holds that
//! value). Then, fenced, the request's state: it changes only while the worker's claim still
//! holds. A worker that lost its lease still records every call it made; it only learns,
//! through [`StoreError::LeaseLost`], that it must stop.

use super::requests::millis;
use super::rows::AuditNote;
use super::sources;
use super::tokens;
use super::{AuditRow, Fence, Pool, Result, Store, StoreError, postgres, sqlite};
use crate::config::sources::{ID_SPACE, Settlement};
use crate::outcome::{Decision, RequestState, Unsettled};
use crate::token::TokenValue;

/// Largest number of tokens in one `revoked_at` update.
const TOKEN_CHUNK: usize = 400;

/// What a run (or part of one) has to write.
#[derive(Clone, Debug, Default)]
pub struct Results {
    pub rows: Vec<AuditRow>,
    pub notes: Vec<AuditNote>,
    /// Tokens whose value a provider declared dead: `(token id, the value revoked)`.
    pub dead: Vec<(i64, TokenValue)>,
}

impl Results {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.notes.is_empty() && self.dead.is_empty()
    }

    pub fn append(&mut self, other: Results) {
        self.rows.extend(other.rows);
        self.notes.extend(other.notes);
        self.dead.extend(other.dead);
    }
}

impl Store {
    fn lock_tokens(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => postgres::LOCK_TOKENS,
            Pool::Sqlite(_) => sqlite::LOCK_TOKENS,
        }
    }

    /// Writes a run's results and moves the request where `decision` says. A `Cleared`
    /// decision is re-checked inside the transaction against every token of the user and
    /// the value each holds now: if any is unsettled (inserted, or rotated in place, during
    /// the run), the request goes where `unless` says instead. Returns the state written.
    #[tracing::instrument(skip_all, fields(request_id = fence.request_id(), rows = results.rows.len()), err)]
    pub async fn complete(
        &self,
        fence: &Fence,
        user_id: &str,
        results: &Results,
        decision: &Decision,
    ) -> Result<RequestState> {
        self.write_results(fence, results, Some((user_id, decision))).await
    }

    /// Writes the results of tokens finished while the run goes on, leaving the request
    /// `running`. A worker that dies later loses only the calls still in flight, and the
    /// worker that takes over does not send these tokens again. `LeaseLost` tells the
    /// caller to stop; the rows were written all the same.
    #[tracing::instrument(skip_all, fields(request_id = fence.request_id(), rows = results.rows.len()), err)]
    pub async fn record_progress(&self, fence: &Fence, results: &Results) -> Result<()> {
        self.write_results(fence, results, None).await.map(|_| ())
    }

    async fn write_results(
        &self,
        fence: &Fence,
        results: &Results,
        decision: Option<(&str, &Decision)>,
    ) -> Result<RequestState> {
        let now = self.now_sql();
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            super::audit::append(&mut tx, &results.rows, &results.notes).await?;

            for source in &self.sources.list {
                let c = &source.config;
                let base = c.number * ID_SPACE;
                let mine: Vec<(i64, &TokenValue)> = results
                    .dead
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
                        for chunk in mine.chunks(TOKEN_CHUNK) {
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

            let Some((user_id, decision)) = decision else {
                let held = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE offboarding_requests SET updated_at = {now}
                      WHERE id = $1 AND state = 'running' AND locked_by = $2 AND fence = $3"
                )))
                .bind(fence.request_id())
                .bind(fence.worker().to_owned())
                .bind(fence.value())
                .execute(&mut *tx)
                .await?;
                // The rows are facts: kept whether or not the lease still holds.
                tx.commit().await?;
                return if held.rows_affected() == 0 {
                    Err(StoreError::LeaseLost(fence.request_id()))
                } else {
                    Ok(RequestState::Running)
                };
            };

            let change = match decision {
                Decision::Cleared { unless } => {
                    let lock = self.lock_tokens();
                    let unsettled =
                        tokens::count_unsettled::<Db>(&mut tx, &self.sources, self.sql(), user_id, lock).await?;
                    if unsettled == 0 {
                        Change::to(RequestState::Cleared)
                    } else {
                        let found =
                            format!("{unsettled} token(s) of the user appeared or stayed unsettled during the run");
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
                }
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
            tx.commit().await?;
            if written.rows_affected() == 0 {
                return Err(StoreError::LeaseLost(fence.request_id()));
            }
            Ok(change.state)
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
}
