//! The simulator's settings file, so the providers and their faults can be changed without
//! a rebuild (its mirror image, the offboard config that points at a running simulator, is
//! `offboard_config`).

use std::time::Duration;

use super::{Behaviour, InvalidTokenAnswer, SimProvider};
use crate::config::{ConfigError, Count, HumanDuration};
use crate::provider::dialect::{ClientAuth, Dialect};

/// The providers `offboard simulate` and `offboard demo` serve when given no file: those of
/// `config/simulate.toml`, one of each dialect with realistic limits and a few faults.
/// Stitch's limit (10/s) sits below the demo worker's rate, so the demo shows 429s and the
/// pause they cause.
pub fn demo_providers() -> Vec<SimProvider> {
    providers_from_toml(include_str!("../../config/simulate.toml")).expect("the shipped config/simulate.toml parses")
}

/// Every provider shape the simulator serves, one each: [`demo_providers`] and one provider
/// per other dialect, named after it, with the limits and faults of `every_entry.toml`
/// (realistic ones: Notion's documented 3 requests a second, for one). What `offboard
/// simulate --providers all` serves and `offboard demo --providers all` runs.
pub fn every_entry_providers() -> Vec<SimProvider> {
    let mut providers = demo_providers();
    providers.extend(providers_from_toml(include_str!("every_entry.toml")).expect("every_entry.toml parses"));
    providers
}

/// One `[providers.NAME]` table of a simulator file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SimEntry {
    dialect: Dialect,
    client_id: Option<String>,
    /// A public client, which sends no secret: Auth0's, or a Dropbox app with PKCE.
    #[serde(default)]
    public_client: bool,
    auth: Option<ClientAuth>,
    limit_per_sec: Option<Count>,
    retry_after: Option<Count>,
    latency: Option<HumanDuration>,
    #[serde(default)]
    fail_fraction: Fraction,
    #[serde(default)]
    timeout_fraction: Fraction,
    #[serde(default)]
    reset_fraction: Fraction,
    #[serde(default)]
    malformed_fraction: Fraction,
    #[serde(default)]
    oversized_fraction: Fraction,
    #[serde(default)]
    echo_fraction: Fraction,
    /// `ok200` (RFC 7009) or `invalid_token400` (Google style).
    #[serde(default)]
    invalid_token: InvalidTokenSetting,
    /// A liar: success to a revocation, and the token lives on.
    #[serde(default)]
    still_active_after_revoke: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SimFile {
    providers: std::collections::BTreeMap<String, SimEntry>,
}

#[derive(Default, serde::Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum InvalidTokenSetting {
    #[default]
    Ok200,
    InvalidToken400,
}

/// A probability from 0 to 1.
#[derive(Default, Clone, Copy)]
struct Fraction(f64);

impl<'de> serde::Deserialize<'de> for Fraction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(d)?;
        if (0.0..=1.0).contains(&value) {
            Ok(Fraction(value))
        } else {
            Err(serde::de::Error::custom(format!(
                "must be between 0 and 1, got {value}"
            )))
        }
    }
}

/// Reads simulated providers from TOML (see `config/simulate.toml`). Errors name the key.
pub fn providers_from_toml(text: &str) -> Result<Vec<SimProvider>, ConfigError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
        path: "simulator file".into(),
        message: e.to_string().trim().replace('\n', " "),
    })?;
    let file: SimFile = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let message = e.inner().to_string();
        ConfigError::key(
            e.path().to_string(),
            message.lines().next().unwrap_or_default().trim().to_owned(),
        )
    })?;
    let mut out = Vec::new();
    for (name, e) in file.providers {
        let faults = [
            e.fail_fraction,
            e.timeout_fraction,
            e.reset_fraction,
            e.malformed_fraction,
            e.oversized_fraction,
            e.echo_fraction,
        ];
        if faults.iter().map(|f| f.0).sum::<f64>() > 1.0 {
            return Err(ConfigError::key(
                format!("providers.{name}"),
                "fault fractions add up to more than 1",
            ));
        }
        let mut p = SimProvider::new(&name, e.dialect);
        if let Some(id) = e.client_id {
            p.client_id = id;
        }
        if e.public_client {
            p.client_secret = None;
        }
        p.auth = e.auth.unwrap_or(ClientAuth::ClientSecretBasic);
        p.behaviour = Behaviour {
            limit_per_sec: e.limit_per_sec.map(Count::get),
            retry_after: e.retry_after.map_or(1, |c| u64::from(c.get())),
            latency: e.latency.map_or(Duration::ZERO, |d| d.0),
            fail_fraction: e.fail_fraction.0,
            timeout_fraction: e.timeout_fraction.0,
            reset_fraction: e.reset_fraction.0,
            malformed_fraction: e.malformed_fraction.0,
            oversized_fraction: e.oversized_fraction.0,
            echo_fraction: e.echo_fraction.0,
            invalid_token_answer: match e.invalid_token {
                InvalidTokenSetting::Ok200 => InvalidTokenAnswer::Ok200,
                InvalidTokenSetting::InvalidToken400 => InvalidTokenAnswer::InvalidToken400,
            },
            still_active_after_revoke: e.still_active_after_revoke,
            ..Behaviour::default()
        };
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_gives_one_provider_of_each_dialect() {
        let providers = demo_providers();
        let mut dialects: Vec<Dialect> = providers.iter().map(|p| p.dialect).collect();
        dialects.sort_by_key(|d| d.as_str());
        let mut all = Dialect::ALL.to_vec();
        all.sort_by_key(|d| d.as_str());
        assert_eq!(dialects, all);
        let stitch = providers.iter().find(|p| p.name == "stitch").unwrap();
        assert_eq!(stitch.behaviour.limit_per_sec, Some(10));
    }

    #[test]
    fn every_entry_serves_each_dialect_once_under_its_name() {
        let providers = every_entry_providers();
        for d in Dialect::SIMULATED {
            let of = providers.iter().filter(|p| p.dialect == d).count();
            assert_eq!(of, 1, "{d}");
        }
        assert_eq!(providers.len(), Dialect::SIMULATED.len());
        let notion = providers.iter().find(|p| p.name == "notion").unwrap();
        assert_eq!(notion.behaviour.limit_per_sec, Some(3));
        assert!(providers.iter().all(|p| !p.behaviour.still_active_after_revoke));
    }

    #[test]
    fn a_liar_is_one_key_away() {
        let p =
            providers_from_toml("[providers.z]\ndialect = \"zendesk\"\nstill_active_after_revoke = true\n").unwrap();
        assert!(p[0].behaviour.still_active_after_revoke);
        assert_eq!(p[0].dialect, Dialect::Zendesk);
    }

    #[test]
    fn a_bad_simulator_file_names_the_key() {
        let err = providers_from_toml("[providers.x]\ndialect = \"stitch\"\nfail_fraction = 2.0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "providers.x.fail_fraction: must be between 0 and 1, got 2"
        );
        let err = providers_from_toml("[providers.x]\ndialect = \"stitch\"\nlatncy = \"1s\"\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("providers.x.latncy: unknown field `latncy`"),
            "{err}"
        );
        let both = "[providers.x]\ndialect = \"moov\"\nfail_fraction = 0.6\nreset_fraction = 0.6\n";
        assert_eq!(
            providers_from_toml(both).unwrap_err().to_string(),
            "providers.x: fault fractions add up to more than 1"
        );
    }
}
