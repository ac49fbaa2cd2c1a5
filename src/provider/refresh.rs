//! Refresh-then-revoke's first call: the refresh token exchanged at the provider's token
//! endpoint for a fresh access token (the definition's `[refresh]` table), which the caller
//! then revokes with the provider's own request. The fresh access token lives only in the
//! returned [`Refreshed`], a [`TokenValue`] (no `Debug`, no `Display`), and is never stored.
//!
//! How the answer is read: the table's `already_invalid` rules, then RFC 6749 §5.2's
//! `invalid_grant` (the refresh token is invalid, expired or revoked: already invalid, which
//! settles it), then the shared classifier; a success must carry the access token at the
//! table's JSON pointer, or it is a glitch (transient). No text of a success body is kept:
//! it holds the fresh token.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION};
use secrecy::ExposeSecret;
use serde_json::Value as Json;

use super::Provider;
use super::classify::{classify, describe, is_portal_page};
use super::definition::{Auth, BodyEncoding, Refresh};
use super::request::form_encoded_basic;
use crate::config::ProviderUrl;
use crate::outcome::{Outcome, Verdict};
use crate::token::TokenValue;

/// The first call of refresh-then-revoke: its verdict (`refreshed` when a fresh access
/// token came back), how long it took, and the fresh token.
pub(crate) struct Refreshed {
    pub(crate) verdict: Verdict,
    pub(crate) duration: Duration,
    pub(crate) fresh: Option<TokenValue>,
}

impl Provider {
    /// Exchanges `token` (a refresh token; `pair` its paired access token, for endpoints that
    /// want both) for a fresh access token. Does not wait on the gate (the caller does).
    #[tracing::instrument(level = "debug", skip_all, fields(provider = %self.name))]
    pub(crate) async fn refresh(&self, token: &TokenValue, pair: Option<&TokenValue>) -> Refreshed {
        let started = Instant::now();
        if let Some(why) = &self.refused {
            return Refreshed {
                verdict: Verdict::new(Outcome::NotRevocable).with_error(why.clone()),
                duration: Duration::ZERO,
                fresh: None,
            };
        }
        let Some(refresh) = &self.definition.refresh else {
            return Refreshed {
                verdict: Verdict::new(Outcome::Failed).with_error("this provider has no refresh-then-revoke"),
                duration: Duration::ZERO,
                fresh: None,
            };
        };
        let secret = match self.secret_now() {
            Ok(secret) => secret,
            Err(error) => {
                return Refreshed {
                    verdict: Verdict::new(Outcome::Transient).with_error(format!("not sent: {error}")),
                    duration: Duration::ZERO,
                    fresh: None,
                };
            }
        };
        let secret = secret.as_ref().map(|s| s.expose_secret());
        let secrets: Vec<&str> = [Some(token.expose()), pair.map(TokenValue::expose), secret]
            .into_iter()
            .flatten()
            .collect();
        let request = match self.refresh_request(refresh, token, pair, secret.unwrap_or_default()) {
            Ok(request) => request.timeout(self.timeout),
            Err(message) => {
                return Refreshed {
                    verdict: Verdict::new(Outcome::Failed).with_error(message),
                    duration: Duration::ZERO,
                    fresh: None,
                };
            }
        };
        let (verdict, fresh) = match tokio::time::timeout(self.timeout, self.send(request)).await {
            Ok(Ok((response, cut))) => {
                self.gate.answered(&response, self.rate_limit_headers());
                read_answer(refresh, &response, cut, &secrets, self.max_pause)
            }
            Ok(Err(error)) => (super::transport_verdict(&error, self.timeout, &secrets), None),
            Err(_elapsed) => (
                Verdict::new(Outcome::Transient)
                    .with_error(format!("no answer within {}", humantime::format_duration(self.timeout))),
                None,
            ),
        };
        if let Some(wait) = verdict.retry_after {
            self.gate.pause(wait);
        }
        Refreshed {
            verdict,
            duration: started.elapsed(),
            fresh,
        }
    }

    fn refresh_request(
        &self,
        refresh: &Refresh,
        token: &TokenValue,
        pair: Option<&TokenValue>,
        secret: &str,
    ) -> Result<reqwest::RequestBuilder, String> {
        let value = |name: &str| -> Option<&str> {
            match name {
                "client_id" => Some(&self.client_id),
                "client_secret" => Some(secret),
                "token" => Some(token.expose()),
                "pair_token" => pair.map(TokenValue::expose),
                other => self.vars.get(other).map(String::as_str),
            }
        };
        if pair.is_none() && refresh.fields.iter().any(|(_, t)| t.names().contains(&"pair_token")) {
            return Err(
                "the token endpoint wants the paired access token ({pair_token}), and this refresh \
                        token has none"
                    .into(),
            );
        }
        let url: ProviderUrl = refresh
            .url
            .render(|n| self.vars.get(n).map(String::as_str))
            .parse()
            .map_err(|m| format!("refresh.url {m}"))?;
        let mut request = self.client.post(url.0).header(ACCEPT, "application/json");
        let mut fields: Vec<(&str, String)> = refresh
            .fields
            .iter()
            .map(|(name, t)| (name.as_str(), t.render(value)))
            .collect();
        request = match &refresh.auth {
            Auth::ClientSecretBasic => request.header(AUTHORIZATION, form_encoded_basic(&self.client_id, secret)),
            Auth::ClientSecretPost => {
                fields.push(("client_id", self.client_id.clone()));
                if self.client_secret.is_some() {
                    fields.push(("client_secret", secret.to_owned()));
                }
                request
            }
            Auth::Authorization(template) => request.header(AUTHORIZATION, template.render(value)),
            Auth::None | Auth::Bearer => request,
        };
        Ok(match refresh.body {
            BodyEncoding::Json => {
                let body: serde_json::Map<String, Json> = fields
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Json::String(v)))
                    .collect();
                request.json(&body)
            }
            BodyEncoding::Form | BodyEncoding::None => request.form(&fields),
        })
    }
}

/// Reads the token endpoint's answer (see the module doc).
fn read_answer(
    refresh: &Refresh,
    response: &super::classify::RawResponse,
    cut: bool,
    secrets: &[&str],
    max_wait: Duration,
) -> (Verdict, Option<TokenValue>) {
    let json = response.json();
    let status = response.status;
    let mut verdict = classify(response, secrets, max_wait);
    let said_invalid_grant = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(Json::as_str)
        .is_some_and(|code| code == "invalid_grant");
    if !is_portal_page(response)
        && (refresh.already_invalid.iter().any(|r| r.matches(status, json.as_ref()))
            || (400..500).contains(&status) && said_invalid_grant)
    {
        verdict.outcome = Outcome::AlreadyInvalid;
        verdict.error = Some(format!(
            "the token endpoint says the refresh token is no longer valid: {}",
            describe(response, secrets)
        ));
        return (verdict, None);
    }
    if verdict.outcome != Outcome::Revoked {
        return (verdict, None);
    }
    let fresh = json
        .as_ref()
        .and_then(|j| j.pointer(&refresh.access_token))
        .and_then(Json::as_str)
        .filter(|t| !t.is_empty() && !cut);
    match fresh {
        Some(access) => {
            let verdict = Verdict {
                outcome: Outcome::Refreshed,
                error: Some("exchanged for a fresh access token, revoked next".into()),
                ..verdict
            };
            (verdict, Some(TokenValue::new(access.to_owned())))
        }
        None => {
            let verdict = Verdict {
                outcome: Outcome::Transient,
                error: Some(format!(
                    "HTTP {status} from the token endpoint without an access token at {}",
                    refresh.access_token
                )),
                ..verdict
            };
            (verdict, None)
        }
    }
}
