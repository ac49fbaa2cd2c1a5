//! Reading a request and writing an answer, with nothing of any one provider in it: body
//! decoding (form or JSON fields), the `Authorization` schemes, and the small response
//! builders every provider's answers are made of.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;

/// A parsed request body: form or JSON fields as strings.
pub(super) struct Body {
    fields: HashMap<String, String>,
}

impl Body {
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// The media type of a request body, as far as any provider here cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Form,
    Json,
    /// No `Content-Type` header at all.
    Absent,
    Other,
}

pub(super) fn content_kind(headers: &HeaderMap) -> Kind {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Kind::Absent;
    };
    let ct = ct.to_str().unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => Kind::Form,
        "application/json" => Kind::Json,
        _ => Kind::Other,
    }
}

/// The fields of a form or JSON body (JSON: the top-level string members).
pub(super) fn parse_body(kind: Kind, bytes: &[u8]) -> Option<Body> {
    let fields = match kind {
        Kind::Form => url::form_urlencoded::parse(bytes).into_owned().collect(),
        Kind::Json => {
            let value: Value = serde_json::from_slice(bytes).ok()?;
            value
                .as_object()?
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        }
        Kind::Absent | Kind::Other => return None,
    };
    Some(Body { fields })
}

/// The fields of a query string.
pub(super) fn parse_query(query: Option<&str>) -> Body {
    let fields = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    Body { fields }
}

/// `Authorization: Basic` credentials, form-decoded as RFC 6749 §2.3.1 asks when
/// `form_decode`.
pub(super) fn basic_credentials(headers: &HeaderMap, form_decode: bool) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    let (id, secret) = pair.split_once(':')?;
    let decode = |s: &str| -> String {
        if form_decode {
            url::form_urlencoded::parse(format!("v={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        } else {
            s.to_owned()
        }
    };
    Some((decode(id), decode(secret)))
}

/// The credential of an `Authorization: <scheme> <credential>` header.
pub(super) fn authorization(headers: &HeaderMap, scheme: &str) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, credential) = value.split_once(' ')?;
    (given.eq_ignore_ascii_case(scheme) && !credential.trim().is_empty()).then(|| credential.trim().to_owned())
}

pub(super) fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

pub(super) fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

pub(super) fn empty(status: u16) -> Response {
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

pub(super) fn text(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// Adds a header, when the value is a valid header value.
pub(super) fn with_header(mut response: Response, name: &'static str, value: &str) -> Response {
    if let Ok(value) = value.parse() {
        response.headers_mut().insert(name, value);
    }
    response
}

/// A random UUID-shaped id, as providers stamp their answers with.
pub(super) fn request_id() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        fastrand::u16(..0x1000),
        fastrand::u64(..1 << 48)
    )
}

/// A path segment's percent-escapes decoded (not `+`, which is a plus in a path).
pub(super) fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_decode_escapes_but_not_plus() {
        assert_eq!(percent_decode("a%2Fb+c%C3%A9").as_deref(), Some("a/b+cé"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
    }
}
