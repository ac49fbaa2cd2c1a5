//! DESIGN.md §3 invariant 5 for decryption: no `DecryptError`, of any kind, shows the
//! ciphertext, the plaintext or a key, in `Display` or in `Debug`. Each kind is produced by
//! a real failing call, with values that hold recognizable secrets.

use std::io::Write;
use std::time::Duration;

use aes_gcm::aead::{Aead, Nonce};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use serde_json::json;

use super::aes256gcm::{KEY_B64, KEY_HEX, PLAINTEXT, VALUE};
use super::fernet::{SPEC_KEY, SPEC_TOKEN};
use super::rails::{PLAIN, PRIMARY_KEY, SALT};
use super::{decryptor, fixture};
use crate::decrypt::command::{CommandDecryptor, MAX_FAILURES};
use crate::decrypt::{CommandError, DecryptError, MAX_VALUE_LEN};

/// AES-256-GCM under [`KEY_HEX`], in the `nonce ‖ ciphertext ‖ tag` layout.
fn seal(plaintext: &[u8]) -> String {
    let nonce = Nonce::<Aes256Gcm>::try_from(&[9u8; 12][..]).unwrap();
    let sealed = Aes256Gcm::new_from_slice(&hex(KEY_HEX))
        .unwrap()
        .encrypt(&nonce, plaintext)
        .unwrap();
    STANDARD.encode([&[9u8; 12][..], &sealed].concat())
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A Rails envelope of `plaintext` deflated, under [`PRIMARY_KEY`] and [`SALT`] (SHA-256).
fn rails_compressed(plaintext: &[u8]) -> String {
    let mut secret = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(PRIMARY_KEY.as_bytes(), SALT.as_bytes(), 1 << 16, &mut secret);
    let mut deflate = ZlibEncoder::new(Vec::new(), Compression::default());
    deflate.write_all(plaintext).unwrap();
    let nonce = Nonce::<Aes256Gcm>::try_from(&[3u8; 12][..]).unwrap();
    let sealed = Aes256Gcm::new_from_slice(&secret)
        .unwrap()
        .encrypt(&nonce, &deflate.finish().unwrap()[..])
        .unwrap();
    let (payload, tag) = sealed.split_at(sealed.len() - 16);
    json!({"p": STANDARD.encode(payload), "h": {"iv": STANDARD.encode([3u8; 12]), "at": STANDARD.encode(tag), "c": true}})
        .to_string()
}

/// Checks that neither rendering of `err` holds any of `secrets`.
fn assert_safe(err: &DecryptError, secrets: &[&str]) {
    for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
        for secret in secrets.iter().filter(|s| s.len() >= 4) {
            assert!(!shown.contains(secret), "{shown:?} shows {secret:?}");
        }
    }
}

#[tokio::test]
async fn no_failure_of_any_kind_shows_the_ciphertext_the_plaintext_or_a_key() {
    let mut seen: Vec<&'static str> = Vec::new();
    let mut check = |err: DecryptError, secrets: &[&str]| {
        assert_safe(&err, secrets);
        let kind = match &err {
            DecryptError::Empty => "Empty",
            DecryptError::TooLong { .. } => "TooLong",
            DecryptError::Encoding { .. } => "Encoding",
            DecryptError::Length { .. } => "Length",
            DecryptError::Format(_) => "Format",
            DecryptError::Envelope { .. } => "Envelope",
            DecryptError::Authentication { .. } => "Authentication",
            DecryptError::NotText => "NotText",
            DecryptError::EmptyPlaintext => "EmptyPlaintext",
            DecryptError::PlaintextTooLong { .. } => "PlaintextTooLong",
            DecryptError::Command(CommandError::Spawn { .. }) => "Command::Spawn",
            DecryptError::Command(CommandError::Exited { .. }) => "Command::Exited",
            DecryptError::Command(CommandError::TimedOut { .. }) => "Command::TimedOut",
            DecryptError::Command(CommandError::Garbage { .. }) => "Command::Garbage",
            DecryptError::Command(CommandError::Refused) => "Command::Refused",
            DecryptError::Command(CommandError::GaveUp { .. }) => "Command::GaveUp",
        };
        seen.push(kind);
    };

    let aes = decryptor(r#"{ scheme = "aes256gcm", key_env = "K" }"#, &[("K", KEY_HEX)]);
    let other_key = "ff".repeat(32);
    let wrong = decryptor(r#"{ scheme = "aes256gcm", key_env = "K" }"#, &[("K", &other_key)]);
    let keys = [KEY_HEX, KEY_B64, &other_key, PLAINTEXT, VALUE];
    check(aes.decrypt("").await.unwrap_err(), &keys);
    let long_secret = "s3cr3t-ciphertext-".repeat(MAX_VALUE_LEN / 10);
    check(aes.decrypt(&long_secret).await.unwrap_err(), &[&long_secret[..40]]);
    check(aes.decrypt("s3cr3t*v4lue").await.unwrap_err(), &["s3cr3t", "v4lue"]);
    let short = STANDARD.encode(b"s3cr3t-short");
    check(aes.decrypt(&short).await.unwrap_err(), &[&short, "s3cr3t-short"]);
    check(wrong.decrypt(VALUE).await.unwrap_err(), &keys);
    let not_text = seal(b"s3cr3t\xff\xfe-binary");
    check(
        aes.decrypt(&not_text).await.unwrap_err(),
        &[&not_text, "s3cr3t", KEY_HEX, KEY_B64],
    );

    let fernet = decryptor(r#"{ scheme = "fernet", key_env = "K" }"#, &[("K", SPEC_KEY)]);
    let not_fernet = format!("A{}", &SPEC_TOKEN[1..]);
    check(
        fernet.decrypt(&not_fernet).await.unwrap_err(),
        &[&not_fernet, SPEC_KEY, "hello"],
    );
    let expired_ttl =
        "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==";
    check(fernet.decrypt(expired_ttl).await.unwrap_err(), &[expired_ttl, SPEC_KEY]);

    let rails = decryptor(
        r#"{ scheme = "rails", primary_key_env = "PK", key_derivation_salt_env = "S" }"#,
        &[("PK", PRIMARY_KEY), ("S", SALT)],
    );
    let rails_keys = [PRIMARY_KEY, SALT, "gho_static_rails_token"];
    let bad_iv = PLAIN.replace("DqIT/MnO6yj7J8jh", "c2VjcmV0");
    check(
        rails.decrypt(&bad_iv).await.unwrap_err(),
        &[&bad_iv, "c2VjcmV0", "rlEk0uVTM9PUOPShEQto"],
    );
    let bomb = rails_compressed(&[b's'; 100_000]);
    check(
        rails.decrypt(&bomb).await.unwrap_err(),
        &[&bomb, "ssssssss", PRIMARY_KEY, SALT],
    );
    check(rails.decrypt(r#"{"p": "s3cr3t"#).await.unwrap_err(), &["s3cr3t"]);
    check(
        rails.decrypt(&PLAIN.replace("rlEk", "rlEK")).await.unwrap_err(),
        &rails_keys,
    );

    // The fixture echoes each value to its stderr: none of it may surface.
    let program = fixture("decrypt-command.sh").display().to_string();
    let command = CommandDecryptor::new("cmd", std::slice::from_ref(&program), Duration::from_millis(300)).unwrap();
    let secrets = ["crash", "hang", "garbage", "refuse", "decrypt-command: got"];
    // The refusal first: the three failures after it would make the command give up.
    for value in ["refuse", "crash", "hang", "garbage"] {
        check(command.decrypt(value).await.unwrap_err(), &secrets);
    }
    let dying = [program, "--die-after".into(), "0".into()];
    let dying = CommandDecryptor::new("cmd", &dying, Duration::from_secs(5)).unwrap();
    for _ in 0..=MAX_FAILURES {
        let err = dying.decrypt("c2VjcmV0LXZhbHVl").await.unwrap_err();
        check(err, &["c2VjcmV0LXZhbHVl", "secret-value"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("decrypt");
    std::fs::copy(fixture("decrypt-command.sh"), &copy).unwrap();
    let vanishing = CommandDecryptor::new("cmd", &[copy.display().to_string()], Duration::from_secs(5)).unwrap();
    std::fs::remove_file(&copy).unwrap();
    check(
        vanishing.decrypt("c2VjcmV0LXZhbHVl").await.unwrap_err(),
        &["c2VjcmV0LXZhbHVl", "secret-value"],
    );

    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 16, "every kind of failure was produced: {seen:?}");
}
