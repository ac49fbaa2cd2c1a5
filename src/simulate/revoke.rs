//! One call to a simulated provider, in the order a real provider would meet trouble: the
//! route, latency, throttling and rate limits, an outage, an injected fault, and only then
//! the endpoint's checks and, for a revocation, the token's fate (for a probe, what is known
//! of it; for a token endpoint, a fresh access token or `invalid_grant`). Kept apart from `checks` and `answers` so that order, and the rules that a fault
//! never revokes a token and a liar never kills one, read in one place for every provider.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::time::Instant;

use super::answers::{already_invalid, no_route, reject, revoked, throttled, unsupported};
use super::checks::{Request, check_request};
use super::echo::echo_response;
use super::probe::{self, Known};
use super::shape::{Endpoint, reach, refuses};
use super::state::SimState;
use super::token;
use super::wants::wants_of;
use super::wire::{json_response, request_id, with_header};
use super::{Behaviour, CallRecord, Fault, SimProvider};
use crate::provider::dialect::Dialect;
use crate::token::Fingerprint;

/// How long a simulated timeout keeps the request unanswered.
const HANG: Duration = Duration::from_secs(3600);

/// What one call came to, for the log.
struct Outcome {
    response: Response,
    token: Option<String>,
    fault: Option<Fault>,
    /// The endpoint reached; a call that reached none is logged as a revocation.
    endpoint: Endpoint,
}

impl Outcome {
    fn bare(response: Response) -> Outcome {
        Outcome {
            response,
            token: None,
            fault: None,
            endpoint: Endpoint::Revoke,
        }
    }

    fn at(endpoint: Endpoint, response: Response) -> Outcome {
        Outcome {
            endpoint,
            ..Outcome::bare(response)
        }
    }
}

pub(super) async fn provider_handler(
    State(state): State<Arc<Mutex<SimState>>>,
    Path((name, _)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let Some(provider) = state.lock().expect("sim lock").providers.get(&name).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !provider.behaviour.latency.is_zero() {
        tokio::time::sleep(provider.behaviour.latency).await;
    }
    // The path as sent, so that an escaped `/` in a token in the path stays in its segment.
    let path = uri.path().strip_prefix(&format!("/{name}")).unwrap_or_default();
    let request = Request {
        headers: &headers,
        bytes: &bytes,
        query: uri.query(),
        path_token: None,
    };
    let mut outcome = answer(&state, &provider, &method, path, request);
    let stamp = match provider.dialect {
        Dialect::Moov => Some("x-request-id"),
        Dialect::Intuit => Some("intuit_tid"),
        _ => None,
    };
    if let Some(name) = stamp {
        outcome.response = with_header(outcome.response, name, &request_id());
    }
    state.lock().expect("sim lock").calls.push(CallRecord {
        provider: name,
        at: Instant::now(),
        status: outcome.response.status().as_u16(),
        fault: outcome.fault,
        token: outcome.token.as_deref().map(Fingerprint::of),
        endpoint: outcome.endpoint,
    });
    if outcome.fault == Some(Fault::Timeout) {
        tokio::time::sleep(HANG).await;
    }
    outcome.response
}

fn answer(
    state: &Arc<Mutex<SimState>>,
    p: &SimProvider,
    method: &Method,
    path: &str,
    mut request: Request<'_>,
) -> Outcome {
    let (endpoint, path_token) = match p.route(method, path) {
        Ok(found) => found,
        Err(why) => return Outcome::bare(no_route(p.dialect, why)),
    };
    request.path_token = path_token;
    let b = &p.behaviour;
    let now = Instant::now();
    {
        let mut s = state.lock().expect("sim lock");
        if b.throttle_for.is_some_and(|d| now < s.started + d) {
            return Outcome::at(endpoint, throttled(p.dialect, b.retry_after));
        }
        if let Some(limit) = b.limit_per_sec {
            let window = s.window.entry(p.name.clone()).or_insert((now, 0));
            if now.duration_since(window.0) >= Duration::from_secs(1) {
                *window = (now, 0);
            }
            if window.1 >= limit {
                return Outcome::at(endpoint, throttled(p.dialect, 1));
            }
            window.1 += 1;
        }
    }
    if let Some(status) = b.always_status {
        return Outcome::at(endpoint, json_response(status, json!({ "error": "simulated outage" })));
    }
    let wants = wants_of(p.dialect, endpoint);
    if let Some(fault) = b.roll() {
        let token = check_request(p, wants, &request).ok();
        let response = if fault == Fault::Echo {
            let n = {
                let mut s = state.lock().expect("sim lock");
                let count = s.echoes.entry(p.name.clone()).or_default();
                *count += 1;
                *count - 1
            };
            echo_response(p, token.as_deref(), request.headers, request.bytes, n)
        } else {
            fault_response(p.dialect, fault)
        };
        return Outcome {
            response,
            token,
            fault: Some(fault),
            endpoint,
        };
    }
    let token = match (check_request(p, wants, &request), endpoint) {
        (Ok(token), _) => token,
        (Err(why), Endpoint::Revoke) => return Outcome::bare(reject(p.dialect, why)),
        (Err(why), Endpoint::Probe(probe)) => return Outcome::at(endpoint, probe::refuse(p, probe, why)),
        (Err(why), Endpoint::Token) => return Outcome::at(endpoint, token::refuse(why)),
    };
    if endpoint == Endpoint::Token
        && let Some(refused) = token::wrong_grant(&request)
    {
        return Outcome::at(endpoint, refused);
    }
    let mut s = state.lock().expect("sim lock");
    // A token the provider issued, of a type this endpoint knows.
    let known = s
        .tokens
        .get(&token)
        .filter(|t| t.provider == p.name)
        .filter(|t| wants.token.only().is_none_or(|only| only == t.token_type))
        .cloned();
    let response = match endpoint {
        Endpoint::Probe(probe) => {
            let known = match &known {
                Some(t) if t.revoked => Known::Dead,
                Some(t) => Known::Live(t.token_type),
                None => Known::Unknown,
            };
            drop(s);
            probe::answer(p, probe, known)
        }
        Endpoint::Token => {
            let live = known.as_ref().is_some_and(|t| !t.revoked);
            token::answer(&mut s, p, &token, live)
        }
        Endpoint::Revoke => {
            *s.accepted.entry(token.clone()).or_default() += 1;
            let valid = known.as_ref().is_some_and(|t| !t.revoked);
            match &known {
                Some(t) if refuses(p.dialect, t.token_type) => unsupported(p.dialect),
                // A liar says it revoked the token and leaves it alive.
                _ if valid && b.still_active_after_revoke => revoked(p.dialect),
                _ if valid => {
                    s.kill(&token, reach(p.dialect));
                    revoked(p.dialect)
                }
                _ => already_invalid(p.dialect, known.is_some(), b.invalid_token_answer),
            }
        }
    };
    Outcome {
        response,
        token: Some(token),
        fault: None,
        endpoint,
    }
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
