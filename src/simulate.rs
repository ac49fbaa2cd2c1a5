//! Simulated providers of every dialect, served on loopback: what `offboard simulate`, the
//! demo and the end-to-end tests stand on. Each answers as its real counterpart documents
//! (see DESIGN.md §4 and `shared/seeds/`): it checks method, content type, client
//! authentication and body fields, knows the tokens it issued, and can be told to rate-limit
//! with 429 and `Retry-After`, to be slow, or to fail.
//!
//! Every call is logged (time, status, token fingerprint) so a test can assert "no request
//! before the Retry-After was over", "no token revoked twice", "the limit held".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{ConfigError, Count, HumanDuration};
use crate::provider::dialect::{ClientAuth, Dialect};
use crate::token::{Fingerprint, TokenType};

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
}

impl Behaviour {
    /// Draws at most one fault, with the configured probabilities.
    fn roll(&self) -> Option<Fault> {
        let mut draw = fastrand::f64();
        for (fraction, fault) in [
            (self.fail_fraction, Fault::Unavailable),
            (self.timeout_fraction, Fault::Timeout),
            (self.reset_fraction, Fault::Reset),
            (self.malformed_fraction, Fault::Malformed),
            (self.oversized_fraction, Fault::Oversized),
        ] {
            if draw < fraction {
                return Some(fault);
            }
            draw -= fraction;
        }
        None
    }
}

/// How long a simulated timeout keeps the request unanswered.
const HANG: Duration = Duration::from_secs(3600);

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
    /// `None`: an Auth0 public client, which sends no secret.
    pub client_secret: Option<String>,
    /// How an rfc7009 or moov client authenticates.
    pub auth: ClientAuth,
    pub behaviour: Behaviour,
}

impl SimProvider {
    pub fn new(name: &str, dialect: Dialect) -> SimProvider {
        SimProvider {
            name: name.to_owned(),
            dialect,
            client_id: format!("{name}-client"),
            client_secret: Some(format!("{name}-secret-{:08x}", fastrand::u32(..))),
            auth: ClientAuth::ClientSecretBasic,
            behaviour: Behaviour::default(),
        }
    }

    /// Where the simulator at `addr` serves this provider.
    pub fn url(&self, addr: SocketAddr) -> String {
        format!("http://{addr}/{}{}", self.name, self.path())
    }

    /// The documented path of the dialect's revocation endpoint.
    pub fn path(&self) -> &'static str {
        match self.dialect {
            Dialect::Rfc7009 => "/oauth2/revoke",
            Dialect::Stitch => "/connect/token/revoke",
            Dialect::Moov => "/oauth2/revoke",
            Dialect::Onelogin => "/auth/oauth2/revoke",
            Dialect::Auth0 => "/oauth/revoke",
        }
    }
}

/// One call as the simulator saw it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub provider: String,
    pub at: Instant,
    /// The status sent; for a timeout, the one that would have been.
    pub status: u16,
    pub fault: Option<Fault>,
    /// Fingerprint of the token in the request, when there was one.
    pub token: Option<Fingerprint>,
}

#[derive(Debug, Clone)]
struct IssuedToken {
    provider: String,
    token_type: TokenType,
    revoked: bool,
    /// OneLogin: revoking this access token also kills these refresh tokens.
    kills: Vec<String>,
}

#[derive(Debug)]
struct SimState {
    providers: HashMap<String, SimProvider>,
    tokens: HashMap<String, IssuedToken>,
    calls: Vec<CallRecord>,
    /// Requests accepted (authenticated, well-formed, not throttled) per token.
    accepted: HashMap<String, u32>,
    window: HashMap<String, (Instant, u32)>,
    started: Instant,
}

impl SimState {
    fn issue(&mut self, provider: &str, token_type: TokenType, paired_with: Option<&str>) -> String {
        let token = format!(
            "{provider}_{}_{:016x}{:016x}",
            &token_type.as_str()[..1],
            fastrand::u64(..),
            fastrand::u64(..)
        );
        let issued = IssuedToken {
            provider: provider.to_owned(),
            token_type,
            revoked: false,
            kills: Vec::new(),
        };
        self.tokens.insert(token.clone(), issued);
        if let Some(access) = paired_with.and_then(|a| self.tokens.get_mut(a)) {
            access.kills.push(token.clone());
        }
        token
    }
}

/// A running simulator. Dropping it does not stop the server; it stops with the runtime.
#[derive(Clone)]
pub struct Simulator {
    state: Arc<Mutex<SimState>>,
    addr: SocketAddr,
}

/// Per-provider totals.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderStats {
    pub calls: u64,
    /// Calls answered with success (a revocation, or a token already dead).
    pub accepted: u64,
    pub rejected_429: u64,
    pub errors_5xx: u64,
    pub client_errors: u64,
    /// Calls that met an injected fault (timeout, reset, malformed, oversized, 503).
    pub faults: u64,
}

impl Simulator {
    /// Serves `providers` on `addr` (port 0 picks a free one).
    pub async fn start(addr: SocketAddr, providers: Vec<SimProvider>) -> std::io::Result<Simulator> {
        let state = Arc::new(Mutex::new(SimState {
            providers: providers.into_iter().map(|p| (p.name.clone(), p)).collect(),
            tokens: HashMap::new(),
            calls: Vec::new(),
            accepted: HashMap::new(),
            window: HashMap::new(),
            started: Instant::now(),
        }));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/_stats", axum::routing::get(stats_handler))
            .route("/_issue", axum::routing::post(issue_handler))
            .route("/{name}/{*rest}", axum::routing::any(revoke_handler))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Simulator { state, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The revocation URL of a provider.
    pub fn url(&self, name: &str) -> String {
        let state = self.state.lock().expect("sim lock");
        match state.providers.get(name) {
            Some(p) => p.url(self.addr),
            None => format!("http://{}/{name}/revoke", self.addr),
        }
    }

    pub fn provider(&self, name: &str) -> Option<SimProvider> {
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

    /// Changes how a provider behaves from now on (a provider that recovers, or breaks).
    pub fn set_behaviour(&self, name: &str, behaviour: Behaviour) {
        if let Some(p) = self.state.lock().expect("sim lock").providers.get_mut(name) {
            p.behaviour = behaviour;
        }
    }

    /// Calls that carried this token.
    pub fn calls_for(&self, token: &str) -> usize {
        let fingerprint = Fingerprint::of(token);
        self.state
            .lock()
            .expect("sim lock")
            .calls
            .iter()
            .filter(|c| c.token.as_ref() == Some(&fingerprint))
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

fn stats_of(state: &SimState) -> HashMap<String, ProviderStats> {
    let mut out: HashMap<String, ProviderStats> = state
        .providers
        .keys()
        .map(|k| (k.clone(), ProviderStats::default()))
        .collect();
    for call in &state.calls {
        let s = out.entry(call.provider.clone()).or_default();
        s.calls += 1;
        match (call.fault, call.status) {
            (Some(_), _) => s.faults += 1,
            (None, 200..=299) => s.accepted += 1,
            (None, 429) => s.rejected_429 += 1,
            (None, 500..=599) => s.errors_5xx += 1,
            (None, _) => s.client_errors += 1,
        }
    }
    out
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

/// A parsed request body: form or JSON fields as strings.
struct Body {
    fields: HashMap<String, String>,
}

impl Body {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Form,
    Json,
    Other,
}

fn content_kind(headers: &HeaderMap) -> Kind {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => Kind::Form,
        "application/json" => Kind::Json,
        _ => Kind::Other,
    }
}

fn parse_body(kind: Kind, bytes: &[u8]) -> Option<Body> {
    let fields = match kind {
        Kind::Form => url::form_urlencoded::parse(bytes).into_owned().collect(),
        Kind::Json => {
            let value: Value = serde_json::from_slice(bytes).ok()?;
            value
                .as_object()?
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        }
        Kind::Other => return None,
    };
    Some(Body { fields })
}

/// `Authorization: Basic` credentials, form-decoded as RFC 6749 §2.3.1 asks.
fn basic_credentials(headers: &HeaderMap, form_decode: bool) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    let (id, secret) = pair.split_once(':')?;
    let decode = |s: &str| -> String {
        if form_decode {
            url::form_urlencoded::parse(format!("v={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        } else {
            s.to_owned()
        }
    };
    Some((decode(id), decode(secret)))
}

fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

fn empty(status: u16) -> Response {
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

fn onelogin_status(code: u16, kind: &str, message: &str) -> Response {
    json_response(
        code,
        json!({ "status": { "error": code != 200, "code": code, "type": kind, "message": message } }),
    )
}

/// The answer a dialect gives to a request it rejects before looking at the token.
enum Rejection {
    BadCredentials,
    MissingCredentials,
    WrongContentType,
    MissingToken,
}

fn reject(dialect: Dialect, why: Rejection) -> Response {
    use Rejection::*;
    match dialect {
        Dialect::Onelogin => match why {
            WrongContentType => onelogin_status(
                400,
                "bad request",
                "Content Type is not specified or specified incorrectly. Content-Type header must be set to application/json",
            ),
            MissingToken => onelogin_status(400, "bad request", "Access Token Missing"),
            MissingCredentials => onelogin_status(400, "bad request", "The authorization information is missing"),
            BadCredentials => onelogin_status(401, "Unauthorized", "Authentication Failure"),
        },
        Dialect::Moov => match why {
            MissingToken => json_response(422, json!({ "token": "is required" })),
            WrongContentType => json_response(400, json!({ "error": "unsupported content type" })),
            MissingCredentials | BadCredentials => json_response(400, json!({ "error": "invalid client credentials" })),
        },
        Dialect::Auth0 => match why {
            MissingToken => json_response(
                400,
                json!({ "error": "invalid_request", "error_description": "Missing required parameter: token" }),
            ),
            WrongContentType => json_response(
                400,
                json!({ "error": "invalid_request", "error_description": "Invalid content type" }),
            ),
            MissingCredentials => json_response(
                400,
                json!({ "error": "invalid_request", "error_description": "Missing required parameter: client_id" }),
            ),
            BadCredentials => json_response(
                401,
                json!({ "error": "access_denied", "error_description": "Unauthorized" }),
            ),
        },
        Dialect::Rfc7009 | Dialect::Stitch => match why {
            MissingToken => json_response(
                400,
                json!({ "error": "invalid_request", "error_description": "missing token" }),
            ),
            WrongContentType => json_response(
                400,
                json!({ "error": "invalid_request", "error_description": "expected application/x-www-form-urlencoded" }),
            ),
            MissingCredentials | BadCredentials => json_response(401, json!({ "error": "invalid_client" })),
        },
    }
}

/// Checks content type, client authentication and the token field as the dialect
/// documents them; returns the token on success.
fn check_request(p: &SimProvider, headers: &HeaderMap, bytes: &[u8]) -> Result<String, Rejection> {
    let kind = content_kind(headers);
    let allowed = match p.dialect {
        Dialect::Rfc7009 | Dialect::Stitch => kind == Kind::Form,
        Dialect::Moov => kind != Kind::Other,
        Dialect::Onelogin | Dialect::Auth0 => kind == Kind::Json,
    };
    if !allowed {
        return Err(Rejection::WrongContentType);
    }
    let body = parse_body(kind, bytes).ok_or(Rejection::WrongContentType)?;
    let expected_secret = p.client_secret.as_deref();
    let creds: Option<(String, Option<String>)> = match p.dialect {
        Dialect::Onelogin => {
            let raw = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let mut id = None;
            let mut secret = None;
            for part in raw.split(',') {
                let part = part.trim();
                if let Some(v) = part.strip_prefix("client_id:") {
                    id = Some(v.to_owned());
                } else if let Some(v) = part.strip_prefix("client_secret:") {
                    secret = Some(v.to_owned());
                }
            }
            id.map(|id| (id, secret))
        }
        Dialect::Stitch | Dialect::Auth0 => body
            .get("client_id")
            .map(|id| (id.to_owned(), body.get("client_secret").map(str::to_owned))),
        Dialect::Rfc7009 | Dialect::Moov => match p.auth {
            ClientAuth::ClientSecretBasic => {
                basic_credentials(headers, p.dialect == Dialect::Rfc7009).map(|(id, secret)| (id, Some(secret)))
            }
            ClientAuth::ClientSecretPost => body
                .get("client_id")
                .map(|id| (id.to_owned(), body.get("client_secret").map(str::to_owned))),
        },
    };
    let Some((id, secret)) = creds else {
        return Err(Rejection::MissingCredentials);
    };
    if id != p.client_id || secret.as_deref() != expected_secret {
        return Err(Rejection::BadCredentials);
    }
    let field = if p.dialect == Dialect::Onelogin {
        "access_token"
    } else {
        "token"
    };
    body.get(field).map(str::to_owned).ok_or(Rejection::MissingToken)
}

async fn revoke_handler(
    State(state): State<Arc<Mutex<SimState>>>,
    Path((name, rest)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let Some(provider) = state.lock().expect("sim lock").providers.get(&name).cloned() else {
        return empty(404);
    };
    if !provider.behaviour.latency.is_zero() {
        tokio::time::sleep(provider.behaviour.latency).await;
    }
    let (mut response, token, fault) = answer(&state, &provider, &method, &format!("/{rest}"), &headers, &bytes);
    if provider.dialect == Dialect::Moov {
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            fastrand::u32(..),
            fastrand::u16(..),
            fastrand::u16(..0x1000),
            fastrand::u16(..0x1000),
            fastrand::u64(..1 << 48)
        );
        if let Ok(value) = id.parse() {
            response.headers_mut().insert("x-request-id", value);
        }
    }
    state.lock().expect("sim lock").calls.push(CallRecord {
        provider: name,
        at: Instant::now(),
        status: response.status().as_u16(),
        fault,
        token: token.as_deref().map(Fingerprint::of),
    });
    if fault == Some(Fault::Timeout) {
        tokio::time::sleep(HANG).await;
    }
    response
}

/// The answer standing in for a fault.
fn fault_response(dialect: Dialect, fault: Fault) -> Response {
    match fault {
        Fault::Unavailable | Fault::Timeout => json_response(503, json!({ "error": "temporarily_unavailable" })),
        Fault::Reset => {
            let parts: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"status\":")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated reset",
                )),
            ];
            let body = axum::body::Body::from_stream(futures_util::stream::iter(parts));
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Fault::Malformed if dialect == Dialect::Onelogin => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":{"error":fal"#,
        )
            .into_response(),
        Fault::Malformed => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html><body><h1>Welcome to the guest network</h1></body></html>",
        )
            .into_response(),
        Fault::Oversized => {
            let body = format!(
                r#"{{"error":"temporarily_unavailable","error_description":"{}"}}"#,
                "x".repeat(1 << 20)
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
    }
}

fn answer(
    state: &Arc<Mutex<SimState>>,
    p: &SimProvider,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    bytes: &[u8],
) -> (Response, Option<String>, Option<Fault>) {
    if path != p.path() || method != Method::POST {
        let response = match p.dialect {
            Dialect::Onelogin => onelogin_status(404, "not found", "No Route Exists"),
            _ if path != p.path() => empty(404),
            _ => empty(405),
        };
        return (response, None, None);
    }
    let b = &p.behaviour;
    let now = Instant::now();
    {
        let mut s = state.lock().expect("sim lock");
        if b.throttle_for.is_some_and(|d| now < s.started + d) {
            return (throttled(b.retry_after), None, None);
        }
        if let Some(limit) = b.limit_per_sec {
            let window = s.window.entry(p.name.clone()).or_insert((now, 0));
            if now.duration_since(window.0) >= Duration::from_secs(1) {
                *window = (now, 0);
            }
            if window.1 >= limit {
                return (throttled(1), None, None);
            }
            window.1 += 1;
        }
    }
    if let Some(status) = b.always_status {
        return (
            json_response(status, json!({ "error": "simulated outage" })),
            None,
            None,
        );
    }
    if let Some(fault) = b.roll() {
        let token = check_request(p, headers, bytes).ok();
        return (fault_response(p.dialect, fault), token, Some(fault));
    }
    let token = match check_request(p, headers, bytes) {
        Ok(token) => token,
        Err(why) => return (reject(p.dialect, why), None, None),
    };
    let mut s = state.lock().expect("sim lock");
    *s.accepted.entry(token.clone()).or_default() += 1;
    let known = s.tokens.get(&token).filter(|t| t.provider == p.name).cloned();
    let valid = known.as_ref().is_some_and(|t| !t.revoked);
    if p.dialect == Dialect::Auth0 && known.as_ref().is_some_and(|t| t.token_type == TokenType::AccessToken) {
        let response = json_response(
            400,
            json!({ "error": "unsupported_token_type", "error_description": "only refresh tokens can be revoked" }),
        );
        return (response, Some(token), None);
    }
    if valid {
        let kills = known.map(|t| t.kills).unwrap_or_default();
        for dead in std::iter::once(&token).chain(kills.iter()) {
            if let Some(t) = s.tokens.get_mut(dead) {
                t.revoked = true;
            }
        }
    }
    drop(s);
    let response = if !valid && b.invalid_token_answer == InvalidTokenAnswer::InvalidToken400 {
        json_response(
            400,
            json!({ "error": "invalid_token", "error_description": "Token expired or revoked" }),
        )
    } else {
        match p.dialect {
            Dialect::Moov => empty(204),
            Dialect::Onelogin => onelogin_status(200, "success", "Success"),
            Dialect::Rfc7009 | Dialect::Stitch | Dialect::Auth0 => empty(200),
        }
    };
    (response, Some(token), None)
}

fn throttled(retry_after: u64) -> Response {
    let mut response = json_response(429, json!({ "error": "rate_limited" }));
    if let Ok(value) = retry_after.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The providers `offboard simulate` and `offboard demo` serve when given no file: those of
/// `config/simulate.toml`, one of each dialect with realistic limits and a few faults.
/// Stitch's limit (10/s) sits below the demo worker's rate, so the demo shows 429s and the
/// pause they cause.
pub fn demo_providers() -> Vec<SimProvider> {
    providers_from_toml(include_str!("../config/simulate.toml")).expect("the shipped config/simulate.toml parses")
}

/// One `[providers.NAME]` table of a simulator file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SimEntry {
    dialect: Dialect,
    client_id: Option<String>,
    /// Auth0 only: a public client, which sends no secret.
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
    /// `ok200` (RFC 7009) or `invalid_token400` (Google style).
    #[serde(default)]
    invalid_token: InvalidTokenSetting,
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
            invalid_token_answer: match e.invalid_token {
                InvalidTokenSetting::Ok200 => InvalidTokenAnswer::Ok200,
                InvalidTokenSetting::InvalidToken400 => InvalidTokenAnswer::InvalidToken400,
            },
            ..Behaviour::default()
        };
        out.push(p);
    }
    Ok(out)
}

/// Config TOML for offboard that points at `sim`'s providers, with secrets read from
/// `SIM_<NAME>_SECRET` variables; returns the text and those variables. `per_provider` is
/// added to every provider's table (`rate`, `burst`, `timeout`).
pub fn offboard_config_for(sim: &Simulator, per_provider: &str) -> (String, Vec<(String, String)>) {
    let state = sim.state.lock().expect("sim lock");
    let mut text = String::new();
    let mut env = Vec::new();
    let mut names: Vec<&String> = state.providers.keys().collect();
    names.sort();
    for name in names {
        let p = &state.providers[name];
        text.push_str(&format!(
            "[providers.{name}]\ndialect = \"{}\"\nurl = \"{}\"\nclient_id = \"{}\"\n{per_provider}",
            p.dialect,
            p.url(sim.addr),
            p.client_id
        ));
        if matches!(p.dialect, Dialect::Rfc7009 | Dialect::Moov) && p.auth == ClientAuth::ClientSecretPost {
            text.push_str("auth = \"client_secret_post\"\n");
        }
        if let Some(secret) = &p.client_secret {
            let var = format!("SIM_{}_SECRET", name.to_uppercase().replace('-', "_"));
            text.push_str(&format!("client_secret_env = \"{var}\"\n"));
            env.push((var, secret.clone()));
        }
        text.push('\n');
    }
    (text, env)
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

    #[test]
    fn faults_are_drawn_with_their_fractions() {
        let always = Behaviour {
            reset_fraction: 1.0,
            ..Behaviour::default()
        };
        assert_eq!(always.roll(), Some(Fault::Reset));
        assert_eq!(Behaviour::default().roll(), None);
        let half = Behaviour {
            fail_fraction: 0.5,
            ..Behaviour::default()
        };
        let hits = (0..10_000).filter(|_| half.roll().is_some()).count();
        assert!((4_500..5_500).contains(&hits), "{hits}");
    }
}
