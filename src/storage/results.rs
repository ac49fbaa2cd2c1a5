//! The one fenced write of a worker's results: audit rows, `revoked_at` on dead tokens, and,
//! at the end of a run, the request's next state, all in one transaction that applies only
//! while the worker's fence still holds.

use chrono::{DateTime, Utc};

use super::{AuditRow, Fence, Result, Store, StoreError, audit};
use crate::outcome::{Decision, RequestState};

/// Largest number of token ids in one `revoked_at` update.
const TOKEN_CHUNK: usize = 500;

impl Store {
    /// Writes a run's audit rows, marks dead tokens `revoked_at`, and moves the request to
    /// where `decision` says, all in one transaction and only while `fence` holds. A
    /// `Cleared` decision is re-checked against the database inside the transaction: if any
    /// token of the user is still unsettled (say, one inserted during the run), the request
    /// goes back to `pending` instead. Returns the state written.
    #[tracing::instrument(skip(self, rows), fields(rows = rows.len()), err)]
    pub async fn complete(
        &self,
        fence: &Fence,
        user_id: &str,
        rows: &[AuditRow],
        decision: &Decision,
        now: DateTime<Utc>,
    ) -> Result<RequestState> {
        self.write_results(fence, rows, Some((user_id, decision)), now).await
    }

    /// Writes audit rows (and `revoked_at`) of tokens finished while the run goes on, under
    /// the same fence, leaving the request `running`. A worker that dies later loses only
    /// the calls still in flight, and the worker that takes over does not send these tokens
    /// again.
    #[tracing::instrument(skip(self, rows), fields(rows = rows.len()), err)]
    pub(crate) async fn record_progress(&self, fence: &Fence, rows: &[AuditRow], now: DateTime<Utc>) -> Result<()> {
        self.write_results(fence, rows, None, now).await.map(|_| ())
    }

    /// The one fenced write of results: rows, `revoked_at`, and, with a decision (and the
    /// user whose tokens a `Cleared` decision is checked against), the state.
    async fn write_results(
        &self,
        fence: &Fence,
        rows: &[AuditRow],
        decision: Option<(&str, &Decision)>,
        now: DateTime<Utc>,
    ) -> Result<RequestState> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            // Fence first: this also takes the row lock on PostgreSQL.
            let held = sqlx::query(
                "UPDATE offboarding_requests SET updated_at = $1
                  WHERE id = $2 AND state = 'running' AND locked_by = $3 AND attempts = $4",
            )
            .bind(now)
            .bind(fence.request_id())
            .bind(fence.worker().to_owned())
            .bind(fence.attempt())
            .execute(&mut *tx)
            .await?;
            if held.rows_affected() == 0 {
                tx.rollback().await?;
                return Err(StoreError::LeaseLost(fence.request_id()));
            }

            audit::append(&mut tx, rows).await?;

            let dead: Vec<i64> = rows
                .iter()
                .filter(|r| r.outcome.token_is_dead())
                .map(|r| r.token_id)
                .collect();
            for chunk in dead.chunks(TOKEN_CHUNK) {
                let mut update = sqlx::QueryBuilder::<Db>::new("UPDATE oauth_tokens SET revoked_at = ");
                update.push_bind(now).push(" WHERE revoked_at IS NULL AND id IN (");
                let mut ids = update.separated(", ");
                for id in chunk {
                    ids.push_bind(*id);
                }
                update.push(")");
                update.build().execute(&mut *tx).await?;
            }

            let Some((user_id, decision)) = decision else {
                tx.commit().await?;
                return Ok(RequestState::Running);
            };
            let (state, next_attempt_at, error, attempts_delta) = match decision {
                Decision::Cleared => {
                    let unsettled: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM oauth_tokens t
                          WHERE t.user_id = $1 AND t.revoked_at IS NULL
                            AND NOT EXISTS (SELECT 1 FROM revocation_audit a
                                             WHERE a.request_id = $2 AND a.token_id = t.id AND a.settled)",
                    )
                    .bind(user_id.to_owned())
                    .bind(fence.request_id())
                    .fetch_one(&mut *tx)
                    .await?;
                    if unsettled == 0 {
                        (RequestState::Cleared, None, None, 0)
                    } else {
                        let why = format!(
                            "{unsettled} token(s) of the user appeared or stayed unsettled during the run; running again"
                        );
                        (RequestState::Pending, Some(now), Some(why), 0)
                    }
                }
                Decision::Retry { at, reason } => (RequestState::Pending, Some(*at), Some(reason.clone()), 0),
                Decision::Failed { reason } => (RequestState::Failed, None, Some(reason.clone()), 0),
                Decision::Release => (RequestState::Pending, None, None, -1),
            };
            let cleared_at = (state == RequestState::Cleared).then_some(now);
            sqlx::query(
                "UPDATE offboarding_requests
                    SET state = $1, next_attempt_at = $2, last_error = COALESCE($3, last_error),
                        cleared_at = $4, locked_by = NULL, locked_until = NULL,
                        attempts = attempts + $5, updated_at = $6
                  WHERE id = $7",
            )
            .bind(state.as_str())
            .bind(next_attempt_at)
            .bind(error)
            .bind(cleared_at)
            .bind(attempts_delta)
            .bind(now)
            .bind(fence.request_id())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(state)
        })
    }
}
