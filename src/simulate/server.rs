//! The running simulator: the handle tests and the CLI hold to issue tokens, change a
//! provider's behaviour and read the call log, and the HTTP side-doors (`/_issue`, `/_stats`)
//! that give the same powers to someone driving `offboard simulate` by hand.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::time::Instant;

use super::key_file::KeyFile;
use super::revoke::provider_handler;
use super::state::{SimState, stats_of};
use super::wire::json_response;
use super::{Behaviour, CallRecord, ProviderStats, SimProvider};
use crate::provider::dialect::Dialect;
use crate::token::{Fingerprint, TokenType};

/// A running simulator. Dropping it does not stop the server; it stops with the runtime.
#[derive(Clone)]
pub struct Simulator {
    pub(super) state: Arc<Mutex<SimState>>,
    pub(super) addr: SocketAddr,
}

impl Simulator {
    /// Serves `providers` on `addr` (port 0 picks a free one).
    /// Serving an Apple provider, it also writes a signing key for the offboard config to
    /// point at (see `key_file`).
    pub async fn start(addr: SocketAddr, providers: Vec<SimProvider>) -> std::io::Result<Simulator> {
        let apple = providers.iter().any(|p| p.dialect == Dialect::Apple);
        let apple_key = if apple { Some(KeyFile::create()?) } else { None };
        let state = Arc::new(Mutex::new(SimState {
            providers: providers.into_iter().map(|p| (p.name.clone(), p)).collect(),
            tokens: HashMap::new(),
            grants: HashMap::new(),
            calls: Vec::new(),
            accepted: HashMap::new(),
            window: HashMap::new(),
            echoes: HashMap::new(),
            started: Instant::now(),
            apple_key,
        }));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/_stats", axum::routing::get(stats_handler))
            .route("/_issue", axum::routing::post(issue_handler))
            .route("/{name}/{*rest}", axum::routing::any(provider_handler))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Simulator { state, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The revocation URL of a provider. HubSpot's legacy call takes the token in the path:
    /// its URL ends in `{token}`, to be replaced by the (percent-encoded) token.
    pub fn url(&self, name: &str) -> String {
        let state = self.state.lock().expect("sim lock");
        match state.providers.get(name) {
            Some(p) => p.url(self.addr),
            None => format!("http://{}/{name}/revoke", self.addr),
        }
    }

    /// The URL of the provider's probe (is this token still alive?), where the real
    /// provider has one; see the module documentation for what each answers. HubSpot's
    /// legacy probe ends in `{token}`, like its revocation URL.
    pub fn probe_url(&self, name: &str) -> Option<String> {
        let state = self.state.lock().expect("sim lock");
        let p = state.providers.get(name)?;
        let (_, path) = p.probe_path()?;
        Some(format!("http://{}/{name}{path}", self.addr))
    }

    /// The URL of the provider's token endpoint (refresh grants), where the simulator serves
    /// one: Dropbox's `oauth2/token`.
    pub fn token_url(&self, name: &str) -> Option<String> {
        let state = self.state.lock().expect("sim lock");
        let path = state.providers.get(name)?.token_path()?;
        Some(format!("http://{}/{name}{path}", self.addr))
    }

    pub(crate) fn provider(&self, name: &str) -> Option<SimProvider> {
        self.state.lock().expect("sim lock").providers.get(name).cloned()
    }

    /// Issues a token the provider will recognise. A OneLogin refresh token passed as
    /// `paired_with` dies with that access token.
    pub fn issue(&self, provider: &str, token_type: TokenType, paired_with: Option<&str>) -> String {
        self.state
            .lock()
            .expect("sim lock")
            .issue(provider, token_type, paired_with)
    }

    /// Makes the provider recognise `value` as a token it issued, for tests that need tokens
    /// of a particular shape (with `/`, `+`, quotes or non-ASCII, as some providers issue).
    pub fn issue_value(&self, provider: &str, token_type: TokenType, value: &str) -> String {
        self.state
            .lock()
            .expect("sim lock")
            .adopt(provider, token_type, None, value.to_owned())
    }

    /// Changes how a provider behaves from now on (a provider that recovers, or breaks).
    pub fn set_behaviour(&self, name: &str, behaviour: Behaviour) {
        if let Some(p) = self.state.lock().expect("sim lock").providers.get_mut(name) {
            p.behaviour = behaviour;
        }
    }

    /// Revocation calls that carried this token (probes and refreshes not counted).
    pub fn calls_for(&self, token: &str) -> usize {
        let fingerprint = Fingerprint::of(token);
        self.state
            .lock()
            .expect("sim lock")
            .calls
            .iter()
            .filter(|c| c.is_revocation() && c.token.as_ref() == Some(&fingerprint))
            .count()
    }

    /// Marks an issued token revoked, as if revoked earlier by someone else.
    pub fn revoke_out_of_band(&self, token: &str) {
        if let Some(t) = self.state.lock().expect("sim lock").tokens.get_mut(token) {
            t.revoked = true;
        }
    }

    pub fn is_revoked(&self, token: &str) -> Option<bool> {
        self.state
            .lock()
            .expect("sim lock")
            .tokens
            .get(token)
            .map(|t| t.revoked)
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.state.lock().expect("sim lock").calls.clone()
    }

    /// Tokens whose revocation was accepted more than once: a worker that never resends a
    /// settled token keeps this at zero.
    pub fn tokens_accepted_twice(&self) -> usize {
        self.state
            .lock()
            .expect("sim lock")
            .accepted
            .values()
            .filter(|n| **n > 1)
            .count()
    }

    pub fn stats(&self) -> HashMap<String, ProviderStats> {
        stats_of(&self.state.lock().expect("sim lock"))
    }
}

#[derive(serde::Deserialize)]
struct IssueRequest {
    provider: String,
    token_type: String,
    paired_with: Option<String>,
}

/// `POST /_issue {"provider", "token_type", "paired_with"?}`: issues a token the provider
/// will recognise, for seeding an application's `oauth_tokens` by hand.
async fn issue_handler(State(state): State<Arc<Mutex<SimState>>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<IssueRequest>(&body) else {
        return json_response(
            400,
            json!({ "error": "expected {\"provider\", \"token_type\", \"paired_with\"?}" }),
        );
    };
    let Some(token_type) = TokenType::parse(&request.token_type) else {
        return json_response(
            400,
            json!({ "error": "token_type must be access_token or refresh_token" }),
        );
    };
    let mut state = state.lock().expect("sim lock");
    if !state.providers.contains_key(&request.provider) {
        return json_response(
            404,
            json!({ "error": format!("no simulated provider '{}'", request.provider) }),
        );
    }
    let token = state.issue(&request.provider, token_type, request.paired_with.as_deref());
    json_response(200, json!({ "token": token }))
}

async fn stats_handler(State(state): State<Arc<Mutex<SimState>>>) -> Response {
    let state = state.lock().expect("sim lock");
    let twice = state.accepted.values().filter(|n| **n > 1).count();
    axum::Json(json!({ "providers": stats_of(&state), "tokens_accepted_twice": twice })).into_response()
}
