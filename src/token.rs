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

/// Secrets shorter than this are not looked for: matching them would shred ordinary words.
const MIN_SECRET_LEN: usize = 4;

/// What a secret is replaced with.
const REDACTED: &str = "[REDACTED]";

/// Makes provider-supplied text safe to store: every occurrence of a secret (the token,
/// the client secret, secret values of the provider's URL), in any of the forms listed at
/// [`scrub`], is replaced, control characters are dropped and the text is cut to
/// [`MAX_ERROR_LEN`] characters.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let out = scrub(text, secrets);
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

/// Replaces every occurrence of each secret with `[REDACTED]`, and changes nothing else.
///
/// A provider or a proxy may write back what it was sent in the form it travelled in, so a
/// secret is found:
/// - as is, percent-encoded (form or RFC 3986 style, upper or lower hex, `+` for a space)
///   and JSON-escaped (`\"`, `\/`, `\u00e9`, surrogate pairs), in any mix, since each
///   character is matched in any of those forms;
/// - in base64, standard or URL-safe, padded or not, alone or inside a longer encoded
///   string (an HTTP Basic header's `client_id:client_secret`, or RFC 6749 §2.3.1's
///   form-encoded variant of it): the part of the encoding that depends only on the
///   secret's bytes is looked for at each of the three alignments it can have, so at most
///   three characters either side of it, which mix in neighbouring bytes, stay.
///
/// Matches of different secrets that overlap are replaced as one.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut found: Vec<(usize, usize)> = Vec::new();
    let mut scratch = Vec::new();
    for secret in secrets.iter().filter(|s| s.len() >= MIN_SECRET_LEN) {
        for form in forms(secret) {
            find_all(text.as_bytes(), &form, &mut found, &mut scratch);
        }
    }
    if found.is_empty() {
        return text.to_owned();
    }
    found.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut iter = found.into_iter().peekable();
    while let Some((start, mut end)) = iter.next() {
        while let Some(&(next_start, next_end)) = iter.peek() {
            if next_start > end {
                break;
            }
            end = end.max(next_end);
            iter.next();
        }
        let start = floor_boundary(text, start.max(at));
        let end = ceil_boundary(text, end);
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i.min(text.len())
}

/// The strings to look for for one secret: the secret, and the parts of its base64
/// encodings (of the secret and of its form encoding) that depend on it alone.
fn forms(secret: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let form_encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut out = vec![secret.to_owned()];
    for bytes in [secret.as_bytes(), form_encoded.as_bytes()] {
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            for offset in 0..3 {
                let core = base64_core(bytes, offset, engine);
                if core.len() >= MIN_SECRET_LEN && !out.contains(&core) {
                    out.push(core);
                }
            }
        }
    }
    out
}

/// The characters of the base64 of `bytes`, placed `offset` bytes into a 3-byte group,
/// that are made of `bytes` alone (not of the bytes before or after).
fn base64_core(bytes: &[u8], offset: usize, engine: &base64::engine::GeneralPurpose) -> String {
    use base64::Engine;
    let mut data = vec![0u8; offset];
    data.extend_from_slice(bytes);
    let encoded = engine.encode(&data);
    // Characters holding bits of the leading filler: 0, 2 or 3 of them.
    let skip = [0, 2, 3][offset];
    // The last character holds bits of whatever follows unless the data fills its group.
    let cut = usize::from(!data.len().is_multiple_of(3));
    encoded
        .get(skip..encoded.len().saturating_sub(cut))
        .unwrap_or_default()
        .to_owned()
}

/// Pushes the byte range of every match of `secret` in `text` (see [`scrub`]).
fn find_all(text: &[u8], secret: &str, found: &mut Vec<(usize, usize)>, scratch: &mut Vec<Vec<usize>>) {
    let first = secret.as_bytes()[0];
    for start in 0..text.len() {
        let c = text[start];
        if c != first && c != b'%' && c != b'\\' && !(c == b'+' && first == b' ') {
            continue;
        }
        if let Some(end) = match_at(text, start, secret, scratch) {
            found.push((start, end));
        }
    }
}

/// Where a match of `secret` starting at `start` ends, if there is one. Each character of
/// the secret may be written as is, each of its bytes percent-encoded (a space also as
/// `+`), or the character JSON-escaped. Tracks every position a prefix of the secret can
/// reach, so a `%` or `\\` in the secret itself is matched either way.
fn match_at(text: &[u8], start: usize, secret: &str, reach: &mut Vec<Vec<usize>>) -> Option<usize> {
    let s = secret.as_bytes();
    let m = s.len();
    reach.iter_mut().for_each(Vec::clear);
    reach.resize_with(m + 1, Vec::new);
    reach[0].push(start);
    for j in 0..m {
        // A step advances by at most 4 bytes of the secret (one UTF-8 character).
        if reach[j..(j + 4).min(m + 1)].iter().all(Vec::is_empty) {
            return None;
        }
        let mut positions = std::mem::take(&mut reach[j]);
        positions.sort_unstable();
        positions.dedup();
        for &p in &positions {
            let Some(&c) = text.get(p) else { continue };
            if c == s[j] || (c == b'+' && s[j] == b' ') {
                reach[j + 1].push(p + 1);
            }
            if c == b'%' && hex_byte(text, p + 1) == Some(s[j]) {
                reach[j + 1].push(p + 3);
            }
            if c == b'\\'
                && secret.is_char_boundary(j)
                && let Some(ch) = secret[j..].chars().next()
                && let Some(end) = json_escape_end(text, p, ch)
            {
                reach[j + ch.len_utf8()].push(end);
            }
        }
        reach[j] = positions;
    }
    reach[m].iter().max().copied()
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Two hex digits at `at`, either case.
fn hex_byte(text: &[u8], at: usize) -> Option<u8> {
    let hi = hex_digit(*text.get(at)?)?;
    let lo = hex_digit(*text.get(at + 1)?)?;
    Some((hi << 4) | lo)
}

/// `\\uXXXX` at `at`, either case.
fn json_unit(text: &[u8], at: usize) -> Option<u16> {
    if text.get(at) != Some(&b'\\') || text.get(at + 1) != Some(&b'u') {
        return None;
    }
    let hi = hex_byte(text, at + 2)?;
    let lo = hex_byte(text, at + 4)?;
    Some((u16::from(hi) << 8) | u16::from(lo))
}

/// Where a JSON escape of `ch` starting at `at` (a backslash) ends, if it is one.
fn json_escape_end(text: &[u8], at: usize, ch: char) -> Option<usize> {
    let short = match ch {
        '"' => Some(b'"'),
        '\\' => Some(b'\\'),
        '/' => Some(b'/'),
        '\u{8}' => Some(b'b'),
        '\u{c}' => Some(b'f'),
        '\n' => Some(b'n'),
        '\r' => Some(b'r'),
        '\t' => Some(b't'),
        _ => None,
    };
    if short.is_some() && text.get(at + 1).copied() == short {
        return Some(at + 2);
    }
    let mut units = [0u16; 2];
    match ch.encode_utf16(&mut units) {
        [one] => (json_unit(text, at)? == *one).then_some(at + 6),
        [high, low] => (json_unit(text, at)? == *high && json_unit(text, at + 6)? == *low).then_some(at + 12),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
