//! OIDC discovery (`issuer`) against loopback servers: the metadata is found (OIDC path, or
//! RFC 8414's with the path inserted), checked (the issuer it names, a revocation
//! endpoint), fetched once for many calls, and the client authentication is chosen from
//! what the issuer lists; errors name the provider and the issuer, and an issuer that
//! cannot be reached is transient. `check-config` fetches and reports.

use std::path::Path;

use offboard::config::Config;
use offboard::outcome::Outcome;
use offboard::provider::{Call, Providers};
use offboard::token::{TokenType, TokenValue};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::catalog::{TOKEN, header};
use crate::catalog_wire::{BASIC, SECRET, TOKEN_FORM};

/// Provider `p` from `table` (`{server}` and `{issuer}` replaced), its secret `SECRET`.
pub(crate) fn providers(table: &str, server: &str, issuer: &str) -> Providers {
    let text = format!(
        "[providers.p]\n{}\n",
        table.replace("{issuer}", issuer).replace("{server}", server)
    );
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).expect("config");
    Providers::from_config(&config, &|name| (name == "CAT_SECRET").then(|| SECRET.to_owned())).expect("providers")
}

pub(crate) const RFC7009_BY_ISSUER: &str = "dialect = \"rfc7009\"\nissuer = \"{issuer}\"\nclient_id = \"acme-client\"\n\
                                            client_secret_env = \"CAT_SECRET\"\n";

/// A server whose root is an issuer: `metadata(uri)` at its OIDC well-known path, and 200 at
/// `/revoke`.
pub(crate) async fn issuer_with(metadata: impl Fn(&str) -> serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(metadata(&server.uri())))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

async fn revoke(providers: &Providers) -> Call {
    providers
        .get("p")
        .unwrap()
        .revoke(&TokenValue::new(TOKEN.into()), TokenType::AccessToken)
        .await
}

async fn paths_seen(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap();
    requests.iter().map(|r| r.url.path().to_owned()).collect()
}

#[tokio::test]
async fn an_issuer_with_no_revocation_endpoint_fails_naming_the_provider_and_the_issuer() {
    let server = MockServer::start().await;
    let metadata = json!({"issuer": server.uri(), "token_endpoint": format!("{}/token", server.uri())});
    Mock::given(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(metadata))
        .mount(&server)
        .await;
    let call = revoke(&providers(RFC7009_BY_ISSUER, &server.uri(), &server.uri())).await;
    assert_eq!(call.verdict.outcome, Outcome::Failed);
    let error = call.verdict.error.unwrap();
    assert!(error.starts_with("provider p: issuer "), "{error}");
    assert!(error.contains(&server.uri()), "{error}");
    assert!(error.contains("has no revocation endpoint"), "{error}");
    assert_eq!(paths_seen(&server).await, ["/.well-known/openid-configuration"]);
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_refused_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let metadata = json!({
        "issuer": "https://idp.attacker.example",
        "revocation_endpoint": format!("{}/revoke", server.uri()),
    });
    Mock::given(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(metadata))
        .mount(&server)
        .await;
    let call = revoke(&providers(RFC7009_BY_ISSUER, &server.uri(), &server.uri())).await;
    assert_eq!(call.verdict.outcome, Outcome::Failed);
    let error = call.verdict.error.unwrap();
    assert!(
        error.contains("names issuer 'https://idp.attacker.example', not the configured"),
        "{error}"
    );
    assert!(error.contains("RFC 8414 §3.3"), "{error}");
    assert_eq!(paths_seen(&server).await, ["/.well-known/openid-configuration"]);
}

#[tokio::test]
async fn an_unreachable_issuer_is_transient_with_a_clear_message() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let call = revoke(&providers(RFC7009_BY_ISSUER, "", &issuer)).await;
    assert_eq!(call.verdict.outcome, Outcome::Transient);
    assert_eq!(call.verdict.http_status, None);
    let error = call.verdict.error.unwrap();
    assert!(
        error.starts_with(&format!(
            "provider p: cannot fetch the metadata of issuer {issuer}/ from {issuer}/.well-known/openid-configuration: connection failed"
        )),
        "{error}"
    );
}

#[tokio::test]
async fn the_metadata_is_fetched_once_for_many_revocations() {
    let server = issuer_with(|uri| json!({"issuer": uri, "revocation_endpoint": format!("{uri}/revoke")})).await;
    let providers = providers(RFC7009_BY_ISSUER, &server.uri(), &server.uri());
    // Ten at once (they wait for one fetch), then ten one after another.
    let calls = futures_util::future::join_all((0..10).map(|_| revoke(&providers))).await;
    assert!(calls.iter().all(|c| c.verdict.outcome == Outcome::Revoked));
    for _ in 0..10 {
        assert_eq!(revoke(&providers).await.verdict.outcome, Outcome::Revoked);
    }
    let seen = paths_seen(&server).await;
    assert_eq!(seen.iter().filter(|p| p.contains("well-known")).count(), 1, "{seen:?}");
    assert_eq!(seen.iter().filter(|p| *p == "/revoke").count(), 20);
}

#[tokio::test]
async fn rfc8414_metadata_is_read_with_the_well_known_segment_before_the_issuer_path() {
    let server = MockServer::start().await;
    let issuer = format!("{}/tenants/acme", server.uri());
    Mock::given(path("/.well-known/oauth-authorization-server/tenants/acme"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": issuer,
            "revocation_endpoint": format!("{}/tenants/acme/revoke", server.uri()),
        })))
        .mount(&server)
        .await;
    Mock::given(path("/tenants/acme/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let call = revoke(&providers(RFC7009_BY_ISSUER, &server.uri(), &issuer)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked, "{:?}", call.verdict.error);
    assert_eq!(
        paths_seen(&server).await,
        [
            "/tenants/acme/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server/tenants/acme",
            "/tenants/acme/revoke"
        ]
    );
}

/// Revokes through an issuer listing `methods` (under `key`; none when empty) with `extra`
/// provider keys; returns the result and the revocation request, if one was sent.
async fn with_methods(key: &str, methods: &[&str], extra: &str) -> (Call, Option<wiremock::Request>) {
    let server = issuer_with(|uri| {
        let mut metadata = json!({"issuer": uri, "revocation_endpoint": format!("{uri}/revoke")});
        if !key.is_empty() {
            metadata[key] = json!(methods);
        }
        metadata
    })
    .await;
    let call = revoke(&providers(&format!("{RFC7009_BY_ISSUER}{extra}"), "", &server.uri())).await;
    let revocation = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/revoke");
    (call, revocation)
}

#[tokio::test]
async fn the_client_authentication_is_chosen_from_what_the_issuer_lists() {
    let form = format!("token={TOKEN_FORM}&token_type_hint=access_token");
    // Basic preferred when listed, whatever the order.
    let (call, request) = with_methods(
        "revocation_endpoint_auth_methods_supported",
        &["private_key_jwt", "client_secret_post", "client_secret_basic"],
        "",
    )
    .await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    let request = request.unwrap();
    assert_eq!(header(&request, "authorization"), Some(BASIC));
    assert_eq!(String::from_utf8(request.body).unwrap(), form);
    // Post when basic is not listed: credentials in the form, no Authorization header.
    let (call, request) = with_methods(
        "revocation_endpoint_auth_methods_supported",
        &["private_key_jwt", "client_secret_post"],
        "",
    )
    .await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    let request = request.unwrap();
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        String::from_utf8(request.body).unwrap(),
        format!("{form}&client_id=acme-client&client_secret={SECRET}")
    );
    // The token endpoint's list stands in when the revocation endpoint has none.
    let (_, request) = with_methods("token_endpoint_auth_methods_supported", &["client_secret_post"], "").await;
    assert_eq!(header(&request.unwrap(), "authorization"), None);
    // No list at all: RFC 8414's default, client_secret_basic.
    let (_, request) = with_methods("", &[], "").await;
    assert_eq!(header(&request.unwrap(), "authorization"), Some(BASIC));
    // Nothing offboard can do: failed, naming what the issuer lists; nothing sent.
    let (call, request) = with_methods(
        "revocation_endpoint_auth_methods_supported",
        &["private_key_jwt", "tls_client_auth"],
        "",
    )
    .await;
    assert_eq!(call.verdict.outcome, Outcome::Failed);
    let error = call.verdict.error.unwrap();
    assert!(
        error.contains(
            "no client authentication for its revocation endpoint: the issuer lists private_key_jwt, tls_client_auth"
        ),
        "{error}"
    );
    assert!(request.is_none());
    // A provider's own auth is kept where the issuer lists it, and refused where not.
    let (_, request) = with_methods(
        "revocation_endpoint_auth_methods_supported",
        &["client_secret_basic", "client_secret_post"],
        "auth = \"client_secret_post\"\n",
    )
    .await;
    assert_eq!(header(&request.unwrap(), "authorization"), None);
    let (call, _) = with_methods(
        "revocation_endpoint_auth_methods_supported",
        &["client_secret_basic"],
        "auth = \"client_secret_post\"\n",
    )
    .await;
    let error = call.verdict.error.unwrap();
    assert!(
        error.contains("auth = client_secret_post is set, and the issuer lists only client_secret_basic"),
        "{error}"
    );
}

#[test]
fn issuer_and_url_are_one_or_the_other() {
    let parse = |table: &str| {
        Config::from_toml(&format!("[providers.p]\n{table}"), Path::new("test"), Vec::new()).map_err(|e| e.to_string())
    };
    let err = parse(
        &format!("{RFC7009_BY_ISSUER}url = \"https://idp.example/revoke\"\n")
            .replace("{issuer}", "https://idp.example"),
    )
    .unwrap_err();
    assert!(err.contains("providers.p.issuer: set url or issuer, not both"), "{err}");
    let err = parse(&RFC7009_BY_ISSUER.replace("{issuer}", "http://idp.example")).unwrap_err();
    assert!(
        err.contains("providers.p.issuer: 'http://idp.example/' must use https://"),
        "{err}"
    );
    let err = parse(&RFC7009_BY_ISSUER.replace("{issuer}", "https://idp.example/?tenant=a")).unwrap_err();
    assert!(err.contains("has a query or fragment"), "{err}");
    // Keycloak and Okta by issuer alone: no host, realm or domain needed; the entry's URLs
    // give way to the issuer's metadata.
    for dialect in ["keycloak", "okta"] {
        let table = format!(
            "dialect = \"{dialect}\"\nissuer = \"https://idp.example/realms/acme\"\nclient_id = \"c\"\n\
             client_secret_env = \"CAT_SECRET\"\nverify = \"introspect\"\n"
        );
        let shown = format!("{:?}", providers(&table, "", "").get("p").unwrap());
        assert!(
            shown.contains("Issuer { issuer: ProviderUrl(https://idp.example/realms/acme)")
                && shown.contains("introspection: None"),
            "{dialect}: {shown}"
        );
    }
}

#[test]
fn introspection_needs_a_url_or_an_issuer_and_the_entries_give_theirs() {
    let parse = |table: &str| {
        Config::from_toml(&format!("[providers.p]\n{table}"), Path::new("test"), Vec::new()).map_err(|e| e.to_string())
    };
    let err = parse(
        "dialect = \"rfc7009\"\nurl = \"https://idp.example/revoke\"\nverify = \"introspect\"\nclient_id = \"c\"\n\
         client_secret_env = \"CAT_SECRET\"\n",
    )
    .unwrap_err();
    assert!(
        err.contains("providers.p.introspection_url: must be set for verify = \"introspect\""),
        "{err}"
    );
    for (table, introspection) in [
        (
            "dialect = \"keycloak\"\nhost = \"sso.acme.example\"\nrealm = \"staff\"",
            "https://sso.acme.example/realms/staff/protocol/openid-connect/token/introspect",
        ),
        (
            "dialect = \"okta\"\ndomain = \"acme.okta.com\"",
            "https://acme.okta.com/oauth2/v1/introspect",
        ),
    ] {
        let table =
            format!("{table}\nverify = \"introspect\"\nclient_id = \"c\"\nclient_secret_env = \"CAT_SECRET\"\n");
        let shown = format!("{:?}", providers(&table, "", "").get("p").unwrap());
        assert!(
            shown.contains(&format!("introspection: Some(ProviderUrl({introspection}))")),
            "{shown}"
        );
    }
}

/// `check-config` fetches every issuer's metadata: a usable one is described, an unusable
/// one named with the reason, and the exit code is 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_fetches_and_reports_each_issuer_s_metadata() {
    let good = issuer_with(|uri| json!({"issuer": uri, "revocation_endpoint": format!("{uri}/revoke")})).await;
    let bad = issuer_with(|uri| json!({"issuer": uri})).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("offboard.toml");
    let db = format!("sqlite://{}", dir.path().join("offboard.db").display());
    let text = format!(
        "[database]\nurl = \"{db}\"\n[providers.good]\n{}\n[providers.bad]\n{}\n",
        RFC7009_BY_ISSUER.replace("{issuer}", &good.uri()),
        RFC7009_BY_ISSUER.replace("{issuer}", &bad.uri())
    );
    std::fs::write(&config, text).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(&config)
            .arg("check-config")
            .env_remove("OFFBOARD_CONFIG")
            .env("CAT_SECRET", SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("provider good: rfc7009 at issuer {}/, rate", good.uri())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "provider good: issuer metadata ok: revocation at {}/revoke (auth client_secret_basic)",
            good.uri()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "provider bad: issuer metadata unusable (failed): provider bad: issuer {}/ has no revocation endpoint",
            bad.uri()
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("error: the issuer metadata of bad cannot be used (see above)"),
        "{stderr}"
    );
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
}

/// A failed fetch is not repeated at once (calls meanwhile get its error), and a revocation
/// endpoint that answers 404 makes the next call fetch the metadata again.
#[tokio::test]
async fn a_failed_fetch_waits_and_a_vanished_endpoint_is_looked_up_again() {
    let server = MockServer::start().await;
    Mock::given(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let failing = providers(RFC7009_BY_ISSUER, "", &server.uri());
    for _ in 0..3 {
        let call = revoke(&failing).await;
        assert_eq!(call.verdict.outcome, Outcome::Transient);
        assert!(call.verdict.error.unwrap().ends_with("openid-configuration: HTTP 503"));
    }
    assert_eq!(paths_seen(&server).await.len(), 1, "one fetch for three calls");

    let server = MockServer::start().await;
    let uri = server.uri();
    Mock::given(path("/.well-known/openid-configuration"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issuer": uri, "revocation_endpoint": format!("{uri}/revoke")})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/revoke"))
        .respond_with(ResponseTemplate::new(404))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let moved = providers(RFC7009_BY_ISSUER, "", &uri);
    assert_eq!(revoke(&moved).await.verdict.outcome, Outcome::Failed);
    assert_eq!(revoke(&moved).await.verdict.outcome, Outcome::Revoked);
    assert_eq!(revoke(&moved).await.verdict.outcome, Outcome::Revoked);
    let seen = paths_seen(&server).await;
    assert_eq!(
        seen,
        [
            "/.well-known/openid-configuration",
            "/revoke",
            "/.well-known/openid-configuration",
            "/revoke",
            "/revoke"
        ]
    );
}
