//! `POST /requests/{id}/retry` and `POST /requests/{id}/cancel`.
//!
//! In this order, each refusal a 403 that changes nothing: actions must be enabled; a
//! browser's cross-site request is refused (`Sec-Fetch-Site`, `Origin`), besides the token
//! which a cross-site form cannot know; the token must be present (form field `token`,
//! header `X-Offboard-Token`, or `Authorization: Bearer`) and equal to the configured one,
//! compared in constant time. A refusal never says what the token should have been.
//! Then the operator command runs (`Store::retry` or `Store::cancel`, as the CLI's), which
//! writes the state change and an audit note naming who acted in one transaction. The
//! actor is the form's `operator` field, else the token's configured name, marked
//! `(dashboard)`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::view::{database_error, message, user_href};
use super::{Access, Dashboard};
use crate::storage::StoreError;

/// Longest operator name and reason accepted (the audit keeps them for years).
const MAX_NAME_CHARS: usize = 100;
const MAX_REASON_CHARS: usize = 1000;

/// The action named in the path, with its button's verb.
pub(super) fn parse(action: &str) -> Option<(&'static str, &'static str)> {
    match action {
        "retry" => Some(("retry", "Retry")),
        "cancel" => Some(("cancel", "Cancel")),
        _ => None,
    }
}

pub(super) async fn act(
    State(d): State<Dashboard>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Access::Token { digest, name } = &d.inner.access else {
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            "actions are disabled on this dashboard ([dashboard] actions = false)",
        );
    };
    if let Some(why) = cross_site(&headers) {
        tracing::warn!(request = %id, action = %action, why, "dashboard action refused: cross-site");
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            format!("cross-site request refused: {why}"),
        );
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim());
    match presented_token(&headers).or_else(|| field("token").filter(|t| !t.is_empty())) {
        None => {
            tracing::warn!(request = %id, action = %action, "dashboard action refused: no token");
            return message(
                StatusCode::FORBIDDEN,
                "Refused",
                "this action needs the dashboard token (form field token, or header X-Offboard-Token)",
            );
        }
        Some(token) if !token_matches(token, digest) => {
            tracing::warn!(request = %id, action = %action, "dashboard action refused: wrong token");
            return message(
                StatusCode::FORBIDDEN,
                "Refused",
                "the dashboard token is not the configured one",
            );
        }
        Some(_) => {}
    }
    let (Ok(id), Some((action, _))) = (id.parse::<i64>(), parse(&action)) else {
        return message(StatusCode::NOT_FOUND, "Not found", "no such action");
    };
    let operator = match field("operator").filter(|o| !o.is_empty()) {
        None => name.clone(),
        Some(o) if o.chars().count() <= MAX_NAME_CHARS && !o.chars().any(char::is_control) => o.to_owned(),
        Some(_) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Bad operator name",
                format!("the operator name must be at most {MAX_NAME_CHARS} characters, without control characters"),
            );
        }
    };
    let reason = field("reason").filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return message(
            StatusCode::BAD_REQUEST,
            "Reason too long",
            format!("the reason must be at most {MAX_REASON_CHARS} characters"),
        );
    }
    let by = format!("{operator} (dashboard)");
    let done = match action {
        "retry" => d.store().retry(id, &by, reason).await,
        _ => d.store().cancel(id, &by, reason).await,
    };
    match done {
        Ok(row) => {
            tracing::info!(request_id = id, action, by = %by, "dashboard action");
            let to = format!("{}&done={action}&request={id}", user_href(&row.user_id));
            (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
        }
        Err(e @ StoreError::NoSuchRequest(_)) => message(StatusCode::NOT_FOUND, "Not found", e.to_string()),
        Err(e @ StoreError::WrongState { .. }) => message(StatusCode::CONFLICT, "Not possible now", e.to_string()),
        Err(e) => database_error(&e),
    }
}

/// The token from a header, if one carries it.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    text("x-offboard-token")
        .or_else(|| text(header::AUTHORIZATION.as_str()).and_then(|a| a.strip_prefix("Bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether `presented` is the token whose SHA-256 is `digest`: digests of equal length,
/// compared without an early exit, so the time taken says nothing about the token.
fn token_matches(presented: &str, digest: &[u8; 32]) -> bool {
    let mine: [u8; 32] = sha2::Sha256::digest(presented.as_bytes()).into();
    mine.ct_eq(digest).into()
}

/// Why a browser's request came from another site, if it did: the browser says so
/// (`Sec-Fetch-Site: cross-site`), or its `Origin` is not the host it is talking to.
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s == "cross-site")
    {
        return Some("Sec-Fetch-Site is cross-site");
    }
    let origin = text(header::ORIGIN)?;
    let host = text(header::HOST).unwrap_or_default();
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or(origin);
    (!origin_host.eq_ignore_ascii_case(host)).then_some("Origin is not this host")
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn only_the_configured_token_matches() {
        let digest: [u8; 32] = sha2::Sha256::digest(b"0123456789abcdef").into();
        assert!(token_matches("0123456789abcdef", &digest));
        assert!(!token_matches("0123456789abcdeF", &digest));
        assert!(!token_matches("0123456789abcdef0", &digest));
        assert!(!token_matches("", &digest));
    }

    #[test]
    fn a_token_is_read_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_token(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(presented_token(&h), Some("abc"));
        h.insert("x-offboard-token", HeaderValue::from_static(" xyz "));
        assert_eq!(presented_token(&h), Some("xyz"));
    }

    #[test]
    fn a_request_from_another_origin_is_cross_site() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9187"));
        assert_eq!(
            cross_site(&h),
            None,
            "no Origin: a script or curl, which needs the token anyway"
        );
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:9187"));
        assert_eq!(cross_site(&h), None);
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(cross_site(&h).is_some());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:9187"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h).is_some());
    }
}
