//! Simulated providers of every dialect, served on loopback: what `offboard simulate`, the
//! demo and the end-to-end tests stand on. Each answers as its real counterpart documents
//! (see DESIGN.md §4 and `shared/seeds/`): it checks method, content type, client
//! authentication and body fields, knows the tokens it issued, and can be told to rate-limit
//! with 429 and `Retry-After`, to be slow, or to fail.
//!
//! Every call is logged (time, status, token fingerprint) so a test can assert "no request
//! before the Retry-After was over", "no token revoked twice", "the limit held".
//!
//! Map of the files:
//! - this one: the vocabulary callers configure with: [`SimProvider`], [`Behaviour`],
//!   [`Fault`], [`InvalidTokenAnswer`].
//! - `state`: what the server remembers between calls (issued tokens, the call log, rate
//!   windows) and the [`ProviderStats`] tallied from it.
//! - `server`: the [`Simulator`] handle, its router and the `/_issue` and `/_stats` endpoints.
//! - `revoke`: one call to a revocation endpoint: latency, limits, outages, injected faults,
//!   then the token's fate, and the log entry.
//! - `echo`: the answer of a provider that repeats the secrets it was sent.
//! - `dialects`: what each dialect accepts (content type, client authentication, token field)
//!   and how it words its answers and refusals.
//! - `file`: the simulator's TOML file ([`providers_from_toml`], [`demo_providers`]) and the
//!   offboard config that points at a running simulator ([`offboard_config_for`]).

mod dialects;
mod echo;
pub use echo::encodings;
mod file;
mod revoke;
mod server;
mod state;

use std::net::SocketAddr;
use std::time::Duration;

use crate::provider::dialect::{ClientAuth, Dialect};

pub use file::{demo_providers, offboard_config_for, providers_from_toml};
pub use server::Simulator;
pub use state::CallRecord;
pub(crate) use state::ProviderStats;

/// How an RFC 7009 server answers a token it does not know or already revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidTokenAnswer {
    /// RFC 7009 §2.2: 200, as if it had been revoked now.
    Ok200,
    /// Google, Salesforce, OIDC servers: 400 `{"error":"invalid_token"}`.
    InvalidToken400,
}

/// Faults and limits of one simulated provider. All off by default.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Requests per second served; beyond it, 429 with `Retry-After: 1`.
    pub limit_per_sec: Option<u32>,
    /// Answer every request with 429 and `Retry-After: retry_after` until this long after
    /// the simulator started.
    pub throttle_for: Option<Duration>,
    pub retry_after: u64,
    /// Answer every request with this status (a broken provider).
    pub always_status: Option<u16>,
    /// Fractions (0.0 to 1.0) of requests that meet each fault instead of being served. A
    /// fault never revokes the token.
    /// 503 with `{"error":"temporarily_unavailable"}`.
    pub fail_fraction: f64,
    /// No answer at all (the client's timeout decides).
    pub timeout_fraction: f64,
    /// The connection breaks in the middle of the answer.
    pub reset_fraction: f64,
    /// A 200 that is not the provider's answer: an HTML page, or truncated JSON (OneLogin).
    pub malformed_fraction: f64,
    /// A 503 with a body of 1 MiB.
    pub oversized_fraction: f64,
    /// A 503 whose body (and `x-request-id`) repeats what the request carried: the token and
    /// the client credentials, raw and in one of many encodings (percent-encoded, JSON-escaped,
    /// base64, the Basic header), a different one on each such answer. For checking that
    /// nothing a provider writes back leaks a secret.
    pub echo_fraction: f64,
    /// Added before answering.
    pub latency: Duration,
    pub invalid_token_answer: InvalidTokenAnswer,
}

/// A fault injected in place of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Unavailable,
    Timeout,
    Reset,
    Malformed,
    Oversized,
    Echo,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            limit_per_sec: None,
            throttle_for: None,
            retry_after: 1,
            always_status: None,
            fail_fraction: 0.0,
            timeout_fraction: 0.0,
            reset_fraction: 0.0,
            malformed_fraction: 0.0,
            oversized_fraction: 0.0,
            echo_fraction: 0.0,
            latency: Duration::ZERO,
            invalid_token_answer: InvalidTokenAnswer::Ok200,
        }
    }
}

/// One simulated provider: its name (first path segment), dialect and credentials.
#[derive(Debug, Clone)]
pub struct SimProvider {
    pub name: String,
    pub dialect: Dialect,
    pub client_id: String,
    /// `None`: an Auth0 public client, which sends no secret, or a dialect that takes none.
    pub client_secret: Option<String>,
    /// How an rfc7009 or moov client authenticates.
    pub auth: ClientAuth,
    pub behaviour: Behaviour,
}

impl SimProvider {
    pub fn new(name: &str, dialect: Dialect) -> SimProvider {
        // Google and Slack take no client secret: Google no client authentication at all,
        // Slack the token itself.
        let has_secret = !matches!(dialect, Dialect::Google | Dialect::Slack);
        SimProvider {
            name: name.to_owned(),
            dialect,
            client_id: format!("{name}-client"),
            client_secret: has_secret.then(|| format!("{name}-secret-{:08x}", fastrand::u32(..))),
            auth: ClientAuth::ClientSecretBasic,
            behaviour: Behaviour::default(),
        }
    }

    /// Where the simulator at `addr` serves this provider.
    pub(crate) fn url(&self, addr: SocketAddr) -> String {
        format!("http://{addr}/{}{}", self.name, self.path())
    }

    /// The documented path of the dialect's revocation endpoint.
    pub(crate) fn path(&self) -> &'static str {
        match self.dialect {
            Dialect::Rfc7009 => "/oauth2/revoke",
            Dialect::Stitch => "/connect/token/revoke",
            Dialect::Moov => "/oauth2/revoke",
            Dialect::Onelogin => "/auth/oauth2/revoke",
            Dialect::Auth0 => "/oauth/revoke",
            Dialect::Google => "/revoke",
            Dialect::Slack => "/api/auth.revoke",
        }
    }
}
