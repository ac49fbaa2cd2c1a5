//! Providers: one entry per `[providers.NAME]`, each with its definition (from the
//! catalogue, the config, or both), credentials and gate, all sharing one HTTP client
//! (connection pooling, rustls, timeouts, a bounded body read).
//!
//! Map of the files:
//! - `definition`: the provider definition format, read and checked; what a token's plan is.
//! - `catalog` (and `catalog/*.toml`): the built-in definitions, embedded.
//! - `request`, `answer`: a definition's request built, its answers read.
//! - `refresh`: refresh-then-revoke's first call, the token endpoint.
//! - `classify`: the shared classifier every definition refines.
//! - `template`: `{name}` templates in URLs and headers.
//! - `endpoint`: a provider's URL, with the token's place in its path if it has one.
//! - `dialect`: the names of the built-in dialects, and the legacy settings' types.
//! - `gate`: pacing and pauses.
//! - `jwt`: client secrets that are JWTs signed with the provider's key (Sign in with Apple).
//! - `discovery`: where calls go, fixed or from an issuer's metadata (OIDC discovery).
//! - `verify`: proof of death after a revocation (introspection, or the entry's probe).
//!
//! A provider's faults stay its own (DESIGN.md §2, §3 invariant 6): one call lasts at most
//! the provider's `timeout`, reading the body included, so a provider that trickles its
//! answer a byte at a time holds nothing past it; at most `http.max_body_bytes` of a body
//! is read; a connection that breaks is transient; and every wait the provider asks for is
//! clamped to `retry.max_provider_pause` where its answer is classified.

mod answer;
pub(crate) mod catalog;
pub mod classify;
pub(crate) mod definition;
pub mod dialect;
pub(crate) mod discovery;
pub(crate) mod endpoint;
pub(crate) mod gate;
pub(crate) mod jwt;
mod refresh;
mod request;
pub(crate) mod template;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use crate::config::endpoints::Endpoints;
use crate::config::{ClientSecret, Config, ConfigError, HttpConfig, ProviderConfig, RetryConfig};
use crate::outcome::{Outcome, Verdict};
use crate::token::{TokenType, TokenValue};
use classify::RawResponse;
use definition::{Definition, Plan};
use discovery::Source;
use gate::Gate;
use request::Credentials;

/// One configured provider.
pub struct Provider {
    pub(crate) name: String,
    /// The catalogue entry it starts from, or `inline`.
    kind: String,
    definition: Definition,
    /// The definition's template variables.
    vars: BTreeMap<String, String>,
    /// As configured, shown (`Debug`) without any URL's query.
    endpoints: Endpoints,
    /// Where the calls go: fixed, or from the issuer's metadata.
    source: Source,
    client_id: String,
    client_secret: Option<ClientSecret>,
    /// Why nothing is sent: the entry's calls act on a whole organisation and the provider
    /// has not set `allow_org_wide = true` (`ProviderConfig::org_wide_refusal`).
    refused: Option<String>,
    timeout: Duration,
    max_body: usize,
    /// The longest wait this provider may impose (`retry.max_provider_pause`).
    max_pause: Duration,
    client: reqwest::Client,
    pub gate: Gate,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("dialect", &self.kind)
            .field("endpoints", &self.endpoints)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The result of one call, with how long it took.
#[derive(Debug, Clone)]
pub struct Call {
    pub verdict: Verdict,
    pub duration: Duration,
}

impl Provider {
    fn new(
        name: &str,
        config: &ProviderConfig,
        client_secret: Option<ClientSecret>,
        http: &HttpConfig,
        retry: &RetryConfig,
        client: reqwest::Client,
    ) -> Provider {
        Provider {
            name: name.to_owned(),
            kind: config.kind().to_owned(),
            definition: config.definition.clone(),
            vars: config.vars.clone(),
            endpoints: config.endpoints.clone(),
            source: Source::new(&config.endpoints, &config.definition),
            client_id: config.client_id.clone(),
            client_secret,
            refused: config.org_wide_refusal(name),
            timeout: config.timeout.0,
            max_body: http.max_body_bytes.usize(),
            max_pause: retry.max_provider_pause.0,
            client,
            gate: Gate::new(
                config.rate,
                NonZeroU32::new(config.burst.get()).expect("burst is positive"),
                NonZeroUsize::new(config.max_in_flight.usize()).expect("max_in_flight is positive"),
                retry.max_provider_pause.0,
                retry.retry_after_cap.0,
            ),
        }
    }

    /// What to do with a token of `token_type`: every token of a provider whose org-wide
    /// calls are refused is not revocable, with the reason.
    pub(crate) fn plan(&self, token_type: TokenType) -> Plan<'_> {
        match &self.refused {
            Some(why) => Plan::NotRevocable(why),
            None => self.definition.plan(token_type),
        }
    }

    /// Why a token planned [`Plan::ViaPairedAccessToken`] that has no pair cannot be revoked
    /// (the definition's `unpaired_reason`), for its audit row.
    pub fn unpaired_reason(&self) -> Option<&str> {
        self.definition.unpaired_reason.as_deref()
    }

    /// Whether a refresh token can be revoked through a fresh access token (the
    /// definition's `[refresh]`).
    pub(crate) fn refreshes(&self) -> bool {
        self.definition.refresh.is_some()
    }

    /// The headers the provider documents about its rate limits (`rate_limit_headers`), for
    /// pacing that adapts to them.
    pub fn rate_limit_headers(&self) -> &[String] {
        &self.definition.rate_limit_headers
    }

    /// Sends one revocation request and classifies the answer. With an `issuer`, the
    /// endpoint comes from its metadata, fetched at first use and cached (`discovery`); a
    /// provider that verifies then checks a `revoked` answer (`verify`: the check waits on
    /// the gate itself). Does not wait on the gate for the revocation (the caller does) but
    /// pauses it when the provider asks for quiet. Sends nothing while
    /// the provider is paused for longer than callers wait out ([`Gate::ready`] would have
    /// said so): the verdict is then transient, with no HTTP status, and carries what is left
    /// of the pause as its `retry_after`. Sends nothing either when the provider's org-wide
    /// calls are refused (not revocable, with the reason), or when the token cannot go into
    /// the URL's path as one segment (failed, saying why and never what the token is).
    pub async fn revoke(&self, token: &TokenValue, token_type: TokenType) -> Call {
        self.revoke_for(token, token_type, &BTreeMap::new()).await
    }

    /// As [`Provider::revoke`], for a token whose source maps URL variables (`vars`).
    #[tracing::instrument(level = "debug", skip_all, fields(provider = %self.name))]
    pub(crate) async fn revoke_for(
        &self,
        token: &TokenValue,
        token_type: TokenType,
        vars: &BTreeMap<String, String>,
    ) -> Call {
        let not_sent = |verdict: Verdict| Call {
            verdict,
            duration: Duration::ZERO,
        };
        // Callers plan first ([`Provider::plan`]); this holds whoever calls.
        if let Some(why) = &self.refused {
            return not_sent(Verdict::new(Outcome::NotRevocable).with_error(why.clone()));
        }
        if let Some(left) = self.gate.pause_left().filter(|left| *left > self.gate.max_wait()) {
            let left_secs = Duration::from_secs(left.as_secs());
            let verdict = Verdict {
                retry_after: Some(left),
                ..Verdict::new(Outcome::Transient).with_error(format!(
                    "not sent: the provider asked for quiet, {} of it left",
                    humantime::format_duration(left_secs)
                ))
            };
            return not_sent(verdict);
        }
        let started = Instant::now();
        let targets = match self.targets().await {
            Ok(targets) => targets,
            Err(verdict) => {
                return Call {
                    verdict,
                    duration: started.elapsed(),
                };
            }
        };
        let target = &targets.revoke;
        let url = match target.url.url_for_token(token, vars) {
            Ok(url) => url,
            Err(why) => return not_sent(Verdict::new(Outcome::Failed).with_error(why)),
        };
        let secret = match self.secret_now() {
            Ok(secret) => secret,
            Err(error) => return not_sent(Verdict::new(Outcome::Transient).with_error(format!("not sent: {error}"))),
        };
        let secret = secret.as_ref().map(|s| s.expose_secret());
        let creds = Credentials {
            client_id: &self.client_id,
            client_secret: secret,
        };
        let request = target
            .definition
            .request(&self.client, url, &self.vars, &creds, token, token_type)
            .timeout(self.timeout);
        // Everything secret the request carried, for scrubbing from what comes back in any
        // encoding (`token::scrub`). The client id is public (RFC 6749 §2.2) and stays
        // readable; the Basic header's base64 of `id:secret` is caught through the secret.
        let secrets: Vec<&str> = [Some(token.expose()), secret]
            .into_iter()
            .flatten()
            .chain(target.query_values.iter().map(String::as_str))
            .collect();
        // reqwest's per-request timeout covers the body too; this deadline makes that a
        // property of this function rather than of one library version.
        let mut verdict = match tokio::time::timeout(self.timeout, self.send(request)).await {
            Ok(Ok((response, cut))) => self.verdict_of(&response, cut, &secrets),
            Ok(Err(error)) => {
                if error.is_connect() {
                    self.suspect_targets().await;
                }
                transport_verdict(&error, self.timeout, &secrets)
            }
            Err(_elapsed) => Verdict::new(Outcome::Transient)
                .with_error(format!("no answer within {}", humantime::format_duration(self.timeout))),
        };
        // The request id header is the provider's text as well, and goes to the audit row.
        if let Some(id) = verdict.provider_request_id.take() {
            verdict.provider_request_id = Some(crate::token::scrub(&id, &secrets));
        }
        if let Some(wait) = verdict.retry_after {
            self.gate.pause(wait);
        }
        if matches!(verdict.http_status, Some(404 | 410)) {
            self.suspect_targets().await;
        }
        if verdict.outcome == Outcome::Revoked
            && let Some(checker) = &targets.check
        {
            verdict = self.verified(checker, token, token_type, verdict).await;
        }
        Call {
            verdict,
            duration: started.elapsed(),
        }
    }

    /// The client secret to send now: a stored one, or a signed one (signed anew when close
    /// to its expiry); `None` for a public client. An error says why a JWT could not be signed.
    fn secret_now(&self) -> Result<Option<secrecy::SecretString>, String> {
        self.client_secret.as_ref().map(ClientSecret::current).transpose()
    }

    /// Classifies an answer. A success whose body was cut at `http.max_body_bytes` is not
    /// taken as a revocation: what was not read may have said error.
    fn verdict_of(&self, response: &RawResponse, cut: bool, secrets: &[&str]) -> Verdict {
        let verdict = self.definition.classify(response, secrets, self.max_pause);
        self.gate.answered(response, self.rate_limit_headers());
        if cut && verdict.outcome == Outcome::Revoked {
            return Verdict {
                outcome: Outcome::Transient,
                error: Some(format!(
                    "HTTP {} with a body longer than http.max_body_bytes ({} bytes); not taken as a revocation",
                    response.status, self.max_body
                )),
                ..verdict
            };
        }
        verdict
    }

    /// Sends the request and reads at most `max_body` bytes of the answer; a provider that
    /// streams more is cut off, and the answer says it was cut. An error carries no URL: the
    /// URL may hold the token (`{token}` in its path).
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(RawResponse, bool), reqwest::Error> {
        let mut response = request.send().await.map_err(reqwest::Error::without_url)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        let mut cut = false;
        while let Some(chunk) = response.chunk().await.map_err(reqwest::Error::without_url)? {
            let room = self.max_body.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                cut = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok((RawResponse { status, headers, body }, cut))
    }
}

/// A call that got no HTTP answer: always transient, described by the error's causes only,
/// never its own text, which would quote the URL (its query, or the token in its path; `send`
/// strips the URL too), and with every secret scrubbed besides.
fn transport_verdict(error: &reqwest::Error, timeout: Duration, secrets: &[&str]) -> Verdict {
    let what = if error.is_timeout() {
        format!("no answer within {}", humantime::format_duration(timeout))
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else if error.is_body() || error.is_decode() {
        "connection broke while reading the answer".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut chain = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    Verdict::new(Outcome::Transient).with_error(crate::token::redact(&format!("{what}{chain}"), secrets))
}

/// Every configured provider by name, sharing one HTTP client. Built with every provider's
/// client secret already read, so a `Providers` that exists can send its requests.
#[derive(Debug, Clone)]
pub struct Providers {
    by_name: Arc<HashMap<String, Arc<Provider>>>,
}

/// Why [`Providers`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    /// A client secret could not be read; the message names its key, such as
    /// `providers.acme.client_secret_env: environment variable ACME_SECRET is not set`.
    #[error(transparent)]
    Secret(#[from] ConfigError),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl Providers {
    /// Every provider of `config`, with its client secret read from its file or from the
    /// variable `env` looks up (tests pass their own; see `App::build`).
    pub fn from_config(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Result<Providers, ProviderSetupError> {
        let mut secrets = config.resolve_secrets(env)?;
        let client = http_client(&config.http).map_err(ProviderSetupError::Client)?;
        let by_name = config
            .providers
            .iter()
            .map(|(name, p)| {
                let secret = secrets.remove(name).flatten();
                let provider = Provider::new(name, p, secret, &config.http, &config.retry, client.clone());
                (name.clone(), Arc::new(provider))
            })
            .collect();
        Ok(Providers {
            by_name: Arc::new(by_name),
        })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.by_name.get(name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Arc<Provider>)> {
        self.by_name.iter()
    }
}

/// The one HTTP client: pooled connections, rustls, no redirects (a revocation endpoint
/// that redirects is misconfigured, and following it could send the token elsewhere).
fn http_client(http: &HttpConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(http.user_agent.clone())
        .connect_timeout(http.connect_timeout.0)
        .timeout(Duration::from_secs(120))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

#[cfg(test)]
mod tests;
