//! How each simulated provider words its answers to a revocation: success, a token already
//! dead or unknown, a refused request, a refused token type, and a 429. Written from each
//! provider's documentation and PROVIDERS.md; where a provider documents no wording, the
//! answer is RFC 6749's (`{"error", "error_description"}`) in the provider's status, and the
//! comment says so.

use axum::response::Response;
use serde_json::{Value, json};

use super::InvalidTokenAnswer;
use super::checks::Rejection;
use super::shape::NoRoute;
use super::wire::{empty, json_response, request_id, text, with_header};
use crate::provider::dialect::Dialect;

fn oauth(status: u16, error: &str, description: &str) -> Response {
    json_response(status, json!({ "error": error, "error_description": description }))
}

pub(super) fn onelogin_status(code: u16, kind: &str, message: &str) -> Response {
    json_response(
        code,
        json!({ "status": { "error": code != 200, "code": code, "type": kind, "message": message } }),
    )
}

/// HubSpot's error body: `{message, correlationId, category}`.
fn hubspot(status: u16, category: &str, message: &str) -> Response {
    json_response(
        status,
        json!({ "status": "error", "message": message, "correlationId": request_id(), "category": category }),
    )
}

fn github(status: u16, message: &str) -> Response {
    json_response(
        status,
        json!({ "message": message, "documentation_url": "https://docs.github.com/rest/apps/oauth-applications", "status": status.to_string() }),
    )
}

fn notion(status: u16, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({ "object": "error", "status": status, "code": code, "message": message }),
    )
}

fn twitch(status: u16, message: &str) -> Response {
    json_response(status, json!({ "status": status, "message": message }))
}

/// A request refused before its token is looked at.
pub(super) fn reject(dialect: Dialect, why: Rejection) -> Response {
    use Rejection::*;
    let creds = matches!(why, BadCredentials | MissingCredentials);
    match dialect {
        Dialect::Onelogin => match why {
            WrongContentType | MissingHeader(_) => onelogin_status(
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
            WrongContentType | MissingHeader(_) => json_response(400, json!({ "error": "unsupported content type" })),
            MissingCredentials | BadCredentials => json_response(400, json!({ "error": "invalid client credentials" })),
        },
        Dialect::Auth0 => match why {
            MissingToken => oauth(400, "invalid_request", "Missing required parameter: token"),
            WrongContentType | MissingHeader(_) => oauth(400, "invalid_request", "Invalid content type"),
            MissingCredentials => oauth(400, "invalid_request", "Missing required parameter: client_id"),
            BadCredentials => oauth(401, "access_denied", "Unauthorized"),
        },
        // Google answers a request it cannot read with RFC 6749's invalid_request.
        Dialect::Google => oauth(400, "invalid_request", "Bad Request"),
        // Slack answers everything with HTTP 200, and says what went wrong in the body.
        Dialect::Slack => match why {
            MissingToken | MissingCredentials => json_response(200, json!({ "ok": false, "error": "not_authed" })),
            WrongContentType | MissingHeader(_) => json_response(200, json!({ "ok": false, "error": "invalid_form_data" })),
            BadCredentials => json_response(200, json!({ "ok": false, "error": "invalid_auth" })),
        },
        // Okta's wording for a client it cannot authenticate.
        Dialect::Okta if creds => oauth(
            401,
            "invalid_client",
            "Client authentication failed. Either the client or the client credentials are invalid.",
        ),
        // Keycloak: "Token not provided" (louketo-proxy issue 662, as the catalogue cites).
        Dialect::Keycloak if creds => oauth(401, "invalid_client", "Invalid client or Invalid client credentials"),
        Dialect::Keycloak if why == MissingToken => oauth(400, "invalid_request", "Token not provided"),
        // X, as its OAuth 2.0 clients report it.
        Dialect::X if creds => oauth(401, "unauthorized_client", "Missing valid authorization header"),
        Dialect::X if why == MissingToken => oauth(400, "invalid_request", "Missing required parameter [token]."),
        // Box's documented example error.
        Dialect::Box if creds => oauth(400, "invalid_client", "The client credentials are not valid"),
        Dialect::Linkedin if creds => oauth(401, "invalid_client", "Client authentication failed"),
        // Twitch: "404 Not Found if the client ID was not found", {"status", "message"}.
        Dialect::Twitch => match why {
            BadCredentials => twitch(404, "client does not exist"),
            MissingCredentials => twitch(400, "missing client id"),
            MissingToken => twitch(400, "missing oauth token"),
            WrongContentType | MissingHeader(_) => twitch(400, "invalid content type"),
        },
        // Zoom's error shape, {"reason", "error"}.
        Dialect::Zoom if creds => json_response(
            401,
            json!({ "reason": "Invalid client_id or client_secret", "error": "invalid_client" }),
        ),
        Dialect::Zoom => json_response(400, json!({ "reason": "Invalid request", "error": "invalid_request" })),
        Dialect::Notion => match why {
            MissingHeader(_) => notion(
                400,
                "missing_version",
                "Notion-Version header failed validation: Notion-Version header should be defined, instead was `undefined`.",
            ),
            MissingCredentials | BadCredentials => notion(401, "unauthorized", "API token is invalid."),
            MissingToken | WrongContentType => notion(
                400,
                "validation_error",
                "body failed validation: body.token should be defined, instead was `undefined`.",
            ),
        },
        // Dropbox answers a request it cannot read in plain text.
        Dialect::Dropbox => match why {
            WrongContentType => text(
                400,
                "Error in call to API function: Bad HTTP \"Content-Type\" header. Expecting one of \"application/json\", \
                 \"application/json; charset=utf-8\", \"text/plain; charset=dropbox-cors-hack\"."
                    .into(),
            ),
            _ => text(
                400,
                "Error in call to API function: Must provide HTTP header \"Authorization\" or URL parameter \
                 \"authorization\"."
                    .into(),
            ),
        },
        Dialect::Github => match why {
            MissingCredentials => github(401, "Requires authentication"),
            BadCredentials => github(401, "Bad credentials"),
            WrongContentType | MissingHeader(_) => github(400, "Problems parsing JSON"),
            MissingToken => github(422, "Invalid request.\n\n\"access_token\" wasn't supplied."),
        },
        Dialect::Hubspot if creds => hubspot(401, "INVALID_AUTHENTICATION", "Invalid client credentials"),
        Dialect::Hubspot => hubspot(400, "VALIDATION_ERROR", "Invalid input: token is required"),
        Dialect::HubspotLegacy => hubspot(404, "OBJECT_NOT_FOUND", "refresh token not found"),
        Dialect::Zendesk => json_response(401, json!({ "error": "Couldn't authenticate you" })),
        // Apple's ErrorResponse: {"error": "invalid_client" | "invalid_request" | …}.
        Dialect::Apple | Dialect::Xero if creds => json_response(400, json!({ "error": "invalid_client" })),
        Dialect::Apple | Dialect::Xero => json_response(400, json!({ "error": "invalid_request" })),
        Dialect::Intuit if creds => json_response(401, json!({ "error": "invalid_client" })),
        // The rest word their refusals as RFC 6749 §5.2 and RFC 7009 do.
        Dialect::Rfc7009
        | Dialect::Stitch
        | Dialect::Okta
        | Dialect::Keycloak
        | Dialect::X
        | Dialect::Salesforce
        | Dialect::Box
        | Dialect::Intuit
        | Dialect::Discord
        | Dialect::Linkedin => match why {
            MissingToken => oauth(400, "invalid_request", "missing token"),
            WrongContentType | MissingHeader(_) => {
                oauth(400, "invalid_request", "expected application/x-www-form-urlencoded")
            }
            MissingCredentials | BadCredentials => json_response(401, json!({ "error": "invalid_client" })),
        },
    }
}

/// The answer to a request that reached no endpoint.
pub(super) fn no_route(dialect: Dialect, why: NoRoute) -> Response {
    match (dialect, why) {
        (Dialect::Onelogin, _) => onelogin_status(404, "not found", "No Route Exists"),
        (_, NoRoute::NotFound) => empty(404),
        (_, NoRoute::WrongMethod) => empty(405),
    }
}

/// A live token, revoked now.
pub(super) fn revoked(dialect: Dialect) -> Response {
    match dialect {
        Dialect::Moov | Dialect::Github | Dialect::HubspotLegacy | Dialect::Zendesk => empty(204),
        Dialect::Onelogin => onelogin_status(200, "success", "Success"),
        Dialect::Slack => json_response(200, json!({ "ok": true, "revoked": true })),
        Dialect::X => json_response(200, json!({ "revoked": true })),
        Dialect::Zoom => json_response(200, json!({ "status": "success" })),
        Dialect::Notion => json_response(200, json!({ "request_id": request_id() })),
        // "No return value": JSON null.
        Dialect::Dropbox => json_response(200, Value::Null),
        Dialect::Rfc7009
        | Dialect::Stitch
        | Dialect::Auth0
        | Dialect::Google
        | Dialect::Okta
        | Dialect::Keycloak
        | Dialect::Salesforce
        | Dialect::Box
        | Dialect::Twitch
        | Dialect::Intuit
        | Dialect::Discord
        | Dialect::Linkedin
        | Dialect::Hubspot
        | Dialect::Xero
        | Dialect::Apple => empty(200),
    }
}

/// A token already revoked (`known`) or never issued. Providers that document an answer of
/// their own give it; the others answer as `setting` says (RFC 7009's 200, the default, or a
/// 400 `invalid_token`).
pub(super) fn already_invalid(dialect: Dialect, known: bool, setting: InvalidTokenAnswer) -> Response {
    match dialect {
        Dialect::Slack if known => json_response(200, json!({ "ok": false, "error": "token_revoked" })),
        Dialect::Slack => json_response(200, json!({ "ok": false, "error": "invalid_auth" })),
        Dialect::Google => oauth(400, "invalid_token", "Token expired or revoked"),
        // "400 … invalid_token: token was invalid".
        Dialect::Salesforce => oauth(400, "invalid_token", "invalid token"),
        // "400 Bad Request if the client ID is valid but the access token is not".
        Dialect::Twitch => twitch(400, "Invalid token"),
        // AuthError: 401 {"error_summary", "error": {".tag": "invalid_access_token"}}.
        Dialect::Dropbox => json_response(
            401,
            json!({ "error_summary": "invalid_access_token/...", "error": { ".tag": "invalid_access_token" } }),
        ),
        // PROVIDERS.md: "unknown token 404 ?"; GitHub documents 404 for "Check a token" of a
        // token it does not know.
        Dialect::Github => github(404, "Not Found"),
        // Not documented for the legacy DELETE (unverified): 404 with HubSpot's error body.
        Dialect::HubspotLegacy => hubspot(404, "OBJECT_NOT_FOUND", "refresh token not found"),
        Dialect::Zendesk => oauth(
            401,
            "invalid_token",
            "The access token provided is expired, revoked, malformed or invalid for other reasons.",
        ),
        // Apple answers 200 to anything well-formed, unknown tokens included (developer forums).
        Dialect::Apple => empty(200),
        _ if setting == InvalidTokenAnswer::InvalidToken400 => oauth(400, "invalid_token", "Token expired or revoked"),
        _ => revoked(dialect),
    }
}

/// A token type the endpoint does not revoke.
pub(super) fn unsupported(dialect: Dialect) -> Response {
    match dialect {
        Dialect::Auth0 => oauth(400, "unsupported_token_type", "only refresh tokens can be revoked"),
        _ => json_response(400, json!({ "error": "unsupported_token_type" })),
    }
}

/// Over the configured rate: 429 with `Retry-After`, and the provider's own body and
/// rate-limit headers where it documents them.
pub(super) fn throttled(dialect: Dialect, retry_after: u64) -> Response {
    let reset = (chrono::Utc::now().timestamp() + retry_after as i64).to_string();
    let response = match dialect {
        Dialect::Slack => json_response(429, json!({ "ok": false, "error": "ratelimited" })),
        Dialect::Discord => {
            let r = json_response(
                429,
                json!({ "message": "You are being rate limited.", "retry_after": retry_after as f64, "global": false }),
            );
            let r = with_header(r, "x-ratelimit-limit", "1");
            let r = with_header(r, "x-ratelimit-remaining", "0");
            with_header(r, "x-ratelimit-reset-after", &retry_after.to_string())
        }
        Dialect::Notion => notion(
            429,
            "rate_limited",
            "You have been rate limited. Please try again in a few minutes.",
        ),
        Dialect::Dropbox => json_response(
            429,
            json!({ "error_summary": "too_many_requests/...", "error": { "reason": { ".tag": "too_many_requests" }, "retry_after": retry_after } }),
        ),
        Dialect::Github => github(
            429,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        ),
        Dialect::Hubspot | Dialect::HubspotLegacy => {
            hubspot(429, "RATE_LIMITS", "You have reached your secondly limit.")
        }
        Dialect::Okta => {
            let r = json_response(
                429,
                json!({ "errorCode": "E0000047", "errorSummary": "API call exceeded rate limit due to too many requests.", "errorCauses": [] }),
            );
            let r = with_header(r, "x-rate-limit-limit", "1");
            let r = with_header(r, "x-rate-limit-remaining", "0");
            with_header(r, "x-rate-limit-reset", &reset)
        }
        Dialect::X => {
            let r = json_response(
                429,
                json!({ "title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429 }),
            );
            let r = with_header(r, "x-rate-limit-remaining", "0");
            with_header(r, "x-rate-limit-reset", &reset)
        }
        Dialect::Twitch => {
            let r = json_response(
                429,
                json!({ "error": "Too Many Requests", "status": 429, "message": "" }),
            );
            let r = with_header(r, "ratelimit-remaining", "0");
            with_header(r, "ratelimit-reset", &reset)
        }
        _ => json_response(429, json!({ "error": "rate_limited" })),
    };
    with_header(response, "retry-after", &retry_after.to_string())
}
