//! Configuration: a TOML file (`--config PATH`, else `OFFBOARD_CONFIG`, else
//! `config/offboard.toml`), overridden key by key by `OFFBOARD_SECTION__KEY` environment
//! variables (`env.rs`), parsed once into the typed values (`values.rs`) the rest of the
//! program uses. This file holds the schema, loading and the checks across keys; the
//! `[providers.NAME]` tables, having the most rules, have their own file (`providers.rs`).
//!
//! Every error names the key and says what is wrong, because a daemon that refuses to start
//! with "invalid type" sends its operator hunting. Secrets never live in the file: a provider
//! names where its secret is (`SecretSource`), and the secret is read only where it is
//! needed (`secret.rs` says why).

mod dashboard;
pub(crate) mod endpoints;
mod env;
mod jwt;
mod providers;
mod secret;
pub(crate) mod sources;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::drain::NotRevocablePolicy;
pub(crate) use dashboard::DashboardConfig;
pub(crate) use providers::ProviderConfig;
use providers::ProviderFile;
pub(crate) use secret::{ClientSecret, SecretSource, process_env, read_env_secret, read_file_secret};
pub(crate) use values::{Count, CronSchedule, DatabaseUrl, Factor, HumanDuration, ListenAddr, ProviderUrl, Rate};
use values::{DAY, HOUR, MINUTE, SECOND, YEAR};

const DEFAULT_PATH: &str = "config/offboard.toml";

/// The default of `retry.max_provider_pause`: the longest pause a provider may impose.
pub(crate) const DEFAULT_MAX_PROVIDER_PAUSE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Key { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration, validated. Built only by [`Config::from_toml`] (and
/// `Config::load`); it holds where each provider secret is, never a secret.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub(crate) worker: WorkerConfig,
    pub(crate) retry: RetryConfig,
    pub(crate) policy: PolicyConfig,
    pub(crate) http: HttpConfig,
    pub(crate) log: LogConfig,
    pub(crate) server: ServerConfig,
    pub(crate) dashboard: DashboardConfig,
    pub(crate) providers: BTreeMap<String, ProviderConfig>,
    /// Where the application's tokens are (`[[tokens.source]]`; default `oauth_tokens`).
    pub(crate) tokens: Vec<sources::TokenSource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created on first run) or `postgres://…`.
    pub(crate) url: DatabaseUrl,
    pub(crate) max_connections: Count<1000>,
    /// SQLite only: how long a writer waits for the lock before giving up.
    pub(crate) busy_timeout: HumanDuration<0, { 5 * MINUTE }>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://offboard.db".parse().expect("default database URL parses"),
            max_connections: Count(10),
            busy_timeout: HumanDuration(Duration::from_secs(10)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WorkerConfig {
    pub(crate) schedule: CronSchedule,
    pub(crate) lease: HumanDuration<{ 2 * SECOND }, HOUR>,
    /// Requests worked on at once by one process.
    pub(crate) concurrency: Count<10_000>,
    /// Claims of one request before it is `failed` (durable attempts).
    pub(crate) max_attempts: Count<1000>,
    pub(crate) batch_size: Count<10_000>,
    /// How long shutdown waits for in-flight requests before releasing them.
    pub(crate) shutdown_grace: HumanDuration<0, HOUR>,
    /// While requests are in flight, how often to look for newly due ones (on PostgreSQL a
    /// notification wakes the worker sooner).
    pub(crate) poll_interval: HumanDuration<10, MINUTE>,
    /// Longest a token waits in process for its provider's turn (a pause, or the callers
    /// ahead of it at the provider's rate); past that its request is deferred, no attempt
    /// spent, instead of holding a slot while other providers idle.
    pub(crate) max_queue_wait: HumanDuration<0, HOUR>,
    /// Between drains, on a database that cannot notify (SQLite), how often `offboard run`
    /// looks for due requests (one cheap query), besides the schedule.
    pub(crate) idle_poll: HumanDuration<10, HOUR>,
    /// How long a finished run keeps retrying its write through a database outage before
    /// it gives up (its calls are then lost to the audit, and the request runs again).
    pub(crate) write_patience: HumanDuration<SECOND, DAY>,
    /// How this worker names itself in `locked_by` and audit rows. Default: host:pid:random.
    pub(crate) id: Option<String>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            schedule: "*/10 * * * * *".parse().expect("default schedule parses"),
            lease: HumanDuration(Duration::from_secs(60)),
            concurrency: Count(64),
            max_attempts: Count(8),
            batch_size: Count(32),
            shutdown_grace: HumanDuration(Duration::from_secs(30)),
            poll_interval: HumanDuration(Duration::from_secs(1)),
            max_queue_wait: HumanDuration(Duration::from_secs(10)),
            idle_poll: HumanDuration(Duration::from_millis(200)),
            write_patience: HumanDuration(Duration::from_secs(600)),
            id: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetryConfig {
    /// Tries per token within one claim, the first included.
    pub(crate) attempts: Count<100>,
    pub(crate) base: HumanDuration<1, MINUTE>,
    pub(crate) factor: Factor,
    pub(crate) cap: HumanDuration<1, { 10 * MINUTE }>,
    /// Longest `Retry-After` waited out in process; a longer one sends the request back to
    /// `pending` with `next_attempt_at` at the end of the pause.
    pub(crate) retry_after_cap: HumanDuration<0, { 10 * MINUTE }>,
    /// Longest pause a provider may impose: every wait a provider asks for (`Retry-After`,
    /// as seconds or as a date) is clamped to it where the answer is classified, so a
    /// provider asking for a year pauses for this long at most (DESIGN.md §5).
    pub(crate) max_provider_pause: HumanDuration<SECOND, DAY>,
    /// Durable backoff between claims: base × 2^(attempt-1), capped, with equal jitter.
    pub(crate) durable_base: HumanDuration<1, HOUR>,
    pub(crate) durable_cap: HumanDuration<1, DAY>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: Count(4),
            base: HumanDuration(Duration::from_millis(200)),
            factor: Factor(2.0),
            cap: HumanDuration(Duration::from_secs(10)),
            retry_after_cap: HumanDuration(Duration::from_secs(60)),
            max_provider_pause: HumanDuration(DEFAULT_MAX_PROVIDER_PAUSE),
            durable_base: HumanDuration(Duration::from_secs(30)),
            durable_cap: HumanDuration(Duration::from_secs(3600)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PolicyConfig {
    pub(crate) not_revocable: NotRevocablePolicy,
    pub(crate) not_revocable_within: HumanDuration<0, YEAR>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            not_revocable: NotRevocablePolicy::Expiring,
            not_revocable_within: HumanDuration(Duration::from_secs(24 * 3600)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpConfig {
    /// Bytes of a response body read at most; the rest is dropped.
    pub(crate) max_body_bytes: Count<{ 16 * 1024 * 1024 }>,
    pub(crate) user_agent: String,
    /// Longest wait for a TCP and TLS connection, for every provider.
    pub(crate) connect_timeout: HumanDuration<1, MINUTE>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: Count(64 * 1024),
            user_agent: format!("offboard/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: HumanDuration(Duration::from_secs(5)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    pub(crate) format: LogFormat,
    /// A tracing filter such as `info` or `offboard=debug,info`; `RUST_LOG` wins.
    pub(crate) level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogFormat {
    Human,
    Json,
}

/// The operations endpoint of `offboard run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    /// Address for `/healthz`, `/readyz` and `/metrics`, or `"off"`.
    pub(crate) listen: ListenAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: ListenAddr(Some(([127, 0, 0, 1], 9187).into())),
        }
    }
}

/// The file as written: [`Config`] before the checks across keys, with its provider tables
/// as written. Field order is the order serde lists in "expected one of" messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    database: DatabaseConfig,
    #[serde(default)]
    worker: WorkerConfig,
    #[serde(default)]
    retry: RetryConfig,
    #[serde(default)]
    policy: PolicyConfig,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    dashboard: dashboard::DashboardFile,
    #[serde(default)]
    providers: BTreeMap<String, ProviderFile>,
    #[serde(default)]
    tokens: sources::TokensFile,
}

impl Config {
    /// Where the config file is: the flag, else `OFFBOARD_CONFIG`, else the default path.
    pub(crate) fn locate(flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| std::env::var_os("OFFBOARD_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }

    /// Reads the file (or takes the defaults when `path` is the default location and no file
    /// is there), applies environment overrides, and parses and validates every key. Secrets
    /// are not read here: see [`Config::resolve_secrets`].
    pub(crate) fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::from_toml(&text, path, std::env::vars())
    }

    /// As `Config::load`, from text and an explicit environment (tests pass their own).
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_owned(),
            message: syntax_message(&e, text),
        })?;
        let env: Vec<(String, String)> = env.into_iter().collect();
        env::apply_env_overrides(&mut table, &env)?;
        let file: ConfigFile = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            // toml appends "in `section`" on a second line; the key path already says it.
            let message = e.into_inner().to_string();
            let message = message.lines().next().unwrap_or_default().trim().to_owned();
            ConfigError::key(if key == "." { "config".into() } else { key }, message)
        })?;
        file.validate()
    }
}

impl ConfigFile {
    /// The checks that span keys, and the provider tables into their validated form.
    fn validate(self) -> Result<Config, ConfigError> {
        if self.retry.cap.0 < self.retry.base.0 {
            return Err(ConfigError::key("retry.cap", "must not be below retry.base"));
        }
        if self.retry.durable_cap.0 < self.retry.durable_base.0 {
            return Err(ConfigError::key(
                "retry.durable_cap",
                "must not be below retry.durable_base",
            ));
        }
        let tokens = self.tokens.validate()?;
        let mut from_tokens: Vec<String> = tokens
            .iter()
            .flat_map(|s| s.vars.iter().map(|(n, _)| n.clone()))
            .collect();
        from_tokens.sort();
        from_tokens.dedup();
        let mut providers = BTreeMap::new();
        for (name, p) in self.providers {
            let provider = p.validate(&name, &from_tokens)?;
            providers.insert(name, provider);
        }
        Ok(Config {
            database: self.database,
            worker: self.worker,
            retry: self.retry,
            policy: self.policy,
            http: self.http,
            log: self.log,
            server: self.server,
            dashboard: self.dashboard.validate()?,
            providers,
            tokens,
        })
    }
}

/// A TOML error as the parser's own words and where: never the offending line itself, which
/// may hold a secret (an unclosed quote on a `url = "postgres://user:password@…` line).
fn syntax_message(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{message} at line {line}, column {column}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
