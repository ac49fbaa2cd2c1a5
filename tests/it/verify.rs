//! Proof of death (`verify`) against loopback servers: Slack's `auth.test` and Google's
//! `tokeninfo` probes tell dead from alive as their documentation says (requests written by
//! hand here, never read from the catalogue); a token in the probe's URL never reaches an
//! error or a log; and with introspection, a token that still works is audited
//! `still_active` (`verified = false`) and keeps the user from clearing until the server
//! says it is dead, on both backends.

use std::time::Duration;

use offboard::outcome::{Outcome, RequestState, Verification};
use offboard::provider::Call;
use offboard::storage::seed::{NewToken, insert_tokens};
use offboard::token::{TokenType, TokenValue};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::catalog::{TOKEN, header, json};
use crate::catalog_wire::{BASIC, TOKEN_FORM};
use crate::discovery::providers;
use crate::helpers::{TestDb, app_for, captured_logs, exec, on_both_backends};

const SLACK: &str = "dialect = \"slack\"\nurl = \"{server}/api/auth.revoke\"\nverify = \"probe\"\n\
                     probe = { url = \"{server}/api/auth.test\" }\n";
const GOOGLE: &str = "dialect = \"google\"\nurl = \"{server}/revoke\"\nverify = \"probe\"\n\
                      probe = { url = \"{server}/tokeninfo\" }\n";

/// Revokes `TOKEN` through `table` at a server that accepts the revocation at `revoke_path`
/// and answers the check at `check_path` with `check`; returns the call and the check's
/// request, if one was made.
async fn revoke_then_check(
    table: &str,
    token_type: TokenType,
    revoke: ResponseTemplate,
    check_path: &str,
    check: ResponseTemplate,
) -> (Call, Option<wiremock::Request>) {
    let server = MockServer::start().await;
    Mock::given(path(check_path)).respond_with(check).mount(&server).await;
    Mock::given(method("POST")).respond_with(revoke).mount(&server).await;
    let providers = providers(table, &server.uri(), "");
    let call = providers
        .get("p")
        .unwrap()
        .revoke(&TokenValue::new(TOKEN.into()), token_type)
        .await;
    let requests = server.received_requests().await.unwrap();
    let check = requests.into_iter().find(|r| r.url.path() == check_path);
    (call, check)
}

fn verified(dead: bool, by: &str) -> Option<Verification> {
    Some(Verification { dead, by: by.into() })
}

/// api.slack.com/methods/auth.test: `POST https://slack.com/api/auth.test`, the token as an
/// `Authorization` header; a working token answers `{"ok": true, "url", "team", "user", …}`,
/// an invalid one `{"ok": false, "error": "invalid_auth"}`.
#[tokio::test]
async fn slack_auth_test_tells_a_dead_token_from_a_live_one() {
    let revoked = || json(200, r#"{"ok":true,"revoked":true}"#);
    for error in ["invalid_auth", "token_revoked", "account_inactive"] {
        let answer = json(200, &format!(r#"{{"ok":false,"error":"{error}"}}"#));
        let (call, check) = revoke_then_check(SLACK, TokenType::AccessToken, revoked(), "/api/auth.test", answer).await;
        assert_eq!(call.verdict.outcome, Outcome::Revoked, "{error}");
        assert_eq!(call.verdict.verification, verified(true, "slack auth.test"), "{error}");
        assert_eq!(call.verdict.error, None);
        let check = check.expect("auth.test was called");
        assert_eq!(check.method.as_str(), "POST");
        assert_eq!(
            header(&check, "authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert!(check.body.is_empty());
    }
    let alive = json(
        200,
        r#"{"ok":true,"url":"https://acme.slack.com/","team":"Acme","user":"grace"}"#,
    );
    let (call, _) = revoke_then_check(SLACK, TokenType::AccessToken, revoked(), "/api/auth.test", alive).await;
    assert_eq!(call.verdict.outcome, Outcome::StillActive);
    assert_eq!(call.verdict.verification, verified(false, "slack auth.test"));
    assert_eq!(call.verdict.http_status, Some(200));
    assert_eq!(
        call.verdict.error.as_deref(),
        Some("the provider accepted the revocation (HTTP 200), but slack auth.test shows the token still works")
    );
    // A rate-limited check proves nothing: transient, unverified, the wait kept.
    let limited = json(429, r#"{"ok":false,"error":"ratelimited"}"#).insert_header("retry-after", "3");
    let (call, _) = revoke_then_check(SLACK, TokenType::AccessToken, revoked(), "/api/auth.test", limited).await;
    assert_eq!(call.verdict.outcome, Outcome::Transient);
    assert_eq!(call.verdict.verification, None);
    assert_eq!(call.verdict.retry_after, Some(Duration::from_secs(3)));
    let error = call.verdict.error.unwrap();
    assert!(
        error.starts_with(
            "the provider accepted the revocation (HTTP 200), but slack auth.test could not prove it dead"
        ),
        "{error}"
    );
    // An answer that says neither: failed, described.
    let odd = json(200, r#"{"ok":false,"error":"not_allowed_token_type"}"#);
    let (call, _) = revoke_then_check(SLACK, TokenType::AccessToken, revoked(), "/api/auth.test", odd).await;
    assert_eq!(call.verdict.outcome, Outcome::Failed);
    assert!(call.verdict.error.unwrap().contains("says neither dead nor alive"));
    // Without verify, no check is made.
    let plain = SLACK.replace("verify = \"probe\"\n", "");
    let (call, check) = revoke_then_check(
        &plain,
        TokenType::AccessToken,
        revoked(),
        "/api/auth.test",
        json(200, "{}"),
    )
    .await;
    assert_eq!(
        (call.verdict.outcome, call.verdict.verification, check.is_none()),
        (Outcome::Revoked, None, true)
    );
}

/// docs.github.com/rest/apps/oauth-applications#check-a-token: `POST
/// /applications/{client_id}/token`, Basic `client_id:client_secret`, JSON
/// `{"access_token": …}`; 200 with the authorization while the token works, "Invalid tokens
/// will return 404 NOT FOUND". The revocation itself is a `DELETE` on the same path.
#[tokio::test]
async fn github_check_a_token_tells_a_dead_token_from_a_live_one() {
    let table = "dialect = \"github\"\nurl = \"{server}/applications/{client_id}/token\"\nverify = \"probe\"\n\
                 probe = { url = \"{server}/applications/{client_id}/token\" }\nclient_id = \"acme-client\"\n\
                 client_secret_env = \"CAT_SECRET\"\n";
    for (status, expected) in [
        (404, (Outcome::Revoked, verified(true, "github check a token"))),
        (200, (Outcome::StillActive, verified(false, "github check a token"))),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("DELETE"))
            .and(path("/applications/acme-client/token"))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let answer = if status == 200 {
            json(
                200,
                r#"{"id":1,"token":"","app":{"client_id":"acme-client"},"scopes":["repo"]}"#,
            )
        } else {
            json(404, r#"{"message":"Not Found"}"#)
        };
        Mock::given(method("POST"))
            .and(path("/applications/acme-client/token"))
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
        let providers = providers(table, &server.uri(), "");
        let call = providers
            .get("p")
            .unwrap()
            .revoke(&TokenValue::new(TOKEN.into()), TokenType::AccessToken)
            .await;
        assert_eq!((call.verdict.outcome, call.verdict.verification), expected, "{status}");
        let requests = server.received_requests().await.unwrap();
        let check = requests.iter().find(|r| r.method.as_str() == "POST").expect("checked");
        // Plain Basic of "acme-client:s3cret" (GitHub's Basic is not form-encoded first).
        assert_eq!(header(check, "authorization"), Some(BASIC));
        let body: serde_json::Value = serde_json::from_slice(&check.body).unwrap();
        assert_eq!(body, serde_json::json!({ "access_token": TOKEN }));
    }
}

/// Two probes that take the token as the request's authorization, each against a loopback
/// server written from the provider's page: Zendesk's "Show Self" (`GET
/// /api/v2/users/me.json`, `Authorization: Bearer <token>`; 401 "Couldn't authenticate you"
/// for a bad token) after `DELETE …/oauth/tokens/current.json`, and Twitch's "Validating
/// tokens" (`GET https://id.twitch.tv/oauth2/validate`, `Authorization: OAuth <token>`; 401
/// "invalid access token") after `POST /oauth2/revoke`.
#[tokio::test]
async fn zendesk_and_twitch_checks_take_the_token_as_authorization() {
    let zendesk = "dialect = \"zendesk\"\nurl = \"{server}/api/v2/oauth/tokens/current.json\"\nverify = \"probe\"\n\
                   probe = { url = \"{server}/api/v2/users/me.json\" }\n";
    let twitch = "dialect = \"twitch\"\nurl = \"{server}/oauth2/revoke\"\nverify = \"probe\"\n\
                  probe = { url = \"{server}/oauth2/validate\" }\nclient_id = \"acme-client\"\n";
    let cases = [
        (
            zendesk,
            "DELETE",
            204,
            "/api/v2/users/me.json",
            format!("Bearer {TOKEN}"),
            "zendesk users/me",
        ),
        (
            twitch,
            "POST",
            200,
            "/oauth2/validate",
            format!("OAuth {TOKEN}"),
            "twitch validate",
        ),
    ];
    for (table, revoke_method, revoke_status, check_path, authorization, by) in cases {
        for (status, expected) in [
            (401, (Outcome::Revoked, verified(true, by))),
            (200, (Outcome::StillActive, verified(false, by))),
        ] {
            let server = MockServer::start().await;
            Mock::given(method(revoke_method))
                .respond_with(ResponseTemplate::new(revoke_status))
                .expect(1)
                .mount(&server)
                .await;
            Mock::given(method("GET"))
                .and(path(check_path))
                .respond_with(json(status, r#"{"error":"Couldn't authenticate you"}"#))
                .expect(1)
                .mount(&server)
                .await;
            let providers = providers(table, &server.uri(), "");
            let call = providers
                .get("p")
                .unwrap()
                .revoke(&TokenValue::new(TOKEN.into()), TokenType::AccessToken)
                .await;
            assert_eq!(
                (call.verdict.outcome, call.verdict.verification),
                expected,
                "{by} {status}"
            );
            let requests = server.received_requests().await.unwrap();
            let check = requests.iter().find(|r| r.method.as_str() == "GET").expect("checked");
            assert_eq!(header(check, "authorization"), Some(authorization.as_str()), "{by}");
            assert_eq!(check.url.query(), None, "{by}");
        }
    }
}

/// Google's tokeninfo: `GET https://oauth2.googleapis.com/tokeninfo?access_token=…`; an
/// invalid token answers 400 `{"error": "invalid_token", "error_description": "Invalid
/// Value"}`, a live one 200 with its `aud`, `scope`, `expires_in`.
#[tokio::test]
async fn google_tokeninfo_tells_a_dead_token_from_a_live_one() {
    let dead = json(400, r#"{"error":"invalid_token","error_description":"Invalid Value"}"#);
    let (call, check) = revoke_then_check(
        GOOGLE,
        TokenType::AccessToken,
        ResponseTemplate::new(200),
        "/tokeninfo",
        dead,
    )
    .await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(call.verdict.verification, verified(true, "google tokeninfo"));
    let check = check.expect("tokeninfo was called");
    assert_eq!(check.method.as_str(), "GET");
    assert_eq!(check.url.query(), Some(format!("access_token={TOKEN_FORM}").as_str()));
    assert_eq!(header(&check, "authorization"), None);
    let alive = json(
        200,
        r#"{"azp":"1.apps.googleusercontent.com","aud":"1.apps.googleusercontent.com","scope":"openid","exp":"1900000000","expires_in":"3599"}"#,
    );
    let (call, _) = revoke_then_check(
        GOOGLE,
        TokenType::AccessToken,
        ResponseTemplate::new(200),
        "/tokeninfo",
        alive,
    )
    .await;
    assert_eq!(call.verdict.outcome, Outcome::StillActive);
    assert_eq!(call.verdict.verification, verified(false, "google tokeninfo"));
    // tokeninfo takes access tokens only: a refresh token settles unchecked.
    let (call, check) = revoke_then_check(
        GOOGLE,
        TokenType::RefreshToken,
        ResponseTemplate::new(200),
        "/tokeninfo",
        json(200, "{}"),
    )
    .await;
    assert_eq!(
        (call.verdict.outcome, call.verdict.verification),
        (Outcome::Revoked, None)
    );
    assert!(check.is_none());
    // An already invalid token needs no check.
    let invalid = json(400, r#"{"error":"invalid_token"}"#);
    let (call, check) = revoke_then_check(GOOGLE, TokenType::AccessToken, invalid, "/tokeninfo", json(200, "{}")).await;
    assert_eq!(
        (call.verdict.outcome, call.verdict.verification),
        (Outcome::AlreadyInvalid, None)
    );
    assert!(check.is_none());
}

/// The probe's URL carries the token in its query: when the connection to it fails, the
/// error (and every log line, and `Debug`) says so without the token, in any encoding.
#[tokio::test]
async fn a_token_in_the_probe_s_query_never_appears_in_an_error() {
    let logs = captured_logs();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_end = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let table = format!(
        "dialect = \"google\"\nurl = \"{}/revoke\"\nverify = \"probe\"\nprobe = {{ url = \"{dead_end}/tokeninfo\" }}\n",
        server.uri()
    );
    let providers = providers(&table, "", "");
    let call = providers
        .get("p")
        .unwrap()
        .revoke(&TokenValue::new(TOKEN.into()), TokenType::AccessToken)
        .await;
    assert_eq!(call.verdict.outcome, Outcome::Transient);
    assert_eq!(call.verdict.verification, None);
    let error = call.verdict.error.clone().unwrap();
    assert!(
        error.starts_with("the provider accepted the revocation (HTTP 200), but google tokeninfo could not prove it dead: connection failed"),
        "{error}"
    );
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    for shown in [error, format!("{call:?}"), format!("{providers:?}"), logged] {
        for form in [TOKEN, TOKEN_FORM, "a0Af_token"] {
            assert!(!shown.contains(form), "{form} in {shown}");
        }
    }
}

/// RFC 7662 introspection at `introspection_url`: `POST` form `token`, `token_type_hint`,
/// with the revocation's client authentication.
async fn a_live_token_keeps_its_user_from_clearing_until_introspection_says_dead(db: TestDb) {
    let server = MockServer::start().await;
    Mock::given(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(path("/introspect"))
        .respond_with(json(200, r#"{"active":true,"client_id":"acme-client","scope":"api"}"#))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/introspect"))
        .respond_with(json(200, r#"{"active":false}"#))
        .mount(&server)
        .await;
    let text = format!(
        "[database]\nurl = \"{}\"\n[retry]\nattempts = 1\ndurable_base = \"1h\"\ndurable_cap = \"1h\"\n\
         [providers.idp]\ndialect = \"rfc7009\"\nurl = \"{uri}/revoke\"\nintrospection_url = \"{uri}/introspect\"\n\
         verify = \"introspect\"\nclient_id = \"acme-client\"\nclient_secret_env = \"CAT_SECRET\"\n",
        db.url,
        uri = server.uri()
    );
    let env = [("CAT_SECRET".to_owned(), crate::catalog_wire::SECRET.to_owned())];
    let app = app_for(&db.store, &text, &env);
    let token = NewToken {
        user_id: "ursula".into(),
        provider: "idp".into(),
        token_type: TokenType::AccessToken,
        value: TokenValue::new(TOKEN.into()),
        grant_ref: None,
        expires_at: None,
    };
    insert_tokens(&db.store, &[token]).await.unwrap();
    let request = db.store.enqueue("ursula", None, None).await.unwrap().request.id;
    app.worker().drain(&CancellationToken::new()).await.unwrap();
    let row = db.store.request(request).await.unwrap().unwrap();
    assert_eq!(row.state, RequestState::Pending, "{:?}", row.last_error);
    assert!(
        row.last_error
            .unwrap()
            .contains("introspection shows the token still works")
    );
    let audit = db.store.audit_rows(Some(request), None).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, Outcome::StillActive);
    assert_eq!(
        (audit[0].verified, audit[0].verified_by.as_deref()),
        (Some(false), Some("introspection"))
    );
    assert!(!audit[0].settled);
    // When it is due again (made due now, rather than in an hour), the next claim revokes
    // again, and introspection now says dead: cleared, verified.
    exec(&db.store, "UPDATE offboarding_requests SET next_attempt_at = NULL")
        .await
        .unwrap();
    app.worker().drain(&CancellationToken::new()).await.unwrap();
    assert_eq!(
        db.store.request(request).await.unwrap().unwrap().state,
        RequestState::Cleared
    );
    let audit = db.store.audit_rows(Some(request), None).await.unwrap();
    let last = audit.last().unwrap();
    assert_eq!((last.outcome, last.settled), (Outcome::Revoked, true));
    assert_eq!(
        (last.verified, last.verified_by.as_deref()),
        (Some(true), Some("introspection"))
    );
    let introspections: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/introspect")
        .collect();
    assert_eq!(introspections.len(), 2);
    for r in introspections {
        assert_eq!(header(&r, "authorization"), Some(BASIC));
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            format!("token={TOKEN_FORM}&token_type_hint=access_token")
        );
    }
}

on_both_backends!(a_live_token_keeps_its_user_from_clearing_until_introspection_says_dead);
