//! `offboard run`: drain at start, then on every tick of the cron `schedule`, and on
//! PostgreSQL also when a request is inserted (LISTEN `offboard_requests`), until `shutdown`
//! fires. Notifications only wake the loop early; the schedule is the fallback that catches
//! anything a dropped connection missed. SQLite cannot notify, so there the idle loop also
//! asks every `idle_poll` whether a request is due (one read, no lock) and drains when one is.
//!
//! The daemon outlives its database: a drain stopped by an outage is retried with backoff
//! (not only at the next tick, which may be a day away), and the listener reconnects on
//! its own. Only shutdown ends the loop.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Worker;
use crate::telemetry::error_chain;

/// Longest wait between tries while the database is away.
const MAX_OUTAGE_BACKOFF: Duration = Duration::from_secs(30);

pub(crate) async fn run(worker: Worker, schedule: cron::Schedule, idle_poll: Duration, shutdown: CancellationToken) {
    let wake = Arc::new(Notify::new());
    // PostgreSQL's listener wakes the loop; on SQLite nothing would until the next tick.
    let polls = worker.store().backend() == "sqlite";
    let listener = tokio::spawn(listen(worker.clone(), wake.clone(), shutdown.clone()));
    info!(worker = %worker.settings().id, backend = worker.store().backend(), "offboard worker started");
    let mut outage_backoff = Duration::from_secs(1);
    loop {
        let wait = match worker.drain_woken(&shutdown, Some(&wake)).await {
            Ok(report) => {
                if report.claimed > 0 {
                    info!(?report, "drain finished");
                }
                outage_backoff = Duration::from_secs(1);
                until_next_tick(&schedule)
            }
            Err(e) => {
                worker.metrics.record_database_error();
                warn!(error = %error_chain(&e), retry_in = ?outage_backoff, "drain stopped by a database error; retrying");
                let wait = outage_backoff;
                outage_backoff = (outage_backoff * 2).min(MAX_OUTAGE_BACKOFF);
                wait.min(until_next_tick(&schedule))
            }
        };
        if shutdown.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
            _ = until_due(&worker, idle_poll), if polls => {}
        }
    }
    let _ = listener.await;
    info!("offboard worker stopped");
}

/// Returns once a poll every `every` finds a request due. A failed poll is only logged at
/// debug level: the drain that follows a tick reports outages, with its own backoff.
async fn until_due(worker: &Worker, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match worker.store().any_due().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                worker.metrics.record_database_error();
                debug!(error = %error_chain(&e), "idle poll failed");
            }
        }
    }
}

fn until_next_tick(schedule: &cron::Schedule) -> Duration {
    schedule
        .upcoming(Utc)
        .next()
        .and_then(|at| (at - Utc::now()).to_std().ok())
        .unwrap_or(Duration::from_secs(60))
}

/// Wakes the daemon on each notification (PostgreSQL); on SQLite there are none and the
/// idle poll ([`until_due`]) does the work. Reconnects with backoff for as long as the daemon runs.
async fn listen(worker: Worker, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    while !shutdown.is_cancelled() {
        let listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            listener = worker.store().listen_for_requests() => listener,
        };
        let mut listener = match listener {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                worker.metrics.record_database_error();
                warn!(error = %error_chain(&e), retry_in = ?backoff, "cannot listen for new requests; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_OUTAGE_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                next = listener.next() => match next {
                    Ok(true) => wake.notify_one(),
                    Ok(false) => {
                        // Reconnected on the next call; what was sent meanwhile is lost, so
                        // the daemon looks for itself.
                        worker.metrics.record_database_error();
                        warn!("notification listener lost its database connection; notifications sent meanwhile are lost");
                        wake.notify_one();
                    }
                    Err(e) => {
                        // Notifications sent while disconnected are lost: wake the daemon so
                        // it looks for itself, then reconnect.
                        worker.metrics.record_database_error();
                        warn!(error = %error_chain(&e), "notification listener lost its database connection; reconnecting");
                        wake.notify_one();
                        break;
                    }
                },
            }
        }
    }
}

/// Cancels `token` on the first SIGTERM or Ctrl-C (SIGINT), and exits the process at once
/// (status 130) on a second one. The handlers are registered before this returns, so a
/// signal that arrives at any later moment, start-up included, is seen, never lost or fatal.
pub(crate) fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            for first in [true, false] {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
                if first {
                    info!("shutdown requested: no new claims; finishing in-flight work (signal again to exit at once)");
                    token.cancel();
                } else {
                    warn!(
                        "second signal: exiting at once; unfinished requests return to the queue when their leases expire"
                    );
                    std::process::exit(130);
                }
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            info!("shutdown requested: no new claims; finishing in-flight work");
            token.cancel();
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    Ok(())
}
