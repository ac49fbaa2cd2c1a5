//! Whatever a stored value holds, `decrypt` returns (a token or a reason) and never panics:
//! arbitrary text, and text shaped like each scheme's format so that the checks past the
//! first are reached too.

use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::json;
use tokio::runtime::Runtime;

use super::aes256gcm::KEY_HEX;
use super::fernet::SPEC_KEY;
use super::rails::{PRIMARY_KEY, SALT};
use super::{decryptor, fixture};
use crate::decrypt::Decryptor;

/// One runtime for every case: the command's process belongs to the runtime that started it.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
});

static FERNET: LazyLock<Decryptor> =
    LazyLock::new(|| decryptor(r#"{ scheme = "fernet", key_env = "K" }"#, &[("K", SPEC_KEY)]));
static AES: LazyLock<Decryptor> =
    LazyLock::new(|| decryptor(r#"{ scheme = "aes256gcm", key_env = "K" }"#, &[("K", KEY_HEX)]));
static RAILS: LazyLock<Decryptor> = LazyLock::new(|| {
    decryptor(
        r#"{ scheme = "rails", primary_key_env = "PK", key_derivation_salt_env = "S" }"#,
        &[("PK", PRIMARY_KEY), ("S", SALT)],
    )
});
static COMMAND: LazyLock<Decryptor> = LazyLock::new(|| {
    let table = format!(
        r#"{{ scheme = "command", command = [{:?}], timeout = "2s" }}"#,
        fixture("decrypt-command.sh").display().to_string()
    );
    decryptor(&table, &[])
});

fn run(d: &Decryptor, value: &str) {
    let _ = RUNTIME.block_on(d.decrypt(value));
}

fn base64ish() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/_=-]{0,160}"
}

/// A Rails envelope with each field present or not, well-formed or not.
fn envelope() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just(serde_json::Value::Null),
        base64ish().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| {
            use base64::Engine;
            serde_json::Value::from(base64::engine::general_purpose::STANDARD.encode(b))
        }),
    ];
    (
        field.clone(),
        field.clone(),
        field.clone(),
        field.clone(),
        field.clone(),
        field.clone(),
        prop::option::of((field.clone(), field.clone(), field)),
    )
        .prop_map(|(p, iv, at, c, e, i, k)| {
            let mut h = json!({"iv": iv, "at": at, "c": c, "e": e, "i": i});
            if let Some((kp, kiv, kat)) = k {
                h["k"] = json!({"p": kp, "h": {"iv": kiv, "at": kat}});
            }
            json!({"p": p, "h": h}).to_string()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fernet_never_panics(text in any::<String>(), b64 in base64ish(), bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        use base64::Engine;
        run(&FERNET, &text);
        run(&FERNET, &b64);
        // Shaped like a token: version byte, a timestamp, then anything.
        let mut token = vec![0x80];
        token.extend_from_slice(&bytes);
        run(&FERNET, &base64::engine::general_purpose::URL_SAFE.encode(&token));
    }

    #[test]
    fn aes256gcm_never_panics(text in any::<String>(), b64 in base64ish(), bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        use base64::Engine;
        run(&AES, &text);
        run(&AES, &b64);
        run(&AES, &base64::engine::general_purpose::STANDARD.encode(&bytes));
    }

    #[test]
    fn rails_never_panics(text in any::<String>(), envelope in envelope()) {
        run(&RAILS, &text);
        run(&RAILS, &envelope);
    }
}

proptest! {
    // Each case is a round trip to a process, and some restart it.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn command_never_panics(text in any::<String>(), b64 in base64ish()) {
        run(&COMMAND, &text);
        run(&COMMAND, &b64);
    }
}
