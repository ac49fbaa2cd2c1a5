//! The simulated providers whose catalogue entries are still being written (GitHub, HubSpot
//! current and legacy, Zendesk, Xero, Sign in with Apple), driven with hand-written requests
//! as each provider documents them, since no offboard dialect can send them yet. Each test
//! says what the provider must accept, refuse and kill.
//!
//! TODO(issue 8): when each entry lands in the catalogue, move its dialect from
//! `Dialect::AWAITING_ENTRY` to `Dialect::SIMULATED` and let
//! `simulator_catalog::every_catalogue_entry_revokes_a_live_token_and_answers_a_dead_one_as_documented`
//! cover it through offboard.

use offboard::provider::dialect::Dialect;
use offboard::simulate::{Behaviour, InvalidTokenAnswer, SimProvider, Simulator, apple_client_secret};
use offboard::token::TokenType;
use serde_json::{Value, json};

use crate::simulator_catalog::{alive, sim_provider, start};

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn secret(p: &SimProvider) -> String {
    p.client_secret.clone().unwrap()
}

/// docs.github.com/rest/apps/oauth-applications: "Delete an app token" is `DELETE
/// /applications/{client_id}/token` with Basic client credentials and a JSON `access_token`;
/// 204. "Check a token" is the same path with POST: 200 for a live token, 404 otherwise.
#[tokio::test]
async fn github_deletes_a_token_by_delete_with_json_and_checks_it_by_post() {
    let gh = sim_provider(Dialect::Github);
    let sim = start(vec![gh.clone()]).await;
    let url = sim.url("github");
    assert!(url.ends_with("/github/applications/github-client/token"), "{url}");
    let client = reqwest::Client::new();
    let delete = |token: &str, secret: &str| {
        client
            .delete(&url)
            .basic_auth(&gh.client_id, Some(secret))
            .json(&json!({ "access_token": token }))
    };
    let token = sim.issue("github", TokenType::AccessToken, None);
    assert_eq!(alive(&sim, &gh, &token).await, Some(true));
    let (status, body) = send(delete(&token, "wrong")).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("Bad credentials")));
    let (status, body) = send(
        client
            .delete(&url)
            .basic_auth(&gh.client_id, Some(secret(&gh)))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("\"access_token\" wasn't supplied")
    );
    let (status, _) = send(client.delete(&url).json(&json!({ "access_token": token }))).await;
    assert_eq!(status, 401, "no Basic credentials");
    let other_app = url.replace("github-client", "someone-else");
    let (status, _) = send(client.delete(other_app).basic_auth(&gh.client_id, Some(secret(&gh)))).await;
    assert_eq!(status, 404);
    assert_eq!(
        sim.is_revoked(&token),
        Some(false),
        "a refused request revoked the token"
    );

    let (status, body) = send(delete(&token, &secret(&gh))).await;
    assert_eq!((status, &body), (204, &Value::String(String::new())));
    assert_eq!(sim.is_revoked(&token), Some(true));
    assert_eq!(alive(&sim, &gh, &token).await, Some(false));
    let (status, body) = send(delete(&token, &secret(&gh))).await;
    assert_eq!((status, body["message"].as_str()), (404, Some("Not Found")));
    let (status, _) = send(delete("never-issued", &secret(&gh))).await;
    assert_eq!(status, 404);
}

/// developers.hubspot.com, "Revoke an OAuth token": `POST /oauth/2026-03/token/revoke`, form
/// `client_id`, `client_secret`, `token`, `token_type_hint`; errors `{message, correlationId,
/// category}`. It revokes the refresh token sent, nothing else.
#[tokio::test]
async fn hubspot_revokes_a_refresh_token_sent_with_its_client_credentials_in_a_form() {
    let mut hs = sim_provider(Dialect::Hubspot);
    hs.behaviour.invalid_token_answer = InvalidTokenAnswer::InvalidToken400;
    let sim = start(vec![hs.clone()]).await;
    let url = sim.url("hubspot");
    assert!(url.ends_with("/hubspot/oauth/2026-03/token/revoke"), "{url}");
    let client = reqwest::Client::new();
    let refresh = sim.issue("hubspot", TokenType::RefreshToken, None);
    let access = sim.issue("hubspot", TokenType::AccessToken, Some(&refresh));
    let form = |secret: &str, token: &str| {
        let fields = [
            ("client_id", hs.client_id.clone()),
            ("client_secret", secret.to_owned()),
            ("token", token.to_owned()),
            ("token_type_hint", "refresh_token".to_owned()),
        ];
        client.post(&url).form(&fields)
    };
    let (status, body) = send(form("wrong", &refresh)).await;
    assert_eq!(
        (status, body["category"].as_str()),
        (401, Some("INVALID_AUTHENTICATION"))
    );
    assert!(body["correlationId"].is_string(), "{body}");
    let (status, body) = send(form(&secret(&hs), "")).await;
    assert_eq!((status, body["category"].as_str()), (400, Some("VALIDATION_ERROR")));
    let (status, _) = send(client.post(&url).json(&json!({ "token": refresh }))).await;
    assert_eq!(status, 400, "JSON instead of a form");
    assert_eq!(sim.is_revoked(&refresh), Some(false));

    let (status, _) = send(form(&secret(&hs), &refresh)).await;
    assert_eq!(status, 200);
    assert_eq!(sim.is_revoked(&refresh), Some(true));
    assert_eq!(
        sim.is_revoked(&access),
        Some(false),
        "HubSpot revokes the token sent only"
    );
    let (status, body) = send(form(&secret(&hs), &refresh)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_token")));
}

/// HubSpot's legacy `DELETE /oauth/v1/refresh-tokens/{token}`: no authentication, 204, and
/// "this will only delete the refresh token. Access tokens generated with the refresh token
/// will not be affected." `GET` on the same path is the refresh token's metadata: the probe.
#[tokio::test]
async fn hubspot_legacy_deletes_only_the_refresh_token_named_in_the_path() {
    let legacy = sim_provider(Dialect::HubspotLegacy);
    let sim = start(vec![legacy.clone()]).await;
    let url = sim.url("hubspot_legacy");
    assert!(
        url.ends_with("/hubspot_legacy/oauth/v1/refresh-tokens/{token}"),
        "{url}"
    );
    let at = |token: &str| {
        let escaped: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        url.replace("{token}", &escaped)
    };
    let client = reqwest::Client::new();
    // Shaped as real tokens can be, with a slash and a plus to escape in the path.
    let refresh = sim.issue_value("hubspot_legacy", TokenType::RefreshToken, "na1-8a5d/af+e2==");
    let access = sim.issue("hubspot_legacy", TokenType::AccessToken, Some(&refresh));
    assert_eq!(alive(&sim, &legacy, &refresh).await, Some(true));
    let (status, _) = send(client.post(at(&refresh))).await;
    assert_eq!(status, 405);
    let (status, _) = send(client.delete(at(&access))).await;
    assert_eq!(status, 404, "an access token is no refresh token");
    assert_eq!(sim.is_revoked(&access), Some(false));

    let (status, _) = send(client.delete(at(&refresh))).await;
    assert_eq!(status, 204);
    assert_eq!(sim.is_revoked(&refresh), Some(true));
    assert_eq!(
        sim.is_revoked(&access),
        Some(false),
        "the access token lives until it expires"
    );
    assert_eq!(alive(&sim, &legacy, &refresh).await, Some(false));
    let (status, body) = send(client.delete(at(&refresh))).await;
    assert_eq!((status, body["category"].as_str()), (404, Some("OBJECT_NOT_FOUND")));
    assert_eq!(sim.calls_for(&refresh), 2, "the probes are not counted as revocations");
}

/// developer.zendesk.com, "Revoking an OAuth access token": `DELETE
/// /api/v2/oauth/tokens/current.json` with the token as Bearer; 204. The community reports
/// the token may keep working, which `still_active_after_revoke` reproduces.
#[tokio::test]
async fn zendesk_revokes_the_bearer_token_and_a_liar_keeps_it_working() {
    let honest = sim_provider(Dialect::Zendesk);
    let liar = SimProvider {
        behaviour: Behaviour {
            still_active_after_revoke: true,
            ..Behaviour::default()
        },
        ..SimProvider::new("zendesk_liar", Dialect::Zendesk)
    };
    let sim = start(vec![honest.clone(), liar.clone()]).await;
    let client = reqwest::Client::new();
    let (status, body) = send(client.delete(sim.url("zendesk"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Couldn't authenticate you"))
    );
    for (p, dies) in [(&honest, true), (&liar, false)] {
        let token = sim.issue(&p.name, TokenType::AccessToken, None);
        assert_eq!(alive(&sim, p, &token).await, Some(true));
        let (status, _) = send(client.delete(sim.url(&p.name)).bearer_auth(&token)).await;
        assert_eq!(status, 204, "{}", p.name);
        assert_eq!(sim.is_revoked(&token), Some(dies), "{}", p.name);
        assert_eq!(alive(&sim, p, &token).await, Some(!dies), "{}", p.name);
    }
    let token = sim.issue("zendesk", TokenType::AccessToken, None);
    send(client.delete(sim.url("zendesk")).bearer_auth(&token)).await;
    let (status, body) = send(client.delete(sim.url("zendesk")).bearer_auth(&token)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")));
}

/// Xero: `POST /connect/revocation`, Basic, form `token` = the refresh token; 200. It takes
/// the grant with it; an access token (a JWT) is refused.
#[tokio::test]
async fn xero_revokes_a_refresh_token_and_its_grant() {
    let xero = sim_provider(Dialect::Xero);
    let sim = start(vec![xero.clone()]).await;
    let url = sim.url("xero");
    assert!(url.ends_with("/xero/connect/revocation"), "{url}");
    let client = reqwest::Client::new();
    let refresh = sim.issue("xero", TokenType::RefreshToken, None);
    let access = sim.issue("xero", TokenType::AccessToken, Some(&refresh));
    let revoke = |token: &str, secret: &str| {
        client
            .post(&url)
            .basic_auth(&xero.client_id, Some(secret))
            .form(&[("token", token)])
    };
    let (status, body) = send(revoke(&refresh, "wrong")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_client")));
    let (status, body) = send(revoke(&access, &secret(&xero))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_token_type")));
    let (status, _) = send(
        client
            .post(&url)
            .basic_auth(&xero.client_id, Some(secret(&xero)))
            .json(&json!({ "token": refresh })),
    )
    .await;
    assert_eq!(status, 400, "JSON instead of a form");
    assert_eq!(
        (sim.is_revoked(&refresh), sim.is_revoked(&access)),
        (Some(false), Some(false))
    );

    let (status, _) = send(revoke(&refresh, &secret(&xero))).await;
    assert_eq!(status, 200);
    assert_eq!(
        (sim.is_revoked(&refresh), sim.is_revoked(&access)),
        (Some(true), Some(true))
    );
    let (status, _) = send(revoke(&refresh, &secret(&xero))).await;
    assert_eq!(status, 200, "RFC 7009 style: 200 for a token already revoked");
}

/// developer.apple.com, "Revoke tokens": `POST /auth/revoke`, form `client_id`,
/// `client_secret` (an ES256 JWT: kid; iss, sub = client id, aud, exp), `token`,
/// `token_type_hint`; 200, even for a token it does not know. A client secret of the wrong
/// form is `invalid_client`.
#[tokio::test]
async fn apple_checks_the_client_secret_is_an_es256_jwt_and_revokes_the_authorization() {
    let apple = sim_provider(Dialect::Apple);
    assert_eq!(apple.client_secret, None, "Apple's secret is a JWT the client signs");
    let sim: Simulator = start(vec![apple.clone()]).await;
    let url = sim.url("apple");
    assert!(url.ends_with("/apple/auth/revoke"), "{url}");
    let now = chrono::Utc::now().timestamp();
    let good = apple_client_secret("TEAM123456", &apple.client_id, "KEY1234567", now, 3600);
    let client = reqwest::Client::new();
    let revoke = |secret: &str, token: &str| {
        let fields = [
            ("client_id", apple.client_id.as_str()),
            ("client_secret", secret),
            ("token", token),
            ("token_type_hint", "refresh_token"),
        ];
        client.post(&url).form(&fields)
    };
    let refresh = sim.issue("apple", TokenType::RefreshToken, None);
    let access = sim.issue("apple", TokenType::AccessToken, Some(&refresh));
    let other_app = apple_client_secret("TEAM123456", "com.other.app", "KEY1234567", now, 3600);
    let expired = apple_client_secret("TEAM123456", &apple.client_id, "KEY1234567", now - 7200, 3600);
    let rs256 = {
        use base64::Engine;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let (_, rest) = good.split_once('.').unwrap();
        format!("{}.{rest}", b64(json!({ "alg": "RS256", "kid": "KEY1234567" })))
    };
    for bad in ["a-plain-secret", other_app.as_str(), expired.as_str(), rs256.as_str()] {
        let (status, body) = send(revoke(bad, &refresh)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client")),
            "{body}"
        );
    }
    let (status, body) = send(revoke(&good, "")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    assert_eq!(sim.is_revoked(&refresh), Some(false));

    let (status, _) = send(revoke(&good, &refresh)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (sim.is_revoked(&refresh), sim.is_revoked(&access)),
        (Some(true), Some(true))
    );
    for again in [refresh.as_str(), "never-issued"] {
        let (status, _) = send(revoke(&good, again)).await;
        assert_eq!(status, 200, "Apple answers 200 to a dead or unknown token");
    }
}

/// No offboard can configure these dialects yet: the config written for a simulator leaves
/// them out, with a line saying where they are served, and still parses.
#[test]
fn the_offboard_config_leaves_out_providers_without_an_entry() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime.block_on(start(
        Dialect::AWAITING_ENTRY
            .iter()
            .chain([Dialect::Google].iter())
            .map(|d| sim_provider(*d))
            .collect(),
    ));
    let (text, _) = offboard::simulate::offboard_config_for(&sim, "");
    assert!(text.contains("[providers.google]"), "{text}");
    for d in Dialect::AWAITING_ENTRY {
        assert!(!text.contains(&format!("[providers.{d}]")), "{text}");
        assert!(text.contains(&format!("# {d}: served at http://")), "{text}");
    }
    offboard::config::Config::from_toml(&text, std::path::Path::new("test"), Vec::new()).unwrap();
}
