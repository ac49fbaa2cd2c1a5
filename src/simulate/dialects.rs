//! What each dialect accepts and how it says so: content type, where the client credentials
//! and the token travel, and the exact bodies of its refusals, as the providers document them.
//! The decoding helpers live here because only these checks read a request.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::SimProvider;
use crate::provider::dialect::{ClientAuth, Dialect};

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

pub(super) fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

pub(super) fn empty(status: u16) -> Response {
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

pub(super) fn onelogin_status(code: u16, kind: &str, message: &str) -> Response {
    json_response(
        code,
        json!({ "status": { "error": code != 200, "code": code, "type": kind, "message": message } }),
    )
}

/// The answer a dialect gives to a request it rejects before looking at the token.
pub(super) enum Rejection {
    BadCredentials,
    MissingCredentials,
    WrongContentType,
    MissingToken,
}

pub(super) fn reject(dialect: Dialect, why: Rejection) -> Response {
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
        // Google answers a request it cannot read with RFC 6749's invalid_request.
        Dialect::Google => json_response(
            400,
            json!({ "error": "invalid_request", "error_description": "Bad Request" }),
        ),
        // Slack answers everything with HTTP 200, and says what went wrong in the body.
        Dialect::Slack => match why {
            MissingToken | MissingCredentials => json_response(200, json!({ "ok": false, "error": "not_authed" })),
            WrongContentType => json_response(200, json!({ "ok": false, "error": "invalid_form_data" })),
            BadCredentials => json_response(200, json!({ "ok": false, "error": "invalid_auth" })),
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
pub(super) fn check_request(p: &SimProvider, headers: &HeaderMap, bytes: &[u8]) -> Result<String, Rejection> {
    let kind = content_kind(headers);
    if p.dialect == Dialect::Slack {
        // The token comes as a Bearer token, or else as a `token` form field.
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let field = || parse_body(Kind::Form, bytes)?.get("token").map(str::to_owned);
        return bearer
            .or_else(field)
            .filter(|t| !t.is_empty())
            .ok_or(Rejection::MissingToken);
    }
    let allowed = match p.dialect {
        Dialect::Rfc7009 | Dialect::Stitch | Dialect::Google => kind == Kind::Form,
        Dialect::Slack => true,
        Dialect::Moov => kind != Kind::Other,
        Dialect::Onelogin | Dialect::Auth0 => kind == Kind::Json,
    };
    if !allowed {
        return Err(Rejection::WrongContentType);
    }
    let body = parse_body(kind, bytes).ok_or(Rejection::WrongContentType)?;
    let expected_secret = p.client_secret.as_deref();
    let creds: Option<(String, Option<String>)> = match p.dialect {
        // No client authentication: whoever holds the token may revoke it.
        Dialect::Google | Dialect::Slack => Some((p.client_id.clone(), expected_secret.map(str::to_owned))),
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
