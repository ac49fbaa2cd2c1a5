//! Unit tests of token values, fingerprints and redaction.

use super::*;

#[test]
fn debug_of_a_token_never_shows_the_value() {
    let token = TokenValue::new("tok_live_abcdef123456".into());
    assert!(!format!("{token:?}").contains("abcdef"));
}

#[test]
fn fingerprint_is_stable_and_does_not_contain_the_token() {
    let a = Fingerprint::of("secret-token-value");
    assert_eq!(a, Fingerprint::of("secret-token-value"));
    assert_ne!(a, Fingerprint::of("secret-token-valuf"));
    assert!(a.as_str().starts_with("sha256:"));
    assert_eq!(a.as_str().len(), 7 + 32);
    assert!(!a.as_str().contains("secret"));
}

#[test]
fn redact_removes_secrets_controls_and_length() {
    let text = format!("bad token tok_123456 for\nclient s3cr3t {}", "x".repeat(400));
    let out = redact(&text, &["tok_123456", "s3cr3t"]);
    assert!(!out.contains("tok_123456"));
    assert!(!out.contains("s3cr3t"));
    assert!(!out.contains('\n'));
    assert!(out.chars().count() <= MAX_ERROR_LEN + 1);
    assert!(out.starts_with("bad token [REDACTED] for client [REDACTED]"));
}

/// Every way a provider might write back a secret it was sent, built independently of
/// `redact` (by the simulator's echoing provider).
fn encodings(secret: &str) -> Vec<(String, String)> {
    crate::simulate::encodings(secret, "client 7")
}

const AWKWARD: [&str; 4] = [
    "1//0gAbCdEf+gh/ij=kl",
    "s3cr/t+k=y \"q\" \\ &%! é ☃",
    "tok_live_abcdef123456",
    "abcd",
];

#[test]
fn redact_catches_every_encoding_of_each_secret() {
    for secret in AWKWARD {
        for (name, encoded) in encodings(secret) {
            let text = format!("error: invalid_request for {encoded}, try again");
            let out = redact(&text, &[secret]);
            assert!(!out.contains(&encoded), "{name} of {secret:?} kept: {out}");
            assert!(out.contains("[REDACTED]"), "{name} of {secret:?} not redacted: {out}");
            assert!(out.starts_with("error: invalid_request for "), "{name}: {out}");
            assert!(out.ends_with(", try again"), "{name} of {secret:?}: {out}");
        }
    }
}

#[test]
fn redact_catches_secrets_that_overlap() {
    let token = "tok/abc+def==";
    let secret = "def==abcXYZ";
    let out = redact(&format!("echo {token}abcXYZ end"), &[token, secret]);
    assert_eq!(out, "echo [REDACTED] end");
}

#[test]
fn redact_keeps_other_text_and_the_length_bound() {
    let out = redact("invalid_client: Client authentication failed (é)", &["tok_123456"]);
    assert_eq!(out, "invalid_client: Client authentication failed (é)");
    // Too short to redact without destroying the message.
    assert_eq!(redact("abc def", &["abc"]), "abc def");
    let long = format!("{} tok_123456", "é".repeat(500));
    let out = redact(&long, &["tok_123456"]);
    assert_eq!(out.chars().count(), MAX_ERROR_LEN + 1);
    assert!(out.ends_with('…'));
}
