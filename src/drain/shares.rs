//! Rate shares across workers, and the adaptive rates they share (issue 10). While a drain
//! runs, this task renews, every [`RENEW`], this worker's share of every configured provider
//! in one statement (`storage/rates.rs`) and retunes the gates from the answer: with n live
//! members each paces at 1/n of the provider's rate (and burst), so however many workers
//! share a PostgreSQL database, together they stay within the rate plus the burst.
//!
//! - Joining: a newcomer calls nothing until it has been a member for one renewal, so the
//!   others have shrunk their shares first (they do at their next renewal); alone, it takes
//!   the whole rate at once, so a single worker's first call waits one query, not a renewal.
//! - Leaving: a drain that ends deletes its rows; a worker that dies stops renewing and its
//!   rows expire after [`LEASE`]; the others' shares grow back at their next renewal.
//! - A worker that cannot renew for a lease calls nothing more until it can: the others will
//!   have counted it out.
//! - Adaptive rates: each gate lowers its rate on throttles at once; the renewal sends the
//!   decrease to the others (the lowest wins) and brings theirs back, and recovery made by
//!   any worker spreads the same way. No call waits on the database.
//!
//! SQLite has no coordination (a single process is its normal case): each worker paces at
//! the whole rate and adapts on its own; this task then only updates the rate gauge.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Worker;
use crate::provider::gate::{DECREASE_EVERY, Shared};
use crate::storage::MyPace;
use crate::telemetry::error_chain;

/// How often the shares are renewed.
pub(super) const RENEW: Duration = Duration::from_millis(500);
/// How long a share lives without renewal.
pub(super) const LEASE: Duration = Duration::from_secs(2);
/// How long a decrease holds against higher rates: long enough for every worker to adopt
/// it before its own rate is merged again.
const GUARD: Duration = Duration::from_millis(1500);

/// Whether this worker's drains coordinate their rates through the database.
fn coordinated(worker: &Worker) -> bool {
    worker.store().backend() == "postgres"
}

/// Closes every gate until the first renewal gives this worker its shares. Called before
/// the drain claims anything, so no call goes out on a share not yet granted.
pub(super) fn close(worker: &Worker) {
    if coordinated(worker) {
        for (_, provider) in worker.providers.iter() {
            provider.gate.set_share(0.0);
        }
    }
}

/// Renews the shares until `stop`, then gives them back and reopens the gates (calls made
/// outside a drain, such as a verification by hand, pace at the whole rate).
pub(super) async fn run(worker: Worker, stop: CancellationToken) {
    let coordinated = coordinated(&worker);
    let mut tick = tokio::time::interval(RENEW);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut pushed: HashMap<String, u64> = HashMap::new();
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if coordinated {
            if renew(&worker, &mut pushed).await {
                renewed = Instant::now();
            } else if renewed.elapsed() >= LEASE {
                for (_, provider) in worker.providers.iter() {
                    provider.gate.set_share(0.0);
                }
            }
        }
        for (name, provider) in worker.providers.iter() {
            worker.metrics.set_effective_rate(name, provider.gate.effective_rate());
        }
    }
    if coordinated {
        if let Err(e) = worker.store().leave_rate_shares(&worker.settings.id).await {
            warn!(error = %error_chain(&e), "cannot give rate shares back; they expire with their lease");
        }
        for (_, provider) in worker.providers.iter() {
            provider.gate.set_share(1.0);
        }
    }
}

/// One renewal; whether it reached the database.
async fn renew(worker: &Worker, pushed: &mut HashMap<String, u64>) -> bool {
    let snapshot: Vec<(String, Shared, u64)> = worker
        .providers
        .iter()
        .map(|(name, provider)| {
            let (shared, decreases) = provider.gate.shared();
            (name.clone(), shared, decreases)
        })
        .collect();
    let mine: Vec<MyPace> = snapshot
        .iter()
        .map(|(name, shared, decreases)| MyPace {
            provider: name.clone(),
            rate: shared.rate,
            ceiling: shared.ceiling,
            decreased: pushed.get(name).is_some_and(|seen| seen != decreases),
            fresh: !pushed.contains_key(name),
        })
        .collect();
    let id = &worker.settings.id;
    let rows = match worker
        .store()
        .renew_rate_shares(id, &mine, LEASE, GUARD.max(DECREASE_EVERY))
        .await
    {
        Ok(Some(rows)) => rows,
        Ok(None) => return true,
        Err(e) => {
            worker.metrics.record_database_error();
            warn!(error = %error_chain(&e), "cannot renew rate shares");
            return false;
        }
    };
    for row in rows {
        let (Some(provider), Some((_, _, decreases))) = (
            worker.providers.get(&row.provider),
            snapshot.iter().find(|(name, _, _)| *name == row.provider),
        ) else {
            continue;
        };
        let share = if row.members <= 1 {
            1.0
        } else if row.age < RENEW.as_secs_f64() {
            0.0
        } else {
            1.0 / row.members as f64
        };
        provider.gate.set_share(share);
        let calm = row
            .calm
            .and_then(|secs| Duration::try_from_secs_f64(secs.max(0.0)).ok());
        let shared = Shared {
            rate: row.rate,
            ceiling: row.ceiling,
            calm,
        };
        provider.gate.adopt(shared, *decreases);
        pushed.insert(row.provider.clone(), *decreases);
        debug!(provider = %row.provider, members = row.members, share, rate = row.rate, "rate share renewed");
    }
    true
}
