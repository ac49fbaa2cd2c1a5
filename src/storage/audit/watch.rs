//! `offboard run`'s check of the chain as it grows: the first check walks it all, each
//! later one only the rows appended since (from the last position verified), so a check
//! costs what was written in between. A row changed after it was checked is found by
//! `offboard audit verify`, not here. Once a fault is found the check stops walking and
//! stays broken until the daemon restarts: the first bad row is the news, and it is logged.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::walk::ChainHead;
use crate::storage::{Result, Store};
use crate::telemetry::error_chain;

/// What the daemon's check knows so far.
#[derive(Clone, Debug, Default)]
pub struct ChainCheck {
    verified: Option<ChainHead>,
    rows: u64,
    broken: bool,
}

impl ChainCheck {
    /// Whether a check found a bad row.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Chained rows verified so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Verifies the rows appended since the last check.
    pub async fn check(&mut self, store: &Store) -> Result<()> {
        if self.broken {
            return Ok(());
        }
        let report = store.verify_audit_chain(self.verified.as_ref(), None).await?;
        self.rows += report.rows;
        match report.fault {
            Some(fault) => {
                self.broken = true;
                tracing::error!(
                    kind = ?fault.kind,
                    seq = fault.seq,
                    id = fault.id,
                    "audit chain broken: {fault}; run `offboard audit verify` for the whole chain"
                );
            }
            None => self.verified = Some(report.last),
        }
        Ok(())
    }
}

impl Store {
    /// Checks the audit chain every `every` until `shutdown`, handing each result to
    /// `report` (the daemon sets its gauges from it). A database error is logged and the
    /// check tried again at the next tick.
    pub async fn watch_audit_chain(
        &self,
        every: Duration,
        shutdown: CancellationToken,
        report: impl Fn(&ChainCheck) + Send,
    ) {
        let mut check = ChainCheck::default();
        loop {
            // A first walk of a long chain may take a while: shutdown does not wait for it.
            let checked = tokio::select! {
                _ = shutdown.cancelled() => return,
                checked = check.check(self) => checked,
            };
            match checked {
                Ok(()) => report(&check),
                Err(e) => tracing::warn!(error = %error_chain(&e), "cannot check the audit chain; trying again later"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}
