//! The lease renewer: while a drain runs, extend this worker's leases every third of a
//! lease, so a request whose run outlasts one lease is not taken over while it is worked on.
//! It stops with its drain (also when the drain is dropped), so a worker that dies or
//! abandons its work lets the leases expire.

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Worker;
use crate::telemetry::error_chain;

pub(super) async fn renew(worker: Worker, stop: CancellationToken) {
    let settings = worker.settings();
    let mut tick = tokio::time::interval(settings.lease / 3);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match worker
            .store()
            .renew_leases(&settings.id, settings.lease, Utc::now())
            .await
        {
            Ok(n) => debug!(renewed = n, "leases renewed"),
            Err(e) => warn!(error = %error_chain(&e), "cannot renew leases"),
        }
    }
}
