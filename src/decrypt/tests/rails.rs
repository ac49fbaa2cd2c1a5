//! Rails Active Record Encryption: a ciphertext published in the Rails test suite, envelopes
//! made once by `vectors.py` (which follows the Rails source step by step) and embedded, and
//! envelopes made at run time for key rotation, key references and compression.

use serde_json::{Value, json};

use super::{decryptor, plain, python_vectors};
use crate::decrypt::{DecryptError, Decryptor};

/// `activerecord/test/cases/encryption/encryptable_record_test.rb`, "deterministic ciphertexts
/// remain constant": "Dune", encrypted by Rails with the `deterministic_key` and salt of
/// `activerecord/test/support/encryption_config.rb`, under the SHA-1 key derivation that the
/// Active Record test suite runs with (`Encryption::Config`'s default digest).
const RAILS_DUNE: &str = r#"{"p":"DIohhw==","h":{"iv":"wEPaDcJP3VNIxaiz","at":"X7+2xvvcu1k1if6Dy28Esw=="}}"#;

pub(in crate::decrypt::tests) const PRIMARY_KEY: &str = "EGY8WhulUOXixybod7ZWwMIL68R9o5kC";
pub(in crate::decrypt::tests) const SALT: &str = "xEY0dt6TZcAMg52K7O84wYzkjvbA62Hz";
/// "gho_static_rails_token", SHA-256 derivation.
pub(in crate::decrypt::tests) const PLAIN: &str =
    r#"{"p":"rlEk0uVTM9PUOPShEQtoyWet2AEXHQ==","h":{"iv":"DqIT/MnO6yj7J8jh","at":"7bDCCoVZNnXVT7jEWT0LHA=="}}"#;
/// [`long`], over 140 bytes, so deflated before encryption (`"c": true`).
const COMPRESSED: &str = r#"{"p":"hEqqjcG59b5UWlouOZM8LtdApO4ZpHMXSd9TRiXwTcZrhuWHqSIrVGrRb921nIsiMKzkScBdRg/ecXp0LVsWbypk","h":{"iv":"0w1umyaJLadJm1e3","at":"i2O2wW+8eyoALT0JU7thXw==","c":true}}"#;
/// What `vectors.py` was given: `"1//0g" + "Lw" * 60 + "-refresh-token-…-by-rails"`.
fn long() -> String {
    format!(
        "1//0g{}-refresh-token-long-enough-to-be-compressed-by-rails",
        "Lw".repeat(60)
    )
}
/// "gho_static_envelope_token" under `EnvelopeEncryptionKeyProvider` with
/// `store_key_references`: a data key in `k`, the primary key's id in `i`.
const ENVELOPE: &str = r#"{"p":"8i9g8cAfpXnbA5QQcAKJr7zpRqpGApT9iQ==","h":{"iv":"AYnbVatAHG5s7OSR","at":"HsMOwevorohz7DWhNRoUMQ==","k":{"p":"2FGAswQ9Akr6YJ7KYqjGvauVn1cJw3dDTS9LFeKeilI=","h":{"iv":"olprYUUjwvPG6c+Q","at":"5dMo6JjLHHxM/RSfPCFgoA==","e":"QVNDSUktOEJJVA=="}},"i":"MDM5ZQ=="}}"#;
/// "gho_static_rails70_token", SHA-1 derivation (Rails 7.0), a US-ASCII string (`e`).
const SHA1_ASCII: &str = r#"{"p":"GI7aKuYbksBBxaiGzgxMa7ICFYQqYIbE","h":{"iv":"kJHeHZopCg3641SS","at":"nC7Oq3t56E3Gqg84rj+BYA==","e":"VVMtQVNDSUk="}}"#;

fn rails(digest: &str) -> String {
    format!(
        r#"{{ scheme = "rails", primary_key_env = ["PK1", "PK2"], key_derivation_salt_env = "SALT", hash_digest = {digest} }}"#
    )
}

fn with_keys(digest: &str, keys: &[&str], salt: &str) -> Decryptor {
    let pk2 = keys.get(1).copied().unwrap_or("an unrelated second primary key");
    decryptor(&rails(digest), &[("PK1", keys[0]), ("PK2", pk2), ("SALT", salt)])
}

#[tokio::test]
async fn the_ciphertext_published_in_the_rails_test_suite_decrypts() {
    let sha1 = with_keys(r#""sha1""#, &["test deterministic key"], "testing key derivation salt");
    assert_eq!(plain(&sha1, RAILS_DUNE).await.unwrap(), "Dune");
    // The digest matters: Rails 7.1's SHA-256 derives another key.
    let sha256 = with_keys(
        r#""sha256""#,
        &["test deterministic key"],
        "testing key derivation salt",
    );
    assert_eq!(
        plain(&sha256, RAILS_DUNE).await,
        Err(DecryptError::Authentication { keys: 2 })
    );
    // And so does the salt.
    let salted = with_keys(r#""sha1""#, &["test deterministic key"], "another salt");
    assert_eq!(
        plain(&salted, RAILS_DUNE).await,
        Err(DecryptError::Authentication { keys: 2 })
    );
}

#[tokio::test]
async fn embedded_envelopes_decrypt_plain_compressed_enveloped_and_sha1() {
    let d = with_keys(r#""sha256""#, &[PRIMARY_KEY], SALT);
    assert_eq!(plain(&d, PLAIN).await.unwrap(), "gho_static_rails_token");
    assert_eq!(plain(&d, COMPRESSED).await.unwrap(), long());
    assert_eq!(plain(&d, ENVELOPE).await.unwrap(), "gho_static_envelope_token");
    assert_eq!(
        plain(&d, SHA1_ASCII).await,
        Err(DecryptError::Authentication { keys: 2 })
    );
    let both = with_keys(r#"["sha256", "sha1"]"#, &[PRIMARY_KEY], SALT);
    assert_eq!(plain(&both, SHA1_ASCII).await.unwrap(), "gho_static_rails70_token");
    assert_eq!(plain(&both, PLAIN).await.unwrap(), "gho_static_rails_token");
}

/// Edits the envelope `value` with `edit`, returning the new JSON text.
fn edited(value: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut json: Value = serde_json::from_str(value).unwrap();
    edit(&mut json);
    json.to_string()
}

#[tokio::test]
async fn a_key_reference_picks_the_key_and_an_unknown_one_is_refused() {
    let d = with_keys(r#""sha256""#, &[PRIMARY_KEY], SALT);
    // "i" of ENVELOPE names PRIMARY_KEY's derived key ("039e"); name another.
    let unknown = edited(ENVELOPE, |j| j["h"]["i"] = json!("ZmZmZg=="));
    assert_eq!(
        plain(&d, &unknown).await,
        Err(DecryptError::Envelope {
            field: "h.i",
            problem: "names a key id that none of the configured primary keys derives"
        })
    );
    // Without "i", every key is tried, and the right one found.
    let unreferenced = edited(ENVELOPE, |j| {
        j["h"].as_object_mut().unwrap().remove("i");
    });
    assert_eq!(plain(&d, &unreferenced).await.unwrap(), "gho_static_envelope_token");
}

#[tokio::test]
async fn envelope_fields_that_are_missing_or_wrong_are_named() {
    let d = with_keys(r#""sha256""#, &[PRIMARY_KEY], SALT);
    let env = |field, problem| Err(DecryptError::Envelope { field, problem });
    let cases: Vec<(String, Result<String, DecryptError>)> = vec![
        (
            "gho_not_encrypted".into(),
            Err(DecryptError::Encoding {
                what: "JSON, as a Rails Active Record Encryption envelope is",
            }),
        ),
        (
            "[1, 2]".into(),
            Err(DecryptError::Format(
                "not a Rails Active Record Encryption envelope: not a JSON object",
            )),
        ),
        (
            edited(PLAIN, |j| {
                j.as_object_mut().unwrap().remove("p");
            }),
            env("p", "is missing: this is not an encrypted payload"),
        ),
        (
            edited(PLAIN, |j| j["p"] = json!("not base64!")),
            env("p", "is not strict base64"),
        ),
        (edited(PLAIN, |j| j["p"] = json!(42)), env("p", "is not a string")),
        (edited(PLAIN, |j| j["h"] = json!("x")), env("h", "is not an object")),
        (
            edited(PLAIN, |j| {
                j["h"].as_object_mut().unwrap().remove("iv");
            }),
            env("h.iv", "is missing"),
        ),
        (
            edited(PLAIN, |j| j["h"]["iv"] = json!("AAAA")),
            env("h.iv", "is not 12 bytes"),
        ),
        (
            edited(PLAIN, |j| j["h"]["at"] = json!("AAAAAAAAAAAAAAAAAAAA")),
            env("h.at", "is not a 16-byte tag"),
        ),
        (
            edited(PLAIN, |j| j["h"]["c"] = json!("yes")),
            env("h.c", "is not true or false"),
        ),
        // Authentic, but not zlib data: Rails would fail to inflate it too.
        (
            edited(PLAIN, |j| j["h"]["c"] = json!(true)),
            env(
                "h.c",
                "marks the payload compressed, but it does not inflate as zlib data",
            ),
        ),
        (
            edited(ENVELOPE, |j| j["h"]["k"] = json!("k")),
            env("h.k", "is not an encrypted data key (a JSON object)"),
        ),
        (
            edited(ENVELOPE, |j| j["h"]["k"]["h"]["k"] = json!({"p": ""})),
            env(
                "h.k.h.k",
                "nests a message more than one level deep, which Rails does not write",
            ),
        ),
        (
            edited(ENVELOPE, |j| j["h"]["k"]["h"]["iv"] = json!("AAAA")),
            env("h.k.h.iv", "is not 12 bytes"),
        ),
        // The data key authenticates, but the payload was encrypted under another.
        (
            edited(ENVELOPE, |j| j["p"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==")),
            Err(DecryptError::Authentication { keys: 1 }),
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(plain(&d, &value).await, expected, "{value}");
    }
}

#[tokio::test]
async fn rotation_references_compression_and_encodings_from_python() {
    let base = json!({"scheme": "rails", "salt": SALT, "digest": "sha256"});
    let req = |extra: Value| {
        let mut r = base.clone();
        r.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        r
    };
    let Some(made) = python_vectors(json!([
        req(json!({"primary_keys": ["old primary key"], "plaintext": "encrypted-before-rotation"})),
        req(
            json!({"primary_keys": ["old primary key", "new primary key"], "plaintext": "encrypted-after-rotation",
                   "store_key_references": true})
        ),
        req(json!({"primary_keys": ["new primary key"], "plaintext": "x".repeat(500), "envelope": true})),
        req(json!({"primary_keys": ["new primary key"], "plaintext": "y".repeat(100_000)})),
        req(json!({"primary_keys": ["new primary key"], "plaintext": "latin-1 tökén", "encoding": "latin-1"})),
        req(json!({"primary_keys": ["new primary key"], "plaintext": "ascii token", "encoding": "latin-1"})),
    ])) else {
        return;
    };
    let value = |i: usize| made[i]["value"].as_str().unwrap().to_owned();
    let d = with_keys(r#""sha256""#, &["old primary key", "new primary key"], SALT);
    assert_eq!(plain(&d, &value(0)).await.unwrap(), "encrypted-before-rotation");
    assert_eq!(plain(&d, &value(1)).await.unwrap(), "encrypted-after-rotation");
    assert!(value(2).contains(r#""c":true"#) && value(2).contains(r#""k":{"#));
    assert_eq!(plain(&d, &value(2)).await.unwrap(), "x".repeat(500));
    // 100,000 bytes deflate to a few hundred, but inflate past the 64 KiB bound.
    assert_eq!(
        plain(&d, &value(3)).await,
        Err(DecryptError::PlaintextTooLong {
            max: crate::decrypt::MAX_VALUE_LEN
        })
    );
    assert_eq!(
        plain(&d, &value(4)).await,
        Err(DecryptError::Envelope {
            field: "h.e",
            problem: "names a text encoding other than UTF-8, and the text is not plain ASCII"
        })
    );
    assert_eq!(plain(&d, &value(5)).await.unwrap(), "ascii token");

    // Only the new key: the old value fails; a referenced value is tried with its key alone.
    let new_only = with_keys(r#""sha256""#, &["new primary key"], SALT);
    assert_eq!(
        plain(&new_only, &value(0)).await,
        Err(DecryptError::Authentication { keys: 2 })
    );
    assert_eq!(plain(&new_only, &value(1)).await.unwrap(), "encrypted-after-rotation");
    assert_eq!(
        plain(&with_keys(r#""sha256""#, &["old primary key"], SALT), &value(1)).await,
        Err(DecryptError::Envelope {
            field: "h.i",
            problem: "names a key id that none of the configured primary keys derives"
        })
    );
}
