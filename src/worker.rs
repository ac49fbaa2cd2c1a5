//! The drain: claim due requests, revoke each user's unsettled tokens at their providers,
//! and write the outcome and the request's next state in one fenced transaction.
//!
//! Shape of one drain: claim up to `batch_size` due requests while fewer than `concurrency`
//! are in flight; each request works on its tokens concurrently, every token waiting on its
//! own provider's gate, so a slow or paused provider holds up only its own tokens. A lease
//! renewer extends every lease this worker holds every third of a lease. The drain ends when
//! nothing is due and nothing is in flight, or when `shutdown` fires: then it stops
//! claiming, lets in-flight requests release themselves, and after `shutdown_grace` abandons
//! what is left to lease expiry.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use backon::Retryable;
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::outcome::{Decision, NotRevocablePolicy, Outcome, RequestState, Verdict};
use crate::provider::dialect::{ONELOGIN_UNPAIRED_REFRESH, Plan};
use crate::provider::{Provider, Providers};
use crate::retry::RetryPolicy;
use crate::storage::{AuditRow, ClaimedRequest, Store, StoreError, StoredToken};
use crate::token::TokenType;

/// Longest `last_error` kept on a request.
const MAX_REASON_LEN: usize = 1000;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub id: String,
    pub lease: Duration,
    pub concurrency: usize,
    pub batch_size: u32,
    pub max_attempts: i32,
    pub shutdown_grace: Duration,
    pub retry: RetryPolicy,
    pub not_revocable: NotRevocablePolicy,
    pub not_revocable_within: Duration,
}

impl WorkerSettings {
    pub fn from_config(config: &Config) -> WorkerSettings {
        let w = &config.worker;
        WorkerSettings {
            id: w.id.clone().unwrap_or_else(default_worker_id),
            lease: w.lease.0,
            concurrency: w.concurrency.usize(),
            batch_size: w.batch_size.get(),
            max_attempts: i32::try_from(w.max_attempts.get()).unwrap_or(i32::MAX),
            shutdown_grace: w.shutdown_grace.0,
            retry: RetryPolicy::from(&config.retry),
            not_revocable: config.policy.not_revocable,
            not_revocable_within: config.policy.not_revocable_within.0,
        }
    }
}

/// `host:pid:random`, unique per process even when a host restarts a worker with the same pid.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

/// What one drain did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainReport {
    pub claimed: u64,
    pub cleared: u64,
    pub failed: u64,
    pub retrying: u64,
    pub released: u64,
    pub lease_lost: u64,
    pub errors: u64,
}

impl DrainReport {
    fn count(&mut self, result: &Result<RequestState, StoreError>, released: bool) {
        match result {
            Ok(RequestState::Cleared) => self.cleared += 1,
            Ok(RequestState::Failed) => self.failed += 1,
            Ok(RequestState::Pending) if released => self.released += 1,
            Ok(_) => self.retrying += 1,
            Err(StoreError::LeaseLost(_)) => self.lease_lost += 1,
            Err(_) => self.errors += 1,
        }
    }
}

#[derive(Clone)]
pub struct Worker {
    store: Store,
    providers: Providers,
    settings: Arc<WorkerSettings>,
    metrics: Arc<Metrics>,
}

impl Worker {
    pub fn new(store: Store, providers: Providers, settings: WorkerSettings) -> Worker {
        Worker {
            store,
            providers,
            settings: Arc::new(settings),
            metrics: Arc::default(),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn record_metrics(&self, rows: &[AuditRow]) {
        for row in rows {
            let duration = Duration::from_millis(u64::try_from(row.duration_ms).unwrap_or(0));
            self.metrics
                .record_attempt(&row.provider, row.outcome.as_str(), row.http_status, duration);
        }
    }

    pub fn settings(&self) -> &WorkerSettings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Claims and works on due requests until none is due and none is in flight, or until
    /// `shutdown` fires. A database error on claiming ends the drain with that error;
    /// errors on single requests are logged and counted, and their leases expire.
    pub async fn drain(&self, shutdown: &CancellationToken) -> Result<DrainReport, StoreError> {
        let mut report = DrainReport::default();
        let mut in_flight: JoinSet<(Result<RequestState, StoreError>, bool)> = JoinSet::new();
        let renewer_stop = CancellationToken::new();
        let renewer = tokio::spawn(self.clone().renew_leases(renewer_stop.clone()));
        // If this future is dropped mid-drain, the renewer must stop too, or it would keep
        // the abandoned requests' leases alive forever and no worker could take them over.
        let _stop_renewer_on_drop = renewer_stop.clone().drop_guard();

        let outcome = loop {
            if shutdown.is_cancelled() {
                break Ok(());
            }
            let free = self.settings.concurrency.saturating_sub(in_flight.len());
            if free == 0 {
                collect(&mut in_flight, &mut report).await;
                continue;
            }
            let limit = u32::try_from(free).unwrap_or(u32::MAX).min(self.settings.batch_size);
            let claimed = match self
                .store
                .claim_due(&self.settings.id, limit, self.settings.lease, Utc::now())
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => break Err(e),
            };
            if claimed.is_empty() {
                if in_flight.is_empty() {
                    break Ok(());
                }
                // Something may become due when a running request finishes (a zero backoff).
                collect(&mut in_flight, &mut report).await;
                continue;
            }
            report.claimed += claimed.len() as u64;
            for request in claimed {
                let worker = self.clone();
                let shutdown = shutdown.clone();
                let span = info_span!("request", request_id = request.id, user_id = %request.user_id, attempt = request.attempt);
                in_flight.spawn(async move { worker.process(request, shutdown).await }.instrument(span));
            }
        };

        if shutdown.is_cancelled() && !in_flight.is_empty() {
            info!(in_flight = in_flight.len(), grace = ?self.settings.shutdown_grace, "shutting down: waiting for in-flight requests");
            let deadline = tokio::time::sleep(self.settings.shutdown_grace);
            tokio::pin!(deadline);
            while !in_flight.is_empty() {
                tokio::select! {
                    _ = &mut deadline => {
                        warn!(abandoned = in_flight.len(), "shutdown grace over: abandoning requests to lease expiry");
                        in_flight.abort_all();
                        break;
                    }
                    _ = collect(&mut in_flight, &mut report) => {}
                }
            }
        }
        while !in_flight.is_empty() {
            collect(&mut in_flight, &mut report).await;
        }
        renewer_stop.cancel();
        let _ = renewer.await;
        outcome.map(|()| report)
    }

    async fn renew_leases(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.lease / 3);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self
                .store
                .renew_leases(&self.settings.id, self.settings.lease, Utc::now())
                .await
            {
                Ok(n) => debug!(renewed = n, "leases renewed"),
                Err(e) => warn!(error = %error_chain(&e), "cannot renew leases"),
            }
        }
    }

    /// Works on one claimed request; returns the state written and whether it was released.
    async fn process(
        &self,
        request: ClaimedRequest,
        shutdown: CancellationToken,
    ) -> (Result<RequestState, StoreError>, bool) {
        let result = self.process_inner(&request, &shutdown).await;
        let released = matches!(result, Ok((_, true)));
        let result = result.map(|(state, _)| state);
        match &result {
            Ok(state) => {
                self.metrics
                    .record_run(if released { "released" } else { state.as_str() });
                info!(state = %state, "request done");
            }
            Err(StoreError::LeaseLost(_)) => {
                self.metrics.record_lease_lost();
                warn!("lease lost to another worker; results discarded");
            }
            Err(e) => warn!(error = %error_chain(e), "request left to lease expiry"),
        }
        (result, released)
    }

    async fn process_inner(
        &self,
        request: &ClaimedRequest,
        shutdown: &CancellationToken,
    ) -> Result<(RequestState, bool), StoreError> {
        if request.attempt > self.settings.max_attempts {
            let reason = format!(
                "attempts used up ({} of {}): earlier workers lost their lease before finishing",
                request.attempt - 1,
                self.settings.max_attempts
            );
            let state = self
                .store
                .complete(
                    &request.fence,
                    &request.user_id,
                    &[],
                    &Decision::Failed { reason },
                    Utc::now(),
                )
                .await?;
            return Ok((state, false));
        }
        let tokens = self.store.tokens_for(request.id, &request.user_id).await?;
        let run = Run {
            worker: self,
            request,
            tokens: &tokens,
            now: Utc::now(),
        };
        let results = run.revoke_all(shutdown).await;
        let decision = run.decide(&results);
        // Rows not already written as progress.
        let rows: Vec<AuditRow> = results.into_iter().flat_map(|r| r.rows).collect();
        self.record_metrics(&rows);
        let released = decision == Decision::Release;
        let state = self
            .store
            .complete(&request.fence, &request.user_id, &rows, &decision, Utc::now())
            .await?;
        Ok((state, released))
    }
}

async fn collect(in_flight: &mut JoinSet<(Result<RequestState, StoreError>, bool)>, report: &mut DrainReport) {
    match in_flight.join_next().await {
        Some(Ok((result, released))) => report.count(&result, released),
        Some(Err(e)) if e.is_cancelled() => {}
        Some(Err(e)) => {
            warn!(error = %e, "request task panicked; its lease will expire");
            report.errors += 1;
        }
        None => {}
    }
}

/// How one token ended in this run.
#[derive(Debug, Clone)]
enum TokenEnd {
    Settled(Outcome),
    /// Permanent: the request fails with this reason.
    Failed(String),
    /// Worth another claim; `not_before` is a provider's pause still to run.
    Transient {
        reason: String,
        not_before: Option<Duration>,
    },
    /// Shutdown stopped it before it was sent.
    Stopped,
    /// Waits on another token (a OneLogin refresh token whose access token did not die).
    Blocked,
}

#[derive(Debug)]
struct TokenResult {
    token_id: i64,
    end: TokenEnd,
    rows: Vec<AuditRow>,
}

/// One request's run: its tokens and everything needed to build audit rows.
struct Run<'a> {
    worker: &'a Worker,
    request: &'a ClaimedRequest,
    tokens: &'a [StoredToken],
    now: DateTime<Utc>,
}

impl Run<'_> {
    async fn revoke_all(&self, shutdown: &CancellationToken) -> Vec<TokenResult> {
        let unsettled: Vec<&StoredToken> = self.tokens.iter().filter(|t| !t.is_settled()).collect();
        let (paired, direct): (Vec<&StoredToken>, Vec<&StoredToken>) = unsettled.into_iter().partition(|t| {
            let provider = self.worker.providers.get(&t.provider);
            matches!((provider, t.token_type()), (Some(p), Some(ty)) if p.plan(ty) == Plan::ViaPairedAccessToken)
        });

        // Tokens at different providers (and of one user at one provider) go concurrently;
        // each call waits on its own provider's gate.
        let mut set = JoinSet::new();
        for token in direct {
            let run = RunOwned::from(self);
            let token = token.clone();
            let shutdown = shutdown.clone();
            let span = info_span!("token", token_id = token.id, provider = %token.provider, fingerprint = %token.fingerprint());
            set.spawn(async move { run.revoke_one(&token, &shutdown).await }.instrument(span));
        }
        let mut results = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(mut result) => {
                    // Other tokens are still in flight: write this one's rows now, so a crash
                    // later loses none of them. The last token's rows wait for the
                    // transaction that sets the request's state.
                    if !set.is_empty() && !result.rows.is_empty() {
                        let store = &self.worker.store;
                        match store
                            .record_progress(&self.request.fence, &result.rows, Utc::now())
                            .await
                        {
                            Ok(()) => self.worker.record_metrics(&std::mem::take(&mut result.rows)),
                            Err(e) => warn!(error = %error_chain(&e), "audit rows kept for the request's final write"),
                        }
                    }
                    results.push(result);
                }
                Err(e) => warn!(error = %e, "token task failed"),
            }
        }
        for token in paired {
            results.push(RunOwned::from(self).settle_via_pair(token, self.tokens, &results));
        }
        results
    }

    /// Where the request goes: cleared when every token settled, failed on a permanent
    /// error or spent attempts, pending again for transient errors, released on shutdown.
    fn decide(&self, results: &[TokenResult]) -> Decision {
        let mut failures = Vec::new();
        let mut transient = Vec::new();
        let mut not_before: Option<Duration> = None;
        let mut stopped = false;
        for result in results {
            let label = self.label(result.token_id);
            match &result.end {
                TokenEnd::Settled(_) | TokenEnd::Blocked => {}
                TokenEnd::Failed(reason) => failures.push(format!("{label}: {reason}")),
                TokenEnd::Transient {
                    reason,
                    not_before: wait,
                } => {
                    transient.push(format!("{label}: {reason}"));
                    not_before = not_before.max(*wait);
                }
                TokenEnd::Stopped => stopped = true,
            }
        }
        if !failures.is_empty() {
            return Decision::Failed {
                reason: clip(failures.join("; ")),
            };
        }
        if stopped {
            return Decision::Release;
        }
        if transient.is_empty() {
            // Blocked tokens only wait on a pair that failed or went transient, and those
            // were caught above; `complete` re-checks every token in the database anyway.
            return Decision::Cleared;
        }
        let s = &self.worker.settings;
        if self.request.attempt >= s.max_attempts {
            return Decision::Failed {
                reason: clip(format!(
                    "attempts used up ({} of {}): {}",
                    self.request.attempt,
                    s.max_attempts,
                    transient.join("; ")
                )),
            };
        }
        let delay = s.retry.durable_delay(self.request.attempt, fastrand::f64(), not_before);
        Decision::Retry {
            at: self.now + delay,
            reason: clip(format!(
                "attempt {} of {}: {}",
                self.request.attempt,
                s.max_attempts,
                transient.join("; ")
            )),
        }
    }

    fn label(&self, token_id: i64) -> String {
        match self.tokens.iter().find(|t| t.id == token_id) {
            Some(t) => format!("token {} ({} {})", t.id, t.provider, t.token_type_raw),
            None => format!("token {token_id}"),
        }
    }
}

/// The parts of a [`Run`] a spawned token task needs, owned.
#[derive(Clone)]
struct RunOwned {
    providers: Providers,
    settings: Arc<WorkerSettings>,
    request_id: i64,
    user_id: String,
    now: DateTime<Utc>,
}

impl From<&Run<'_>> for RunOwned {
    fn from(run: &Run<'_>) -> Self {
        RunOwned {
            providers: run.worker.providers.clone(),
            settings: run.worker.settings.clone(),
            request_id: run.request.id,
            user_id: run.request.user_id.clone(),
            now: run.now,
        }
    }
}

/// Why an in-process try did not give a final answer.
enum TryError {
    Transient(Verdict),
    Stopped,
}

impl RunOwned {
    async fn revoke_one(&self, token: &StoredToken, shutdown: &CancellationToken) -> TokenResult {
        let Some(provider) = self.providers.get(&token.provider).cloned() else {
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
            Plan::Call => self.call_with_retries(&provider, token, token_type, shutdown).await,
        }
    }

    async fn call_with_retries(
        &self,
        provider: &Arc<Provider>,
        token: &StoredToken,
        token_type: TokenType,
        shutdown: &CancellationToken,
    ) -> TokenResult {
        let retry = &self.settings.retry;
        // A provider paused for longer than we would wait here is not called at all; the
        // request comes back when the pause is over.
        if let Some(left) = provider.gate.pause_left().filter(|left| *left > retry.retry_after_cap) {
            return TokenResult {
                token_id: token.id,
                end: TokenEnd::Transient {
                    reason: format!("provider paused for {}s after asking for quiet", left.as_secs()),
                    not_before: Some(left),
                },
                rows: Vec::new(),
            };
        }
        let rows = Mutex::new(Vec::new());
        let attempt = AtomicI32::new(token.prior_attempts);
        let one_try = || async {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(TryError::Stopped),
                _ = provider.gate.ready() => {}
            }
            let call = provider.revoke(&token.value, token_type).await;
            let number = attempt.fetch_add(1, Ordering::Relaxed) + 1;
            let verdict = call.verdict;
            let settled = self.settles(verdict.outcome, token);
            debug!(outcome = %verdict.outcome, status = ?verdict.http_status, "attempt");
            rows.lock()
                .expect("rows lock")
                .push(self.row(token, number, &verdict, settled, call.duration));
            match verdict.outcome {
                Outcome::Transient => Err(TryError::Transient(verdict)),
                _ => Ok(verdict),
            }
        };
        let result = one_try
            .retry(retry.backoff())
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, TryError::Transient(_)))
            .adjust(|e, scheduled| {
                let retry_after = match e {
                    TryError::Transient(v) => v.retry_after,
                    TryError::Stopped => None,
                };
                retry.next_delay(scheduled, retry_after, fastrand::f64())
            })
            .await;
        let end = match result {
            Ok(verdict) => self.end_of(verdict, token),
            Err(TryError::Transient(verdict)) => TokenEnd::Transient {
                reason: verdict.error.unwrap_or_else(|| "transient error".into()),
                not_before: provider.gate.pause_left(),
            },
            Err(TryError::Stopped) => TokenEnd::Stopped,
        };
        TokenResult {
            token_id: token.id,
            end,
            rows: rows.into_inner().expect("rows lock"),
        }
    }

    /// A OneLogin refresh token dies with its paired access token: settled when the pair
    /// is dead (now or before), not revocable when it has no pair, and otherwise left for
    /// the pair's own outcome to decide.
    fn settle_via_pair(&self, token: &StoredToken, all: &[StoredToken], results: &[TokenResult]) -> TokenResult {
        let pair = token.grant_ref.as_ref().and_then(|grant| {
            all.iter().find(|t| {
                t.id != token.id
                    && t.provider == token.provider
                    && t.token_type() == Some(TokenType::AccessToken)
                    && t.grant_ref.as_ref() == Some(grant)
            })
        });
        let Some(pair) = pair else {
            return self.not_revocable(token, ONELOGIN_UNPAIRED_REFRESH);
        };
        let pair_dead = pair.revoked_at.is_some()
            || results
                .iter()
                .any(|r| r.token_id == pair.id && matches!(r.end, TokenEnd::Settled(o) if o.token_is_dead()));
        if pair_dead {
            let note = format!("revoked with its paired access token {}", pair.id);
            self.immediate(token, Outcome::Revoked, true, note)
        } else {
            TokenResult {
                token_id: token.id,
                end: TokenEnd::Blocked,
                rows: Vec::new(),
            }
        }
    }

    fn not_revocable(&self, token: &StoredToken, reason: &str) -> TokenResult {
        let settled = self.settles(Outcome::NotRevocable, token);
        let note = format!("{reason}; {}", self.policy_note(token, settled));
        self.immediate(token, Outcome::NotRevocable, settled, note)
    }

    fn policy_note(&self, token: &StoredToken, settled: bool) -> String {
        let s = &self.settings;
        let expiry = match token.expires_at {
            Some(at) => format!("expires {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            None => "no expiry recorded".to_owned(),
        };
        let within = humantime::format_duration(s.not_revocable_within);
        match (s.not_revocable, settled) {
            (NotRevocablePolicy::Settle, _) => {
                format!("{expiry}; settled by policy not_revocable = settle")
            }
            (NotRevocablePolicy::Block, _) => {
                format!("{expiry}; not settled: policy not_revocable = block")
            }
            (NotRevocablePolicy::Expiring, true) => {
                format!("{expiry}, within {within}; settled by policy")
            }
            (NotRevocablePolicy::Expiring, false) => {
                format!("{expiry}, not within {within}; not settled (policy not_revocable = expiring)")
            }
        }
    }

    /// Whether an outcome settles this token under the configured policy.
    fn settles(&self, outcome: Outcome, token: &StoredToken) -> bool {
        match outcome {
            Outcome::Revoked | Outcome::AlreadyInvalid => true,
            Outcome::Transient | Outcome::Failed => false,
            Outcome::NotRevocable => match self.settings.not_revocable {
                NotRevocablePolicy::Settle => true,
                NotRevocablePolicy::Block => false,
                NotRevocablePolicy::Expiring => token
                    .expires_at
                    .is_some_and(|at| at <= self.now + self.settings.not_revocable_within),
            },
        }
    }

    fn end_of(&self, verdict: Verdict, token: &StoredToken) -> TokenEnd {
        let reason = || verdict.error.clone().unwrap_or_else(|| verdict.outcome.to_string());
        match verdict.outcome {
            Outcome::Revoked | Outcome::AlreadyInvalid => TokenEnd::Settled(verdict.outcome),
            Outcome::NotRevocable if self.settles(Outcome::NotRevocable, token) => {
                TokenEnd::Settled(Outcome::NotRevocable)
            }
            Outcome::NotRevocable => TokenEnd::Failed(format!(
                "not revocable ({}); {}",
                reason(),
                self.policy_note(token, false)
            )),
            Outcome::Failed => TokenEnd::Failed(reason()),
            Outcome::Transient => TokenEnd::Transient {
                reason: reason(),
                not_before: None,
            },
        }
    }

    /// A result decided without calling the provider, with its one audit row.
    fn immediate(&self, token: &StoredToken, outcome: Outcome, settled: bool, note: String) -> TokenResult {
        let verdict = Verdict::new(outcome).with_error(note.clone());
        let end = match (outcome, settled) {
            (_, true) => TokenEnd::Settled(outcome),
            (Outcome::NotRevocable, false) => TokenEnd::Failed(format!("not revocable: {note}")),
            _ => TokenEnd::Failed(note),
        };
        let row = self.row(token, token.prior_attempts + 1, &verdict, settled, Duration::ZERO);
        TokenResult {
            token_id: token.id,
            end,
            rows: vec![row],
        }
    }

    fn row(&self, token: &StoredToken, attempt: i32, verdict: &Verdict, settled: bool, duration: Duration) -> AuditRow {
        AuditRow {
            request_id: self.request_id,
            user_id: self.user_id.clone(),
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
            worker: self.settings.id.clone(),
            attempted_at: Utc::now(),
        }
    }
}

fn clip(mut text: String) -> String {
    if text.len() > MAX_REASON_LEN {
        let mut end = MAX_REASON_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// An error and its causes, `: `-joined, for one log field.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
