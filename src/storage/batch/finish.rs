//! The completions of a group commit moved to their next state together: one fenced
//! `UPDATE … FROM` a list of values per chunk, each row only while its claim still holds
//! (state `running`, same worker, same fence), telling which moved by `RETURNING`.

use super::super::{Fence, Result};
use super::change::Change;
use crate::outcome::RequestState;

/// Most requests in one statement: nine parameters each stays far below both backends'
/// limits on bound parameters.
const CHUNK: usize = 200;

/// Moves each request of `changes` as its change says while its claim holds; returns the
/// ids moved (the others lost their lease). `now` is the backend's clock, `later` the
/// clock plus the milliseconds in column `v_next`.
pub(super) async fn finish<Db>(
    conn: &mut <Db as sqlx::Database>::Connection,
    now: &str,
    later: &str,
    changes: &[(&Fence, Change)],
) -> Result<Vec<i64>>
where
    Db: sqlx::Database + sqlx::database::HasStatementCache,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> i32: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> bool: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> String: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> Option<i64>: sqlx::Encode<'q, Db>,
    for<'q> Option<String>: sqlx::Encode<'q, Db>,
    for<'q> &'q str: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'r> i64: sqlx::Decode<'r, Db>,
    (i64,): for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row>,
    for<'q> <Db as sqlx::Database>::Arguments: sqlx::IntoArguments<Db>,
    for<'e> &'e mut <Db as sqlx::Database>::Connection: sqlx::Executor<'e, Database = Db>,
{
    let mut moved = Vec::with_capacity(changes.len());
    for chunk in changes.chunks(CHUNK) {
        let mut update = sqlx::QueryBuilder::<Db>::new(
            "WITH v (v_id, v_worker, v_fence, v_state, v_next, v_error, v_cleared, v_delta) AS (",
        );
        update.push_values(chunk, |mut row, (fence, change)| {
            row.push_bind(fence.request_id())
                .push_bind(fence.worker().to_owned())
                .push_bind(fence.value())
                .push_bind(change.state.as_str())
                .push_bind(change.next_after_ms)
                .push_bind(change.error.clone())
                .push_bind(change.state == RequestState::Cleared)
                .push_bind(change.attempts_delta);
        });
        update.push(format!(
            ")
            UPDATE offboarding_requests
               SET state = v_state,
                   next_attempt_at = CASE WHEN v_next IS NULL THEN NULL ELSE {later} END,
                   last_error = COALESCE(v_error, last_error),
                   cleared_at = CASE WHEN v_cleared THEN {now} ELSE NULL END,
                   locked_by = NULL, locked_until = NULL,
                   attempts = attempts + v_delta, updated_at = {now}
              FROM v
             WHERE id = v_id AND state = 'running' AND locked_by = v_worker AND fence = v_fence
            RETURNING id",
        ));
        let ids = update
            .build_query_scalar::<i64>()
            .persistent(crate::storage::keep_prepared(chunk.len()))
            .fetch_all(&mut *conn)
            .await?;
        moved.extend(ids);
    }
    Ok(moved)
}
