//! One call to a provider's revocation endpoint, in the order a real provider would meet
//! trouble: latency, throttling and rate limits, an outage, an injected fault, and only then
//! the dialect's checks and the token's fate. Kept apart from `dialects` so that order, and
//! the rule that a fault never revokes a token, read in one place for every dialect.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::time::Instant;

use super::dialects::{check_request, empty, json_response, onelogin_status, reject};
use super::echo::echo_response;
use super::state::SimState;
use super::{Behaviour, CallRecord, Fault, InvalidTokenAnswer, SimProvider};
use crate::provider::dialect::Dialect;
use crate::token::{Fingerprint, TokenType};

/// How long a simulated timeout keeps the request unanswered.
const HANG: Duration = Duration::from_secs(3600);

pub(super) async fn revoke_handler(
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
        let response = if fault == Fault::Echo {
            let n = {
                let mut s = state.lock().expect("sim lock");
                let count = s.echoes.entry(p.name.clone()).or_default();
                *count += 1;
                *count - 1
            };
            echo_response(p, token.as_deref(), headers, bytes, n)
        } else {
            fault_response(p.dialect, fault)
        };
        return (response, token, Some(fault));
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
        let kills = known.as_ref().map(|t| t.kills.clone()).unwrap_or_default();
        for dead in std::iter::once(&token).chain(kills.iter()) {
            if let Some(t) = s.tokens.get_mut(dead) {
                t.revoked = true;
            }
        }
    }
    drop(s);
    let response = if p.dialect == Dialect::Slack {
        match (valid, known.is_some()) {
            (true, _) => json_response(200, json!({ "ok": true, "revoked": true })),
            (false, true) => json_response(200, json!({ "ok": false, "error": "token_revoked" })),
            (false, false) => json_response(200, json!({ "ok": false, "error": "invalid_auth" })),
        }
    } else if !valid && (p.dialect == Dialect::Google || b.invalid_token_answer == InvalidTokenAnswer::InvalidToken400)
    {
        json_response(
            400,
            json!({ "error": "invalid_token", "error_description": "Token expired or revoked" }),
        )
    } else {
        match p.dialect {
            Dialect::Moov => empty(204),
            Dialect::Onelogin => onelogin_status(200, "success", "Success"),
            Dialect::Rfc7009 | Dialect::Stitch | Dialect::Auth0 | Dialect::Google | Dialect::Slack => empty(200),
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

/// The answer standing in for a fault.
fn fault_response(dialect: Dialect, fault: Fault) -> Response {
    match fault {
        Fault::Unavailable | Fault::Timeout | Fault::Echo => {
            json_response(503, json!({ "error": "temporarily_unavailable" }))
        }
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
            (self.echo_fraction, Fault::Echo),
        ] {
            if draw < fraction {
                return Some(fault);
            }
            draw -= fraction;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
