//! Unit tests of the shared classifier: the status table, Retry-After, bodies that say error.

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
