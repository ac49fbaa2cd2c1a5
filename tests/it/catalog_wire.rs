//! The wire format of the catalogue entries added after Google and Slack (issue 8): for each,
//! the request (method, path, query, headers, body) is written by hand from the provider's
//! documentation, cited above each test, and never read from the catalogue; and each
//! documented answer is classified. Okta, Keycloak and X, shaped exactly like RFC 7009, are
//! also revoked through against the simulator's RFC 7009 endpoint.

use std::path::Path;

use offboard::config::Config;
use offboard::outcome::Outcome;
use offboard::provider::dialect::Dialect;
use offboard::provider::{Call, Providers};
use offboard::simulate::{SimProvider, Simulator};
use offboard::token::{TokenType, TokenValue};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::catalog::{TOKEN, header, json};

/// The client credentials every test configures; `SECRET` is read from `CAT_SECRET`.
const SECRET: &str = "s3cret";
/// `base64("acme-client:s3cret")`, worked out by hand (`echo -n … | base64`).
const BASIC: &str = "Basic YWNtZS1jbGllbnQ6czNjcmV0";
/// `TOKEN` form-encoded: `/` and `+` escaped.
const TOKEN_FORM: &str = "ya29.a0Af_token%2Fwith%2Bchars";

/// Provider `p` from `table` (`{server}` replaced), its secret (if any) from `CAT_SECRET`.
fn providers(server: &str, table: &str) -> Providers {
    let text = format!("[providers.p]\n{}\n", table.replace("{server}", server));
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).expect("config");
    Providers::from_config(&config, &|name| (name == "CAT_SECRET").then(|| SECRET.to_owned())).expect("providers")
}

/// Revokes `TOKEN` through provider `p` at a server answering `template`; returns the
/// result and the request the server saw.
async fn revoke(table: &str, token_type: TokenType, template: ResponseTemplate) -> (Call, wiremock::Request) {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(template).mount(&server).await;
    let providers = providers(&server.uri(), table);
    let call = providers
        .get("p")
        .unwrap()
        .revoke(&TokenValue::new(TOKEN.into()), token_type)
        .await;
    let request = server.received_requests().await.unwrap().pop().expect("one request");
    (call, request)
}

fn body(request: &wiremock::Request) -> String {
    String::from_utf8(request.body.clone()).unwrap()
}

/// Classifies each `(status, body)` answer through `table` and checks the outcome.
async fn classified(table: &str, token_type: TokenType, answers: &[(u16, &str, Outcome)]) {
    for &(status, text, expected) in answers {
        let (call, _) = revoke(table, token_type, json(status, text)).await;
        assert_eq!(call.verdict.outcome, expected, "{status} {text}");
        assert_eq!(call.verdict.http_status, Some(status));
        if expected != Outcome::Revoked {
            assert!(call.verdict.error.is_some(), "{status} {text}");
        }
    }
}

/// The URL the provider's entry resolves to, given `table`.
fn url_of(table: &str) -> String {
    let shown = format!("{:?}", providers("", table).get("p").unwrap());
    let start = shown.find("https://").expect("an https URL");
    shown[start..].split(['"', ' ', ')', ',']).next().unwrap().to_owned()
}

const SALESFORCE: &str = "dialect = \"salesforce\"\nurl = \"{server}/services/oauth2/revoke\"";

/// developer.salesforce.com/docs/platform/mobile-sdk/guide/oauth-revoking-tokens.html: "POST
/// request that uses the application/x-www-form-urlencoded format", `token=…`, at
/// `https://{MyDomainName}.my.salesforce.com/services/oauth2/revoke`; no client credentials.
#[tokio::test]
async fn salesforce_gets_the_token_in_a_form_and_no_client_credentials() {
    let (call, request) = revoke(SALESFORCE, TokenType::RefreshToken, ResponseTemplate::new(200)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/services/oauth2/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(body(&request), format!("token={TOKEN_FORM}"));
    assert_eq!(
        url_of("dialect = \"salesforce\"\nmy_domain = \"acme--uat.sandbox\""),
        "https://acme--uat.sandbox.my.salesforce.com/services/oauth2/revoke"
    );
}

/// "Salesforce indicates successful processing of the request by returning an HTTP 200
/// status code. For all error conditions, Salesforce returns a 400 status code" with
/// `unsupported_token_type` or `invalid_token`.
#[tokio::test]
async fn salesforce_answers_are_classified() {
    classified(
        SALESFORCE,
        TokenType::AccessToken,
        &[
            (200, "", Outcome::Revoked),
            (400, r#"{"error":"invalid_token"}"#, Outcome::AlreadyInvalid),
            (400, r#"{"error":"unsupported_token_type"}"#, Outcome::NotRevocable),
            (400, r#"{"error":"invalid_request"}"#, Outcome::Failed),
            (503, "", Outcome::Transient),
        ],
    )
    .await;
}

const OKTA: &str = "dialect = \"okta\"\nurl = \"{server}/oauth2/default/v1/revoke\"\n\
                    client_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"";

/// developer.okta.com/docs/api/openapi/okta-oauth/oauth/customas/revokecustomas: `POST
/// /oauth2/{authorizationServerId}/v1/revoke`, `application/x-www-form-urlencoded`, `token`
/// and `token_type_hint`; client authentication as configured for the app (here
/// client_secret_basic, RFC 6749 §2.3.1).
#[tokio::test]
async fn okta_gets_token_and_hint_with_basic_client_authentication() {
    let (call, request) = revoke(OKTA, TokenType::RefreshToken, ResponseTemplate::new(200)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/oauth2/default/v1/revoke");
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
    // The org authorization server: POST https://{yourOktaDomain}/oauth2/v1/revoke.
    assert_eq!(
        url_of("dialect = \"okta\"\ndomain = \"acme.okta.com\"\nclient_id = \"c\"\nclient_secret_env = \"CAT_SECRET\""),
        "https://acme.okta.com/oauth2/v1/revoke"
    );
}

/// An app configured for client_secret_post sends its credentials in the form instead.
#[tokio::test]
async fn okta_with_client_secret_post_sends_the_credentials_in_the_form() {
    let table = format!("{OKTA}\nauth = \"client_secret_post\"");
    let (_, request) = revoke(&table, TokenType::AccessToken, ResponseTemplate::new(200)).await;
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        body(&request),
        format!("token={TOKEN_FORM}&token_type_hint=access_token&client_id=acme-client&client_secret={SECRET}")
    );
}

/// "Revoking an invalid, expired, or revoked token is still considered a success", so a 200
/// is all Okta says; client errors are failed, 429 transient.
#[tokio::test]
async fn okta_answers_are_classified() {
    classified(
        OKTA,
        TokenType::AccessToken,
        &[
            (200, "", Outcome::Revoked),
            (204, "", Outcome::Revoked),
            (
                401,
                r#"{"error":"invalid_client","error_description":"No client credentials found."}"#,
                Outcome::Failed,
            ),
            (400, r#"{"error":"invalid_request"}"#, Outcome::Failed),
            (429, "", Outcome::Transient),
        ],
    )
    .await;
}

const KEYCLOAK: &str = "dialect = \"keycloak\"\nurl = \"{server}/realms/acme/protocol/openid-connect/revoke\"\n\
                        client_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"";

/// keycloak.org/securing-apps/oidc-layers: the realm's endpoints live under
/// `/realms/{realm-name}/protocol/openid-connect/`; revocation is RFC 7009 (`token`,
/// `token_type_hint`, form-encoded, client_secret_basic).
#[tokio::test]
async fn keycloak_gets_an_rfc7009_request_at_the_realms_endpoint() {
    let (call, request) = revoke(KEYCLOAK, TokenType::AccessToken, ResponseTemplate::new(200)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/realms/acme/protocol/openid-connect/revoke");
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
        url_of(
            "dialect = \"keycloak\"\nhost = \"sso.acme.example\"\nrealm = \"staff\"\nclient_id = \"c\"\n\
             client_secret_env = \"CAT_SECRET\""
        ),
        "https://sso.acme.example/realms/staff/protocol/openid-connect/revoke"
    );
}

/// RFC 7009 §2.2: 200 also for an invalid token; §2.2.1 `unsupported_token_type` (an older
/// Keycloak given an access token) is not revocable; 503 is transient.
#[tokio::test]
async fn keycloak_answers_are_classified() {
    classified(
        KEYCLOAK,
        TokenType::AccessToken,
        &[
            (200, "", Outcome::Revoked),
            (
                400,
                r#"{"error":"unsupported_token_type","error_description":"Unsupported token type"}"#,
                Outcome::NotRevocable,
            ),
            (
                400,
                r#"{"error":"invalid_request","error_description":"Token not provided"}"#,
                Outcome::Failed,
            ),
            (401, r#"{"error":"unauthorized_client"}"#, Outcome::Failed),
            (503, "", Outcome::Transient),
        ],
    )
    .await;
}

const BOX: &str = "dialect = \"box\"\nurl = \"{server}/oauth2/revoke\"\n\
                   client_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"";

/// developer.box.com/reference/post-oauth2-revoke: `curl -i -X POST
/// "https://api.box.com/oauth2/revoke" -H "content-type: application/x-www-form-urlencoded"
/// -d "client_id=[CLIENT_ID]" -d "client_secret=[CLIENT_SECRET]" -d "token=[ACCESS_TOKEN]"`.
#[tokio::test]
async fn box_gets_client_credentials_and_the_token_in_a_form() {
    let (call, request) = revoke(BOX, TokenType::RefreshToken, ResponseTemplate::new(200)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/oauth2/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        body(&request),
        format!("client_id=acme-client&client_secret={SECRET}&token={TOKEN_FORM}")
    );
    assert_eq!(
        url_of("dialect = \"box\"\nclient_id = \"c\"\nclient_secret_env = \"CAT_SECRET\""),
        "https://api.box.com/oauth2/revoke"
    );
}

/// "Returns an empty response when the token was successfully revoked"; 400 and 401 are
/// "an authentication error" (`invalid_client`, "The client credentials are not valid").
#[tokio::test]
async fn box_answers_are_classified() {
    classified(
        BOX,
        TokenType::AccessToken,
        &[
            (200, "", Outcome::Revoked),
            (
                400,
                r#"{"error":"invalid_client","error_description":"The client credentials are not valid"}"#,
                Outcome::Failed,
            ),
            (401, r#"{"error":"invalid_client"}"#, Outcome::Failed),
            (429, "", Outcome::Transient),
        ],
    )
    .await;
}

/// Okta, Keycloak and X are RFC 7009 in shape, so the simulator serves them as its rfc7009
/// dialect at their own paths: a token issued there is revoked through the catalogue entry.
#[tokio::test]
async fn okta_keycloak_and_x_revoke_against_the_simulators_rfc7009_endpoint() {
    let sims: Vec<SimProvider> = ["okta", "keycloak", "x"]
        .into_iter()
        .map(|name| SimProvider::new(name, Dialect::Rfc7009))
        .collect();
    let secrets: Vec<(String, String)> = sims
        .iter()
        .map(|p| (p.name.clone(), p.client_secret.clone().unwrap()))
        .collect();
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), sims).await.unwrap();
    for (name, secret) in secrets {
        let text = format!(
            "[providers.{name}]\ndialect = \"{name}\"\nurl = \"{}\"\nclient_id = \"{name}-client\"\n\
             client_secret_env = \"SECRET\"\n",
            sim.url(&name)
        );
        let config = Config::from_toml(&text, Path::new("test"), Vec::new()).unwrap();
        let providers = Providers::from_config(&config, &|_| Some(secret.clone())).unwrap();
        for token_type in [TokenType::AccessToken, TokenType::RefreshToken] {
            let value = sim.issue(&name, token_type, None);
            let call = providers
                .get(&name)
                .unwrap()
                .revoke(&TokenValue::new(value.clone()), token_type)
                .await;
            assert_eq!(
                call.verdict.outcome,
                Outcome::Revoked,
                "{name} {token_type:?}: {:?}",
                call.verdict
            );
            assert_eq!(sim.is_revoked(&value), Some(true), "{name} {token_type:?}");
        }
    }
}

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
