//! The one write of a worker's results. Facts first and unfenced: audit rows, and
//! `revoked_at` (or a row of `offboard_token_settlements`) for tokens whose value was revoked (only while the row still holds that
//! value). Then, fenced, the request's state: it changes only while the worker's claim still
//! holds. A worker that lost its lease still records every call it made; it only learns,
//! through [`StoreError::LeaseLost`], that it must stop.

use super::batch::Write;
use super::rows::AuditNote;
use super::{AuditRow, Fence, Result, Store, StoreError};
use crate::outcome::{Decision, RequestState};
use crate::token::TokenValue;

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

    /// Audit rows and notes to write.
    pub fn len(&self) -> usize {
        self.rows.len() + self.notes.len()
    }

    pub fn append(&mut self, other: Results) {
        self.rows.extend(other.rows);
        self.notes.extend(other.notes);
        self.dead.extend(other.dead);
    }
}

impl Store {
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

    /// One write as a batch of one: the same transaction a group commit runs.
    async fn write_results(
        &self,
        fence: &Fence,
        results: &Results,
        decision: Option<(&str, &Decision)>,
    ) -> Result<RequestState> {
        let write = Write {
            fence,
            results,
            decision,
        };
        let mut answers = self.write_batch(&[write]).await?;
        answers.pop().unwrap_or(Err(StoreError::LeaseLost(fence.request_id())))
    }
}
