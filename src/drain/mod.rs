//! The drain: claim due requests, revoke each user's unsettled tokens at their providers,
//! and write the outcome and the request's next state in one fenced transaction.
//!
//! The pieces, after River's producer, executor and completer:
//! - this file: the claim loop, shutdown, and retrying writes through database outages;
//! - `run.rs`: one request's run (read its tokens, revoke them concurrently, decide, write);
//! - `commit.rs`: the group commit writing every run's results, many per transaction;
//! - `revoke.rs`: one token at its provider, with retries, pacing and audit rows;
//! - `settle.rs`: pure rules for a token's end and the request's next state;
//! - `lease.rs`: the requests in flight and the lease renewer;
//! - `shares.rs`: this worker's shares of the providers' rates, and their adaptive rates;
//! - `daemon.rs`: `offboard run`, draining on a schedule and on notifications.
//!
//! Shape of one drain: claim up to `batch_size` due requests while fewer than `concurrency`
//! are in flight; each request works on its tokens concurrently, every token waiting on its
//! own provider's gate, so a slow or paused provider holds up only its own tokens. The drain
//! ends when nothing is due and nothing is in flight, or when `shutdown` fires: then it
//! stops claiming, lets in-flight requests release themselves, and after `shutdown_grace`
//! abandons what is left to lease expiry.

mod commit;
pub(crate) mod daemon;
mod lease;
mod revoke;
mod run;
mod settle;
mod shares;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::outcome::{Decision, RequestState};
use crate::provider::Providers;
use crate::retry::RetryPolicy;
use crate::storage::{AuditRow, ClaimedRequest, Store, StoreError};
use crate::telemetry::error_chain;
pub(crate) use settle::NotRevocablePolicy;
pub(crate) use settle::Policy;
pub(crate) use settle::{pair_of, settles};

/// Longest a free slot waits for others before a busy worker claims (see the claim loop).
const CLAIM_HOLD: Duration = Duration::from_millis(25);

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub id: String,
    pub(crate) lease: Duration,
    pub(crate) concurrency: usize,
    pub(crate) batch_size: u32,
    pub(crate) max_attempts: i32,
    pub(crate) shutdown_grace: Duration,
    /// How often a drain with work in flight looks for newly due requests.
    pub(crate) poll: Duration,
    /// Longest in-process wait for a provider's turn before the request is deferred.
    pub(crate) max_queue_wait: Duration,
    /// How long a worker keeps retrying a write through a database outage.
    pub(crate) write_patience: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) policy: Policy,
}

impl WorkerSettings {
    pub(crate) fn from_config(config: &Config) -> WorkerSettings {
        let w = &config.worker;
        WorkerSettings {
            id: w.id.clone().unwrap_or_else(default_worker_id),
            lease: w.lease.0,
            concurrency: w.concurrency.usize(),
            batch_size: w.batch_size.get(),
            max_attempts: i32::try_from(w.max_attempts.get()).unwrap_or(i32::MAX),
            shutdown_grace: w.shutdown_grace.0,
            poll: w.poll_interval.0,
            max_queue_wait: w.max_queue_wait.0,
            write_patience: w.write_patience.0,
            retry: RetryPolicy::from(&config.retry),
            policy: Policy {
                not_revocable: config.policy.not_revocable,
                within: config.policy.not_revocable_within.0,
            },
        }
    }
}

/// `host:pid:random`, unique per process even when a host restarts a worker with the same pid.
fn default_worker_id() -> String {
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
    pub(crate) failed: u64,
    pub retrying: u64,
    pub released: u64,
    pub deferred: u64,
    pub lease_lost: u64,
    pub(crate) errors: u64,
}

/// How one claimed request's run ended, as far as this worker knows.
#[derive(Debug)]
enum RunEnd {
    /// The result was written and the request is in this state.
    Written(RequestState),
    /// Shutdown stopped the run; the request went back to `pending` without spending an
    /// attempt.
    Released,
    /// Deferred: its tokens left were never sent, their providers too busy to wait for; back
    /// to `pending` without spending an attempt.
    Deferred,
    /// Another worker holds the request now (or an operator moved it); nothing was written.
    LeaseLost,
    /// A database error; the lease will expire and another claim retries.
    Error,
}

impl DrainReport {
    fn count(&mut self, end: &RunEnd) {
        match end {
            RunEnd::Written(RequestState::Cleared) => self.cleared += 1,
            RunEnd::Written(RequestState::Failed) => self.failed += 1,
            RunEnd::Written(_) => self.retrying += 1,
            RunEnd::Released => self.released += 1,
            RunEnd::Deferred => self.deferred += 1,
            RunEnd::LeaseLost => self.lease_lost += 1,
            RunEnd::Error => self.errors += 1,
        }
    }
}

/// Claims requests and works on them. Cheap to clone: every part is shared.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    providers: Providers,
    settings: Arc<WorkerSettings>,
    metrics: Arc<Metrics>,
    /// The requests this process is working on now: only these have their leases renewed,
    /// and each can be told to stop when its lease is found lost.
    in_flight: lease::InFlight,
    /// Where runs send their writes during a drain (`None` outside one: written alone).
    committer: Option<commit::Committer>,
    commits: commit::Counts,
}

impl Worker {
    pub fn new(store: Store, providers: Providers, settings: WorkerSettings, metrics: Arc<Metrics>) -> Worker {
        Worker {
            store,
            providers,
            settings: Arc::new(settings),
            metrics,
            in_flight: lease::InFlight::default(),
            committer: None,
            commits: Default::default(),
        }
    }

    pub fn settings(&self) -> &WorkerSettings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `(transactions, writes)`: how many transactions wrote runs' results so far and how
    /// many requests' writes they carried, to show that group commit gathers them.
    pub fn commit_counts(&self) -> (u64, u64) {
        self.commits.get()
    }

    fn record_metrics(&self, rows: &[AuditRow]) {
        for row in rows {
            let duration = Duration::from_millis(u64::try_from(row.duration_ms).unwrap_or(0));
            self.metrics
                .record_attempt(&row.provider, row.outcome.as_str(), row.http_status, duration);
        }
    }

    /// Claims and works on due requests until none is due and none is in flight, or until
    /// `shutdown` fires. While requests are in flight and nothing else is due, it looks
    /// again every poll interval (or when `wake` is notified), so one slow request never
    /// delays the claiming of others. A database error on claiming ends the drain with that
    /// error once in-flight work has finished; errors on single requests are logged and
    /// counted, and their leases expire.
    pub async fn drain(&self, shutdown: &CancellationToken) -> Result<DrainReport, StoreError> {
        self.drain_woken(shutdown, None).await
    }

    /// As [`Worker::drain`], also looking for due requests whenever `wake` is notified.
    pub async fn drain_woken(
        &self,
        shutdown: &CancellationToken,
        wake: Option<&Notify>,
    ) -> Result<DrainReport, StoreError> {
        let mut report = DrainReport::default();
        let mut in_flight: JoinSet<RunEnd> = JoinSet::new();
        let renewer_stop = CancellationToken::new();
        let renewer = tokio::spawn(lease::renew(self.clone(), renewer_stop.clone()));
        // If this future is dropped mid-drain, the renewer must stop too, or it would keep
        // the abandoned requests' leases alive forever and no worker could take them over.
        let _stop_renewer_on_drop = renewer_stop.clone().drop_guard();
        // This worker's shares of the providers' rates, held while the drain runs.
        shares::close(self);
        let pacer_stop = CancellationToken::new();
        let pacer = tokio::spawn(shares::run(self.clone(), pacer_stop.clone()));
        let _stop_pacer_on_drop = pacer_stop.clone().drop_guard();
        // Runs write through one committer; it ends once they and `runner` are gone.
        let (committer, committer_task) = commit::Committer::start(self.clone());
        let runner = Worker {
            committer: Some(committer),
            ..self.clone()
        };

        let mut free_since: Option<tokio::time::Instant> = None;
        let outcome = loop {
            if shutdown.is_cancelled() {
                break Ok(());
            }
            let free = self.settings.concurrency.saturating_sub(in_flight.len());
            if free == 0 {
                collect(&mut in_flight, &mut report).await;
                continue;
            }
            // Claim in batches: while work is in flight, a slot freed by a finished request
            // waits up to CLAIM_HOLD for others to free up, so a busy worker claims many
            // requests per transaction rather than one per finished request.
            let batch = (self.settings.batch_size as usize).min(self.settings.concurrency.div_ceil(2));
            if free < batch && !in_flight.is_empty() {
                let since = *free_since.get_or_insert_with(tokio::time::Instant::now);
                let left = CLAIM_HOLD.saturating_sub(since.elapsed());
                if !left.is_zero() {
                    tokio::select! {
                        _ = collect(&mut in_flight, &mut report) => {}
                        _ = tokio::time::sleep(left) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    continue;
                }
            }
            free_since = None;
            let limit = u32::try_from(free).unwrap_or(u32::MAX).min(self.settings.batch_size);
            let id = &self.settings.id;
            // A claim that meets an outage (a busy SQLite file, a restarting server) is
            // retried like any write, but never past shutdown.
            let claim = self.write(|store| store.claim_due(id, limit, self.settings.lease));
            let claimed = match tokio::select! {
                claimed = claim => claimed,
                _ = shutdown.cancelled() => break Ok(()),
            } {
                Ok(claimed) => claimed,
                Err(e) => break Err(e),
            };
            if claimed.is_empty() {
                if in_flight.is_empty() {
                    break Ok(());
                }
                // Nothing due now: wait for a slot's result, the poll interval, a wake-up or
                // shutdown, whichever comes first, then look again.
                tokio::select! {
                    _ = collect(&mut in_flight, &mut report) => {}
                    _ = tokio::time::sleep(self.settings.poll) => {}
                    _ = async { match wake { Some(w) => w.notified().await, None => std::future::pending().await } } => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            report.claimed += claimed.len() as u64;
            self.metrics
                .record_lease_takeovers(claimed.iter().filter(|r| r.taken_over).count() as u64);
            for request in claimed {
                let stop = self.in_flight.start(&request.fence, shutdown);
                let worker = runner.clone();
                let span = info_span!("request", request_id = request.id, user_id = %request.user_id, attempt = request.attempt);
                in_flight.spawn(async move { worker.process(request, stop).await }.instrument(span));
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
        pacer_stop.cancel();
        let _ = renewer.await;
        let _ = pacer.await;
        drop(runner);
        let _ = committer_task.await;
        outcome.map(|()| report)
    }

    /// Works on one claimed request and logs how it ended. `stop` fires on shutdown or
    /// when the lease is found lost.
    async fn process(self, request: ClaimedRequest, stop: lease::Stop) -> RunEnd {
        let fence = request.fence.clone();
        let end = match self.clone().run(request, &stop).await {
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

    /// Runs a database operation, retrying what a database outage causes (a dropped
    /// connection, a restart, a busy SQLite file) with backoff, so answered calls are not
    /// lost with the connection; gives up after `write_patience`. Other errors, and
    /// `LeaseLost`, return at once.
    async fn write<'a, T, F, Fut>(&'a self, op: F) -> Result<T, StoreError>
    where
        F: Fn(&'a Store) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match op(&self.store).await {
                Err(e) if e.is_outage() && started.elapsed() < self.settings.write_patience => {
                    self.metrics.record_database_error();
                    warn!(error = %error_chain(&e), retry_in = ?wait, "database unavailable; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }
}

async fn collect(in_flight: &mut JoinSet<RunEnd>, report: &mut DrainReport) {
    match in_flight.join_next().await {
        Some(Ok(end)) => report.count(&end),
        Some(Err(e)) if e.is_cancelled() => {}
        Some(Err(e)) => {
            warn!(error = %e, "request task panicked; its lease will expire");
            report.errors += 1;
        }
        None => {}
    }
}
