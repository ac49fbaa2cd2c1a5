//! Encrypted token values, decrypted in memory only (issue 9, point 3).
//!
//! A token source may say how its values are encrypted, in an `encryption` table
//! ([`EncryptionFile`], checked into an [`EncryptionConfig`]); a [`Decryptor`] built from it
//! turns each stored value into a [`TokenValue`]. The schemes, one file each:
//! - `fernet`: Fernet tokens, as Python's `cryptography` writes them (`fernet.rs`);
//! - `aes256gcm`: base64 of `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)` (`aes256gcm.rs`);
//! - `rails`: Rails Active Record Encryption's JSON envelope (`rails.rs`);
//! - `command`: an external program, one value per line in and out (`command.rs`).
//!
//! Keys come from environment variables or files, read once when the [`Decryptor`] is built
//! (with the same code as provider secrets), and live only inside the cipher objects. A
//! value that cannot be decrypted gives a [`DecryptError`] that says why in words fixed in
//! this code: it carries no part of the ciphertext, the plaintext or a key, in `Display` and
//! `Debug` alike, so the caller can put it beside the token id in a request's error.

mod aes256gcm;
mod command;
mod config;
mod fernet;
mod rails;

#[cfg(test)]
mod tests;

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use crate::config::ConfigError;
use crate::token::TokenValue;
pub(crate) use command::CommandError;
pub(crate) use config::EncryptionConfig;
pub(crate) use config::EncryptionFile;
use config::SchemeConfig;

/// Longest stored value accepted, and longest plaintext produced (a compressed Rails payload
/// is inflated no further): tokens are a few kilobytes at most.
pub(crate) const MAX_VALUE_LEN: usize = 64 * 1024;

/// Why a value could not be decrypted. Every field is a phrase fixed in this code, a number
/// or a detail of the configuration (the command's program path), so neither `Display` nor
/// the derived `Debug` can show a ciphertext, a plaintext or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecryptError {
    #[error("the stored value is empty")]
    Empty,
    #[error("the stored value is {len} bytes long, more than the {max} accepted")]
    TooLong { len: usize, max: usize },
    /// The value is not in the scheme's outer encoding (`what` names it).
    #[error("the stored value is not {what}")]
    Encoding { what: &'static str },
    #[error("{what} is {got} bytes long; {expected}")]
    Length {
        what: &'static str,
        got: usize,
        expected: &'static str,
    },
    /// The value decodes but is not of the scheme's format.
    #[error("{0}")]
    Format(&'static str),
    /// A field of a Rails envelope is missing or wrong.
    #[error("envelope field {field}: {problem}")]
    Envelope { field: &'static str, problem: &'static str },
    #[error(
        "authentication failed with each of the {keys} configured key(s): the key is wrong, or the value \
         was altered"
    )]
    Authentication { keys: usize },
    #[error("the decrypted value is not UTF-8 text")]
    NotText,
    #[error("the decrypted value is empty")]
    EmptyPlaintext,
    #[error("the decrypted value is more than {max} bytes long")]
    PlaintextTooLong { max: usize },
    #[error("decrypt command: {0}")]
    Command(#[from] CommandError),
}

/// Turns a source's stored values into tokens with the keys (or the command) its `encryption`
/// table names. Cheap to share behind an `Arc`; the `command` scheme serializes its requests.
pub(crate) struct Decryptor {
    inner: Inner,
}

enum Inner {
    Fernet(fernet::FernetDecryptor),
    Aes256Gcm(aes256gcm::AesGcmDecryptor),
    Rails(rails::RailsDecryptor),
    Command(Box<command::CommandDecryptor>),
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match &self.inner {
            Inner::Fernet(d) => format!("fernet, {} key(s)", d.key_count()),
            Inner::Aes256Gcm(d) => format!("aes256gcm, {} key(s)", d.key_count()),
            Inner::Rails(d) => format!("rails, {} derived key(s)", d.key_count()),
            Inner::Command(d) => format!("command {:?}", d.program()),
        };
        write!(f, "Decryptor({scheme})")
    }
}

impl Decryptor {
    /// Reads the keys `config` names, looking variables up with `env` (`config::process_env`
    /// outside tests), and builds the ciphers; for `command`, checks that the program can be
    /// run (it is started at the first value). Errors name the config key, never a key.
    pub(crate) fn new(config: &EncryptionConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let inner = match &config.scheme {
            SchemeConfig::Fernet { keys } => Inner::Fernet(fernet::FernetDecryptor::new(keys, env)?),
            SchemeConfig::Aes256Gcm { keys } => Inner::Aes256Gcm(aes256gcm::AesGcmDecryptor::new(keys, env)?),
            SchemeConfig::Rails {
                primary_keys,
                salt,
                digests,
            } => Inner::Rails(rails::RailsDecryptor::new(primary_keys, salt, digests, env)?),
            SchemeConfig::Command { argv, timeout } => Inner::Command(Box::new(command::CommandDecryptor::new(
                &format!("{}.command", config.at),
                argv,
                *timeout,
            )?)),
        };
        Ok(Decryptor { inner })
    }

    /// Decrypts one stored value. Surrounding whitespace is ignored by the base64 and JSON
    /// schemes; the command receives the value as stored.
    pub(crate) async fn decrypt(&self, ciphertext: &str) -> Result<TokenValue, DecryptError> {
        if ciphertext.trim().is_empty() {
            return Err(DecryptError::Empty);
        }
        if ciphertext.len() > MAX_VALUE_LEN {
            return Err(DecryptError::TooLong {
                len: ciphertext.len(),
                max: MAX_VALUE_LEN,
            });
        }
        match &self.inner {
            Inner::Fernet(d) => into_token(d.decrypt(ciphertext.trim())?),
            Inner::Aes256Gcm(d) => into_token(d.decrypt(ciphertext.trim())?),
            Inner::Rails(d) => into_token(d.decrypt(ciphertext.trim())?),
            Inner::Command(d) => d.decrypt(ciphertext).await,
        }
    }
}

/// The plaintext as a token: UTF-8, not empty, not too long. Bytes that are refused are
/// wiped before they are dropped.
fn into_token(plaintext: Zeroizing<Vec<u8>>) -> Result<TokenValue, DecryptError> {
    if plaintext.is_empty() {
        return Err(DecryptError::EmptyPlaintext);
    }
    if plaintext.len() > MAX_VALUE_LEN {
        return Err(DecryptError::PlaintextTooLong { max: MAX_VALUE_LEN });
    }
    let text = std::str::from_utf8(&plaintext).map_err(|_| DecryptError::NotText)?;
    Ok(TokenValue::new(text.to_owned()))
}

/// Base64 in either alphabet (standard or URL-safe, not mixed), padded or not.
fn decode_base64_any(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let trimmed = text.trim_end_matches('=');
    let engine = if trimmed.contains(['-', '_']) {
        &URL_SAFE_NO_PAD
    } else {
        &STANDARD_NO_PAD
    };
    engine.decode(trimmed).ok().map(Zeroizing::new)
}
