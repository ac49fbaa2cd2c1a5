//! A provider's call slots (`max_in_flight`): a call holds one from before its rate-limit
//! turn until it is answered, so a worker has at most that many calls in flight to the
//! provider, and keeps at most that many connections open to it.

use std::time::Duration;

use tokio::sync::SemaphorePermit;

use super::Gate;
use super::waiting::Waiting;

/// [`Gate::slot`] found none free within the caller's wait (`.0`): every call in flight
/// to the provider is taking long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy(pub Duration);

impl Gate {
    /// Takes one of the provider's call slots, to hold until the call is answered, waiting
    /// at most `max_wait` for one to come free (counted meanwhile among the callers
    /// waiting, so a queue for slots is part of the backlog).
    pub(crate) async fn slot(&self, max_wait: Duration) -> Result<SemaphorePermit<'_>, Busy> {
        if let Ok(slot) = self.calls.try_acquire() {
            return Ok(slot);
        }
        let _waiting = Waiting::enter(&self.waiting);
        match tokio::time::timeout(max_wait, self.calls.acquire()).await {
            Ok(Ok(slot)) => Ok(slot),
            // The semaphore is never closed; a timeout is the other way here.
            Ok(Err(_)) | Err(_) => Err(Busy(max_wait)),
        }
    }

    /// Calls in flight to the provider now, from this worker.
    pub(crate) fn calls_in_flight(&self) -> usize {
        self.in_flight.saturating_sub(self.calls.available_permits())
    }
}
