//! The wire format of the catalogue entries added after Google and Slack (issue 8), Salesforce,
//! Okta, Keycloak and Box here (Twitch, Zoom, Intuit and X in `catalog_wire_apps`): for each,
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
pub(crate) const SECRET: &str = "s3cret";
/// `base64("acme-client:s3cret")`, worked out by hand (`echo -n … | base64`).
pub(crate) const BASIC: &str = "Basic YWNtZS1jbGllbnQ6czNjcmV0";
/// `TOKEN` form-encoded: `/` and `+` escaped.
pub(crate) const TOKEN_FORM: &str = "ya29.a0Af_token%2Fwith%2Bchars";

/// Provider `p` from `table` (`{server}` replaced), its secret (if any) from `CAT_SECRET`.
fn providers(server: &str, table: &str) -> Providers {
    let text = format!("[providers.p]\n{}\n", table.replace("{server}", server));
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).expect("config");
    Providers::from_config(&config, &|name| (name == "CAT_SECRET").then(|| SECRET.to_owned())).expect("providers")
}

/// Revokes `TOKEN` through provider `p` at a server answering `template`; returns the
/// result and the request the server saw.
pub(crate) async fn revoke(
    table: &str,
    token_type: TokenType,
    template: ResponseTemplate,
) -> (Call, wiremock::Request) {
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

pub(crate) fn body(request: &wiremock::Request) -> String {
    String::from_utf8(request.body.clone()).unwrap()
}

/// Classifies each `(status, body)` answer through `table` and checks the outcome.
pub(crate) async fn classified(table: &str, token_type: TokenType, answers: &[(u16, &str, Outcome)]) {
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
pub(crate) fn url_of(table: &str) -> String {
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
