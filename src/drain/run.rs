//! One claimed request's run: read the user's tokens, revoke the unsettled ones (each at its
//! provider's pace, concurrently), write finished tokens' results as the run goes on, decide
//! where the request goes, and write that in the fenced transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::{Instrument, info_span, warn};

use super::settle::{self, TokenEnd};
use super::{Worker, lease};
use crate::outcome::{Decision, RequestState};
use crate::storage::{AuditAction, AuditNote, ClaimedRequest, Results, StoreError, StoredToken, UserTokens};
use crate::telemetry::error_chain;

impl Worker {
    /// Reads the user's tokens, revokes the unsettled ones, decides, and writes the result.
    pub(super) async fn run(
        self,
        request: ClaimedRequest,
        stop: &lease::Stop,
    ) -> Result<(RequestState, Decision), StoreError> {
        let max_attempts = self.settings.max_attempts;
        if let Some(decision) = settle::over_budget(request.attempt, max_attempts, request.last_error.as_deref()) {
            let nothing = Results::default();
            let (state, _) = self
                .commit(&request.fence, nothing, Some((&request.user_id, &decision)))
                .await;
            return Ok((state?, decision));
        }
        let tokens = self
            .write(|store| store.tokens_for(request.id, &request.user_id))
            .await?;
        let run = Arc::new(RequestRun {
            worker: self,
            request,
            now: Utc::now(),
        });
        let (mut results, ends) = run.revoke_all(&tokens, stop).await;
        let decision = run.decide(&tokens, &ends);
        let worker = &run.worker;
        if tokens.tokens.is_empty() && tokens.bad.is_empty() {
            results.notes.push(AuditNote {
                request_id: run.request.id,
                user_id: run.request.user_id.clone(),
                action: AuditAction::NoTokens,
                error: Some("the user has no tokens: nothing to revoke".into()),
                worker: worker.settings.id.clone(),
                attempted_at: Utc::now(),
            });
        }
        worker.record_metrics(&results.rows);
        let (state, _) = worker
            .commit(&run.request.fence, results, Some((&run.request.user_id, &decision)))
            .await;
        Ok((state?, decision))
    }
}

/// One claimed request's run, shared by the tasks that revoke its tokens.
pub(super) struct RequestRun {
    pub(super) worker: Worker,
    pub(super) request: ClaimedRequest,
    /// When the run began: the clock the not-revocable policy reads.
    pub(super) now: DateTime<Utc>,
}

impl RequestRun {
    /// Revokes every unsettled token: tokens at different providers (and of one user at one
    /// provider) go concurrently, each call waiting on its own provider's gate; tokens that
    /// die with a pair are settled after it. Each finished token's results are written
    /// while others are still in flight; if that write finds the lease lost, every token not
    /// yet sent stops. Returns what is left to write and how each token ended.
    async fn revoke_all(self: &Arc<Self>, tokens: &UserTokens, stop: &lease::Stop) -> (Results, Vec<(i64, TokenEnd)>) {
        let unsettled = tokens.tokens.iter().filter(|t| !t.is_settled());
        let (paired, direct): (Vec<&StoredToken>, Vec<&StoredToken>) = unsettled.partition(|t| self.goes_with_pair(t));

        let mut pending = Results::default();
        let mut ends = Vec::new();
        for bad in &tokens.bad {
            let result = self.unreadable(bad);
            ends.push((result.token_id, result.end));
            pending.append(result.results);
        }

        let mut set = JoinSet::new();
        for token in direct {
            let run = Arc::clone(self);
            let token = token.clone();
            let stop = stop.clone();
            let span = info_span!("token", token_id = token.id, provider = %token.provider, fingerprint = %token.fingerprint());
            set.spawn(async move { run.revoke_one(&token, &stop).await }.instrument(span));
        }
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(result) => {
                    ends.push((result.token_id, result.end));
                    pending.append(result.results);
                    // Other tokens are still in flight: write what is finished now, so a
                    // crash later loses none of it. The last results wait for the
                    // transaction that sets the request's state.
                    if !set.is_empty() && !pending.is_empty() {
                        let fence = &self.request.fence;
                        let sent = std::mem::take(&mut pending);
                        match self.worker.commit(fence, sent, None).await {
                            (Err(e), kept) if !matches!(e, StoreError::LeaseLost(_)) => {
                                warn!(error = %error_chain(&e), "results kept for the request's final write");
                                pending = kept;
                            }
                            (written, sent) => {
                                // Written either way (facts are not fenced); a lost lease
                                // stops the sending.
                                self.worker.record_metrics(&sent.rows);
                                if written.is_err() {
                                    stop.lease_lost();
                                }
                            }
                        }
                    }
                }
                Err(e) => warn!(error = %e, "token task failed"),
            }
        }
        for token in paired {
            let result = self.settle_via_pair(token, &tokens.tokens, &ends, stop).await;
            ends.push((result.token_id, result.end));
            pending.append(result.results);
        }
        (pending, ends)
    }

    fn decide(&self, tokens: &UserTokens, ends: &[(i64, TokenEnd)]) -> Decision {
        let s = &self.worker.settings;
        let limits = settle::Limits {
            attempt: self.request.attempt,
            max_attempts: s.max_attempts,
            retry: &s.retry,
        };
        let labelled = ends.iter().map(|(id, end)| {
            let label = match tokens.tokens.iter().find(|t| t.id == *id) {
                Some(t) => settle::label(t),
                None => format!("token {id}"),
            };
            (label, end)
        });
        settle::decide(labelled, &limits, fastrand::f64())
    }
}
