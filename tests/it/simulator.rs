//! The simulated providers answer as the real ones document, and the worker's classifier
//! reads each answer right: wrong credentials, wrong content type, a missing token, an
//! already revoked token, and every injected fault.

use std::path::Path;
use std::time::Duration;

use offboard::config::Config;
use offboard::outcome::Outcome;
use offboard::provider::Providers;
use offboard::provider::classify::RawResponse;
use offboard::provider::dialect::{BodyFormat, ClientAuth, Dialect, DialectSettings};
use offboard::simulate::{Behaviour, Fault, InvalidTokenAnswer, SimProvider, Simulator};
use offboard::token::{TokenType, TokenValue};

async fn start(providers: Vec<SimProvider>) -> Simulator {
    Simulator::start("127.0.0.1:0".parse().unwrap(), providers)
        .await
        .unwrap()
}

/// offboard's providers for everything `sim` serves; `wrong_secret` spoils every secret.
fn providers_for(sim: &Simulator, per_provider: &str, wrong_secret: bool) -> Providers {
    let (text, env) = offboard::simulate::offboard_config_for(sim, per_provider);
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).unwrap();
    Providers::from_config(&config, &|name| {
        let secret = env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())?;
        Some(if wrong_secret {
            format!("{secret}-wrong")
        } else {
            secret
        })
    })
    .unwrap()
}

fn settings(dialect: Dialect) -> DialectSettings {
    DialectSettings {
        dialect,
        auth: ClientAuth::ClientSecretBasic,
        body: BodyFormat::Json,
        api_version: String::new(),
    }
}

/// Sends a hand-made request to a simulated provider and classifies the answer as the
/// worker would. Returns the outcome, the status and the body.
async fn send(
    sim: &Simulator,
    name: &str,
    dialect: Dialect,
    build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> (Outcome, u16, String) {
    let request = build(reqwest::Client::new().post(sim.url(name)));
    let response = request.send().await.unwrap();
    let raw = RawResponse {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap().to_vec(),
    };
    let verdict = settings(dialect).classify(&raw, &[]);
    (
        verdict.outcome,
        raw.status,
        String::from_utf8_lossy(&raw.body).into_owned(),
    )
}

#[tokio::test]
async fn wrong_credentials_get_each_providers_documented_error_and_fail() {
    let sim = start(
        offboard::simulate::demo_providers()
            .into_iter()
            .map(|p| SimProvider {
                behaviour: Behaviour::default(),
                ..p
            })
            .collect(),
    )
    .await;
    let providers = providers_for(&sim, "", true);
    let expected = [
        ("acme", 401, "HTTP 401: invalid_client"),
        ("stitch", 401, "HTTP 401: invalid_client"),
        ("moov", 400, "HTTP 400: invalid client credentials"),
        ("onelogin", 401, "HTTP 401: Authentication Failure"),
        ("auth0", 401, "HTTP 401: access_denied: Unauthorized"),
    ];
    for (name, status, error) in expected {
        let token = sim.issue(name, TokenType::RefreshToken, None);
        let token_type = if name == "onelogin" {
            TokenType::AccessToken
        } else {
            TokenType::RefreshToken
        };
        let call = providers
            .get(name)
            .unwrap()
            .revoke(&TokenValue::new(token.clone()), token_type)
            .await;
        assert_eq!(
            (call.verdict.outcome, call.verdict.http_status),
            (Outcome::Failed, Some(status)),
            "{name}"
        );
        assert_eq!(call.verdict.error.as_deref(), Some(error), "{name}");
        assert_eq!(
            sim.is_revoked(&token),
            Some(false),
            "{name} revoked with bad credentials"
        );
        let calls = sim.calls();
        let last = calls.iter().rev().find(|c| c.provider == name).unwrap();
        assert_eq!(last.status, status);
    }
    // The documented bodies, seen on the wire.
    let onelogin = SimProvider::new("ol", Dialect::Onelogin);
    let sim = start(vec![onelogin.clone()]).await;
    let (outcome, status, body) = send(&sim, "ol", Dialect::Onelogin, |r| {
        r.header(
            "authorization",
            format!("client_id:{}, client_secret:nope", onelogin.client_id),
        )
        .json(&serde_json::json!({ "access_token": "x" }))
    })
    .await;
    assert_eq!((outcome, status), (Outcome::Failed, 401));
    assert!(body.contains(r#""message":"Authentication Failure""#), "{body}");
}

#[tokio::test]
async fn wrong_content_type_and_missing_token_get_the_documented_errors() {
    let providers: Vec<SimProvider> = Dialect::ALL.iter().map(|d| SimProvider::new(d.as_str(), *d)).collect();
    let sim = start(providers.clone()).await;
    for p in &providers {
        let secret = p.client_secret.clone().unwrap();
        let id = p.client_id.clone();
        // Credentials as the dialect wants them, so only the part under test is wrong.
        let authed = |r: reqwest::RequestBuilder| match p.dialect {
            Dialect::Onelogin => r.header("authorization", format!("client_id:{id}, client_secret:{secret}")),
            Dialect::Rfc7009 => r.basic_auth(&id, Some(&secret)),
            Dialect::Moov => r.basic_auth(&id, Some(&secret)),
            _ => r,
        };
        let creds_body = [("client_id", id.as_str()), ("client_secret", secret.as_str())];

        let (outcome, status, body) = send(&sim, &p.name, p.dialect, |r| {
            authed(r).header("content-type", "text/plain").body("token=abc")
        })
        .await;
        assert_eq!(
            (outcome, status),
            (Outcome::Failed, 400),
            "{}: wrong content type: {body}",
            p.name
        );
        if p.dialect == Dialect::Onelogin {
            assert!(
                body.contains("Content-Type header must be set to application/json"),
                "{body}"
            );
        }

        let (outcome, status, body) = send(&sim, &p.name, p.dialect, |r| match p.dialect {
            Dialect::Rfc7009 | Dialect::Stitch => authed(r).form(&creds_body),
            _ => authed(r).json(&serde_json::json!({ "client_id": id, "client_secret": secret })),
        })
        .await;
        let expected_status = if p.dialect == Dialect::Moov { 422 } else { 400 };
        assert_eq!(
            (outcome, status),
            (Outcome::Failed, expected_status),
            "{}: missing token: {body}",
            p.name
        );
        match p.dialect {
            Dialect::Onelogin => assert!(body.contains("Access Token Missing"), "{body}"),
            Dialect::Moov => assert_eq!(body, r#"{"token":"is required"}"#),
            _ => assert!(body.contains("invalid_request"), "{body}"),
        }
    }
    // OneLogin with no Authorization header at all.
    let (outcome, status, body) = send(&sim, "onelogin", Dialect::Onelogin, |r| {
        r.json(&serde_json::json!({ "access_token": "x" }))
    })
    .await;
    assert_eq!((outcome, status), (Outcome::Failed, 400));
    assert!(body.contains("The authorization information is missing"), "{body}");
    // OneLogin's answer to the wrong method.
    let response = reqwest::get(sim.url("onelogin")).await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert!(response.text().await.unwrap().contains("No Route Exists"));
}

#[tokio::test]
async fn already_revoked_tokens_are_answered_as_each_provider_does() {
    let mut google_style = SimProvider::new("strict", Dialect::Rfc7009);
    google_style.behaviour.invalid_token_answer = InvalidTokenAnswer::InvalidToken400;
    let providers = vec![
        google_style,
        SimProvider::new("lenient", Dialect::Rfc7009),
        SimProvider::new("moov", Dialect::Moov),
    ];
    let sim = start(providers).await;
    let offboard = providers_for(&sim, "", false);
    for (name, first, again) in [
        ("strict", Outcome::Revoked, Outcome::AlreadyInvalid),
        ("lenient", Outcome::Revoked, Outcome::Revoked),
        ("moov", Outcome::Revoked, Outcome::Revoked),
    ] {
        let token = TokenValue::new(sim.issue(name, TokenType::RefreshToken, None));
        let p = offboard.get(name).unwrap();
        assert_eq!(
            p.revoke(&token, TokenType::RefreshToken).await.verdict.outcome,
            first,
            "{name}"
        );
        assert_eq!(sim.is_revoked(token.expose()), Some(true));
        assert_eq!(
            p.revoke(&token, TokenType::RefreshToken).await.verdict.outcome,
            again,
            "{name} again"
        );
    }
    // A OneLogin access token takes its paired refresh token with it.
    let sim = start(vec![SimProvider::new("ol", Dialect::Onelogin)]).await;
    let access = sim.issue("ol", TokenType::AccessToken, None);
    let refresh = sim.issue("ol", TokenType::RefreshToken, Some(&access));
    let offboard = providers_for(&sim, "", false);
    let call = offboard
        .get("ol")
        .unwrap()
        .revoke(&TokenValue::new(access), TokenType::AccessToken)
        .await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(sim.is_revoked(&refresh), Some(true));
}

#[tokio::test]
async fn every_injected_fault_is_transient_and_revokes_nothing() {
    let faults = [
        (Fault::Unavailable, Dialect::Stitch, "HTTP 503"),
        (Fault::Timeout, Dialect::Auth0, "no answer within 300ms"),
        // hyper words a broken connection in its own way; the outcome is what matters.
        (Fault::Reset, Dialect::Moov, ""),
        (Fault::Malformed, Dialect::Rfc7009, "HTML page"),
        (Fault::Malformed, Dialect::Onelogin, "without OneLogin's status object"),
        (Fault::Oversized, Dialect::Stitch, "HTTP 503"),
        (
            Fault::Echo,
            Dialect::Rfc7009,
            "HTTP 503: rejected token=[REDACTED] client_secret=[REDACTED]",
        ),
    ];
    for (fault, dialect, error) in faults {
        let mut behaviour = Behaviour::default();
        *match fault {
            Fault::Unavailable => &mut behaviour.fail_fraction,
            Fault::Timeout => &mut behaviour.timeout_fraction,
            Fault::Reset => &mut behaviour.reset_fraction,
            Fault::Malformed => &mut behaviour.malformed_fraction,
            Fault::Oversized => &mut behaviour.oversized_fraction,
            Fault::Echo => &mut behaviour.echo_fraction,
        } = 1.0;
        let sim = start(vec![SimProvider {
            behaviour,
            ..SimProvider::new("p", dialect)
        }])
        .await;
        let offboard = providers_for(&sim, "timeout = \"300ms\"\n", false);
        let ty = if dialect == Dialect::Onelogin {
            TokenType::AccessToken
        } else {
            TokenType::RefreshToken
        };
        let token = sim.issue("p", ty, None);
        let call = offboard
            .get("p")
            .unwrap()
            .revoke(&TokenValue::new(token.clone()), ty)
            .await;
        assert_eq!(
            call.verdict.outcome,
            Outcome::Transient,
            "{fault:?} at {dialect}: {:?}",
            call.verdict
        );
        let message = call.verdict.error.unwrap_or_default();
        assert!(message.contains(error), "{fault:?} at {dialect}: {message}");
        assert!(message.len() < 400, "an oversized body reached the error text");
        assert_eq!(sim.is_revoked(&token), Some(false), "{fault:?} revoked the token");
        assert_eq!(sim.stats()["p"].faults, 1);
        assert!(call.duration < Duration::from_secs(5));
    }
}

#[tokio::test]
async fn the_simulator_limit_answers_429_with_retry_after() {
    let limited = SimProvider {
        behaviour: Behaviour {
            limit_per_sec: Some(3),
            ..Behaviour::default()
        },
        ..SimProvider::new("p", Dialect::Stitch)
    };
    let sim = start(vec![limited]).await;
    let offboard = providers_for(&sim, "", false);
    let p = offboard.get("p").unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let token = TokenValue::new(sim.issue("p", TokenType::AccessToken, None));
        outcomes.push(p.revoke(&token, TokenType::AccessToken).await.verdict);
    }
    assert_eq!(outcomes.iter().filter(|v| v.outcome == Outcome::Revoked).count(), 3);
    let throttled = outcomes.iter().find(|v| v.http_status == Some(429)).unwrap();
    assert_eq!(throttled.retry_after, Some(Duration::from_secs(1)));
    assert!(p.gate.pause_left().is_some(), "a 429 pauses the provider");
    let stats = sim.stats();
    assert_eq!((stats["p"].accepted, stats["p"].rejected_429), (3, 2));
}

#[tokio::test]
async fn tokens_can_be_issued_and_counted_over_http() {
    let sim = start(vec![SimProvider::new("acme", Dialect::Rfc7009)]).await;
    let client = reqwest::Client::new();
    let issued: serde_json::Value = client
        .post(format!("http://{}/_issue", sim.addr()))
        .json(&serde_json::json!({ "provider": "acme", "token_type": "access_token" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["token"].as_str().unwrap();
    assert_eq!(sim.is_revoked(token), Some(false));
    let unknown = client
        .post(format!("http://{}/_issue", sim.addr()))
        .json(&serde_json::json!({ "provider": "nope", "token_type": "access_token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    let offboard = providers_for(&sim, "", false);
    offboard
        .get("acme")
        .unwrap()
        .revoke(&TokenValue::new(token.into()), TokenType::AccessToken)
        .await;
    let stats: serde_json::Value = reqwest::get(format!("http://{}/_stats", sim.addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["providers"]["acme"]["accepted"], 1);
    assert_eq!(stats["tokens_accepted_twice"], 0);
}
