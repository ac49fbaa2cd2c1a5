//! `[dashboard]`: the operator's web UI that `offboard run` serves on `server.listen`
//! (`src/web`). Read-only unless `actions = true`, and then every action needs a token read
//! from a secret source, like a provider's client secret: `token_env` (a variable's name) or
//! `token_file` (a path), never the file itself.
//!
//! Like provider secrets, the token is read where it is needed (when the dashboard is
//! served, and by `check-config`), not when the config loads: `offboard gate` must not fail
//! over a variable its environment lacks.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::providers::Flag;
use super::{ConfigError, read_env_secret, read_file_secret};

/// Shortest token accepted: guessing one of 16 random characters through a web form is
/// hopeless; a short word is not.
const MIN_TOKEN_CHARS: usize = 16;

/// The `[dashboard]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct DashboardFile {
    enabled: Option<Flag>,
    actions: Option<Flag>,
    /// Refused: a secret is never read from the config file.
    token: Option<IgnoredAny>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    token_name: Option<String>,
}

/// The dashboard's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DashboardConfig {
    /// Served with `/metrics` on `server.listen` (default true).
    pub(crate) enabled: bool,
    /// Whether retry and cancel are offered (default false).
    pub(crate) actions: bool,
    /// Where the actions' token is; set whenever `actions` is.
    pub(crate) token: Option<TokenSource>,
    /// Who acted, in the audit, when the form names no one.
    pub(crate) token_name: String,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: true,
            actions: false,
            token: None,
            token_name: DEFAULT_TOKEN_NAME.to_owned(),
        }
    }
}

const DEFAULT_TOKEN_NAME: &str = "dashboard operator";

/// Where the dashboard's action token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenSource {
    Env(String),
    File(PathBuf),
}

impl TokenSource {
    /// The config key that names this source, for messages.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            TokenSource::Env(_) => "dashboard.token_env",
            TokenSource::File(_) => "dashboard.token_file",
        }
    }

    /// Reads the token (variables looked up with `env`). An unset variable, an unreadable
    /// or empty file, or a token shorter than 16 characters is an error naming the key,
    /// never the value.
    pub(crate) fn read(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<SecretString, ConfigError> {
        let secret = match self {
            TokenSource::Env(var) => read_env_secret(self.key(), var, env)?,
            TokenSource::File(path) => read_file_secret(self.key(), path)?,
        };
        if secret.expose_secret().chars().count() < MIN_TOKEN_CHARS {
            return Err(ConfigError::key(
                self.key(),
                format!("the token must be at least {MIN_TOKEN_CHARS} characters long"),
            ));
        }
        Ok(secret)
    }
}

impl DashboardFile {
    pub(super) fn validate(self) -> Result<DashboardConfig, ConfigError> {
        if self.token.is_some() {
            return Err(ConfigError::key(
                "dashboard.token",
                "secrets are never read from the config file; set token_env \
                 (an environment variable name) or token_file (a path)",
            ));
        }
        let token = match (self.token_env, self.token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::key(
                    "dashboard.token_file",
                    "set token_env or token_file, not both",
                ));
            }
            (Some(var), None) if var.trim().is_empty() => {
                return Err(ConfigError::key("dashboard.token_env", "must name a variable"));
            }
            (Some(var), None) => Some(TokenSource::Env(var.trim().to_owned())),
            (None, Some(path)) => Some(TokenSource::File(path)),
            (None, None) => None,
        };
        let enabled = self.enabled.is_none_or(|f| f.0);
        let actions = self.actions.is_some_and(|f| f.0);
        if actions && !enabled {
            return Err(ConfigError::key(
                "dashboard.actions",
                "the dashboard is off (dashboard.enabled = false), so it has no actions",
            ));
        }
        if actions && token.is_none() {
            return Err(ConfigError::key(
                "dashboard.actions",
                "actions need a token: set dashboard.token_env or dashboard.token_file",
            ));
        }
        let token_name = match self.token_name {
            None => DEFAULT_TOKEN_NAME.to_owned(),
            Some(name) => {
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
                    return Err(ConfigError::key(
                        "dashboard.token_name",
                        "must be 1 to 100 characters, without control characters",
                    ));
                }
                name
            }
        };
        Ok(DashboardConfig {
            enabled,
            actions,
            token,
            token_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn dashboard(text: &str, env: &[(&str, &str)]) -> Result<DashboardConfig, ConfigError> {
        let vars = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::from_toml(text, Path::new("test.toml"), vars).map(|c| c.dashboard)
    }

    #[test]
    fn the_dashboard_is_on_and_read_only_by_default() {
        let d = dashboard("", &[]).unwrap();
        assert!(d.enabled);
        assert!(!d.actions);
        assert_eq!(d.token, None);
        assert_eq!(d.token_name, "dashboard operator");
    }

    #[test]
    fn actions_without_a_token_source_are_refused_naming_the_key() {
        let err = dashboard("[dashboard]\nactions = true", &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            "dashboard.actions: actions need a token: set dashboard.token_env or dashboard.token_file"
        );
    }

    #[test]
    fn a_literal_token_in_the_file_is_refused() {
        let err = dashboard("[dashboard]\ntoken = \"hunter2hunter2hunter2\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("dashboard.token: secrets are never read"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn both_token_sources_are_refused() {
        let err = dashboard("[dashboard]\ntoken_env = \"T\"\ntoken_file = \"/run/t\"", &[])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "dashboard.token_file: set token_env or token_file, not both");
    }

    #[test]
    fn actions_on_a_dashboard_that_is_off_are_refused() {
        let err = dashboard("[dashboard]\nenabled = false\nactions = true\ntoken_env = \"T\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("dashboard.actions: the dashboard is off"), "{err}");
    }

    #[test]
    fn actions_can_be_enabled_from_the_environment() {
        let d = dashboard(
            "",
            &[
                ("OFFBOARD_DASHBOARD__ACTIONS", "true"),
                ("OFFBOARD_DASHBOARD__TOKEN_ENV", "DASH_TOKEN"),
            ],
        )
        .unwrap();
        assert!(d.actions);
        assert_eq!(d.token, Some(TokenSource::Env("DASH_TOKEN".into())));
    }

    #[test]
    fn a_short_or_missing_token_is_an_error_naming_the_key_not_the_value() {
        let source = TokenSource::Env("DASH_TOKEN".into());
        let err = source.read(&|_| Some("short-secret".into())).unwrap_err().to_string();
        assert_eq!(
            err,
            "dashboard.token_env: the token must be at least 16 characters long"
        );
        let err = source.read(&|_| None).unwrap_err().to_string();
        assert_eq!(err, "dashboard.token_env: environment variable DASH_TOKEN is not set");
        let long = "0123456789abcdef0123";
        let token = source.read(&|_| Some(format!("{long}\n"))).unwrap();
        assert_eq!(token.expose_secret(), long);
    }
}
