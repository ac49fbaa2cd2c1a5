//! The wire format of the GitHub, HubSpot (current and legacy), Zendesk and Xero catalogue
//! entries: the request written by hand from each provider's documentation (cited above each
//! test), never read from the catalogue, and each documented answer classified. HubSpot's
//! legacy call puts the token in the URL's path: a token holding `/`, `?`, `#`, `%` or `..`
//! stays one segment of that path. Xero's revocation acts on whole organisations: without
//! `allow_org_wide = true` nothing is sent, and each token's audit row says why. The helpers
//! are `catalog_wire`'s.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use offboard::outcome::{Outcome, RequestState};
use offboard::storage::seed::{NewToken, insert_tokens};
use offboard::token::{TokenType, TokenValue};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::catalog::{TOKEN, header, provider_at};
use crate::catalog_wire::{BASIC, TOKEN_FORM, body, classified, revoke, url_of};
use crate::helpers::{TestDb, app_for, on_both_backends};

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

const XERO: &str = "dialect = \"xero\"\nurl = \"{server}/connect/revocation\"\nclient_id = \"acme-client\"\n\
                    client_secret_env = \"CAT_SECRET\"\nallow_org_wide = true";

/// developer.xero.com/documentation/guides/oauth2/auth-flow (as Xero's official SDKs send
/// it): `POST https://identity.xero.com/connect/revocation`, `Authorization: Basic
/// base64(client_id:client_secret)`, `Content-Type: application/x-www-form-urlencoded`,
/// `token=<refresh token>`.
#[tokio::test]
async fn xero_allowed_gets_the_refresh_token_in_a_form_with_basic_auth() {
    let (call, request) = revoke(XERO, TokenType::RefreshToken, ResponseTemplate::new(200)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/connect/revocation");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "authorization"), Some(BASIC));
    assert_eq!(body(&request), format!("token={TOKEN_FORM}"));
    assert_eq!(
        url_of("dialect = \"xero\"\nclient_id = \"c\"\nclient_secret_env = \"CAT_SECRET\""),
        "https://identity.xero.com/connect/revocation"
    );
    classified(
        XERO,
        TokenType::RefreshToken,
        &[
            (200, "", Outcome::Revoked),
            (400, r#"{"error":"invalid_client"}"#, Outcome::Failed),
            (429, "", Outcome::Transient),
            (503, "", Outcome::Transient),
        ],
    )
    .await;
}

/// A user with a Xero refresh token, expiring within the not-revocable bound, at a Xero
/// provider pointed at a loopback server answering 200; `extra` is added to its keys. Runs
/// the worker until the request settles; returns it, its audit rows and the requests the
/// server saw.
async fn xero_run(
    db: &TestDb,
    extra: &str,
) -> (
    offboard::storage::RequestRow,
    Vec<offboard::storage::AuditRow>,
    Vec<wiremock::Request>,
) {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let text = format!(
        "[database]\nurl = \"{}\"\n[providers.xero]\ndialect = \"xero\"\nurl = \"{}/connect/revocation\"\n\
         client_id = \"acme-client\"\nclient_secret_env = \"XERO_SECRET\"\n{extra}",
        db.url,
        server.uri()
    );
    let app = app_for(&db.store, &text, &[("XERO_SECRET".into(), "s3cret".into())]);
    let token = NewToken {
        user_id: "u-xero".into(),
        provider: "xero".into(),
        token_type: TokenType::RefreshToken,
        value: TokenValue::new("xero-refresh-token".into()),
        grant_ref: None,
        expires_at: Some(Utc::now() + chrono::Duration::hours(1)),
    };
    insert_tokens(&db.store, &[token]).await.unwrap();
    db.store.enqueue("u-xero", None, None).await.unwrap();
    for _ in 0..50 {
        app.worker().drain(&CancellationToken::new()).await.unwrap();
        let state = db.store.clearance("u-xero").await.unwrap().unwrap().state;
        if !matches!(state, RequestState::Pending | RequestState::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let request = db.store.clearance("u-xero").await.unwrap().unwrap();
    let rows = db.store.audit_rows(None, Some("u-xero")).await.unwrap();
    (request, rows, server.received_requests().await.unwrap())
}

/// Without `allow_org_wide = true` the Xero provider gets no call: the token is not
/// revocable, its audit row gives the reason and the key that allows the call.
async fn xero_without_allow_org_wide_is_never_called(db: TestDb) {
    let (request, rows, seen) = xero_run(&db, "").await;
    assert!(seen.is_empty(), "Xero was called: {:?}", seen[0].url);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].outcome, Outcome::NotRevocable, "{rows:?}");
    assert_eq!(rows[0].http_status, None);
    let reason = rows[0].error.as_deref().unwrap_or_default();
    assert!(reason.contains("every tenant connection"), "{reason}");
    assert!(reason.contains("(org-wide)"), "{reason}");
    assert!(
        reason.contains("; set providers.xero.allow_org_wide = true to allow it"),
        "{reason}"
    );
    // Expiring within the default bound, it settles so.
    assert_eq!(request.state, RequestState::Cleared, "{:?}", request.last_error);
}

/// With it, the call is made and the token revoked.
async fn xero_with_allow_org_wide_is_called(db: TestDb) {
    let (request, rows, seen) = xero_run(&db, "allow_org_wide = true\n").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].url.path(), "/connect/revocation");
    assert_eq!(body(&seen[0]), "token=xero-refresh-token");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].outcome, Outcome::Revoked, "{rows:?}");
    assert_eq!(request.state, RequestState::Cleared, "{:?}", request.last_error);
}

on_both_backends!(
    xero_without_allow_org_wide_is_never_called,
    xero_with_allow_org_wide_is_called
);

/// `offboard check-config` warns about an org-wide provider that sends nothing, and says
/// nothing once it is allowed.
#[test]
fn check_config_warns_of_an_org_wide_provider_that_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &str| {
        let config = dir.path().join("offboard.toml");
        let text = format!(
            "[database]\nurl = \"sqlite://{}\"\n[providers.books]\ndialect = \"xero\"\nclient_id = \"c\"\n\
             client_secret_env = \"BOOKS_SECRET\"\n{extra}",
            dir.path().join("o.db").display()
        );
        std::fs::write(&config, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .args(["--config", config.to_str().unwrap(), "check-config"])
            .env_remove("OFFBOARD_CONFIG")
            .env("BOOKS_SECRET", "s3cret")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run("");
    let warning = text
        .lines()
        .find(|l| l.starts_with("warning: provider books "))
        .unwrap_or_else(|| panic!("no warning:\n{text}"));
    assert!(warning.contains("sends nothing"), "{warning}");
    assert!(
        warning.contains("set providers.books.allow_org_wide = true"),
        "{warning}"
    );
    let text = run("allow_org_wide = true\n");
    assert!(!text.contains("warning:"), "{text}");
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
        (
            "xero",
            "refresh_token (access_token: not revocable) (org-wide: needs allow_org_wide)",
        ),
    ] {
        let line = line(name);
        assert!(line.contains(revokes), "{line}");
    }
}
