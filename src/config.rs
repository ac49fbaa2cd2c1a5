//! Configuration: a TOML file (`--config PATH`, else `OFFBOARD_CONFIG`, else
//! `config/offboard.toml`), overridden key by key by `OFFBOARD_SECTION__KEY` environment
//! variables, parsed once into the types the rest of the program uses.
//!
//! Every error names the key and says what is wrong, because a daemon that refuses to start
//! with "invalid type" sends its operator hunting. Secrets are read here, from environment
//! variables or files, and never from the config file itself.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

pub const DEFAULT_PATH: &str = "config/offboard.toml";
pub const ENV_PREFIX: &str = "OFFBOARD_";

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

/// The whole configuration, validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created on first run) or `postgres://…`.
    pub url: DatabaseUrl,
    pub max_connections: Count,
    /// SQLite only: how long a writer waits for the lock before giving up.
    pub busy_timeout: HumanDuration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: DatabaseUrl("sqlite://offboard.db".into()),
            max_connections: Count(10),
            busy_timeout: HumanDuration(Duration::from_secs(10)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    pub schedule: CronSchedule,
    pub lease: HumanDuration,
    /// Requests worked on at once by one process.
    pub concurrency: Count,
    /// Claims of one request before it is `failed` (durable attempts).
    pub max_attempts: Count,
    pub batch_size: Count,
    /// How long shutdown waits for in-flight requests before releasing them.
    pub shutdown_grace: HumanDuration,
    /// How this worker names itself in `locked_by` and audit rows. Default: host:pid:random.
    pub id: Option<String>,
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
            id: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Tries per token within one claim, the first included.
    pub attempts: Count,
    pub base: HumanDuration,
    pub factor: Factor,
    pub cap: HumanDuration,
    /// Longest `Retry-After` waited out in process; a longer one sends the request back to
    /// `pending` with `next_attempt_at` at the end of the pause.
    pub retry_after_cap: HumanDuration,
    /// Durable backoff between claims: base × 2^(attempt-1), capped, with equal jitter.
    pub durable_base: HumanDuration,
    pub durable_cap: HumanDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: Count(4),
            base: HumanDuration(Duration::from_millis(200)),
            factor: Factor(2.0),
            cap: HumanDuration(Duration::from_secs(10)),
            retry_after_cap: HumanDuration(Duration::from_secs(60)),
            durable_base: HumanDuration(Duration::from_secs(30)),
            durable_cap: HumanDuration(Duration::from_secs(3600)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub not_revocable: NotRevocablePolicy,
    pub not_revocable_within: HumanDuration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            not_revocable: NotRevocablePolicy::Expiring,
            not_revocable_within: HumanDuration(Duration::from_secs(24 * 3600)),
        }
    }
}

/// Whether a token that cannot be revoked settles its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotRevocablePolicy {
    /// Settled when it expires within `not_revocable_within`.
    Expiring,
    /// Always settled; the reason is recorded.
    Settle,
    /// Never settled: the request fails and deletion stays blocked.
    Block,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Bytes of a response body read at most; the rest is dropped.
    pub max_body_bytes: Count,
    pub user_agent: String,
    /// Longest wait for a TCP and TLS connection, for every provider.
    pub connect_timeout: HumanDuration,
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
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `offboard=debug,info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// The operations endpoint of `offboard run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address for `/healthz`, `/readyz` and `/metrics`, or `"off"`.
    pub listen: ListenAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: ListenAddr(Some(SocketAddr::from(([127, 0, 0, 1], 9187)))),
        }
    }
}

/// A socket address such as `127.0.0.1:9187`, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub Option<SocketAddr>);

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "off" | "" => Ok(ListenAddr(None)),
            addr => addr
                .parse()
                .map(|a| ListenAddr(Some(a)))
                .map_err(|_| format!("'{raw}' is not an address such as \"127.0.0.1:9187\" (or \"off\")")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Human,
    Json,
}

/// One `[providers.NAME]` table. NAME is the value of `oauth_tokens.provider`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub dialect: Dialect,
    pub url: ProviderUrl,
    pub client_id: String,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// Refused with a pointer to `client_secret_env`: secrets never live in the file.
    client_secret: Option<toml::Value>,
    /// How the client authenticates: `client_secret_basic` or `client_secret_post`
    /// (rfc7009 and moov).
    pub auth: Option<ClientAuth>,
    /// moov: `json` (default) or `form`.
    pub content_type: Option<BodyFormat>,
    /// moov: the `x-moov-version` header.
    pub api_version: Option<String>,
    #[serde(default = "default_rate")]
    pub rate: Rate,
    #[serde(default = "default_burst")]
    pub burst: Count,
    /// Longest wait for one call's answer.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Filled from `client_secret_env` / `client_secret_file` by [`Config::read_secrets`].
    #[serde(skip)]
    pub client_secret_value: Option<SecretString>,
}

fn default_rate() -> Rate {
    Rate {
        count: NonZeroU32::new(10).expect("non-zero"),
        per: Duration::from_secs(1),
    }
}
fn default_burst() -> Count {
    Count(5)
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Rfc7009,
    Stitch,
    Moov,
    Onelogin,
    Auth0,
}

impl Dialect {
    pub const ALL: [Dialect; 5] = [
        Dialect::Rfc7009,
        Dialect::Stitch,
        Dialect::Moov,
        Dialect::Onelogin,
        Dialect::Auth0,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Rfc7009 => "rfc7009",
            Dialect::Stitch => "stitch",
            Dialect::Moov => "moov",
            Dialect::Onelogin => "onelogin",
            Dialect::Auth0 => "auth0",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    Json,
    Form,
}

/// Generates a `Deserialize` impl for a newtype parsed from a string with `FromStr`, so a
/// parse error carries its message and `serde_path_to_error` adds the key.
macro_rules! deserialize_via_from_str {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A duration written as `60s`, `500ms`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        humantime::parse_duration(raw.trim())
            .map(HumanDuration)
            .map_err(|e| format!("'{raw}' is not a duration such as \"60s\" or \"500ms\" ({e})"))
    }
}
deserialize_via_from_str!(HumanDuration);

/// A positive whole number. Accepts a TOML integer or a string of digits, so that
/// environment overrides (always strings) work for numeric keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u32);

impl Count {
    pub fn get(self) -> u32 {
        self.0
    }
    pub fn usize(self) -> usize {
        self.0 as usize
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value: i64 = number_or_string(d, "a whole number")?;
        match u32::try_from(value) {
            Ok(n) if n > 0 => Ok(Count(n)),
            _ => Err(serde::de::Error::custom(format!(
                "must be a whole number from 1 to {}, got {value}",
                u32::MAX
            ))),
        }
    }
}

/// A multiplier such as 2 or 1.5, from a TOML number or a string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Factor(pub f64);

impl<'de> Deserialize<'de> for Factor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value: f64 = number_or_string(d, "a number")?;
        if (1.0..=10.0).contains(&value) {
            Ok(Factor(value))
        } else {
            Err(serde::de::Error::custom(format!(
                "must be between 1 and 10, got {value}"
            )))
        }
    }
}

/// A number written as a TOML number or as a string of one (environment overrides are
/// always strings), parsed with `FromStr` either way.
fn number_or_string<'de, D, T>(d: D, what: &str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr,
{
    let text = match toml::Value::deserialize(d)? {
        toml::Value::String(s) => s.trim().to_owned(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(n) => n.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected {what}, got a {}",
                other.type_str()
            )));
        }
    };
    text.parse::<T>()
        .map_err(|_| serde::de::Error::custom(format!("'{text}' is not {what}")))
}

/// A rate such as `20/s`, `600/m` or `1000/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || format!("'{raw}' is not a rate such as \"20/s\", \"600/m\" or \"1000/h\"");
        let (count, unit) = raw.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let count = NonZeroU32::new(count).ok_or_else(|| format!("'{raw}': rate must be above zero"))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        Ok(Rate { count, per })
    }
}
deserialize_via_from_str!(Rate);

/// A cron expression with seconds (6 or 7 fields).
#[derive(Debug, Clone)]
pub struct CronSchedule(pub cron::Schedule);

impl FromStr for CronSchedule {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let fields = raw.split_whitespace().count();
        if fields == 5 {
            return Err(format!(
                "'{raw}' has 5 fields; offboard's cron needs 6 or 7, seconds first \
                 (for every minute write \"0 * * * * *\")"
            ));
        }
        cron::Schedule::from_str(raw)
            .map(CronSchedule)
            .map_err(|e| format!("'{raw}' is not a cron expression with seconds first ({e})"))
    }
}
deserialize_via_from_str!(CronSchedule);

/// A database URL: `sqlite:` or `postgres:`/`postgresql:`. Its `Debug` hides any password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres:") || self.0.starts_with("postgresql:")
    }
    /// The URL with any password replaced, for messages.
    pub fn redacted(&self) -> String {
        match reqwest::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("REDACTED"));
                url.to_string()
            }
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("sqlite:") || raw.starts_with("postgres:") || raw.starts_with("postgresql:") {
            Ok(DatabaseUrl(raw.to_owned()))
        } else {
            Err("must start with sqlite:// or postgres://".into())
        }
    }
}
deserialize_via_from_str!(DatabaseUrl);

/// A provider endpoint: `https://`, or `http://` to a loopback address only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUrl(pub reqwest::Url);

impl FromStr for ProviderUrl {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(raw.trim()).map_err(|e| format!("'{raw}' is not a URL ({e})"))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => Ok(ProviderUrl(url)),
            "http" if loopback => Ok(ProviderUrl(url)),
            "http" => Err(format!(
                "'{raw}' must use https:// (plain http is allowed only to loopback addresses)"
            )),
            other => Err(format!("'{raw}' has scheme {other}; use https://")),
        }
    }
}
deserialize_via_from_str!(ProviderUrl);
deserialize_via_from_str!(ListenAddr);

impl Config {
    /// Where the config file is: the flag, else `OFFBOARD_CONFIG`, else the default path.
    pub fn locate(flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| std::env::var_os("OFFBOARD_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }

    /// Reads the file (or takes the defaults when `path` is the default location and no file
    /// is there), applies environment overrides, and parses and validates every key. Secrets
    /// are not read here: see [`Config::read_secrets`].
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
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

    /// As [`Config::load`], from text and an explicit environment (tests pass their own).
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let env: Vec<(String, String)> = env.into_iter().collect();
        apply_env_overrides(&mut table, &env)?;
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            // toml appends "in `section`" on a second line; the key path already says it.
            let message = e.into_inner().to_string();
            let message = message.lines().next().unwrap_or_default().trim().to_owned();
            ConfigError::key(if key == "." { "config".into() } else { key }, message)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads every provider's client secret from its environment variable or file. Needed
    /// only by commands that call providers.
    pub fn read_secrets(&mut self) -> Result<(), ConfigError> {
        self.read_secrets_with(|name| std::env::var(name).ok())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.worker.lease.0 < Duration::from_secs(2) {
            return Err(ConfigError::key("worker.lease", "must be at least 2s"));
        }
        if self.retry.cap.0 < self.retry.base.0 {
            return Err(ConfigError::key("retry.cap", "must not be below retry.base"));
        }
        if self.retry.durable_cap.0 < self.retry.durable_base.0 {
            return Err(ConfigError::key(
                "retry.durable_cap",
                "must not be below retry.durable_base",
            ));
        }
        for (name, p) in &self.providers {
            let key = |k: &str| format!("providers.{name}.{k}");
            if name.is_empty() || name.len() > 100 {
                return Err(ConfigError::key(
                    key("").trim_end_matches('.'),
                    "provider names must be 1 to 100 characters",
                ));
            }
            if p.client_secret.is_some() {
                return Err(ConfigError::key(
                    key("client_secret"),
                    "secrets are never read from the config file; set client_secret_env \
                     (an environment variable name) or client_secret_file (a path)",
                ));
            }
            if p.client_secret_env.is_some() && p.client_secret_file.is_some() {
                return Err(ConfigError::key(
                    key("client_secret_file"),
                    "set client_secret_env or client_secret_file, not both",
                ));
            }
            let has_secret = p.client_secret_env.is_some() || p.client_secret_file.is_some();
            if !has_secret && p.dialect != Dialect::Auth0 {
                return Err(ConfigError::key(
                    key("client_secret_env"),
                    format!(
                        "the {} dialect needs a client secret: set client_secret_env or client_secret_file",
                        p.dialect
                    ),
                ));
            }
            if p.client_id.trim().is_empty() {
                return Err(ConfigError::key(key("client_id"), "must not be empty"));
            }
            if p.auth.is_some() && !matches!(p.dialect, Dialect::Rfc7009 | Dialect::Moov) {
                return Err(ConfigError::key(
                    key("auth"),
                    format!("applies to the rfc7009 and moov dialects only, not {}", p.dialect),
                ));
            }
            if (p.content_type.is_some() || p.api_version.is_some()) && p.dialect != Dialect::Moov {
                let which = if p.content_type.is_some() {
                    "content_type"
                } else {
                    "api_version"
                };
                return Err(ConfigError::key(
                    key(which),
                    format!("applies to the moov dialect only, not {}", p.dialect),
                ));
            }
        }
        Ok(())
    }

    /// As [`Config::read_secrets`], with the environment given.
    pub fn read_secrets_with(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for (name, p) in &mut self.providers {
            let key = |k: &str| format!("providers.{name}.{k}");
            let secret = if let Some(var) = &p.client_secret_env {
                match env(var) {
                    Some(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
                    Some(_) => {
                        return Err(ConfigError::key(
                            key("client_secret_env"),
                            format!("environment variable {var} is empty"),
                        ));
                    }
                    None => {
                        return Err(ConfigError::key(
                            key("client_secret_env"),
                            format!("environment variable {var} is not set"),
                        ));
                    }
                }
            } else if let Some(path) = &p.client_secret_file {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::key(
                        key("client_secret_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let text = text.trim().to_owned();
                if text.is_empty() {
                    return Err(ConfigError::key(
                        key("client_secret_file"),
                        format!("{} is empty", path.display()),
                    ));
                }
                Some(text)
            } else {
                None
            };
            p.client_secret_value = secret.map(SecretString::from);
        }
        Ok(())
    }
}

/// Applies `OFFBOARD_A__B__C=value` as key `a.b.c`. Segments match existing keys without
/// regard to case (so `OFFBOARD_PROVIDERS__ACME__URL` finds `[providers.Acme]`); new keys
/// are lower-cased. Values are strings; numeric keys parse them. Variables without `__`
/// (such as `OFFBOARD_CONFIG`) are not overrides.
fn apply_env_overrides(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let segments: Vec<&str> = rest.split("__").collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(ConfigError::key(
                name.clone(),
                "environment override has an empty key segment",
            ));
        }
        let mut current = &mut *table;
        for (i, segment) in segments.iter().enumerate() {
            let existing = current
                .keys()
                .find(|k| k.eq_ignore_ascii_case(segment))
                .cloned()
                .unwrap_or_else(|| segment.to_ascii_lowercase());
            if i + 1 == segments.len() {
                current.insert(existing, toml::Value::String(value.clone()));
            } else {
                let entry = current
                    .entry(existing.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                current = entry.as_table_mut().ok_or_else(|| {
                    ConfigError::key(
                        name.clone(),
                        format!("{existing} is not a table, so it cannot be overridden by key"),
                    )
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut config = Config::from_toml(text, Path::new("test.toml"), vars.clone())?;
        config.read_secrets_with(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))?;
        Ok(config)
    }

    const ACME: &str = r#"
        [providers.acme]
        dialect = "rfc7009"
        url = "https://auth.acme.example/oauth2/revoke"
        client_id = "offboard"
        client_secret_env = "ACME_SECRET"
    "#;

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
        let shipped = parse(include_str!("../config/offboard.toml"), &[]).unwrap();
        let defaults = parse("", &[]).unwrap();
        assert_eq!(format!("{shipped:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn a_provider_reads_its_secret_from_the_environment() {
        let config = parse(ACME, &[("ACME_SECRET", "s3cret")]).unwrap();
        let acme = &config.providers["acme"];
        assert_eq!(acme.dialect, Dialect::Rfc7009);
        assert!(acme.client_secret_value.is_some());
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn a_missing_secret_variable_names_the_key_and_the_variable() {
        let err = parse(ACME, &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            "providers.acme.client_secret_env: environment variable ACME_SECRET is not set"
        );
    }

    #[test]
    fn a_literal_secret_in_the_file_is_refused() {
        let text = format!("{ACME}\nclient_secret = \"oops\"");
        let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
        assert!(
            err.starts_with("providers.acme.client_secret: secrets are never read"),
            "{err}"
        );
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

    #[test]
    fn a_five_field_cron_line_is_explained() {
        let err = parse("[worker]\nschedule = \"*/5 * * * *\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("worker.schedule: '*/5 * * * *' has 5 fields"), "{err}");
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        let text = ACME.replace("https://auth.acme.example", "http://auth.acme.example");
        let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
        assert!(err.starts_with("providers.acme.url: "), "{err}");
        assert!(err.contains("must use https://"), "{err}");
        let text = ACME.replace("https://auth.acme.example", "http://127.0.0.1:8080");
        assert!(parse(&text, &[("ACME_SECRET", "x")]).is_ok());
    }

    #[test]
    fn environment_overrides_keys_case_insensitively_and_parses_numbers() {
        let config = parse(
            ACME,
            &[
                ("ACME_SECRET", "x"),
                ("OFFBOARD_WORKER__CONCURRENCY", "7"),
                ("OFFBOARD_PROVIDERS__ACME__RATE", "3/m"),
                ("OFFBOARD_DATABASE__URL", "postgres://u@h/db"),
                ("OFFBOARD_CONFIG", "ignored.toml"),
            ],
        )
        .unwrap();
        assert_eq!(config.worker.concurrency, Count(7));
        assert_eq!(config.providers["acme"].rate.per, Duration::from_secs(60));
        assert!(config.database.url.is_postgres());
        let err = parse("", &[("OFFBOARD_WORKER__MAX_ATTEMPTS", "0")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("worker.max_attempts: must be a whole number from 1"),
            "{err}"
        );
    }

    #[test]
    fn rates_parse_with_their_unit() {
        assert_eq!("20/s".parse::<Rate>().unwrap().count.get(), 20);
        assert_eq!("600/m".parse::<Rate>().unwrap().per, Duration::from_secs(60));
        assert!("20 per second".parse::<Rate>().is_err());
        assert!("0/s".parse::<Rate>().is_err());
    }

    #[test]
    fn database_url_debug_hides_the_password() {
        let url: DatabaseUrl = "postgres://user:hunter2@db/offboard".parse().unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn dialect_specific_keys_are_refused_elsewhere() {
        let text = format!("{ACME}\ncontent_type = \"form\"");
        let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
        assert!(
            err.starts_with("providers.acme.content_type: applies to the moov dialect only"),
            "{err}"
        );
    }
}
