//! Proof of death (DESIGN.md §2): after a provider accepts a revocation, a provider that
//! verifies (`verify = "introspect"` or `"probe"`) is asked whether the token still works.
//!
//! - **Introspection** (RFC 7662): `POST` form `token`, `token_type_hint`, with the client
//!   authentication of the revocation (with an issuer, one its metadata lists for the
//!   introspection endpoint). `{"active": false}` is dead; `{"active": true}` is alive.
//! - **A probe** (the entry's `probe`): the provider's own call, such as Slack's `auth.test`
//!   or Google's `tokeninfo`, and the answers that mean dead and alive, as data.
//!
//! What the answer does to the attempt's verdict:
//! - dead: it stays `revoked`, with `verification = { dead: true, by }`;
//! - alive: `still_active`, with `verification = { dead: false, by }` and an error saying
//!   so; the drain retries it like a transient error, and fails the request with that reason
//!   once its attempts are used up;
//! - the check could not be made (a timeout, a broken connection, 408, 429, 5xx, the
//!   provider paused): `transient`, with no verification and the reason. **No proof, no
//!   clearance**: an operator who turns `verify` on asks for proof, and a user must never
//!   be cleared too early, while a delayed clearance only waits. The drain retries the whole
//!   attempt (revocation is idempotent: the provider answers `revoked` again, or already
//!   invalid, which settles without a check), and a check that stays impossible fails the
//!   request with the reason, for an operator to retry it or set `verify = "none"`;
//! - an answer that says neither (a 401 from an introspection endpoint that does not let
//!   this client introspect, an unknown body): `failed`, with the answer described, since
//!   asking again will not change it.
//!
//! Token types the check cannot tell about (Google's `tokeninfo` takes access tokens only)
//! settle as `revoked` unchecked (`verified` NULL), as do `already_invalid` answers, which
//! are the provider's own word that the token is dead. Every check waits on the provider's
//! gate like a revocation, pauses it on `Retry-After`, and is scrubbed like one: the token
//! (also where a probe puts it in the URL's query), the client secret and the URL's query
//! values never reach an error, a log or `Debug`.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::classify::{RawResponse, classify, describe, is_portal_page};
use super::definition::checks::{Answer, Probe};
use super::definition::{Auth, BodyEncoding, Definition};
use super::discovery::Target;
use super::endpoint::Endpoint;
use super::gate::Paused;
use super::request::Credentials;
use super::template::Template;
use super::{Provider, transport_verdict};
use crate::config::ProviderUrl;
use crate::outcome::{Outcome, Verdict, Verification};
use crate::token::{TokenType, TokenValue};

/// How the audit names an RFC 7662 check.
pub(crate) const INTROSPECTION: &str = "introspection";

/// One provider's check of death, ready to send.
pub(crate) struct Checker {
    /// `introspection`, or the probe's name (`slack auth.test`).
    pub(crate) by: String,
    pub(crate) target: Target,
    /// The probe's query parameters; none for introspection.
    query: Vec<(String, Template)>,
    token_types: Vec<TokenType>,
    reading: Reading,
}

/// How an answer of the check is read.
enum Reading {
    /// RFC 7662: the boolean `active`.
    Introspection,
    /// The probe's rules, dead first.
    Answers { dead: Vec<Answer>, alive: Vec<Answer> },
}

/// What the check said.
enum Said {
    Dead,
    Alive,
    /// Not made, or not understood: the verdict's outcome, the reason, and a wait the
    /// provider asked for.
    Unproven(Outcome, String, Option<Duration>),
}

impl Checker {
    /// RFC 7662 introspection at `url`, authenticated with `auth` (client_secret_basic or
    /// client_secret_post), for both token types.
    pub(crate) fn introspection(url: ProviderUrl, provider: &Definition, auth: Auth) -> Checker {
        let definition = Definition {
            method: reqwest::Method::POST,
            body: BodyEncoding::Form,
            auth,
            token_field: Some("token".into()),
            token_type_hint_field: Some("token_type_hint".into()),
            client_id_field: "client_id".into(),
            client_secret_field: "client_secret".into(),
            credentials_first: false,
            extra_headers: Vec::new(),
            ..provider.clone()
        };
        Checker {
            by: INTROSPECTION.into(),
            target: Target::new(Endpoint::fixed(url), definition),
            query: Vec::new(),
            token_types: vec![TokenType::AccessToken, TokenType::RefreshToken],
            reading: Reading::Introspection,
        }
    }

    /// The provider's own `probe`, at `url` (its template filled).
    pub(crate) fn probe(url: ProviderUrl, provider: &Definition, probe: &Probe) -> Checker {
        let definition = Definition {
            method: probe.method.clone(),
            body: probe.body,
            auth: probe.auth.clone(),
            token_field: probe.token_field.clone(),
            token_type_hint_field: None,
            credentials_first: false,
            extra_headers: Vec::new(),
            ..provider.clone()
        };
        Checker {
            by: probe.by.clone(),
            target: Target::new(Endpoint::fixed(url), definition),
            query: probe.query.clone(),
            token_types: probe.token_types.clone(),
            reading: Reading::Answers {
                dead: probe.dead.clone(),
                alive: probe.alive.clone(),
            },
        }
    }

    /// `introspection at https://… (client_secret_basic)`, for `check-config`.
    pub(crate) fn describe(&self) -> String {
        let auth = match self.target.definition.auth {
            Auth::ClientSecretBasic | Auth::ClientSecretPost => {
                format!(" ({})", self.target.definition.auth.describe())
            }
            _ => String::new(),
        };
        format!("{} at {}{auth}", self.by, self.target.url)
    }
}

impl Provider {
    /// Asks `checker` about `token`, whose revocation the provider accepted (`verdict`), and
    /// returns the verdict of the attempt (see the module doc).
    pub(super) async fn verified(
        &self,
        checker: &Checker,
        token: &TokenValue,
        token_type: TokenType,
        verdict: Verdict,
    ) -> Verdict {
        if !checker.token_types.contains(&token_type) {
            return verdict;
        }
        let accepted = match verdict.http_status {
            Some(status) => format!("the provider accepted the revocation (HTTP {status})"),
            None => "the provider accepted the revocation".to_owned(),
        };
        let said = self.ask(checker, token, token_type).await;
        let by = checker.by.clone();
        match said {
            Said::Dead => Verdict {
                verification: Some(Verification { dead: true, by }),
                ..verdict
            },
            Said::Alive => Verdict {
                outcome: Outcome::StillActive,
                error: Some(format!("{accepted}, but {by} shows the token still works")),
                retry_after: None,
                verification: Some(Verification { dead: false, by }),
                ..verdict
            },
            Said::Unproven(outcome, why, retry_after) => Verdict {
                outcome,
                error: Some(crate::token::redact(
                    &format!("{accepted}, but {by} could not prove it dead: {why}; not settled without proof"),
                    &[token.expose()],
                )),
                retry_after,
                verification: None,
                ..verdict
            },
        }
    }

    async fn ask(&self, checker: &Checker, token: &TokenValue, token_type: TokenType) -> Said {
        if let Err(Paused(left)) = self.gate.ready().await {
            let why = format!("the provider asked for quiet, {}s of it left", left.as_secs());
            return Said::Unproven(Outcome::Transient, why, Some(left));
        }
        let secret = match self.secret_now() {
            Ok(secret) => secret,
            Err(error) => return Said::Unproven(Outcome::Transient, format!("not asked: {error}"), None),
        };
        let secret = secret.as_ref().map(|s| s.expose_secret());
        let creds = Credentials {
            client_id: &self.client_id,
            client_secret: secret,
        };
        let target = &checker.target;
        // The probe's query (a token, for Google's tokeninfo) goes into this one request's
        // URL only: the URL is never shown, and the token is scrubbed from every answer.
        let mut url = target.url.base();
        if !checker.query.is_empty() {
            let value = |name: &str| match name {
                "token" => Some(token.expose()),
                "token_type" => Some(token_type.as_str()),
                "client_id" => Some(self.client_id.as_str()),
                other => self.vars.get(other).map(String::as_str),
            };
            let mut pairs = url.query_pairs_mut();
            for (name, template) in &checker.query {
                pairs.append_pair(name, &template.render(value));
            }
        }
        let request = target
            .definition
            .request(&self.client, url, &self.vars, &creds, token, token_type);
        let secrets: Vec<&str> = [Some(token.expose()), secret]
            .into_iter()
            .flatten()
            .chain(target.query_values.iter().map(String::as_str))
            .collect();
        let (response, cut) = match tokio::time::timeout(self.timeout, self.send(request.timeout(self.timeout))).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                let v = transport_verdict(&error, self.timeout, &secrets);
                return Said::Unproven(Outcome::Transient, v.error.unwrap_or_default(), None);
            }
            Err(_elapsed) => {
                let why = format!("no answer within {}", humantime::format_duration(self.timeout));
                return Said::Unproven(Outcome::Transient, why, None);
            }
        };
        // A check counts for pacing like a revocation: it spends the same rate.
        self.gate.answered(&response, self.rate_limit_headers());
        if cut {
            let why = format!("HTTP {} with a body longer than http.max_body_bytes", response.status);
            return Said::Unproven(Outcome::Transient, why, None);
        }
        self.read_check(checker, &response, &secrets)
    }

    fn read_check(&self, checker: &Checker, response: &RawResponse, secrets: &[&str]) -> Said {
        let status = response.status;
        let json = response.json();
        if !is_portal_page(response) {
            match &checker.reading {
                Reading::Introspection if (200..300).contains(&status) => {
                    match json
                        .as_ref()
                        .and_then(|j| j.get("active"))
                        .and_then(serde_json::Value::as_bool)
                    {
                        Some(false) => return Said::Dead,
                        Some(true) => return Said::Alive,
                        None => {}
                    }
                }
                Reading::Introspection => {}
                Reading::Answers { dead, alive } => {
                    if dead.iter().any(|a| a.matches(status, json.as_ref())) {
                        return Said::Dead;
                    }
                    if alive.iter().any(|a| a.matches(status, json.as_ref())) {
                        return Said::Alive;
                    }
                }
            }
        }
        let shared = classify(response, secrets, self.max_pause);
        if let Some(wait) = shared.retry_after {
            self.gate.pause(wait);
        }
        let text = describe(response, secrets);
        match shared.outcome {
            Outcome::Transient => Said::Unproven(Outcome::Transient, text, shared.retry_after),
            _ => Said::Unproven(
                Outcome::Failed,
                format!("its answer says neither dead nor alive ({text})"),
                None,
            ),
        }
    }
}
