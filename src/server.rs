//! The operations endpoint of `offboard run`: `/healthz` (the process is up), `/readyz` (the
//! database answers) and `/metrics` (Prometheus, OpenMetrics text); and on the same address
//! the operator's dashboard (`src/web`) unless the config turns it off.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::storage::Store;

#[derive(Clone)]
struct AppState {
    store: Store,
    metrics: Arc<Metrics>,
}

pub(crate) fn router(store: Store, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route("/readyz", axum::routing::get(ready))
        .route("/metrics", axum::routing::get(metrics_text))
        .with_state(AppState { store, metrics })
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", crate::telemetry::error_chain(&e)),
        ),
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    // Queue depth and age are read at scrape time; a database error leaves the last values.
    if let Ok((counts, oldest_due)) = state.store.queue_depth().await {
        state.metrics.set_queue(&counts);
        state.metrics.set_oldest_due(oldest_due);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// Binds `addr` now (so a taken port stops start-up with a clear error) and serves until
/// `shutdown` fires. Returns the bound address.
pub async fn spawn(
    addr: SocketAddr,
    store: Store,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    spawn_with(addr, store, metrics, None, shutdown).await
}

/// As [`spawn`], with the operator dashboard when there is one.
pub(crate) async fn spawn_with(
    addr: SocketAddr,
    store: Store,
    metrics: Arc<Metrics>,
    dashboard: Option<crate::web::Dashboard>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let mut app = router(store, metrics);
    if let Some(dashboard) = dashboard {
        app = app.merge(crate::web::routes(dashboard));
    }
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "health and metrics server stopped");
        }
    });
    Ok(bound)
}
