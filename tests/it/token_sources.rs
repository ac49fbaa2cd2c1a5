//! Issue 9: tokens where the application keeps them (`[[tokens.source]]`), end to end on both
//! backends against the simulator: side-by-side columns, a JSON column, several sources for
//! one user, offboard's own settlement table, Fernet and AES-256-GCM columns, and the
//! mapping errors that stop start-up.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use offboard::app::App;
use offboard::config::Config;
use offboard::outcome::RequestState;
use offboard::provider::dialect::Dialect;
use offboard::simulate::{Behaviour, SimProvider, Simulator};
use offboard::token::TokenType::{AccessToken, RefreshToken};

use crate::end_to_end::{Fixture, provider};
use crate::helpers::{TestDb, config_toml, exec_built, on_both_backends};

pub(crate) fn is_pg(db: &TestDb) -> bool {
    db.url.starts_with("postgres")
}

/// `CREATE TABLE name (id …, columns)`, with the id and time types of the backend; `{ts}`
/// in `columns` is the time type, `{json}` the JSON type.
pub(crate) async fn create(db: &TestDb, name: &str, columns: &str) {
    let (id, ts, json) = if is_pg(db) {
        ("id BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ", "JSONB")
    } else {
        ("id INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "TEXT")
    };
    let columns = columns.replace("{ts}", ts).replace("{json}", json);
    exec_built(&db.store, format!("CREATE TABLE {name} ({id}, {columns})"))
        .await
        .expect("create table");
}

pub(crate) async fn sql(f: &Fixture, text: String) {
    exec_built(f.store(), text).await.expect("statement");
}

/// A fixture whose config adds `sources` (and `env` for keys).
pub(crate) async fn fixture(db: TestDb, providers: Vec<SimProvider>, sources: &str, env: &[(&str, &str)]) -> Fixture {
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), providers)
        .await
        .unwrap();
    let (text, mut all) = config_toml(
        &db.url,
        &sim,
        &format!(
            "[worker]\nmax_attempts = 3\n[retry]\nattempts = 1\nbase = \"10ms\"\ncap = \"20ms\"\ndurable_base = \"10ms\"\ndurable_cap = \"20ms\"\n{sources}"
        ),
    );
    all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Fixture::with_config(db, sim, text, all)
}

pub(crate) fn acme() -> Vec<SimProvider> {
    vec![SimProvider::new("acme", Dialect::Rfc7009)]
}

/// Rows of a table as text, to show it untouched.
pub(crate) async fn dump(f: &Fixture, table: &str, columns: &str) -> Vec<String> {
    let order = if table == "offboard_token_settlements" {
        "1"
    } else {
        "id"
    };
    let text = format!("SELECT {columns} FROM {table} ORDER BY {order}");
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    offboard::storage::seed::text_rows(f.store(), leaked)
        .await
        .expect("dump")
}

/// One row per connection, the access and the refresh token side by side: two sources on one
/// table, with constant types and their own `revoked_at` columns.
async fn side_by_side_columns_are_two_sources(db: TestDb) {
    create(
        &db,
        "identities",
        "user_ref TEXT, access_token TEXT, refresh_token TEXT, access_revoked_at {ts}, refresh_revoked_at {ts}",
    )
    .await;
    let sources = r#"
[[tokens.source]]
number = 1
table = "identities"
user_id = "user_ref"
provider_value = "acme"
token_type_value = "access_token"
value = "access_token"
revoked_at = "access_revoked_at"

[[tokens.source]]
number = 2
table = "identities"
user_id = "user_ref"
provider_value = "acme"
token_type_value = "refresh_token"
value = "refresh_token"
revoked_at = "refresh_revoked_at"
"#;
    let f = fixture(db, acme(), sources, &[]).await;
    let access = f.sim.issue("acme", AccessToken, None);
    let refresh = f.sim.issue("acme", RefreshToken, None);
    let other = f.sim.issue("acme", AccessToken, None);
    sql(&f, format!("INSERT INTO identities (user_ref, access_token, refresh_token) VALUES ('u1', '{access}', '{refresh}'), ('u2', '{other}', NULL)")).await;
    f.enqueue("u1").await;
    f.drain_until_settled().await;

    assert_eq!(f.state("u1").await, RequestState::Cleared);
    assert_eq!(f.sim.is_revoked(&access), Some(true));
    assert_eq!(f.sim.is_revoked(&refresh), Some(true));
    assert_eq!(f.sim.is_revoked(&other), Some(false), "another user's token was sent");
    let set = dump(
        &f,
        "identities",
        "CAST(access_revoked_at IS NOT NULL AS TEXT) || ',' || CAST(refresh_revoked_at IS NOT NULL AS TEXT)",
    )
    .await;
    assert!(!set[0].contains("0") && !set[0].contains("false"), "{set:?}");
    let audit = f.store().audit_rows(None, Some("u1")).await.unwrap();
    let mut ids: Vec<i64> = audit.iter().map(|r| r.token_id).collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![(1 << 40) + 1, (2 << 40) + 1],
        "ids are number × 2^40 + row id"
    );
}

/// Invariants 1 and 3 on a mapped source settled in offboard's own table: a value rotated
/// in place after its revocation is not settled by it (the next request sends the new
/// value, and only that one), and a settled value is never sent again.
async fn a_value_rotated_in_place_in_a_mapped_source_is_sent_again(db: TestDb) {
    create(&db, "connections", "owner TEXT, token TEXT").await;
    let sources = r#"
[[tokens.source]]
number = 3
table = "connections"
user_id = "owner"
provider_value = "acme"
token_type_value = "refresh_token"
value = "token"
settlement = "offboard"
"#;
    let f = fixture(db, acme(), sources, &[]).await;
    let first = f.sim.issue("acme", RefreshToken, None);
    sql(
        &f,
        format!("INSERT INTO connections (owner, token) VALUES ('u7', '{first}')"),
    )
    .await;
    f.enqueue("u7").await;
    f.drain_until_settled().await;
    assert_eq!(f.state("u7").await, RequestState::Cleared);
    assert_eq!(f.sim.is_revoked(&first), Some(true));

    // The application reconnects the user: a new value in the same row.
    let second = f.sim.issue("acme", RefreshToken, None);
    sql(
        &f,
        format!("UPDATE connections SET token = '{second}' WHERE owner = 'u7'"),
    )
    .await;
    f.enqueue("u7").await;
    f.drain_until_settled().await;
    assert_eq!(f.state("u7").await, RequestState::Cleared);
    assert_eq!(f.sim.is_revoked(&second), Some(true), "the rotated value was not sent");
    let audit = f.store().audit_rows(None, Some("u7")).await.unwrap();
    let sent: Vec<&str> = audit.iter().map(|r| r.token_fingerprint.as_str()).collect();
    let first_fp = offboard::token::TokenValue::new(first.clone()).fingerprint();
    let second_fp = offboard::token::TokenValue::new(second.clone()).fingerprint();
    assert_eq!(
        sent,
        [first_fp.as_str(), second_fp.as_str()],
        "each value sent once, the settled one never again"
    );
}

/// python-social-auth: tokens inside a JSON column, the application's table left untouched
/// (settlement = "offboard"), its user id an integer.
async fn a_json_column_settles_in_offboards_own_table(db: TestDb) {
    create(
        &db,
        "social_auth_usersocialauth",
        "user_id INTEGER, provider TEXT, extra_data {json}",
    )
    .await;
    let sources = r#"
[[tokens.source]]
number = 1
name = "social-access"
table = "social_auth_usersocialauth"
provider = "provider"
token_type_value = "access_token"
value_json = { column = "extra_data", path = "/access_token" }
settlement = "offboard"

[[tokens.source]]
number = 2
name = "social-refresh"
table = "social_auth_usersocialauth"
provider = "provider"
token_type_value = "refresh_token"
value_json = { column = "extra_data", path = "/refresh_token" }
settlement = "offboard"
"#;
    let f = fixture(db, acme(), sources, &[]).await;
    let access = f.sim.issue("acme", AccessToken, None);
    let refresh = f.sim.issue("acme", RefreshToken, None);
    sql(&f, format!("INSERT INTO social_auth_usersocialauth (user_id, provider, extra_data) VALUES (42, 'acme', '{{\"access_token\": \"{access}\", \"refresh_token\": \"{refresh}\", \"auth_time\": 1}}')")).await;
    let before = dump(
        &f,
        "social_auth_usersocialauth",
        "CAST(user_id AS TEXT) || provider || CAST(extra_data AS TEXT)",
    )
    .await;
    f.enqueue("42").await;
    f.drain_until_settled().await;

    assert_eq!(f.state("42").await, RequestState::Cleared);
    assert_eq!(f.sim.is_revoked(&access), Some(true));
    assert_eq!(f.sim.is_revoked(&refresh), Some(true));
    let after = dump(
        &f,
        "social_auth_usersocialauth",
        "CAST(user_id AS TEXT) || provider || CAST(extra_data AS TEXT)",
    )
    .await;
    assert_eq!(before, after, "the application's table was changed");
    let settled = dump(
        &f,
        "offboard_token_settlements",
        "source || ':' || CAST(token_key AS TEXT)",
    )
    .await;
    let mut settled = settled;
    settled.sort();
    assert_eq!(
        settled,
        vec![
            format!("social-access:{}", (1i64 << 40) + 1),
            format!("social-refresh:{}", (2i64 << 40) + 1)
        ]
    );
}

/// Two sources for one user: while one source's provider refuses, the user is not cleared,
/// though the other source's token is revoked.
async fn every_source_must_settle_before_clearance(db: TestDb) {
    create(&db, "github_tokens", "owner TEXT, token TEXT").await;
    let mut broken = SimProvider::new("broken", Dialect::Rfc7009);
    broken.behaviour.always_status = Some(400);
    let sources = r#"
[[tokens.source]]
number = 0
table = "oauth_tokens"
provider = "provider"
token_type = "token_type"
value = "token"
revoked_at = "revoked_at"

[[tokens.source]]
number = 7
table = "github_tokens"
user_id = "owner"
provider_value = "broken"
token_type_value = "access_token"
value = "token"
settlement = "offboard"
"#;
    let f = fixture(
        db,
        vec![SimProvider::new("acme", Dialect::Rfc7009), broken],
        sources,
        &[],
    )
    .await;
    let good = f.seed("u1", "acme", AccessToken).await;
    let bad = f.sim.issue("broken", AccessToken, None);
    sql(
        &f,
        format!("INSERT INTO github_tokens (owner, token) VALUES ('u1', '{bad}')"),
    )
    .await;
    f.enqueue("u1").await;
    f.drain_until_settled().await;

    assert_eq!(f.sim.is_revoked(&good.value), Some(true));
    assert_eq!(f.sim.is_revoked(&bad), Some(false));
    let row = f.latest("u1").await;
    assert_eq!(row.state, RequestState::Failed, "{row:?}");
    assert!(row.cleared_at.is_none());
    assert!(
        row.last_error
            .unwrap_or_default()
            .contains(&format!("token {}", (7i64 << 40) + 1))
    );
}

/// The clearing transaction's re-check reads every source: a token inserted into the
/// second source while the run is under way keeps the request from clearing.
async fn the_clearance_recheck_covers_every_source(db: TestDb) {
    create(&db, "more_tokens", "user_id TEXT, token TEXT").await;
    let slow = provider(
        "slow",
        Dialect::Rfc7009,
        Behaviour {
            latency: Duration::from_millis(300),
            ..Behaviour::default()
        },
    );
    let sources = r#"
[[tokens.source]]
number = 0
table = "oauth_tokens"
provider = "provider"
token_type = "token_type"
value = "token"
revoked_at = "revoked_at"

[[tokens.source]]
number = 3
table = "more_tokens"
provider_value = "slow"
token_type_value = "refresh_token"
value = "token"
settlement = "offboard"
"#;
    let f = fixture(db, vec![slow], sources, &[]).await;
    f.seed("u1", "slow", AccessToken).await;
    f.enqueue("u1").await;
    let late = f.sim.issue("slow", RefreshToken, None);
    let (first, ()) = tokio::join!(f.drain(), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sql(
            &f,
            format!("INSERT INTO more_tokens (user_id, token) VALUES ('u1', '{late}')"),
        )
        .await;
    });
    // The first run ended with the late token unsettled: not cleared, sent back.
    assert_eq!(first.retrying, 1, "{first:?}");
    f.drain_until_settled().await;
    assert_eq!(f.state("u1").await, RequestState::Cleared);
    assert_eq!(f.sim.is_revoked(&late), Some(true));
}

/// Ciphertexts: Fernet (as Python's `cryptography` writes them) and AES-256-GCM
/// (`nonce ‖ ciphertext ‖ tag`, base64), each decrypted in memory; the stored value is what
/// settlement compares, and no log line holds a plaintext, a ciphertext or a key.
async fn encrypted_columns_are_decrypted_in_memory(db: TestDb) {
    use aes_gcm::aead::{Aead, KeyInit};
    let logs = crate::helpers::captured_logs();
    create(&db, "fernet_tokens", "user_id TEXT, token TEXT, revoked_at {ts}").await;
    create(&db, "gcm_tokens", "user_id TEXT, token TEXT, revoked_at {ts}").await;
    let fernet_key = fernet::Fernet::generate_key();
    let gcm_key = [7u8; 32];
    let gcm_key_b64 = base64::engine::general_purpose::STANDARD.encode(gcm_key);
    let sources = r#"
[[tokens.source]]
number = 1
table = "fernet_tokens"
provider_value = "acme"
token_type_value = "refresh_token"
value = "token"
revoked_at = "revoked_at"
encryption = { scheme = "fernet", key_env = "TEST_FERNET_KEY" }

[[tokens.source]]
number = 2
table = "gcm_tokens"
provider_value = "acme"
token_type_value = "access_token"
value = "token"
revoked_at = "revoked_at"
encryption = { scheme = "aes256gcm", key_env = "TEST_GCM_KEY" }
"#;
    let f = fixture(
        db,
        acme(),
        sources,
        &[("TEST_FERNET_KEY", &fernet_key), ("TEST_GCM_KEY", &gcm_key_b64)],
    )
    .await;
    let refresh = f.sim.issue("acme", RefreshToken, None);
    let access = f.sim.issue("acme", AccessToken, None);
    let fernet_ct = fernet::Fernet::new(&fernet_key).unwrap().encrypt(refresh.as_bytes());
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&gcm_key).unwrap();
    let nonce = [3u8; 12];
    let mut blob = nonce.to_vec();
    blob.extend(cipher.encrypt((&nonce).into(), access.as_bytes()).unwrap());
    let gcm_ct = base64::engine::general_purpose::STANDARD.encode(blob);
    sql(
        &f,
        format!("INSERT INTO fernet_tokens (user_id, token) VALUES ('u1', '{fernet_ct}')"),
    )
    .await;
    sql(
        &f,
        format!("INSERT INTO gcm_tokens (user_id, token) VALUES ('u1', '{gcm_ct}')"),
    )
    .await;
    // A second user whose value is not a Fernet token of this key: its request fails,
    // naming the token and the reason, never the value.
    sql(
        &f,
        "INSERT INTO fernet_tokens (user_id, token) VALUES ('u2', 'gAAAAABnot-a-real-token')".into(),
    )
    .await;
    // The log from here on: the test's own INSERTs above are logged by sqlx with their text.
    let start = logs.lock().unwrap().len();
    f.enqueue("u1").await;
    f.enqueue("u2").await;
    f.drain_until_settled().await;

    assert_eq!(f.state("u1").await, RequestState::Cleared);
    assert_eq!(f.sim.is_revoked(&refresh), Some(true));
    assert_eq!(f.sim.is_revoked(&access), Some(true));
    let set = dump(&f, "fernet_tokens", "CAST(revoked_at IS NOT NULL AS TEXT)").await;
    assert!(set[0] == "1" || set[0] == "true", "{set:?}");
    let u2 = f.latest("u2").await;
    assert_eq!(u2.state, RequestState::Failed);
    let reason = u2.last_error.unwrap_or_default();
    assert!(
        reason.contains(&format!("token row {}", (1i64 << 40) + 2)) && reason.contains("cannot be decrypted"),
        "{reason}"
    );
    assert!(!reason.contains("gAAAAAB"), "{reason}");

    let audit = f.store().audit_rows(None, None).await.unwrap();
    let audit_text = format!("{audit:?}");
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()[start..]).into_owned();
    let names = ["refresh", "access", "fernet_ct", "gcm_ct", "fernet_key", "gcm_key"];
    for (secret, name) in [&refresh, &access, &fernet_ct, &gcm_ct, &fernet_key, &gcm_key_b64]
        .into_iter()
        .zip(names)
    {
        if let Some(at) = logged.find(secret.as_str()) {
            let line = logged[..at].rsplit('\n').next().unwrap_or_default();
            panic!("{name} reached the logs, after: {}", &line[..line.len().min(300)]);
        }
        assert!(!audit_text.contains(secret.as_str()), "a secret reached the audit");
        assert!(!reason.contains(secret.as_str()), "a secret reached an error");
    }
}

on_both_backends!(
    side_by_side_columns_are_two_sources,
    a_json_column_settles_in_offboards_own_table,
    every_source_must_settle_before_clearance,
    the_clearance_recheck_covers_every_source,
    encrypted_columns_are_decrypted_in_memory,
    a_value_rotated_in_place_in_a_mapped_source_is_sent_again,
    a_mapping_naming_a_missing_column_stops_start_up,
);

/// A source naming a column the database lacks is refused at start-up, naming the source
/// and key.
async fn a_mapping_naming_a_missing_column_stops_start_up(db: TestDb) {
    create(&db, "app_tokens", "user_id TEXT, token TEXT").await;
    let text = format!(
        "[database]\nurl = \"{}\"\n[[tokens.source]]\ntable = \"app_tokens\"\nprovider_value = \"acme\"\n\
         token_type_value = \"access_token\"\nvalue = \"tokn\"\nsettlement = \"offboard\"\n",
        db.url
    );
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).expect("parses");
    let e = App::with_store_checked(config, db.store.clone(), &|_| None)
        .await
        .err()
        .expect("refused");
    let chain = offboard::telemetry::error_chain(&e);
    assert!(
        chain.contains("tokens.source[0].value: no column tokn in app_tokens"),
        "{chain}"
    );

    let text = text.replace("app_tokens", "no_such_table");
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).expect("parses");
    let e = App::with_store_checked(config, db.store.clone(), &|_| None)
        .await
        .err()
        .expect("refused");
    let chain = offboard::telemetry::error_chain(&e);
    assert!(
        chain.contains("tokens.source[0].table: no table or view no_such_table"),
        "{chain}"
    );
}

#[test]
fn a_bad_identifier_or_mapping_is_refused_naming_the_source_and_key() {
    let cases = [
        (
            "table = \"tokens; DROP TABLE x\"\nvalue = \"t\"\nprovider_value = \"a\"\ntoken_type_value = \"access_token\"\nsettlement = \"offboard\"",
            "tokens.source[0].table",
        ),
        (
            "table = \"a.b.c\"\nvalue = \"t\"\nprovider_value = \"a\"\ntoken_type_value = \"access_token\"\nsettlement = \"offboard\"",
            "tokens.source[0].table",
        ),
        (
            "table = \"t\"\nvalue = \"x\\\"y\"\nprovider_value = \"a\"\ntoken_type_value = \"access_token\"\nsettlement = \"offboard\"",
            "tokens.source[0].value",
        ),
        (
            "table = \"t\"\nvalue = \"v\"\nprovider_value = \"a'b\"\ntoken_type_value = \"access_token\"\nsettlement = \"offboard\"",
            "tokens.source[0].provider_value",
        ),
        (
            "table = \"t\"\nvalue = \"v\"\nprovider_value = \"a\"\ntoken_type_value = \"id_token\"\nsettlement = \"offboard\"",
            "tokens.source[0].token_type_value",
        ),
        (
            "table = \"t\"\nvalue = \"v\"\nprovider_value = \"a\"\ntoken_type_value = \"access_token\"",
            "tokens.source[0].revoked_at",
        ),
        (
            "table = \"t\"\nvalue_json = { column = \"j\", path = \"/a'\" }\nprovider_value = \"a\"\ntoken_type_value = \"access_token\"\nsettlement = \"offboard\"",
            "tokens.source[0].value_json.path",
        ),
    ];
    for (source, key) in cases {
        let text = format!("[[tokens.source]]\n{source}\n");
        let e = Config::from_toml(&text, Path::new("test"), Vec::new()).expect_err(source);
        assert!(e.to_string().starts_with(key), "{e} (wanted {key})");
    }
    let two = "[[tokens.source]]\ntable = \"t\"\nvalue = \"v\"\nprovider_value = \"a\"\ntoken_type_value = \"access_token\"\nsettlement = \"offboard\"\n";
    let e = Config::from_toml(&format!("{two}{two}"), Path::new("test"), Vec::new())
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("tokens.source[0].number"), "{e}");
}

/// `offboard check-config` checks every source's mapping against the live database: a
/// column the table lacks stops it (exit 1) naming the source and key and listing the
/// columns there are; with the mapping fixed it passes.
#[tokio::test]
async fn check_config_checks_the_mapping_against_the_live_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let text = |value: &str| {
        format!(
            "[database]\nurl = \"sqlite://{}\"\n\n[[tokens.source]]\nnumber = 1\ntable = \"connections\"\n\
             user_id = \"owner\"\nprovider_value = \"acme\"\ntoken_type_value = \"refresh_token\"\n\
             value = \"{value}\"\nsettlement = \"offboard\"\n\n[providers.acme]\ndialect = \"rfc7009\"\n\
             url = \"https://auth.acme.example/revoke\"\nclient_id = \"c\"\nclient_secret_env = \"ACME_SECRET\"\n",
            db.display()
        )
    };
    let run = |config: &str| {
        let path = dir.path().join("offboard.toml");
        std::fs::write(&path, config).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .args(["--config", path.to_str().unwrap(), "check-config"])
            .env("ACME_SECRET", "x")
            .output()
            .unwrap()
    };
    // The application's table, in the database offboard will use.
    let store = crate::helpers::open_store(&format!("sqlite://{}", db.display())).await;
    crate::helpers::exec(
        &store,
        "CREATE TABLE connections (id INTEGER PRIMARY KEY, owner TEXT, token TEXT)",
    )
    .await
    .unwrap();
    let bad = run(&text("tokn"));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(
        err.contains("tokens.source[0].value: no column tokn in connections (it has: id, owner, token)"),
        "{err}"
    );
    let good = run(&text("token"));
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
}
