//! Wire format of each dialect against a local HTTP server: the exact request sent
//! (method, path, headers, body) and the outcome of every documented answer.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use offboard::config::Config;
use offboard::outcome::Outcome;
use offboard::provider::{Call, Providers};
use offboard::token::{TokenType, TokenValue};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "s3cr/t+value";
const TOKEN: &str = "tok_live_0123456789abcdef";

/// A provider named `p` of `dialect` pointed at `server`, with extra keys.
async fn call(
    server: &MockServer,
    dialect: &str,
    path: &str,
    extra: &str,
    token_type: TokenType,
) -> (Call, wiremock::Request) {
    call_with_secret(server, dialect, path, extra, token_type, true).await
}

async fn call_with_secret(
    server: &MockServer,
    dialect: &str,
    path: &str,
    extra: &str,
    token_type: TokenType,
    with_secret: bool,
) -> (Call, wiremock::Request) {
    let providers = provider_at(server, dialect, path, extra, with_secret);
    let provider = providers.get("p").expect("provider p");
    let result = provider.revoke(&TokenValue::new(TOKEN.into()), token_type).await;
    let requests = server.received_requests().await.expect("recording on");
    let request = requests.last().cloned().expect("one request");
    (result, request)
}

/// A provider named `p` of `dialect` at `server`, with `extra` config keys.
fn provider_at(server: &MockServer, dialect: &str, path: &str, extra: &str, with_secret: bool) -> Providers {
    let secret_line = if with_secret {
        "client_secret_env = \"P_SECRET\"\n"
    } else {
        ""
    };
    let text = format!(
        "[providers.p]\ndialect = \"{dialect}\"\nurl = \"{}{path}\"\nclient_id = \"client-1\"\n{secret_line}{extra}\n",
        server.uri()
    );
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).expect("config");
    Providers::from_config(&config, &|_| Some(SECRET.to_owned())).expect("secret and client")
}

async fn answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(template).mount(&server).await;
    server
}

fn header<'a>(request: &'a wiremock::Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

fn body_json(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).expect("JSON body")
}

fn body_text(request: &wiremock::Request) -> String {
    String::from_utf8(request.body.clone()).expect("utf-8 body")
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// Each (status, body, headers) answered by the dialect's endpoint, and the outcome it must
/// come to.
async fn assert_outcomes(dialect: &str, path: &str, extra: &str, cases: &[(u16, &str, Outcome)]) {
    for (status, body, expected) in cases {
        let mut template = ResponseTemplate::new(*status);
        if !body.is_empty() {
            template = template.set_body_raw(body.as_bytes().to_vec(), "application/json");
        }
        let server = answering(template).await;
        let (result, _) = call(&server, dialect, path, extra, TokenType::AccessToken).await;
        assert_eq!(result.verdict.outcome, *expected, "{dialect}: {status} {body}");
        assert_eq!(result.verdict.http_status, Some(*status));
        let error = result.verdict.error.unwrap_or_default();
        assert!(
            !error.contains(TOKEN) && !error.contains(SECRET),
            "secret in error: {error}"
        );
    }
}

#[tokio::test]
async fn rfc7009_sends_a_form_with_client_secret_basic_by_default() {
    let server = answering(ResponseTemplate::new(200)).await;
    let (result, request) = call(&server, "rfc7009", "/oauth2/revoke", "", TokenType::RefreshToken).await;
    assert_eq!(result.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/oauth2/revoke");
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // RFC 6749 §2.3.1: form-encode id and secret before Basic encoding.
    assert_eq!(
        header(&request, "authorization"),
        Some(basic("client-1", "s3cr%2Ft%2Bvalue").as_str())
    );
    assert_eq!(
        body_text(&request),
        format!("token={TOKEN}&token_type_hint=refresh_token")
    );
}

#[tokio::test]
async fn rfc7009_client_secret_post_puts_the_credentials_in_the_form() {
    let server = answering(ResponseTemplate::new(200)).await;
    let (_, request) = call(
        &server,
        "rfc7009",
        "/revoke",
        "auth = \"client_secret_post\"",
        TokenType::AccessToken,
    )
    .await;
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        body_text(&request),
        format!("token={TOKEN}&token_type_hint=access_token&client_id=client-1&client_secret=s3cr%2Ft%2Bvalue")
    );
}

#[tokio::test]
async fn rfc7009_answers_are_classified() {
    assert_outcomes(
        "rfc7009",
        "/revoke",
        "",
        &[
            (200, "", Outcome::Revoked),
            (400, r#"{"error":"unsupported_token_type"}"#, Outcome::NotRevocable),
            (400, r#"{"error":"invalid_token"}"#, Outcome::AlreadyInvalid),
            (400, r#"{"error":"invalid_request"}"#, Outcome::Failed),
            (401, r#"{"error":"invalid_client"}"#, Outcome::Failed),
            (503, "", Outcome::Transient),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_503_with_retry_after_pauses_the_whole_provider() {
    let server = answering(ResponseTemplate::new(503).insert_header("retry-after", "3")).await;
    let providers = provider_at(&server, "rfc7009", "/revoke", "", true);
    let p = providers.get("p").unwrap();
    let result = p.revoke(&TokenValue::new(TOKEN.into()), TokenType::AccessToken).await;
    assert_eq!(result.verdict.outcome, Outcome::Transient);
    assert_eq!(result.verdict.retry_after, Some(Duration::from_secs(3)));
    let left = p.gate.pause_left().expect("provider paused");
    assert!(
        left > Duration::from_secs(2) && left <= Duration::from_secs(3),
        "{left:?}"
    );
}

#[tokio::test]
async fn stitch_sends_credentials_and_token_in_a_form() {
    let server = answering(ResponseTemplate::new(200)).await;
    let (result, request) = call(&server, "stitch", "/connect/token/revoke", "", TokenType::AccessToken).await;
    assert_eq!(result.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        body_text(&request),
        format!("client_id=client-1&client_secret=s3cr%2Ft%2Bvalue&token={TOKEN}&token_type_hint=access_token")
    );
}

#[tokio::test]
async fn stitch_answers_are_classified() {
    assert_outcomes(
        "stitch",
        "/revoke",
        "",
        &[
            (200, "", Outcome::Revoked),
            (401, r#"{"error":"invalid_client"}"#, Outcome::Failed),
            (500, "", Outcome::Transient),
        ],
    )
    .await;
}

#[tokio::test]
async fn moov_sends_json_with_basic_auth_and_its_version_header() {
    let server =
        answering(ResponseTemplate::new(204).insert_header("x-request-id", "3f1c2a9e-0000-4000-8000-000000000001"))
            .await;
    let (result, request) = call(&server, "moov", "/oauth2/revoke", "", TokenType::RefreshToken).await;
    assert_eq!(result.verdict.outcome, Outcome::Revoked);
    assert_eq!(
        result.verdict.provider_request_id.as_deref(),
        Some("3f1c2a9e-0000-4000-8000-000000000001")
    );
    assert_eq!(request.url.path(), "/oauth2/revoke");
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(header(&request, "x-moov-version"), Some("v2024.01.00"));
    assert_eq!(
        header(&request, "authorization"),
        Some(basic("client-1", SECRET).as_str())
    );
    assert_eq!(
        body_json(&request),
        json!({ "token": TOKEN, "token_type_hint": "refresh_token" })
    );
}

#[tokio::test]
async fn moov_can_send_a_form_with_credentials_in_the_body() {
    let server = answering(ResponseTemplate::new(204)).await;
    let extra = "content_type = \"form\"\nauth = \"client_secret_post\"\napi_version = \"v2025.07.00\"";
    let (_, request) = call(&server, "moov", "/oauth2/revoke", extra, TokenType::AccessToken).await;
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "x-moov-version"), Some("v2025.07.00"));
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        body_text(&request),
        format!("token={TOKEN}&token_type_hint=access_token&client_id=client-1&client_secret=s3cr%2Ft%2Bvalue")
    );
}

#[tokio::test]
async fn moov_answers_are_classified() {
    assert_outcomes(
        "moov",
        "/oauth2/revoke",
        "",
        &[
            (204, "", Outcome::Revoked),
            (400, r#"{"error":"invalid syntax"}"#, Outcome::Failed),
            (
                422,
                r#"{"token":"is required","token_type_hint":"invalid"}"#,
                Outcome::Failed,
            ),
            (429, "", Outcome::Transient),
            (500, "", Outcome::Transient),
            (504, "", Outcome::Transient),
        ],
    )
    .await;
}

#[tokio::test]
async fn onelogin_sends_its_own_authorization_header_and_the_access_token() {
    let ok = r#"{"status":{"error":false,"code":200,"type":"success","message":"Success"}}"#;
    let server = answering(ResponseTemplate::new(200).set_body_raw(ok, "application/json")).await;
    let (result, request) = call(&server, "onelogin", "/auth/oauth2/revoke", "", TokenType::AccessToken).await;
    assert_eq!(result.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.url.path(), "/auth/oauth2/revoke");
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("client_id:client-1, client_secret:{SECRET}").as_str())
    );
    assert_eq!(body_json(&request), json!({ "access_token": TOKEN }));
}

#[tokio::test]
async fn onelogin_answers_are_classified() {
    let status = |code: u16, kind: &str, msg: &str| {
        json!({ "status": { "error": code != 200, "code": code, "type": kind, "message": msg } }).to_string()
    };
    let content_type = status(
        400,
        "bad request",
        "Content Type is not specified or specified incorrectly.",
    );
    let missing = status(400, "bad request", "Access Token Missing");
    let no_auth = status(400, "bad request", "The authorization information is missing");
    let bad_auth = status(401, "Unauthorized", "Authentication Failure");
    let no_route = status(404, "not found", "No Route Exists");
    let ok = status(200, "success", "Success");
    assert_outcomes(
        "onelogin",
        "/auth/oauth2/revoke",
        "",
        &[
            (200, &ok, Outcome::Revoked),
            (400, &content_type, Outcome::Failed),
            (400, &missing, Outcome::Failed),
            (400, &no_auth, Outcome::Failed),
            (401, &bad_auth, Outcome::Failed),
            (404, &no_route, Outcome::Failed),
            (200, "", Outcome::Transient),
            (500, "", Outcome::Transient),
        ],
    )
    .await;
    let server = answering(ResponseTemplate::new(401).set_body_raw(bad_auth, "application/json")).await;
    let (result, _) = call(&server, "onelogin", "/auth/oauth2/revoke", "", TokenType::AccessToken).await;
    assert_eq!(
        result.verdict.error.as_deref(),
        Some("HTTP 401: Authentication Failure")
    );
}

#[tokio::test]
async fn auth0_sends_json_with_credentials_and_no_hint() {
    let server = answering(ResponseTemplate::new(200)).await;
    let (result, request) = call(&server, "auth0", "/oauth/revoke", "", TokenType::RefreshToken).await;
    assert_eq!(result.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.url.path(), "/oauth/revoke");
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        body_json(&request),
        json!({ "client_id": "client-1", "client_secret": SECRET, "token": TOKEN })
    );
}

#[tokio::test]
async fn auth0_public_clients_send_no_secret() {
    let server = answering(ResponseTemplate::new(200)).await;
    let (_, request) = call_with_secret(&server, "auth0", "/oauth/revoke", "", TokenType::RefreshToken, false).await;
    assert_eq!(body_json(&request), json!({ "client_id": "client-1", "token": TOKEN }));
}

#[tokio::test]
async fn auth0_answers_are_classified() {
    assert_outcomes(
        "auth0",
        "/oauth/revoke",
        "",
        &[
            (200, "", Outcome::Revoked),
            (
                400,
                r#"{"error":"invalid_request","error_description":"Missing required parameter: token"}"#,
                Outcome::Failed,
            ),
            (
                401,
                r#"{"error":"access_denied","error_description":"Unauthorized"}"#,
                Outcome::Failed,
            ),
            (429, "", Outcome::Transient),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_oversized_body_is_cut_at_the_limit() {
    let huge = format!(
        r#"{{"error":"invalid_request","error_description":"{}"}}"#,
        "x".repeat(200_000)
    );
    let server = answering(ResponseTemplate::new(400).set_body_raw(huge, "application/json")).await;
    let (result, _) = call(&server, "rfc7009", "/revoke", "", TokenType::AccessToken).await;
    // Cut at 64 KiB the JSON no longer parses; the status still decides.
    assert_eq!(result.verdict.outcome, Outcome::Failed);
    assert!(result.verdict.error.unwrap().len() < 1000);
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_transient() {
    let server = answering(ResponseTemplate::new(200).set_delay(Duration::from_secs(5))).await;
    let (result, _) = call(
        &server,
        "rfc7009",
        "/revoke",
        "timeout = \"200ms\"",
        TokenType::AccessToken,
    )
    .await;
    assert_eq!(result.verdict.outcome, Outcome::Transient);
    assert!(result.verdict.error.unwrap().starts_with("no answer within 200ms"));
}

#[tokio::test]
async fn a_provider_that_echoes_the_token_and_secret_gets_them_redacted() {
    let body =
        format!(r#"{{"error":"invalid_request","error_description":"token {TOKEN} rejected for secret {SECRET}"}}"#);
    let server = answering(ResponseTemplate::new(400).set_body_raw(body, "application/json")).await;
    let (result, _) = call(&server, "stitch", "/revoke", "", TokenType::AccessToken).await;
    assert_eq!(result.verdict.outcome, Outcome::Failed);
    assert_eq!(
        result.verdict.error.as_deref(),
        Some("HTTP 400: invalid_request: token [REDACTED] rejected for secret [REDACTED]")
    );
    assert!(!format!("{result:?}").contains(TOKEN));
}
