//! The wire format of each provider (DESIGN.md §4 and the seed documents): how a revocation
//! request is built, which tokens can be revoked at all, and where a provider's answers need
//! more than the shared classifier. The enums that name a dialect and its options live here
//! for the same reason; the config only deserializes them.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use reqwest::RequestBuilder;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::json;

use super::classify::{RawResponse, classify};
use crate::config::DEFAULT_MAX_PROVIDER_PAUSE;
use crate::outcome::{Outcome, Verdict};
use crate::token::{TokenType, TokenValue};

/// A provider's wire format: how its revocation request is built and its answers read.
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

/// How an rfc7009 or moov client authenticates (config key `auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

/// The body format of a moov request (config key `content_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    Json,
    Form,
}

/// Moov's API version header value when none is configured (their documented default).
pub(crate) const MOOV_DEFAULT_VERSION: &str = "v2024.01.00";

/// What to do with one token, decided before any call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Send a revocation request.
    Call,
    /// The provider cannot revoke this token; the reason goes into the audit row.
    NotRevocable(&'static str),
    /// OneLogin v1: a refresh token dies with its paired access token (`grant_ref`).
    ViaPairedAccessToken,
}

/// Settings a dialect needs to build a request. The secret is exposed only while building.
pub(crate) struct Credentials<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct DialectSettings {
    pub dialect: Dialect,
    pub auth: ClientAuth,
    pub body: BodyFormat,
    pub api_version: String,
}

pub(crate) const AUTH0_ACCESS_TOKEN: &str =
    "Auth0 access tokens are self-contained JWTs with no revocation endpoint; they lapse at expiry";
pub(crate) const ONELOGIN_UNPAIRED_REFRESH: &str = "OneLogin API v1 revokes a refresh token only through its paired access token \
     (grant_ref), and this one has no pair";

impl DialectSettings {
    pub(crate) fn plan(&self, token_type: TokenType) -> Plan {
        match (self.dialect, token_type) {
            (Dialect::Auth0, TokenType::AccessToken) => Plan::NotRevocable(AUTH0_ACCESS_TOKEN),
            (Dialect::Onelogin, TokenType::RefreshToken) => Plan::ViaPairedAccessToken,
            _ => Plan::Call,
        }
    }

    /// Adds method-independent parts of the revocation request to `request` (a POST to
    /// the provider's URL): headers, client authentication and body.
    pub(crate) fn build(
        &self,
        request: RequestBuilder,
        creds: &Credentials<'_>,
        token: &TokenValue,
        token_type: TokenType,
    ) -> RequestBuilder {
        let request = request.header(ACCEPT, "application/json");
        let secret = creds.client_secret.unwrap_or_default();
        match self.dialect {
            Dialect::Rfc7009 => {
                let mut form = vec![("token", token.expose()), ("token_type_hint", token_type.as_str())];
                match self.auth {
                    // RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
                    ClientAuth::ClientSecretBasic => {
                        let pair = format!("{}:{}", form_encode(creds.client_id), form_encode(secret));
                        let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
                        return request.header(AUTHORIZATION, value).form(&form);
                    }
                    ClientAuth::ClientSecretPost => {
                        form.push(("client_id", creds.client_id));
                        form.push(("client_secret", secret));
                    }
                }
                request.form(&form)
            }
            Dialect::Stitch => request.form(&[
                ("client_id", creds.client_id),
                ("client_secret", secret),
                ("token", token.expose()),
                ("token_type_hint", token_type.as_str()),
            ]),
            Dialect::Moov => {
                let request = request.header("x-moov-version", &self.api_version);
                let mut fields = vec![("token", token.expose()), ("token_type_hint", token_type.as_str())];
                let request = match self.auth {
                    ClientAuth::ClientSecretBasic => request.basic_auth(creds.client_id, Some(secret)),
                    ClientAuth::ClientSecretPost => {
                        fields.push(("client_id", creds.client_id));
                        fields.push(("client_secret", secret));
                        request
                    }
                };
                match self.body {
                    BodyFormat::Json => {
                        let body: serde_json::Map<String, serde_json::Value> =
                            fields.into_iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
                        request.json(&body)
                    }
                    BodyFormat::Form => request.form(&fields),
                }
            }
            Dialect::Onelogin => request
                .header(
                    AUTHORIZATION,
                    format!("client_id:{}, client_secret:{}", creds.client_id, secret),
                )
                .header(CONTENT_TYPE, "application/json")
                .json(&json!({ "access_token": token.expose() })),
            Dialect::Auth0 => {
                // Public clients (tokenEndpointAuthMethod "none") send no secret at all.
                let body = match creds.client_secret {
                    Some(secret) => {
                        json!({ "client_id": creds.client_id, "client_secret": secret, "token": token.expose() })
                    }
                    None => json!({ "client_id": creds.client_id, "token": token.expose() }),
                };
                request.json(&body)
            }
        }
    }

    /// Classifies an answer: the shared classifier, refined where the dialect says more. A
    /// `Retry-After` is clamped to the default `retry.max_provider_pause`; a provider uses
    /// [`DialectSettings::classify_within`] with its configured one.
    pub fn classify(&self, response: &RawResponse, secrets: &[&str]) -> Verdict {
        self.classify_within(response, secrets, DEFAULT_MAX_PROVIDER_PAUSE)
    }

    /// As [`DialectSettings::classify`], with any wait the provider asks for clamped to
    /// `max_wait`.
    pub fn classify_within(&self, response: &RawResponse, secrets: &[&str], max_wait: Duration) -> Verdict {
        let verdict = classify(response, secrets, max_wait);
        match self.dialect {
            Dialect::Onelogin => refine_onelogin(verdict, response, secrets, max_wait),
            _ => verdict,
        }
    }
}

/// OneLogin wraps every answer in `{"status": {"error", "code", "type", "message"}}`. A 200
/// counts only when `status.error` is false; an error inside a 200 is classified by its
/// `status.code`; a 200 without the object is treated as a transient glitch, never success.
fn refine_onelogin(verdict: Verdict, response: &RawResponse, secrets: &[&str], max_wait: Duration) -> Verdict {
    if verdict.outcome != Outcome::Revoked {
        return verdict;
    }
    let status = response.json().and_then(|j| j.get("status").cloned());
    match status.as_ref().and_then(|s| s.get("error")).and_then(|e| e.as_bool()) {
        Some(false) => verdict,
        Some(true) => {
            let code = status
                .as_ref()
                .and_then(|s| s.get("code"))
                .and_then(|c| c.as_u64())
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| !(200..300).contains(c))
                .unwrap_or(400);
            let inner = RawResponse {
                status: code,
                ..response.clone()
            };
            Verdict {
                http_status: verdict.http_status,
                ..classify(&inner, secrets, max_wait)
            }
        }
        None => Verdict {
            outcome: Outcome::Transient,
            error: Some("HTTP 200 without OneLogin's status object; not taken as success".into()),
            ..verdict
        },
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(onelogin().classify(&answer(200, ""), &[]).outcome, Outcome::Transient);
    }

    #[test]
    fn plans_follow_what_each_provider_can_revoke() {
        let mut s = onelogin();
        assert_eq!(s.plan(TokenType::RefreshToken), Plan::ViaPairedAccessToken);
        assert_eq!(s.plan(TokenType::AccessToken), Plan::Call);
        s.dialect = Dialect::Auth0;
        assert_eq!(s.plan(TokenType::AccessToken), Plan::NotRevocable(AUTH0_ACCESS_TOKEN));
        assert_eq!(s.plan(TokenType::RefreshToken), Plan::Call);
        s.dialect = Dialect::Stitch;
        assert_eq!(s.plan(TokenType::AccessToken), Plan::Call);
    }
}
