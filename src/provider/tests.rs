//! Unit tests of a provider's calls: what a failed call says.

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
    let url = p.url.url_for(&TokenValue::new("tok3n-in-the-path".into())).unwrap();
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
