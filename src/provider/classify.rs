//! One classifier of provider answers into outcomes (DESIGN.md §2), shared by every dialect;
//! a dialect may refine it (see `dialect.rs`).
//!
//! It never takes an answer for a revocation unless the answer says so: a success status
//! with an HTML page (a proxy or portal) is transient, and one whose JSON body says error
//! is classified by that error as if the status had said it. Every wait a provider asks
//! for is clamped here to the caller's cap (`retry.max_provider_pause`), so nothing
//! downstream ever sees a longer one (DESIGN.md §5; §3, invariant 9).

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

    /// `Retry-After` as a wait from now, at most `max`: delta-seconds or an HTTP date.
    pub(crate) fn retry_after(&self, max: Duration) -> Option<Duration> {
        let raw = self.headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
        parse_retry_after(raw, SystemTime::now(), max)
    }

    /// The `<title>` of an HTML page, if short, to say which page a proxy served.
    fn html_title(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.body);
        let lower = text.to_ascii_lowercase();
        let open = lower.find("<title")?;
        let start = open + lower[open..].find('>')? + 1;
        let end = start + lower[start..].find("</title")?;
        let title = text.get(start..end)?.split_whitespace().collect::<Vec<_>>().join(" ");
        (!title.is_empty() && title.len() <= 100).then_some(title)
    }
}

/// `Retry-After` (RFC 9110 §10.2.3) as a wait from `now`, clamped to `max`: delta-seconds,
/// however many digits (a number too large for any clock is a wait of `max`, not no wait),
/// or an HTTP date (one in the past is no wait). Anything else is no `Retry-After`.
pub(crate) fn parse_retry_after(raw: &str, now: SystemTime, max: Duration) -> Option<Duration> {
    let raw = raw.trim();
    let wait = if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        raw.parse::<u64>().map_or(max, Duration::from_secs)
    } else {
        let at = httpdate::parse_http_date(raw).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(max))
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

/// Whether a JSON body says error in one of the common shapes, though its status says
/// success: `{"error": "invalid_client"}` (RFC 6749), `{"error": {…}}`, `{"errors": […]}`,
/// `{"ok": false}` (Slack), `{"success": false}`, `{"status": "error"}` (JSend). Null,
/// false, empty and `{"ok": true}` say nothing.
fn says_error(json: &serde_json::Value) -> bool {
    use serde_json::Value;
    let Some(object) = json.as_object() else {
        return false;
    };
    let present = |v: &Value| match v {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.trim().is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(true) | Value::Number(_) => true,
    };
    object.get("error").is_some_and(present)
        || object.get("errors").is_some_and(present)
        || object.get("ok") == Some(&Value::Bool(false))
        || object.get("success") == Some(&Value::Bool(false))
        || object
            .get("status")
            .and_then(Value::as_str)
            .is_some_and(|s| matches!(s.to_ascii_lowercase().as_str(), "error" | "fail" | "failed" | "failure"))
}

/// What an RFC 6749 error code says, wherever it came (an error status, or an error body
/// under a success status); `None` when the code alone does not decide.
fn outcome_of_code(code: Option<&str>) -> Option<Outcome> {
    match code? {
        // Google, Salesforce and OIDC servers answer an expired or revoked token so.
        "invalid_token" => Some(Outcome::AlreadyInvalid),
        // RFC 7009 §2.2.1: the server does not revoke this type of token.
        "unsupported_token_type" => Some(Outcome::NotRevocable),
        // RFC 6749 §4.1.2.1: the server is overloaded or failed; try again later.
        "temporarily_unavailable" | "server_error" | "slow_down" => Some(Outcome::Transient),
        _ => None,
    }
}

/// Whether the answer is a success status with an HTML page: a proxy, gateway or captive
/// portal, never a revocation endpoint.
pub(crate) fn is_portal_page(response: &RawResponse) -> bool {
    (200..=299).contains(&response.status) && response.is_html()
}

/// Whether the answer is a success status whose JSON body says error.
fn body_says_error(response: &RawResponse, json: Option<&serde_json::Value>) -> bool {
    (200..=299).contains(&response.status) && !response.is_html() && json.is_some_and(says_error)
}

/// The answer in words, for an audit row: status and the provider's error text, with
/// `secrets` redacted.
pub(crate) fn describe(response: &RawResponse, secrets: &[&str]) -> String {
    let status = response.status;
    let json = response.json();
    if response.is_html() {
        let title = response.html_title().map(|t| format!(" ({})", redact(&t, secrets)));
        let title = title.unwrap_or_default();
        return format!("HTTP {status} with an HTML page{title}, not a revocation answer (a proxy or portal?)");
    }
    let text = json
        .as_ref()
        .and_then(error_text)
        .unwrap_or_else(|| String::from_utf8_lossy(&response.body).into_owned());
    let text = redact(&text, secrets);
    let what = if body_says_error(response, json.as_ref()) {
        " with an error in the body"
    } else {
        ""
    };
    if text.is_empty() {
        format!("HTTP {status}{what}")
    } else {
        format!("HTTP {status}{what}: {text}")
    }
}

/// Classifies by status and RFC 6749 error code. `secrets` are scrubbed from any text kept;
/// a `Retry-After` is clamped to `max_wait`.
pub(crate) fn classify(response: &RawResponse, secrets: &[&str], max_wait: Duration) -> Verdict {
    let status = response.status;
    let json = response.json();
    let code = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(|e| e.as_str().or_else(|| e.get("code").and_then(|c| c.as_str())))
        .map(str::to_owned);
    let html = response.is_html();
    let body_error = body_says_error(response, json.as_ref());
    let detail = || describe(response, secrets);
    let outcome = match status {
        // A proxy, gateway or captive portal answers with a page; a revocation endpoint
        // never does. Taking it as success could clear a user whose token still works.
        200..=299 if html => Outcome::Transient,
        // A success status whose body says error is an error: judged by its code as a 4xx
        // would be, and never taken as a revocation.
        200..=299 if body_error => outcome_of_code(code.as_deref()).unwrap_or(Outcome::Failed),
        200..=299 => Outcome::Revoked,
        408 | 425 | 429 | 500..=599 => Outcome::Transient,
        400..=499 => outcome_of_code(code.as_deref()).unwrap_or(Outcome::Failed),
        // 1xx and 3xx: a revocation endpoint has no business answering so.
        _ => Outcome::Failed,
    };
    Verdict {
        outcome,
        http_status: Some(status),
        provider_request_id: response.request_id(),
        error: (outcome != Outcome::Revoked).then(detail),
        retry_after: matches!(status, 429 | 503)
            .then(|| response.retry_after(max_wait))
            .flatten(),
        verification: None,
    }
}

#[cfg(test)]
mod tests;

/// Property tests (issue 7): any answer a provider can send, classified without a panic, a
/// wait never longer than the cap, and a success whose body says error never a revocation.
#[cfg(test)]
mod properties;
