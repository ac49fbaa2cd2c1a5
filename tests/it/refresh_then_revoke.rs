//! Refresh-then-revoke (issue 8 point 5), end to end on both backends: a worker, a real
//! database, and a loopback HTTP server standing in for the provider's token and revocation
//! endpoints. The requests expected are written by hand from the providers' documentation:
//! Dropbox's `POST /oauth2/token` with `grant_type=refresh_token`
//! (dropbox.com/developers/documentation/http/documentation#oauth2-token) and its
//! `auth/token/revoke` with the access token as a Bearer token; OneLogin API v1's
//! `POST /auth/oauth2/token` with JSON `{grant_type, access_token, refresh_token}`
//! (developers.onelogin.com/api-docs/1/oauth20-tokens/refresh-tokens).

use offboard::outcome::Outcome;
use offboard::storage::seed::NewToken;
use offboard::token::{TokenType, TokenValue};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestDb, app_for, on_both_backends, scalar};

const SECRET: &str = "dbx-secret/value";
const REFRESH: &str = "rt_live_0123456789";
const FRESH: &str = "sl.fresh-access-token-ABCDEF";

fn dropbox_config(db: &TestDb, server: &MockServer, extra: &str) -> String {
    format!(
        "[database]\nurl = \"{}\"\n[providers.dropbox]\ndialect = \"dropbox\"\n\
         url = \"{uri}/2/auth/token/revoke\"\nclient_id = \"app-key\"\nclient_secret_env = \"DBX_SECRET\"\n\
         refresh = {{ url = \"{uri}/oauth2/token\" }}\n{extra}\n",
        db.url,
        uri = server.uri()
    )
}

fn env() -> Vec<(String, String)> {
    vec![("DBX_SECRET".to_owned(), SECRET.to_owned())]
}

async fn seed(db: &TestDb, user: &str, provider: &str, token_type: TokenType, value: &str, grant: Option<&str>) {
    let token = NewToken {
        user_id: user.into(),
        provider: provider.into(),
        token_type,
        value: TokenValue::new(value.into()),
        grant_ref: grant.map(str::to_owned),
        expires_at: None,
    };
    offboard::storage::seed::insert_tokens(&db.store, &[token])
        .await
        .unwrap();
}

fn outcomes(rows: &[offboard::storage::AuditRow]) -> Vec<(i32, Outcome, bool)> {
    rows.iter().map(|r| (r.attempt, r.outcome, r.settled)).collect()
}

/// A Dropbox refresh token alone: exchanged for a fresh access token, which is revoked as a
/// Bearer token; two attempts audited, the user cleared, and the fresh token stored nowhere.
async fn a_dropbox_refresh_token_is_revoked_through_a_fresh_access_token(db: TestDb) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(r#"{{"access_token":"{FRESH}","token_type":"bearer","expires_in":14400}}"#),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("null", "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    seed(&db, "u1", "dropbox", TokenType::RefreshToken, REFRESH, None).await;
    db.store.enqueue("u1", None, None).await.unwrap();
    let app = app_for(&db.store, &dropbox_config(&db, &server, ""), &env());
    app.worker().drain(&CancellationToken::new()).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let token_call = &requests[0];
    assert_eq!(token_call.url.path(), "/oauth2/token");
    assert_eq!(
        token_call.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        String::from_utf8_lossy(&token_call.body),
        format!("grant_type=refresh_token&refresh_token={REFRESH}&client_id=app-key&client_secret=dbx-secret%2Fvalue")
    );
    let revoke_call = &requests[1];
    assert_eq!(revoke_call.url.path(), "/2/auth/token/revoke");
    assert_eq!(
        revoke_call.headers.get("authorization").unwrap(),
        format!("Bearer {FRESH}").as_str()
    );

    let row = db.store.clearance("u1").await.unwrap().unwrap();
    assert!(row.cleared_at.is_some(), "not cleared: {:?}", row.last_error);
    let audit = db.store.audit_rows(None, Some("u1")).await.unwrap();
    assert_eq!(
        outcomes(&audit),
        [(1, Outcome::Refreshed, false), (2, Outcome::Revoked, true)]
    );
    let text = format!("{audit:?}");
    assert!(!text.contains(FRESH) && !text.contains(REFRESH), "{text}");
    // Nothing stored anywhere holds the fresh token: not the token table, not the audit.
    let sql = format!("SELECT COUNT(*) FROM oauth_tokens WHERE token = '{FRESH}'");
    assert_eq!(scalar(&db.store, Box::leak(sql.into_boxed_str())).await, 0);
    assert_eq!(scalar(&db.store, "SELECT COUNT(*) FROM oauth_tokens").await, 1);
}

/// The token endpoint says `invalid_grant`: the refresh token is already dead, which settles
/// it, and nothing is revoked.
async fn a_refresh_token_the_token_endpoint_refuses_as_invalid_grant_is_already_invalid(db: TestDb) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            r#"{"error":"invalid_grant","error_description":"refresh token is invalid or revoked"}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    seed(&db, "u2", "dropbox", TokenType::RefreshToken, REFRESH, None).await;
    db.store.enqueue("u2", None, None).await.unwrap();
    let app = app_for(&db.store, &dropbox_config(&db, &server, ""), &env());
    app.worker().drain(&CancellationToken::new()).await.unwrap();

    let row = db.store.clearance("u2").await.unwrap().unwrap();
    assert!(row.cleared_at.is_some(), "not cleared: {:?}", row.last_error);
    let audit = db.store.audit_rows(None, Some("u2")).await.unwrap();
    assert_eq!(outcomes(&audit), [(1, Outcome::AlreadyInvalid, true)]);
    assert!(audit[0].error.as_deref().unwrap().contains("invalid_grant"));
}

/// A success answer without an access token is a glitch, never a settlement; with
/// `refresh = { enabled = false }` the refresh token is not revocable, as before.
async fn no_fresh_token_no_settlement_and_the_strategy_can_be_switched_off(db: TestDb) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(r#"{"token_type":"bearer"}"#, "application/json"))
        .mount(&server)
        .await;
    seed(&db, "u3", "dropbox", TokenType::RefreshToken, REFRESH, None).await;
    db.store.enqueue("u3", None, None).await.unwrap();
    let fast = "[worker]\nmax_attempts = 1\n[retry]\nattempts = 1\n";
    let text = format!("{fast}{}", dropbox_config(&db, &server, ""));
    let app = app_for(&db.store, &text, &env());
    app.worker().drain(&CancellationToken::new()).await.unwrap();
    let row = db.store.clearance("u3").await.unwrap().unwrap();
    assert!(row.cleared_at.is_none());
    let audit = db.store.audit_rows(None, Some("u3")).await.unwrap();
    assert!(audit.iter().all(|r| !r.settled), "{audit:?}");
    assert!(
        audit[0].error.as_deref().unwrap().contains("without an access token"),
        "{:?}",
        audit[0].error
    );

    seed(&db, "u4", "dropbox", TokenType::RefreshToken, "rt-other", None).await;
    db.store.enqueue("u4", None, None).await.unwrap();
    let text = dropbox_config(&db, &server, "").replace(
        &format!("refresh = {{ url = \"{}/oauth2/token\" }}", server.uri()),
        "refresh = { enabled = false }",
    );
    // Nothing sends the secret any more, so configuring one is refused: drop it.
    let text = text.replace("client_secret_env = \"DBX_SECRET\"\n", "");
    let app = app_for(&db.store, &text, &env());
    app.worker().drain(&CancellationToken::new()).await.unwrap();
    let audit = db.store.audit_rows(None, Some("u4")).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, Outcome::NotRevocable);
}

/// OneLogin API v1: a pair whose access token has expired (answered `invalid_token`, as
/// OneLogin's OIDC endpoint does) gives no evidence that its refresh
/// token died; with refresh-then-revoke switched on, the refresh token (with the expired
/// access token, as the token endpoint wants both) buys a fresh pair, whose access token is
/// revoked, killing the refresh token with it.
async fn an_expired_onelogin_pair_is_revoked_through_a_refresh(db: TestDb) {
    let server = MockServer::start().await;
    let expired = "ol-expired-access";
    Mock::given(method("POST"))
        .and(path("/auth/oauth2/revoke"))
        .and(wiremock::matchers::body_string_contains(expired))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            r#"{"error":"invalid_token","error_description":"token expired"}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(
                r#"{{"status":{{"error":false,"code":200,"type":"success","message":"Success"}},
                    "data":[{{"access_token":"{FRESH}","refresh_token":"rt-next","expires_in":36000}}]}}"#
            ),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/oauth2/revoke"))
        .and(wiremock::matchers::body_string_contains(FRESH))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"status":{"error":false,"code":200,"type":"success","message":"Success"}}"#,
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    seed(&db, "u5", "onelogin", TokenType::AccessToken, expired, Some("g1")).await;
    seed(&db, "u5", "onelogin", TokenType::RefreshToken, REFRESH, Some("g1")).await;
    db.store.enqueue("u5", None, None).await.unwrap();
    let text = format!(
        "[database]\nurl = \"{}\"\n[providers.onelogin]\ndialect = \"onelogin\"\n\
         url = \"{uri}/auth/oauth2/revoke\"\nclient_id = \"ol-client\"\nclient_secret_env = \"DBX_SECRET\"\n\
         refresh = {{ enabled = true, url = \"{uri}/auth/oauth2/token\" }}\n",
        db.url,
        uri = server.uri()
    );
    let app = app_for(&db.store, &text, &env());
    app.worker().drain(&CancellationToken::new()).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let token_call = requests
        .iter()
        .find(|r| r.url.path() == "/auth/oauth2/token")
        .expect("a token call");
    let body: serde_json::Value = serde_json::from_slice(&token_call.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"grant_type": "refresh_token", "access_token": expired, "refresh_token": REFRESH})
    );
    let row = db.store.clearance("u5").await.unwrap().unwrap();
    assert!(row.cleared_at.is_some(), "not cleared: {:?}", row.last_error);
    let audit = db.store.audit_rows(None, Some("u5")).await.unwrap();
    let refresh_rows: Vec<(i32, Outcome, bool)> = outcomes(&audit)
        .into_iter()
        .zip(&audit)
        .filter(|(_, r)| r.token_type == "refresh_token")
        .map(|(o, _)| o)
        .collect();
    assert_eq!(
        refresh_rows,
        [(1, Outcome::Refreshed, false), (2, Outcome::Revoked, true)]
    );
}

on_both_backends!(
    a_dropbox_refresh_token_is_revoked_through_a_fresh_access_token,
    a_refresh_token_the_token_endpoint_refuses_as_invalid_grant_is_already_invalid,
    no_fresh_token_no_settlement_and_the_strategy_can_be_switched_off,
    an_expired_onelogin_pair_is_revoked_through_a_refresh,
);
