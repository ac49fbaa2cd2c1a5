//! `scheme = "rails"`: Rails Active Record Encryption's JSON envelope, read as Rails 7.0–8
//! reads it (`activerecord/lib/active_record/encryption/`: `message_serializer.rb`,
//! `encryptor.rb`, `cipher.rb`, `cipher/aes256_gcm.rb`, `key_provider.rb`,
//! `envelope_encryption_key_provider.rb`):
//!
//! ```json
//! {"p": "<base64 ciphertext>", "h": {"iv": "<base64, 12 bytes>", "at": "<base64, 16-byte tag>",
//!  "e": "<base64 encoding name, when not UTF-8>", "c": true, "i": "<base64 key id>",
//!  "k": {"p": …, "h": {"iv": …, "at": …}}}}
//! ```
//!
//! - Every string is strict padded base64 (`Base64.strict_encode64`); `c` is a JSON boolean.
//! - Keys: each `primary_key` gives an AES-256 key by PBKDF2-HMAC (2^16 iterations, 32 bytes,
//!   salt `key_derivation_salt`, SHA-256 from Rails 7.1 on, SHA-1 in 7.0). Rails tries every
//!   primary key in turn; so does this, for each configured digest.
//! - `i` (`store_key_references`): the first 4 hex digits of the SHA-1 of the derived key
//!   that encrypted the value (or, with `k`, its data key); only keys with that id are tried.
//! - `k` (`EnvelopeEncryptionKeyProvider`): a random data key, itself encrypted with a
//!   primary key in a nested message; the payload is encrypted with the data key.
//! - `c`: the plaintext was zlib-deflated (Rails does it above 140 bytes).
//! - `e`: the plaintext's Ruby encoding when it is not UTF-8; only ASCII-compatible
//!   encodings whose bytes are UTF-8 are accepted, since a token is text.
//!
//! Deterministic encryption (`encrypts …, deterministic: true`) writes the same envelope with
//! a key derived from `deterministic_key`: configure that as the primary key.

use std::io::Read;

use aes_gcm::aead::Nonce;
use aes_gcm::{Aes256Gcm, KeyInit};
use flate2::read::ZlibDecoder;
use pbkdf2::pbkdf2_hmac;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::aes256gcm::{NONCE_LEN, TAG_LEN, decode_strict_base64, open};
use super::config::{HashDigest, KeyRef};
use super::{DecryptError, MAX_VALUE_LEN};
use crate::config::ConfigError;

/// ActiveSupport::KeyGenerator's iterations.
const PBKDF2_ITERATIONS: u32 = 1 << 16;

/// One derived key and Rails' id for it.
struct DerivedKey {
    cipher: Aes256Gcm,
    id: String,
}

pub(super) struct RailsDecryptor {
    keys: Vec<DerivedKey>,
}

impl RailsDecryptor {
    /// Derives every key up front: PBKDF2 with 2^16 iterations is slow by design.
    pub(super) fn new(
        primary_keys: &[KeyRef],
        salt: &KeyRef,
        digests: &[HashDigest],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let salt = salt.read(env)?;
        let passwords = primary_keys
            .iter()
            .map(|k| k.read(env))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys = Vec::with_capacity(passwords.len() * digests.len());
        for digest in digests {
            for password in &passwords {
                let mut secret = Zeroizing::new([0u8; 32]);
                let (password, salt) = (password.expose_secret().as_bytes(), salt.expose_secret().as_bytes());
                match digest {
                    HashDigest::Sha256 => pbkdf2_hmac::<sha2::Sha256>(password, salt, PBKDF2_ITERATIONS, &mut *secret),
                    HashDigest::Sha1 => pbkdf2_hmac::<Sha1>(password, salt, PBKDF2_ITERATIONS, &mut *secret),
                }
                keys.push(derived(&secret));
            }
        }
        Ok(RailsDecryptor { keys })
    }

    pub(super) fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn decrypt(&self, text: &str) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let json: Value = serde_json::from_str(text).map_err(|_| DecryptError::Encoding {
            what: "JSON, as a Rails Active Record Encryption envelope is",
        })?;
        let message = Message::parse(&json, Level::Outer)?;
        // `i` names the key that encrypted the payload, or with `k` the data key.
        let candidates: Vec<&Aes256Gcm> = match &message.key_id {
            Some(id) => self
                .keys
                .iter()
                .filter(|k| k.id.as_bytes() == &id[..])
                .map(|k| &k.cipher)
                .collect(),
            None => self.keys.iter().map(|k| &k.cipher).collect(),
        };
        if candidates.is_empty() {
            return Err(DecryptError::Envelope {
                field: "h.i",
                problem: "names a key id that none of the configured primary keys derives",
            });
        }
        let plaintext = match &message.data_key {
            None => open_with(&candidates, &message)?,
            Some(nested) => {
                let secret = open_with(&candidates, nested)?;
                if secret.len() != 32 {
                    return Err(DecryptError::Envelope {
                        field: "h.k",
                        problem: "does not hold a 32-byte data key",
                    });
                }
                let data_key = Aes256Gcm::new_from_slice(&secret).map_err(|_| DecryptError::Envelope {
                    field: "h.k",
                    problem: "does not hold a 32-byte data key",
                })?;
                open_with(&[&data_key], &message)?
            }
        };
        let plaintext = if message.compressed {
            inflate(&plaintext)?
        } else {
            plaintext
        };
        if let Some(encoding) = &message.encoding {
            check_encoding(encoding, &plaintext)?;
        }
        Ok(plaintext)
    }
}

fn derived(secret: &[u8; 32]) -> DerivedKey {
    let digest = Sha1::digest(secret);
    let id: String = digest[..2].iter().map(|b| format!("{b:02x}")).collect();
    DerivedKey {
        cipher: Aes256Gcm::new(secret.into()),
        id,
    }
}

fn open_with(keys: &[&Aes256Gcm], message: &Message) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    let mut sealed = Zeroizing::new(Vec::with_capacity(message.payload.len() + TAG_LEN));
    sealed.extend_from_slice(&message.payload);
    sealed.extend_from_slice(&message.auth_tag);
    let mut failed = 0;
    for key in keys {
        match open(std::slice::from_ref(*key), &message.iv, &sealed) {
            Ok(plaintext) => return Ok(plaintext),
            Err(_) => failed += 1,
        }
    }
    Err(DecryptError::Authentication { keys: failed })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Outer,
    /// The message in `k`, which may hold no message of its own.
    Nested,
}

/// An envelope's fields, decoded and checked.
struct Message {
    payload: Zeroizing<Vec<u8>>,
    iv: Nonce<Aes256Gcm>,
    auth_tag: [u8; TAG_LEN],
    compressed: bool,
    encoding: Option<Zeroizing<Vec<u8>>>,
    key_id: Option<Zeroizing<Vec<u8>>>,
    data_key: Option<Box<Message>>,
}

impl Message {
    fn parse(json: &Value, level: Level) -> Result<Message, DecryptError> {
        let field = |outer: &'static str, nested: &'static str| if level == Level::Outer { outer } else { nested };
        let Value::Object(object) = json else {
            return Err(DecryptError::Format(
                "not a Rails Active Record Encryption envelope: not a JSON object",
            ));
        };
        let payload = match object.get("p") {
            Some(Value::String(p)) => decode_strict_base64(p).ok_or(DecryptError::Envelope {
                field: field("p", "h.k.p"),
                problem: "is not strict base64",
            })?,
            Some(_) => {
                return Err(DecryptError::Envelope {
                    field: field("p", "h.k.p"),
                    problem: "is not a string",
                });
            }
            None => {
                return Err(DecryptError::Envelope {
                    field: field("p", "h.k.p"),
                    problem: "is missing: this is not an encrypted payload",
                });
            }
        };
        let empty = Map::new();
        let headers = match object.get("h") {
            Some(Value::Object(h)) => h,
            None | Some(Value::Null) => &empty,
            Some(_) => {
                return Err(DecryptError::Envelope {
                    field: field("h", "h.k.h"),
                    problem: "is not an object",
                });
            }
        };
        let iv = bytes_header(headers, "iv", field("h.iv", "h.k.h.iv"))?.ok_or(DecryptError::Envelope {
            field: field("h.iv", "h.k.h.iv"),
            problem: "is missing",
        })?;
        let iv = Nonce::<Aes256Gcm>::try_from(&iv[..]).map_err(|_| DecryptError::Envelope {
            field: field("h.iv", "h.k.h.iv"),
            problem: "is not 12 bytes",
        })?;
        debug_assert_eq!(iv.len(), NONCE_LEN);
        let tag = bytes_header(headers, "at", field("h.at", "h.k.h.at"))?.ok_or(DecryptError::Envelope {
            field: field("h.at", "h.k.h.at"),
            problem: "is missing",
        })?;
        let auth_tag: [u8; TAG_LEN] = tag[..].try_into().map_err(|_| DecryptError::Envelope {
            field: field("h.at", "h.k.h.at"),
            problem: "is not a 16-byte tag",
        })?;
        let compressed = match headers.get("c") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(_) => {
                return Err(DecryptError::Envelope {
                    field: field("h.c", "h.k.h.c"),
                    problem: "is not true or false",
                });
            }
        };
        let encoding = bytes_header(headers, "e", field("h.e", "h.k.h.e"))?;
        let key_id = bytes_header(headers, "i", field("h.i", "h.k.h.i"))?;
        let data_key = match headers.get("k") {
            None | Some(Value::Null) => None,
            Some(nested @ Value::Object(_)) if level == Level::Outer => {
                Some(Box::new(Message::parse(nested, Level::Nested)?))
            }
            Some(Value::Object(_)) => {
                return Err(DecryptError::Envelope {
                    field: "h.k.h.k",
                    problem: "nests a message more than one level deep, which Rails does not write",
                });
            }
            Some(_) => {
                return Err(DecryptError::Envelope {
                    field: field("h.k", "h.k.h.k"),
                    problem: "is not an encrypted data key (a JSON object)",
                });
            }
        };
        Ok(Message {
            payload,
            iv,
            auth_tag,
            compressed,
            encoding,
            key_id,
            data_key,
        })
    }
}

/// A header that holds a base64 string, decoded; `None` when absent.
fn bytes_header(
    headers: &Map<String, Value>,
    name: &str,
    field: &'static str,
) -> Result<Option<Zeroizing<Vec<u8>>>, DecryptError> {
    match headers.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => decode_strict_base64(s).map(Some).ok_or(DecryptError::Envelope {
            field,
            problem: "is not strict base64",
        }),
        Some(_) => Err(DecryptError::Envelope {
            field,
            problem: "is not a base64 string",
        }),
    }
}

/// zlib-inflates a payload marked `c`, stopping past [`MAX_VALUE_LEN`].
fn inflate(compressed: &[u8]) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    let mut out = Zeroizing::new(Vec::new());
    ZlibDecoder::new(compressed)
        .take(MAX_VALUE_LEN as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| DecryptError::Envelope {
            field: "h.c",
            problem: "marks the payload compressed, but it does not inflate as zlib data",
        })?;
    if out.len() > MAX_VALUE_LEN {
        return Err(DecryptError::PlaintextTooLong { max: MAX_VALUE_LEN });
    }
    Ok(out)
}

/// Accepts the Ruby encodings whose text offboard can read as UTF-8.
fn check_encoding(name: &[u8], plaintext: &[u8]) -> Result<(), DecryptError> {
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    match name.as_str() {
        "UTF-8" | "ASCII-8BIT" | "BINARY" => Ok(()),
        "US-ASCII" | "ASCII" if plaintext.is_ascii() => Ok(()),
        _ if plaintext.is_ascii() && !name.starts_with("UTF-16") && !name.starts_with("UTF-32") => Ok(()),
        _ => Err(DecryptError::Envelope {
            field: "h.e",
            problem: "names a text encoding other than UTF-8, and the text is not plain ASCII",
        }),
    }
}
