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

mod env;
mod providers;
mod secret;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::drain::NotRevocablePolicy;
pub(crate) use providers::ProviderConfig;
use providers::ProviderFile;
pub(crate) use secret::{SecretSource, process_env};
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
    pub(crate) providers: BTreeMap<String, ProviderConfig>,
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
    providers: BTreeMap<String, ProviderFile>,
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
        let mut providers = BTreeMap::new();
        for (name, p) in self.providers {
            let provider = p.validate(&name)?;
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
            providers,
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
mod tests {
    use super::*;

    /// Parses `text` with `env` as the whole environment, then reads every provider secret
    /// from it, as a command that calls providers would.
    pub(super) fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let config = Config::from_toml(text, Path::new("test.toml"), vars.clone())?;
        config.resolve_secrets(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))?;
        Ok(config)
    }

    pub(super) const ACME: &str = r#"
        [providers.acme]
        dialect = "rfc7009"
        url = "https://auth.acme.example/oauth2/revoke"
        client_id = "offboard"
        client_secret_env = "ACME_SECRET"
    "#;

    #[test]
    fn a_syntax_error_says_where_without_quoting_the_line() {
        let text = "[database]\nurl = \"postgres://app:hunter2@db/offboard\n";
        let err = Config::from_toml(text, Path::new("bad.toml"), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config file bad.toml is not valid TOML: "), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn defaults_fill_every_key_but_the_providers() {
        let config = parse("", &[]).unwrap();
        assert_eq!(config.worker.concurrency, Count(64));
        assert_eq!(config.worker.lease.0, Duration::from_secs(60));
        assert_eq!(config.database.url.as_str(), "sqlite://offboard.db");
        assert!(config.providers.is_empty());
    }

    #[test]
    fn the_shipped_default_file_parses_to_the_built_in_defaults() {
        let shipped = parse(include_str!("../../config/offboard.toml"), &[]).unwrap();
        let defaults = parse("", &[]).unwrap();
        assert_eq!(format!("{shipped:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn type_errors_name_the_key() {
        let err = parse("[worker]\nconcurrency = \"lots\"", &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("worker.concurrency: 'lots' is not a whole number"),
            "{err}"
        );
        let err = parse("[worker]\nlease = \"soon\"", &[]).unwrap_err().to_string();
        assert!(err.starts_with("worker.lease: 'soon' is not a duration"), "{err}");
        let err = parse("[worker]\nconcurrency = 2.5", &[]).unwrap_err().to_string();
        assert_eq!(err, "worker.concurrency: '2.5' is not a whole number");
        let err = parse("[retry]\nfactor = true", &[]).unwrap_err().to_string();
        assert_eq!(err, "retry.factor: expected a number, got a boolean");
        let err = parse("[worker]\nconcurency = 3", &[]).unwrap_err().to_string();
        assert!(err.contains("unknown field `concurency`"), "{err}");
    }

    /// Every duration key outside `[providers]`, with its upper bound as messages write it
    /// (the same bounds are listed in `config/offboard.toml`).
    pub(super) const DURATION_KEYS: [(&str, &str, &str); 11] = [
        ("database", "busy_timeout", "5m"),
        ("worker", "lease", "1h"),
        ("worker", "shutdown_grace", "1h"),
        ("retry", "base", "1m"),
        ("retry", "cap", "10m"),
        ("retry", "retry_after_cap", "10m"),
        ("retry", "max_provider_pause", "1day"),
        ("retry", "durable_base", "1h"),
        ("retry", "durable_cap", "1day"),
        ("policy", "not_revocable_within", "1year"),
        ("http", "connect_timeout", "1m"),
    ];

    /// Every count key outside `[providers]`, with its upper bound.
    pub(super) const COUNT_KEYS: [(&str, &str, u32); 6] = [
        ("database", "max_connections", 1000),
        ("worker", "concurrency", 10_000),
        ("worker", "max_attempts", 1000),
        ("worker", "batch_size", 10_000),
        ("retry", "attempts", 100),
        ("http", "max_body_bytes", 16 * 1024 * 1024),
    ];

    /// Issue 7: a duration from the config once overflowed the time arithmetic it fed.
    /// Every duration key has an upper bound, and a value past it stops start-up with the
    /// key named, from the file or from the environment.
    #[test]
    fn every_duration_key_has_an_upper_bound_named_in_its_error() {
        for (section, key, max) in DURATION_KEYS {
            let err = parse(&format!("[{section}]\n{key} = \"10y\""), &[])
                .unwrap_err()
                .to_string();
            assert_eq!(err, format!("{section}.{key}: must be at most {max}, got 10y"));
            let var = format!("OFFBOARD_{section}__{key}").to_ascii_uppercase();
            let err = parse("", &[(&var, "10y")]).unwrap_err().to_string();
            assert_eq!(err, format!("{section}.{key}: must be at most {max}, got 10y"));
        }
        let text = format!("{ACME}\ntimeout = \"1h\"");
        let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
        assert_eq!(err, "providers.acme.timeout: must be at most 5m, got 1h");
    }

    #[test]
    fn durations_that_must_not_be_zero_say_so() {
        let err = parse("[worker]\nlease = \"1s\"", &[]).unwrap_err().to_string();
        assert_eq!(err, "worker.lease: must be at least 2s, got 1s");
        let err = parse("[retry]\nmax_provider_pause = \"0s\"", &[])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "retry.max_provider_pause: must be at least 1s, got 0s");
        let text = format!("{ACME}\ntimeout = \"0s\"");
        let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
        assert_eq!(err, "providers.acme.timeout: must be at least 1ms, got 0s");
        let err = parse("[http]\nconnect_timeout = \"0s\"", &[]).unwrap_err().to_string();
        assert_eq!(err, "http.connect_timeout: must be at least 1ms, got 0s");
    }

    #[test]
    fn every_count_key_has_an_upper_bound_named_in_its_error() {
        for (section, key, max) in COUNT_KEYS {
            let ok = parse(&format!("[{section}]\n{key} = {max}"), &[]);
            assert!(ok.is_ok(), "{section}.{key} = {max}: {ok:?}");
            let over = u64::from(max) + 1;
            let err = parse(&format!("[{section}]\n{key} = {over}"), &[])
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!("{section}.{key}: must be a whole number from 1 to {max}, got {over}")
            );
        }
        let text = format!("{ACME}\nburst = 10001");
        let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
        assert_eq!(
            err,
            "providers.acme.burst: must be a whole number from 1 to 10000, got 10001"
        );
    }

    #[test]
    fn the_longest_provider_pause_is_a_key_of_its_own() {
        assert_eq!(
            parse("", &[]).unwrap().retry.max_provider_pause.0,
            Duration::from_secs(3600)
        );
        let config = parse("[retry]\nmax_provider_pause = \"5m\"", &[]).unwrap();
        assert_eq!(config.retry.max_provider_pause.0, Duration::from_secs(300));
    }
}

#[cfg(test)]
mod properties;
