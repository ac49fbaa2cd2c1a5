//! Simulated providers, served on loopback: what `offboard simulate`, the demo and the tests
//! stand on. One variant per provider shape (the seed dialects and every revocable catalogue
//! entry: [`Dialect::SIMULATED`]), each written from its provider's documentation (DESIGN.md §4, PROVIDERS.md, `shared/seeds/`), never
//! from offboard's catalogue: it checks method, path, content type, client authentication
//! and body fields, answers a malformed request with the provider's documented error, knows
//! the tokens it issued and what revoking each kills, answers a dead or unknown token as the
//! provider does, and can be told to rate-limit with 429 and `Retry-After`, to be slow, to
//! fail, or to lie (`still_active_after_revoke`: success, and the token lives on).
//!
//! Every provider is served under `/NAME/`, at its documented paths. Where the real provider
//! has a way to ask whether a token still works, the simulator serves it too (a **probe**,
//! for verification: live before a revocation, dead after, alive still at a liar):
//!
//! | provider | probe (under `/NAME`) | dead or unknown | live |
//! |---|---|---|---|
//! | rfc7009 | `POST /oauth2/introspect`, form `token`, the revocation's client auth (RFC 7662) | 200 `{"active": false}` | 200 `{"active": true, "client_id", "token_type", "scope", "exp", …}` |
//! | okta | `POST /oauth2/v1/introspect`, as rfc7009 | as rfc7009 | as rfc7009 |
//! | keycloak | `POST /realms/offboard/protocol/openid-connect/token/introspect`, as rfc7009 | as rfc7009 | as rfc7009 |
//! | google | `GET /tokeninfo?access_token=…` (access tokens only) | 400 `{"error": "invalid_token"}` | 200 `{"azp", "aud", "scope", "exp", "expires_in", …}` |
//! | slack | `POST /api/auth.test`, Bearer (or form `token`) | 200 `{"ok": false, "error": "token_revoked"}` (unknown: `invalid_auth`) | 200 `{"ok": true, "team", "user", …}` |
//! | github | `POST /applications/{client_id}/token`, Basic, JSON `{"access_token"}` | 404 `{"message": "Not Found"}` | 200 `{"app", "scopes", "user", …}` |
//! | twitch | `GET /oauth2/validate`, `Authorization: OAuth <token>` | 401 `{"status": 401, "message": "invalid access token"}` | 200 `{"client_id", "login", "user_id", "expires_in"}` |
//! | linkedin | `POST /oauth/v2/introspectToken`, form `client_id`, `client_secret`, `token` | 200 `{"active": false, "status": "revoked"}` (unknown: no status) | 200 `{"active": true, "status": "active", …}` |
//! | notion | `POST /v1/oauth/introspect`, Basic, JSON `{"token"}` | 200 `{"active": false}` | 200 `{"active": true, …}` |
//! | dropbox | `POST /2/check/user`, Bearer | 401 `{"error": {".tag": "invalid_access_token"}}` | 200 `{"result"}` |
//! | zendesk | `GET /api/v2/users/me.json`, Bearer | 401 `{"error": "invalid_token"}` | 200 `{"user"}` |
//! | hubspot_legacy | `GET /oauth/v1/refresh-tokens/{token}` | 404 (HubSpot's error body) | 200 `{"client_id", "hub_id", …}` |
//!
//! The others (stitch, moov, onelogin, auth0, x, salesforce, box, zoom, intuit, discord,
//! hubspot, xero, apple) have no probe here. A probe follows the provider's rate limit,
//! outage and faults like any call, is logged with [`CallRecord::is_probe`], and never
//! changes a token.
//!
//! Dropbox also serves its **token endpoint**, for refresh-then-revoke: `POST
//! /dropbox/oauth2/token`, form `grant_type=refresh_token`, `refresh_token`, and the app's
//! `client_id` and `client_secret` (or HTTP Basic): 200 `{"access_token", "token_type":
//! "bearer", "expires_in"}` with a fresh access token of the refresh token's grant (revoking
//! it kills the refresh token too), 400 `invalid_grant` for a dead or unknown refresh token.
//! Logged with [`CallRecord::is_refresh`] and counted apart (`refreshes`).
//!
//! Every call is logged (time, status, token fingerprint) so a test can assert "no request
//! before the Retry-After was over", "no token revoked twice", "the limit held".
//!
//! Map of the files:
//! - this one: the vocabulary callers configure with: [`SimProvider`], [`Behaviour`],
//!   [`Fault`], [`InvalidTokenAnswer`].
//! - `shape`: each provider's endpoints and what a revocation kills, as data; `wants`: what
//!   a request to each endpoint must carry.
//! - `checks`: a request read against its endpoint's wants; `apple`: Sign in with Apple's
//!   client secret (a JWT) checked for its form; `key_file`: the key offboard signs those
//!   secrets with, made at start.
//! - `answers`: each provider's wording of success, already invalid, refusals and 429s;
//!   `probe`: the probes' answers; `token`: the token endpoint's.
//! - `revoke`: one call: route, latency, limits, outages, injected faults, then the checks
//!   and the token's fate, and the log entry.
//! - `state`: what the server remembers between calls (issued tokens and their grants, the
//!   call log, rate windows) and the [`ProviderStats`] tallied from it.
//! - `server`: the [`Simulator`] handle, its router and the `/_issue` and `/_stats` endpoints.
//! - `echo`: the answer of a provider that repeats the secrets it was sent.
//! - `wire`: body decoding, `Authorization` schemes and response builders.
//! - `file`: the simulator's TOML file ([`providers_from_toml`], [`demo_providers`],
//!   [`every_entry_providers`]); `offboard_config`: the offboard config that points at a
//!   running simulator ([`offboard_config_for`]).

mod answers;
mod apple;
mod checks;
mod echo;
pub use echo::encodings;
mod file;
mod key_file;
mod offboard_config;
mod probe;
mod revoke;
mod server;
mod shape;
mod state;
mod token;
mod wants;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use crate::provider::dialect::{ClientAuth, Dialect};

pub use apple::unsigned_client_secret as apple_client_secret;
pub use file::{demo_providers, every_entry_providers, providers_from_toml};
pub use offboard_config::offboard_config_for;
pub use server::Simulator;
pub use state::CallRecord;
pub(crate) use state::ProviderStats;

/// How a provider that documents no answer of its own (RFC 7009 servers and the like)
/// answers a token it does not know or already revoked.
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
    /// How a provider with no documented answer of its own answers a dead or unknown token.
    pub invalid_token_answer: InvalidTokenAnswer,
    /// A liar: revocations of live tokens are answered with success and the tokens stay
    /// alive (probes say so), as the Zendesk community reports of `tokens/current.json`.
    pub still_active_after_revoke: bool,
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
            still_active_after_revoke: false,
        }
    }
}

/// One simulated provider: its name (first path segment), dialect and credentials.
#[derive(Debug, Clone)]
pub struct SimProvider {
    pub name: String,
    pub dialect: Dialect,
    pub client_id: String,
    /// `None`: a public client (Auth0's, a Dropbox app with PKCE), which sends no secret, or a
    /// dialect that takes none.
    pub client_secret: Option<String>,
    /// How a client of a provider that takes either (rfc7009, moov, okta, keycloak, discord,
    /// x) authenticates.
    pub auth: ClientAuth,
    pub behaviour: Behaviour,
}

impl SimProvider {
    pub fn new(name: &str, dialect: Dialect) -> SimProvider {
        let has_secret = shape::takes_secret(dialect);
        SimProvider {
            name: name.to_owned(),
            dialect,
            client_id: format!("{name}-client"),
            client_secret: has_secret.then(|| format!("{name}-secret-{:08x}", fastrand::u32(..))),
            auth: ClientAuth::ClientSecretBasic,
            behaviour: Behaviour::default(),
        }
    }

    /// Where the simulator at `addr` serves this provider's revocation.
    pub(crate) fn url(&self, addr: SocketAddr) -> String {
        format!("http://{addr}/{}{}", self.name, self.path())
    }
}
