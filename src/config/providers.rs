//! The `[providers.NAME]` tables: their keys, the rules between keys (which dialect takes
//! which key, who needs a secret) and the [`SecretSource`] their secret keys become.
//!
//! A table is read as written ([`ProviderFile`]) and then checked into a [`ProviderConfig`],
//! rather than deserialized straight into it, because `client_secret_env` and
//! `client_secret_file` become one typed field and every rule must name the key it breaks,
//! which a check after parsing can do and a serde conversion cannot.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::values::MINUTE;
use super::{ConfigError, Count, HumanDuration, ProviderUrl, Rate, SecretSource};
use crate::provider::dialect::{BodyFormat, ClientAuth, Dialect};

/// One `[providers.NAME]` table, validated. NAME is the value of `oauth_tokens.provider`.
#[derive(Debug, Clone)]
pub(crate) struct ProviderConfig {
    pub(crate) dialect: Dialect,
    pub(crate) url: ProviderUrl,
    pub(crate) client_id: String,
    /// From `client_secret_env` or `client_secret_file`; read by [`Config::resolve_secrets`].
    pub(crate) secret: SecretSource,
    /// How the client authenticates: `client_secret_basic` or `client_secret_post`
    /// (rfc7009 and moov).
    pub(crate) auth: Option<ClientAuth>,
    /// moov: `json` (default) or `form`.
    pub(crate) content_type: Option<BodyFormat>,
    /// moov: the `x-moov-version` header.
    pub(crate) api_version: Option<String>,
    pub(crate) rate: Rate,
    pub(crate) burst: Burst,
    /// Longest wait for one call's answer, its body included.
    pub(crate) timeout: CallTimeout,
}

/// Calls let through at once after a quiet spell.
pub(crate) type Burst = Count<10_000>;
/// A provider that has not answered in five minutes is not going to.
pub(crate) type CallTimeout = HumanDuration<1, { 5 * MINUTE }>;

/// One `[providers.NAME]` table as written: [`ProviderConfig`] with its secret keys still
/// apart. No `Debug`, so a literal secret could never be printed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderFile {
    dialect: Dialect,
    url: ProviderUrl,
    client_id: String,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    /// Refused with a pointer to `client_secret_env`: secrets never live in the file. Its
    /// value is skipped unread.
    client_secret: Option<IgnoredAny>,
    auth: Option<ClientAuth>,
    content_type: Option<BodyFormat>,
    api_version: Option<String>,
    #[serde(default = "default_rate")]
    rate: Rate,
    #[serde(default = "default_burst")]
    burst: Burst,
    #[serde(default = "default_timeout")]
    timeout: CallTimeout,
}

fn default_rate() -> Rate {
    "10/s".parse().expect("default rate parses")
}
fn default_burst() -> Burst {
    Count(5)
}
fn default_timeout() -> CallTimeout {
    HumanDuration(Duration::from_secs(10))
}

impl ProviderFile {
    pub(super) fn validate(self, name: &str) -> Result<ProviderConfig, ConfigError> {
        let key = |k: &str| format!("providers.{name}.{k}");
        if name.is_empty() || name.len() > 100 {
            return Err(ConfigError::key(
                key("").trim_end_matches('.'),
                "provider names must be 1 to 100 characters",
            ));
        }
        let secret = SecretSource::from_keys(
            name,
            self.client_secret.is_some(),
            self.client_secret_env,
            self.client_secret_file,
        )?;
        if secret == SecretSource::None && self.dialect != Dialect::Auth0 {
            return Err(ConfigError::key(
                key("client_secret_env"),
                format!(
                    "the {} dialect needs a client secret: set client_secret_env or client_secret_file",
                    self.dialect
                ),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::key(key("client_id"), "must not be empty"));
        }
        if self.auth.is_some() && !matches!(self.dialect, Dialect::Rfc7009 | Dialect::Moov) {
            return Err(ConfigError::key(
                key("auth"),
                format!("applies to the rfc7009 and moov dialects only, not {}", self.dialect),
            ));
        }
        if (self.content_type.is_some() || self.api_version.is_some()) && self.dialect != Dialect::Moov {
            let which = if self.content_type.is_some() {
                "content_type"
            } else {
                "api_version"
            };
            return Err(ConfigError::key(
                key(which),
                format!("applies to the moov dialect only, not {}", self.dialect),
            ));
        }
        Ok(ProviderConfig {
            dialect: self.dialect,
            url: self.url,
            client_id: self.client_id,
            secret,
            auth: self.auth,
            content_type: self.content_type,
            api_version: self.api_version,
            rate: self.rate,
            burst: self.burst,
            timeout: self.timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{ACME, parse};

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
