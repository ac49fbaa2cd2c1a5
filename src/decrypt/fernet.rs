//! `scheme = "fernet"`: Fernet tokens (<https://github.com/fernet/spec>), as Python's
//! `cryptography.fernet.Fernet` and `MultiFernet` write them, decrypted by the `fernet`
//! crate. Several keys (`key_env = ["NEW", "OLD"]`) are tried in order, as `MultiFernet` does.
//! A token's age is not checked (a stored token is as old as its row), but the `fernet` crate
//! refuses one stamped more than 60 s in the future.
//!
//! A key is what `Fernet.generate_key()` prints: 32 bytes in URL-safe base64, 44 characters.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use super::DecryptError;
use super::config::KeyRef;
use crate::config::ConfigError;

/// Version byte, timestamp, IV, at least one AES block, HMAC-SHA256.
const MIN_TOKEN_LEN: usize = 1 + 8 + 16 + 16 + 32;
/// What the `fernet` crate allows a timestamp to be ahead of the clock.
const MAX_CLOCK_SKEW_SECS: u64 = 60;

pub(super) struct FernetDecryptor {
    keys: Vec<::fernet::Fernet>,
}

impl FernetDecryptor {
    pub(super) fn new(keys: &[KeyRef], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let keys = keys
            .iter()
            .map(|key| {
                let secret = key.read(env)?;
                parse_key(secrecy::ExposeSecret::expose_secret(&secret))
                    .map_err(|problem| ConfigError::key(key.config_key.clone(), problem))
            })
            .collect::<Result<_, _>>()?;
        Ok(FernetDecryptor { keys })
    }

    pub(super) fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn decrypt(&self, token: &str) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        check_token(token)?;
        for key in &self.keys {
            if let Ok(plaintext) = key.decrypt(token) {
                return Ok(Zeroizing::new(plaintext));
            }
        }
        Err(DecryptError::Authentication { keys: self.keys.len() })
    }
}

/// A Fernet key, or what is wrong with it in words that do not repeat it.
fn parse_key(text: &str) -> Result<::fernet::Fernet, String> {
    const FORMAT: &str = "a Fernet key is 32 bytes in URL-safe base64 (44 characters, as Fernet.generate_key() \
                          prints)";
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map(Zeroizing::new)
        .map_err(|_| format!("the key is not URL-safe base64; {FORMAT}"))?;
    if bytes.len() != 32 {
        return Err(format!("the key decodes to {} bytes; {FORMAT}", bytes.len()));
    }
    ::fernet::Fernet::new(text).ok_or_else(|| format!("the key was refused; {FORMAT}"))
}

/// Says what is wrong with a token whose shape alone rules it out, so that a failure after
/// this is the key's or tampering's. The `fernet` crate itself only says "invalid".
fn check_token(token: &str) -> Result<(), DecryptError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map(Zeroizing::new)
        .map_err(|_| DecryptError::Encoding {
            what: "URL-safe base64, as a Fernet token is",
        })?;
    if bytes.first() != Some(&0x80) {
        return Err(DecryptError::Format("not a Fernet token: its version byte is not 0x80"));
    }
    if bytes.len() < MIN_TOKEN_LEN {
        return Err(DecryptError::Length {
            what: "the Fernet token",
            got: bytes.len(),
            expected: "a Fernet token is at least 73 bytes",
        });
    }
    if !(bytes.len() - (1 + 8 + 16 + 32)).is_multiple_of(16) {
        return Err(DecryptError::Length {
            what: "the Fernet token",
            got: bytes.len(),
            expected: "its ciphertext must be whole 16-byte blocks",
        });
    }
    let mut stamp = [0u8; 8];
    stamp.copy_from_slice(&bytes[1..9]);
    let issued = u64::from_be_bytes(stamp);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if issued > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(DecryptError::Format(
            "the Fernet token is stamped more than 60 s in the future (a clock was wrong where it was made)",
        ));
    }
    Ok(())
}
