//! `scheme = "aes256gcm"`: AES-256-GCM in the common layout, base64 (standard or URL-safe,
//! padded or not) of `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`, with no associated
//! data: what Python's `AESGCM(key).encrypt(nonce, data, None)` returns, prefixed with its
//! nonce, and what Go's `gcm.Seal(nonce, nonce, data, nil)` returns. Several keys are tried in
//! order.
//!
//! A key is 32 bytes written as 64 hex digits, or in base64 (standard or URL-safe, padded or
//! not: 43 or 44 characters). Sixty-four hex digits are read as hex.

use aes_gcm::aead::Aead;
use aes_gcm::aead::Nonce;
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use zeroize::Zeroizing;

use super::config::KeyRef;
use super::{DecryptError, decode_base64_any};
use crate::config::ConfigError;

pub(super) const NONCE_LEN: usize = 12;
pub(super) const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

pub(super) struct AesGcmDecryptor {
    keys: Vec<Aes256Gcm>,
}

impl AesGcmDecryptor {
    pub(super) fn new(keys: &[KeyRef], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let keys = keys
            .iter()
            .map(|key| {
                let secret = key.read(env)?;
                let bytes = parse_key(secrecy::ExposeSecret::expose_secret(&secret))
                    .map_err(|problem| ConfigError::key(key.config_key.clone(), problem))?;
                Aes256Gcm::new_from_slice(&bytes)
                    .map_err(|_| ConfigError::key(key.config_key.clone(), "the key was refused"))
            })
            .collect::<Result<_, _>>()?;
        Ok(AesGcmDecryptor { keys })
    }

    pub(super) fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn decrypt(&self, value: &str) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let bytes = decode_base64_any(value).ok_or(DecryptError::Encoding {
            what: "base64 of nonce ‖ ciphertext ‖ tag",
        })?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(DecryptError::Length {
                what: "the AES-GCM value",
                got: bytes.len(),
                expected: "it needs at least 28: a 12-byte nonce, the ciphertext and a 16-byte tag",
            });
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| DecryptError::Format("bad nonce"))?;
        open(&self.keys, &nonce, sealed)
    }
}

/// Decrypts `ciphertext ‖ tag` with the first of `keys` that authenticates it.
pub(super) fn open(
    keys: &[Aes256Gcm],
    nonce: &Nonce<Aes256Gcm>,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    keys.iter()
        .find_map(|key| key.decrypt(nonce, sealed).ok())
        .map(Zeroizing::new)
        .ok_or(DecryptError::Authentication { keys: keys.len() })
}

/// A 32-byte key from 64 hex digits or base64, or what is wrong with it in words that do not
/// repeat it.
fn parse_key(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    const FORMAT: &str = "an AES-256 key is 32 bytes, written as 64 hex digits or in base64 (44 characters)";
    if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(decode_hex(text));
    }
    let bytes =
        decode_base64_any(text).ok_or_else(|| format!("the key is neither 64 hex digits nor base64; {FORMAT}"))?;
    if bytes.len() != KEY_LEN {
        return Err(format!(
            "the key decodes from base64 to {} bytes; {FORMAT}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Hex digits, already checked, to bytes.
fn decode_hex(text: &str) -> Zeroizing<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b.to_ascii_lowercase() - b'a' + 10,
    };
    Zeroizing::new(
        text.as_bytes()
            .chunks_exact(2)
            .map(|pair| (digit(pair[0]) << 4) | digit(pair[1]))
            .collect(),
    )
}

/// Strict padded standard base64, as Ruby's `Base64.strict_decode64` reads it (the Rails
/// envelope's fields).
pub(super) fn decode_strict_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .map(Zeroizing::new)
}
