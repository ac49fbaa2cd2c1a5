//! A source's `encryption` table: read as written ([`EncryptionFile`]), then checked into an
//! [`EncryptionConfig`] whose every rule names the key it breaks. Checking reads no key:
//! keys are read once, when the [`super::Decryptor`] is built.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::{self, SeqAccess, Visitor};

use crate::config::{ConfigError, HumanDuration, read_env_secret, read_file_secret};

/// How long the external command may take over one value unless `timeout` says otherwise.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The `encryption` table as written.
///
/// ```toml
/// encryption = { scheme = "fernet", key_env = "FERNET_KEY" }
/// encryption = { scheme = "aes256gcm", key_file = "/run/secrets/token-key" }
/// encryption = { scheme = "rails", primary_key_env = "AR_PRIMARY_KEY",
///                key_derivation_salt_env = "AR_SALT", hash_digest = "sha256" }
/// encryption = { scheme = "command", command = ["/usr/local/bin/decrypt-tokens"], timeout = "5s" }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EncryptionFile {
    scheme: Scheme,
    #[serde(default)]
    key_env: Option<Names>,
    #[serde(default)]
    key_file: Option<Names>,
    #[serde(default)]
    primary_key_env: Option<Names>,
    #[serde(default)]
    primary_key_file: Option<Names>,
    #[serde(default)]
    key_derivation_salt_env: Option<String>,
    #[serde(default)]
    key_derivation_salt_file: Option<PathBuf>,
    #[serde(default)]
    hash_digest: Option<Names>,
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default)]
    timeout: Option<HumanDuration<10, { 10 * 60 * 1000 }>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Scheme {
    Fernet,
    #[serde(alias = "aes-256-gcm")]
    Aes256gcm,
    Rails,
    Command,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Fernet => "fernet",
            Scheme::Aes256gcm => "aes256gcm",
            Scheme::Rails => "rails",
            Scheme::Command => "command",
        }
    }
}

/// The PBKDF2 hash Rails derives its keys with: SHA-256 from Rails 7.1 on
/// (`config.active_record.encryption.hash_digest_class`), SHA-1 in Rails 7.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashDigest {
    Sha256,
    Sha1,
}

/// A checked `encryption` table. Holds where each key is, never a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncryptionConfig {
    /// The table's own key path, such as `tokens.source[0].encryption`.
    pub(super) at: String,
    pub(super) scheme: SchemeConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SchemeConfig {
    Fernet {
        keys: Vec<KeyRef>,
    },
    Aes256Gcm {
        keys: Vec<KeyRef>,
    },
    Rails {
        primary_keys: Vec<KeyRef>,
        salt: KeyRef,
        digests: Vec<HashDigest>,
    },
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

impl EncryptionConfig {
    /// The scheme's name as the config spells it.
    pub(crate) fn scheme(&self) -> &'static str {
        match self.scheme {
            SchemeConfig::Fernet { .. } => "fernet",
            SchemeConfig::Aes256Gcm { .. } => "aes256gcm",
            SchemeConfig::Rails { .. } => "rails",
            SchemeConfig::Command { .. } => "command",
        }
    }
}

/// Where one key is, and the config key that says so (named by every error about it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyRef {
    pub(super) config_key: String,
    pub(super) source: KeySource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeySource {
    Env(String),
    File(PathBuf),
}

impl KeyRef {
    /// Reads the key (surrounding whitespace dropped), with `env` to look variables up.
    pub(super) fn read(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<SecretString, ConfigError> {
        match &self.source {
            KeySource::Env(var) => read_env_secret(&self.config_key, var, env),
            KeySource::File(path) => read_file_secret(&self.config_key, path),
        }
    }
}

impl EncryptionFile {
    /// Checks the table found at key path `at` (e.g. `tokens.source[0].encryption`).
    pub(crate) fn validate(self, at: &str) -> Result<EncryptionConfig, ConfigError> {
        let key = |k: &str| format!("{at}.{k}");
        let scheme = self.scheme;
        // Every key that this scheme does not read is refused, by name.
        let present: [(&str, bool, &[Scheme]); 9] = [
            ("key_env", self.key_env.is_some(), &[Scheme::Fernet, Scheme::Aes256gcm]),
            (
                "key_file",
                self.key_file.is_some(),
                &[Scheme::Fernet, Scheme::Aes256gcm],
            ),
            ("primary_key_env", self.primary_key_env.is_some(), &[Scheme::Rails]),
            ("primary_key_file", self.primary_key_file.is_some(), &[Scheme::Rails]),
            (
                "key_derivation_salt_env",
                self.key_derivation_salt_env.is_some(),
                &[Scheme::Rails],
            ),
            (
                "key_derivation_salt_file",
                self.key_derivation_salt_file.is_some(),
                &[Scheme::Rails],
            ),
            ("hash_digest", self.hash_digest.is_some(), &[Scheme::Rails]),
            ("command", self.command.is_some(), &[Scheme::Command]),
            ("timeout", self.timeout.is_some(), &[Scheme::Command]),
        ];
        for (name, set, schemes) in present {
            if set && !schemes.contains(&scheme) {
                let wanted: Vec<String> = schemes.iter().map(|s| format!("\"{}\"", s.name())).collect();
                return Err(ConfigError::key(
                    key(name),
                    format!(
                        "is read only with scheme = {}, not with scheme = \"{}\"",
                        wanted.join(" or "),
                        scheme.name()
                    ),
                ));
            }
        }
        let scheme = match scheme {
            Scheme::Fernet | Scheme::Aes256gcm => {
                let keys = key_refs(at, "key", self.key_env, self.key_file)?;
                if scheme == Scheme::Fernet {
                    SchemeConfig::Fernet { keys }
                } else {
                    SchemeConfig::Aes256Gcm { keys }
                }
            }
            Scheme::Rails => {
                let primary_keys = key_refs(at, "primary_key", self.primary_key_env, self.primary_key_file)?;
                let salt = match (self.key_derivation_salt_env, self.key_derivation_salt_file) {
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::key(
                            key("key_derivation_salt_file"),
                            "set key_derivation_salt_env or key_derivation_salt_file, not both",
                        ));
                    }
                    (Some(var), None) => KeyRef {
                        config_key: key("key_derivation_salt_env"),
                        source: KeySource::Env(var),
                    },
                    (None, Some(path)) => KeyRef {
                        config_key: key("key_derivation_salt_file"),
                        source: KeySource::File(path),
                    },
                    (None, None) => {
                        return Err(ConfigError::key(
                            key("key_derivation_salt_env"),
                            "scheme = \"rails\" needs the key derivation salt \
                             (active_record_encryption.key_derivation_salt): set \
                             key_derivation_salt_env or key_derivation_salt_file",
                        ));
                    }
                };
                let digests = match self.hash_digest {
                    None => vec![HashDigest::Sha256],
                    Some(names) => names
                        .0
                        .iter()
                        .map(|n| match n.to_ascii_lowercase().as_str() {
                            "sha256" | "sha-256" => Ok(HashDigest::Sha256),
                            "sha1" | "sha-1" => Ok(HashDigest::Sha1),
                            _ => Err(ConfigError::key(
                                key("hash_digest"),
                                format!("'{n}' is not \"sha256\" (Rails 7.1 and later) or \"sha1\" (Rails 7.0)"),
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                };
                if digests.is_empty() {
                    return Err(ConfigError::key(key("hash_digest"), "must name at least one digest"));
                }
                SchemeConfig::Rails {
                    primary_keys,
                    salt,
                    digests,
                }
            }
            Scheme::Command => {
                let argv = self.command.unwrap_or_default();
                match argv.first() {
                    None => {
                        return Err(ConfigError::key(
                            key("command"),
                            "scheme = \"command\" needs command = [\"/path/to/program\", \"arg\", …]",
                        ));
                    }
                    Some(program) if program.trim().is_empty() => {
                        return Err(ConfigError::key(
                            key("command"),
                            "the program (its first item) is empty",
                        ));
                    }
                    Some(_) => {}
                }
                let timeout = self.timeout.map_or(DEFAULT_COMMAND_TIMEOUT, |t| t.0);
                SchemeConfig::Command { argv, timeout }
            }
        };
        Ok(EncryptionConfig {
            at: at.to_owned(),
            scheme,
        })
    }
}

/// The keys named by `{stem}_env` and `{stem}_file` (one of the two, each one name or a list).
fn key_refs(at: &str, stem: &str, env: Option<Names>, file: Option<Names>) -> Result<Vec<KeyRef>, ConfigError> {
    let env_key = format!("{at}.{stem}_env");
    let file_key = format!("{at}.{stem}_file");
    let (config_key, names, is_env) = match (env, file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::key(
                file_key,
                format!("set {stem}_env or {stem}_file, not both"),
            ));
        }
        (None, None) => {
            return Err(ConfigError::key(
                env_key,
                format!(
                    "a key is needed: set {stem}_env (an environment variable name) or {stem}_file \
                     (a path); either may be a list, tried in order"
                ),
            ));
        }
        (Some(vars), None) => (env_key, vars.0, true),
        (None, Some(paths)) => (file_key, paths.0, false),
    };
    if names.is_empty() {
        return Err(ConfigError::key(config_key, "the list is empty: name at least one key"));
    }
    if names.iter().any(|n| n.trim().is_empty()) {
        return Err(ConfigError::key(config_key, "an item is empty"));
    }
    Ok(names
        .into_iter()
        .map(|name| KeyRef {
            config_key: config_key.clone(),
            source: if is_env {
                KeySource::Env(name)
            } else {
                KeySource::File(PathBuf::from(name))
            },
        })
        .collect())
}

/// A string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Names(Vec<String>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NamesVisitor;
        impl<'de> Visitor<'de> for NamesVisitor {
            type Value = Names;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Names, E> {
                Ok(Names(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Names, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    out.push(item);
                }
                Ok(Names(out))
            }
        }
        d.deserialize_any(NamesVisitor)
    }
}
