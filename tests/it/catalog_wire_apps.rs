//! The wire format of the Twitch, Zoom, Intuit and X catalogue entries: the request written
//! by hand from each provider's documentation (or, where the entry says so, its official
//! client), never read from the catalogue, and each documented answer classified. The
//! helpers are `catalog_wire`'s.

use offboard::outcome::Outcome;
use offboard::token::TokenType;
use wiremock::ResponseTemplate;

use crate::catalog::{header, json};
use crate::catalog_wire::{BASIC, TOKEN_FORM, body, classified, revoke, url_of};

const TWITCH: &str = "dialect = \"twitch\"\nurl = \"{server}/oauth2/revoke\"\nclient_id = \"acme-client\"";

/// dev.twitch.tv/docs/authentication/revoke-tokens: `curl -X POST
/// 'https://id.twitch.tv/oauth2/revoke' -H 'Content-Type: application/x-www-form-urlencoded'
/// -d 'client_id=<client id goes here>&token=<access token goes here>'`; no client secret.
#[tokio::test]
async fn twitch_gets_the_client_id_and_the_token_in_a_form() {
    let (call, request) = revoke(TWITCH, TokenType::AccessToken, ResponseTemplate::new(200)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/oauth2/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(body(&request), format!("client_id=acme-client&token={TOKEN_FORM}"));
    assert_eq!(
        url_of("dialect = \"twitch\"\nclient_id = \"c\""),
        "https://id.twitch.tv/oauth2/revoke"
    );
}

/// "200 OK (with no body)"; "400 Bad Request if the client ID is valid but the access token
/// is not" (`{"status": 400, "message": "Invalid token"}`); "404 Not Found if the client ID
/// is not valid" (`{"status": 404, "message": "client does not exist"}`).
#[tokio::test]
async fn twitch_answers_are_classified() {
    classified(
        TWITCH,
        TokenType::AccessToken,
        &[
            (200, "", Outcome::Revoked),
            (
                400,
                r#"{"status":400,"message":"Invalid token"}"#,
                Outcome::AlreadyInvalid,
            ),
            (400, r#"{"status":400,"message":"missing client id"}"#, Outcome::Failed),
            (
                404,
                r#"{"status":404,"message":"client does not exist"}"#,
                Outcome::Failed,
            ),
            (429, "", Outcome::Transient),
        ],
    )
    .await;
}

const ZOOM: &str = "dialect = \"zoom\"\nurl = \"{server}/oauth/revoke\"\n\
                    client_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"";

/// Zoom's "Revoking an Access Token": `POST /oauth/revoke HTTP/1.1`, `Host: zoom.us`,
/// `Authorization: Basic base64Encode(client_id:client_secret)`, `Content-Type:
/// application/x-www-form-urlencoded`, `token=[ACCESS TOKEN]`.
#[tokio::test]
async fn zoom_gets_the_token_in_a_form_with_basic_client_authentication() {
    let ok = json(200, r#"{"status":"success"}"#);
    let (call, request) = revoke(ZOOM, TokenType::AccessToken, ok).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/oauth/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "authorization"), Some(BASIC));
    assert_eq!(body(&request), format!("token={TOKEN_FORM}"));
    assert_eq!(
        url_of("dialect = \"zoom\"\nclient_id = \"c\"\nclient_secret_env = \"CAT_SECRET\""),
        "https://zoom.us/oauth/revoke"
    );
}

/// Success is `{"status": "success"}`: a 200 without it is not taken for a revocation.
#[tokio::test]
async fn zoom_answers_are_classified_by_their_body() {
    classified(
        ZOOM,
        TokenType::AccessToken,
        &[
            (200, r#"{"status":"success"}"#, Outcome::Revoked),
            (200, "", Outcome::Transient),
            (200, r#"{"status":"error"}"#, Outcome::Failed),
            (
                401,
                r#"{"reason":"Invalid client_id or client_secret","error":"invalid_client"}"#,
                Outcome::Failed,
            ),
            (400, r#"{"error":"invalid_token"}"#, Outcome::AlreadyInvalid),
            (429, "", Outcome::Transient),
        ],
    )
    .await;
}

const INTUIT: &str = "dialect = \"intuit\"\nurl = \"{server}/v2/oauth2/tokens/revoke\"\n\
                      client_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"";

/// Intuit's official OAuth client (intuit/oauth-jsclient, `OAuthClient.prototype.revoke`):
/// `POST https://developer.api.intuit.com/v2/oauth2/tokens/revoke`, `Authorization: Basic
/// …`, `Accept: application/json`, `Content-Type: application/json`, body `{"token": …}`.
#[tokio::test]
async fn intuit_gets_the_token_in_json_with_basic_client_authentication() {
    let answer = ResponseTemplate::new(200).insert_header("intuit_tid", "1-abc-2");
    let (call, request) = revoke(INTUIT, TokenType::RefreshToken, answer).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/v2/oauth2/tokens/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(header(&request, "accept"), Some("application/json"));
    assert_eq!(header(&request, "authorization"), Some(BASIC));
    assert_eq!(body(&request), r#"{"token":"ya29.a0Af_token/with+chars"}"#);
    assert_eq!(call.verdict.provider_request_id.as_deref(), Some("1-abc-2"));
    assert_eq!(
        url_of("dialect = \"intuit\"\nclient_id = \"c\"\nclient_secret_env = \"CAT_SECRET\""),
        "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
    );
}

/// Errors come as `{error, error_description}`; 429 is a rate limit.
#[tokio::test]
async fn intuit_answers_are_classified() {
    classified(
        INTUIT,
        TokenType::AccessToken,
        &[
            (200, "", Outcome::Revoked),
            (401, r#"{"error":"invalid_client"}"#, Outcome::Failed),
            (400, r#"{"error":"invalid_request"}"#, Outcome::Failed),
            (429, r#"{"error":"Rate limit exceeded"}"#, Outcome::Transient),
            (500, "", Outcome::Transient),
        ],
    )
    .await;
}

const X: &str = "dialect = \"x\"\nurl = \"{server}/2/oauth2/revoke\"\n\
                 client_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"";

/// `POST https://api.x.com/2/oauth2/revoke`, form `token` and `token_type_hint`, HTTP Basic
/// for a confidential client (docs.x.com, OAuth 2.0 Authorization Code Flow with PKCE; the
/// revoke request itself as X's client libraries send it, see the entry's `unverified`).
#[tokio::test]
async fn x_gets_token_and_hint_with_basic_client_authentication() {
    let ok = json(200, r#"{"revoked":true}"#);
    let (call, request) = revoke(X, TokenType::AccessToken, ok).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/2/oauth2/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "authorization"), Some(BASIC));
    assert_eq!(
        body(&request),
        format!("token={TOKEN_FORM}&token_type_hint=access_token")
    );
    assert_eq!(
        url_of("dialect = \"x\"\nclient_id = \"c\"\nclient_secret_env = \"CAT_SECRET\""),
        "https://api.x.com/2/oauth2/revoke"
    );
}

#[tokio::test]
async fn x_answers_are_classified() {
    classified(
        X,
        TokenType::RefreshToken,
        &[
            (200, r#"{"revoked":true}"#, Outcome::Revoked),
            (
                401,
                r#"{"error":"unauthorized_client","error_description":"Missing valid authorization header"}"#,
                Outcome::Failed,
            ),
            (400, r#"{"error":"invalid_request"}"#, Outcome::Failed),
            (429, "", Outcome::Transient),
        ],
    )
    .await;
}

/// Twitch and Zoom document the revocation of access tokens only: `offboard providers`
/// says their refresh tokens are not revocable (and so the worker sends none).
#[test]
fn twitch_and_zoom_refresh_tokens_are_not_revocable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["--config", "/nonexistent/offboard.toml", "providers"])
        .env_remove("OFFBOARD_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ["twitch", "zoom"] {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap();
        assert!(line.contains("access_token (refresh_token: not revocable)"), "{line}");
    }
    for name in ["salesforce", "okta", "keycloak", "box", "intuit", "x"] {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap();
        assert!(line.contains("access_token, refresh_token"), "{line}");
        assert!(!line.contains("not revocable"), "{line}");
    }
}
