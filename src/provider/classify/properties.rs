//! Property tests of the classifier: any status, headers and body classify without panic, within the bounds.

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
