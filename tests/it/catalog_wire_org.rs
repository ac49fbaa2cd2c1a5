//! The wire format of the GitHub, HubSpot (current and legacy) and Zendesk catalogue entries:
//! the request written by hand from each provider's documentation (cited above each test),
//! never read from the catalogue, and each documented answer classified. HubSpot's legacy
//! call puts the token in the URL's path: a token holding `/`, `?`, `#`, `%` or `..` stays one
//! segment of that path. The helpers are `catalog_wire`'s.

use std::path::Path;
use std::time::Duration;

use offboard::outcome::Outcome;
use offboard::token::{TokenType, TokenValue};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::catalog::{TOKEN, header, provider_at};
use crate::catalog_wire::{BASIC, TOKEN_FORM, body, classified, revoke, url_of};

/// Each value of `name` the request carried.
fn headers<'a>(request: &'a wiremock::Request, name: &str) -> Vec<&'a str> {
    request
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

const GITHUB: &str = "dialect = \"github\"\nurl = \"{server}/applications/{client_id}/token\"\n\
                      client_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"";

/// docs.github.com/rest/apps/oauth-applications#delete-an-app-token: `DELETE
/// /applications/{client_id}/token` at `https://api.github.com`, Basic authentication with
/// the app's client_id and client_secret as user name and password, `Accept:
/// application/vnd.github+json` recommended, `X-GitHub-Api-Version: 2022-11-28`, body
/// `application/json` `{"access_token": …}`.
#[tokio::test]
async fn github_gets_a_delete_with_the_access_token_in_json_and_basic_auth() {
    let (call, request) = revoke(GITHUB, TokenType::AccessToken, ResponseTemplate::new(204)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "DELETE");
    assert_eq!(request.url.path(), "/applications/acme-client/token");
    assert_eq!(request.url.query(), None);
    assert_eq!(headers(&request, "accept"), ["application/vnd.github+json"]);
    assert_eq!(header(&request, "x-github-api-version"), Some("2022-11-28"));
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(header(&request, "authorization"), Some(BASIC));
    assert_eq!(body(&request), r#"{"access_token":"ya29.a0Af_token/with+chars"}"#);
    assert_eq!(
        url_of("dialect = \"github\"\nclient_id = \"Iv1.8a61f9b3a7aba766\"\nclient_secret_env = \"CAT_SECRET\""),
        "https://api.github.com/applications/Iv1.8a61f9b3a7aba766/token"
    );
}

/// 204 No Content; 422 "Validation failed, or the endpoint has been spammed"; a token GitHub
/// does not know is 404 (documented for "Check a token" on the same path; see the entry's
/// unverified); any other success status is not GitHub's answer.
#[tokio::test]
async fn github_answers_are_classified() {
    classified(
        GITHUB,
        TokenType::AccessToken,
        &[
            (204, "", Outcome::Revoked),
            (
                404,
                r#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}"#,
                Outcome::AlreadyInvalid,
            ),
            (
                422,
                r#"{"message":"Validation Failed","documentation_url":"https://docs.github.com/rest"}"#,
                Outcome::Failed,
            ),
            (401, r#"{"message":"Bad credentials"}"#, Outcome::Failed),
            (200, "{}", Outcome::Transient),
            (429, "", Outcome::Transient),
            (502, "", Outcome::Transient),
        ],
    )
    .await;
}

/// A client id that could move the request is refused when the config is read, and a
/// GitHub provider needs one.
#[test]
fn github_refuses_a_client_id_that_cannot_go_in_the_url() {
    let parse = |keys: &str| {
        offboard::config::Config::from_toml(
            &format!("[providers.g]\ndialect = \"github\"\nclient_secret_env = \"S\"\n{keys}"),
            Path::new("test"),
            Vec::new(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let err = parse("client_id = \"evil.example/x?\"\n").unwrap_err();
    assert!(
        err.starts_with("providers.g.client_id: 'evil.example/x?' cannot go in the URL"),
        "{err}"
    );
    let err = parse("").unwrap_err();
    assert!(err.starts_with("providers.g.client_id: must be set"), "{err}");
    assert_eq!(parse("client_id = \"Ov23liAbC-_9\"\n"), Ok(()));
}

const HUBSPOT: &str = "dialect = \"hubspot\"\nurl = \"{server}/oauth/2026-03/token/revoke\"\n\
                       client_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"";

/// developers.hubspot.com/docs/api-reference/latest/authentication/oauth-tokens/revoke-token:
/// `POST https://api.hubapi.com/oauth/2026-03/token/revoke`, `Content-Type:
/// application/x-www-form-urlencoded`, `client_id`, `client_secret`, `token`,
/// `token_type_hint`, in that order; no Authorization header.
#[tokio::test]
async fn hubspot_gets_credentials_token_and_hint_in_a_form() {
    let (call, request) = revoke(HUBSPOT, TokenType::RefreshToken, ResponseTemplate::new(200)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/oauth/2026-03/token/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        body(&request),
        format!("client_id=acme-client&client_secret=s3cret&token={TOKEN_FORM}&token_type_hint=refresh_token")
    );
    assert_eq!(
        url_of("dialect = \"hubspot\"\nclient_id = \"c\"\nclient_secret_env = \"CAT_SECRET\""),
        "https://api.hubapi.com/oauth/2026-03/token/revoke"
    );
}

/// Success is an HTTP success; errors are `{"message", "correlationId", "category"}`: a
/// validation error fails, a rate limit and a server error are retried.
#[tokio::test]
async fn hubspot_answers_are_classified() {
    classified(
        HUBSPOT,
        TokenType::RefreshToken,
        &[
            (200, "", Outcome::Revoked),
            (204, "", Outcome::Revoked),
            (
                400,
                r#"{"message":"Invalid input (details will vary based on the error)","correlationId":"aeb5f871-7f07-4993-9211-075dc63e7cbf","category":"VALIDATION_ERROR"}"#,
                Outcome::Failed,
            ),
            (
                429,
                r#"{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT"}"#,
                Outcome::Transient,
            ),
            (502, "", Outcome::Transient),
        ],
    )
    .await;
}

const LEGACY: &str = "dialect = \"hubspot_legacy\"\nurl = \"{server}/oauth/v1/refresh-tokens/{token}\"";

/// developers.hubspot.com/docs/methods/oauth2/delete-refresh-token: `DELETE
/// /oauth/v1/refresh-tokens/:token`, the refresh token "used in the request URL", no other
/// parameter; nothing else is sent (no credentials, no body).
#[tokio::test]
async fn hubspot_legacy_gets_a_delete_with_the_refresh_token_in_the_path() {
    let (call, request) = revoke(LEGACY, TokenType::RefreshToken, ResponseTemplate::new(204)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "DELETE");
    // `/` and `+` percent-encoded by hand: "ya29.a0Af_token/with+chars".
    assert_eq!(
        request.url.path(),
        "/oauth/v1/refresh-tokens/ya29.a0Af_token%2Fwith%2Bchars"
    );
    assert_eq!(request.url.query(), None);
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(header(&request, "content-type"), None);
    assert!(request.body.is_empty());
    assert_eq!(
        url_of("dialect = \"hubspot_legacy\""),
        "https://api.hubapi.com/oauth/v1/refresh-tokens/{token}"
    );
    classified(
        LEGACY,
        TokenType::RefreshToken,
        &[
            (204, "", Outcome::Revoked),
            (
                400,
                r#"{"status":"BAD_REFRESH_TOKEN","message":"missing or unknown refresh token"}"#,
                Outcome::Failed,
            ),
            (429, "", Outcome::Transient),
        ],
    )
    .await;
}

/// Revokes `token` through `table` at a server answering 204; the request the server saw,
/// if any, and the verdict.
async fn revoke_value(table: &str, token: &str) -> (Outcome, Option<String>, Vec<wiremock::Request>) {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let providers = provider_at(&server, table);
    let call = providers
        .get("p")
        .unwrap()
        .revoke(&TokenValue::new(token.into()), TokenType::RefreshToken)
        .await;
    let seen = server.received_requests().await.unwrap();
    (call.verdict.outcome, call.verdict.error, seen)
}

/// A token that holds `/`, `?`, `#`, `%` or `..` reaches the same path, as one segment that
/// decodes to the token, with no query or fragment; a token the path cannot keep as one
/// segment (`.`, `..`, empty) is not sent at all, and the verdict does not quote it.
#[tokio::test]
async fn a_token_in_the_path_never_moves_the_request() {
    for token in [
        "../../admin",
        "a/b",
        "x?token=y",
        "x#frag",
        "100%25",
        "%2e%2e",
        "a/../../b",
        "…/é",
        "...",
    ] {
        let (outcome, _, seen) = revoke_value(LEGACY, token).await;
        assert_eq!(outcome, Outcome::Revoked, "{token}");
        assert_eq!(seen.len(), 1, "{token}");
        let url = &seen[0].url;
        assert_eq!(url.query(), None, "{token}");
        assert_eq!(url.fragment(), None, "{token}");
        let segments: Vec<&str> = url.path_segments().unwrap().collect();
        assert_eq!(segments.len(), 4, "{token}: {}", url.path());
        assert_eq!(&segments[..3], ["oauth", "v1", "refresh-tokens"], "{token}");
        // Encoded, the segment holds no '+', '=' or '&': form decoding is percent decoding.
        let (decoded, _) = url::form_urlencoded::parse(segments[3].as_bytes()).next().unwrap();
        assert_eq!(decoded, token, "{token}: {}", url.path());
    }
    for token in ["..", ".", ""] {
        let (outcome, error, seen) = revoke_value(LEGACY, token).await;
        assert_eq!(outcome, Outcome::Failed, "{token:?}");
        assert!(seen.is_empty(), "{token:?} was sent: {:?}", seen[0].url);
        let error = error.unwrap();
        assert!(error.starts_with("not sent:"), "{error}");
    }
}

/// `{token}` may go in the path only, and a URL override keeps that rule.
#[test]
fn the_token_may_go_in_the_path_only() {
    for url in [
        "https://auth.acme.example/revoke?token={token}",
        "https://{token}.acme.example/revoke",
    ] {
        let text = format!("[providers.p]\ndialect = \"hubspot_legacy\"\nurl = \"{url}\"\n");
        let err = offboard::config::Config::from_toml(&text, Path::new("test"), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("providers.p.url: "), "{url}: {err}");
    }
}

const ZENDESK: &str = "dialect = \"zendesk\"\nurl = \"{server}/api/v2/oauth/tokens/current.json\"";

/// developer.zendesk.com/documentation/api-basics/authentication/revoking-oauth-token,
/// "Revoking a known access token": `DELETE
/// https://{subdomain}.zendesk.com/api/v2/oauth/tokens/current.json` authenticated with the
/// token itself (`Authorization: Bearer`); no body.
#[tokio::test]
async fn zendesk_gets_a_delete_authenticated_by_the_token_itself() {
    let (call, request) = revoke(ZENDESK, TokenType::AccessToken, ResponseTemplate::new(204)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "DELETE");
    assert_eq!(request.url.path(), "/api/v2/oauth/tokens/current.json");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(header(&request, "content-type"), None);
    assert!(request.body.is_empty());
    assert_eq!(
        url_of("dialect = \"zendesk\"\nsubdomain = \"acme\""),
        "https://acme.zendesk.com/api/v2/oauth/tokens/current.json"
    );
}

/// "A successful response returns a 204 No Content status"; a token Zendesk no longer knows
/// is 401 with RFC 6749's `invalid_token`; a token without write scope is 403; rate limits
/// are 429 with Retry-After.
#[tokio::test]
async fn zendesk_answers_are_classified() {
    classified(
        ZENDESK,
        TokenType::AccessToken,
        &[
            (204, "", Outcome::Revoked),
            (200, "{}", Outcome::Transient),
            (
                401,
                r#"{"error":"invalid_token","error_description":"The access token provided is expired, revoked, malformed or invalid for other reasons."}"#,
                Outcome::AlreadyInvalid,
            ),
            (401, r#"{"error":"Couldn't authenticate you"}"#, Outcome::Failed),
            (
                403,
                r#"{"error":"Forbidden","description":"You do not have access to this page."}"#,
                Outcome::Failed,
            ),
            (429, "Rate limited", Outcome::Transient),
        ],
    )
    .await;
}

/// GitHub's and Zendesk's 429s carry Retry-After (seconds), which pauses the provider.
#[tokio::test]
async fn a_429_pauses_the_provider_for_its_retry_after() {
    for (table, ty) in [(GITHUB, TokenType::AccessToken), (ZENDESK, TokenType::AccessToken)] {
        let template = ResponseTemplate::new(429).insert_header("retry-after", "7");
        let (call, _) = revoke(table, ty, template).await;
        assert_eq!(call.verdict.outcome, Outcome::Transient, "{table}");
        assert_eq!(call.verdict.retry_after, Some(Duration::from_secs(7)), "{table}");
    }
}

/// What `offboard providers` says each entry revokes.
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
    for (name, revokes) in [
        ("github", "access_token (refresh_token: not revocable)  "),
        ("zendesk", "access_token (refresh_token: not revocable)  "),
        ("hubspot", "refresh_token (access_token: not revocable)  "),
        ("hubspot_legacy", "refresh_token (access_token: not revocable)  "),
    ] {
        let line = line(name);
        assert!(line.contains(revokes), "{line}");
    }
}
