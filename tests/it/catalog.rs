//! The provider catalogue and the definition format, from outside: the wire format of the
//! entries added as data (Google, Slack), with the expected request written from each
//! provider's documentation and not from the catalogue; a provider defined inline in a
//! config file and revoked through by the `offboard` binary; the simulator serving the new
//! entries end to end; and `offboard providers`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chrono::Utc;
use offboard::config::Config;
use offboard::outcome::{Outcome, RequestState};
use offboard::provider::{Call, Providers};
use offboard::simulate::{SimProvider, Simulator};
use offboard::storage::seed::{NewToken, insert_tokens};
use offboard::token::{TokenType, TokenValue};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestDb, app_for, config_toml, on_both_backends, open_store};
use offboard::provider::dialect::Dialect;

pub(crate) const TOKEN: &str = "ya29.a0Af_token/with+chars";

/// Provider `p` from `table` (the keys of `[providers.p]`), at `server`.
pub(crate) fn provider_at(server: &MockServer, table: &str) -> Providers {
    let text = format!("[providers.p]\n{}\n", table.replace("{server}", &server.uri()));
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).expect("config");
    Providers::from_config(&config, &|_| None).expect("providers")
}

async fn answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(template).mount(&server).await;
    server
}

/// Revokes `TOKEN` through provider `p` at a server answering `template`; returns the
/// result and the request the server saw.
pub(crate) async fn revoke(
    table: &str,
    token_type: TokenType,
    template: ResponseTemplate,
) -> (Call, wiremock::Request) {
    let server = answering(template).await;
    let providers = provider_at(&server, table);
    let call = providers
        .get("p")
        .unwrap()
        .revoke(&TokenValue::new(TOKEN.into()), token_type)
        .await;
    let request = server.received_requests().await.unwrap().pop().expect("one request");
    (call, request)
}

pub(crate) fn header<'a>(request: &'a wiremock::Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn json(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.as_bytes().to_vec(), "application/json")
}

const GOOGLE: &str = "dialect = \"google\"\nurl = \"{server}/revoke\"";

/// developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke: `curl -d
/// -X -POST --header "Content-type:application/x-www-form-urlencoded"
/// https://oauth2.googleapis.com/revoke?token={token}`, or the token as a form field; no
/// client credentials.
#[tokio::test]
async fn google_gets_the_token_in_a_form_and_no_client_credentials() {
    let (call, request) = revoke(GOOGLE, TokenType::RefreshToken, ResponseTemplate::new(200)).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/revoke");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&request, "authorization"), None);
    assert_eq!(
        String::from_utf8(request.body).unwrap(),
        "token=ya29.a0Af_token%2Fwith%2Bchars"
    );
}

#[tokio::test]
async fn google_answers_are_classified() {
    for (status, body, expected) in [
        (200, "", Outcome::Revoked),
        (
            400,
            r#"{"error":"invalid_token","error_description":"Token expired or revoked"}"#,
            Outcome::AlreadyInvalid,
        ),
        (
            400,
            r#"{"error":"invalid_request","error_description":"Bad Request"}"#,
            Outcome::Failed,
        ),
        (429, "", Outcome::Transient),
        (503, "", Outcome::Transient),
    ] {
        let (call, _) = revoke(GOOGLE, TokenType::AccessToken, json(status, body)).await;
        assert_eq!(call.verdict.outcome, expected, "{status} {body}");
        assert_eq!(call.verdict.http_status, Some(status));
    }
}

/// The entry's URL is Google's own unless a provider overrides it, and a Google provider
/// needs no client id; given a client secret, it is refused, since nothing would send it.
#[test]
fn google_needs_no_url_or_credentials_and_refuses_a_secret() {
    let config = Config::from_toml("[providers.g]\ndialect = \"google\"\n", Path::new("test"), Vec::new()).unwrap();
    assert!(Providers::from_config(&config, &|_| None).is_ok());
    let err = Config::from_toml(
        "[providers.g]\ndialect = \"google\"\nclient_secret_env = \"G_SECRET\"\n",
        Path::new("test"),
        Vec::new(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "providers.g.client_secret_env: the google dialect sends no client secret (auth = none); remove this key"
    );
}

const SLACK: &str = "dialect = \"slack\"\nurl = \"{server}/api/auth.revoke\"";

/// api.slack.com/methods/auth.revoke: "Tokens should be passed as an HTTP Authorization
/// header"; the token revokes itself, so nothing else is sent.
#[tokio::test]
async fn slack_gets_the_token_as_a_bearer_token_and_no_body() {
    let ok = json(200, r#"{"ok":true,"revoked":true}"#);
    let (call, request) = revoke(SLACK, TokenType::AccessToken, ok).await;
    assert_eq!(call.verdict.outcome, Outcome::Revoked);
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/api/auth.revoke");
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(header(&request, "content-type"), None);
    assert!(request.body.is_empty());
}

/// Slack answers HTTP 200 to everything; the body says what happened.
#[tokio::test]
async fn slack_answers_are_classified_by_their_body() {
    for (status, body, expected) in [
        (200, r#"{"ok":true,"revoked":true}"#, Outcome::Revoked),
        (200, r#"{"ok":false,"error":"token_revoked"}"#, Outcome::AlreadyInvalid),
        (
            200,
            r#"{"ok":false,"error":"account_inactive"}"#,
            Outcome::AlreadyInvalid,
        ),
        // Also an IP address outside the allowed ranges: not proof the token is dead.
        (200, r#"{"ok":false,"error":"invalid_auth"}"#, Outcome::Failed),
        (200, r#"{"ok":false,"error":"not_authed"}"#, Outcome::Failed),
        (200, r#"{"revoked":true}"#, Outcome::Transient),
        (200, "", Outcome::Transient),
        (429, "", Outcome::Transient),
    ] {
        let (call, _) = revoke(SLACK, TokenType::AccessToken, json(status, body)).await;
        assert_eq!(call.verdict.outcome, expected, "{status} {body}");
        if expected != Outcome::Revoked {
            assert!(call.verdict.error.is_some(), "{body}");
        }
    }
}

#[tokio::test]
async fn slack_pauses_the_provider_for_its_retry_after() {
    let template = ResponseTemplate::new(429).insert_header("retry-after", "30");
    let (call, _) = revoke(SLACK, TokenType::AccessToken, template).await;
    assert_eq!(call.verdict.retry_after, Some(Duration::from_secs(30)));
}

/// An RFC 7009 server with client_secret_basic, written out key by key with no dialect: the
/// shape needs no Rust and no catalogue entry.
fn inline_provider(url: &str, secret_var: &str) -> String {
    format!(
        "[providers.acme]\n\
         url = \"{url}\"\n\
         method = \"POST\"\n\
         body = \"form\"\n\
         auth = \"client_secret_basic\"\n\
         token_field = \"token\"\n\
         token_type_hint_field = \"token_type_hint\"\n\
         revocable = [\"access_token\", \"refresh_token\"]\n\
         success = {{ status = [200] }}\n\
         source = {{ url = \"https://www.rfc-editor.org/rfc/rfc7009\" }}\n\
         client_id = \"acme-client\"\n\
         client_secret_env = \"{secret_var}\"\n"
    )
}

fn offboard(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_offboard"));
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("OFFBOARD_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Issue 8: adding a provider of a standard shape needs no Rust. One defined in a config
/// file alone (no dialect) revokes a user's tokens at the simulator's RFC 7009 endpoint,
/// and the user clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_defined_inline_in_a_config_file_revokes_tokens() {
    let mut acme = SimProvider::new("acme", Dialect::Rfc7009);
    acme.client_id = "acme-client".into();
    let secret = acme.client_secret.clone().unwrap();
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), vec![acme])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("offboard.db").display());
    let config = dir.path().join("offboard.toml");
    let text = format!(
        "[database]\nurl = \"{db_url}\"\n{}",
        inline_provider(&sim.url("acme"), "ACME_INLINE_SECRET")
    );
    std::fs::write(&config, text).unwrap();
    let env = [("ACME_INLINE_SECRET", secret.as_str())];

    let check = offboard(&config, &["check-config"], &env);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(said.contains("provider acme: inline at http://127.0.0.1:"), "{said}");

    let store = open_store(&db_url).await;
    let access = sim.issue("acme", TokenType::AccessToken, None);
    let refresh = sim.issue("acme", TokenType::RefreshToken, None);
    let tokens: Vec<NewToken> = [(TokenType::AccessToken, &access), (TokenType::RefreshToken, &refresh)]
        .into_iter()
        .map(|(token_type, value)| NewToken {
            user_id: "u1".into(),
            provider: "acme".into(),
            token_type,
            value: TokenValue::new(value.clone()),
            grant_ref: None,
            expires_at: Some(Utc::now() + chrono::Duration::days(30)),
        })
        .collect();
    insert_tokens(&store, &tokens).await.unwrap();
    assert!(offboard(&config, &["enqueue", "u1"], &env).status.success());
    let once = offboard(&config, &["once"], &env);
    assert!(once.status.success(), "{}", String::from_utf8_lossy(&once.stderr));
    let gate = offboard(&config, &["gate", "u1"], &env);
    assert_eq!(gate.status.code(), Some(0), "{}", String::from_utf8_lossy(&gate.stdout));
    assert_eq!(sim.is_revoked(&access), Some(true));
    assert_eq!(sim.is_revoked(&refresh), Some(true));
    let rows = store.audit_rows(None, Some("u1")).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.outcome == Outcome::Revoked), "{rows:?}");
}

/// A definition written inline is read as strictly as a catalogue entry, every error
/// naming its key.
#[test]
fn an_inline_definition_is_checked_key_by_key() {
    let good = inline_provider("https://auth.acme.example/revoke", "S");
    let parse = |text: &str| Config::from_toml(text, Path::new("test"), Vec::new()).map(|_| ());
    assert!(parse(&good).is_ok());
    for (from, to, expected) in [
        (
            "method = \"POST\"\n",
            "",
            "providers.acme.method: must be set, as a provider with no dialect has none",
        ),
        (
            "url = \"https://auth.acme.example/revoke\"",
            "url = \"https://{tenant}.acme.example/revoke\"",
            "providers.acme.tenant: must be set: the url of a provider with no dialect uses {tenant}",
        ),
        (
            "token_field",
            "tokn_field",
            "providers.acme.tokn_field: unknown field `tokn_field`: not a provider key, and no template \
             of a provider with no dialect uses {tokn_field} (did you mean token_field?)",
        ),
        (
            "client_secret_env = \"S\"\n",
            "",
            "providers.acme.client_secret_env: this provider needs a client secret: set client_secret_env \
             or client_secret_file",
        ),
    ] {
        let text = good.replace(from, to);
        assert_ne!(text, good, "{from}");
        let err = parse(&text).unwrap_err().to_string();
        assert_eq!(err, expected);
    }
}

#[test]
fn an_unknown_dialect_lists_the_close_names() {
    let err = Config::from_toml("[providers.x]\ndialect = \"onelgin\"\n", Path::new("test"), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "providers.x.dialect: unknown variant `onelgin`: the catalogue has no such entry; did you mean onelogin?"
        ),
        "{err}"
    );
}

/// A catalogue entry with a tenant in its URL takes the tenant from the provider's key, and
/// says which key is missing without it.
#[test]
fn a_catalogue_url_template_is_filled_from_the_providers_keys() {
    let base = "[providers.ol]\ndialect = \"onelogin\"\nclient_id = \"c\"\nclient_secret_env = \"S\"\n";
    let err = Config::from_toml(base, Path::new("test"), Vec::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "providers.ol.subdomain: must be set: the url of the onelogin entry uses {subdomain}"
    );
    let config = Config::from_toml(&format!("{base}subdomain = \"acme\"\n"), Path::new("test"), Vec::new()).unwrap();
    let providers = Providers::from_config(&config, &|_| Some("s".into())).unwrap();
    let shown = format!("{:?}", providers.get("ol").unwrap());
    assert!(
        shown.contains("https://acme.onelogin.com/auth/oauth2/revoke"),
        "{shown}"
    );
}

/// Google and Slack end to end against the simulator: Google's access token takes its
/// refresh token with it (so the refresh token's own call finds it already invalid), Slack's
/// access token is revoked, and Slack's refresh token, which has no documented revocation,
/// is not revocable and, expiring within the policy's bound, settled so.
async fn google_and_slack_clear_against_the_simulator(db: TestDb) {
    let sim = Simulator::start(
        "127.0.0.1:0".parse().unwrap(),
        vec![
            SimProvider::new("google", Dialect::Google),
            SimProvider::new("slack", Dialect::Slack),
        ],
    )
    .await
    .unwrap();
    let (text, env) = config_toml(&db.url, &sim, "");
    let app = app_for(&db.store, &text, &env);
    let g_access = sim.issue("google", TokenType::AccessToken, None);
    let g_refresh = sim.issue("google", TokenType::RefreshToken, Some(&g_access));
    let s_access = sim.issue("slack", TokenType::AccessToken, None);
    let s_refresh = sim.issue("slack", TokenType::RefreshToken, None);
    let soon = Some(Utc::now() + chrono::Duration::hours(1));
    let token = |provider: &str, token_type, value: &str| NewToken {
        user_id: "u1".into(),
        provider: provider.into(),
        token_type,
        value: TokenValue::new(value.to_owned()),
        grant_ref: None,
        expires_at: soon,
    };
    insert_tokens(
        &db.store,
        &[
            token("google", TokenType::AccessToken, &g_access),
            token("google", TokenType::RefreshToken, &g_refresh),
            token("slack", TokenType::AccessToken, &s_access),
            token("slack", TokenType::RefreshToken, &s_refresh),
        ],
    )
    .await
    .unwrap();
    db.store.enqueue("u1", None, None).await.unwrap();
    for _ in 0..50 {
        app.worker().drain(&CancellationToken::new()).await.unwrap();
        let state = db.store.clearance("u1").await.unwrap().unwrap().state;
        if !matches!(state, RequestState::Pending | RequestState::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let request = db.store.clearance("u1").await.unwrap().unwrap();
    assert_eq!(request.state, RequestState::Cleared, "{:?}", request.last_error);
    for value in [&g_access, &g_refresh, &s_access] {
        assert_eq!(sim.is_revoked(value), Some(true));
    }
    assert_eq!(sim.calls_for(&s_refresh), 0, "a Slack refresh token was sent");
    let rows = db.store.audit_rows(None, Some("u1")).await.unwrap();
    let outcome = |provider: &str, ty: &str| {
        let mut found: Vec<Outcome> = rows
            .iter()
            .filter(|r| r.provider == provider && r.token_type == ty)
            .map(|r| r.outcome)
            .collect();
        found.sort_by_key(|o| o.to_string());
        found
    };
    assert_eq!(outcome("slack", "access_token"), [Outcome::Revoked]);
    assert_eq!(outcome("slack", "refresh_token"), [Outcome::NotRevocable]);
    let google: Vec<Outcome> = [outcome("google", "access_token"), outcome("google", "refresh_token")].concat();
    assert!(google.contains(&Outcome::Revoked), "{google:?}");
    assert!(
        google
            .iter()
            .all(|o| matches!(o, Outcome::Revoked | Outcome::AlreadyInvalid)),
        "{google:?}"
    );
}

on_both_backends!(google_and_slack_clear_against_the_simulator);

#[test]
fn offboard_providers_lists_the_catalogue_without_a_config() {
    let missing = Path::new("/nonexistent/offboard.toml");
    let out = offboard(missing, &["providers"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ["rfc7009", "stitch", "moov", "onelogin", "auth0", "google", "slack"] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing from:\n{text}"
        );
    }
    let slack = text.lines().find(|l| l.starts_with("slack ")).unwrap();
    assert!(slack.contains("access_token (refresh_token: not revocable)"), "{slack}");
    assert!(slack.contains("https://api.slack.com/methods/auth.revoke"), "{slack}");
}

#[test]
fn offboard_providers_show_prints_the_entry_and_its_source() {
    let missing = Path::new("/nonexistent/offboard.toml");
    let out = offboard(missing, &["providers", "show", "moov"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let entry: toml::Table = text.parse().expect("TOML");
    assert_eq!(entry["extra_headers"]["x-moov-version"].as_str(), Some("{api_version}"));
    assert!(
        text.contains("# Written from: https://docs.moov.io/api/authentication/access-tokens/revoke"),
        "{text}"
    );
    let out = offboard(missing, &["providers", "show", "slak"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean slack?"), "{err}");
}
