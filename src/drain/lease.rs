//! Leases of the requests in flight. While a drain runs, the renewer extends the lease of
//! every request this process is really working on (and of nothing else: a request whose
//! task ended, however it ended, is no longer renewed and its lease runs out). A request
//! whose renewal finds it no longer held (taken over, retried or cancelled) is told to stop
//! at once. The renewer stops with its drain, also when the drain is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Worker;
use crate::storage::Fence;
use crate::telemetry::error_chain;

/// What tells one request's run to stop sending: shutdown (its tokens not yet sent are
/// released) or a lost lease.
#[derive(Clone, Debug)]
pub(super) struct Stop {
    token: CancellationToken,
}

impl Stop {
    pub(super) async fn stopped(&self) {
        self.token.cancelled().await
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The lease is gone: nothing more may be sent for this request.
    pub(super) fn lease_lost(&self) {
        self.token.cancel();
    }
}

/// The requests this process works on, by id, with the fence each was claimed under.
#[derive(Clone, Default)]
pub(super) struct InFlight(Arc<Mutex<HashMap<i64, (Fence, Stop)>>>);

impl InFlight {
    /// Registers a claimed request; the returned stop fires on `shutdown` too.
    pub(super) fn start(&self, fence: &Fence, shutdown: &CancellationToken) -> Stop {
        let stop = Stop {
            token: shutdown.child_token(),
        };
        self.lock().insert(fence.request_id(), (fence.clone(), stop.clone()));
        stop
    }

    /// The request's task ended: its lease is no longer renewed. Only the entry of this
    /// very claim is removed: the same worker may have claimed the request again (its
    /// lease ran out during a database outage) and that run is still going.
    pub(super) fn finish(&self, fence: &Fence) {
        let mut map = self.lock();
        if map
            .get(&fence.request_id())
            .is_some_and(|(current, _)| current == fence)
        {
            map.remove(&fence.request_id());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (Fence, Stop)>> {
        // A panic while holding this lock cannot leave the map inconsistent (single calls).
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fences(&self) -> Vec<Fence> {
        self.lock().values().map(|(fence, _)| fence.clone()).collect()
    }

    /// Stops every request in `fences` whose id the database no longer holds for us.
    fn stop_lost(&self, fences: &[Fence], held: &[i64]) -> usize {
        let map = self.lock();
        let mut lost = 0;
        for fence in fences.iter().filter(|f| !held.contains(&f.request_id())) {
            if let Some((current, stop)) = map.get(&fence.request_id())
                && current == fence
            {
                stop.lease_lost();
                lost += 1;
            }
        }
        lost
    }
}

pub(super) async fn renew(worker: Worker, stop: CancellationToken) {
    let settings = worker.settings();
    let mut tick = tokio::time::interval(settings.lease / 3);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let fences = worker.in_flight.fences();
        if fences.is_empty() {
            continue;
        }
        let refs: Vec<&Fence> = fences.iter().collect();
        match worker.store().renew_leases(&refs, settings.lease).await {
            Ok(held) => {
                let lost = worker.in_flight.stop_lost(&fences, &held);
                debug!(renewed = held.len(), lost, "leases renewed");
                if lost > 0 {
                    warn!(lost, "leases found lost on renewal: those requests stop sending");
                }
            }
            Err(e) => {
                worker.metrics.record_database_error();
                warn!(error = %error_chain(&e), "cannot renew leases");
            }
        }
    }
}
