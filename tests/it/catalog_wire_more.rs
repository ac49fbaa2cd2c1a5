//! The wire format of the Discord, Dropbox, LinkedIn and Notion catalogue entries: the
//! request written by hand from each provider's documentation (cited above each test), never
//! read from the catalogue, and each documented answer classified. The helpers are
//! `catalog_wire`'s.

use offboard::outcome::Outcome;
use offboard::token::TokenType;
use wiremock::ResponseTemplate;

use crate::catalog::{TOKEN, header, json};
use crate::catalog_wire::{BASIC, TOKEN_FORM, body, classified, revoke, url_of};

const DROPBOX: &str = "dialect = \"dropbox\"\nurl = \"{server}/2/auth/token/revoke\"\nclient_id = \"acme-client\"";

/// dropbox.com/developers/documentation/http/documentation#auth-token-revoke: `POST
/// https://api.dropboxapi.com/2/auth/token/revoke`, User authentication (`Authorization:
/// Bearer <access token>`, dropbox.com/developers/reference/auth-types), no parameters, so
/// no body; "Disables the access token used to authenticate the call".
#[tokio::test]
async fn dropbox_gets_the_access_token_as_a_bearer_token_and_no_body() {
    let (call, request) = revoke(DROPBOX, TokenType::AccessToken, json(200, "null")).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/2/auth/token/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(header(&request, "content-type"), None);
    assert!(request.body.is_empty());
    assert_eq!(
        url_of("dialect = \"dropbox\"\nclient_id = \"c\""),
        "https://api.dropboxapi.com/2/auth/token/revoke"
    );
}

/// No return value on success; a token revoked (the app unlinked) or expired is 401 with
/// `{"error": {".tag": "invalid_access_token" | "expired_access_token"}}`; 429 is a rate
/// limit.
#[tokio::test]
async fn dropbox_answers_are_classified() {
    classified(
        DROPBOX,
        TokenType::AccessToken,
        &[
            (200, "null", Outcome::Revoked),
            (200, "", Outcome::Revoked),
            (
                401,
                r#"{"error_summary":"invalid_access_token/..","error":{".tag":"invalid_access_token"}}"#,
                Outcome::AlreadyInvalid,
            ),
            (
                401,
                r#"{"error_summary":"expired_access_token/.","error":{".tag":"expired_access_token"}}"#,
                Outcome::AlreadyInvalid,
            ),
            (
                401,
                r#"{"error_summary":"user_suspended/.","error":{".tag":"user_suspended"}}"#,
                Outcome::Failed,
            ),
            (429, "", Outcome::Transient),
            (500, "", Outcome::Transient),
        ],
    )
    .await;
}

const DISCORD: &str = "dialect = \"discord\"\nurl = \"{server}/api/oauth2/token/revoke\"\n\
                       client_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"";

/// discord.com/developers/docs/topics/oauth2, "Token Revocation Example": `POST` to
/// `https://discord.com/api/oauth2/token/revoke`, `Content-Type:
/// application/x-www-form-urlencoded` (JSON refused), `token` and `token_type_hint`, HTTP
/// Basic `(CLIENT_ID, CLIENT_SECRET)`.
#[tokio::test]
async fn discord_gets_token_and_hint_in_a_form_with_basic_client_authentication() {
    let (call, request) = revoke(DISCORD, TokenType::RefreshToken, ResponseTemplate::new(200)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/api/oauth2/token/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "authorization"), Some(BASIC));
    assert_eq!(
        body(&request),
        format!("token={TOKEN_FORM}&token_type_hint=refresh_token")
    );
    assert_eq!(
        url_of("dialect = \"discord\"\nclient_id = \"c\"\nclient_secret_env = \"CAT_SECRET\""),
        "https://discord.com/api/oauth2/token/revoke"
    );
}

/// The answer is not documented beyond RFC 7009's 200; a 429 carries Retry-After, and
/// errors are RFC 6749 JSON.
#[tokio::test]
async fn discord_answers_are_classified() {
    classified(
        DISCORD,
        TokenType::AccessToken,
        &[
            (200, "", Outcome::Revoked),
            (200, "{}", Outcome::Revoked),
            (401, r#"{"error":"invalid_client"}"#, Outcome::Failed),
            (400, r#"{"error":"unsupported_grant_type"}"#, Outcome::Failed),
            (
                429,
                r#"{"message":"You are being rate limited.","retry_after":64.57,"global":false}"#,
                Outcome::Transient,
            ),
        ],
    )
    .await;
}

const LINKEDIN: &str = "dialect = \"linkedin\"\nurl = \"{server}/oauth/v2/revoke\"\n\
                        client_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"";

/// `POST https://www.linkedin.com/oauth/v2/revoke`, `application/x-www-form-urlencoded`,
/// `client_id`, `client_secret`, `token`: the shape of LinkedIn's documented
/// `/oauth/v2/introspectToken` (learn.microsoft.com/linkedin, Token Introspection); the revoke
/// call itself as third-party guides send it (see the entry's `unverified`).
#[tokio::test]
async fn linkedin_gets_client_credentials_and_the_token_in_a_form() {
    let (call, request) = revoke(LINKEDIN, TokenType::AccessToken, ResponseTemplate::new(200)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/oauth/v2/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        body(&request),
        format!("client_id=acme-client&client_secret=s3cret&token={TOKEN_FORM}")
    );
    assert_eq!(
        url_of("dialect = \"linkedin\"\nclient_id = \"c\"\nclient_secret_env = \"CAT_SECRET\""),
        "https://www.linkedin.com/oauth/v2/revoke"
    );
}

/// Nothing is documented beyond a 200: errors are classified by status and RFC 6749 error
/// code by the shared classifier.
#[tokio::test]
async fn linkedin_answers_are_classified() {
    classified(
        LINKEDIN,
        TokenType::AccessToken,
        &[
            (200, "", Outcome::Revoked),
            (
                401,
                r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
                Outcome::Failed,
            ),
            (400, r#"{"error":"invalid_request"}"#, Outcome::Failed),
            (429, "", Outcome::Transient),
        ],
    )
    .await;
}

const NOTION: &str = "dialect = \"notion\"\nurl = \"{server}/v1/oauth/revoke\"\n\
                      client_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"";

/// developers.notion.com/reference/revoke-token: `POST /v1/oauth/revoke` at
/// `https://api.notion.com`, `Authorization: Basic <base64 client_id:client_secret>`,
/// `Notion-Version` required (2025-09-03 is the one listed), body `application/json` with
/// `token`.
#[tokio::test]
async fn notion_gets_the_token_in_json_with_basic_auth_and_its_version_header() {
    let ok = json(200, r#"{"request_id":"3c90c3cc-0d44-4b50-8888-8dd25736052a"}"#);
    let (call, request) = revoke(NOTION, TokenType::AccessToken, ok).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/v1/oauth/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(header(&request, "authorization"), Some(BASIC));
    assert_eq!(header(&request, "notion-version"), Some("2025-09-03"));
    assert_eq!(body(&request), r#"{"token":"ya29.a0Af_token/with+chars"}"#);
    assert_eq!(
        url_of("dialect = \"notion\"\nclient_id = \"c\"\nclient_secret_env = \"CAT_SECRET\""),
        "https://api.notion.com/v1/oauth/revoke"
    );
}

/// 200 `{"request_id"}`; errors are `{"object": "error", "status", "code", "message"}`:
/// 400 and 401 fail, 429 `rate_limited` and 5xx are transient.
#[tokio::test]
async fn notion_answers_are_classified() {
    classified(
        NOTION,
        TokenType::AccessToken,
        &[
            (
                200,
                r#"{"request_id":"3c90c3cc-0d44-4b50-8888-8dd25736052a"}"#,
                Outcome::Revoked,
            ),
            (
                400,
                r#"{"object":"error","status":400,"code":"invalid_request","message":"body failed validation"}"#,
                Outcome::Failed,
            ),
            (
                401,
                r#"{"object":"error","status":401,"code":"unauthorized","message":"API token is invalid."}"#,
                Outcome::Failed,
            ),
            (
                429,
                r#"{"object":"error","status":429,"code":"rate_limited","message":"Rate limited"}"#,
                Outcome::Transient,
            ),
            (503, "", Outcome::Transient),
        ],
    )
    .await;
}

/// What `offboard providers` says each entry revokes: Dropbox revokes only through an access
/// token (refresh-then-revoke is not supported yet), LinkedIn and Notion are known to revoke
/// access tokens only, so their refresh tokens are not revocable and the worker sends none;
/// Discord revokes both.
#[test]
fn what_each_entry_revokes_is_listed() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["--config", "/nonexistent/offboard.toml", "providers"])
        .env_remove("OFFBOARD_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} is not listed"))
            .to_owned()
    };
    let dropbox = line("dropbox");
    assert!(
        dropbox.contains("access_token (refresh_token: through a fresh access token)"),
        "{dropbox}"
    );
    for name in ["linkedin", "notion"] {
        let line = line(name);
        assert!(line.contains("access_token (refresh_token: not revocable)"), "{line}");
    }
    let discord = line("discord");
    assert!(discord.contains("access_token, refresh_token"), "{discord}");
    assert!(!discord.contains("not revocable"), "{discord}");
}
