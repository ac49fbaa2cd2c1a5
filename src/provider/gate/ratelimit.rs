//! What a provider's rate-limit headers say: how many calls its window allows, how many are
//! left, and when the window resets. Read from the usual families (the IETF draft's
//! `RateLimit-*`, `X-RateLimit-*`, Okta's and X's `X-Rate-Limit-*`) and from the names the
//! provider's definition lists (`rate_limit_headers`), each name sorted by what it ends with.
//! Provider text is untrusted: any value that is not a plain non-negative number is ignored,
//! and a reset is clamped to the caller's cap, like `Retry-After`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;

/// The families read for every provider, whatever its definition lists.
const KNOWN: [&str; 10] = [
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-reset-after",
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-reset",
];

/// A reset this large is a Unix time (Okta, X, GitHub), not seconds from now.
const EPOCH_AFTER: f64 = 1_000_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct RateLimit {
    pub(crate) limit: Option<f64>,
    pub(crate) remaining: Option<f64>,
    /// How long until the window resets, at most the cap.
    pub(crate) reset: Option<Duration>,
}

impl RateLimit {
    /// The calls a second the headers leave until the reset, when they say both.
    pub(crate) fn allowed_rate(&self) -> Option<f64> {
        let (remaining, reset) = (self.remaining?, self.reset?);
        (reset >= Duration::from_millis(100)).then(|| remaining / reset.as_secs_f64())
    }
}

enum Kind {
    Limit,
    Remaining,
    /// Seconds from now, or a Unix time.
    Reset,
    /// Seconds from now only.
    ResetAfter,
}

fn kind_of(name: &str) -> Option<Kind> {
    if name == "retry-after" {
        None
    } else if name.ends_with("remaining") {
        Some(Kind::Remaining)
    } else if name.ends_with("reset-after") {
        Some(Kind::ResetAfter)
    } else if name.ends_with("reset") {
        Some(Kind::Reset)
    } else if name.ends_with("limit") {
        Some(Kind::Limit)
    } else {
        None
    }
}

/// The leading number of a header value (the IETF draft allows `100, 100;w=60`): finite and
/// not negative, or nothing.
fn number(raw: &str) -> Option<f64> {
    let first = raw.split([',', ';']).next()?.trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    first.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

/// Reads the rate-limit headers of `headers`, looking at the known families and `extra`
/// names. `None` when none of them is there.
pub(crate) fn read(headers: &HeaderMap, extra: &[String], now: SystemTime, cap: Duration) -> Option<RateLimit> {
    let mut found = RateLimit::default();
    let mut any = false;
    let names = KNOWN.iter().copied().chain(extra.iter().map(String::as_str));
    for name in names {
        let lower = name.to_ascii_lowercase();
        let (Some(kind), Some(value)) = (kind_of(&lower), headers.get(lower.as_str())) else {
            continue;
        };
        let Some(value) = value.to_str().ok().and_then(number) else {
            continue;
        };
        any = true;
        match kind {
            Kind::Limit => found.limit = found.limit.or(Some(value)),
            Kind::Remaining => found.remaining = found.remaining.or(Some(value)),
            Kind::Reset | Kind::ResetAfter => {
                let secs = if matches!(kind, Kind::Reset) && value >= EPOCH_AFTER {
                    let epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
                    (value - epoch).max(0.0)
                } else {
                    value
                };
                let wait = Duration::try_from_secs_f64(secs).unwrap_or(cap).min(cap);
                found.reset = found.reset.or(Some(wait));
            }
        }
    }
    any.then_some(found)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    const CAP: Duration = Duration::from_secs(3600);

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn reads_the_ietf_draft_and_its_policy_lists() {
        let h = headers(&[
            ("RateLimit-Limit", "100, 100;w=60"),
            ("RateLimit-Remaining", "40"),
            ("RateLimit-Reset", "20"),
        ]);
        let r = read(&h, &[], at(0), CAP).unwrap();
        assert_eq!(r.limit, Some(100.0));
        assert_eq!(r.remaining, Some(40.0));
        assert_eq!(r.reset, Some(Duration::from_secs(20)));
        assert_eq!(r.allowed_rate(), Some(2.0));
    }

    #[test]
    fn an_okta_reset_is_a_unix_time() {
        let h = headers(&[
            ("x-rate-limit-limit", "600"),
            ("x-rate-limit-remaining", "0"),
            ("x-rate-limit-reset", "1700000030"),
        ]);
        let r = read(&h, &[], at(1_700_000_000), CAP).unwrap();
        assert_eq!((r.remaining, r.reset), (Some(0.0), Some(Duration::from_secs(30))));
        let past = read(&h, &[], at(1_800_000_000), CAP).unwrap();
        assert_eq!(past.reset, Some(Duration::ZERO));
    }

    #[test]
    fn catalogue_names_are_read_and_values_that_are_not_numbers_ignored() {
        let h = headers(&[
            ("x-rate-limit", "700"),
            ("x-rate-limit-remaining", "-3"),
            ("x-ratelimit-reset-after", "1.5"),
        ]);
        let names = vec!["X-Rate-Limit".to_owned(), "retry-after".to_owned()];
        let r = read(&h, &names, at(0), CAP).unwrap();
        assert_eq!(r.limit, Some(700.0));
        assert_eq!(r.remaining, None);
        assert_eq!(r.reset, Some(Duration::from_millis(1500)));
        assert_eq!(read(&headers(&[("retry-after", "3")]), &names, at(0), CAP), None);
    }

    #[test]
    fn a_reset_is_clamped_to_the_cap() {
        let h = headers(&[("ratelimit-reset", "99999999")]);
        assert_eq!(read(&h, &[], at(0), CAP).unwrap().reset, Some(CAP));
    }

    proptest! {
        /// No header value or name panics the reader, and a reset never exceeds the cap.
        #[test]
        fn never_panics_and_never_exceeds_the_cap(
            values in proptest::collection::vec("[ -~]{0,40}", 0..6),
            extra in proptest::collection::vec("[a-zA-Z-]{0,20}", 0..3),
            now in proptest::num::u64::ANY,
        ) {
            let mut map = HeaderMap::new();
            for (name, value) in KNOWN.iter().zip(&values) {
                if let Ok(v) = HeaderValue::from_str(value) {
                    map.insert(*name, v);
                }
            }
            let now = UNIX_EPOCH.checked_add(Duration::from_secs(now)).unwrap_or(UNIX_EPOCH);
            if let Some(r) = read(&map, &extra, now, CAP) {
                prop_assert!(r.reset.is_none_or(|d| d <= CAP));
                prop_assert!(r.limit.is_none_or(|v| v.is_finite() && v >= 0.0));
                prop_assert!(r.allowed_rate().is_none_or(|v| v.is_finite()));
            }
        }
    }
}
