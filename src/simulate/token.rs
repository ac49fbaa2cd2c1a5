//! The token endpoint's refresh grant, which refresh-then-revoke stands on: Dropbox's `POST
//! /oauth2/token` (dropbox.com/developers/documentation/http/documentation#oauth2-token)
//! takes "POST parameters" `grant_type=refresh_token`, `refresh_token` and the app's key and
//! secret (as parameters or HTTP Basic; a PKCE app sends its key alone), and answers a live
//! refresh token with a fresh short-lived access token, `{"access_token", "token_type":
//! "bearer", "expires_in": 14400}`. The fresh token belongs to the refresh token's grant, so
//! revoking it kills the refresh token too. A refresh token revoked or never issued is
//! RFC 6749 §5.2's 400 `invalid_grant`.

use axum::response::Response;
use serde_json::json;

use super::SimProvider;
use super::checks::{Rejection, Request};
use super::state::SimState;
use super::wire::{Kind, content_kind, json_response, parse_body};
use crate::token::TokenType;

/// RFC 6749 §5.2's error body.
fn oauth(status: u16, error: &str, description: &str) -> Response {
    json_response(status, json!({ "error": error, "error_description": description }))
}

/// A refusal before the refresh token is looked at, RFC 6749 §5.2's words.
pub(super) fn refuse(why: Rejection) -> Response {
    match why {
        Rejection::BadCredentials | Rejection::MissingCredentials => {
            oauth(400, "invalid_client", "Invalid client_id or client_secret")
        }
        Rejection::MissingToken => oauth(400, "invalid_request", "No refresh_token"),
        Rejection::WrongContentType | Rejection::MissingHeader(_) => oauth(
            400,
            "invalid_request",
            "expected application/x-www-form-urlencoded POST parameters",
        ),
    }
}

/// A grant other than `refresh_token`, refused; `None` when the request asks for it.
pub(super) fn wrong_grant(request: &Request<'_>) -> Option<Response> {
    let kind = content_kind(request.headers);
    let grant = (kind == Kind::Form)
        .then(|| parse_body(kind, request.bytes))
        .flatten()
        .and_then(|body| body.get("grant_type").map(str::to_owned));
    match grant.as_deref() {
        Some("refresh_token") => None,
        Some(_) => Some(oauth(
            400,
            "unsupported_grant_type",
            "grant_type must be refresh_token here",
        )),
        None => Some(oauth(400, "invalid_request", "No grant_type")),
    }
}

/// The answer for `refresh`, a well-formed request's refresh token: a fresh access token of
/// its grant when it is live (`live`), `invalid_grant` otherwise.
pub(super) fn answer(state: &mut SimState, p: &SimProvider, refresh: &str, live: bool) -> Response {
    if !live {
        return oauth(400, "invalid_grant", "refresh token is invalid or revoked");
    }
    let fresh = state.issue(&p.name, TokenType::AccessToken, Some(refresh));
    json_response(
        200,
        json!({ "access_token": fresh, "token_type": "bearer", "expires_in": 14400 }),
    )
}
