//! The probes: each provider's own way of asking whether a token still works, answered from
//! what the simulator knows of the token. A probe never changes a token; it is what
//! verification (`verify`) asks after a revocation, and what shows a provider that lies (a
//! `still_active_after_revoke` provider) still honouring a token it said it revoked.
//!
//! Live answers carry the fields a caller reads (client id, expiry, scopes), never the token
//! itself, though GitHub's real "Check a token" answer repeats it.

use axum::response::Response;
use serde_json::json;

use super::SimProvider;
use super::answers::{already_invalid, reject};
use super::checks::Rejection;
use super::shape::Probe;
use super::wire::json_response;
use crate::token::TokenType;

/// What the simulator knows of a probed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Known {
    Live(TokenType),
    /// Issued here, and revoked.
    Dead,
    /// Never issued here (or not of the type this endpoint knows).
    Unknown,
}

/// The probe's answer about a token.
pub(super) fn answer(p: &SimProvider, probe: Probe, known: Known) -> Response {
    let now = chrono::Utc::now().timestamp();
    let live = match known {
        Known::Live(token_type) => Some(token_type),
        Known::Dead | Known::Unknown => None,
    };
    match probe {
        // RFC 7662 §2.2: an inactive token is {"active": false} and nothing else.
        Probe::Introspect => match live {
            Some(token_type) => json_response(
                200,
                json!({
                    "active": true,
                    "client_id": p.client_id,
                    "token_type": if token_type == TokenType::AccessToken { "Bearer" } else { "refresh_token" },
                    "scope": "openid",
                    "sub": "sim-user",
                    "iat": now,
                    "exp": now + 3600,
                }),
            ),
            None => json_response(200, json!({ "active": false })),
        },
        // tokeninfo answers in strings, exp and expires_in included.
        Probe::GoogleTokeninfo => match live {
            Some(_) => json_response(
                200,
                json!({
                    "azp": p.client_id,
                    "aud": p.client_id,
                    "sub": "100000000000000000001",
                    "scope": "openid https://www.googleapis.com/auth/userinfo.email",
                    "exp": (now + 3599).to_string(),
                    "expires_in": "3599",
                    "access_type": "offline",
                }),
            ),
            None => json_response(
                400,
                json!({ "error": "invalid_token", "error_description": "Invalid Value" }),
            ),
        },
        Probe::SlackAuthTest => match known {
            Known::Live(_) => json_response(
                200,
                json!({
                    "ok": true,
                    "url": "https://offboard-sim.slack.com/",
                    "team": "Simulated Workspace",
                    "user": "sim-user",
                    "team_id": "T0000SIM",
                    "user_id": "U0000SIM",
                }),
            ),
            Known::Dead => json_response(200, json!({ "ok": false, "error": "token_revoked" })),
            Known::Unknown => json_response(200, json!({ "ok": false, "error": "invalid_auth" })),
        },
        Probe::GithubCheck => match live {
            Some(_) => json_response(
                200,
                json!({
                    "id": 1,
                    "app": { "client_id": p.client_id, "name": "offboard simulator", "url": "https://example.invalid/" },
                    "scopes": ["read:user"],
                    "user": { "login": "sim-user", "id": 1 },
                    "expires_at": null,
                }),
            ),
            None => already_invalid(p.dialect, known == Known::Dead, p.behaviour.invalid_token_answer),
        },
        Probe::TwitchValidate => match live {
            Some(_) => json_response(
                200,
                json!({ "client_id": p.client_id, "login": "sim_user", "scopes": [], "user_id": "141981764", "expires_in": 5_520_838 }),
            ),
            None => json_response(401, json!({ "status": 401, "message": "invalid access token" })),
        },
        Probe::ZendeskMe => match live {
            Some(_) => json_response(
                200,
                json!({ "user": { "id": 35436, "name": "Simulated User", "role": "end-user" } }),
            ),
            None => already_invalid(p.dialect, known == Known::Dead, p.behaviour.invalid_token_answer),
        },
        Probe::HubspotRefreshToken => match live {
            Some(_) => json_response(
                200,
                json!({ "client_id": p.client_id, "hub_id": 62515, "user": "sim-user@example.invalid", "scopes": ["oauth"], "token_type": "refresh" }),
            ),
            None => already_invalid(p.dialect, known == Known::Dead, p.behaviour.invalid_token_answer),
        },
        // LinkedIn's introspection answers with a status: active, revoked or expired.
        Probe::LinkedinIntrospect => match known {
            Known::Live(_) => json_response(
                200,
                json!({
                    "active": true,
                    "client_id": p.client_id,
                    "status": "active",
                    "scope": "r_liteprofile",
                    "auth_type": "3L",
                    "created_at": now - 60,
                    "expires_at": now + 5_184_000,
                }),
            ),
            Known::Dead => json_response(200, json!({ "active": false, "status": "revoked" })),
            Known::Unknown => json_response(200, json!({ "active": false })),
        },
        Probe::NotionIntrospect => match live {
            Some(_) => json_response(200, json!({ "active": true, "scope": "read_content", "iat": now })),
            None => json_response(200, json!({ "active": false })),
        },
        // check/user echoes its query back.
        Probe::DropboxCheckUser => match live {
            Some(_) => json_response(200, json!({ "result": "" })),
            None => already_invalid(p.dialect, known == Known::Dead, p.behaviour.invalid_token_answer),
        },
    }
}

/// A probe request refused before its token is looked at: the provider's refusal, in the
/// words of the probe where they differ from the revocation's.
pub(super) fn refuse(p: &SimProvider, probe: Probe, why: Rejection) -> Response {
    match probe {
        Probe::TwitchValidate => json_response(401, json!({ "status": 401, "message": "missing authorization token" })),
        Probe::GoogleTokeninfo => json_response(
            400,
            json!({ "error": "invalid_request", "error_description": "Either access_token, id_token, or token_handle required" }),
        ),
        Probe::Introspect
        | Probe::SlackAuthTest
        | Probe::GithubCheck
        | Probe::ZendeskMe
        | Probe::HubspotRefreshToken
        | Probe::LinkedinIntrospect
        | Probe::NotionIntrospect
        | Probe::DropboxCheckUser => reject(p.dialect, why),
    }
}
