//! A provider that writes back what it was sent: its error answers repeat the token and the
//! client credentials, raw or encoded as providers and the proxies in front of them do
//! (form and percent-encoding, JSON escapes, base64, the Basic header as sent). Each answer
//! uses the next form in turn, so a run through this fault meets every one of them.
//!
//! The encodings are written out here, independently of offboard's redaction, so a test
//! that finds none of them in offboard's output shows that the redaction caught them.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::SimProvider;

/// How many different echo answers there are.
const FORMS: usize = 14;

/// The `n`th echo answer (modulo [`FORMS`]) to a request that carried `token`.
pub(super) fn echo_response(
    p: &SimProvider,
    token: Option<&str>,
    headers: &HeaderMap,
    bytes: &[u8],
    n: usize,
) -> Response {
    let t = token.unwrap_or("");
    let s = p.client_secret.as_deref().unwrap_or("");
    let id = p.client_id.as_str();
    let text = |body: String| ("text/plain; charset=utf-8", body);
    let (content_type, body) = match n % FORMS {
        0 => text(format!("rejected token={t} client_secret={s}")),
        1 => text(format!("rejected token={}&client_secret={}", form(t), form(s))),
        2 => text(format!(
            "rejected token {} secret {}",
            percent(t, true),
            percent(s, true)
        )),
        3 => text(format!(
            "rejected token {} secret {}",
            percent(t, false),
            percent(s, false)
        )),
        4 => text(format!(
            "rejected {{\"token\":{},\"client_secret\":{}}}",
            json(t),
            json(s)
        )),
        5 => text(format!(
            "rejected {{\"token\":\"{}\",\"client_secret\":\"{}\"}}",
            json_ascii(t),
            json_ascii(s)
        )),
        6 => {
            // Valid JSON whose description quotes the request as JSON: escaped twice on the
            // wire, once in the text offboard keeps.
            let request = serde_json::json!({ "token": t, "client_secret": s }).to_string();
            let body = serde_json::json!({ "error": "invalid_request", "error_description": request });
            ("application/json", body.to_string())
        }
        k @ 7..=10 => {
            let engine = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD][k - 7];
            text(format!(
                "rejected token {} secret {}",
                engine.encode(t),
                engine.encode(s)
            ))
        }
        11 => text(format!(
            "bad credentials: Basic {} (or Basic {})",
            STANDARD.encode(format!("{id}:{s}")),
            STANDARD.encode(format!("{}:{}", form(id), form(s)))
        )),
        12 => {
            let auth = headers
                .get(header::AUTHORIZATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_else(|| "none".into());
            text(format!("bad credentials: Authorization: {auth}"))
        }
        _ => text(format!("rejected body: {}", String::from_utf8_lossy(bytes))),
    };
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, content_type)],
        body,
    )
        .into_response();
    if let Ok(value) = format!("req-{}", form(t)).parse() {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

fn form(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// RFC 3986 percent-encoding of everything but unreserved characters, in upper or lower hex.
fn percent(s: &str, upper: bool) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ if upper => format!("%{b:02X}"),
            _ => format!("%{b:02x}"),
        })
        .collect()
}

/// A JSON string literal as serde writes it.
fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A JSON string's content as PHP's `json_encode` writes it: `/` escaped, everything
/// outside ASCII as `\u` escapes (surrogate pairs beyond the BMP).
fn json_ascii(s: &str) -> String {
    s.encode_utf16()
        .map(|u| match u {
            0x22 => "\\\"".to_owned(),
            0x5c => "\\\\".to_owned(),
            0x2f => "\\/".to_owned(),
            0x20..=0x7e => char::from(u as u8).to_string(),
            _ => format!("\\u{u:04x}"),
        })
        .collect()
}

/// Every form of `secret` a provider or a proxy might write back, named, for tests that
/// check offboard's output holds none of them; `client_id` for the HTTP Basic pair (as
/// reqwest sends it, and RFC 6749 §2.3.1's form-encoded-then-base64 variant).
pub fn encodings(secret: &str, client_id: &str) -> Vec<(String, String)> {
    let json = json(secret);
    let json_ascii = json_ascii(secret);
    let mut out = vec![
        ("raw".to_owned(), secret.to_owned()),
        ("form".to_owned(), form(secret)),
        ("percent upper".to_owned(), percent(secret, true)),
        ("percent lower".to_owned(), percent(secret, false)),
        ("json".to_owned(), json[1..json.len() - 1].to_owned()),
        ("json ascii upper".to_owned(), upper_hex_escapes(&json_ascii)),
        ("json ascii".to_owned(), json_ascii),
    ];
    for (name, engine) in [
        ("base64", &STANDARD),
        ("base64 no pad", &STANDARD_NO_PAD),
        ("base64url", &URL_SAFE),
        ("base64url no pad", &URL_SAFE_NO_PAD),
    ] {
        out.push((name.to_owned(), engine.encode(secret)));
        out.push((format!("{name} basic"), engine.encode(format!("{client_id}:{secret}"))));
        out.push((
            format!("{name} basic form-encoded"),
            engine.encode(format!("{}:{}", form(client_id), form(secret))),
        ));
        out.push((
            format!("{name} in json"),
            engine.encode(format!("{{\"token\":\"{secret}\"}}")),
        ));
    }
    out
}

/// `\u00e9` → `\u00E9`: the hex digits of JSON escapes in upper case, as some encoders write them.
fn upper_hex_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("\\u") {
        out.push_str(&rest[..at + 2]);
        let hex_end = (at + 6).min(rest.len());
        out.push_str(&rest[at + 2..hex_end].to_ascii_uppercase());
        rest = &rest[hex_end..];
    }
    out.push_str(rest);
    out
}
