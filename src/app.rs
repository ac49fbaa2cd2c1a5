//! The composition root: the one place that turns a [`Config`] into the running parts
//! (store, providers, metrics, worker). The command line, the demo and the tests all build
//! through here, so the wiring cannot drift between them.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::drain::{Worker, WorkerSettings};
use crate::metrics::Metrics;
use crate::provider::{ProviderSetupError, Providers};
use crate::storage::{Sources, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A provider's secret or a decryption key could not be read, or a token source names
    /// a table or column the database lacks; the cause names the key.
    #[error("invalid configuration")]
    Config(#[source] ConfigError),
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot serve /healthz, /readyz and /metrics: server.listen {addr}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// How often `offboard run` checks the rows appended to the audit chain since its last check.
const CHAIN_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Everything `offboard run` and `offboard once` work with.
pub struct App {
    config: Config,
    store: Store,
    metrics: Arc<Metrics>,
    worker: Worker,
}

impl From<ProviderSetupError> for AppError {
    fn from(e: ProviderSetupError) -> Self {
        match e {
            ProviderSetupError::Secret(e) => AppError::Config(e),
            ProviderSetupError::Client(e) => AppError::Client(e),
        }
    }
}

impl App {
    /// Reads the provider secrets from the process environment and files, opens (and
    /// migrates) the database the config names, and builds the rest.
    pub(crate) async fn build(config: Config) -> Result<App, AppError> {
        App::open(config, &crate::config::process_env).await
    }

    /// As [`App::build`], with secrets' environment variables looked up in `env`.
    pub(crate) async fn open(config: Config, env: &dyn Fn(&str) -> Option<String>) -> Result<App, AppError> {
        // Secrets first: a missing one stops start-up before the database is touched.
        let providers = Providers::from_config(&config, env)?;
        let sources = Sources::build(&config.tokens, env).map_err(AppError::Config)?;
        let store = Store::open(&config.database).await?.with_sources(sources);
        App::checked(config, store, providers).await
    }

    /// Refuses a token source naming a table or column the database does not have.
    async fn checked(config: Config, store: Store, providers: Providers) -> Result<App, AppError> {
        if let Some(problem) = store.check_sources().await? {
            return Err(AppError::Config(problem));
        }
        Ok(App::assemble(config, store, providers))
    }

    /// As [`App::with_store`], and checks the token sources against the live database, as
    /// start-up does.
    pub async fn with_store_checked(
        config: Config,
        store: Store,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<App, AppError> {
        let app = App::with_store(config, store, env)?;
        match app.store.check_sources().await? {
            Some(problem) => Err(AppError::Config(problem)),
            None => Ok(app),
        }
    }

    /// As [`App::build`] for the daemon: while the database is unreachable, keeps trying
    /// with backoff (logging each failure) instead of exiting; `None` when `shutdown` fires
    /// first. Errors that waiting cannot fix (a bad secret, a wrong password) return at once.
    pub async fn build_patiently(config: Config, shutdown: &CancellationToken) -> Result<Option<App>, AppError> {
        let providers = Providers::from_config(&config, &crate::config::process_env)?;
        let sources = Sources::build(&config.tokens, &crate::config::process_env).map_err(AppError::Config)?;
        let mut backoff = std::time::Duration::from_secs(1);
        loop {
            // A connection attempt can take the pool's whole acquire timeout: shutdown must
            // not wait for it.
            let opened = tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                opened = Store::open(&config.database) => opened,
            };
            match opened {
                Ok(store) => {
                    return App::checked(config, store.with_sources(sources), providers)
                        .await
                        .map(Some);
                }
                Err(e) if e.is_outage() => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), retry_in = ?backoff, "database unavailable at start-up; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(None),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Builds on a store that is already open (tests share one between workers).
    pub fn with_store(config: Config, store: Store, env: &dyn Fn(&str) -> Option<String>) -> Result<App, AppError> {
        let providers = Providers::from_config(&config, env)?;
        let sources = Sources::build(&config.tokens, env).map_err(AppError::Config)?;
        Ok(App::assemble(config, store.with_sources(sources), providers))
    }

    fn assemble(config: Config, store: Store, providers: Providers) -> App {
        let metrics = Arc::new(Metrics::default());
        metrics.watch_gates(&providers);
        let worker = Worker::new(
            store.clone(),
            providers,
            WorkerSettings::from_config(&config),
            metrics.clone(),
        );
        App {
            config,
            store,
            metrics,
            worker,
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Serves the operations endpoint, with the dashboard unless the config turns it off,
    /// on `server.listen` (unless it is `off`) until `shutdown`; returns the bound address.
    /// The dashboard's token, when actions are enabled, is read here from the process
    /// environment or its file: one that cannot be read stops start-up naming its key.
    pub async fn serve(&self, shutdown: &CancellationToken) -> Result<Option<SocketAddr>, AppError> {
        let Some(addr) = self.config.server.listen.0 else {
            return Ok(None);
        };
        let dashboard =
            crate::web::Dashboard::from_config(&self.config, self.store.clone(), &crate::config::process_env)
                .map_err(AppError::Config)?;
        let (store, metrics) = (self.store.clone(), self.metrics.clone());
        let bound = crate::server::spawn_with(addr, store, metrics, dashboard, shutdown.clone())
            .await
            .map_err(|source| AppError::Serve { addr, source })?;
        Ok(Some(bound))
    }

    /// `offboard run`: the operations endpoint and the daemon loop, until `shutdown`.
    pub(crate) async fn run(&self, shutdown: CancellationToken) -> Result<(), AppError> {
        if let Some(bound) = self.serve(&shutdown).await? {
            tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");
            let dashboard = &self.config.dashboard;
            if dashboard.enabled {
                tracing::info!(url = %format!("http://{bound}/"), actions = dashboard.actions, "serving the operator dashboard");
            }
        }
        let metrics = self.metrics.clone();
        let (store, stop) = (self.store.clone(), shutdown.clone());
        let chain = tokio::spawn(async move {
            let report = move |c: &crate::storage::ChainCheck| metrics.set_audit_chain(c.broken(), c.rows());
            store.watch_audit_chain(CHAIN_CHECK_EVERY, stop, report).await
        });
        let schedule = self.config.worker.schedule.0.clone();
        crate::drain::daemon::run(self.worker.clone(), schedule, self.config.worker.idle_poll.0, shutdown).await;
        let _ = chain.await;
        Ok(())
    }

    pub(crate) async fn close(&self) {
        self.store.close().await;
    }
}
