//! Revoking one token at its provider: the plan (call, not revocable, or through its pair),
//! in-process retries with backoff while the provider's gate paces every call, and one
//! audit row per answer. What the answers mean is decided in [`super::settle`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use backon::Retryable;
use chrono::Utc;
use tokio::sync::SemaphorePermit;
use tracing::debug;

use super::lease::Stop;
use super::run::RequestRun;
use super::settle::{self, PairedEnd, TokenEnd};
use crate::outcome::{Outcome, Verdict};
use crate::provider::Provider;
use crate::provider::dialect::Plan;
use crate::provider::gate::{Busy, Paused};
use crate::storage::{AuditRow, BadToken, Results, StoredToken};
use crate::token::{TokenType, TokenValue};

/// How one token's run ended, with what it has to write.
#[derive(Debug)]
pub(super) struct TokenResult {
    pub token_id: i64,
    pub end: TokenEnd,
    pub results: Results,
}

/// How a token is revoked: itself, or through a fresh access token its refresh gives
/// (with the paired access token, for endpoints that want it).
enum Via {
    Direct,
    Refresh(Option<TokenValue>),
}

/// Waits for one of the provider's call slots, then for its turn (its rate limit), unless
/// shutdown comes first; the slot is held until the call is answered. A provider paused
/// for longer than is worth waiting here is not called at all; the request comes back when
/// the pause is over. A provider whose backlog (its pause and the callers ahead) is longer
/// than `within` (`max_queue_wait`) is not waited for either, nor one whose calls in flight
/// all take longer than that: the token is deferred, so a slow, paused or rate-limited
/// provider holds up only its own tokens and its requests do not sit in slots other
/// providers' tokens could use.
async fn wait_turn<'p>(provider: &'p Provider, stop: &Stop, within: Duration) -> Result<SemaphorePermit<'p>, TryError> {
    let backlog = provider.gate.backlog();
    if backlog > within {
        return Err(TryError::Deferred(backlog));
    }
    tokio::select! {
        biased;
        _ = stop.stopped() => Err(TryError::Stopped),
        slot = provider.gate.slot(within) => {
            let slot = slot.map_err(|Busy(waited)| TryError::Deferred(waited))?;
            wait_rate(provider, stop, within).await?;
            Ok(slot)
        }
    }
}

/// Waits for the provider's turn (its rate limit) only: for the second call of a caller
/// that holds a call slot already.
async fn wait_rate(provider: &Provider, stop: &Stop, within: Duration) -> Result<(), TryError> {
    tokio::select! {
        biased;
        _ = stop.stopped() => Err(TryError::Stopped),
        ready = provider.gate.ready_within(within) => {
            ready.map_err(|Paused(left)| TryError::Paused(left))
        }
    }
}

/// Why an in-process try did not give a final answer.
enum TryError {
    Transient(Verdict),
    /// The provider said to slow down (429, or 503 with `Retry-After`), for no longer than
    /// is waited out here: the gate has slowed and paused, so the token tries again through
    /// it without spending its backoff budget (see [`throttled_tries`]).
    Throttled(Verdict),
    Stopped,
    /// The provider is paused for longer than the in-process wait allows.
    Paused(Duration),
    /// The provider's backlog is longer than `worker.max_queue_wait`.
    Deferred(Duration),
}

impl RequestRun {
    /// Revokes one token that is revoked on its own (not through a pair).
    pub(super) async fn revoke_one(&self, token: &StoredToken, stop: &Stop) -> TokenResult {
        let Some(provider) = self.worker.providers.get(&token.provider).cloned() else {
            let reason = format!(
                "provider '{}' is not configured (add [providers.{}] to the config)",
                token.provider, token.provider
            );
            return self.immediate(token, Outcome::Failed, false, reason);
        };
        let Some(token_type) = token.token_type() else {
            let reason = format!(
                "token_type '{}' is neither access_token nor refresh_token",
                token.token_type_raw
            );
            return self.immediate(token, Outcome::Failed, false, reason);
        };
        match provider.plan(token_type) {
            Plan::NotRevocable(reason) => self.not_revocable(token, reason),
            Plan::ViaPairedAccessToken => {
                unreachable!("paired tokens are settled after their pair")
            }
            Plan::Call => {
                self.call_with_retries(&provider, token, token_type, Via::Direct, stop)
                    .await
            }
            Plan::RefreshThenRevoke => {
                self.call_with_retries(&provider, token, token_type, Via::Refresh(None), stop)
                    .await
            }
        }
    }

    /// Whether this token may be the pair a refresh token is revoked through: an access
    /// token with a grant, at a provider whose refresh tokens die with their pair.
    pub(super) fn may_be_a_pair(&self, token: &StoredToken) -> bool {
        let provider = self.worker.providers.get(&token.provider);
        token.grant_ref.is_some()
            && token.token_type() == Some(TokenType::AccessToken)
            && provider.is_some_and(|p| p.plan(TokenType::RefreshToken) == Plan::ViaPairedAccessToken)
    }

    /// Whether this token is revoked through its paired access token, settled after it.
    pub(super) fn goes_with_pair(&self, token: &StoredToken) -> bool {
        let provider = self.worker.providers.get(&token.provider);
        matches!((provider, token.token_type()), (Some(p), Some(ty)) if p.plan(ty) == Plan::ViaPairedAccessToken)
    }

    async fn call_with_retries(
        &self,
        provider: &Arc<Provider>,
        token: &StoredToken,
        token_type: TokenType,
        via: Via,
        stop: &Stop,
    ) -> TokenResult {
        let retry = &self.worker.settings.retry;
        let policy = self.worker.settings.policy;
        let rows = Mutex::new(Vec::new());
        let attempt = AtomicI32::new(token.prior_attempts);
        let record = |verdict: &Verdict, settled: bool, duration: Duration| {
            let number = attempt.fetch_add(1, Ordering::Relaxed) + 1;
            debug!(outcome = %verdict.outcome, status = ?verdict.http_status, "attempt");
            rows.lock()
                .expect("rows lock")
                .push(self.row(token, number, verdict, settled, duration));
        };
        let max_queue_wait = self.worker.settings.max_queue_wait;
        let one_try = || async {
            let _slot = wait_turn(provider, stop, max_queue_wait).await?;
            let (verdict, duration) = match &via {
                Via::Direct => {
                    let call = provider.revoke_for(&token.value, token_type, &token.vars).await;
                    (call.verdict, call.duration)
                }
                Via::Refresh(pair) => {
                    let step = provider.refresh(&token.value, pair.as_ref()).await;
                    match step.fresh {
                        // The refresh call failed, or said the refresh token is dead: that
                        // answer is the attempt's.
                        None => (step.verdict, step.duration),
                        Some(fresh) => {
                            record(&step.verdict, false, step.duration);
                            // The fresh access token is revoked now or never (it is not
                            // stored): no deferral between the two calls.
                            wait_rate(provider, stop, Duration::MAX).await?;
                            let call = provider.revoke_for(&fresh, TokenType::AccessToken, &token.vars).await;
                            (settle::after_refresh(call.verdict), call.duration)
                        }
                    }
                }
            };
            let settled = settle::settles(verdict.outcome, token.expires_at, policy, self.now);
            record(&verdict, settled, duration);
            match verdict.outcome {
                Outcome::Transient if retry.is_throttle(&verdict) => Err(TryError::Throttled(verdict)),
                Outcome::Transient | Outcome::StillActive => Err(TryError::Transient(verdict)),
                _ => Ok(verdict),
            }
        };
        let mut throttles = 0;
        let throttled_since = std::cell::OnceCell::new();
        let result = loop {
            let result = (&one_try)
                .retry(retry.backoff())
                .sleep(tokio::time::sleep)
                .when(|e| matches!(e, TryError::Transient(_)))
                .adjust(|e, scheduled| {
                    let retry_after = match e {
                        TryError::Transient(v) => v.retry_after,
                        TryError::Throttled(_) | TryError::Stopped | TryError::Paused(_) | TryError::Deferred(_) => {
                            None
                        }
                    };
                    retry.next_delay(scheduled, retry_after, fastrand::f64())
                })
                .await;
            // Waiting out throttles holds the request's slot: at most `retry_after_cap` in all.
            let waited = throttled_since.get_or_init(tokio::time::Instant::now).elapsed();
            match result {
                Err(TryError::Throttled(_))
                    if throttles < retry.throttled_tries() && waited <= retry.retry_after_cap =>
                {
                    throttles += 1
                }
                Err(TryError::Throttled(verdict)) => break Err(TryError::Transient(verdict)),
                other => break other,
            }
        };
        // A token never sent in this run spends no attempt when its provider is too busy
        // or paused to wait for; one that was answered (a 429, say) and then found the
        // backlog too long is a transient end like any other, so a provider that keeps
        // throttling still fails its requests once their attempts are used up.
        let sent = !rows.lock().expect("rows lock").is_empty();
        let end = match result {
            Ok(verdict) => settle::end_of(&verdict, token.expires_at, policy, self.now),
            Err(TryError::Deferred(wait) | TryError::Paused(wait)) if !sent => TokenEnd::Deferred { not_before: wait },
            Err(TryError::Deferred(wait)) => TokenEnd::Transient {
                reason: format!(
                    "provider busy for {}s (its pause and the calls queued ahead)",
                    wait.as_secs()
                ),
                not_before: Some(wait),
            },
            Err(TryError::Transient(verdict) | TryError::Throttled(verdict)) => TokenEnd::Transient {
                reason: verdict.error.unwrap_or_else(|| "transient error".into()),
                not_before: provider.gate.pause_left(),
            },
            Err(TryError::Stopped) => TokenEnd::Stopped,
            Err(TryError::Paused(left)) => TokenEnd::Transient {
                reason: format!("provider paused for {}s after asking for quiet", left.as_secs()),
                not_before: Some(left),
            },
        };
        let dead = matches!(end, TokenEnd::Settled(o) if o.token_is_dead());
        TokenResult {
            token_id: token.id,
            end,
            results: Results {
                rows: rows.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()),
                notes: Vec::new(),
                dead: dead.then(|| (token.id, token.stored.clone())).into_iter().collect(),
            },
        }
    }

    /// A refresh token of a pair whose access token gave no evidence of its death (it had
    /// expired): revoked through a fresh access token where the provider has
    /// refresh-then-revoke, else not revocable with `reason`.
    pub(super) async fn revoke_via_refresh_or(
        &self,
        token: &StoredToken,
        pair: Option<&StoredToken>,
        reason: &str,
        stop: &Stop,
    ) -> TokenResult {
        let provider = self.worker.providers.get(&token.provider).cloned();
        match (provider, token.token_type()) {
            (Some(provider), Some(token_type)) if provider.refreshes() => {
                let via = Via::Refresh(pair.map(|p| p.value.clone()));
                self.call_with_retries(&provider, token, token_type, via, stop).await
            }
            _ => self.not_revocable(token, reason),
        }
    }

    /// A OneLogin refresh token dies with its paired access token: settled when the pair
    /// is dead (now or before), not revocable when it has no pair, and otherwise left for
    /// the pair's own outcome to decide.
    pub(super) async fn settle_via_pair(
        &self,
        token: &StoredToken,
        pairs: &settle::Pairs<'_>,
        ends: &HashMap<i64, &TokenEnd>,
        stop: &Stop,
    ) -> TokenResult {
        let pair = pairs.of(token);
        let pair_end = pair.and_then(|p| ends.get(&p.id).copied());
        match settle::paired_end(pair, pair_end) {
            PairedEnd::Unpaired => {
                let provider = self.worker.providers.get(&token.provider);
                let reason = provider.and_then(|p| p.unpaired_reason()).unwrap_or(
                    "this refresh token is revoked only through its paired access token (grant_ref), and it has no pair",
                );
                self.not_revocable(token, reason)
            }
            PairedEnd::DiedWith { pair_id } => {
                let note = format!("revoked with its paired access token {pair_id}");
                let mut result = self.immediate(token, Outcome::Revoked, true, note);
                result.results.dead.push((token.id, token.stored.clone()));
                result
            }
            PairedEnd::NoEvidence { pair_id } => {
                let reason = format!(
                    "its paired access token {pair_id} was not revoked by the provider (it had expired, or was \
                     revoked elsewhere), so nothing shows this refresh token died"
                );
                self.revoke_via_refresh_or(token, pair, &reason, stop).await
            }
            PairedEnd::Waiting => TokenResult {
                token_id: token.id,
                end: TokenEnd::Blocked,
                results: Results::default(),
            },
        }
    }

    /// A token row that cannot be read: the request fails naming the row and column, with
    /// one audit row so the auditor sees it too.
    pub(super) fn unreadable(&self, bad: &BadToken) -> TokenResult {
        let reason = bad.describe();
        let row = AuditRow {
            request_id: self.request.id,
            user_id: self.request.user_id.clone(),
            token_id: bad.id,
            provider: String::new(),
            token_type: String::new(),
            token_fingerprint: bad
                .fingerprint
                .as_ref()
                .map_or_else(|| "unreadable".to_owned(), |fp| fp.as_str().to_owned()),
            attempt: 1,
            outcome: Outcome::Failed,
            settled: false,
            http_status: None,
            provider_request_id: None,
            error: Some(reason.clone()),
            duration_ms: 0,
            worker: self.worker.settings.id.clone(),
            attempted_at: Utc::now(),
            verified: None,
            verified_by: None,
        };
        TokenResult {
            token_id: bad.id,
            end: TokenEnd::Failed(reason),
            results: Results {
                rows: vec![row],
                ..Results::default()
            },
        }
    }

    fn not_revocable(&self, token: &StoredToken, reason: &str) -> TokenResult {
        let policy = self.worker.settings.policy;
        let settled = settle::settles(Outcome::NotRevocable, token.expires_at, policy, self.now);
        let note = format!("{reason}; {}", settle::policy_note(token.expires_at, policy, settled));
        self.immediate(token, Outcome::NotRevocable, settled, note)
    }

    /// A result decided without calling the provider, with its one audit row.
    fn immediate(&self, token: &StoredToken, outcome: Outcome, settled: bool, note: String) -> TokenResult {
        let end = settle::immediate_end(outcome, settled, &note);
        let verdict = Verdict::new(outcome).with_error(note);
        let row = self.row(token, token.prior_attempts + 1, &verdict, settled, Duration::ZERO);
        TokenResult {
            token_id: token.id,
            end,
            results: Results {
                rows: vec![row],
                ..Results::default()
            },
        }
    }

    fn row(&self, token: &StoredToken, attempt: i32, verdict: &Verdict, settled: bool, duration: Duration) -> AuditRow {
        AuditRow {
            request_id: self.request.id,
            user_id: self.request.user_id.clone(),
            token_id: token.id,
            provider: token.provider.clone(),
            token_type: token.token_type_raw.clone(),
            token_fingerprint: token.fingerprint().as_str().to_owned(),
            attempt,
            outcome: verdict.outcome,
            settled,
            http_status: verdict.http_status.map(i32::from),
            provider_request_id: verdict.provider_request_id.clone(),
            error: verdict.error.clone(),
            duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
            worker: self.worker.settings.id.clone(),
            attempted_at: Utc::now(),
            verified: verdict.verification.as_ref().map(|v| v.dead),
            verified_by: verdict.verification.as_ref().map(|v| v.by.clone()),
        }
    }
}
