//! Tests of the decryption schemes: the `encryption` table, then one file per scheme with
//! vectors made by the reference implementations, the safety of every error, and property
//! tests that no input makes `decrypt` panic.
//!
//! Vectors made at run time come from `tests/fixtures/decrypt/vectors.py` (Python's
//! `cryptography`); where python3 or that package is missing, those tests print why and
//! pass on the vectors embedded beside them.

mod aes256gcm;
mod command;
mod fernet;
mod props;
mod rails;
mod safety;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use super::config::{KeySource, SchemeConfig};
use super::{DecryptError, Decryptor, EncryptionConfig, EncryptionFile};
use crate::config::ConfigError;

/// Where the tables under test sit in the config.
pub(super) const AT: &str = "tokens.source[0].encryption";

/// A variable lookup over `pairs` alone: tests never touch the process environment.
pub(super) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| map.get(name).cloned()
}

/// Parses and checks an inline `encryption` table such as `{ scheme = "fernet", … }`.
pub(super) fn config(table: &str) -> Result<EncryptionConfig, ConfigError> {
    let text = format!("encryption = {table}");
    #[derive(serde::Deserialize)]
    struct Holder {
        encryption: EncryptionFile,
    }
    let holder: Holder = toml::from_str(&text).map_err(|e| ConfigError::key(AT, e.message().trim()))?;
    holder.encryption.validate(AT)
}

/// A decryptor for `table`, with the variables `env`.
pub(super) fn decryptor(table: &str, env: &[(&str, &str)]) -> Decryptor {
    Decryptor::new(&config(table).expect("the table is valid"), &env_of(env)).expect("the keys are readable")
}

/// The error of building a decryptor for `table`, as text.
pub(super) fn build_error(table: &str, env: &[(&str, &str)]) -> String {
    match config(table).and_then(|c| Decryptor::new(&c, &env_of(env))) {
        Ok(d) => panic!("expected an error, built {d:?}"),
        Err(e) => e.to_string(),
    }
}

/// Decrypts to the plaintext, or the error.
pub(super) async fn plain(d: &Decryptor, value: &str) -> Result<String, DecryptError> {
    d.decrypt(value).await.map(|t| t.expose().to_owned())
}

pub(super) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/decrypt")
        .join(name)
}

/// Vectors from `vectors.py` for `requests`, or `None` (with the reason printed) when
/// python3 or its `cryptography` package is not there.
pub(super) fn python_vectors(requests: Value) -> Option<Vec<Value>> {
    use std::io::Write;
    let child = std::process::Command::new("python3")
        .arg(fixture("vectors.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            eprintln!("skipped: python3 cannot be run ({e}); only the embedded vectors were checked");
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(requests.to_string().as_bytes())
        .expect("python3 reads its requests");
    let out = child.wait_with_output().expect("python3 finishes");
    if out.status.code() == Some(77) {
        eprintln!(
            "skipped: {}; only the embedded vectors were checked",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    assert!(
        out.status.success(),
        "vectors.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("vectors.py writes JSON"))
}

#[test]
fn each_scheme_reads_its_table() {
    let fernet = config(r#"{ scheme = "fernet", key_env = ["NEW", "OLD"] }"#).unwrap();
    let SchemeConfig::Fernet { keys } = &fernet.scheme else {
        panic!("{fernet:?}")
    };
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1].source, KeySource::Env("OLD".into()));
    assert_eq!(keys[1].config_key, format!("{AT}.key_env"));

    let aes = config(r#"{ scheme = "aes256gcm", key_file = "/run/secrets/k" }"#).unwrap();
    let SchemeConfig::Aes256Gcm { keys } = &aes.scheme else {
        panic!("{aes:?}")
    };
    assert_eq!(keys[0].source, KeySource::File("/run/secrets/k".into()));

    let rails = config(r#"{ scheme = "rails", primary_key_env = "PK", key_derivation_salt_file = "/s" }"#).unwrap();
    let SchemeConfig::Rails { digests, salt, .. } = &rails.scheme else {
        panic!("{rails:?}")
    };
    assert_eq!(
        digests,
        &[super::config::HashDigest::Sha256],
        "Rails 7.1's digest is the default"
    );
    assert_eq!(salt.config_key, format!("{AT}.key_derivation_salt_file"));

    let command = config(r#"{ scheme = "command", command = ["/bin/cat"] }"#).unwrap();
    let SchemeConfig::Command { argv, timeout } = &command.scheme else {
        panic!("{command:?}")
    };
    assert_eq!(argv, &["/bin/cat".to_owned()]);
    assert_eq!(*timeout, Duration::from_secs(5));
    assert_eq!(command.scheme(), "command");
}

#[test]
fn a_key_of_another_scheme_is_refused_by_name() {
    let err = config(r#"{ scheme = "fernet", key_env = "K", primary_key_env = "PK" }"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{AT}.primary_key_env: is read only with scheme = \"rails\", not with scheme = \"fernet\"")
    );
    let err = config(r#"{ scheme = "rails", primary_key_env = "PK", key_derivation_salt_env = "S", key_env = "K" }"#)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{AT}.key_env: is read only with scheme")),
        "{err}"
    );
}

#[test]
fn unknown_keys_and_schemes_are_refused() {
    let err = config(r#"{ scheme = "fernet", key_evn = "K" }"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `key_evn`"), "{err}");
    let err = config(r#"{ scheme = "rot13", key_env = "K" }"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown variant `rot13`") && err.contains("`aes256gcm`"),
        "{err}"
    );
}

#[test]
fn a_key_is_named_once_and_at_least_once() {
    let both = config(r#"{ scheme = "aes256gcm", key_env = "K", key_file = "/k" }"#).unwrap_err();
    assert_eq!(
        both.to_string(),
        format!("{AT}.key_file: set key_env or key_file, not both")
    );
    let none = config(r#"{ scheme = "fernet" }"#).unwrap_err().to_string();
    assert!(none.starts_with(&format!("{AT}.key_env: a key is needed")), "{none}");
    let empty = config(r#"{ scheme = "fernet", key_env = [] }"#).unwrap_err();
    assert_eq!(
        empty.to_string(),
        format!("{AT}.key_env: the list is empty: name at least one key")
    );
    let salt = config(r#"{ scheme = "rails", primary_key_env = "PK" }"#)
        .unwrap_err()
        .to_string();
    assert!(
        salt.starts_with(&format!("{AT}.key_derivation_salt_env: scheme = \"rails\" needs")),
        "{salt}"
    );
}

#[test]
fn rails_digests_and_command_settings_are_checked() {
    let rails = r#"{ scheme = "rails", primary_key_env = "PK", key_derivation_salt_env = "S", hash_digest = "#;
    let both = config(&format!(r#"{rails}["sha256", "SHA1"] }}"#)).unwrap();
    let SchemeConfig::Rails { digests, .. } = &both.scheme else {
        panic!()
    };
    assert_eq!(digests.len(), 2);
    let err = config(&format!(r#"{rails}"md5" }}"#)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{AT}.hash_digest: 'md5' is not \"sha256\" (Rails 7.1 and later) or \"sha1\" (Rails 7.0)")
    );
    let err = config(r#"{ scheme = "command", command = [] }"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{AT}.command: scheme = \"command\" needs")),
        "{err}"
    );
    let err = config(r#"{ scheme = "command", command = ["/bin/cat"], timeout = "1ms" }"#).unwrap_err();
    assert!(err.to_string().contains("must be at least 10ms"), "{err}");
}

#[test]
fn a_missing_key_or_program_is_named_at_start_up() {
    let err = build_error(r#"{ scheme = "fernet", key_env = "FERNET_KEY" }"#, &[]);
    assert_eq!(err, format!("{AT}.key_env: environment variable FERNET_KEY is not set"));
    let err = build_error(
        r#"{ scheme = "aes256gcm", key_file = "/nonexistent/offboard-key" }"#,
        &[],
    );
    assert!(
        err.starts_with(&format!("{AT}.key_file: cannot read /nonexistent/offboard-key")),
        "{err}"
    );
    let err = build_error(r#"{ scheme = "command", command = ["/nonexistent/decrypt"] }"#, &[]);
    assert_eq!(
        err,
        format!("{AT}.command: /nonexistent/decrypt is not an executable file")
    );
    let err = build_error(
        r#"{ scheme = "command", command = ["no-such-offboard-decryptor"] }"#,
        &[],
    );
    assert_eq!(
        err,
        format!("{AT}.command: no-such-offboard-decryptor is not found on PATH")
    );
    assert!(
        Decryptor::new(
            &config(r#"{ scheme = "command", command = ["sh", "-c", "cat"] }"#).unwrap(),
            &env_of(&[])
        )
        .is_ok()
    );
}

#[tokio::test]
async fn an_empty_or_oversized_value_is_refused_before_any_scheme_runs() {
    let d = decryptor(r#"{ scheme = "fernet", key_env = "K" }"#, &[("K", fernet::SPEC_KEY)]);
    assert_eq!(plain(&d, "  ").await, Err(DecryptError::Empty));
    let huge = "A".repeat(super::MAX_VALUE_LEN + 1);
    assert_eq!(
        plain(&d, &huge).await,
        Err(DecryptError::TooLong {
            len: super::MAX_VALUE_LEN + 1,
            max: super::MAX_VALUE_LEN
        })
    );
}

/// The token sources share one decryptor between worker tasks.
#[test]
fn a_decryptor_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync>(_: &T) {}
    fn sendable<F: std::future::Future + Send>(_: F) {}
    let d = decryptor(r#"{ scheme = "command", command = ["/bin/cat"] }"#, &[]);
    shareable(&d);
    sendable(d.decrypt("value"));
}
