//! Provider client secrets: where each one is ([`SecretSource`], from the keys
//! `client_secret_env` and `client_secret_file`) and reading it when it is needed.
//!
//! Loading the config does not read secrets, because `offboard gate USER` runs inside the
//! deletion job, whose environment has no provider secrets, and must not fail over them.
//! Instead the code that needs them reads them: `provider::Providers::from_config`, the only
//! thing that sends secrets, cannot be built without them, and `check-config` reads them to
//! report. No command has a separate call to remember. A secret is never taken from the
//! config file itself, and no `Debug` here shows one (`SecretString` prints as redacted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::{Config, ConfigError};
use crate::provider::jwt::JwtSigner;

/// A provider's client secret, read: a string, or a JWT signed for each use from the
/// provider's key (`client_secret_jwt`). `Debug` shows neither.
pub(crate) enum ClientSecret {
    Static(SecretString),
    Jwt(Box<JwtSigner>),
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientSecret::Static(_) => f.write_str("ClientSecret::Static([REDACTED])"),
            ClientSecret::Jwt(signer) => f.debug_tuple("ClientSecret::Jwt").field(signer).finish(),
        }
    }
}

impl ClientSecret {
    /// The secret to send now; an error says why a JWT could not be signed, in words.
    pub(crate) fn current(&self) -> Result<SecretString, String> {
        match self {
            ClientSecret::Static(secret) => Ok(secret.clone()),
            ClientSecret::Jwt(signer) => signer
                .client_secret()
                .map_err(|e| format!("cannot sign the client secret (ES256): {e}")),
        }
    }
}

/// Where a provider's client secret is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SecretSource {
    /// `client_secret_env`: the name of the environment variable that holds it.
    Env(String),
    /// `client_secret_file`: a file that holds it (surrounding whitespace is dropped).
    File(PathBuf),
    /// Neither key: a public client, which authenticates with its client id alone.
    None,
}

impl SecretSource {
    /// From the secret keys of `[providers.NAME]` as written: `literal` says whether the
    /// refused `client_secret` key is there. Errors name the offending key.
    pub(super) fn from_keys(
        name: &str,
        literal: bool,
        env: Option<String>,
        file: Option<PathBuf>,
    ) -> Result<SecretSource, ConfigError> {
        let key = |k: &str| format!("providers.{name}.{k}");
        if literal {
            return Err(ConfigError::key(
                key("client_secret"),
                "secrets are never read from the config file; set client_secret_env \
                 (an environment variable name) or client_secret_file (a path)",
            ));
        }
        match (env, file) {
            (Some(_), Some(_)) => Err(ConfigError::key(
                key("client_secret_file"),
                "set client_secret_env or client_secret_file, not both",
            )),
            (Some(var), None) => Ok(SecretSource::Env(var)),
            (None, Some(path)) => Ok(SecretSource::File(path)),
            (None, None) => Ok(SecretSource::None),
        }
    }

    /// Reads the secret of provider `name`, looking variables up with `env`. `Ok(None)` for a
    /// public client; a variable that is unset or empty, or a file that cannot be read or
    /// is empty, is an error naming the key, such as
    /// `providers.acme.client_secret_env: environment variable ACME_SECRET is not set`.
    pub(crate) fn resolve(
        &self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<SecretString>, ConfigError> {
        let key = |k: &str| format!("providers.{name}.{k}");
        match self {
            SecretSource::Env(var) => read_env_secret(&key("client_secret_env"), var, env).map(Some),
            SecretSource::File(path) => read_file_secret(&key("client_secret_file"), path).map(Some),
            SecretSource::None => Ok(None),
        }
    }
}

/// Reads a secret from the environment variable `var`, which the config key `key` names;
/// surrounding whitespace is dropped. An unset or empty variable is an error naming the key
/// and the variable, never a value.
pub(crate) fn read_env_secret(
    key: &str,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretString, ConfigError> {
    match env(var) {
        Some(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_owned())),
        Some(_) => Err(ConfigError::key(key, format!("environment variable {var} is empty"))),
        None => Err(ConfigError::key(key, format!("environment variable {var} is not set"))),
    }
}

/// Reads a secret from the file `path`, which the config key `key` names; surrounding
/// whitespace is dropped. A file that cannot be read, or is empty, is an error naming the key
/// and the path, never the contents.
pub(crate) fn read_file_secret(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::key(key, format!("cannot read {}: {e}", path.display())))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(ConfigError::key(key, format!("{} is empty", path.display())));
    }
    Ok(SecretString::from(secret.to_owned()))
}

impl Config {
    /// Every provider's client secret by provider name (`None` for a public client), read
    /// from its variable (looked up with `env`) or file, or its signer, with its private key
    /// read and proven. The first that cannot be read is an error naming its key.
    pub(crate) fn resolve_secrets(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, Option<ClientSecret>>, ConfigError> {
        self.providers
            .iter()
            .map(|(name, p)| {
                let secret = match &p.jwt {
                    Some(keys) => Some(ClientSecret::Jwt(Box::new(keys.read(name, &p.client_id, env)?))),
                    None => p.secret.resolve(name, env)?.map(ClientSecret::Static),
                };
                Ok((name.clone(), secret))
            })
            .collect()
    }
}

/// Looks a variable up in the process environment: the `env` for [`Config::resolve_secrets`]
/// outside tests.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::tests::{ACME, parse};

    #[test]
    fn a_provider_reads_its_secret_from_the_environment() {
        let config = parse(ACME, &[("ACME_SECRET", "s3cret")]).unwrap();
        let acme = &config.providers["acme"];
        assert_eq!(acme.dialect.as_deref(), Some("rfc7009"));
        let secrets = config
            .resolve_secrets(&|name| (name == "ACME_SECRET").then(|| "s3cret".to_owned()))
            .unwrap();
        assert!(secrets["acme"].is_some());
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(!format!("{secrets:?}").contains("s3cret"));
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
    fn loading_needs_no_secret_so_the_gate_works_without_them() {
        let config = Config::from_toml(ACME, Path::new("test.toml"), Vec::new()).unwrap();
        assert_eq!(config.providers["acme"].secret, SecretSource::Env("ACME_SECRET".into()));
    }

    #[test]
    fn a_secret_file_is_read_and_trimmed_and_an_empty_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme");
        std::fs::write(&path, "s3cret\n").unwrap();
        let source = SecretSource::File(path.clone());
        let secret = source.resolve("acme", &|_| None).unwrap().unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&secret), "s3cret");
        std::fs::write(&path, " \n").unwrap();
        let err = source.resolve("acme", &|_| None).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("providers.acme.client_secret_file: {} is empty", path.display())
        );
    }

    #[test]
    fn setting_both_secret_keys_is_refused() {
        let text = format!("{ACME}\nclient_secret_file = \"/run/secrets/acme\"");
        let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
        assert_eq!(
            err,
            "providers.acme.client_secret_file: set client_secret_env or client_secret_file, not both"
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
}
