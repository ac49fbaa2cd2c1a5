//! Names of the built-in dialects, and what remains of the time when each was Rust code.
//!
//! A dialect is now an entry of the provider catalogue (`catalog.rs`, `catalog/*.toml`):
//! data that says how its request is built and its answers read. What is left here are the
//! names the simulator serves and the tests use ([`Dialect`]), the values of the legacy keys
//! `auth` and `content_type` ([`ClientAuth`], [`BodyFormat`]), and [`DialectSettings`],
//! which reads answers with a dialect's catalogue entry for callers that hold only a dialect.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::catalog;
use super::classify::RawResponse;
use crate::config::DEFAULT_MAX_PROVIDER_PAUSE;
use crate::outcome::Verdict;

pub(crate) use super::definition::Plan;

/// A built-in dialect the simulator serves: the seed dialects and every revocable catalogue
/// entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Rfc7009,
    Stitch,
    Moov,
    Onelogin,
    Auth0,
    Google,
    Slack,
    Okta,
    Keycloak,
    X,
    Salesforce,
    Box,
    Twitch,
    Zoom,
    Intuit,
    Dropbox,
    Notion,
    Discord,
    Linkedin,
    Github,
    /// HubSpot's current revocation (`POST /oauth/2026-03/token/revoke`).
    Hubspot,
    /// HubSpot's legacy `DELETE /oauth/v1/refresh-tokens/{token}`, deprecated from 2027-02-16.
    HubspotLegacy,
    Zendesk,
    Xero,
    Apple,
}

impl Dialect {
    /// The dialects of the seed documents and the standard: one of each is what the demo,
    /// the shipped simulator file and the end-to-end tests run.
    pub const ALL: [Dialect; 5] = [
        Dialect::Rfc7009,
        Dialect::Stitch,
        Dialect::Moov,
        Dialect::Onelogin,
        Dialect::Auth0,
    ];

    /// Every dialect the simulator serves, each a catalogue entry: [`Dialect::ALL`] and the
    /// revocable entries added since. What `offboard demo --providers all` runs.
    pub const SIMULATED: [Dialect; 25] = [
        Dialect::Rfc7009,
        Dialect::Stitch,
        Dialect::Moov,
        Dialect::Onelogin,
        Dialect::Auth0,
        Dialect::Google,
        Dialect::Slack,
        Dialect::Okta,
        Dialect::Keycloak,
        Dialect::X,
        Dialect::Salesforce,
        Dialect::Box,
        Dialect::Twitch,
        Dialect::Zoom,
        Dialect::Intuit,
        Dialect::Dropbox,
        Dialect::Notion,
        Dialect::Discord,
        Dialect::Linkedin,
        Dialect::Github,
        Dialect::Hubspot,
        Dialect::HubspotLegacy,
        Dialect::Zendesk,
        Dialect::Xero,
        Dialect::Apple,
    ];

    /// The name of its catalogue entry.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Rfc7009 => "rfc7009",
            Dialect::Stitch => "stitch",
            Dialect::Moov => "moov",
            Dialect::Onelogin => "onelogin",
            Dialect::Auth0 => "auth0",
            Dialect::Google => "google",
            Dialect::Slack => "slack",
            Dialect::Okta => "okta",
            Dialect::Keycloak => "keycloak",
            Dialect::X => "x",
            Dialect::Salesforce => "salesforce",
            Dialect::Box => "box",
            Dialect::Twitch => "twitch",
            Dialect::Zoom => "zoom",
            Dialect::Intuit => "intuit",
            Dialect::Dropbox => "dropbox",
            Dialect::Notion => "notion",
            Dialect::Discord => "discord",
            Dialect::Linkedin => "linkedin",
            Dialect::Github => "github",
            Dialect::Hubspot => "hubspot",
            Dialect::HubspotLegacy => "hubspot_legacy",
            Dialect::Zendesk => "zendesk",
            Dialect::Xero => "xero",
            Dialect::Apple => "apple",
        }
    }

    /// Whether the catalogue has an entry of this name, so that `dialect = "NAME"` works.
    pub fn has_catalogue_entry(self) -> bool {
        catalog::entry(self.as_str()).is_some()
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an rfc7009 or moov client authenticates (the `auth` values of the legacy config; the
/// definition format accepts these and more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

/// The body format of a moov request (the legacy key `content_type`; elsewhere, `body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    Json,
    Form,
}

impl BodyFormat {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BodyFormat::Json => "json",
            BodyFormat::Form => "form",
        }
    }
}

/// A dialect with the settings of the legacy keys. Answers are read by the dialect's
/// catalogue entry, as a configured provider of that dialect reads them.
#[derive(Debug, Clone)]
pub struct DialectSettings {
    pub dialect: Dialect,
    pub auth: ClientAuth,
    pub body: BodyFormat,
    pub api_version: String,
}

impl DialectSettings {
    /// Classifies an answer as a provider of this dialect does, with a `Retry-After`
    /// clamped to the default `retry.max_provider_pause`.
    pub fn classify(&self, response: &RawResponse, secrets: &[&str]) -> Verdict {
        self.classify_within(response, secrets, DEFAULT_MAX_PROVIDER_PAUSE)
    }

    /// As [`DialectSettings::classify`], with any wait the provider asks for clamped to
    /// `max_wait`.
    pub fn classify_within(&self, response: &RawResponse, secrets: &[&str], max_wait: Duration) -> Verdict {
        let entry = catalog::entry(self.dialect.as_str()).expect("every dialect names a catalogue entry");
        entry.definition.classify(response, secrets, max_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;
    use crate::token::TokenType;
    use reqwest::header::HeaderMap;

    fn onelogin() -> DialectSettings {
        DialectSettings {
            dialect: Dialect::Onelogin,
            auth: ClientAuth::ClientSecretBasic,
            body: BodyFormat::Json,
            api_version: String::new(),
        }
    }

    fn answer(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn onelogin_success_needs_status_error_false() {
        let ok = r#"{"status":{"error":false,"code":200,"type":"success","message":"Success"}}"#;
        assert_eq!(onelogin().classify(&answer(200, ok), &[]).outcome, Outcome::Revoked);
        let hidden = r#"{"status":{"error":true,"code":401,"type":"Unauthorized","message":"Authentication Failure"}}"#;
        let v = onelogin().classify(&answer(200, hidden), &[]);
        assert_eq!(v.outcome, Outcome::Failed);
        assert_eq!(v.error.as_deref(), Some("HTTP 401: Authentication Failure"));
        assert_eq!(v.http_status, Some(200));
        let v = onelogin().classify(&answer(200, ""), &[]);
        assert_eq!(v.outcome, Outcome::Transient);
        assert_eq!(
            v.error.as_deref(),
            Some("HTTP 200 without OneLogin's status object; not taken as success")
        );
    }

    #[test]
    fn plans_follow_what_each_provider_can_revoke() {
        let plan = |d: Dialect, t| catalog::entry(d.as_str()).unwrap().definition.plan(t);
        assert_eq!(
            plan(Dialect::Onelogin, TokenType::RefreshToken),
            Plan::ViaPairedAccessToken
        );
        assert_eq!(plan(Dialect::Onelogin, TokenType::AccessToken), Plan::Call);
        assert_eq!(
            plan(Dialect::Auth0, TokenType::AccessToken),
            Plan::NotRevocable(
                "Auth0 access tokens are self-contained JWTs with no revocation endpoint; they lapse at expiry"
            )
        );
        assert_eq!(plan(Dialect::Auth0, TokenType::RefreshToken), Plan::Call);
        for d in [Dialect::Rfc7009, Dialect::Stitch, Dialect::Moov, Dialect::Google] {
            for t in [TokenType::AccessToken, TokenType::RefreshToken] {
                assert_eq!(plan(d, t), Plan::Call, "{d} {t}");
            }
        }
    }

    #[test]
    fn the_unpaired_reason_is_the_onelogin_entry_s() {
        let entry = catalog::entry("onelogin").unwrap();
        assert_eq!(
            entry.definition.unpaired_reason.as_deref(),
            Some(
                "OneLogin API v1 revokes a refresh token only through its paired access token (grant_ref), and this \
                 one has no pair"
            )
        );
    }

    #[test]
    fn every_simulated_dialect_has_a_catalogue_entry() {
        for d in Dialect::SIMULATED {
            assert!(d.has_catalogue_entry(), "{d}");
        }
    }

    /// Every revocable catalogue entry is served by the simulator: an entry that revokes
    /// something under a name the simulator does not know fails here.
    #[test]
    fn every_revocable_catalogue_entry_is_simulated() {
        for entry in catalog::entries() {
            if entry.definition.revocable.is_empty() {
                continue;
            }
            assert!(
                Dialect::SIMULATED.iter().any(|d| d.as_str() == entry.name),
                "{} is revocable but not simulated",
                entry.name
            );
        }
    }

    /// The names are those serde reads, so a simulator file's `dialect = "…"` says the same.
    #[test]
    fn names_read_back_as_their_dialect() {
        for d in Dialect::SIMULATED {
            let read: Dialect = serde_json::from_value(serde_json::Value::String(d.as_str().into())).unwrap();
            assert_eq!(read, d);
        }
    }
}
