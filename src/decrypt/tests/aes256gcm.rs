//! AES-256-GCM: values made by Python `cryptography`'s `AESGCM` in the `nonce ‖ ciphertext ‖
//! tag` layout, embedded (made once with `vectors.py`) and made at run time.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde_json::json;

use super::{build_error, decryptor, plain, python_vectors};
use crate::decrypt::DecryptError;

pub(in crate::decrypt::tests) const KEY_HEX: &str = "8e3b1f0c6d2a4957b0c1d2e3f4051627384950a1b2c3d4e5f60718293a4b5c6d";
pub(in crate::decrypt::tests) const KEY_B64: &str = "jjsfDG0qSVewwdLj9AUWJzhJUKGyw9Tl9gcYKTpLXG0=";
/// `AESGCM(KEY).encrypt(nonce, b"ya29.static-aes-gcm-access-token", None)`, nonce prefixed,
/// standard base64.
pub(in crate::decrypt::tests) const VALUE: &str =
    "ffy2WnAZE5ccPrKZ9n6wHEp6Bh2G247mXO6ECX2cRAWdDmGTF4J87mVsA1C3FqhoP1Le1+KVl//raw6j";
pub(in crate::decrypt::tests) const PLAINTEXT: &str = "ya29.static-aes-gcm-access-token";
/// The same key over `b"static-url-safe-token"`, URL-safe base64.
const URL_SAFE_VALUE: &str = "laep-w6_-lH4vsJXQssJPMA-yRT3l8OeAocRoCaoXczlNDU8ceGnnflZ-S64ZTAQoA==";

const TABLE: &str = r#"{ scheme = "aes256gcm", key_env = "TOKEN_KEY" }"#;

#[tokio::test]
async fn python_values_decrypt_with_the_key_in_hex_or_base64() {
    for key in [
        KEY_HEX,
        KEY_HEX.to_uppercase().as_str(),
        KEY_B64,
        KEY_B64.trim_end_matches('='),
    ] {
        let d = decryptor(TABLE, &[("TOKEN_KEY", key)]);
        assert_eq!(plain(&d, VALUE).await.unwrap(), PLAINTEXT);
        assert_eq!(plain(&d, URL_SAFE_VALUE).await.unwrap(), "static-url-safe-token");
        assert_eq!(plain(&d, VALUE.trim_end_matches('=')).await.unwrap(), PLAINTEXT);
    }
}

#[tokio::test]
async fn a_key_from_a_file_works_like_one_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token-key");
    std::fs::write(&path, format!("{KEY_HEX}\n")).unwrap();
    let table = format!(r#"{{ scheme = "aes256gcm", key_file = "{}" }}"#, path.display());
    let d = decryptor(&table, &[]);
    assert_eq!(plain(&d, VALUE).await.unwrap(), PLAINTEXT);
}

#[tokio::test]
async fn values_made_at_run_time_decrypt_and_keys_are_tried_in_order() {
    let Some(made) = python_vectors(json!([
        {"scheme": "aesgcm", "key_hex": null, "plaintext": "gho_first-key-token", "urlsafe": false},
        {"scheme": "aesgcm", "key_hex": null, "plaintext": "gho_second-key-token ✓", "urlsafe": true},
    ])) else {
        return;
    };
    let first = made[0]["key_hex"].as_str().unwrap();
    let second = made[1]["key_b64"].as_str().unwrap();
    let table = r#"{ scheme = "aes256gcm", key_env = ["K1", "K2"] }"#;
    let d = decryptor(table, &[("K1", first), ("K2", second)]);
    assert_eq!(
        plain(&d, made[0]["value"].as_str().unwrap()).await.unwrap(),
        "gho_first-key-token"
    );
    assert_eq!(
        plain(&d, made[1]["value"].as_str().unwrap()).await.unwrap(),
        "gho_second-key-token ✓"
    );
    let only_first = decryptor(TABLE, &[("TOKEN_KEY", first)]);
    assert_eq!(
        plain(&only_first, made[1]["value"].as_str().unwrap()).await,
        Err(DecryptError::Authentication { keys: 1 })
    );
}

#[tokio::test]
async fn a_wrong_key_or_an_altered_value_fails_authentication() {
    let other_key = "00".repeat(32);
    let wrong = decryptor(TABLE, &[("TOKEN_KEY", &other_key)]);
    assert_eq!(
        plain(&wrong, VALUE).await,
        Err(DecryptError::Authentication { keys: 1 })
    );

    let d = decryptor(TABLE, &[("TOKEN_KEY", KEY_HEX)]);
    let mut bytes = STANDARD.decode(VALUE).unwrap();
    for at in [0, 12, bytes.len() - 1] {
        bytes[at] ^= 1;
        let altered = STANDARD.encode(&bytes);
        assert_eq!(
            plain(&d, &altered).await,
            Err(DecryptError::Authentication { keys: 1 }),
            "byte {at}"
        );
        bytes[at] ^= 1;
    }
}

#[tokio::test]
async fn malformed_values_say_what_is_wrong() {
    let d = decryptor(TABLE, &[("TOKEN_KEY", KEY_HEX)]);
    assert_eq!(
        plain(&d, "not*base64").await,
        Err(DecryptError::Encoding {
            what: "base64 of nonce ‖ ciphertext ‖ tag"
        })
    );
    assert_eq!(
        plain(&d, &STANDARD_NO_PAD.encode([7u8; 27])).await,
        Err(DecryptError::Length {
            what: "the AES-GCM value",
            got: 27,
            expected: "it needs at least 28: a 12-byte nonce, the ciphertext and a 16-byte tag",
        })
    );
}

#[test]
fn a_key_of_the_wrong_size_is_named_without_being_shown() {
    let short = STANDARD.encode([0x5au8; 31]);
    let err = build_error(TABLE, &[("TOKEN_KEY", &short)]);
    assert_eq!(
        err,
        "tokens.source[0].encryption.key_env: the key decodes from base64 to 31 bytes; an AES-256 key is 32 \
         bytes, written as 64 hex digits or in base64 (44 characters)"
    );
    // 60 hex digits are not hex of 32 bytes, and are base64 of 45 bytes.
    let err = build_error(TABLE, &[("TOKEN_KEY", &KEY_HEX[..60])]);
    assert!(err.contains("decodes from base64 to 45 bytes"), "{err}");
    assert!(!err.contains(&KEY_HEX[..60]), "{err}");
    let err = build_error(TABLE, &[("TOKEN_KEY", "correct horse battery staple!")]);
    assert!(err.contains("the key is neither 64 hex digits nor base64"), "{err}");
}
