//! Unit tests of a provider's calls: what a failed call says, and what a refused one sends.

use std::path::Path;

use super::*;

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn providers(table: &str) -> Providers {
    let config = Config::from_toml(&format!("[providers.p]\n{table}\n"), Path::new("test"), Vec::new()).unwrap();
    Providers::from_config(&config, &|_| Some("s3cret".into())).unwrap()
}

/// The error of a call that got no answer carries no URL, so no token in a URL's path can
/// reach a verdict even before secrets are scrubbed.
#[tokio::test]
async fn a_call_that_got_no_answer_is_described_without_its_url() {
    let port = closed_port();
    let providers = providers(&format!(
        "url = \"http://127.0.0.1:{port}/oauth/v1/refresh-tokens/{{token}}\"\nmethod = \"DELETE\"\n\
         body = \"none\"\nauth = \"none\""
    ));
    let p = providers.get("p").unwrap();
    let crate::config::endpoints::Revocation::Url(endpoint) = &p.endpoints.revocation else {
        panic!("a url, not an issuer")
    };
    let url = endpoint.url_for(&TokenValue::new("tok3n-in-the-path".into())).unwrap();
    assert!(url.path().ends_with("/tok3n-in-the-path"));
    let error = p.send(p.client.delete(url)).await.unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("tok3n") && !shown.contains("refresh-tokens"), "{shown}");
    let verdict = transport_verdict(&error, p.timeout, &[]);
    assert_eq!(verdict.outcome, Outcome::Transient);
    let text = verdict.error.unwrap();
    assert!(text.starts_with("connection failed"), "{text}");
    assert!(!text.contains("tok3n"), "{text}");
}

/// A provider whose calls are org-wide and not allowed sends nothing, even when asked to
/// revoke directly, and plans every token not revocable with the reason.
#[tokio::test]
async fn an_org_wide_provider_not_allowed_sends_nothing() {
    let port = closed_port();
    let table = format!(
        "dialect = \"xero\"\nurl = \"http://127.0.0.1:{port}/connect/revocation\"\nclient_id = \"c\"\n\
         client_secret_env = \"S\""
    );
    let providers = providers(&table);
    let p = providers.get("p").unwrap();
    for ty in [TokenType::AccessToken, TokenType::RefreshToken] {
        let Plan::NotRevocable(why) = p.plan(ty) else {
            panic!("{ty} is planned a call");
        };
        assert!(why.contains("set providers.p.allow_org_wide = true"), "{why}");
    }
    let call = p.revoke(&TokenValue::new("rt".into()), TokenType::RefreshToken).await;
    assert_eq!(call.verdict.outcome, Outcome::NotRevocable);
    assert_eq!(call.verdict.http_status, None);
    // Allowed, the call is made: here it meets a closed port.
    let providers = self::providers(&format!("{table}\nallow_org_wide = true"));
    let p = providers.get("p").unwrap();
    assert_eq!(p.plan(TokenType::RefreshToken), Plan::Call);
    let call = p.revoke(&TokenValue::new("rt".into()), TokenType::RefreshToken).await;
    assert_eq!(call.verdict.outcome, Outcome::Transient);
    let error = call.verdict.error.unwrap_or_default();
    assert!(error.starts_with("connection failed"), "{error}");
}
