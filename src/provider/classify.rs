//! One classifier of provider answers into outcomes (DESIGN.md §2), shared by every dialect;
//! a dialect may refine it (see `dialect.rs`).

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use crate::outcome::{Outcome, Verdict};
use crate::token::redact;

/// A provider's answer as read off the wire: status, the headers that matter, and at most
/// `http.max_body_bytes` of the body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Headers that carry a provider's id for a request (Moov sends `x-request-id`).
const REQUEST_ID_HEADERS: [&str; 4] = ["x-request-id", "request-id", "x-correlation-id", "x-amzn-requestid"];

impl RawResponse {
    pub(crate) fn request_id(&self) -> Option<String> {
        REQUEST_ID_HEADERS.iter().find_map(|name| {
            let value = self.headers.get(*name)?.to_str().ok()?.trim();
            (!value.is_empty() && value.len() <= 200).then(|| value.to_owned())
        })
    }

    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn is_html(&self) -> bool {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("text/html"))
    }

    /// `Retry-After` as a wait from now: delta-seconds or an HTTP date.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        let raw = self.headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
        parse_retry_after(raw, SystemTime::now())
    }
}

pub(crate) fn parse_retry_after(raw: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(raw).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The error code and message a provider put in its body, in the common shapes:
/// RFC 6749 `{error, error_description}`, `{message}`, OneLogin's `{status: {message}}`,
/// Moov's 422 `{field: problem}`.
fn error_text(json: &serde_json::Value) -> Option<String> {
    let field = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    if let Some(code) = field(json, "error") {
        return Some(match field(json, "error_description") {
            Some(desc) => format!("{code}: {desc}"),
            None => code,
        });
    }
    if let Some(msg) = field(json, "message") {
        return Some(msg);
    }
    if let Some(msg) = json.get("status").and_then(|s| field(s, "message")) {
        return Some(msg);
    }
    let object = json.as_object()?;
    let parts: Vec<String> = object
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}: {v}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Classifies by status and RFC 6749 error code. `secrets` are scrubbed from any text kept.
pub(crate) fn classify(response: &RawResponse, secrets: &[&str]) -> Verdict {
    let status = response.status;
    let json = response.json();
    let code = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(|e| e.as_str())
        .map(str::to_owned);
    let detail = || {
        let text = json
            .as_ref()
            .and_then(error_text)
            .unwrap_or_else(|| String::from_utf8_lossy(&response.body).into_owned());
        let text = redact(&text, secrets);
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {text}")
        }
    };
    let outcome = match status {
        // A proxy, gateway or captive portal answers with a page; a revocation endpoint
        // never does. Taking it as success could clear a user whose token still works.
        200..=299 if response.is_html() => {
            return Verdict {
                outcome: Outcome::Transient,
                http_status: Some(status),
                provider_request_id: response.request_id(),
                error: Some(format!(
                    "HTTP {status} with an HTML page, not a revocation answer (a proxy or portal?)"
                )),
                retry_after: None,
            };
        }
        200..=299 => Outcome::Revoked,
        408 | 425 | 429 | 500..=599 => Outcome::Transient,
        400..=499 => match code.as_deref() {
            // Google, Salesforce and OIDC servers answer an expired or revoked token so.
            Some("invalid_token") => Outcome::AlreadyInvalid,
            // RFC 7009 §2.2.1: the server does not revoke this type of token.
            Some("unsupported_token_type") => Outcome::NotRevocable,
            _ => Outcome::Failed,
        },
        // 1xx and 3xx: a revocation endpoint has no business answering so.
        _ => Outcome::Failed,
    };
    Verdict {
        outcome,
        http_status: Some(status),
        provider_request_id: response.request_id(),
        error: (outcome != Outcome::Revoked).then(detail),
        retry_after: matches!(status, 429 | 503).then(|| response.retry_after()).flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    fn response(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn statuses_map_to_the_outcomes_of_the_design() {
        for (status, body, outcome) in [
            (200, "", Outcome::Revoked),
            (204, "", Outcome::Revoked),
            (408, "", Outcome::Transient),
            (429, "", Outcome::Transient),
            (500, "", Outcome::Transient),
            (503, "", Outcome::Transient),
            (504, "", Outcome::Transient),
            (400, r#"{"error":"invalid_token"}"#, Outcome::AlreadyInvalid),
            (400, r#"{"error":"unsupported_token_type"}"#, Outcome::NotRevocable),
            (400, r#"{"error":"invalid_request"}"#, Outcome::Failed),
            (401, r#"{"error":"invalid_client"}"#, Outcome::Failed),
            (404, "not here", Outcome::Failed),
            (422, r#"{"token":"required"}"#, Outcome::Failed),
            (302, "", Outcome::Failed),
        ] {
            assert_eq!(
                classify(&response(status, body), &[]).outcome,
                outcome,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn errors_carry_the_provider_message_without_secrets() {
        let verdict = classify(
            &response(
                401,
                r#"{"error":"invalid_client","error_description":"bad secret s3cr3t-value"}"#,
            ),
            &["s3cr3t-value"],
        );
        assert_eq!(
            verdict.error.as_deref(),
            Some("HTTP 401: invalid_client: bad secret [REDACTED]")
        );
        let verdict = classify(&response(422, r#"{"token":"is required"}"#), &[]);
        assert_eq!(verdict.error.as_deref(), Some("HTTP 422: token: is required"));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn an_html_page_with_a_success_status_is_not_a_revocation() {
        let mut r = response(200, "<html><body>Welcome</body></html>");
        r.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        let verdict = classify(&r, &[]);
        assert_eq!(verdict.outcome, Outcome::Transient);
        assert!(verdict.error.unwrap().contains("HTML page"));
        r.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(classify(&r, &[]).outcome, Outcome::Revoked);
    }

    #[test]
    fn a_429_carries_its_retry_after() {
        let mut r = response(429, "");
        r.headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(classify(&r, &[]).retry_after, Some(Duration::from_secs(2)));
    }
}
