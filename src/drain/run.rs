//! One claimed request's run: read the user's tokens, revoke the unsettled ones (each at its
//! provider's pace, concurrently), write finished tokens' results as the run goes on, decide
//! where the request goes, and write that in the fenced transaction.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};

use super::commit::Later;
use super::settle::{self, TokenEnd};
use super::{RunEnd, Worker, lease};
use crate::outcome::{Decision, RequestState};
use crate::storage::{AuditAction, AuditNote, ClaimedRequest, Cursor, Results, StoreError, StoredToken, UserTokens};
use crate::telemetry::error_chain;

impl Worker {
    /// Works on one claimed request and logs how it ended. `stop` fires on shutdown or
    /// when the lease is found lost. `first` is its first page of tokens when the claim read
    /// it for the batch ([`Worker::first_pages`]).
    pub(super) async fn process(self, request: ClaimedRequest, first: Option<UserTokens>, stop: lease::Stop) -> RunEnd {
        let fence = request.fence.clone();
        let end = match self.clone().run(request, first, &stop).await {
            Ok((_, Decision::Release)) => RunEnd::Released,
            Ok((_, Decision::Defer { .. })) => RunEnd::Deferred,
            Ok((state, _)) => RunEnd::Written(state),
            Err(StoreError::LeaseLost(_)) => RunEnd::LeaseLost,
            Err(e) => {
                warn!(error = %error_chain(&e), "request left to lease expiry");
                RunEnd::Error
            }
        };
        self.in_flight.finish(&fence);
        match &end {
            RunEnd::Written(state) => {
                self.metrics.record_run(state.as_str());
                info!(state = %state, "request done");
            }
            RunEnd::Released => {
                self.metrics.record_run("released");
                info!(state = %RequestState::Pending, "request done");
            }
            RunEnd::Deferred => {
                self.metrics.record_run("deferred");
                info!(state = %RequestState::Pending, "request deferred: its providers are too busy to wait for");
            }
            RunEnd::LeaseLost => {
                self.metrics.record_lease_lost();
                warn!("lease lost (taken over, retried or cancelled): stopped; calls made were audited");
            }
            RunEnd::Error => {}
        }
        end
    }

    /// The first pages of the requests of a claim's batch, read together; none for a
    /// batch of one, or when the read fails (each run then reads its own, with retries).
    pub(super) async fn first_pages(&self, claimed: &[ClaimedRequest]) -> HashMap<i64, UserTokens> {
        if claimed.len() < 2 {
            return HashMap::new();
        }
        self.store.first_pages(claimed).await.unwrap_or_else(|e| {
            debug!(error = %error_chain(&e), "reading the batch's tokens together failed; each request reads its own");
            HashMap::new()
        })
    }

    /// Reads the user's tokens, revokes the unsettled ones, decides, and writes the result.
    async fn run(
        self,
        request: ClaimedRequest,
        first: Option<UserTokens>,
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
        let run = Arc::new(RequestRun {
            worker: self,
            request,
            now: Utc::now(),
        });
        let (mut results, ends) = run.revoke_all(first, stop).await?;
        let decision = run.decide(&ends);
        let worker = &run.worker;
        if ends.seen == 0 {
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

/// Results a run lets wait for the next progress write, per concurrency slot, while one
/// write is in flight: past it the run waits for that write.
const WAITING_PER_SLOT: usize = 4;

/// How long a finished token's results wait for the run's other tokens before a progress
/// write takes them (a group commit's delay, as PostgreSQL's `commit_delay`). A user whose
/// tokens all answer within it is written once, with the request's final write, instead of
/// once per token finished first: one commit less on every request's way to cleared.
const PROGRESS_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// How a run's tokens ended, kept small: a user with 100,000 tokens is read a page at a
/// time, and only what the decision needs stays.
#[derive(Default)]
struct Ends {
    /// Token rows seen, readable or not.
    seen: usize,
    /// Tokens that did not settle, labelled for the request's reason.
    unsettled: Vec<(String, TokenEnd)>,
    /// How the access tokens that refresh tokens die with ended, by id.
    of_pairs: HashMap<i64, TokenEnd>,
}

impl Ends {
    fn add(&mut self, label: impl FnOnce() -> String, id: i64, end: TokenEnd, pair: bool) {
        if pair {
            self.of_pairs.insert(id, end.clone());
        }
        if !matches!(end, TokenEnd::Settled(_) | TokenEnd::Blocked) {
            self.unsettled.push((label(), end));
        }
    }
}

impl RequestRun {
    /// Revokes every unsettled token, reading the user's tokens a page at a time: tokens
    /// at different providers (and of one user at one provider) go concurrently, at most
    /// `concurrency` at once, each call waiting on its own provider's gate; tokens that die
    /// with a pair are settled after every other. Each finished token's results are written
    /// while others are still in flight or to be read; if that write finds the lease lost,
    /// every token not yet sent stops. Returns what is left to write and how tokens ended.
    /// `first` is the user's whole set of tokens when the claim read it with its batch.
    async fn revoke_all(
        self: &Arc<Self>,
        mut first: Option<UserTokens>,
        stop: &lease::Stop,
    ) -> Result<(Results, Ends), StoreError> {
        let mut pending = Results::default();
        let mut ends = Ends::default();
        // The refresh tokens revoked through their pair, and the access tokens that may be
        // their pairs: only at providers that pair tokens, so a user's other tokens pass.
        let mut paired: Vec<StoredToken> = Vec::new();
        let mut pair_candidates: Vec<StoredToken> = Vec::new();
        let mut candidate_ids: HashSet<i64> = HashSet::new();
        // Labels of the tokens in flight, for the reasons of those that do not settle.
        let mut labels: HashMap<i64, String> = HashMap::new();
        let most = self.worker.settings.concurrency.max(1);
        let mut queue: VecDeque<StoredToken> = VecDeque::new();
        let mut cursor = Some(Cursor::default());
        let mut set = JoinSet::new();
        // Progress writes handed to the committer, oldest first, answers to come.
        let mut writing: VecDeque<Later> = VecDeque::new();
        // Since when the oldest result not yet handed to a write has waited.
        let mut waiting_since: Option<tokio::time::Instant> = None;
        loop {
            while set.len() < most {
                if let Some(token) = queue.pop_front() {
                    labels.insert(token.id, settle::label(&token));
                    let run = Arc::clone(self);
                    let stop = stop.clone();
                    let span = info_span!("token", token_id = token.id, provider = %token.provider, fingerprint = %token.fingerprint());
                    set.spawn(async move { run.revoke_one(&token, &stop).await }.instrument(span));
                    continue;
                }
                let Some(at) = cursor else { break };
                if stop.is_stopped() {
                    // Shutdown or a lost lease: the pages not read are not sent either.
                    ends.unsettled.push(("tokens not read yet".into(), TokenEnd::Stopped));
                    cursor = None;
                    break;
                }
                let (id, user) = (self.request.id, &self.request.user_id);
                let read = match first.take() {
                    // The whole of the user's tokens, read with the claim's batch.
                    Some(page) => Ok((page, None)),
                    None => self.worker.write(|store| store.tokens_page(id, user, at)).await,
                };
                let (page, next) = match read {
                    Ok(read) => read,
                    Err(e) => {
                        // What finished is written before the error ends the run.
                        self.settle_writes(&mut writing, &mut pending, stop, true).await;
                        if !pending.is_empty() {
                            let sent = std::mem::take(&mut pending);
                            if let (Ok(_), sent) = self.worker.commit(&self.request.fence, sent, None).await {
                                self.worker.record_metrics(&sent.rows);
                            }
                        }
                        return Err(e);
                    }
                };
                cursor = next;
                ends.seen += page.tokens.len() + page.bad.len();
                for bad in &page.bad {
                    let result = self.unreadable(bad);
                    ends.add(|| format!("token {}", bad.id), result.token_id, result.end, false);
                    pending.append(result.results);
                }
                for token in page.tokens {
                    if self.may_be_a_pair(&token) {
                        candidate_ids.insert(token.id);
                        pair_candidates.push(token.clone());
                    }
                    if token.is_settled() {
                        continue;
                    }
                    if self.goes_with_pair(&token) {
                        paired.push(token);
                    } else {
                        queue.push_back(token);
                    }
                }
            }
            waiting_since = waiting_since.filter(|_| !pending.is_empty());
            note_waiting(&pending, &mut waiting_since);
            // Results waiting while other tokens are in flight go to a progress write once
            // they have waited `PROGRESS_AFTER`, even if no other token finishes by then
            // (after the write in flight, if one is).
            let due = waiting_since.map(|since| since + PROGRESS_AFTER);
            let joined = match due {
                Some(at) if !set.is_empty() => tokio::select! {
                    joined = set.join_next() => joined,
                    () = tokio::time::sleep_until(at) => {
                        self.settle_writes(&mut writing, &mut pending, stop, true).await;
                        if !pending.is_empty() {
                            self.send_progress(&mut writing, &mut pending).await;
                        }
                        continue;
                    }
                },
                _ => set.join_next().await,
            };
            let Some(joined) = joined else { break };
            match joined {
                Ok(result) => {
                    let token_id = result.token_id;
                    let label = labels.remove(&token_id);
                    let pair = candidate_ids.contains(&token_id);
                    ends.add(
                        || label.unwrap_or_else(|| format!("token {token_id}")),
                        token_id,
                        result.end,
                        pair,
                    );
                    pending.append(result.results);
                    note_waiting(&pending, &mut waiting_since);
                    // Other tokens are still in flight or to be read: write what is
                    // finished once it has waited `PROGRESS_AFTER` for them, so a crash
                    // later loses none of it. The last results wait for the transaction
                    // that sets the request's state.
                    let more = !set.is_empty() || !queue.is_empty() || cursor.is_some() || !paired.is_empty();
                    // Handed to the committer without waiting: the run goes on sending
                    // while it is written. One such write at a time: results finished
                    // meanwhile gather for the next. A database slower than the providers:
                    // past `WAITING_PER_SLOT` results per slot the run waits for the write
                    // in flight before it sends more, so what waits (in memory, and lost
                    // if the process dies) stays bounded by the concurrency, not by the
                    // user's number of tokens.
                    self.settle_writes(&mut writing, &mut pending, stop, false).await;
                    if !writing.is_empty() && pending.len() >= WAITING_PER_SLOT * most {
                        self.settle_writes(&mut writing, &mut pending, stop, true).await;
                    }
                    let waited = waiting_since.is_some_and(|since| since.elapsed() >= PROGRESS_AFTER);
                    let many = pending.len() >= WAITING_PER_SLOT * most;
                    if more && !pending.is_empty() && writing.is_empty() && (waited || many) {
                        self.send_progress(&mut writing, &mut pending).await;
                    }
                }
                Err(e) => warn!(error = %e, "token task failed"),
            }
        }
        // Every progress write answered before the last results go.
        self.settle_writes(&mut writing, &mut pending, stop, true).await;
        let pairs = settle::Pairs::index(&pair_candidates);
        let of_pairs: HashMap<i64, &TokenEnd> = ends.of_pairs.iter().map(|(id, end)| (*id, end)).collect();
        let mut paired_ends = Vec::new();
        for token in &paired {
            let result = self.settle_via_pair(token, &pairs, &of_pairs, stop).await;
            paired_ends.push((settle::label(token), result.end));
            pending.append(result.results);
        }
        for (label, end) in paired_ends {
            ends.add(|| label, 0, end, false);
        }
        Ok((pending, ends))
    }

    fn decide(&self, ends: &Ends) -> Decision {
        let s = &self.worker.settings;
        let limits = settle::Limits {
            attempt: self.request.attempt,
            max_attempts: s.max_attempts,
            retry: &s.retry,
        };
        let labelled = ends.unsettled.iter().map(|(label, end)| (label.clone(), end));
        settle::decide(labelled, &limits, fastrand::f64())
    }
}

/// Starts the wait of results not yet handed to a write, when there are some and none was
/// waiting.
fn note_waiting(pending: &Results, waiting_since: &mut Option<tokio::time::Instant>) {
    if waiting_since.is_none() && !pending.is_empty() {
        *waiting_since = Some(tokio::time::Instant::now());
    }
}

impl RequestRun {
    /// Hands every pending result to a progress write, its answer to come.
    async fn send_progress(&self, writing: &mut VecDeque<Later>, pending: &mut Results) {
        let sent = std::mem::take(pending);
        writing.push_back(self.worker.send(&self.request.fence, sent, None).await);
    }

    /// Takes the answers of the progress writes that have come (all of them, waiting, with
    /// `wait`), in the order sent: rows written either way (facts are not fenced) are
    /// counted; a lost lease stops the sending; after another error the results are kept
    /// for the request's final write.
    async fn settle_writes(
        &self,
        writing: &mut VecDeque<Later>,
        pending: &mut Results,
        stop: &lease::Stop,
        wait: bool,
    ) {
        while let Some(write) = writing.pop_front() {
            let answer = if wait {
                write.answer().await
            } else {
                match write.ready() {
                    Ok(answer) => answer,
                    Err(write) => {
                        writing.push_front(write);
                        return;
                    }
                }
            };
            match answer {
                (Err(e), kept) if !matches!(e, StoreError::LeaseLost(_)) => {
                    warn!(error = %error_chain(&e), "results kept for the request's final write");
                    pending.append(kept);
                }
                (written, sent) => {
                    self.worker.record_metrics(&sent.rows);
                    if written.is_err() {
                        stop.lease_lost();
                    }
                }
            }
        }
    }
}
