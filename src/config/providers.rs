//! The `[providers.NAME]` tables: their keys, the rules between keys (who needs a secret and
//! a client id) and the [`SecretSource`] their secret keys become.
//!
//! A table holds two kinds of keys: the provider's own (`dialect`, `client_id`, the secret
//! keys, `rate`, `burst`, `timeout`, `allow_org_wide`), read here, and the keys of its
//! definition (`url`, `method`, `auth`, …, see `provider::definition`), laid over the
//! catalogue entry that `dialect` names (or over nothing, for a provider defined inline) and
//! read there. A table is read as written ([`ProviderFile`]) and then checked into a
//! [`ProviderConfig`], rather than deserialized straight into it, because every rule must
//! name the key it breaks, which a check after parsing can do and a serde conversion cannot.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::endpoints::Endpoints;
use super::jwt::{self, JwtKeyFields, JwtKeys};
use super::values::MINUTE;
use super::{ConfigError, Count, HumanDuration, Rate, SecretSource};
use crate::provider::catalog;
use crate::provider::definition::{self, Definition, SecretUse};
use crate::provider::dialect::BodyFormat;

/// The provider's own keys, besides those of its definition.
const PROVIDER_KEYS: [&str; 11] = [
    "dialect",
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "client_secret",
    "content_type",
    "rate",
    "burst",
    "max_in_flight",
    "timeout",
    "allow_org_wide",
];

/// One `[providers.NAME]` table, validated. NAME is the value of `oauth_tokens.provider`.
#[derive(Debug, Clone)]
pub(crate) struct ProviderConfig {
    /// The catalogue entry it starts from; `None` for a provider defined inline.
    pub(crate) dialect: Option<String>,
    /// The entry with the provider's keys laid over it, checked.
    pub(crate) definition: Definition,
    /// Where its calls go: the definition's URL with its variables filled (or the
    /// provider's own), or its issuer; and the endpoint of its check, if any.
    pub(crate) endpoints: Endpoints,
    /// The definition's template variables (`subdomain`, `api_version`).
    pub(crate) vars: BTreeMap<String, String>,
    /// Empty when the definition sends none (`auth = "none"` or `"bearer"`).
    pub(crate) client_id: String,
    /// From `client_secret_env` or `client_secret_file`; read by [`Config::resolve_secrets`].
    pub(crate) secret: SecretSource,
    /// What signs the client secret, for a definition with `client_secret_jwt`.
    pub(crate) jwt: Option<JwtKeys>,
    pub(crate) rate: Rate,
    pub(crate) burst: Burst,
    /// Calls to this provider one worker has in flight at once: the most connections it
    /// keeps open to it.
    pub(crate) max_in_flight: InFlight,
    /// Longest wait for one call's answer, its body included.
    pub(crate) timeout: CallTimeout,
    /// Whether calls that act on a whole organisation (the definition's `org_wide`) are sent.
    pub(crate) allow_org_wide: bool,
}

impl ProviderConfig {
    /// The dialect, or `inline` for a provider defined by its own keys.
    pub(crate) fn kind(&self) -> &str {
        self.dialect.as_deref().unwrap_or("inline")
    }

    /// Why provider `name` sends nothing: its calls act on a whole organisation (the
    /// definition's `org_wide`) and it has not set `allow_org_wide = true`. Each of its
    /// tokens is then not revocable with this reason, in its audit row.
    pub(crate) fn org_wide_refusal(&self, name: &str) -> Option<String> {
        let why = self.definition.org_wide.as_deref()?;
        (!self.allow_org_wide)
            .then(|| format!("{why} (org-wide); set providers.{name}.allow_org_wide = true to allow it"))
    }
}

/// Calls let through at once after a quiet spell.
pub(crate) type Burst = Count<10_000>;
/// Calls in flight to one provider: a call waits for a free one before its rate limit.
pub(crate) type InFlight = Count<10_000>;
/// A provider that has not answered in five minutes is not going to.
pub(crate) type CallTimeout = HumanDuration<1, { 5 * MINUTE }>;

/// One `[providers.NAME]` table as written: the provider's own keys, with its secret keys
/// still apart, and the keys of its definition, unread. No `Debug`, so a literal secret
/// could never be printed.
#[derive(Deserialize)]
pub(super) struct ProviderFile {
    dialect: Option<String>,
    client_id: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    /// Refused with a pointer to `client_secret_env`: secrets never live in the file. Its
    /// value is skipped unread.
    client_secret: Option<IgnoredAny>,
    /// moov's body encoding, from before `body`: `json` or `form`.
    content_type: Option<BodyFormat>,
    #[serde(default = "default_rate")]
    rate: Rate,
    #[serde(default = "default_burst")]
    burst: Burst,
    #[serde(default = "default_in_flight")]
    max_in_flight: InFlight,
    #[serde(default = "default_timeout")]
    timeout: CallTimeout,
    #[serde(default)]
    allow_org_wide: Flag,
    /// `team_id`, `key_id`, `private_key_env`, `private_key_file`.
    #[serde(flatten)]
    jwt: JwtKeyFields,
    /// Every other key: the definition's, checked by `provider::definition`, which refuses
    /// the unknown ones.
    #[serde(flatten)]
    definition: toml::Table,
}

fn default_rate() -> Rate {
    "10/s".parse().expect("default rate parses")
}
fn default_burst() -> Burst {
    Count(5)
}
/// Enough for the default rate with calls answered within 1.6 s, and for 160 calls a
/// second answered within 100 ms; a connection open to a provider holds about 20 KiB.
fn default_in_flight() -> InFlight {
    Count(16)
}
fn default_timeout() -> CallTimeout {
    HumanDuration(Duration::from_secs(10))
}

/// `true` or `false`; as an environment override sets a string, also `"true"` or `"false"`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Flag(pub(super) bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::Boolean(b) => Ok(Flag(b)),
            toml::Value::String(s) if s == "true" || s == "false" => Ok(Flag(s == "true")),
            other => Err(serde::de::Error::custom(format!("expected true or false, got {other}"))),
        }
    }
}

/// The dialect as messages name it.
struct Named<'a>(Option<&'a str>);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => write!(f, "the {d} dialect"),
            None => f.write_str("this provider"),
        }
    }
}

impl ProviderFile {
    /// `from_tokens`: the template variables token sources map from their columns.
    pub(super) fn validate(self, name: &str, from_tokens: &[String]) -> Result<ProviderConfig, ConfigError> {
        let key = |k: &str| format!("providers.{name}.{k}");
        if name.is_empty() || name.len() > 100 {
            return Err(ConfigError::key(
                key("").trim_end_matches('.'),
                "provider names must be 1 to 100 characters",
            ));
        }
        let mut table = match &self.dialect {
            Some(d) => catalog::entry(d)
                .ok_or_else(|| ConfigError::key(key("dialect"), catalog::unknown(d)))?
                .table
                .clone(),
            None => toml::Table::new(),
        };
        let dialect = self.dialect.as_deref();
        let mut over = self.definition;
        if let Some(format) = self.content_type {
            if dialect != Some("moov") {
                return Err(ConfigError::key(
                    key("content_type"),
                    format!(
                        "applies to the moov dialect only, not {}; elsewhere, set body",
                        dialect.unwrap_or("a provider with no dialect")
                    ),
                ));
            }
            if over.contains_key("body") {
                return Err(ConfigError::key(
                    key("content_type"),
                    "set content_type or body, not both",
                ));
            }
            over.insert("body".into(), toml::Value::String(format.as_str().into()));
        }
        definition::checks::issuer_or_url(&mut table, &over).map_err(|e| ConfigError::key(key(&e.key), e.message))?;
        let auth_set = over.contains_key("auth");
        definition::merge(&mut table, over);
        let what = match dialect {
            Some(d) => format!("the {d} entry"),
            None => "a provider with no dialect".to_owned(),
        };
        let known = [&PROVIDER_KEYS[..], &jwt::KEYS[..]].concat();
        let resolved = definition::resolve_with(table, &what, &known, from_tokens).map_err(|e| {
            let full = if e.key.is_empty() || e.key == "." {
                format!("providers.{name}")
            } else {
                key(&e.key)
            };
            ConfigError::key(full, e.message)
        })?;
        let definition = resolved.definition.clone();
        let secret = SecretSource::from_keys(
            name,
            self.client_secret.is_some(),
            self.client_secret_env,
            self.client_secret_file,
        )?;
        let jwt = self.jwt.check(
            name,
            definition.client_secret_jwt.as_ref(),
            &secret,
            &Named(dialect).to_string(),
        )?;
        match (definition.secret_use(), &secret) {
            (SecretUse::Required, SecretSource::None) if jwt.is_none() => {
                return Err(ConfigError::key(
                    key("client_secret_env"),
                    format!(
                        "{} needs a client secret: set client_secret_env or client_secret_file",
                        Named(dialect)
                    ),
                ));
            }
            (SecretUse::Unused, SecretSource::Env(_) | SecretSource::File(_)) => {
                let which = if matches!(secret, SecretSource::Env(_)) {
                    "client_secret_env"
                } else {
                    "client_secret_file"
                };
                return Err(ConfigError::key(
                    key(which),
                    format!(
                        "{} sends no client secret (auth = {}); remove this key",
                        Named(dialect),
                        definition.auth.describe()
                    ),
                ));
            }
            _ => {}
        }
        let client_id = match self.client_id {
            Some(id) if id.trim().is_empty() => return Err(ConfigError::key(key("client_id"), "must not be empty")),
            Some(id) => id,
            None if definition.sends_client_id() => {
                return Err(ConfigError::key(
                    key("client_id"),
                    format!(
                        "must be set: {} sends it (auth = {})",
                        Named(dialect),
                        definition.auth.describe()
                    ),
                ));
            }
            None => String::new(),
        };
        let endpoints = Endpoints::of(&resolved, &key, &what, auth_set, &client_id)?;
        Ok(ProviderConfig {
            dialect: self.dialect,
            definition,
            endpoints,
            vars: resolved.vars,
            client_id,
            secret,
            jwt,
            rate: self.rate,
            burst: self.burst,
            max_in_flight: self.max_in_flight,
            timeout: self.timeout,
            allow_org_wide: self.allow_org_wide.0,
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
        let text = format!("{ACME}\napi_version = \"v2025.01.00\"");
        let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
        assert!(
            err.starts_with("providers.acme.api_version: unknown field `api_version`"),
            "{err}"
        );
    }

    const MOOV: &str = "[providers.m]\ndialect = \"moov\"\nclient_id = \"c\"\nclient_secret_env = \"S\"\n";

    #[test]
    fn an_entry_gives_its_url_and_variables_and_the_provider_overrides_them() {
        let config = parse(MOOV, &[("S", "x")]).unwrap();
        let m = &config.providers["m"];
        assert_eq!(m.endpoints.to_string(), "https://api.moov.io/oauth2/revoke");
        assert_eq!(m.vars["api_version"], "v2024.01.00");
        assert_eq!(m.kind(), "moov");
        let text = format!("{MOOV}url = \"https://eu.moov.example/oauth2/revoke\"\napi_version = \"v2025.07.00\"\n");
        let config = parse(&text, &[("S", "x")]).unwrap();
        let m = &config.providers["m"];
        assert_eq!(m.endpoints.to_string(), "https://eu.moov.example/oauth2/revoke");
        assert_eq!(m.vars["api_version"], "v2025.07.00");
    }

    #[test]
    fn the_legacy_content_type_and_body_are_one_key() {
        let config = parse(&format!("{MOOV}content_type = \"form\"\n"), &[("S", "x")]).unwrap();
        assert_eq!(
            config.providers["m"].definition.body,
            crate::provider::definition::BodyEncoding::Form
        );
        let err = parse(
            &format!("{MOOV}content_type = \"form\"\nbody = \"json\"\n"),
            &[("S", "x")],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "providers.m.content_type: set content_type or body, not both");
    }

    /// The example of README "Defining a provider" is a provider this version accepts.
    #[test]
    fn the_readme_example_of_an_inline_provider_parses() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("#### Defining a provider").expect("the section")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let example = &section[start..start + section[start..].find("```").expect("its end")];
        let config = parse(example, &[("ACME_CLIENT_SECRET", "x")]).unwrap();
        let acme = &config.providers["acme"];
        assert_eq!(acme.kind(), "inline");
        assert_eq!(acme.endpoints.to_string(), "https://eu.acme.example/oauth2/revoke");
    }

    #[test]
    fn a_misspelt_provider_key_is_named_with_the_key_meant() {
        let err = parse(&format!("{ACME}\ntimout = \"5s\""), &[("ACME_SECRET", "x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("providers.acme.timout: unknown field `timout`"),
            "{err}"
        );
        assert!(err.ends_with("(did you mean timeout?)"), "{err}");
    }

    #[test]
    fn a_client_id_is_needed_only_where_it_is_sent() {
        let err = parse(
            "[providers.a]\ndialect = \"auth0\"\ndomain = \"acme.eu.auth0.com\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "providers.a.client_id: must be set: the auth0 dialect sends it (auth = client_secret_post)"
        );
        let config = parse("[providers.g]\ndialect = \"google\"\n", &[]).unwrap();
        assert_eq!(config.providers["g"].client_id, "");
    }
}
