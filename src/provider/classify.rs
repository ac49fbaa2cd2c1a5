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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    const CAP: Duration = Duration::from_secs(3600);

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
                classify(&response(status, body), &[], CAP).outcome,
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
            CAP,
        );
        assert_eq!(
            verdict.error.as_deref(),
            Some("HTTP 401: invalid_client: bad secret [REDACTED]")
        );
        let verdict = classify(&response(422, r#"{"token":"is required"}"#), &[], CAP);
        assert_eq!(verdict.error.as_deref(), Some("HTTP 422: token: is required"));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now, CAP), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 2 ", now, CAP), Some(Duration::from_secs(2)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now, CAP), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now, CAP), Some(Duration::ZERO));
        for nothing in ["soon", "", "-5", "+5", "1.5", "2 s"] {
            assert_eq!(parse_retry_after(nothing, now, CAP), None, "{nothing:?}");
        }
    }

    /// Issue 7: a year, a 20-digit number, more digits than any integer holds, and a date in
    /// the year 9999 are all the cap; none panics.
    #[test]
    fn retry_after_is_clamped_to_the_cap() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for huge in [
            "3601",
            "31536000",
            "18446744073709551615",
            "99999999999999999999",
            "123456789012345678901234567890123456789012345678901234567890",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(parse_retry_after(huge, now, CAP), Some(CAP), "{huge}");
        }
        assert_eq!(
            parse_retry_after("00000000000000000000000007", now, CAP),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn a_429_asking_for_a_year_gets_the_cap() {
        for status in [429, 503] {
            let mut r = response(status, "");
            r.headers.insert(RETRY_AFTER, HeaderValue::from_static("31536000"));
            let verdict = classify(&r, &[], CAP);
            assert_eq!((verdict.outcome, verdict.retry_after), (Outcome::Transient, Some(CAP)));
            r.headers
                .insert(RETRY_AFTER, HeaderValue::from_static("18446744073709551615"));
            assert_eq!(
                classify(&r, &[], Duration::from_secs(5)).retry_after,
                Some(Duration::from_secs(5))
            );
        }
    }

    #[test]
    fn a_success_whose_body_says_error_is_classified_by_the_error() {
        for (body, outcome) in [
            (
                r#"{"error":"invalid_client","error_description":"no such client"}"#,
                Outcome::Failed,
            ),
            (r#"{"error":"invalid_token"}"#, Outcome::AlreadyInvalid),
            (r#"{"error":"unsupported_token_type"}"#, Outcome::NotRevocable),
            (r#"{"error":"temporarily_unavailable"}"#, Outcome::Transient),
            (
                r#"{"error":{"code":"invalid_token","message":"gone"}}"#,
                Outcome::AlreadyInvalid,
            ),
            (r#"{"error":{"code":500}}"#, Outcome::Failed),
            (r#"{"error":true}"#, Outcome::Failed),
            (r#"{"errors":["bad"]}"#, Outcome::Failed),
            (r#"{"ok":false,"error":"invalid_auth"}"#, Outcome::Failed),
            (r#"{"ok":false}"#, Outcome::Failed),
            (r#"{"success":false}"#, Outcome::Failed),
            (r#"{"status":"FAIL"}"#, Outcome::Failed),
            (r#"{"error":""}"#, Outcome::Revoked),
            (r#"{"error":null,"errors":{}}"#, Outcome::Revoked),
            (r#"{"ok":true}"#, Outcome::Revoked),
            (r#"{"status":"ok"}"#, Outcome::Revoked),
            (r#"{"status":{"error":true}}"#, Outcome::Revoked),
            (r#"["error"]"#, Outcome::Revoked),
            ("error", Outcome::Revoked),
        ] {
            let verdict = classify(&response(200, body), &[], CAP);
            assert_eq!(verdict.outcome, outcome, "{body}");
            if outcome != Outcome::Revoked {
                let error = verdict.error.unwrap();
                assert!(error.starts_with("HTTP 200 with an error in the body"), "{error}");
            }
        }
        let verdict = classify(&response(200, r#"{"error":"invalid_client"}"#), &[], CAP);
        assert_eq!(
            verdict.error.as_deref(),
            Some("HTTP 200 with an error in the body: invalid_client")
        );
    }

    #[test]
    fn an_html_error_page_is_named_by_its_title_not_copied() {
        let mut r = response(
            502,
            "<html><head><title>502 Bad\n Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
        );
        r.headers
            .insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        let verdict = classify(&r, &[], CAP);
        assert_eq!(verdict.outcome, Outcome::Transient);
        assert_eq!(
            verdict.error.as_deref(),
            Some("HTTP 502 with an HTML page (502 Bad Gateway), not a revocation answer (a proxy or portal?)")
        );
        r.status = 404;
        assert_eq!(classify(&r, &[], CAP).outcome, Outcome::Failed);
    }

    #[test]
    fn an_html_page_with_a_success_status_is_not_a_revocation() {
        let mut r = response(200, "<html><body>Welcome</body></html>");
        r.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        let verdict = classify(&r, &[], CAP);
        assert_eq!(verdict.outcome, Outcome::Transient);
        assert!(verdict.error.unwrap().contains("HTML page"));
        r.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(classify(&r, &[], CAP).outcome, Outcome::Revoked);
    }

    #[test]
    fn a_429_carries_its_retry_after() {
        let mut r = response(429, "");
        r.headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(classify(&r, &[], CAP).retry_after, Some(Duration::from_secs(2)));
    }
}

/// Property tests (issue 7): any answer a provider can send, classified without a panic, a
/// wait never longer than the cap, and a success whose body says error never a revocation.
#[cfg(test)]
mod properties {
    use std::time::{Duration, SystemTime};

    use proptest::prelude::*;
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

    use super::{RawResponse, classify, parse_retry_after, says_error};
    use crate::outcome::Outcome;
    use crate::provider::dialect::{BodyFormat, ClientAuth, Dialect, DialectSettings};

    const SECRET: &str = "s3cr3t-value-123";

    /// Header names that matter to the classifier, and some that do not.
    fn header_name() -> impl Strategy<Value = HeaderName> {
        prop_oneof![
            prop::sample::select(vec![
                "retry-after",
                "content-type",
                "x-request-id",
                "request-id",
                "x-ratelimit-reset",
            ])
            .prop_map(HeaderName::from_static),
            "[a-z][a-z0-9-]{0,20}".prop_map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap()),
        ]
    }

    /// Header values: Retry-After shapes, content types, and any bytes a header may hold.
    fn header_value() -> impl Strategy<Value = HeaderValue> {
        prop_oneof![
            "[0-9]{1,40}",
            "text/html|application/json|TEXT/HTML; charset=utf-8| text/html",
            "(Mon|Fri|Sun), [0-9]{2} (Jan|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
            ".{0,40}",
        ]
        .prop_filter_map("not a header value", |v| HeaderValue::from_str(&v).ok())
        .boxed()
        .prop_union(
            prop::collection::vec(any::<u8>(), 0..40)
                .prop_filter_map("not a header value", |b| HeaderValue::from_bytes(&b).ok())
                .boxed(),
        )
    }

    fn headers() -> impl Strategy<Value = HeaderMap> {
        prop::collection::vec((header_name(), header_value()), 0..6).prop_map(|pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(name, value);
            }
            map
        })
    }

    /// JSON bodies that say error in one of the shapes a success status may carry.
    fn error_body() -> impl Strategy<Value = serde_json::Value> {
        let code = "[a-z_]{1,24}|invalid_token|unsupported_token_type|temporarily_unavailable";
        let extra = prop::collection::btree_map("[a-z]{1,8}", ".{0,12}", 0..3);
        let shape = prop_oneof![
            code.prop_map(|c| serde_json::json!({ "error": c })),
            code.prop_map(|c| serde_json::json!({ "error": { "code": c, "message": "m" } })),
            Just(serde_json::json!({ "error": true })),
            Just(serde_json::json!({ "errors": [{ "message": "bad" }] })),
            Just(serde_json::json!({ "ok": false })),
            Just(serde_json::json!({ "success": false })),
            "error|fail|FAILED|Failure".prop_map(|s| serde_json::json!({ "status": s })),
        ];
        (shape, extra).prop_map(|(mut body, extra)| {
            let object = body.as_object_mut().unwrap();
            for (k, v) in extra {
                if !matches!(k.as_str(), "error" | "errors" | "ok" | "success" | "status") {
                    object.insert(k, serde_json::Value::String(v));
                }
            }
            body
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            ".{0,100}".prop_map(String::into_bytes),
            error_body().prop_map(|b| b.to_string().into_bytes()),
            Just(br#"{"status":{"error":false,"code":200}}"#.to_vec()),
            Just(br#"{"status":{"error":true,"code":429}}"#.to_vec()),
        ]
    }

    fn cap() -> impl Strategy<Value = Duration> {
        prop_oneof![Just(Duration::ZERO), (0u64..=86_400).prop_map(Duration::from_secs)]
    }

    fn all_dialects() -> Vec<DialectSettings> {
        Dialect::SIMULATED
            .iter()
            .map(|&dialect| DialectSettings {
                dialect,
                auth: ClientAuth::ClientSecretBasic,
                body: BodyFormat::Json,
                api_version: String::new(),
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_answer_is_classified_with_a_wait_within_the_cap(
            status in prop_oneof![any::<u16>(), 100u16..=599, 200u16..=299, Just(429u16), Just(503u16)],
            headers in headers(),
            body in body(),
            cap in cap(),
        ) {
            let response = RawResponse { status, headers, body };
            let shared = classify(&response, &[SECRET], cap);
            prop_assert!(shared.retry_after.is_none_or(|w| w <= cap), "{:?}", shared.retry_after);
            prop_assert_eq!(shared.http_status, Some(status));
            for settings in all_dialects() {
                let verdict = settings.classify_within(&response, &[SECRET], cap);
                prop_assert!(verdict.retry_after.is_none_or(|w| w <= cap));
                prop_assert!(!verdict.error.unwrap_or_default().contains(SECRET));
                if !(200..=299).contains(&status) {
                    prop_assert_ne!(verdict.outcome, Outcome::Revoked);
                }
                if let Some(json) = response.json() && says_error(&json) {
                    prop_assert_ne!(verdict.outcome, Outcome::Revoked, "{}: {}", settings.dialect, json);
                }
            }
        }

        #[test]
        fn a_success_whose_body_says_error_is_never_revoked(
            status in 200u16..=299,
            headers in headers(),
            body in error_body(),
            cap in cap(),
        ) {
            let response = RawResponse { status, headers, body: body.to_string().into_bytes() };
            for settings in all_dialects() {
                let verdict = settings.classify_within(&response, &[], cap);
                prop_assert_ne!(verdict.outcome, Outcome::Revoked, "{} {}: {}", settings.dialect, status, body);
                prop_assert!(verdict.error.is_some());
            }
        }

        #[test]
        fn retry_after_never_panics_and_never_exceeds_the_cap(
            raw in prop_oneof![
                ".{0,60}",
                "[0-9]{1,80}",
                " *[0-9]{1,25} *",
                "(Mon|Tue|Fri|Sun), [0-9]{2} (Jan|Feb|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
            ],
            now_secs in prop_oneof![Just(0u64), any::<u32>().prop_map(u64::from), 0u64..=253_402_300_799],
            cap in cap(),
        ) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_secs);
            if let Some(wait) = parse_retry_after(&raw, now, cap) {
                prop_assert!(wait <= cap, "{raw:?}: {wait:?} over {cap:?}");
            }
            let digits = raw.trim();
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                let expected = digits.parse::<u64>().map_or(cap, |s| Duration::from_secs(s).min(cap));
                prop_assert_eq!(parse_retry_after(&raw, now, cap), Some(expected));
            }
        }
    }
}
