//! Tokens as the worker sees them: the secret value, which never prints, its fingerprint,
//! which is what logs and the audit table carry, and redaction of provider error text.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Which kind of OAuth token a row of `oauth_tokens` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    AccessToken,
    RefreshToken,
}

impl TokenType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TokenType::AccessToken => "access_token",
            TokenType::RefreshToken => "refresh_token",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        match raw {
            "access_token" => Some(TokenType::AccessToken),
            "refresh_token" => Some(TokenType::RefreshToken),
            _ => None,
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token value. `Debug` prints `[REDACTED]` and there is no `Display`: the only way to the
/// value is [`TokenValue::expose`], used where a request body is built.
#[derive(Clone)]
pub struct TokenValue(SecretString);

impl TokenValue {
    pub fn new(raw: String) -> Self {
        TokenValue(SecretString::from(raw))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.expose())
    }
}

impl fmt::Debug for TokenValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenValue([REDACTED])")
    }
}

/// `sha256:` and the first 16 bytes of the SHA-256 of a token, hex-encoded. Enough to match
/// a token an auditor holds against the audit table; not enough to recover it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn of(token: &str) -> Self {
        let digest = Sha256::digest(token.as_bytes());
        let mut out = String::with_capacity(7 + 32);
        out.push_str("sha256:");
        for byte in &digest[..16] {
            use fmt::Write;
            let _ = write!(out, "{byte:02x}");
        }
        Fingerprint(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest provider error text kept in an audit row or a request's `last_error`.
pub(crate) const MAX_ERROR_LEN: usize = 300;

/// Makes provider-supplied text safe to store: every occurrence of a secret (the token,
/// the client secret, the client id where it doubles as a credential) is replaced, control
/// characters are dropped and the text is cut to [`MAX_ERROR_LEN`] characters.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(secret) {
            out = out.replace(secret, "[REDACTED]");
        }
    }
    let mut cleaned: String = out
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_LEN)
        .collect();
    if out.chars().count() > MAX_ERROR_LEN {
        cleaned.push('…');
    }
    cleaned.trim().to_owned()
}

#[cfg(test)]
mod tests {
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
}
