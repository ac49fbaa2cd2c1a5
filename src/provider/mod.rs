//! Providers: one entry per `[providers.NAME]`, each with its dialect, credentials and gate,
//! all sharing one HTTP client (connection pooling, rustls, timeouts, a bounded body read).

pub mod classify;
pub mod dialect;
pub(crate) mod gate;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, ConfigError, HttpConfig, ProviderConfig, ProviderUrl};
use crate::outcome::{Outcome, Verdict};
use crate::token::{TokenType, TokenValue};
use classify::RawResponse;
use dialect::{BodyFormat, ClientAuth, Credentials, DialectSettings, MOOV_DEFAULT_VERSION, Plan};
use gate::Gate;

/// One configured provider.
pub struct Provider {
    pub(crate) name: String,
    settings: DialectSettings,
    /// Shown (`Debug`) without its query, whose values are scrubbed from answers too.
    url: ProviderUrl,
    query_values: Vec<String>,
    client_id: String,
    client_secret: Option<SecretString>,
    timeout: Duration,
    max_body: usize,
    client: reqwest::Client,
    pub gate: Gate,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("dialect", &self.settings.dialect)
            .field("url", &self.url)
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
        client_secret: Option<SecretString>,
        http: &HttpConfig,
        client: reqwest::Client,
    ) -> Provider {
        Provider {
            name: name.to_owned(),
            settings: DialectSettings {
                dialect: config.dialect,
                auth: config.auth.unwrap_or(ClientAuth::ClientSecretBasic),
                body: config.content_type.unwrap_or(BodyFormat::Json),
                api_version: config
                    .api_version
                    .clone()
                    .unwrap_or_else(|| MOOV_DEFAULT_VERSION.to_owned()),
            },
            url: config.url.clone(),
            query_values: config.url.query_values(),
            client_id: config.client_id.clone(),
            client_secret,
            timeout: config.timeout.0,
            max_body: http.max_body_bytes.usize(),
            client,
            gate: Gate::new(
                config.rate,
                NonZeroU32::new(config.burst.get()).expect("burst is positive"),
            ),
        }
    }

    pub(crate) fn plan(&self, token_type: TokenType) -> Plan {
        self.settings.plan(token_type)
    }

    /// Sends one revocation request and classifies the answer. Does not wait on the gate
    /// (the caller does) but pauses it when the provider asks for quiet.
    #[tracing::instrument(level = "debug", skip_all, fields(provider = %self.name))]
    pub async fn revoke(&self, token: &TokenValue, token_type: TokenType) -> Call {
        let started = Instant::now();
        let secret = self.client_secret.as_ref().map(|s| s.expose_secret());
        let creds = Credentials {
            client_id: &self.client_id,
            client_secret: secret,
        };
        let request = self
            .settings
            .build(self.client.post(self.url.0.clone()), &creds, token, token_type)
            .timeout(self.timeout);
        // Everything secret the request carried, for scrubbing from what comes back in any
        // encoding (`token::scrub`). The client id is public (RFC 6749 §2.2) and stays
        // readable; the Basic header's base64 of `id:secret` is caught through the secret.
        let secrets: Vec<&str> = [Some(token.expose()), secret]
            .into_iter()
            .flatten()
            .chain(self.query_values.iter().map(String::as_str))
            .collect();
        let mut verdict = match self.send(request).await {
            Ok(response) => self.settings.classify(&response, &secrets),
            Err(error) => transport_verdict(&error, self.timeout, &secrets),
        };
        // The request id header is the provider's text as well, and goes to the audit row.
        if let Some(id) = verdict.provider_request_id.take() {
            verdict.provider_request_id = Some(crate::token::scrub(&id, &secrets));
        }
        if let Some(wait) = verdict.retry_after {
            self.gate.pause(wait);
        }
        Call {
            verdict,
            duration: started.elapsed(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<RawResponse, reqwest::Error> {
        let mut response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        // Read at most max_body bytes; a provider that streams more is cut off.
        while let Some(chunk) = response.chunk().await? {
            let room = self.max_body - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= self.max_body {
                break;
            }
        }
        Ok(RawResponse { status, headers, body })
    }
}

/// A call that got no HTTP answer: always transient, described without the URL's query or
/// any body (reqwest errors carry neither secrets nor tokens, but stay terse anyway).
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
                let provider = Provider::new(name, p, secret, &config.http, client.clone());
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
