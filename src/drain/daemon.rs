//! `offboard run`: drain at start, then on every tick of the cron `schedule`, and on
//! PostgreSQL also when a request is inserted (LISTEN `offboard_requests`), until `shutdown`
//! fires. Notifications only wake the loop early; the schedule is the fallback that catches
//! anything a dropped connection missed.

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Worker;
use crate::storage::StoreError;
use crate::telemetry::error_chain;

pub(crate) async fn run(
    worker: Worker,
    schedule: cron::Schedule,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let mut listener = worker.store().listen_for_requests().await?;
    info!(worker = %worker.settings().id, backend = worker.store().backend(), "offboard worker started");
    loop {
        match worker.drain(&shutdown).await {
            Ok(report) if report.claimed > 0 => info!(?report, "drain finished"),
            Ok(_) => {}
            Err(e) => {
                warn!(error = %error_chain(&e), "drain stopped by a database error; retrying at the next tick")
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        let wait = schedule
            .upcoming(Utc)
            .next()
            .and_then(|at| (at - Utc::now()).to_std().ok())
            .unwrap_or(std::time::Duration::from_secs(60));
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
            notification = async {
                match listener.as_mut() {
                    Some(l) => l.next().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Err(e) = notification {
                    warn!(error = %error_chain(&e), "notification listener failed; relying on the schedule");
                }
            }
        }
    }
    info!("offboard worker stopped");
    Ok(())
}

/// Cancels `token` on SIGTERM or Ctrl-C (SIGINT). The handlers are registered before this
/// returns, so a signal that arrives at any later moment is seen, never lost or fatal.
pub(crate) fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            info!("shutdown requested: no new claims; finishing in-flight work");
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            info!("shutdown requested: no new claims; finishing in-flight work");
            token.cancel();
        }
    });
    Ok(())
}
