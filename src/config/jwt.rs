//! The keys of a provider whose client secret is a JWT it signs (its definition has
//! `client_secret_jwt`, as Sign in with Apple's does): `team_id` (the `iss` claim), `key_id`
//! (the `kid` header) and where the private key is, `private_key_env` (an environment
//! variable holding the PEM) or `private_key_file` (the `.p8` file). Such a provider takes
//! no `client_secret_env` or `client_secret_file`, and any other provider none of these keys.
//!
//! The key is a secret: like a client secret it is read only where it is needed
//! (`secret.rs`), and it is proven then, by signing, so a key that cannot sign stops
//! start-up and `check-config` with the key named.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, SecretSource};
use crate::provider::jwt::{JwtIds, JwtSigner, JwtSpec};

/// The keys read here, offered as close names of a typo.
pub(super) const KEYS: [&str; 4] = ["team_id", "key_id", "private_key_env", "private_key_file"];

/// The keys as written in `[providers.NAME]`.
#[derive(Deserialize)]
pub(super) struct JwtKeyFields {
    team_id: Option<String>,
    key_id: Option<String>,
    private_key_env: Option<String>,
    private_key_file: Option<PathBuf>,
}

/// What signs a provider's client secret, checked; the key itself is read by [`JwtKeys::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JwtKeys {
    team_id: String,
    key_id: String,
    key: KeySource,
    spec: JwtSpec,
}

/// Where the private key is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeySource {
    Env(String),
    File(PathBuf),
}

impl JwtKeyFields {
    /// The keys of provider `name` checked against its definition's `spec`: all of them
    /// where there is one, none where there is none. `secret` is where its keys put a
    /// client secret, which one that signs its own must not have; `what` names the dialect.
    pub(super) fn check(
        self,
        name: &str,
        spec: Option<&JwtSpec>,
        secret: &SecretSource,
        what: &str,
    ) -> Result<Option<JwtKeys>, ConfigError> {
        let key = |k: &str| format!("providers.{name}.{k}");
        let Some(spec) = spec else {
            let given = [
                ("team_id", self.team_id.is_some()),
                ("key_id", self.key_id.is_some()),
                ("private_key_env", self.private_key_env.is_some()),
                ("private_key_file", self.private_key_file.is_some()),
            ];
            return match given.iter().find(|(_, set)| *set) {
                Some((k, _)) => Err(ConfigError::key(
                    key(k),
                    format!("{what} has no signed client secret (client_secret_jwt); remove this key"),
                )),
                None => Ok(None),
            };
        };
        let signs = format!("{what} signs its client secret as a JWT (client_secret_jwt)");
        let given_secret = match secret {
            SecretSource::Env(_) => Some("client_secret_env"),
            SecretSource::File(_) => Some("client_secret_file"),
            SecretSource::None => None,
        };
        if let Some(k) = given_secret {
            return Err(ConfigError::key(
                key(k),
                format!("{signs}; remove this key and set private_key_file or private_key_env"),
            ));
        }
        let required = |k: &str, value: Option<String>, meant: &str| match value {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
            Some(_) => Err(ConfigError::key(key(k), "must not be empty")),
            None => Err(ConfigError::key(key(k), format!("must be set: {signs}, {meant}"))),
        };
        let team_id = required("team_id", self.team_id, "whose iss is the team id")?;
        let key_id = required("key_id", self.key_id, "whose kid is the id of its key")?;
        let key_source = match (self.private_key_env, self.private_key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::key(
                    key("private_key_file"),
                    "set private_key_env or private_key_file, not both",
                ));
            }
            (Some(var), None) => KeySource::Env(var),
            (None, Some(path)) => KeySource::File(path),
            (None, None) => {
                return Err(ConfigError::key(
                    key("private_key_file"),
                    format!("must be set: {signs} with this key (the .p8 file), or set private_key_env"),
                ));
            }
        };
        Ok(Some(JwtKeys {
            team_id,
            key_id,
            key: key_source,
            spec: spec.clone(),
        }))
    }
}

impl JwtKeys {
    /// Reads the private key of provider `name` (variables looked up with `env`) and proves
    /// it by signing: a key that is missing, empty or cannot sign is an error naming its key,
    /// such as `providers.apple.private_key_file: /run/secrets/apple.p8 is not a PKCS#8 EC
    /// P-256 private key (.p8): …`. The message never holds any of the key.
    pub(super) fn read(
        &self,
        name: &str,
        client_id: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<JwtSigner, ConfigError> {
        let key = |k: &str| format!("providers.{name}.{k}");
        let (which, what, text) = match &self.key {
            KeySource::Env(var) => {
                let what = format!("environment variable {var}");
                let text =
                    env(var).ok_or_else(|| ConfigError::key(key("private_key_env"), format!("{what} is not set")))?;
                ("private_key_env", what, text)
            }
            KeySource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::key(key("private_key_file"), format!("cannot read {}: {e}", path.display()))
                })?;
                ("private_key_file", path.display().to_string(), text)
            }
        };
        if text.trim().is_empty() {
            return Err(ConfigError::key(key(which), format!("{what} is empty")));
        }
        let ids = JwtIds {
            key_id: &self.key_id,
            team_id: &self.team_id,
            client_id,
        };
        JwtSigner::new(&text, &ids, &self.spec).map_err(|e| {
            ConfigError::key(
                key(which),
                format!("{what} is not a PKCS#8 EC P-256 private key (.p8): {}", e.0),
            )
        })
    }
}

#[cfg(test)]
mod tests;
