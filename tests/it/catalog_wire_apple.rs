//! The wire format of the Sign in with Apple entry, written by hand from Apple's pages (cited
//! above each test), never read from the catalogue: a real loopback server (wiremock) sees
//! the revocation, and the client secret in it is checked as Apple would check it, with the
//! public key of a P-256 key pair made for the test (aws-lc-rs; no key is committed). Then
//! each documented answer classified, the signed secret kept out of errors and `Debug`, and
//! a key that is not a `.p8` refused by `check-config` with its key named.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use offboard::config::Config;
use offboard::outcome::Outcome;
use offboard::provider::{Call, Providers};
use offboard::token::{TokenType, TokenValue};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::catalog::{TOKEN, header, json};

/// A P-256 key pair made for one test: the private key as a `.p8` (PKCS#8 PEM, as Apple
/// issues it) and the public key that verifies what it signs.
struct TestKey {
    pem: String,
    public: DecodingKey,
}

fn test_key() -> TestKey {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let (x, y) = point[1..].split_at(32);
    TestKey {
        pem: pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec())),
        public: DecodingKey::from_ec_components(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y)).unwrap(),
    }
}

/// The keys of an `apple` provider at `{server}`, its key read from `APPLE_KEY`.
const APPLE: &str = "dialect = \"apple\"\nurl = \"{server}/auth/revoke\"\nclient_id = \"com.example.app\"\n\
                     team_id = \"DEF123GHIJ\"\nkey_id = \"ABC123DEFG\"\nprivate_key_env = \"APPLE_KEY\"";

fn providers(server: &str, key: &TestKey) -> Providers {
    let text = format!("[providers.p]\n{}\n", APPLE.replace("{server}", server));
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).expect("config");
    Providers::from_config(&config, &|name| (name == "APPLE_KEY").then(|| key.pem.clone())).expect("providers")
}

async fn revoke_through(providers: &Providers, token_type: TokenType) -> Call {
    let provider = providers.get("p").unwrap();
    provider.revoke(&TokenValue::new(TOKEN.into()), token_type).await
}

async fn server(answer: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(answer).mount(&server).await;
    server
}

/// The form fields of a request, in order, decoded.
fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body).into_owned().collect()
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// The client secret checked as "Creating a client secret" describes it: ES256 with the
/// key's public key, header exactly `alg` and `kid`, `iss` the team id, `sub` the client id,
/// `aud` Apple, `iat` ≤ now ≤ `exp`, at most 15777000 s (six months) between them.
fn assert_apple_client_secret(jwt: &str, key: &TestKey) -> Claims {
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&["https://appleid.apple.com"]);
    v.set_issuer(&["DEF123GHIJ"]);
    v.sub = Some("com.example.app".into());
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 0;
    let claims = jsonwebtoken::decode::<Claims>(jwt, &key.public, &v)
        .expect("verifies")
        .claims;
    let header = URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header, serde_json::json!({"alg": "ES256", "kid": "ABC123DEFG"}));
    assert_eq!(
        (claims.iss.as_str(), claims.sub.as_str(), claims.aud.as_str()),
        ("DEF123GHIJ", "com.example.app", "https://appleid.apple.com")
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(claims.iat <= now && now <= claims.exp, "{claims:?} at {now}");
    assert!(claims.exp - claims.iat <= 15_777_000, "{claims:?}");
    claims
}

/// developer.apple.com/documentation/signinwithapplerestapi/revoke-tokens: `curl -v POST
/// "https://appleid.apple.com/auth/revoke" -H 'content-type: application/x-www-form-urlencoded'
/// -d 'client_id=CLIENT_ID' -d 'client_secret=CLIENT_SECRET' -d 'token=REFRESH_TOKEN'
/// -d 'token_type_hint=refresh_token'` (and the same with an access token); 200 with no body.
#[tokio::test]
async fn apple_gets_client_id_signed_secret_token_and_hint_in_a_form() {
    let key = test_key();
    let server = server(ResponseTemplate::new(200)).await;
    let providers = providers(&server.uri(), &key);
    for token_type in [TokenType::RefreshToken, TokenType::AccessToken] {
        let call = revoke_through(&providers, token_type).await;
        assert_eq!(call.verdict.outcome, Outcome::Revoked, "{:?}", call.verdict);
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let mut secrets = Vec::new();
    for (request, hint) in requests.iter().zip(["refresh_token", "access_token"]) {
        assert_eq!(request.method.as_str(), "POST");
        assert_eq!(request.url.path(), "/auth/revoke");
        assert_eq!(request.url.query(), None);
        assert_eq!(
            header(request, "content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(header(request, "authorization"), None);
        let fields = form(request);
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["client_id", "client_secret", "token", "token_type_hint"]);
        assert_eq!(fields[0].1, "com.example.app");
        assert_eq!(fields[2].1, TOKEN);
        assert_eq!(fields[3].1, hint);
        assert_apple_client_secret(&fields[1].1, &key);
        secrets.push(fields[1].1.clone());
    }
    // Signed once and kept: the second call sends the same secret.
    assert_eq!(secrets[0], secrets[1]);
}

/// Without `url`, the entry's own endpoint.
#[test]
fn apple_revokes_at_appleid_apple_com() {
    let key = test_key();
    let text = format!(
        "[providers.p]\n{}\n",
        APPLE.replace("url = \"{server}/auth/revoke\"\n", "")
    );
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).unwrap();
    let providers = Providers::from_config(&config, &|_| Some(key.pem.clone())).unwrap();
    let shown = format!("{:?}", providers.get("p").unwrap());
    assert!(shown.contains("(https://appleid.apple.com/auth/revoke)"), "{shown}");
}

/// Revoke tokens: 200 "after the server invalidates the token value, or if the token value
/// was previously invalidated"; 400 with an ErrorResponse
/// (developer.apple.com/documentation/signinwithapplerestapi/errorresponse): `invalid_client`
/// (client authentication failed), `invalid_request`, `invalid_grant` (taken as failed: an
/// invalid token answers 200, so it is not one), `unauthorized_client`. No rate limit is
/// documented: 429 and 5xx are transient, as everywhere.
#[tokio::test]
async fn apple_answers_are_classified() {
    let key = test_key();
    for (status, body, expected) in [
        (200, "", Outcome::Revoked),
        (400, r#"{"error":"invalid_client"}"#, Outcome::Failed),
        (400, r#"{"error":"invalid_request"}"#, Outcome::Failed),
        (400, r#"{"error":"invalid_grant"}"#, Outcome::Failed),
        (400, r#"{"error":"unauthorized_client"}"#, Outcome::Failed),
        (429, "", Outcome::Transient),
        (500, "", Outcome::Transient),
        (503, "", Outcome::Transient),
    ] {
        let server = server(json(status, body)).await;
        let call = revoke_through(&providers(&server.uri(), &key), TokenType::RefreshToken).await;
        assert_eq!(call.verdict.outcome, expected, "{status} {body}");
        assert_eq!(call.verdict.http_status, Some(status));
        if expected != Outcome::Revoked {
            assert!(call.verdict.error.is_some(), "{status} {body}");
        }
    }
}

/// A server that answers `invalid_client` quoting the client secret it got.
struct EchoesTheSecret;

impl Respond for EchoesTheSecret {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let sent = form(request).into_iter().find(|(k, _)| k == "client_secret").unwrap().1;
        let body = serde_json::json!({"error": "invalid_client", "error_description": format!("bad {sent}")});
        json(400, &body.to_string())
    }
}

/// Invariant 5 for a signed secret: the JWT (and its signature alone) is in no error,
/// whether the provider quotes it back or the connection fails, and in no `Debug`; nor is
/// any of the key.
#[tokio::test]
async fn the_signed_secret_is_in_no_error_and_no_debug() {
    let key = test_key();
    let server = MockServer::builder().start().await;
    Mock::given(any()).respond_with(EchoesTheSecret).mount(&server).await;
    let providers = providers(&server.uri(), &key);
    let echoed = revoke_through(&providers, TokenType::AccessToken).await;
    let request = server.received_requests().await.unwrap().pop().unwrap();
    let jwt = form(&request)[1].1.clone();
    assert_apple_client_secret(&jwt, &key);
    let signature = jwt.rsplit('.').next().unwrap().to_owned();
    assert_eq!(echoed.verdict.outcome, Outcome::Failed);
    // The server goes away; the same secret, still fresh, goes nowhere.
    drop(server);
    let refused = revoke_through(&providers, TokenType::AccessToken).await;
    assert_eq!(refused.verdict.outcome, Outcome::Transient, "{:?}", refused.verdict);
    let errors = [echoed.verdict.error.unwrap(), refused.verdict.error.unwrap()];
    assert!(errors[0].contains("invalid_client"), "{}", errors[0]);
    let shown = [format!("{providers:?}"), format!("{:?}", providers.get("p").unwrap())];
    assert!(errors[0].contains("bad [REDACTED]"), "{}", errors[0]);
    for text in errors.iter().chain(&shown) {
        assert!(!text.contains(&jwt) && !text.contains(&signature[..16]), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
        for line in key.pem.lines().filter(|l| !l.is_empty() && !l.starts_with("-----")) {
            assert!(!text.contains(line), "{text}");
        }
    }
}

/// `check-config` reads and proves the key: one that is not a `.p8` stops it with the key
/// named and none of the file quoted; a good one passes, with the secret shown as set.
#[test]
fn check_config_names_a_key_that_is_not_a_p8() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("AuthKey_ABC123DEFG.p8");
    let config_path = dir.path().join("offboard.toml");
    let keys = APPLE.replace("url = \"{server}/auth/revoke\"\n", "").replace(
        "private_key_env = \"APPLE_KEY\"",
        &format!("private_key_file = \"{}\"", key_path.display()),
    );
    let db = dir.path().join("offboard.db");
    let text = format!(
        "[database]\nurl = \"sqlite://{}\"\n[providers.apple]\n{keys}\n",
        db.display()
    );
    std::fs::write(&config_path, text).unwrap();
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(&config_path)
            .arg("check-config")
            .env_remove("OFFBOARD_CONFIG")
            .output()
            .unwrap()
    };
    let body = "U0VDUkVUU0VDUkVUU0VDUkVUU0VDUkVU";
    std::fs::write(
        &key_path,
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "providers.apple.private_key_file: {} is not a PKCS#8 EC P-256 private key (.p8)",
            key_path.display()
        )),
        "{err}"
    );
    assert!(!err.contains(body), "{err}");
    let key = test_key();
    std::fs::write(&key_path, &key.pem).unwrap();
    let out = check();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        shown.contains("provider apple: apple at https://appleid.apple.com/auth/revoke")
            && shown.contains("secret set"),
        "{shown}"
    );
}
