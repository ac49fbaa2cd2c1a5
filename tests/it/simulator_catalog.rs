//! Issue 8: the simulator serves every catalogue entry with its own checks and answers. For
//! each entry, a real offboard provider configured with `dialect = "NAME"` and pointed at the
//! simulator revokes a live token (which the simulator and, where the provider has one, its
//! probe then call dead), and a second revocation gets the provider's answer for a dead token,
//! classified as the entry reads it. Also: what a revocation kills, per provider; each
//! provider's refusals; its 429s; and a provider that lies.
//!
//! The probes are asked with hand-written requests, as each provider documents them, so that
//! a probe answering "alive" to everything would fail here.

use std::path::Path;
use std::time::Duration;

use offboard::config::Config;
use offboard::outcome::Outcome;
use offboard::provider::Providers;
use offboard::provider::dialect::{ClientAuth, Dialect};
use offboard::simulate::{Behaviour, InvalidTokenAnswer, SimProvider, Simulator};
use offboard::token::{TokenType, TokenValue};
use serde_json::Value;

pub(crate) async fn start(providers: Vec<SimProvider>) -> Simulator {
    Simulator::start("127.0.0.1:0".parse().unwrap(), providers)
        .await
        .unwrap()
}

/// One simulated provider of `dialect`, named after it.
pub(crate) fn sim_provider(dialect: Dialect) -> SimProvider {
    SimProvider::new(dialect.as_str(), dialect)
}

/// offboard's providers for everything `sim` serves (each `dialect = "NAME"`), with
/// `wrong_secret` spoiling every secret.
pub(crate) fn offboard_for(sim: &Simulator, wrong_secret: bool) -> Providers {
    offboard_edited(sim, wrong_secret, |text| text)
}

/// As [`offboard_for`], from the config the simulator writes changed by `edit`.
pub(crate) fn offboard_edited(sim: &Simulator, wrong_secret: bool, edit: impl FnOnce(String) -> String) -> Providers {
    let (text, env) = offboard::simulate::offboard_config_for(sim, "timeout = \"2s\"\n");
    let text = edit(text);
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).unwrap_or_else(|e| panic!("{e}\n{text}"));
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

/// `keys` added to provider `name`'s table of an offboard config.
pub(crate) fn with_keys(text: &str, name: &str, keys: &str) -> String {
    let header = format!("[providers.{name}]\n");
    assert!(text.contains(&header), "no {header} in {text}");
    text.replacen(&header, &format!("{header}{keys}"), 1)
}

pub(crate) async fn revoke(providers: &Providers, name: &str, token: &str, ty: TokenType) -> offboard::provider::Call {
    providers
        .get(name)
        .unwrap()
        .revoke(&TokenValue::new(token.to_owned()), ty)
        .await
}

/// Asks `p`'s probe, by hand as the provider documents it, whether `token` still works.
/// `None` when the provider has no probe. Checks the documented shape of a "dead" answer.
pub(crate) async fn alive(sim: &Simulator, p: &SimProvider, token: &str) -> Option<bool> {
    let url = sim.probe_url(&p.name)?;
    let client = reqwest::Client::new();
    let secret = p.client_secret.clone().unwrap_or_default();
    let id = p.client_id.clone();
    let request = match p.dialect {
        Dialect::Rfc7009 | Dialect::Okta | Dialect::Keycloak => {
            let r = client.post(&url).form(&[("token", token)]);
            match p.auth {
                ClientAuth::ClientSecretBasic => r.basic_auth(&id, Some(&secret)),
                ClientAuth::ClientSecretPost => {
                    client
                        .post(&url)
                        .form(&[("token", token), ("client_id", &id), ("client_secret", &secret)])
                }
            }
        }
        Dialect::Google => {
            let escaped: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
            client.get(format!("{url}?access_token={escaped}"))
        }
        Dialect::Slack | Dialect::Dropbox => client.post(&url).bearer_auth(token),
        Dialect::Zendesk => client.get(&url).bearer_auth(token),
        Dialect::Twitch => client.get(&url).header("authorization", format!("OAuth {token}")),
        Dialect::Linkedin => {
            client
                .post(&url)
                .form(&[("client_id", id.as_str()), ("client_secret", &secret), ("token", token)])
        }
        Dialect::Notion => client
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .json(&serde_json::json!({ "token": token })),
        Dialect::Github => client
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .json(&serde_json::json!({ "access_token": token })),
        Dialect::HubspotLegacy => {
            let escaped: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
            client.get(url.replace("{token}", &escaped))
        }
        other => panic!("{other} has a probe the test does not know"),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let live = match p.dialect {
        Dialect::Rfc7009 | Dialect::Okta | Dialect::Keycloak | Dialect::Notion => {
            assert_eq!(status, 200, "{body}");
            if body["active"] == false {
                assert_eq!(
                    body,
                    serde_json::json!({ "active": false }),
                    "RFC 7662 §2.2: nothing else"
                );
            }
            body["active"] == true
        }
        Dialect::Linkedin => {
            assert_eq!(status, 200, "{body}");
            body["active"] == true
        }
        Dialect::Slack => {
            assert_eq!(status, 200, "{body}");
            if body["ok"] == false {
                assert!(
                    ["token_revoked", "invalid_auth"].contains(&body["error"].as_str().unwrap()),
                    "{body}"
                );
            }
            body["ok"] == true
        }
        Dialect::Google => {
            if status != 200 {
                assert_eq!((status, &body["error"]), (400, &Value::from("invalid_token")), "{body}");
            }
            status == 200
        }
        _ => {
            let dead = match p.dialect {
                Dialect::Github | Dialect::HubspotLegacy => 404,
                _ => 401,
            };
            assert!(status == 200 || status == dead, "{}: {status} {body}", p.name);
            status == 200
        }
    };
    assert!(!body.to_string().contains(token), "a probe answer repeated the token");
    Some(live)
}

/// What offboard revokes at each entry in these tests, and how it classifies the provider's
/// answer to a second revocation of the same (now dead) token.
pub(crate) fn plan(dialect: Dialect) -> (TokenType, Outcome) {
    use Outcome::{AlreadyInvalid, Failed, Revoked};
    match dialect {
        // Documented answers for a dead token: GitHub's 404 (documented for "Check a token"),
        // Zendesk's 401 `invalid_token`.
        Dialect::Salesforce => (TokenType::RefreshToken, AlreadyInvalid),
        Dialect::Google | Dialect::Slack | Dialect::Twitch | Dialect::Dropbox | Dialect::Github | Dialect::Zendesk => {
            (TokenType::AccessToken, AlreadyInvalid)
        }
        // HubSpot's legacy DELETE documents no answer for a dead token; its 404 is not one
        // the entry reads, so the request fails (the entry's `unverified` says so).
        Dialect::HubspotLegacy => (TokenType::RefreshToken, Failed),
        // RFC 7009 §2.2 (and Okta, Keycloak): 200 for a token already invalid, which cannot
        // be told from a revocation. Those that document nothing answer so by default too.
        Dialect::Zoom | Dialect::Notion | Dialect::Linkedin | Dialect::Onelogin => (TokenType::AccessToken, Revoked),
        _ => (TokenType::RefreshToken, Revoked),
    }
}

#[tokio::test]
async fn every_catalogue_entry_revokes_a_live_token_and_answers_a_dead_one_as_documented() {
    let sims: Vec<SimProvider> = Dialect::SIMULATED.iter().map(|d| sim_provider(*d)).collect();
    let sim = start(sims.clone()).await;
    let offboard = offboard_for(&sim, false);
    let mut probed = 0;
    for p in &sims {
        let (ty, again) = plan(p.dialect);
        let token = sim.issue(&p.name, ty, None);
        let before = alive(&sim, p, &token).await;
        assert_ne!(before, Some(false), "{}: a live token probed dead", p.name);

        let call = revoke(&offboard, &p.name, &token, ty).await;
        assert_eq!(call.verdict.outcome, Outcome::Revoked, "{}: {:?}", p.name, call.verdict);
        assert_eq!(sim.is_revoked(&token), Some(true), "{}", p.name);
        let after = alive(&sim, p, &token).await;
        assert_ne!(after, Some(true), "{}: a revoked token probed alive", p.name);
        probed += usize::from(after.is_some());

        let call = revoke(&offboard, &p.name, &token, ty).await;
        assert_eq!(call.verdict.outcome, again, "{} again: {:?}", p.name, call.verdict);
        // A token never issued is answered as a dead one, except by Slack, whose
        // `invalid_auth` may also mean a disallowed IP address: offboard fails it.
        let never_issued = format!("{}-never-issued", p.name);
        let unknown = if p.dialect == Dialect::Slack {
            Outcome::Failed
        } else {
            again
        };
        let call = revoke(&offboard, &p.name, &never_issued, ty).await;
        assert_eq!(call.verdict.outcome, unknown, "{} unknown: {:?}", p.name, call.verdict);
    }
    // rfc7009, google, slack, okta, keycloak, twitch, dropbox, notion, linkedin, github,
    // zendesk, hubspot_legacy.
    assert_eq!(probed, 12);
    assert_eq!(
        sim.tokens_accepted_twice(),
        sims.len(),
        "each live token was accepted twice"
    );
}

/// The providers whose already-invalid answer is not documented answer RFC 7009's 200 by
/// default; `invalid_token = "invalid_token400"` makes them say it, and offboard then reads
/// `already_invalid`. Providers with an answer of their own keep it.
#[tokio::test]
async fn an_undocumented_already_invalid_answer_follows_the_setting() {
    let strict = [
        Dialect::Okta,
        Dialect::Keycloak,
        Dialect::X,
        Dialect::Box,
        Dialect::Zoom,
        Dialect::Intuit,
        Dialect::Notion,
        Dialect::Discord,
        Dialect::Linkedin,
    ];
    let sims: Vec<SimProvider> = strict
        .iter()
        .map(|d| {
            let mut p = sim_provider(*d);
            p.behaviour.invalid_token_answer = InvalidTokenAnswer::InvalidToken400;
            p
        })
        .collect();
    let sim = start(sims.clone()).await;
    let offboard = offboard_for(&sim, false);
    for p in &sims {
        let (ty, _) = plan(p.dialect);
        let token = sim.issue(&p.name, ty, None);
        assert_eq!(
            revoke(&offboard, &p.name, &token, ty).await.verdict.outcome,
            Outcome::Revoked
        );
        let again = revoke(&offboard, &p.name, &token, ty).await.verdict;
        assert_eq!(again.outcome, Outcome::AlreadyInvalid, "{}: {again:?}", p.name);
        assert_eq!(again.http_status, Some(400));
    }
}

/// Each provider kills what its documentation says revoking kills.
#[tokio::test]
async fn what_a_revocation_kills_follows_each_provider() {
    use TokenType::{AccessToken as A, RefreshToken as R};
    // (dialect, the token revoked, whether its pair dies too)
    let cases = [
        (Dialect::Salesforce, R, true),
        (Dialect::Salesforce, A, false),
        (Dialect::Okta, R, true),
        (Dialect::Okta, A, false),
        (Dialect::Keycloak, R, true),
        (Dialect::Box, A, true),
        (Dialect::Box, R, true),
        (Dialect::Discord, R, true),
        (Dialect::Intuit, A, true),
        (Dialect::Dropbox, A, true),
        (Dialect::X, A, false),
        (Dialect::Notion, A, false),
        (Dialect::Zoom, A, false),
        (Dialect::Linkedin, A, false),
        (Dialect::Github, A, false),
        (Dialect::Zendesk, A, false),
        (Dialect::Hubspot, R, false),
        (Dialect::HubspotLegacy, R, false),
        (Dialect::Xero, R, true),
        (Dialect::Apple, R, true),
        (Dialect::Apple, A, true),
    ];
    let sims: Vec<SimProvider> = Dialect::SIMULATED.iter().map(|d| sim_provider(*d)).collect();
    let sim = start(sims).await;
    let offboard = offboard_for(&sim, false);
    for (dialect, sent, pair_dies) in cases {
        let name = dialect.as_str();
        let (first, other) = if sent == A { (A, R) } else { (R, A) };
        let token = sim.issue(name, first, None);
        let pair = sim.issue(name, other, Some(&token));
        let unrelated = sim.issue(name, other, None);
        let call = revoke(&offboard, name, &token, sent).await;
        assert_eq!(call.verdict.outcome, Outcome::Revoked, "{name}: {:?}", call.verdict);
        assert_eq!(sim.is_revoked(&token), Some(true), "{name}");
        assert_eq!(
            sim.is_revoked(&pair),
            Some(pair_dies),
            "{name}: the pair of a revoked {sent}"
        );
        assert_eq!(
            sim.is_revoked(&unrelated),
            Some(false),
            "{name}: another grant's token died"
        );
    }
}

/// Wrong client credentials and a request with no token get each provider's own refusal,
/// and offboard fails them; nothing is revoked.
#[tokio::test]
async fn refusals_are_each_providers_own() {
    // (dialect, status and a piece of the body for a wrong secret)
    let wrong_secret = [
        (Dialect::Okta, 401, "Client authentication failed"),
        (Dialect::Keycloak, 401, "Invalid client or Invalid client credentials"),
        (Dialect::X, 401, "unauthorized_client"),
        (Dialect::Box, 400, "The client credentials are not valid"),
        (Dialect::Zoom, 401, "Invalid client_id or client_secret"),
        (Dialect::Intuit, 401, "invalid_client"),
        (Dialect::Notion, 401, "API token is invalid."),
        (Dialect::Discord, 401, "invalid_client"),
        (Dialect::Linkedin, 401, "Client authentication failed"),
    ];
    let sims: Vec<SimProvider> = wrong_secret.iter().map(|(d, _, _)| sim_provider(*d)).collect();
    let sim = start(sims.clone()).await;
    let offboard = offboard_for(&sim, true);
    for (dialect, status, said) in wrong_secret {
        let name = dialect.as_str();
        let (ty, _) = plan(dialect);
        let token = sim.issue(name, ty, None);
        let call = revoke(&offboard, name, &token, ty).await;
        assert_eq!(
            (call.verdict.outcome, call.verdict.http_status),
            (Outcome::Failed, Some(status)),
            "{name}: {:?}",
            call.verdict
        );
        assert_eq!(sim.is_revoked(&token), Some(false), "{name}");
        let body = reqwest::Client::new()
            .post(sim.url(name))
            .basic_auth(format!("{name}-client"), Some("nope"))
            .header("notion-version", "2025-09-03")
            .form(&[
                ("client_id", format!("{name}-client").as_str()),
                ("client_secret", "nope"),
                ("token", "t"),
            ])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // Notion takes JSON only: a form is a validation error before the credentials count.
        if dialect != Dialect::Notion {
            assert!(body.contains(said), "{name}: {body}");
        }
    }
    // Requests missing their token, or of the wrong shape, by hand.
    let twitch = sim_provider(Dialect::Twitch);
    let notion = sim_provider(Dialect::Notion);
    let dropbox = sim_provider(Dialect::Dropbox);
    let keycloak = sim_provider(Dialect::Keycloak);
    let sim = start(vec![twitch, notion.clone(), dropbox, keycloak.clone()]).await;
    let client = reqwest::Client::new();
    let send = |r: reqwest::RequestBuilder| async move {
        let response = r.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    let cases = [
        (
            send(
                client
                    .post(sim.url("twitch"))
                    .form(&[("client_id", "nobody"), ("token", "t")]),
            )
            .await,
            404,
            "client does not exist",
        ),
        (
            send(client.post(sim.url("twitch")).form(&[("token", "t")])).await,
            400,
            "missing client id",
        ),
        (
            send(
                client
                    .post(sim.url("notion"))
                    .basic_auth(&notion.client_id, notion.client_secret.as_ref())
                    .json(&serde_json::json!({ "token": "t" })),
            )
            .await,
            400,
            "missing_version",
        ),
        (
            send(
                client
                    .post(sim.url("dropbox"))
                    .header("content-type", "application/x-www-form-urlencoded"),
            )
            .await,
            400,
            "Bad HTTP \"Content-Type\" header",
        ),
        (
            send(client.post(sim.url("dropbox"))).await,
            400,
            "Must provide HTTP header \"Authorization\"",
        ),
        (
            send(
                client
                    .post(sim.url("keycloak"))
                    .basic_auth(&keycloak.client_id, keycloak.client_secret.as_ref())
                    .form(&[("token_type_hint", "refresh_token")]),
            )
            .await,
            400,
            "Token not provided",
        ),
        (send(client.get(sim.url("keycloak"))).await, 405, ""),
        (
            send(client.post(sim.url("keycloak").replace("/realms/offboard/", "/realms/other/"))).await,
            404,
            "",
        ),
    ];
    for ((status, body), want_status, want) in cases {
        assert_eq!(status, want_status, "{body}");
        assert!(body.contains(want), "{body}");
    }
}

/// Over its configured rate a provider answers 429 with Retry-After, in its own words and
/// headers, and offboard pauses the provider for it.
#[tokio::test]
async fn each_provider_throttles_in_its_own_words() {
    let limited = [
        (Dialect::Okta, "x-rate-limit-reset", "E0000047"),
        (Dialect::X, "x-rate-limit-reset", "Too Many Requests"),
        (
            Dialect::Discord,
            "x-ratelimit-reset-after",
            "You are being rate limited.",
        ),
        (Dialect::Notion, "retry-after", "rate_limited"),
        (Dialect::Dropbox, "retry-after", "too_many_requests"),
        (Dialect::Twitch, "ratelimit-reset", "Too Many Requests"),
        (Dialect::Slack, "retry-after", "ratelimited"),
    ];
    for (dialect, header, said) in limited {
        let p = SimProvider {
            behaviour: Behaviour {
                limit_per_sec: Some(1),
                ..Behaviour::default()
            },
            ..sim_provider(dialect)
        };
        let sim = start(vec![p]).await;
        let offboard = offboard_for(&sim, false);
        let name = dialect.as_str();
        let (ty, _) = plan(dialect);
        let first = sim.issue(name, ty, None);
        assert_eq!(
            revoke(&offboard, name, &first, ty).await.verdict.outcome,
            Outcome::Revoked
        );
        let second = sim.issue(name, ty, None);
        let verdict = revoke(&offboard, name, &second, ty).await.verdict;
        assert_eq!(
            (verdict.outcome, verdict.http_status, verdict.retry_after),
            (Outcome::Transient, Some(429), Some(Duration::from_secs(1))),
            "{name}"
        );
        assert!(
            offboard.get(name).unwrap().gate.pause_left().is_some(),
            "{name}: not paused"
        );
        assert_eq!(sim.is_revoked(&second), Some(false));
        let response = reqwest::Client::new().post(sim.url(name)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(response.headers()["retry-after"], "1");
        assert!(response.headers().contains_key(header), "{name}: no {header}");
        assert!(response.text().await.unwrap().contains(said), "{name}");
        assert_eq!(sim.stats()[name].rejected_429, 2);
    }
}

/// A provider configured to lie (`still_active_after_revoke`) answers success and leaves the
/// token alive, so that only its probe shows the truth.
#[tokio::test]
async fn a_liar_says_revoked_and_its_probe_finds_the_token_alive() {
    let liar = |d: Dialect| SimProvider {
        behaviour: Behaviour {
            still_active_after_revoke: true,
            ..Behaviour::default()
        },
        ..sim_provider(d)
    };
    let sims = vec![liar(Dialect::Rfc7009), liar(Dialect::Slack), liar(Dialect::Google)];
    let sim = start(sims.clone()).await;
    let offboard = offboard_for(&sim, false);
    for p in &sims {
        let ty = TokenType::AccessToken;
        let token = sim.issue(&p.name, ty, None);
        for _ in 0..2 {
            let call = revoke(&offboard, &p.name, &token, ty).await;
            assert_eq!(call.verdict.outcome, Outcome::Revoked, "{}", p.name);
        }
        assert_eq!(sim.is_revoked(&token), Some(false), "{}", p.name);
        assert_eq!(alive(&sim, p, &token).await, Some(true), "{}", p.name);
    }
    let stats = sim.stats();
    assert_eq!((stats["slack"].calls, stats["slack"].probes), (2, 1));
}
