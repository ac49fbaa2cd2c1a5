//! Fernet: the spec's published vectors (github.com/fernet/spec `generate.json`,
//! `verify.json`, `invalid.json`), and tokens made at run time by Python's `cryptography`.

use serde_json::json;

use super::{build_error, decryptor, plain, python_vectors};
use crate::decrypt::DecryptError;

/// The key of every vector in the spec's JSON files.
pub(in crate::decrypt::tests) const SPEC_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
/// `generate.json` and `verify.json`: "hello", made at 1985-10-26T01:20:00-07:00 with IV 0..15.
pub(in crate::decrypt::tests) const SPEC_TOKEN: &str =
    "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";

const TABLE: &str = r#"{ scheme = "fernet", key_env = "FERNET_KEY" }"#;

#[tokio::test]
async fn the_spec_vector_decrypts_to_hello() {
    let d = decryptor(TABLE, &[("FERNET_KEY", SPEC_KEY)]);
    assert_eq!(plain(&d, SPEC_TOKEN).await.unwrap(), "hello");
    // Stored values may carry a line ending; it is not part of the token.
    assert_eq!(plain(&d, &format!("{SPEC_TOKEN}\n")).await.unwrap(), "hello");
}

/// `invalid.json`, each case with the reason offboard gives. The two refused by the spec only
/// for their age ("expired TTL") or for a timestamp ahead of 1985's clock (now long past)
/// authenticate and decrypt, as Python's `Fernet.decrypt` without a TTL does, to an empty
/// plaintext, which is no token: a stored token is as old as its row, and offboard must still
/// revoke it, so only a timestamp ahead of today's clock is refused.
#[tokio::test]
async fn the_spec_invalid_vectors_fail_each_for_its_reason() {
    let d = decryptor(TABLE, &[("FERNET_KEY", SPEC_KEY)]);
    let auth = Err(DecryptError::Authentication { keys: 1 });
    let cases: [(&str, &str, Result<String, DecryptError>); 8] = [
        (
            "incorrect mac",
            "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykQUFBQUFBQUFBQQ==",
            auth.clone(),
        ),
        (
            "too short",
            "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA==",
            Err(DecryptError::Length {
                what: "the Fernet token",
                got: 40,
                expected: "a Fernet token is at least 73 bytes",
            }),
        ),
        (
            "invalid base64",
            "%%%%%%%%%%%%%AECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==",
            Err(DecryptError::Encoding {
                what: "URL-safe base64, as a Fernet token is",
            }),
        ),
        (
            "payload size not multiple of block size",
            "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPOm73QeoCk9uGib28Xe5vz6oxq5nmxbx_v7mrfyudzUm",
            Err(DecryptError::Length {
                what: "the Fernet token",
                got: 72,
                expected: "a Fernet token is at least 73 bytes",
            }),
        ),
        (
            "payload padding error",
            "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0ODz4LEpdELGQAad7aNEHbf-JkLPIpuiYRLQ3RtXatOYREu2FWke6CnJNYIbkuKNqOhw==",
            auth.clone(),
        ),
        (
            "far-future TS (unacceptable clock skew)",
            "gAAAAAAdwStRAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAnja1xKYyhd-Y6mSkTOyTGJmw2Xc2a6kBd-iX9b_qXQcw==",
            Err(DecryptError::EmptyPlaintext),
        ),
        (
            "expired TTL",
            "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==",
            Err(DecryptError::EmptyPlaintext),
        ),
        (
            "incorrect IV (causes padding error)",
            "gAAAAAAdwJ6xBQECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAkLhFLHpGtDBRLRTZeUfWgHSv49TF2AUEZ1TIvcZjK1zQ==",
            auth.clone(),
        ),
    ];
    for (desc, token, expected) in cases {
        assert_eq!(plain(&d, token).await, expected, "{desc}");
    }
}

#[tokio::test]
async fn a_token_that_is_not_fernet_says_so() {
    let d = decryptor(TABLE, &[("FERNET_KEY", SPEC_KEY)]);
    // A valid token with its version byte changed from 0x80.
    let wrong_version = format!("g{}", &SPEC_TOKEN[1..]).replacen('g', "A", 1);
    assert_eq!(
        plain(&d, &wrong_version).await,
        Err(DecryptError::Format("not a Fernet token: its version byte is not 0x80"))
    );
}

#[tokio::test]
async fn tokens_from_python_decrypt_with_each_key_of_a_rotation() {
    let Some(made) = python_vectors(json!([
        {"scheme": "fernet", "key": null, "plaintext": "ya29.new-key-access-token"},
        {"scheme": "fernet", "key": null, "plaintext": "1//old-key-refresh-token"},
        {"scheme": "fernet", "key": null, "plaintext": "stamped-an-hour-ahead", "seconds_ahead": 3600},
        {"scheme": "fernet", "key": null, "plaintext": "ünïcödé-token ✓"},
    ])) else {
        return;
    };
    let (new_key, new_token) = (made[0]["key"].as_str().unwrap(), made[0]["token"].as_str().unwrap());
    let (old_key, old_token) = (made[1]["key"].as_str().unwrap(), made[1]["token"].as_str().unwrap());
    let table = r#"{ scheme = "fernet", key_env = ["NEW", "OLD"] }"#;
    let both = decryptor(table, &[("NEW", new_key), ("OLD", old_key)]);
    assert_eq!(plain(&both, new_token).await.unwrap(), "ya29.new-key-access-token");
    assert_eq!(plain(&both, old_token).await.unwrap(), "1//old-key-refresh-token");

    let only_new = decryptor(TABLE, &[("FERNET_KEY", new_key)]);
    assert_eq!(
        plain(&only_new, old_token).await,
        Err(DecryptError::Authentication { keys: 1 })
    );

    let ahead = decryptor(TABLE, &[("FERNET_KEY", made[2]["key"].as_str().unwrap())]);
    assert_eq!(
        plain(&ahead, made[2]["token"].as_str().unwrap()).await,
        Err(DecryptError::Format(
            "the Fernet token is stamped more than 60 s in the future (a clock was wrong where it was made)"
        ))
    );

    let unicode = decryptor(TABLE, &[("FERNET_KEY", made[3]["key"].as_str().unwrap())]);
    assert_eq!(
        plain(&unicode, made[3]["token"].as_str().unwrap()).await.unwrap(),
        "ünïcödé-token ✓"
    );
}

#[test]
fn a_key_that_is_not_a_fernet_key_is_named_without_being_shown() {
    let short = "c2hvcnQta2V5LW9mLTIwLWJ5dGVz"; // "short-key-of-20-bytes", 21 bytes
    let err = build_error(TABLE, &[("FERNET_KEY", short)]);
    assert_eq!(
        err,
        "tokens.source[0].encryption.key_env: the key decodes to 21 bytes; a Fernet key is 32 bytes in URL-safe \
         base64 (44 characters, as Fernet.generate_key() prints)"
    );
    let err = build_error(TABLE, &[("FERNET_KEY", "not base64 at all!")]);
    assert!(
        err.starts_with("tokens.source[0].encryption.key_env: the key is not URL-safe base64"),
        "{err}"
    );
    assert!(!err.contains("not base64 at all"), "{err}");
}
