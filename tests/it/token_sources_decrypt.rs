//! Issue 9: the two encrypted sources not covered in `token_sources.rs`, end to end on both
//! backends against the simulator: an external decrypt command (the fixture
//! `tests/fixtures/decrypt/decrypt-command.sh`, one long-lived process that base64-decodes)
//! and Rails Active Record Encryption's JSON envelope (made here as Rails makes it: PBKDF2-
//! HMAC-SHA256 over the primary key and salt, 2^16 rounds; AES-256-GCM with a 12-byte IV;
//! `{"p", "h": {"iv", "at"}}` base64). A user is cleared only when every token from both
//! sources is dead at the provider; a value that does not decrypt fails its user's request
//! naming the token, and no plaintext, ciphertext or key reaches the logs, audit or errors.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use offboard::outcome::RequestState;
use offboard::token::TokenType::{AccessToken, RefreshToken};

use crate::helpers::{TestDb, on_both_backends};
use crate::token_sources::{acme, create, fixture, sql};

const PRIMARY_KEY: &str = "e2e-primary-key-0c5b1f7e9a";
const SALT: &str = "e2e-key-derivation-salt-4d2a";

/// `plaintext` in Active Record Encryption's envelope under `primary_key` and `salt`.
fn rails_envelope(primary_key: &str, salt: &str, plaintext: &str) -> String {
    use aes_gcm::aead::{Aead, KeyInit};
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(primary_key.as_bytes(), salt.as_bytes(), 1 << 16, &mut key);
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
    let iv: [u8; 12] = std::array::from_fn(|_| fastrand::u8(..));
    let sealed = cipher.encrypt((&iv).into(), plaintext.as_bytes()).unwrap();
    let (payload, tag) = sealed.split_at(sealed.len() - 16);
    serde_json::json!({
        "p": STANDARD.encode(payload),
        "h": { "iv": STANDARD.encode(iv), "at": STANDARD.encode(tag) }
    })
    .to_string()
}

async fn command_and_rails_sources_clear_only_when_every_token_is_dead(db: TestDb) {
    let logs = crate::helpers::captured_logs();
    create(&db, "vault_tokens", "user_id TEXT, token TEXT, revoked_at {ts}").await;
    create(&db, "identities", "user_id TEXT, oauth_token TEXT, revoked_at {ts}").await;
    let command = format!(
        "{}/tests/fixtures/decrypt/decrypt-command.sh",
        env!("CARGO_MANIFEST_DIR")
    );
    let sources = format!(
        r#"
[[tokens.source]]
number = 1
table = "vault_tokens"
provider_value = "acme"
token_type_value = "refresh_token"
value = "token"
revoked_at = "revoked_at"
encryption = {{ scheme = "command", command = ["{command}"], timeout = "5s" }}

[[tokens.source]]
number = 2
table = "identities"
provider_value = "acme"
token_type_value = "access_token"
value = "oauth_token"
revoked_at = "revoked_at"
encryption = {{ scheme = "rails", primary_key_env = "TEST_AR_PRIMARY_KEY", key_derivation_salt_env = "TEST_AR_SALT", hash_digest = "sha256" }}
"#
    );
    let f = fixture(
        db,
        acme(),
        &sources,
        &[("TEST_AR_PRIMARY_KEY", PRIMARY_KEY), ("TEST_AR_SALT", SALT)],
    )
    .await;
    // u1: one token in each source, both decrypt.
    let refresh = f.sim.issue("acme", RefreshToken, None);
    let access = f.sim.issue("acme", AccessToken, None);
    let refresh_ct = STANDARD.encode(refresh.as_bytes());
    let access_ct = rails_envelope(PRIMARY_KEY, SALT, &access);
    // u2: its command-source token decrypts, its Rails one was encrypted under another key.
    let u2_refresh = f.sim.issue("acme", RefreshToken, None);
    let u2_access = f.sim.issue("acme", AccessToken, None);
    let u2_refresh_ct = STANDARD.encode(u2_refresh.as_bytes());
    let u2_access_ct = rails_envelope("another-primary-key", SALT, &u2_access);
    // u3: its Rails token decrypts, the command refuses its other value (an empty line).
    let u3_access = f.sim.issue("acme", AccessToken, None);
    let u3_access_ct = rails_envelope(PRIMARY_KEY, SALT, &u3_access);
    sql(
        &f,
        format!(
            "INSERT INTO vault_tokens (user_id, token) VALUES ('u1', '{refresh_ct}'), ('u2', '{u2_refresh_ct}'), \
             ('u3', 'refuse')"
        ),
    )
    .await;
    sql(
        &f,
        format!(
            "INSERT INTO identities (user_id, oauth_token) VALUES ('u1', '{access_ct}'), ('u2', '{u2_access_ct}'), \
             ('u3', '{u3_access_ct}')"
        ),
    )
    .await;
    // The log from here on: the test's own INSERTs above are logged by sqlx with their text.
    let start = logs.lock().unwrap().len();
    for user in ["u1", "u2", "u3"] {
        f.enqueue(user).await;
    }
    f.drain_until_settled().await;

    assert_eq!(f.state("u1").await, RequestState::Cleared);
    assert_eq!(f.sim.is_revoked(&refresh), Some(true));
    assert_eq!(f.sim.is_revoked(&access), Some(true));

    // Each of u2 and u3 has one token dead and one that cannot be sent: not cleared.
    assert_eq!(f.sim.is_revoked(&u2_refresh), Some(true));
    assert_eq!(f.sim.is_revoked(&u2_access), Some(false));
    assert_eq!(f.sim.is_revoked(&u3_access), Some(true));
    let mut reasons = String::new();
    for (user, bad_id) in [("u2", (2i64 << 40) + 2), ("u3", (1i64 << 40) + 3)] {
        let latest = f.latest(user).await;
        assert_eq!(latest.state, RequestState::Failed, "{user}");
        let reason = latest.last_error.unwrap_or_default();
        assert!(
            reason.contains(&format!("token row {bad_id}")) && reason.contains("cannot be decrypted"),
            "{user}: {reason}"
        );
        reasons.push_str(&reason);
    }

    let audit = format!("{:?}", f.store().audit_rows(None, None).await.unwrap());
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()[start..]).into_owned();
    let secrets = [
        &refresh,
        &access,
        &refresh_ct,
        &access_ct,
        &u2_refresh,
        &u2_access,
        &u2_refresh_ct,
        &u2_access_ct,
        &u3_access,
        &u3_access_ct,
    ];
    for (i, secret) in secrets.into_iter().enumerate() {
        assert!(!logged.contains(secret.as_str()), "secret {i} reached the logs");
        assert!(!audit.contains(secret.as_str()), "secret {i} reached the audit");
        assert!(!reasons.contains(secret.as_str()), "secret {i} reached an error");
    }
    for key in [PRIMARY_KEY, SALT] {
        assert!(!logged.contains(key) && !audit.contains(key) && !reasons.contains(key));
    }
}

on_both_backends!(command_and_rails_sources_clear_only_when_every_token_is_dead);
