//! The canonical encoding of an audit row, and the hashes of the chain.
//!
//! A row's hash is SHA-256 over `encode(seq, prev_hash, fields)`: a version tag, then every
//! field in a fixed order, each written so that no two different rows give the same bytes
//! (the encoding is injective; a test decodes it back): integers as 8 big-endian bytes,
//! strings as an 8-byte length then their UTF-8 bytes, and every field that may be NULL
//! behind a presence byte (0 absent, 1 present). No separator is ever needed, so no value
//! can forge one. Timestamps are microseconds since the Unix epoch, the precision both
//! backends store.
//!
//! The user id is covered through `user_ref`, an HMAC-SHA256 of the id under the chain's
//! key (`offboard_audit_chain.user_key`), so that a row whose `user_id` was later replaced
//! by its `user_ref` (pseudonymized) still verifies.
//!
//! Changing anything here changes every hash: a new encoding needs a new version tag, and
//! `verify` must keep reading the old one.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The version tag every encoding starts with.
const VERSION: &str = "offboard-audit-chain-v1";

/// The `prev_hash` of the first row of a chain.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What the chain covers of one row, as stored (the hash is computed from the same values
/// the INSERT binds, and recomputed from the values read back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fields<'a> {
    pub(crate) request_id: i64,
    pub(crate) user_ref: &'a str,
    pub(crate) action: &'a str,
    pub(crate) token_id: Option<i64>,
    pub(crate) provider: Option<&'a str>,
    pub(crate) token_type: Option<&'a str>,
    pub(crate) token_fingerprint: Option<&'a str>,
    pub(crate) attempt: Option<i32>,
    pub(crate) outcome: Option<&'a str>,
    pub(crate) settled: bool,
    pub(crate) http_status: Option<i32>,
    pub(crate) provider_request_id: Option<&'a str>,
    pub(crate) error: Option<&'a str>,
    pub(crate) duration_ms: i64,
    pub(crate) worker: &'a str,
    /// Microseconds since the Unix epoch.
    pub(crate) attempted_at: i64,
    pub(crate) verified: Option<bool>,
    pub(crate) verified_by: Option<&'a str>,
}

/// A timestamp cut to the microsecond, as PostgreSQL stores it: the value both inserted
/// and hashed, so the row read back hashes the same on either backend.
pub(crate) fn to_micros(at: DateTime<Utc>) -> (DateTime<Utc>, i64) {
    let micros = at.timestamp_micros();
    (DateTime::from_timestamp_micros(micros).unwrap_or(at), micros)
}

struct Writer(Vec<u8>);

impl Writer {
    fn int(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn str(&mut self, s: &str) {
        self.int(s.len() as i64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn flag(&mut self, b: bool) {
        self.0.push(u8::from(b));
    }
    fn opt<T>(&mut self, v: Option<T>, write: impl FnOnce(&mut Self, T)) {
        self.flag(v.is_some());
        if let Some(v) = v {
            write(self, v);
        }
    }
}

/// The canonical bytes of row `seq` following a row whose hash is `prev_hash`.
pub(crate) fn encode(seq: i64, prev_hash: &str, f: &Fields<'_>) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(256));
    w.str(VERSION);
    w.int(seq);
    w.str(prev_hash);
    w.int(f.request_id);
    w.str(f.user_ref);
    w.str(f.action);
    w.opt(f.token_id, Writer::int);
    w.opt(f.provider, Writer::str);
    w.opt(f.token_type, Writer::str);
    w.opt(f.token_fingerprint, Writer::str);
    w.opt(f.attempt, |w, v| w.int(v.into()));
    w.opt(f.outcome, Writer::str);
    w.flag(f.settled);
    w.opt(f.http_status, |w, v| w.int(v.into()));
    w.opt(f.provider_request_id, Writer::str);
    w.opt(f.error, Writer::str);
    w.int(f.duration_ms);
    w.str(f.worker);
    w.int(f.attempted_at);
    w.opt(f.verified, Writer::flag);
    w.opt(f.verified_by, Writer::str);
    w.0
}

/// The hash of row `seq`: lowercase hex SHA-256 of its canonical bytes.
pub(crate) fn row_hash(seq: i64, prev_hash: &str, f: &Fields<'_>) -> String {
    hex(&Sha256::digest(encode(seq, prev_hash, f)))
}

/// The keyed hash the chain covers instead of a user id (lowercase hex HMAC-SHA256).
pub(crate) fn user_ref(key: &str, user_id: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(user_id.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads `encode`'s bytes back, or `None` when they are not exactly one encoding: that
    /// this always recovers the input proves that no two inputs share an encoding.
    fn decode(bytes: &[u8]) -> Option<(i64, String, Owned)> {
        struct R<'b>(&'b [u8]);
        impl R<'_> {
            fn take(&mut self, n: usize) -> Option<&[u8]> {
                (self.0.len() >= n).then(|| {
                    let (a, b) = self.0.split_at(n);
                    self.0 = b;
                    a
                })
            }
            fn int(&mut self) -> Option<i64> {
                Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
            }
            fn str(&mut self) -> Option<String> {
                let n = usize::try_from(self.int()?).ok()?;
                String::from_utf8(self.take(n)?.to_vec()).ok()
            }
            fn flag(&mut self) -> Option<bool> {
                match self.take(1)?[0] {
                    0 => Some(false),
                    1 => Some(true),
                    _ => None,
                }
            }
            fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
                if self.flag()? { read(self).map(Some) } else { Some(None) }
            }
            fn small(&mut self) -> Option<i32> {
                i32::try_from(self.int()?).ok()
            }
        }
        let mut r = R(bytes);
        (r.str()? == VERSION).then_some(())?;
        let seq = r.int()?;
        let prev = r.str()?;
        let o = Owned {
            request_id: r.int()?,
            user_ref: r.str()?,
            action: r.str()?,
            token_id: r.opt(R::int)?,
            provider: r.opt(R::str)?,
            token_type: r.opt(R::str)?,
            token_fingerprint: r.opt(R::str)?,
            attempt: r.opt(R::small)?,
            outcome: r.opt(R::str)?,
            settled: r.flag()?,
            http_status: r.opt(R::small)?,
            provider_request_id: r.opt(R::str)?,
            error: r.opt(R::str)?,
            duration_ms: r.int()?,
            worker: r.str()?,
            attempted_at: r.int()?,
            verified: r.opt(R::flag)?,
            verified_by: r.opt(R::str)?,
        };
        r.0.is_empty().then_some((seq, prev, o))
    }

    #[derive(Clone, Debug, PartialEq)]
    struct Owned {
        request_id: i64,
        user_ref: String,
        action: String,
        token_id: Option<i64>,
        provider: Option<String>,
        token_type: Option<String>,
        token_fingerprint: Option<String>,
        attempt: Option<i32>,
        outcome: Option<String>,
        settled: bool,
        http_status: Option<i32>,
        provider_request_id: Option<String>,
        error: Option<String>,
        duration_ms: i64,
        worker: String,
        attempted_at: i64,
        verified: Option<bool>,
        verified_by: Option<String>,
    }

    impl Owned {
        fn fields(&self) -> Fields<'_> {
            Fields {
                request_id: self.request_id,
                user_ref: &self.user_ref,
                action: &self.action,
                token_id: self.token_id,
                provider: self.provider.as_deref(),
                token_type: self.token_type.as_deref(),
                token_fingerprint: self.token_fingerprint.as_deref(),
                attempt: self.attempt,
                outcome: self.outcome.as_deref(),
                settled: self.settled,
                http_status: self.http_status,
                provider_request_id: self.provider_request_id.as_deref(),
                error: self.error.as_deref(),
                duration_ms: self.duration_ms,
                worker: &self.worker,
                attempted_at: self.attempted_at,
                verified: self.verified,
                verified_by: self.verified_by.as_deref(),
            }
        }
    }

    /// Strings made of the characters an attacker would use to forge a boundary: NULs,
    /// length-like bytes, separators, and the empty string.
    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[\\x00\\x01\\x08|,;:=\"'\\\\a-c\\u{e9}]{0,12}").unwrap()
    }

    fn row() -> impl Strategy<Value = Owned> {
        let a = (
            any::<i64>(),
            text(),
            text(),
            proptest::option::of(any::<i64>()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(any::<i32>()),
            proptest::option::of(text()),
        );
        let b = (
            any::<bool>(),
            proptest::option::of(any::<i32>()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            any::<i64>(),
            text(),
            any::<i64>(),
            proptest::option::of(any::<bool>()),
            proptest::option::of(text()),
        );
        (a, b).prop_map(
            |((r, u, ac, t, p, ty, fp, at, o), (s, h, pr, e, d, w, ts, v, vb))| Owned {
                request_id: r,
                user_ref: u,
                action: ac,
                token_id: t,
                provider: p,
                token_type: ty,
                token_fingerprint: fp,
                attempt: at,
                outcome: o,
                settled: s,
                http_status: h,
                provider_request_id: pr,
                error: e,
                duration_ms: d,
                worker: w,
                attempted_at: ts,
                verified: v,
                verified_by: vb,
            },
        )
    }

    proptest! {
        #[test]
        fn every_encoding_decodes_back_to_its_row(seq in any::<i64>(), prev in text(), row in row()) {
            let bytes = encode(seq, &prev, &row.fields());
            prop_assert_eq!(decode(&bytes), Some((seq, prev, row)));
        }

        #[test]
        fn two_different_rows_never_share_an_encoding(a in row(), b in row()) {
            prop_assume!(a != b);
            prop_assert_ne!(encode(1, GENESIS, &a.fields()), encode(1, GENESIS, &b.fields()));
        }
    }

    fn sample() -> Owned {
        Owned {
            request_id: 7,
            user_ref: "u".into(),
            action: "revoke".into(),
            token_id: Some(3),
            provider: Some("acme".into()),
            token_type: Some("access_token".into()),
            token_fingerprint: Some("fp".into()),
            attempt: Some(1),
            outcome: Some("revoked".into()),
            settled: true,
            http_status: Some(200),
            provider_request_id: None,
            error: Some("a".into()),
            duration_ms: 12,
            worker: "w".into(),
            attempted_at: 1_700_000_000_000_000,
            verified: None,
            verified_by: Some("".into()),
        }
    }

    #[test]
    fn moving_text_between_neighbouring_fields_changes_the_hash() {
        // "a" + "" and "" + "a" in two adjacent optional strings, and an empty string
        // against an absent one: the classic ambiguities of joined fields.
        let a = sample();
        let b = Owned {
            error: Some("".into()),
            provider_request_id: Some("a".into()),
            ..sample()
        };
        let c = Owned {
            verified_by: None,
            ..sample()
        };
        let hashes = [a, b, c].map(|o| row_hash(2, GENESIS, &o.fields()));
        assert_ne!(hashes[0], hashes[1]);
        assert_ne!(hashes[0], hashes[2]);
        assert_ne!(hashes[1], hashes[2]);
    }

    #[test]
    fn the_hash_is_sha256_hex_and_depends_on_the_sequence_and_the_previous_hash() {
        let o = sample();
        let h = row_hash(1, GENESIS, &o.fields());
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(h, row_hash(2, GENESIS, &o.fields()));
        assert_ne!(h, row_hash(1, &h, &o.fields()));
        assert_eq!(h, row_hash(1, GENESIS, &o.fields()), "deterministic");
    }

    #[test]
    fn the_user_reference_is_keyed() {
        // RFC 4231 test case 2.
        assert_eq!(
            user_ref("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(user_ref("k1", "alice"), user_ref("k2", "alice"));
    }

    #[test]
    fn timestamps_are_cut_to_the_microsecond() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let (cut, micros) = to_micros(at);
        assert_eq!(micros, 1_700_000_000_123_456);
        assert_eq!(cut.timestamp_subsec_nanos(), 123_456_000);
    }
}
