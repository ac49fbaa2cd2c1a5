//! The simulated GitHub, HubSpot (current and legacy), Zendesk, Xero and Sign in with Apple,
//! driven through offboard (`dialect = "NAME"`, the config the simulator writes): what each
//! accepts, refuses and kills, and how offboard reads its answers. Requests offboard never
//! sends (a missing token, the wrong method or content type, a malformed client secret) are
//! written by hand as each provider documents them: they test the simulator itself. Also
//! Dropbox's token endpoint (refresh-then-revoke's first call), by hand, and the config the
//! simulator writes for every provider shape.

use std::path::Path;

use offboard::outcome::Outcome;
use offboard::provider::dialect::Dialect;
use offboard::simulate::{Behaviour, InvalidTokenAnswer, SimProvider, Simulator, apple_client_secret};
use offboard::token::TokenType;
use serde_json::{Value, json};

use crate::simulator_catalog::{alive, offboard_edited, offboard_for, revoke, sim_provider, start, with_keys};

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn secret(p: &SimProvider) -> String {
    p.client_secret.clone().unwrap()
}

/// (outcome, HTTP status, error text) of a call.
fn said(call: &offboard::provider::Call) -> (Outcome, Option<u16>, String) {
    let v = &call.verdict;
    (v.outcome, v.http_status, v.error.clone().unwrap_or_default())
}

/// docs.github.com/rest/apps/oauth-applications: "Delete an app token" is `DELETE
/// /applications/{client_id}/token` with Basic client credentials and a JSON `access_token`;
/// 204. "Check a token" is the same path with POST: 200 for a live token, 404 otherwise.
#[tokio::test]
async fn github_deletes_the_token_offboard_sends_and_refuses_what_it_never_sends() {
    let gh = sim_provider(Dialect::Github);
    let sim = start(vec![gh.clone()]).await;
    let url = sim.url("github");
    assert!(url.ends_with("/github/applications/github-client/token"), "{url}");
    let token = sim.issue("github", TokenType::AccessToken, None);
    assert_eq!(alive(&sim, &gh, &token).await, Some(true));

    let wrong = revoke(&offboard_for(&sim, true), "github", &token, TokenType::AccessToken).await;
    assert_eq!(
        said(&wrong),
        (Outcome::Failed, Some(401), "HTTP 401: Bad credentials".into())
    );
    assert_eq!(
        sim.is_revoked(&token),
        Some(false),
        "a refused request revoked the token"
    );
    let offboard = offboard_for(&sim, false);
    let call = revoke(&offboard, "github", &token, TokenType::AccessToken).await;
    assert_eq!(
        (call.verdict.outcome, call.verdict.http_status),
        (Outcome::Revoked, Some(204))
    );
    assert_eq!(sim.is_revoked(&token), Some(true));
    assert_eq!(alive(&sim, &gh, &token).await, Some(false));
    let again = revoke(&offboard, "github", &token, TokenType::AccessToken).await;
    assert_eq!(
        (again.verdict.outcome, again.verdict.http_status),
        (Outcome::AlreadyInvalid, Some(404))
    );

    // By hand: no `access_token`, no Basic credentials, another app's path.
    let client = reqwest::Client::new();
    let live = sim.issue("github", TokenType::AccessToken, None);
    let basic = |r: reqwest::RequestBuilder| r.basic_auth(&gh.client_id, Some(secret(&gh)));
    let (status, body) = send(basic(client.delete(&url)).json(&json!({}))).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("\"access_token\" wasn't supplied")
    );
    let (status, body) = send(client.delete(&url).json(&json!({ "access_token": live }))).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Requires authentication"))
    );
    let other_app = url.replace("github-client", "someone-else");
    let (status, _) = send(basic(client.delete(other_app)).json(&json!({ "access_token": live }))).await;
    assert_eq!(status, 404);
    assert_eq!(
        sim.is_revoked(&live),
        Some(false),
        "a refused request revoked the token"
    );
}

/// developers.hubspot.com, "Revoke an OAuth token": `POST /oauth/2026-03/token/revoke`, form
/// `client_id`, `client_secret`, `token`, `token_type_hint`; errors `{message, correlationId,
/// category}`. It revokes the refresh token sent, nothing else.
#[tokio::test]
async fn hubspot_revokes_only_the_refresh_token_offboard_sends() {
    let mut hs = sim_provider(Dialect::Hubspot);
    hs.behaviour.invalid_token_answer = InvalidTokenAnswer::InvalidToken400;
    let sim = start(vec![hs.clone()]).await;
    let url = sim.url("hubspot");
    assert!(url.ends_with("/hubspot/oauth/2026-03/token/revoke"), "{url}");
    let refresh = sim.issue("hubspot", TokenType::RefreshToken, None);
    let access = sim.issue("hubspot", TokenType::AccessToken, Some(&refresh));

    let wrong = revoke(&offboard_for(&sim, true), "hubspot", &refresh, TokenType::RefreshToken).await;
    assert_eq!(
        said(&wrong),
        (
            Outcome::Failed,
            Some(401),
            "HTTP 401: Invalid client credentials".into()
        )
    );
    assert_eq!(sim.is_revoked(&refresh), Some(false));
    let offboard = offboard_for(&sim, false);
    let call = revoke(&offboard, "hubspot", &refresh, TokenType::RefreshToken).await;
    assert_eq!(
        (call.verdict.outcome, call.verdict.http_status),
        (Outcome::Revoked, Some(200))
    );
    assert_eq!(sim.is_revoked(&refresh), Some(true));
    assert_eq!(
        sim.is_revoked(&access),
        Some(false),
        "HubSpot revokes the token sent only"
    );
    // Told to say so, the simulator answers a dead token 400 `invalid_token`.
    let again = revoke(&offboard, "hubspot", &refresh, TokenType::RefreshToken).await;
    assert_eq!(
        (again.verdict.outcome, again.verdict.http_status),
        (Outcome::AlreadyInvalid, Some(400))
    );

    // By hand: an empty token, and JSON instead of a form.
    let client = reqwest::Client::new();
    let live = sim.issue("hubspot", TokenType::RefreshToken, None);
    let fields = [
        ("client_id", hs.client_id.clone()),
        ("client_secret", secret(&hs)),
        ("token", String::new()),
    ];
    let (status, body) = send(client.post(&url).form(&fields)).await;
    assert_eq!((status, body["category"].as_str()), (400, Some("VALIDATION_ERROR")));
    assert!(body["correlationId"].is_string(), "{body}");
    let (status, _) = send(
        client
            .post(&url)
            .json(&json!({ "client_id": hs.client_id, "token": live })),
    )
    .await;
    assert_eq!(status, 400, "JSON instead of a form");
    assert_eq!(sim.is_revoked(&live), Some(false));
}

/// HubSpot's legacy `DELETE /oauth/v1/refresh-tokens/{token}`: no authentication, 204, and
/// "this will only delete the refresh token. Access tokens generated with the refresh token
/// will not be affected." `GET` on the same path is the refresh token's metadata: the probe.
/// What it answers for a token already deleted is undocumented: offboard fails that 404.
#[tokio::test]
async fn hubspot_legacy_deletes_the_refresh_token_offboard_puts_in_the_path() {
    let legacy = sim_provider(Dialect::HubspotLegacy);
    let sim = start(vec![legacy.clone()]).await;
    let url = sim.url("hubspot_legacy");
    assert!(
        url.ends_with("/hubspot_legacy/oauth/v1/refresh-tokens/{token}"),
        "{url}"
    );
    // Shaped as real tokens can be, with a slash and a plus to escape in the path.
    let refresh = sim.issue_value("hubspot_legacy", TokenType::RefreshToken, "na1-8a5d/af+e2==");
    let access = sim.issue("hubspot_legacy", TokenType::AccessToken, Some(&refresh));
    assert_eq!(alive(&sim, &legacy, &refresh).await, Some(true));

    let offboard = offboard_for(&sim, false);
    let call = revoke(&offboard, "hubspot_legacy", &refresh, TokenType::RefreshToken).await;
    assert_eq!(
        (call.verdict.outcome, call.verdict.http_status),
        (Outcome::Revoked, Some(204))
    );
    assert_eq!(
        sim.is_revoked(&refresh),
        Some(true),
        "the escaped token reached its own path"
    );
    assert_eq!(
        sim.is_revoked(&access),
        Some(false),
        "the access token lives until it expires"
    );
    assert_eq!(alive(&sim, &legacy, &refresh).await, Some(false));
    let again = revoke(&offboard, "hubspot_legacy", &refresh, TokenType::RefreshToken).await;
    let (outcome, status, error) = said(&again);
    assert_eq!((outcome, status), (Outcome::Failed, Some(404)), "{error}");
    assert!(error.contains("refresh token not found"), "{error}");
    assert!(!error.contains(&refresh) && !error.contains("na1-8a5d"), "{error}");
    assert_eq!(sim.calls_for(&refresh), 2, "the probes are not counted as revocations");

    // By hand: the wrong method, and an access token in the path.
    let client = reqwest::Client::new();
    let at = |token: &str| {
        let escaped: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        url.replace("{token}", &escaped)
    };
    let live = sim.issue("hubspot_legacy", TokenType::RefreshToken, None);
    let (status, _) = send(client.post(at(&live))).await;
    assert_eq!(status, 405);
    let (status, body) = send(client.delete(at(&access))).await;
    assert_eq!((status, body["category"].as_str()), (404, Some("OBJECT_NOT_FOUND")));
    assert_eq!(
        (sim.is_revoked(&access), sim.is_revoked(&live)),
        (Some(false), Some(false))
    );
}

/// developer.zendesk.com, "Revoking an OAuth access token": `DELETE
/// /api/v2/oauth/tokens/current.json` with the token as Bearer; 204. The community reports
/// the token may keep working, which `still_active_after_revoke` reproduces: offboard takes a
/// liar's word unless it verifies, here with a probe of `GET /api/v2/users/me.json` (the
/// entry ships none) written inline.
#[tokio::test]
async fn zendesk_revokes_the_bearer_token_and_a_probe_catches_a_liar() {
    let honest = sim_provider(Dialect::Zendesk);
    let liar = SimProvider {
        behaviour: Behaviour {
            still_active_after_revoke: true,
            ..Behaviour::default()
        },
        ..SimProvider::new("zendesk_liar", Dialect::Zendesk)
    };
    let sim = start(vec![honest.clone(), liar.clone()]).await;
    let offboard = offboard_for(&sim, false);
    for (p, dies) in [(&honest, true), (&liar, false)] {
        let token = sim.issue(&p.name, TokenType::AccessToken, None);
        let call = revoke(&offboard, &p.name, &token, TokenType::AccessToken).await;
        assert_eq!(
            (call.verdict.outcome, call.verdict.http_status),
            (Outcome::Revoked, Some(204))
        );
        assert_eq!(call.verdict.verification, None, "{}: verified unasked", p.name);
        assert_eq!(sim.is_revoked(&token), Some(dies), "{}", p.name);
        assert_eq!(alive(&sim, p, &token).await, Some(!dies), "{}", p.name);
    }
    let token = sim.issue("zendesk", TokenType::AccessToken, None);
    revoke(&offboard, "zendesk", &token, TokenType::AccessToken).await;
    let again = revoke(&offboard, "zendesk", &token, TokenType::AccessToken).await;
    assert_eq!(
        (again.verdict.outcome, again.verdict.http_status),
        (Outcome::AlreadyInvalid, Some(401))
    );

    // With the entry's probe (the written config points it at the simulator's users/me):
    // the liar is still_active, the honest one dead.
    let verified = offboard_edited(&sim, false, |text| {
        with_keys(
            &with_keys(&text, "zendesk", "verify = \"probe\"\n"),
            "zendesk_liar",
            "verify = \"probe\"\n",
        )
    });
    for (name, outcome, dead) in [
        ("zendesk", Outcome::Revoked, true),
        ("zendesk_liar", Outcome::StillActive, false),
    ] {
        let token = sim.issue(name, TokenType::AccessToken, None);
        let call = revoke(&verified, name, &token, TokenType::AccessToken).await;
        assert_eq!(call.verdict.outcome, outcome, "{name}: {:?}", call.verdict);
        let check = call.verdict.verification.unwrap();
        assert_eq!((check.dead, check.by.as_str()), (dead, "zendesk users/me"), "{name}");
    }

    // By hand: no Bearer token at all.
    let (status, body) = send(reqwest::Client::new().delete(sim.url("zendesk"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Couldn't authenticate you"))
    );
}

/// Xero: `POST /connect/revocation`, Basic, form `token` = the refresh token; 200. It takes
/// the grant with it (every tenant connection), so offboard sends it only with
/// `allow_org_wide = true`, which the config the simulator writes sets. An access token (a
/// JWT) is refused.
#[tokio::test]
async fn xero_revokes_a_refresh_token_and_its_grant_only_when_org_wide_calls_are_allowed() {
    let xero = sim_provider(Dialect::Xero);
    let sim = start(vec![xero.clone()]).await;
    let url = sim.url("xero");
    assert!(url.ends_with("/xero/connect/revocation"), "{url}");
    let refresh = sim.issue("xero", TokenType::RefreshToken, None);
    let access = sim.issue("xero", TokenType::AccessToken, Some(&refresh));

    let guarded = offboard_edited(&sim, false, |text| text.replace("allow_org_wide = true\n", ""));
    let refused = revoke(&guarded, "xero", &refresh, TokenType::RefreshToken).await;
    let (outcome, status, error) = said(&refused);
    assert_eq!((outcome, status), (Outcome::NotRevocable, None));
    assert!(error.contains("set providers.xero.allow_org_wide = true"), "{error}");
    let wrong = revoke(&offboard_for(&sim, true), "xero", &refresh, TokenType::RefreshToken).await;
    assert_eq!(
        said(&wrong),
        (Outcome::Failed, Some(400), "HTTP 400: invalid_client".into())
    );
    assert_eq!(sim.stats()["xero"].calls, 1, "the guard sent nothing");
    assert_eq!(
        (sim.is_revoked(&refresh), sim.is_revoked(&access)),
        (Some(false), Some(false))
    );

    let offboard = offboard_for(&sim, false);
    let call = revoke(&offboard, "xero", &refresh, TokenType::RefreshToken).await;
    assert_eq!(
        (call.verdict.outcome, call.verdict.http_status),
        (Outcome::Revoked, Some(200))
    );
    assert_eq!(
        (sim.is_revoked(&refresh), sim.is_revoked(&access)),
        (Some(true), Some(true))
    );
    let again = revoke(&offboard, "xero", &refresh, TokenType::RefreshToken).await;
    assert_eq!(
        again.verdict.outcome,
        Outcome::Revoked,
        "RFC 7009 style: 200 for a dead token"
    );

    // By hand: an access token, and JSON instead of a form.
    let client = reqwest::Client::new();
    let grant = sim.issue("xero", TokenType::RefreshToken, None);
    let jwt = sim.issue("xero", TokenType::AccessToken, Some(&grant));
    let basic = |r: reqwest::RequestBuilder| r.basic_auth(&xero.client_id, Some(secret(&xero)));
    let (status, body) = send(basic(client.post(&url)).form(&[("token", &jwt)])).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_token_type")));
    let (status, _) = send(basic(client.post(&url)).json(&json!({ "token": grant }))).await;
    assert_eq!(status, 400, "JSON instead of a form");
    assert_eq!(
        (sim.is_revoked(&grant), sim.is_revoked(&jwt)),
        (Some(false), Some(false))
    );
}

/// developer.apple.com, "Revoke tokens": `POST /auth/revoke`, form `client_id`,
/// `client_secret` (an ES256 JWT: kid; iss, sub = client id, aud, exp), `token`,
/// `token_type_hint`; 200, even for a token it does not know. Offboard signs the secret with
/// the key the simulator made; a secret of the wrong form, by hand, is `invalid_client`.
#[tokio::test]
async fn apple_takes_offboard_s_signed_client_secret_and_refuses_a_malformed_one() {
    let apple = sim_provider(Dialect::Apple);
    assert_eq!(apple.client_secret, None, "Apple's secret is a JWT the client signs");
    let sim: Simulator = start(vec![apple.clone()]).await;
    let url = sim.url("apple");
    assert!(url.ends_with("/apple/auth/revoke"), "{url}");
    let offboard = offboard_for(&sim, false);
    for (sent, other) in [
        (TokenType::RefreshToken, TokenType::AccessToken),
        (TokenType::AccessToken, TokenType::RefreshToken),
    ] {
        let token = sim.issue("apple", sent, None);
        let pair = sim.issue("apple", other, Some(&token));
        let call = revoke(&offboard, "apple", &token, sent).await;
        assert_eq!(
            (call.verdict.outcome, call.verdict.http_status),
            (Outcome::Revoked, Some(200)),
            "{sent}"
        );
        assert_eq!(
            (sim.is_revoked(&token), sim.is_revoked(&pair)),
            (Some(true), Some(true)),
            "{sent}"
        );
        let again = revoke(&offboard, "apple", &token, sent).await;
        assert_eq!(
            again.verdict.outcome,
            Outcome::Revoked,
            "Apple answers 200 to a dead token"
        );
    }
    let unknown = revoke(&offboard, "apple", "never-issued", TokenType::RefreshToken).await;
    assert_eq!(
        unknown.verdict.outcome,
        Outcome::Revoked,
        "Apple answers 200 to an unknown token"
    );

    // By hand: client secrets Apple would not take, and no token.
    let now = chrono::Utc::now().timestamp();
    let good = apple_client_secret("TEAM123456", &apple.client_id, "KEY1234567", now, 3600);
    let client = reqwest::Client::new();
    let by_hand = |secret: &str, token: &str| {
        let fields = [
            ("client_id", apple.client_id.as_str()),
            ("client_secret", secret),
            ("token", token),
            ("token_type_hint", "refresh_token"),
        ];
        client.post(&url).form(&fields)
    };
    let refresh = sim.issue("apple", TokenType::RefreshToken, None);
    let other_app = apple_client_secret("TEAM123456", "com.other.app", "KEY1234567", now, 3600);
    let expired = apple_client_secret("TEAM123456", &apple.client_id, "KEY1234567", now - 7200, 3600);
    let rs256 = {
        use base64::Engine;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let (_, rest) = good.split_once('.').unwrap();
        format!("{}.{rest}", b64(json!({ "alg": "RS256", "kid": "KEY1234567" })))
    };
    for bad in ["a-plain-secret", other_app.as_str(), expired.as_str(), rs256.as_str()] {
        let (status, body) = send(by_hand(bad, &refresh)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client")),
            "{body}"
        );
    }
    let (status, body) = send(by_hand(&good, "")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    assert_eq!(sim.is_revoked(&refresh), Some(false));
    let (status, _) = send(by_hand(&good, &refresh)).await;
    assert_eq!(status, 200);
    assert_eq!(sim.is_revoked(&refresh), Some(true));
}

/// Dropbox's `POST /oauth2/token` with `grant_type=refresh_token`, by hand: a live refresh
/// token buys a fresh access token of its grant, whose revocation kills the refresh token
/// too; then the refresh token is `invalid_grant`. Wrong credentials, another grant type
/// and a missing refresh token are refused, and none of it counts as a revocation.
#[tokio::test]
async fn dropbox_s_token_endpoint_trades_a_live_refresh_token_for_a_fresh_access_token() {
    let dropbox = sim_provider(Dialect::Dropbox);
    let sim = start(vec![dropbox.clone()]).await;
    let url = sim.token_url("dropbox").unwrap();
    assert!(url.ends_with("/dropbox/oauth2/token"), "{url}");
    let client = reqwest::Client::new();
    let refresh = sim.issue("dropbox", TokenType::RefreshToken, None);
    let form = |grant: &str, token: &str, secret: &str| {
        let fields = [
            ("grant_type", grant),
            ("refresh_token", token),
            ("client_id", dropbox.client_id.as_str()),
            ("client_secret", secret),
        ];
        client.post(&url).form(&fields)
    };
    for (request, error) in [
        (form("refresh_token", &refresh, "wrong"), "invalid_client"),
        (
            form("authorization_code", &refresh, &secret(&dropbox)),
            "unsupported_grant_type",
        ),
        (form("refresh_token", "", &secret(&dropbox)), "invalid_request"),
        (
            client
                .post(&url)
                .json(&json!({ "grant_type": "refresh_token", "refresh_token": refresh })),
            "invalid_request",
        ),
    ] {
        let (status, body) = send(request).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{body}");
    }

    // HTTP Basic works as well as the form's credentials.
    let (status, body) = send(
        client
            .post(&url)
            .basic_auth(&dropbox.client_id, Some(secret(&dropbox)))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())]),
    )
    .await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("bearer")), "{body}");
    let fresh = body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, refresh);
    assert_eq!(alive(&sim, &dropbox, &fresh).await, Some(true));
    assert_eq!(sim.is_revoked(&refresh), Some(false), "a refresh revoked nothing");

    let call = revoke(&offboard_for(&sim, false), "dropbox", &fresh, TokenType::AccessToken).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(
        (sim.is_revoked(&fresh), sim.is_revoked(&refresh)),
        (Some(true), Some(true))
    );
    let (status, body) = send(form("refresh_token", &refresh, &secret(&dropbox))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = send(form("refresh_token", "never-issued", &secret(&dropbox))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    let stats = &sim.stats()["dropbox"];
    assert_eq!((stats.calls, stats.refreshes, stats.accepted), (1, 7, 1));
    assert_eq!(sim.calls_for(&refresh), 0, "a refresh is no revocation");
}

/// The config the simulator writes for every provider shape parses and builds (Apple's key
/// read and proven by signing), and points each call an entry could make at the simulator:
/// the revocation, the introspection endpoint or probe for `verify`, Dropbox's token
/// endpoint; Xero's org-wide call allowed.
#[test]
fn the_offboard_config_points_every_call_at_the_simulator() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime.block_on(start(offboard::simulate::every_entry_providers()));
    let (text, env) = offboard::simulate::offboard_config_for(&sim, "");
    let config = offboard::config::Config::from_toml(&text, Path::new("test"), Vec::new()).unwrap();
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    offboard::provider::Providers::from_config(&config, &lookup).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let providers = table["providers"].as_table().unwrap();
    assert_eq!(providers.len(), Dialect::SIMULATED.len(), "{text}");
    let here = format!("http://{}/", sim.addr());
    for (name, keys) in providers {
        let key = |k: &str| keys.get(k).and_then(toml::Value::as_str);
        assert_eq!(key("url").map(str::to_owned), Some(sim.url(name)), "{name}");
        let dialect = key("dialect").unwrap();
        let introspect = key("introspection_url");
        let probe = keys.get("probe").map(|p| p["url"].as_str().unwrap());
        let refresh = keys.get("refresh").map(|p| p["url"].as_str().unwrap());
        let checks: Vec<&str> = introspect.into_iter().chain(probe).collect();
        match dialect {
            "rfc7009" | "okta" | "keycloak" | "slack" | "google" | "github" | "twitch" | "zendesk" => {
                assert_eq!(checks, [sim.probe_url(name).unwrap().as_str()], "{name}");
            }
            _ => assert!(checks.is_empty(), "{name}: {checks:?}"),
        }
        assert_eq!(refresh.map(str::to_owned), sim.token_url(name), "{name}");
        assert!(checks.iter().chain(&refresh).all(|u| u.starts_with(&here)), "{name}");
        let org_wide = keys.get("allow_org_wide").and_then(toml::Value::as_bool);
        assert_eq!(org_wide, (dialect == "xero").then_some(true), "{name}");
        assert_eq!(key("private_key_file").is_some(), dialect == "apple", "{name}");
    }
    let key = providers["apple"]["private_key_file"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(!text.contains("https://"), "{text}");
}
